"""A bulk move whose process is SIGKILLed mid-way — some rows done, some running, the
others still planned — is finished by ``tenantry resume BATCH`` (every row exactly
once) or undone by ``tenantry rollback BATCH``: real processes, the real Samba DC."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from core.audit import Audit
from core.directory import ops
from core.directory.layout import dn_key
from core.journal import JobStatus, Journal
from directory_fixtures import PASSWORD_ENV
from move_fixtures import DESTINATION, EXTRA_ROLE, VOLATILE, make_user, remove_user

pytestmark = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parent.parent
USERS = 12
CONCURRENCY = 3
DONE_ROWS = 4  # rows finished before the kill


def run(*argv: str, state: Path, password: str) -> subprocess.CompletedProcess:
    env = {**os.environ, PASSWORD_ENV: password, "TENANTRY_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def cli(config: Path, state: Path, password: str, *args: str) -> subprocess.CompletedProcess:
    return run("-m", "cli", *args, "--config", str(config), state=state, password=password)


def kill_mid_batch(config: Path, state: Path, password: str, users) -> tuple[str, list]:
    result = run("tests/kill_mid_batch.py", str(config), str(state), DESTINATION, str(CONCURRENCY), str(DONE_ROWS),
                 *[u.upn for u in users], state=state, password=password)
    assert result.returncode == -signal.SIGKILL, result.stderr
    batch = result.stdout.split()[0]
    with Journal(state / "journal.sqlite3") as journal:
        jobs = journal.batch_jobs(batch)
    statuses = Counter(job.status for job in jobs)
    assert len(jobs) == USERS, statuses  # every row was journaled before the first write
    assert set(statuses) == {JobStatus.DONE, JobStatus.RUNNING, JobStatus.PLANNED}, statuses
    assert statuses[JobStatus.DONE] >= DONE_ROWS
    return batch, jobs


async def user_state(directory, dn: str) -> dict:
    """Every attribute of the user (memberships included), without replication metadata."""
    entry = await directory.pool.run(lambda c: ops.read(c, dn, ["*", "memberOf"]))
    assert entry is not None, dn
    return {k.casefold(): sorted(map(str, v)) for k, v in entry.attributes.items() if k.casefold() not in VOLATILE}


def under(dn: str, customer) -> bool:
    key, top = dn_key(dn), dn_key(customer.dn)
    return key[-len(top):] == top


async def test_a_killed_batch_is_resumed_and_every_row_moves_exactly_once(dc_directory, dc_config_file, sp_password, tmp_path):
    users = [await make_user(dc_directory) for _ in range(USERS)]
    try:
        batch, jobs = kill_mid_batch(dc_config_file, tmp_path, sp_password, users)
        listing = cli(dc_config_file, tmp_path, sp_password, "jobs")
        assert f"batch {batch}  unfinished" in listing.stdout and f"{USERS} rows:" in listing.stdout, listing.stdout
        assert {j["batch"] for j in json.loads(cli(dc_config_file, tmp_path, sp_password, "jobs", "--json").stdout)} == {batch}

        resumed = cli(dc_config_file, tmp_path, sp_password, "resume", batch, "--concurrency", str(CONCURRENCY), "--json")
        assert resumed.returncode == 0, resumed.stderr
        out = json.loads(resumed.stdout)
        assert out["status"] == "done" and [r["status"] for r in out["rows"]] == ["done"] * USERS

        with Journal(tmp_path / "journal.sqlite3") as journal:
            after = journal.batch_jobs(batch)
        assert [j.id for j in after] == [j.id for j in jobs]  # the same jobs: none added, none lost
        assert all(j.status == JobStatus.DONE and all(s.state.value == "done" for s in j.steps) for j in after)
        with Audit(tmp_path / "audit.sqlite3") as audit:
            done = Counter(e.job for e in audit.entries(limit=1000) if e.result == "done")
        assert done == {j.id: 1 for j in jobs}  # each row finished exactly once

        destination = users[0].destination
        for user in users:
            moved = await dc_directory.user(user.sam)
            assert dn_key(moved.customer_dn) == dn_key(destination.dn)
            assert moved.upn.endswith("@" + destination.default_domain) and moved.email.endswith("@" + destination.default_domain)
            assert [a for a in moved.proxy_addresses if a.startswith("SMTP:")] == [f"SMTP:{moved.email}"]
            assert not any(user.source.owns_domain(a.rsplit("@", 1)[-1]) for a in moved.proxy_addresses if "@" in a)
            assert any(a.startswith("X500:") and a.endswith(f"/cn=mover{user.number}") for a in moved.proxy_addresses)
            assert moved.sip and moved.sip.endswith("@" + destination.default_domain)
            assert set(moved.roles) == {"Customer Administrator", EXTRA_ROLE} and set(moved.services) == {"exchange", "ocs"}
            groups = [dn_key(g) for g in moved.groups]
            assert len(groups) == len(set(groups)) and all(under(g, destination) for g in moved.groups)
            assert not any(under(g, user.source) for g in moved.groups)
        roles = await dc_directory.pool.run(
            lambda c: ops.search(c, dc_directory.layout.roles_dn(destination.dn), f"(cn={EXTRA_ROLE})", "one", ["member"]))
        assert len(roles) == 1 and len(roles[0].attributes["member"]) == USERS
    finally:
        for user in users:
            await remove_user(dc_directory, user)


async def test_a_killed_batch_is_rolled_back_and_every_unfinished_row_is_restored(dc_directory, dc_config_file, sp_password, tmp_path):
    users = [await make_user(dc_directory) for _ in range(USERS)]
    try:
        before = {user.upn: await user_state(dc_directory, user.dn) for user in users}
        batch, jobs = kill_mid_batch(dc_config_file, tmp_path, sp_password, users)
        done = {job.users[0] for job in jobs if job.status == JobStatus.DONE}

        rolled = cli(dc_config_file, tmp_path, sp_password, "rollback", batch, "--json")
        assert rolled.returncode == 0, rolled.stderr
        out = json.loads(rolled.stdout)
        assert out["status"] == "rolled_back"
        assert {r["user"]: r["status"] for r in out["rows"]} == {u.upn: "done" if u.upn in done else "rolled_back" for u in users}
        with Journal(tmp_path / "journal.sqlite3") as journal:
            after = journal.batch_jobs(batch)
        assert not [j for j in after if not j.is_finished]
        for user in users:
            if user.upn in done:  # a finished row stays finished
                assert dn_key((await dc_directory.user(user.sam)).customer_dn) == dn_key(user.destination.dn)
            else:  # the running and the planned rows: exactly as before the batch
                assert await user_state(dc_directory, user.dn) == before[user.upn], user.upn

        again = cli(dc_config_file, tmp_path, sp_password, "resume", batch)
        assert again.returncode == 3 and "finished" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    finally:
        for user in users:
            await remove_user(dc_directory, user)
