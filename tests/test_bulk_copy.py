"""Bulk copy (PRODUCT §3, §4; issue 4): ``tenantry copy --csv``, every row preflighted
first, the problems only a batch has (duplicate rows, two rows claiming one username,
UPN, address, SIP URI or name), the clean rows created with their passwords — on the
demo directory and the real Samba DC."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core import plan as p
from core.bulk import DUPLICATE, UNKNOWN, BulkCopy
from core.copy import CopyRequest
from core.errors import NotFound
from core.execute import CANCELLED
from core.journal import Journal
from directory_fixtures import PASSWORD_ENV
from move_fixtures import EXTRA_ROLE, SOURCE, make_user, remove_user, snapshot
from test_copy import bind_check
from test_bulk import session  # noqa: F401 -- the fixture, on the demo and the DC
from test_copy_cli import state_files_hold

aio = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parent.parent
_numbers = itertools.count(1)


def bulk_names() -> str:
    return f"Bulk{next(_numbers)}{os.getpid() % 1000}"


async def remove_upns(directory, upns) -> None:
    for upn in upns:
        try:
            user = await directory.user(upn)
        except NotFound:
            continue
        await directory.delete(user.dn)


def account(plan) -> dict:
    return next(s.after for s in plan.steps if s.action == p.ADD_USER)


@aio
async def test_rows_against_each_other_duplicates_and_every_kind_of_collision(session):
    """Each row below collides with row a in exactly one way (an email address also
    gives the SIP URI); the unknown template is a problem of its own row."""
    directory = session.directory
    template = await make_user(directory)
    last = bulk_names()
    try:
        bulk = BulkCopy(session.copier(), session.executor())
        alone = (await bulk.preflight(session.operator, [("a", CopyRequest(template.upn, "Ada", last))])).rows[0].plan
        assert alone.ok, alone.problems
        a = account(alone)
        upn, sam, cn = a["userPrincipalName"][0], a["sAMAccountName"][0], a["cn"][0]
        domain = upn.split("@")[1]
        before = await snapshot(directory, template.source)
        plan = await bulk.preflight(session.operator, [
            ("a", CopyRequest(template.upn, "Ada", last)),
            ("b", CopyRequest(template.sam, " ada ", last.upper())),  # row a again: another name for the template, other case
            ("c", CopyRequest(template.upn, "Cy", last, username=sam)),
            ("d", CopyRequest(template.upn, "Di", last, upn=upn)),
            ("e", CopyRequest(template.upn, "Ed", last, email=upn)),
            ("f", CopyRequest(template.upn, "Fe", last, display_name=cn)),
            ("g", CopyRequest("nobody.at.all@" + domain, "Gil", last)),
            ("h", CopyRequest(template.upn, "Hal", last, upn=f"hal.{last.lower()}@{domain}", email=f"hal.{last.lower()}@{domain}")),
        ])
        codes = {row.label: [x.code for x in row.plan.problems] for row in plan.rows}
        assert codes == {"a": [], "b": [DUPLICATE], "c": [p.COLLISION], "d": [p.COLLISION], "e": [p.COLLISION, p.COLLISION],
                         "f": [p.COLLISION], "g": [UNKNOWN], "h": []}
        text = {row.label: " ".join(x.message for x in row.plan.problems) for row in plan.rows}
        assert "repeats a" in text["b"]
        assert f"username {sam} would also be given to a" in text["c"]
        assert f"UPN {upn} would also be given to a" in text["d"]
        assert f"email address {upn}" in text["e"] and f"SIP URI sip:{upn}" in text["e"]
        assert f"name {cn} in the same container would also be given to a" in text["f"]
        assert [row.label for row in plan.clean] == ["a", "h"] and plan.kind == "copy"
        assert await snapshot(directory, template.source) == before  # preflight wrote nothing
    finally:
        await remove_user(directory, template)


@aio
async def test_one_password_for_every_row_is_checked_against_each_row(session, request):
    directory = session.directory
    template = await make_user(directory)
    last = bulk_names()
    try:
        bulk = BulkCopy(session.copier(), session.executor())
        password = f"Xq9!{last}g-77"  # holds the last name of row "g" only
        plan = await bulk.preflight(session.operator, [("f", CopyRequest(template.upn, "Fay", last + "f")),
                                                        ("g", CopyRequest(template.upn, "Gus", last + "g"))], password=password)
        assert [x.code for x in plan.rows[1].plan.problems] == [p.WEAK_PASSWORD] and plan.rows[0].ok
        assert password not in " ".join(x.message for x in plan.rows[1].plan.problems)
        results = {}
        events = [e async for e in bulk.run(plan, session.operator, results=results, passwords={"f": password})]
        assert {label: r.status for label, r in results.items()} == {"f": "done", "g": "refused"}, [e.event.message for e in events]
        bind_check(request, directory, results["f"].upn, password)
        new = await directory.user(results["f"].upn)
        assert new.enabled and set(new.services) == {"exchange", "ocs"}
        assert not await directory.conflicts(upn=f"gus.{last.lower()}g@{template.source.default_domain}")
    finally:
        await remove_upns(directory, [f"fay.{last.lower()}f@{template.source.default_domain}"])
        await remove_user(directory, template)


# -- the command line ------------------------------------------------------------------------


def _cli(env: dict, config: Path | None):
    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        extra = ["--config", str(config)] if config else ["--demo"]
        return subprocess.run([sys.executable, "-m", "cli", *args, *extra], input=stdin, capture_output=True, text=True,
                              cwd=ROOT, env=env, timeout=300)
    return run


@pytest.fixture
def dc_cli(dc_config_file, sp_password, tmp_path):
    env = {**os.environ, PASSWORD_ENV: sp_password, "TENANTRY_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    return _cli(env, dc_config_file)


@pytest.fixture
def demo_cli(tmp_path):
    env = {**os.environ, "TENANTRY_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    env.pop("TENANTRY_CONFIG", None)
    return _cli(env, None)


@aio
async def test_cli_bulk_copy_on_the_dc_problems_per_row_and_the_clean_rows_bind(dc_cli, dc_directory, tmp_path, request):
    template = await make_user(dc_directory)
    last = bulk_names()
    domain = template.source.default_domain
    created = [f"ann.{last.lower()}a@{domain}", f"bob.{last.lower()}b@{domain}", f"fay.{last.lower()}f@{domain}"]
    csv_file = tmp_path / "copies.csv"
    csv_file.write_text(
        "Template,First,Last,Username,UPN,Email,Services\n"
        f"{template.upn},Ann,{last}a,,,,\n"
        f"{template.upn},Bob,{last}b,bb{last.lower()},,,exchange\n"
        f"nobody@{domain},Cat,{last}c,,,,\n"
        f"{template.sam},Ann,{last}a,,,,\n"
        f"{template.upn},Dan,{last}d,,{template.upn},,\n"
        f"{template.upn},Eve,{last}e,bb{last.lower()},,,\n",
        encoding="utf-8")
    try:
        before = await snapshot(dc_directory, template.source)
        dry = dc_cli("copy", "--csv", str(csv_file), "--dry-run")
        assert dry.returncode == 3, dry.stderr
        assert "row 3 (Cat" in dry.stderr and "row 4 (Ann" in dry.stderr and "repeats row 1 (Ann" in dry.stderr
        assert "Dry run: nothing was written." in dry.stderr and await snapshot(dc_directory, template.source) == before

        ran = dc_cli("copy", "--csv", str(csv_file), "--generate-password", "--yes", "--json", "--concurrency", "2")
        assert ran.returncode == 4, ran.stderr  # not every row created; nothing left unfinished
        out = json.loads(ran.stdout)
        assert out["kind"] == "copy" and [r["status"] for r in out["rows"]] == ["done", "done"] + ["refused"] * 4
        codes = [[x["code"] for x in r["problems"]] for r in out["rows"]]
        assert codes == [[], [], [UNKNOWN], [DUPLICATE], [p.COLLISION], [p.COLLISION]]
        assert template.upn in out["rows"][4]["problems"][0]["message"] and "row 2 (Bob" in out["rows"][5]["problems"][0]["message"]
        assert [r["upn"] for r in out["rows"][:2]] == created[:2]
        # the check after the batch: each done row's writes on the one DC, no duplicate
        assert out["duplicates"] == [] and [r.get("duplicates") for r in out["rows"]] == [[], []] + [None] * 4
        assert [r.get("replicated") for r in out["rows"][:3]] == [{"holding": 1, "dcs": 1, "missing": []}] * 2 + [None]
        passwords = [r.get("password") for r in out["rows"]]
        assert all(passwords[:2]) and passwords[2:] == [None] * 4 and passwords[0] != passwords[1]
        for upn, password in zip(created, passwords[:2]):
            new = await dc_directory.user(upn)
            assert new.enabled and set(new.roles) == {"Customer Administrator", EXTRA_ROLE}
            bind_check(request, dc_directory, upn, password)
        assert set((await dc_directory.user(created[1])).services) == {"exchange"}
        with Journal(tmp_path / "state" / "journal.sqlite3") as journal:
            assert len(journal.batch_jobs(out["batch"])) == 2  # the clean rows only
        assert all(state_files_hold(tmp_path / "state", password) == [] for password in passwords[:2])

        # one password for every row from stdin: the row whose name it holds is refused
        password = f"Xq9!{last}g-77"
        one_file = tmp_path / "one.csv"
        one_file.write_text(f"template,first,last\n{template.upn},Fay,{last}f\n{template.upn},Gus,{last}g\n", encoding="utf-8")
        shared = dc_cli("copy", "--csv", str(one_file), "--password-stdin", "--yes", stdin=password + "\n")
        assert shared.returncode == 4, shared.stderr
        assert re.search(r"✗ row 2 \(Gus .*part of the user's name", shared.stdout + shared.stderr)
        assert password not in shared.stdout + shared.stderr
        assert "Done rows, replicated to 1 of 1 domain controller." in shared.stderr and "duplicate" not in shared.stderr
        bind_check(request, dc_directory, created[2], password)
        assert state_files_hold(tmp_path / "state", password) == []
    finally:
        await remove_upns(dc_directory, created)
        await remove_user(dc_directory, template)


@aio
async def test_cli_bulk_copy_on_the_demo(demo_cli, tmp_path):
    users = json.loads(demo_cli("users", SOURCE, "--json").stdout)
    template = next(u for u in users if {"exchange", "ocs"} <= set(u["services"]))
    csv_file = tmp_path / "copies.csv"
    csv_file.write_bytes(("\ufefftemplate,first,last,services,plans\n"  # with the BOM spreadsheets write
                          f"{template['upn']},Zoé,Quint,exchange;ocs,\n"
                          f"{template['upn']},Yann,Pram,none,\n"
                          f"{template['upn']},Zoé,Quint,exchange;ocs,\n").encode("utf-8"))
    ran = demo_cli("copy", "--csv", str(csv_file), "--generate-password", "--yes")
    assert ran.returncode == 4, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0].endswith("2 of 3 row(s) created.")
    assert re.match(r"  ✓ row 1 \(Zoé Quint\): UPN zoe\.quint@\S+, email zoe\.quint@\S+, password \S{20}$", lines[1]), lines
    assert re.match(r"  ✓ row 2 \(Yann Pram\): UPN yann\.pram@\S+, password \S{20}$", lines[2]), lines  # no Exchange: no email
    assert "repeats row 1" in lines[3] and "shown once" in ran.stderr
    no_password = demo_cli("copy", "--csv", str(csv_file), "--yes")
    assert no_password.returncode == 2 and "--password-stdin or --generate-password" in no_password.stderr
    single_options = demo_cli("copy", "--csv", str(csv_file), "--first", "X", "--yes", "--generate-password")
    assert single_options.returncode == 2 and "--first is for a copy of one user" in single_options.stderr


# -- hostile CSV input: one sentence, nothing written ------------------------------------------


HOSTILE = {
    "missing column": ("template,first\nx@y.example,Ann\n", "has no 'last' column"),
    "unknown column": ("template,first,last,password\nx@y.example,Ann,Lee,secret\n", "unknown column 'password'"),
    "repeated column": ("template,first,last,First\nx@y.example,Ann,Lee,Bo\n", "'first' appears more than once"),
    "empty file": ("", "is empty"),
    "blank header": ("\n\n", "is empty"),
    "header only": ("template,first,last\n", "has a header but no rows"),
    "empty required cell": ("template,first,last\nx@y.example,,Lee\n", "row 1: the 'first' cell is empty"),
    "row longer than header": ("template,first,last\nx@y.example,Ann,Lee,extra\n", "row 1: 4 cells, but the header has 3"),
    "huge field": ("template,first,last\nx@y.example,Ann," + "L" * 5000 + "\n", "longer than 1024 characters"),
    "field over the csv limit": ("template,first,last\nx@y.example,Ann,\"" + "L" * 200_000 + "\"\n", "not a CSV file"),
    "formula": ("template,first,last\nx@y.example,\"=cmd|' /C calc'!A0\",Lee\n", "starts with '=', which a spreadsheet would run"),
    "formula plus": ("template,first,last\nx@y.example,Ann,+SUM(1)\n", "starts with '+'"),
    "formula at": ("template,first,last\nx@y.example,@Ann,Lee\n", "starts with '@'"),
    "NUL byte": ("template,first,last\nx@y.example,A\x00nn,Lee\n", "holds a control character"),
    "escape sequence": ("template,first,last\nx@y.example,\x1b[31mAnn,Lee\n", "holds a control character"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_csv_stops_with_one_sentence(case, tmp_path):
    from core.bulk_csv import copy_requests
    from core.errors import UsageError

    text, fragment = HOSTILE[case]
    path = tmp_path / "rows.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        copy_requests(path)
    message = str(caught.value)
    assert fragment in message and "\n" not in message and len(message) < 400, message


def test_bad_encoding_and_missing_file(tmp_path):
    from core.bulk_csv import copy_requests, move_requests
    from core.errors import UsageError

    latin = tmp_path / "latin.csv"
    latin.write_bytes("template,first,last\nx@y.example,Zoé,Lee\n".encode("latin-1"))
    with pytest.raises(UsageError, match=r"not UTF-8 text \(line 2, byte 35\)"):
        copy_requests(latin)
    with pytest.raises(UsageError, match="Cannot read .*No such file"):
        move_requests(tmp_path / "nothing.csv", "Globex Corporation")
    bom = tmp_path / "bom.csv"
    bom.write_bytes("\ufeffUser, UPN ,e-mail\nann@x.example,,\n".replace("e-mail", "email").encode("utf-8"))
    assert [(label, r.user, r.upn) for label, r in move_requests(bom, "Globex Corporation")] == [("row 1 (ann@x.example)", "ann@x.example", None)]


@pytest.mark.parametrize("command", ["copy", "move"])
def test_cli_hostile_csv_writes_nothing(command, demo_cli, tmp_path):
    path = tmp_path / "rows.csv"
    header = "template,first,last" if command == "copy" else "user"
    path.write_text(f"{header}\n\"=HYPERLINK(\"\"http://x\"\")\"{',Ann,Lee' if command == 'copy' else ''}\n", encoding="utf-8")
    extra = ["--to", "Globex Corporation"] if command == "move" else ["--generate-password"]
    result = demo_cli(command, "--csv", str(path), "--yes", *extra)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "formula" in lines[0] and "Traceback" not in result.stderr
    latin = tmp_path / "latin.csv"
    latin.write_bytes(f"{header}\nZoé{',Ann,Lee' if command == 'copy' else ''}\n".encode("latin-1"))
    result = demo_cli(command, "--csv", str(latin), "--yes", *extra)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and "UTF-8" in result.stderr
    assert demo_cli("jobs", "--json").stdout.strip() == "[]"


@aio
async def test_a_cancel_reaches_the_rows_that_carry_a_password(session):
    """Each row's password is kept apart by the one executor, so the operator's cancel
    stops a copy row held mid-job (rolled back to no account) and the next row never starts."""
    directory = session.directory
    template = await make_user(directory)
    last = bulk_names()
    reached, release = asyncio.Event(), asyncio.Event()

    async def hold(index, step) -> None:
        if step.action == p.ADD_MEMBER:  # the account exists, disabled, with its password
            reached.set()
            await release.wait()

    executor = session.executor(before_step=hold)
    try:
        bulk = BulkCopy(session.copier(), executor)
        plan = await bulk.preflight(session.operator, [("h", CopyRequest(template.upn, "Hal", last + "h")),
                                                        ("i", CopyRequest(template.upn, "Ivy", last + "i"))])
        passwords = await bulk.generate_passwords(plan)
        results: dict = {}

        async def consume():
            async for _ in bulk.run(plan, session.operator, concurrency=1, results=results, passwords=passwords):
                pass

        task = asyncio.create_task(consume())
        await asyncio.wait_for(reached.wait(), timeout=60)
        executor.cancel()
        release.set()
        await asyncio.wait_for(task, timeout=60)
        assert (results["h"].status, results["h"].message) == ("rolled_back", CANCELLED)
        assert results["i"].status in ("refused", "failed") and CANCELLED in results["i"].message
        for first in ("hal", "ivy"):
            assert not await directory.conflicts(upn=f"{first}.{last.lower()}{first[0]}@{template.source.default_domain}")
    finally:
        await remove_user(directory, template)
