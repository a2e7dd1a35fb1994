"""Hole 10 of issue 13: ``--json`` escapes DEL and C1, a damaged journal row is one
sentence naming its job, and every file Tenantry writes is private (0600/0700).

Run as real processes (``python -m cli``) on the demo directory, each with its own
state directory and a permissive umask, so what the user would see is what is checked.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from core.audit import Audit
from core.journal import CorruptJob, Journal
from core.state import demo_state_dir
from core.text import json_text
from test_cli import assert_one_sentence_error, tenantry
from test_journal import new_job, run_python

HOSTILE = "Eve\x7f\x9b31m\x9d0;pwned\x07\x85Mallory\x1b[2J"


@pytest.fixture
def state(tmp_path) -> Path:
    return tmp_path / "state"


def run(state: Path, *args: str, stdin: str = ""):
    return tenantry(*args, env={"TENANTRY_STATE_DIR": str(state)}, stdin=stdin)


def test_json_text_escapes_every_control_character_and_round_trips():
    text = json_text({"name": HOSTILE, "ok": "Zoë"})
    assert not any(0x00 <= ord(c) <= 0x1F or 0x7F <= ord(c) <= 0x9F for c in text.replace("\n", ""))
    assert "\\u009b" in text and "\\u007f" in text and "Zoë" in text
    assert json.loads(text) == {"name": HOSTILE, "ok": "Zoë"}


def test_audit_json_on_the_command_line_escapes_del_and_c1(state):
    with Audit(demo_state_dir({"TENANTRY_STATE_DIR": str(state)}) / "audit.sqlite3") as audit:
        audit.record(operator=HOSTILE, bound_as="svc", action="move", users=[HOSTILE], customers=["C\x9b"], result="done")
    result = run(state, "audit", "--demo", "--json")
    assert result.returncode == 0, result.stderr
    raw = result.stdout
    assert not any(0x7F <= ord(c) <= 0x9F or (ord(c) < 0x20 and c != "\n") for c in raw), repr(raw)
    entries = json.loads(raw)
    assert entries[0]["operator"] == HOSTILE and entries[0]["customers"] == ["C\x9b"]


def corrupt(state: Path, job: str, column: str, value: object, table: str = "jobs") -> None:
    db = sqlite3.connect(state / "journal.sqlite3")
    key = "id" if table == "jobs" else "job_id"
    db.execute("PRAGMA ignore_check_constraints = ON")  # as anyone editing the file could
    with db:
        db.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (value, job))
    db.close()


@pytest.mark.parametrize(("table", "column", "value"), [
    ("jobs", "users", "[not json"),
    ("jobs", "customers", '{"a": 1}'),
    ("jobs", "status", "hacked"),
    ("jobs", "meta", "[1, 2]"),
    ("steps", "spec", "{broken"),
    ("steps", "state", "nope"),
])
def test_a_damaged_job_row_is_one_sentence_naming_the_job(state, table, column, value):
    folder = demo_state_dir({"TENANTRY_STATE_DIR": str(state)})
    with Journal(folder / "journal.sqlite3") as journal:
        job = new_job(journal)
    corrupt(folder, job, column, value, table)
    with Journal(folder / "journal.sqlite3") as journal, pytest.raises(CorruptJob, match=f"job {job} is damaged"):
        journal.job(job)
    for args in (("jobs", "--demo"), ("resume", job, "--demo"), ("rollback", job, "--demo")):
        result = run(state, *args)
        assert_one_sentence_error(result, 1, f"job {job} is damaged", "nothing was done")
        assert "unexpected internal error" not in result.stderr


def test_every_file_tenantry_writes_is_private(state, monkeypatch):
    """Under a umask that would make them world-readable: the state dir, the demo folder,
    the journal, its lock folder and files, the audit, and the crash log."""
    monkeypatch.setattr(os, "umask", os.umask)  # restored below, whatever happens
    old = os.umask(0o022)
    try:
        result = run(state, "move", "ana.hall2@fabrikam.example", "--to", "Contoso Pharmaceuticals", "--demo", "--yes", "--json")
        assert result.returncode in (0, 3), result.stderr
        (state / "journal.sqlite3").parent.mkdir(exist_ok=True)
        with Journal(state / "journal.sqlite3") as journal:
            job = new_job(journal)
            with journal.claim(job):
                pass
        # A defect below the command line writes crash.log: make one happen.
        crashed = run_python(
            """
            import sys, cli.main
            async def defect(args):
                raise RuntimeError("a defect")
            cli.main._run = defect
            sys.exit(cli.main.main(["jobs", "--demo"]))
            """, check=False, env={**os.environ, "TENANTRY_STATE_DIR": str(state)})
    finally:
        os.umask(old)
    assert "unexpected internal error (RuntimeError)" in crashed.stderr and (state / "crash.log").exists()
    seen = []
    for path in [state, *state.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        seen.append(path.name)
        assert mode == (0o700 if path.is_dir() else 0o600), f"{path} is {mode:o}"
    assert {"demo", "journal.sqlite3", "audit.sqlite3", "crash.log", "journal.sqlite3.locks"} <= set(seen)
