"""Hole 8 of issue 13: the console's ``--demo`` keeps its jobs and audit in the demo
folder of the state directory, as the subcommands do, and a demo job is resumed or
rolled back only on the in-memory demo directory it ran on — never on a fresh one after
a restart (it would "finish" a move whose first half is gone), nor is a real job ever
run on the demo.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.demo.directory import open_demo
from core.execute import Refused
from core.move import MoveRequest
from core.session import Session
from core.state import demo_state_dir
from move_fixtures import DESTINATION, make_user, snapshot
from test_journal import new_job
from cli import main as cli
from tui.app import TenantryApp

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def state(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TENANTRY_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_the_console_with_demo_uses_the_demo_state_folder(state, monkeypatch):
    """``tenantry --demo``, through the real entry point, up to the app it would run."""
    ran = []
    monkeypatch.setattr(TenantryApp, "run", lambda self, **kwargs: ran.append(self))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)  # as on the admin's terminal
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert cli.main(["--demo"]) == 0
    assert ran[0].state == state / "demo"


@pytest.mark.asyncio(loop_scope="session")
async def test_the_console_journals_and_audits_a_demo_move_in_the_demo_folder(state):
    args = cli.build_parser().parse_args(["--demo"])
    app = TenantryApp.for_command_line(args, None, open_demo, state=cli._state(args))
    async with app.run_test(size=(80, 24)):
        session = await app.wait_for_session()
        user = await make_user(session.directory)
        plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
        events = [e async for e in session.executor().run(plan, session.operator)]
        assert events[-1].status == "done"
        assert session.journal.path == state / "demo" / "journal.sqlite3"
        assert session.audit.path == state / "demo" / "audit.sqlite3"
    assert not (state / "journal.sqlite3").exists() and not (state / "audit.sqlite3").exists()


SEED_USER, SEED_DESTINATION = "ana.hall2@fabrikam.example", "Contoso Pharmaceuticals"  # in every fresh demo


async def planned_demo_job(folder: Path) -> str:
    """A demo move of a seed user journaled (planned, as a bulk row is) by one demo process."""
    directory = await open_demo()
    session = await Session.open(directory, state=folder)
    try:
        plan = await session.planner().preflight(session.operator, MoveRequest(SEED_USER, SEED_DESTINATION))
        assert plan.ok, plan.problems
        (job,) = await session.executor().record([(plan, {})], session.operator)
        return job
    finally:
        await session.close()


@pytest.mark.asyncio(loop_scope="session")
async def test_a_demo_job_is_refused_on_a_fresh_demo_directory(state):
    folder = demo_state_dir()
    job = await planned_demo_job(folder)
    restarted = await open_demo()  # the next run: a fresh in-memory directory, the same seed user unmoved
    session = await Session.open(restarted, state=folder)
    try:
        before = await session.directory.user(SEED_USER)
        source, destination = await session.directory.customer("fabrikam.example"), await session.directory.customer(SEED_DESTINATION)
        snapshot_before = await snapshot(session.directory, source, destination)
        for attempt in (session.executor().resume(job, session.operator), session.executor().rollback(job, session.operator)):
            with pytest.raises(Refused, match="ran on an earlier demo directory, which lived in memory and is gone"):
                [e async for e in attempt]
        assert await session.directory.user(SEED_USER) == before
        assert await snapshot(session.directory, source, destination) == snapshot_before
        assert session.journal.job(job).status.value == "planned"
    finally:
        await session.close()


@pytest.mark.asyncio(loop_scope="session")
async def test_a_demo_resume_after_a_restart_is_one_sentence_on_the_command_line(state):
    job = await planned_demo_job(demo_state_dir())
    for command in ("resume", "rollback"):
        result = subprocess.run([sys.executable, "-m", "cli", command, job, "--demo"], capture_output=True,
                                text=True, cwd=ROOT, timeout=120)
        assert result.returncode == 3, result.stderr
        assert result.stderr.strip().splitlines() == [
            f"tenantry: Job {job} ran on an earlier demo directory, which lived in memory and is gone: "
            "it can be neither resumed nor rolled back; nothing was done."]


@pytest.mark.asyncio(loop_scope="session")
async def test_a_real_job_is_never_run_on_the_demo(state):
    from core.journal import Journal

    folder = demo_state_dir()
    with Journal(folder / "journal.sqlite3") as journal:
        job = new_job(journal)  # as an older Tenantry's console left it in the real journal
    directory = await open_demo()
    session = await Session.open(directory, state=folder)
    try:
        with pytest.raises(Refused, match="ran on a real directory, not on this demo one"):
            [e async for e in session.executor().resume(job, session.operator)]
    finally:
        await session.close()
