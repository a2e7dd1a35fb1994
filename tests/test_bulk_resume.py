"""A batch's rows are journaled before its first write and resumed as a whole: a planned
row started later is checked against a fresh read of its user, and a copy whose password
step has not run needs the password again (it is never kept) — demo and real DC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.batch import Batch
from core.bulk import BulkCopy, BulkMove
from core.copy import CopyRequest
from core.escape import child_dn
from core.journal import JobStatus
from core.move import MoveRequest
from core.session import Session
from directory_fixtures import PASSWORD_ENV
from move_fixtures import DESTINATION, make_user, remove_user
from test_bulk import session  # noqa: F401 -- the fixture, on the demo and the DC
from test_bulk_copy import bulk_names, remove_upns
from test_copy import bind_check, new_password
from test_copy_cli import state_files_hold

aio = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parent.parent


async def run_all(events) -> list:
    return [e async for e in events]


@aio
async def test_a_planned_row_started_later_never_writes_over_a_user_changed_since(session):
    """Rows journaled, then their users changed before they start: a change in nothing
    the row writes (a title) is planned again and runs at once, saying so; a change the
    row writes over (a new alias in the source's domain) is planned again and refused
    once, naming what changed, nothing written — the next resume runs the new plan."""
    directory = session.directory
    users = [await make_user(directory) for _ in range(3)]
    try:
        bulk = BulkMove(session.planner(), session.executor())
        plan = await bulk.preflight(session.operator, [(u.upn, MoveRequest(u.upn, DESTINATION)) for u in users])
        assert plan.ok
        # The batch is journaled as `run` does it, then the process goes away before any row starts.
        jobs = [row.job for row in await bulk.record(plan, session.operator)]
        assert [session.journal.job(j).status for j in jobs] == [JobStatus.PLANNED] * 3
        retitled, aliased = users[0], users[1]
        await directory.modify(retitled.dn, {"title": (["Tester"], ["Changed since the plan"])})
        alias = f"smtp:late.alias{aliased.number}@{aliased.source.default_domain}"
        proxies = (await directory.values(aliased.dn, ["proxyAddresses"]))["proxyAddresses"]
        await directory.modify(aliased.dn, {"proxyAddresses": (proxies, proxies + [alias])})
        old_steps = [s.spec for s in session.journal.job(jobs[1]).steps]

        results, events = {}, []
        async for item in Batch.load(session.journal, plan.batch).resume(session.executor(), session.operator, results=results):
            events.append(item)
        assert {label: r.status for label, r in results.items()} == {retitled.upn: "done", aliased.upn: "refused", users[2].upn: "done"}
        replanned = [e.event.message for e in events if e.event.kind == "replanned"]
        assert replanned == [f"{retitled.upn} changed since the plan was made, in nothing this job writes: planned again, the same steps"]
        message = results[aliased.upn].message
        assert "changed since the plan was made; nothing was written; it is planned again on a fresh read (" in message
        assert f"proxyAddresses of {aliased.dn} was " in message and alias in message and "resume it to run the new plan" in message
        # nothing was written, and the row stays resumable on its new plan (or can be rolled back): never `failed`
        record = session.journal.job(jobs[1])
        assert record.status == JobStatus.PLANNED and [s.spec for s in record.steps] != old_steps
        assert alias in (await directory.values(aliased.dn, ["proxyAddresses"]))["proxyAddresses"]
        audit = [e for e in session.audit.entries() if e.job == jobs[1]]
        assert [e.result for e in audit] == ["planned"] and alias in audit[0].detail

        results = {}
        await run_all(Batch.load(session.journal, plan.batch).resume(session.executor(), session.operator, results=results))
        assert {label: r.status for label, r in results.items()} == {u.upn: "done" for u in users}
        moved = await directory.user(record.meta["users"][0]["dn_after"])
        assert alias.split(":", 1)[1] not in " ".join(moved.proxy_addresses)  # left with the source's domain
        assert (await directory.values(moved.dn, ["title"]))["title"] == ["Tester"]
        retitled_now = await directory.user(session.journal.job(jobs[0]).meta["users"][0]["dn_after"])
        assert (await directory.values(retitled_now.dn, ["title"]))["title"] == ["Changed since the plan"]
    finally:
        for user in users:
            await remove_user(directory, user)


@aio
async def test_a_planned_row_whose_user_is_gone_cannot_be_planned_again_and_says_so(session):
    directory = session.directory
    user = await make_user(directory)
    try:
        bulk = BulkMove(session.planner(), session.executor())
        plan = await bulk.preflight(session.operator, [(user.upn, MoveRequest(user.upn, DESTINATION))])
        (row,) = await bulk.record(plan, session.operator)
        await directory.delete(user.dn)
        results = {}
        await run_all(Batch.load(session.journal, plan.batch).resume(session.executor(), session.operator, results=results))
        message = results[user.upn].message
        assert results[user.upn].status == "refused" and "a fresh plan of it is refused: No user" in message and "Roll it back." in message
        assert session.journal.job(row.job).status == JobStatus.PLANNED
        await run_all(Batch.load(session.journal, plan.batch).rollback(session.executor(), session.operator))
        assert session.journal.job(row.job).status == JobStatus.ROLLED_BACK
    finally:
        await remove_user(directory, user)


@aio
async def test_a_batch_of_planned_rows_rolled_back_writes_nothing(session):
    directory = session.directory
    users = [await make_user(directory) for _ in range(2)]
    try:
        bulk = BulkMove(session.planner(), session.executor())
        plan = await bulk.preflight(session.operator, [(u.upn, MoveRequest(u.upn, DESTINATION)) for u in users])
        await bulk.record(plan, session.operator)
        results = {}
        await run_all(Batch.load(session.journal, plan.batch).rollback(session.executor(), session.operator, results=results))
        assert {r.status for r in results.values()} == {"rolled_back"}
        assert all([await directory.exists(u.dn) for u in users])
        assert [j.status for j in Batch.load(session.journal, plan.batch).jobs] == [JobStatus.ROLLED_BACK] * 2
    finally:
        for user in users:
            await remove_user(directory, user)


async def interrupted_copy_batch(session, template, last: str):
    """A bulk copy of three users stopped after its first row finished (the others
    running or planned): the batch, and the generated passwords it was given."""
    bulk = BulkCopy(session.copier(), session.executor())
    plan = await bulk.preflight(session.operator, [(name, CopyRequest(template.upn, name, last + name[0].lower()))
                                                   for name in ("Ivy", "Jon", "Kim")])
    assert plan.ok, [row.plan.problems for row in plan.refused]
    passwords = await bulk.generate_passwords(plan)
    events = bulk.run(plan, session.operator, concurrency=1, passwords=passwords)
    async for item in events:
        if item.event.kind == "job_finished":
            break
    await events.aclose()  # the process stops here
    batch = Batch.load(session.journal, plan.batch)
    assert batch.jobs[0].status == JobStatus.DONE and len(batch.unfinished) == 2
    assert "Kim" in {j.meta["row"] for j in batch.needing_password()}
    return batch, passwords


@aio
async def test_a_copy_batch_resumed_needs_the_passwords_again(session, request):
    directory = session.directory
    template = await make_user(directory)
    last = bulk_names()
    upns = [f"{name.lower()}.{last.lower()}{name[0].lower()}@{template.source.default_domain}" for name in ("Ivy", "Jon", "Kim")]
    try:
        batch, passwords = await interrupted_copy_batch(session, template, last)
        needing = {j.meta["row"] for j in batch.needing_password()}
        results = {}
        await run_all(batch.resume(session.executor(), session.operator, results=results))  # no password given
        assert {label for label, r in results.items() if r.status == "failed" and "password" in r.message} == needing
        assert not await directory.exists(child_dn("CN", f"Kim {last}k", directory.layout.users_dn(template.source.dn)))

        batch = Batch.load(session.journal, batch.id)
        assert set((await batch.password_problems(session.copier(), "weak")).keys()) == needing
        again = await batch.generate_passwords(session.copier())
        assert set(again) == needing
        results = {}
        await run_all(batch.resume(session.executor(), session.operator, results=results, passwords=again))
        assert {r.status for r in results.values()} == {"done"}
        for name, upn in zip(("Ivy", "Jon", "Kim"), upns):
            new = await directory.user(upn)
            assert new.enabled
            bind_check(request, directory, upn, again.get(name) or passwords[name])
    finally:
        await remove_upns(directory, upns)
        await remove_user(directory, template)


@aio
async def test_cli_resume_of_a_copy_batch_reads_one_password_for_every_row(dc_directory, dc_config_file, sp_password, tmp_path, request):
    template = await make_user(dc_directory)
    last = bulk_names()
    upns = [f"{name.lower()}.{last.lower()}{name[0].lower()}@{template.source.default_domain}" for name in ("Ivy", "Jon", "Kim")]
    state = tmp_path / "state"
    session = await Session.open(dc_directory, state=state)
    env = {**os.environ, PASSWORD_ENV: sp_password, "TENANTRY_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli", *args, "--config", str(dc_config_file)], input=stdin,
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)

    try:
        batch, passwords = await interrupted_copy_batch(session, template, last)
        without = cli("resume", batch.id)
        assert without.returncode == 2 and "never kept" in without.stderr and len(without.stderr.strip().splitlines()) == 1
        weak = cli("resume", batch.id, "--password-stdin", stdin=f"Qq1-{last}k-Zz9\n")  # holds Kim's last name
        assert weak.returncode == 3 and "Kim" in weak.stderr and "part of the user's name" in weak.stderr
        assert len(Batch.load(session.journal, batch.id).unfinished) == 2  # nothing was started
        password = new_password()
        resumed = cli("resume", batch.id, "--password-stdin", "--json", stdin=password + "\n")
        assert resumed.returncode == 0, resumed.stderr
        assert password not in resumed.stdout + resumed.stderr
        needing = {j.meta["row"] for j in batch.needing_password()}
        for name, upn in zip(("Ivy", "Jon", "Kim"), upns):
            bind_check(request, dc_directory, upn, password if name in needing else passwords[name])
        assert all(state_files_hold(state, secret) == [] for secret in [password, *passwords.values()])
    finally:
        session.journal.close()
        session.audit.close()
        await remove_upns(dc_directory, upns)
        await remove_user(dc_directory, template)


@aio
async def test_cli_resume_shows_what_changed_and_runs_the_new_plan_next_time(dc_directory, dc_config_file, sp_password, tmp_path):
    """`tenantry resume BATCH` on a row whose user changed in what the row writes: the row
    is planned again and stderr names the change; the row waiting for it (the role group
    it creates) stays planned too; exit 5, nothing written. The next `resume BATCH` runs
    the new plan, then the waiting row (exit 0)."""
    users = [await make_user(dc_directory) for _ in range(2)]
    state = tmp_path / "state"
    session = await Session.open(dc_directory, state=state)
    env = {**os.environ, PASSWORD_ENV: sp_password, "TENANTRY_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli", *args, "--config", str(dc_config_file)],
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)

    try:
        bulk = BulkMove(session.planner(), session.executor())
        plan = await bulk.preflight(session.operator, [(u.upn, MoveRequest(u.upn, DESTINATION)) for u in users])
        await bulk.record(plan, session.operator)
        changed = users[0]
        alias = f"smtp:late.alias{changed.number}@{changed.source.default_domain}"
        proxies = (await dc_directory.values(changed.dn, ["proxyAddresses"]))["proxyAddresses"]
        await dc_directory.modify(changed.dn, {"proxyAddresses": (proxies, proxies + [alias])})
        first = cli("resume", plan.batch)
        said = first.stdout + first.stderr
        assert first.returncode == 5, said  # both rows left to resume: nothing was written
        assert "planned again on a fresh read (proxyAddresses of" in said and alias in said and "Traceback" not in said
        # the other row waits for the changed one (which creates the role group both join): planned, not rolled back
        assert "which is planned; nothing was written: resume it once that row is done" in said
        assert {j.status for j in Batch.load(session.journal, plan.batch).jobs} == {JobStatus.PLANNED}
        second = cli("resume", plan.batch, "--json")
        assert second.returncode == 0, second.stdout + second.stderr
        assert {r["status"] for r in json.loads(second.stdout)["rows"]} == {"done"}
    finally:
        session.journal.close()
        session.audit.close()
        for user in users:
            await remove_user(dc_directory, user)
