"""A move whose process is SIGKILLed mid-way leaves a job that `resume` finishes or
`rollback` undoes — real processes, the real Samba DC."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from core.journal import Journal, JobStatus, StepState
from directory_fixtures import PASSWORD_ENV
from move_fixtures import DESTINATION, make_user, remove_user, snapshot

pytestmark = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parent.parent


def run(*argv: str, state: Path, password: str) -> subprocess.CompletedProcess:
    env = {**os.environ, PASSWORD_ENV: password, "TENANTRY_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, env=env, timeout=180)


def kill_mid_move(config: Path, state: Path, password: str, user: str, index: int, when: str) -> str:
    result = run("tests/kill_mid_move.py", str(config), str(state), user, DESTINATION, str(index), when, state=state, password=password)
    assert result.returncode == -signal.SIGKILL, result.stderr
    with Journal(state / "journal.sqlite3") as journal:
        job = journal.jobs()[0]
    assert job.status == JobStatus.RUNNING
    assert job.steps[index].state == StepState.RUNNING
    return job.id


async def test_killed_after_a_write_then_resumed(dc_directory, dc_config_file, sp_password, tmp_path):
    user = await make_user(dc_directory)
    try:
        # Step 2 (the move DN) is performed, then the process dies before journaling it.
        job = kill_mid_move(dc_config_file, tmp_path, sp_password, user.upn, 1, "after")
        assert not await dc_directory.exists(user.dn)  # it really moved
        result = run("-m", "cli", "resume", job, "--config", str(dc_config_file), state=tmp_path, password=sp_password)
        assert result.returncode == 0, result.stderr
        with Journal(tmp_path / "journal.sqlite3") as journal:
            finished = journal.job(job)
        assert finished.status == JobStatus.DONE
        assert all(s.state == StepState.DONE for s in finished.steps)
        moved = await dc_directory.user(user.sam)
        assert moved.customer_dn and "Globex Corporation" in moved.customer_dn
        assert set(moved.roles) == {"Customer Administrator", "Billing Contact"}
        assert moved.upn.endswith(user.destination.default_domain)
    finally:
        await remove_user(dc_directory, user)


async def test_killed_before_a_step_then_rolled_back(dc_directory, dc_config_file, sp_password, tmp_path):
    user = await make_user(dc_directory)
    try:
        before = await snapshot(dc_directory, user.source, user.destination)
        job = kill_mid_move(dc_config_file, tmp_path, sp_password, user.upn, 4, "before")
        assert await snapshot(dc_directory, user.source, user.destination) != before
        result = run("-m", "cli", "rollback", job, "--config", str(dc_config_file), state=tmp_path, password=sp_password)
        assert result.returncode == 0, result.stderr
        assert await snapshot(dc_directory, user.source, user.destination) == before
        with Journal(tmp_path / "journal.sqlite3") as journal:
            assert journal.job(job).status == JobStatus.ROLLED_BACK
        again = run("-m", "cli", "resume", job, "--config", str(dc_config_file), state=tmp_path, password=sp_password)
        assert again.returncode == 3 and "rolled_back" in again.stderr
    finally:
        await remove_user(dc_directory, user)


async def test_journal_audit_and_logs_never_hold_the_password(tmp_path, sp_password):
    """Every file the previous jobs wrote in their state dirs is free of the bind password."""
    state = tmp_path.parent
    secret = sp_password.encode()
    for path in state.rglob("*"):
        if path.is_file():
            assert secret not in path.read_bytes(), path
