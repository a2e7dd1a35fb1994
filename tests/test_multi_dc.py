"""All-or-nothing on a replicated directory (issue 9), on two real replicating Samba DCs:
a job is pinned to one DC, its change check holds on every DC, and it is resumed or
rolled back on another DC only where its writes provably are — with real SIGKILLs of
the mover and of a DC, and a DC frozen with SIGSTOP. Every case ends with replication
forced both ways and the state checked on BOTH DCs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_asyncio

from core.config import load
from core.directory import connect
from core.escape import parent_dn, rdn_value
from core.directory.layout import dn_key
from core.errors import DirectoryError
from core.execute import Event, Refused
from core.journal import Journal, JobStatus, StepState
from core.move import MoveRequest
from core.session import Session
from directory_fixtures import PASSWORD_ENV, operator
from move_fixtures import DESTINATION, make_user, remove_user, snapshot

pytestmark = [pytest.mark.dc, pytest.mark.asyncio(loop_scope="session")]
ROOT = Path(__file__).resolve().parent.parent
# Attributes each DC keeps for itself (never replicated): they differ between DCs.
NOT_REPLICATED = {"usncreated", "badpwdcount", "badpasswordtime", "lastlogon", "lastlogoff", "logoncount"}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def pair_password(samba_pair) -> str:
    info = samba_pair.info().dc1
    return info.operator_passwords[operator(info, "sp_admin").name]


@pytest_asyncio.fixture(loop_scope="session")
async def pair(samba_pair, pair_config_file, pair_password):
    """The pair, both DCs running and in step; afterwards restored so (whatever the test did)."""
    samba_pair.replicate()
    yield samba_pair
    for dc in samba_pair.dcs:
        dc.thaw()
        dc.restart()  # after a crash
    for dc in samba_pair.dcs:
        samba_pair.release(dc)
    samba_pair.replicate()


@pytest_asyncio.fixture(loop_scope="session")
async def directory(pair, pair_config_file, pair_password):
    """The project's Directory on the pair (DC1 first); a fresh one per test, since a test
    may crash the DC the previous one was bound to."""
    d = await connect(load(pair_config_file), pair_password)
    yield d
    await d.close()


def run_cli(*argv: str, config: Path, state: Path, password: str) -> subprocess.CompletedProcess:
    env = {**os.environ, PASSWORD_ENV: password, "TENANTRY_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *argv, "--config", str(config)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


def kill_mid_move(config: Path, state: Path, password: str, user: str, index: int, when: str) -> str:
    """A real move in another process, SIGKILLed at step ``index`` (tests/kill_mid_move.py)."""
    env = {**os.environ, PASSWORD_ENV: password, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "tests/kill_mid_move.py", str(config), str(state), user, DESTINATION, str(index), when],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=300,
    )
    assert result.returncode == -signal.SIGKILL, result.stderr
    return journal_job(state).id


def journal_job(state: Path, job: str | None = None):
    with Journal(state / "journal.sqlite3") as journal:
        return journal.job(job) if job else journal.jobs()[0]


async def on_dc(directory, dc, read):
    """``read(d)`` on the Directory pinned to the pair's DC ``dc``."""
    return await read(await directory.pin(dc.info().ldaps_url))


async def state_on(directory, dc, user) -> dict:
    """What a move of ``user`` may touch, as ``dc`` holds it (per-DC counters left out)."""
    found = await on_dc(directory, dc, lambda d: snapshot(d, user.source, user.destination))
    return {dn: {a: v for a, v in attributes.items() if a not in NOT_REPLICATED} for dn, attributes in found.items()}


async def converged(pair, directory, user) -> dict:
    """Replication forced both ways; the state both DCs hold (asserted the same)."""
    pair.replicate()
    first, second = [await state_on(directory, dc, user) for dc in pair.dcs]
    assert first == second, "the two DCs differ after replication"
    return first


def via_dc2(pair, tmp_path: Path, extra: str = "") -> Path:
    """A config whose jobs go to DC2 (``write_url``; DC1, the PDC emulator, would be the
    default), reads too (DC2 first in ``urls``)."""
    from directory_fixtures import write_dc_config

    info = pair.info()
    return write_dc_config(info.dc1, tmp_path / "via-dc2.toml", urls=[info.dc2.ldaps_url, info.dc1.ldaps_url], ca_file=info.ca_file,
                           extra=f'write_url = "{info.dc2.ldaps_url}"\n' + extra)


def refuse_step(index: int, first=lambda: None):
    """A before-step hook: at step ``index``, ``first()``, then the step is refused."""
    async def hook(i, step):
        if i == index:
            first()
            raise DirectoryError("The domain controller refused the step.")
    return hook


async def collect(events) -> list[Event]:
    return [e async for e in events]


@contextlib.asynccontextmanager
async def session_on(directory, state: Path):
    session = await Session.open(directory, state=state)
    try:
        yield session
    finally:
        session.journal.close()
        session.audit.close()


def _side(dn: str, user) -> str:
    key = dn_key(dn)
    for name, customer in (("destination", user.destination), ("source", user.source)):
        if key[-len(dn_key(customer.dn)):] == dn_key(customer.dn):
            return name
    return dn


async def where_on(directory, dc, user) -> tuple[str, set[str]]:
    """Where ``dc`` has the user ("source" / "destination") and its groups, each as
    ``"<group name>@<source|destination>"``."""
    found = await on_dc(directory, dc, lambda d: d.user(user.sam))
    return _side(found.dn, user), {f"{rdn_value(g)}@{_side(g, user)}" for g in found.groups}


# --------------------------------------------------------------------------- pinning


async def test_a_job_journals_its_dc_and_the_usn_of_each_write(pair, directory, tmp_path):
    user = await make_user(directory)
    try:
        pair.replicate()  # else DC2, without the new user, refuses the job (see the second-move test)
        async with session_on(directory, tmp_path) as session:
            plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
            events = await collect(session.executor().run(plan, session.operator))
            assert events[-1].status == "done"
            job = session.journal.job(events[0].job)
        dc1 = pair.dc1
        assert job.dc["url"] == dc1.info().ldaps_url
        assert job.dc["invocation_id"] and job.dc["service"].startswith(f"CN=NTDS Settings,CN={dc1.host_name.upper()},")
        usns = [s.result["usn"] for s in job.steps if s.action != "http"]
        assert usns == sorted(usns) and len(set(usns)) == len(usns)  # one DC, each write after the one before
        await converged(pair, directory, user)
        for dc in pair.dcs:
            customer, groups = await where_on(directory, dc, user)
            assert customer == "destination" and all(g.endswith("@destination") for g in groups)
    finally:
        await remove_user(directory, user)


async def test_a_plan_read_on_dc1_runs_on_dc2_when_dc1_is_down(pair, directory, tmp_path):
    """Table row 1: no false "changed" after a fail-over (uSNChanged differs per DC; the
    replicated values do not)."""
    user = await make_user(directory)
    try:
        pair.replicate()
        async with session_on(directory, tmp_path) as session:
            plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
            assert plan.ok
            on_dc1 = await on_dc(directory, pair.dc1, lambda d: d.user(user.dn))
            on_dc2 = await on_dc(directory, pair.dc2, lambda d: d.user(user.dn))
            assert on_dc1.usn_changed != on_dc2.usn_changed and on_dc1.version == on_dc2.version
            pair.dc1.crash()  # at the confirmation
            events = await collect(session.executor().run(plan, session.operator))
            assert events[-1].status == "done", events[-1].message
            job = session.journal.job(events[0].job)
            assert job.dc["url"] == pair.dc2.info().ldaps_url
        pair.dc1.restart()
        await converged(pair, directory, user)
        for dc in pair.dcs:
            customer, groups = await where_on(directory, dc, user)
            assert customer == "destination" and all(g.endswith("@destination") for g in groups)
    finally:
        pair.dc1.restart()
        await remove_user(directory, user)


@pytest.mark.parametrize("index", [0, 3])
async def test_rollback_on_dc2_waits_for_the_writes_dc1_did_not_replicate(pair, directory, pair_config_file, pair_password, tmp_path, index):
    """Table rows 2 and 3: the mover is killed after its first write (or after four: modify,
    move, two member adds) on DC1, DC1 dies before replicating; a rollback on DC2 must not
    say "rolled back" — it needs attention, naming DC1 — and once DC1 is back the
    rollback there leaves both DCs as before the move."""
    user = await make_user(directory)
    try:
        pair.replicate()
        before = await state_on(directory, pair.dc1, user)
        pair.hold(pair.dc1)
        job = kill_mid_move(pair_config_file, tmp_path, pair_password, user.upn, index, "after")
        pair.dc1.crash()
        result = run_cli("-m", "cli", "rollback", job, config=pair_config_file, state=tmp_path, password=pair_password)
        assert result.returncode == 5, result.stdout + result.stderr
        record = journal_job(tmp_path, job)
        assert record.status == JobStatus.NEEDS_ATTENTION
        assert pair.dc1.address in record.error and "does not answer" in record.error
        assert await state_on(directory, pair.dc2, user) == before  # DC2 never saw the move: untouched
        pair.dc1.restart()
        result = run_cli("-m", "cli", "rollback", job, config=pair_config_file, state=tmp_path, password=pair_password)
        assert result.returncode == 0, result.stdout + result.stderr
        assert journal_job(tmp_path, job).status == JobStatus.ROLLED_BACK
        pair.release(pair.dc1)
        assert await converged(pair, directory, user) == before
    finally:
        pair.dc1.restart()
        await remove_user(directory, user)


async def test_resume_on_dc2_waits_for_dc1_then_verifies_and_finishes(pair, directory, pair_config_file, pair_password, tmp_path):
    """Table row 4: killed after four writes on DC1, DC1 down before replicating: resume on
    DC2 needs attention (it would skip done steps DC2 does not have); with DC1 back the
    resume verifies the done steps there and finishes; both DCs agree."""
    user = await make_user(directory)
    try:
        pair.replicate()
        pair.hold(pair.dc1)
        job = kill_mid_move(pair_config_file, tmp_path, pair_password, user.upn, 3, "after")
        pair.dc1.crash()
        result = run_cli("-m", "cli", "resume", job, config=pair_config_file, state=tmp_path, password=pair_password)
        assert result.returncode == 5, result.stdout + result.stderr
        assert pair.dc1.address in journal_job(tmp_path, job).error
        customer, _groups = await where_on(directory, pair.dc2, user)
        assert customer == "source"
        pair.dc1.restart()
        result = run_cli("-m", "cli", "resume", job, config=pair_config_file, state=tmp_path, password=pair_password)
        assert result.returncode == 0, result.stdout + result.stderr
        assert journal_job(tmp_path, job).status == JobStatus.DONE
        assert f"Done, replicated to 1 of 2 domain controllers (not yet: {pair.dc2.info().ldaps_url})." in result.stderr  # DC2 held back
        pair.release(pair.dc1)
        await converged(pair, directory, user)
        for dc in pair.dcs:
            customer, groups = await where_on(directory, dc, user)
            assert customer == "destination" and groups and all(g.endswith("@destination") for g in groups)
    finally:
        pair.dc1.restart()
        await remove_user(directory, user)


async def test_rollback_moves_to_dc2_when_it_provably_holds_every_write(pair, directory, pair_config_file, pair_password, tmp_path):
    """The other side of the proof: DC1 replicated the job's three writes, then died, and
    the fourth step was refused; DC2's up-to-dateness vector for DC1 covers the journaled
    USNs, so the rollback runs on DC2; when DC1 returns, both agree."""
    user = await make_user(directory)
    try:
        pair.replicate()
        before = await state_on(directory, pair.dc1, user)

        def replicate_then_crash():
            pair.replicate(pair.dc1)
            pair.dc1.crash()

        async with session_on(directory, tmp_path) as session:
            plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
            events = await collect(session.executor(before_step=refuse_step(3, replicate_then_crash)).run(plan, session.operator))
            assert events[-1].status == "needs_attention"  # the undo could not reach DC1
            job = session.journal.job(events[0].job)
            assert [s.state for s in job.steps[:4]] == [StepState.UNDO_FAILED] * 3 + [StepState.FAILED]
        result = run_cli("-m", "cli", "rollback", job.id, config=pair_config_file, state=tmp_path, password=pair_password)
        assert result.returncode == 0, result.stdout + result.stderr
        assert journal_job(tmp_path, job.id).dc["url"] == pair.dc2.info().ldaps_url
        assert await state_on(directory, pair.dc2, user) == before
        pair.dc1.restart()
        assert await converged(pair, directory, user) == before
    finally:
        pair.dc1.restart()
        await remove_user(directory, user)


async def test_rollback_asks_dc2_to_replicate_then_waits_for_it(pair, directory, pair_password, tmp_path, caplog):
    """Issue item 4's request: DC1 wrote three steps (their USNs journaled) that DC2 has
    not received, then died. A rollback asks DC2 to pull the job's objects from DC1 (a
    rootDSE ``replicateSingleObject``), which this Samba refuses ("unknown attribute"):
    logged once, not an error; after the bounded wait the job needs attention naming DC1,
    and the same directory does not ask DC2 again. With a longer wait, during which DC1
    comes back and its writes are forced across, the rollback runs on DC2 as soon as
    DC2's up-to-dateness vector covers them; both DCs end as before the move."""
    import logging
    import threading

    from directory_fixtures import write_dc_config

    info = pair.info()

    def waiting(seconds: int) -> Path:
        return write_dc_config(info.dc1, tmp_path / f"wait-{seconds}.toml", urls=info.urls, ca_file=info.ca_file,
                               extra=f"replication_wait = {seconds}\n")

    caplog.set_level(logging.INFO, logger="tenantry.directory")
    user = await make_user(directory)
    short = await connect(load(waiting(2)), pair_password)
    long = await connect(load(waiting(600)), pair_password)
    try:
        pair.replicate()
        before = await state_on(directory, pair.dc1, user)
        pair.hold(pair.dc1)
        async with session_on(directory, tmp_path) as session:
            plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
            events = await collect(session.executor(before_step=refuse_step(3, pair.dc1.crash)).run(plan, session.operator))
            assert events[-1].status == "needs_attention"
            job = events[0].job
        refusals = lambda: [r.getMessage() for r in caplog.records if "does not take requests to replicate" in r.getMessage()]  # noqa: E731
        for attempt in (1, 2):
            async with session_on(short, tmp_path) as session:
                events = await collect(session.executor().rollback(job, session.operator))
                record = session.journal.job(job)
            assert events[-1].status == "needs_attention" and record.status == JobStatus.NEEDS_ATTENTION
            assert pair.dc1.address in record.error and "does not answer" in record.error
            wait = [e.message for e in events if e.kind == "waiting"]
            assert len(wait) == 1 and pair.dc1.address in wait[0] and "up to 2 s" in wait[0]
            assert len(refusals()) == 1, caplog.text  # Samba's refusal came back from DC2, logged once
            assert pair.dc2.address in refusals()[0] and "unknown attribute to change" in refusals()[0]
            assert "asked" not in wait[0]  # refused: DC2 is not said to have been asked
        assert await state_on(directory, pair.dc2, user) == before  # DC2 still has none of the job's writes

        def back_and_replicated():
            pair.dc1.restart()
            pair.replicate(pair.dc1)  # pushed across although DC2's inbound replication is held

        helper = None
        async with session_on(long, tmp_path) as session:
            events = []
            async for event in session.executor().rollback(job, session.operator):
                events.append(event)
                if event.kind == "waiting":
                    helper = threading.Thread(target=back_and_replicated)
                    helper.start()
            record = session.journal.job(job)
        helper.join()
        assert events[-1].status == "rolled_back", [(e.kind, e.message) for e in events]
        assert record.dc["url"] == info.dc2.ldaps_url
        assert len(refusals()) == 2  # the other directory asked DC2 once too
        pair.release(pair.dc1)
        assert await converged(pair, directory, user) == before
    finally:
        await short.close()
        await long.close()
        pair.dc1.restart()
        await remove_user(directory, user)


@pytest.mark.parametrize("index", [1, 2])
async def test_a_write_in_flight_on_a_frozen_dc_is_unknown_and_undone_once_it_answers(pair, directory, pair_config_file, pair_password, tmp_path, index):
    """Issue §5: DC1 frozen (SIGSTOP) as step ``index`` (the move, a member add) is sent:
    the step is journaled neither done nor failed but ``running`` (unknown), the job is
    left as it is (needs attention: nothing can be undone on a silent DC, nor elsewhere);
    DC1 thawed applies what it buffered, and the rollback re-reads and undoes it."""
    user = await make_user(directory)
    try:
        pair.replicate()
        before = await state_on(directory, pair.dc1, user)

        async def freeze(i, step):
            if i == index:
                pair.dc1.freeze()

        async with session_on(directory, tmp_path) as session:
            plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
            events = await collect(session.executor(before_step=freeze).run(plan, session.operator))
            assert events[-1].status == "needs_attention"
            job = session.journal.job(events[0].job)
            assert job.steps[index].state == StepState.RUNNING and job.steps[index].error is None
            assert all(x.state == StepState.DONE for x in job.steps[:index])
            assert pair.dc1.address in job.error and "may still apply" in job.error
        pair.dc1.thaw()
        result = run_cli("-m", "cli", "rollback", job.id, config=pair_config_file, state=tmp_path, password=pair_password)
        assert result.returncode == 0, result.stdout + result.stderr
        assert await converged(pair, directory, user) == before
    finally:
        pair.dc1.thaw()
        await remove_user(directory, user)


async def test_a_job_with_an_undone_step_says_why_it_cannot_resume(pair, directory, pair_config_file, pair_password, tmp_path):
    """Table row 6: a job stopped mid-undo is never run forward (no ValueError): resume
    refuses with one sentence; rollback finishes it; both DCs agree."""
    user = await make_user(directory)
    try:
        pair.replicate()
        before = await state_on(directory, pair.dc1, user)

        undone = 0

        async with session_on(directory, tmp_path) as session:
            plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
            executor = session.executor(before_step=refuse_step(3))
            events = executor.run(plan, session.operator)
            async for event in events:  # stop the process's work after the first undo
                if event.kind == "step_undone":
                    undone += 1
                    break
            await events.aclose()
            job = session.journal.job(event.job)
        assert undone == 1 and job.status == JobStatus.ROLLING_BACK
        result = run_cli("-m", "cli", "resume", job.id, config=pair_config_file, state=tmp_path, password=pair_password)
        assert result.returncode == 3, result.stdout + result.stderr
        assert "roll it back" in result.stderr and "Traceback" not in result.stderr and "ValueError" not in result.stderr
        result = run_cli("-m", "cli", "rollback", job.id, config=pair_config_file, state=tmp_path, password=pair_password)
        assert result.returncode == 0, result.stdout + result.stderr
        assert await converged(pair, directory, user) == before
    finally:
        await remove_user(directory, user)


async def test_a_batch_hit_by_a_dc_crash_is_resumed_to_completion(pair, directory, tmp_path):
    """Table row 5: a bulk move of 6 at concurrency 2, DC1 SIGKILLed as the third row
    starts. The rows in flight are left to resume; rows not started yet run on DC2 when
    they can (no false "changed"), and those waiting for a role group another row created
    on DC1 are refused and stay planned (DC2 lacks the group); none is ``failed`` or
    rolled back. With DC1 back, ``resume BATCH`` finishes every row, and both DCs end
    with every user in the destination."""
    from core.batch import Batch
    from core.bulk import BulkMove

    # the first and the last need the "Billing Contact" role group the first row creates
    # in the destination (the last waits for the first); the four between do not, so some
    # of them start after the crash
    users = [await make_user(directory)]
    users += [await make_user(directory, roles=("Customer Administrator",)) for _ in range(4)]
    users += [await make_user(directory)]
    try:
        pair.replicate()
        started: list[str] = []

        async def crash_at_third_row(index, step):
            if index == 0:
                started.append(step.target)
                if len(started) == 3:
                    pair.dc1.crash()

        async with session_on(directory, tmp_path) as session:
            bulk = BulkMove(session.planner(), session.executor(before_step=crash_at_third_row))
            plan = await bulk.preflight(session.operator, [(u.upn, MoveRequest(u.upn, DESTINATION)) for u in users])
            assert plan.ok
            results: dict = {}
            await collect(bulk.run(plan, session.operator, concurrency=2, results=results))
            shown = {label: (r.status, r.message) for label, r in results.items()}
            assert {r.status for r in results.values()} <= {"done", "needs_attention", "refused"}, shown
            assert "needs_attention" in {r.status for r in results.values()}, shown
            jobs = Batch.load(session.journal, plan.batch).jobs
            assert pair.dc2.info().ldaps_url in {j.dc["url"] for j in jobs if j.status == JobStatus.DONE}, shown
            for job in jobs:
                if results[job.meta["row"]].status == "refused":
                    assert job.status == JobStatus.PLANNED and pair.dc1.address in results[job.meta["row"]].message
            pair.dc1.restart()
            results = {}
            await collect(Batch.load(session.journal, plan.batch).resume(session.executor(), session.operator, results=results))
            assert {r.status for r in results.values()} == {"done"}, {label: (r.status, r.message) for label, r in results.items()}
        pair.replicate()
        for user in users:
            for dc in pair.dcs:
                customer, groups = await where_on(directory, dc, user)
                assert customer == "destination" and all(g.endswith("@destination") for g in groups)
    finally:
        pair.dc1.restart()
        for user in users:
            await remove_user(directory, user)


async def test_a_done_move_says_how_many_dcs_hold_its_writes(pair, directory, pair_config_file, pair_password, tmp_path):
    """Issue §8: "done, replicated to N of M DCs" in --json (bounded wait); DC2 counts
    once its up-to-dateness vector covers the job's writes, not before; `jobs` names the DC."""
    import json

    from core.convergence import replication_of

    user = await make_user(directory)
    try:
        pair.replicate()
        pair.hold(pair.dc1)
        result = run_cli("-m", "cli", "move", user.upn, "--to", DESTINATION, "--yes", "--json",
                         config=pair_config_file, state=tmp_path, password=pair_password)
        assert result.returncode == 0, result.stderr
        out = json.loads(result.stdout)
        assert out["status"] == "done"
        assert out["replicated"] == {"holding": 1, "dcs": 2, "missing": [pair.dc2.info().ldaps_url]}
        assert out["duplicates"] == []  # checked on the DCs holding the writes: DC1 only so far
        job = journal_job(tmp_path, out["job"])
        pair.replicate(pair.dc1)
        replication = await replication_of(directory, job, wait=0)
        assert replication.holding == (pair.dc1.info().ldaps_url, pair.dc2.info().ldaps_url) and not replication.missing
        assert replication.sentence == "replicated to 2 of 2 domain controllers"
        listed = run_cli("-m", "cli", "jobs", config=pair_config_file, state=tmp_path, password=pair_password)
        assert f"on {pair.dc1.info().ldaps_url}" in listed.stdout
    finally:
        pair.release(pair.dc1)
        await remove_user(directory, user)


async def test_a_copy_whose_account_dc1_never_replicated_is_not_rolled_back_on_dc2(pair, directory, pair_config_file, pair_password, tmp_path):
    """Table row 9: a copy's account added on DC1, DC1 SIGKILLed before replicating it:
    `rollback` on DC2 ("not found" there proves nothing) needs attention naming DC1; with
    DC1 back the rollback removes the account there, and after replication neither DC
    has it."""
    from core.copy import CopyRequest
    from test_copy import copy_names, new_password

    template = await make_user(directory)
    first, last = copy_names()
    password = new_password()
    try:
        pair.replicate()
        pair.hold(pair.dc1)

        async def crash_after_the_account(i, step):
            if i == 1:
                pair.dc1.crash()

        async with session_on(directory, tmp_path) as session:
            plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, first, last), password)
            assert plan.ok, plan.problems
            new_dn = plan.users[0].dn_after
            events = await collect(session.executor(before_step=crash_after_the_account).run(plan, session.operator, secrets={"password": password}))
            assert events[-1].status == "needs_attention"
            job = events[0].job
        result = run_cli("-m", "cli", "rollback", job, config=pair_config_file, state=tmp_path, password=pair_password)
        assert result.returncode == 5, result.stdout + result.stderr
        assert pair.dc1.address in journal_job(tmp_path, job).error
        assert not await on_dc(directory, pair.dc2, lambda d: d.exists(new_dn))
        pair.dc1.restart()
        assert await on_dc(directory, pair.dc1, lambda d: d.exists(new_dn))  # the orphan DC2 could not see
        result = run_cli("-m", "cli", "rollback", job, config=pair_config_file, state=tmp_path, password=pair_password)
        assert result.returncode == 0, result.stdout + result.stderr
        pair.release(pair.dc1)
        pair.replicate()
        for dc in pair.dcs:
            assert not await on_dc(directory, dc, lambda d: d.exists(new_dn))
    finally:
        pair.dc1.restart()
        await remove_user(directory, template)


async def test_a_second_move_through_dc2_sees_the_first_one_through_dc1(pair, directory, pair_config_file, pair_password, tmp_path):
    """Table row 7: a user moved to B through DC1 (not replicated yet), then at once to C
    through DC2 (a config naming DC2 its write DC): the second move is refused, nothing written;
    after replication both DCs have the user in B only, with none of C's groups."""

    other = "Contoso Pharmaceuticals"
    user = await make_user(directory, services=())
    second = await connect(load(via_dc2(pair, tmp_path)), pair_password)
    try:
        pair.replicate()
        pair.hold(pair.dc1)
        async with session_on(directory, tmp_path / "first") as session:
            plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
            assert (await collect(session.executor().run(plan, session.operator)))[-1].status == "done"
        async with session_on(second, tmp_path / "second") as session:
            plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, other))
            assert plan.ok, plan.problems  # DC2 still has the user in the source
            with pytest.raises(Refused, match="not yet replicated"):
                await collect(session.executor().run(plan, session.operator))
        pair.release(pair.dc1)
        pair.replicate()
        for dc in pair.dcs:
            customer, groups = await where_on(directory, dc, user)
            assert customer == "destination" and all(g.endswith("@destination") for g in groups)
    finally:
        pair.release(pair.dc1)
        await second.close()
        await remove_user(directory, user)


# --------------------------------------------------------------------------- uniqueness across DCs


async def _vera_and_template(directory):
    """Table row 8's users: Vera in the source (to move into B, the destination) and a
    template user already in B (to copy as "Vera …" into B)."""
    vera = await make_user(directory)
    template = await make_user(directory, DESTINATION, destination_name=vera.source.name, roles=())
    return vera, template


def _copy_as(vera_plan, template) -> "CopyRequest":
    """A copy of ``template`` named and addressed like Vera after her move."""
    from core.copy import CopyRequest

    change = vera_plan.users[0]
    return CopyRequest(template.upn, "Test", f"Mover{template.number}", display_name=rdn_value(change.dn_after),
                       username=f"vcopy{template.number}", upn=change.upn_after, email=change.email_after)


async def _holders_on(directory, dc, upn: str) -> list[str]:
    return sorted({c.dn for c in await on_dc(directory, dc, lambda d: d.conflicts(upn=upn))})


async def _clean_up_row_8(pair, directory, second, upn: str | None, *users, held=None) -> None:
    """Replication on again (of ``held``, DC1 by default); every holder of ``upn`` and the test users removed."""
    await second.close()
    pair.release(held or pair.dc1)
    pair.replicate()
    for dn in await _holders_on(directory, pair.dc1, upn) if upn else []:
        await on_dc(directory, pair.dc1, lambda d, dn=dn: d.delete(dn))
    pair.replicate()
    for user in users:
        await remove_user(directory, user)


async def test_a_copy_colliding_with_a_move_not_yet_replicated_is_refused_by_the_global_catalog(pair, directory, pair_password, tmp_path):
    """Table row 8, refused: Vera moved into B through DC1 (not replicated to DC2); a copy
    as "Vera …" into B through DC2 would find nothing there, but the Global Catalog
    (DC1's, port 3269) holds her new UPN, address and SIP URI: refused, nothing written;
    after replication both DCs have one holder of each value."""
    from test_copy import new_password

    vera, template = await _vera_and_template(directory)
    gc = f"ldaps://{pair.dc1.address}:3269"
    second = await connect(load(via_dc2(pair, tmp_path, f'gc_urls = ["{gc}"]\n')), pair_password)
    upn = None
    try:
        pair.replicate()
        pair.hold(pair.dc1)
        async with session_on(directory, tmp_path / "first") as session:
            moved = await session.planner().preflight(session.operator, MoveRequest(vera.upn, DESTINATION))
            upn = moved.users[0].upn_after
            assert (await collect(session.executor().run(moved, session.operator)))[-1].status == "done"
        assert await _holders_on(directory, pair.dc2, upn) == []  # DC2 has not seen the move
        async with session_on(second, tmp_path / "second") as session:
            copied = await session.copier().preflight(session.operator, _copy_as(moved, template), new_password())
        assert not copied.ok
        refused = " ".join(x.message for x in copied.problems)
        for label in ("UPN", "email address", "SIP URI"):
            assert f"The {label} " in refused and "is already used by" in refused, refused
        pair.release(pair.dc1)
        pair.replicate()
        for dc in pair.dcs:
            assert len(await _holders_on(directory, dc, upn)) == 1
            assert await on_dc(directory, dc, lambda d: d.name_conflicts(vera.cn, parent_dn(moved.users[0].dn_after))) == []
    finally:
        await _clean_up_row_8(pair, directory, second, upn, vera, template)


async def test_a_copy_racing_a_move_on_the_other_dc_reports_the_duplicates_on_both(pair, directory, pair_password, tmp_path):
    """Table row 8, at once: the copy as "Vera …" is planned through DC2 before Vera's move
    through DC1 runs, so no check before either job can see the other; both are written.
    Once the copy's writes reach DC1 the check after the job finds them twice there (UPN,
    address, SIP URI) and the conflict object replication made of the name: reported in
    the result and the audit log; after full replication both DCs show the same."""
    from core.convergence import aftermath, duplicates_of
    from test_copy import new_password

    vera, template = await _vera_and_template(directory)
    info = pair.info()
    second = await connect(load(via_dc2(pair, tmp_path)), pair_password)
    upn = None
    password = new_password()
    try:
        pair.replicate()
        pair.hold(pair.dc1)
        async with session_on(directory, tmp_path / "first") as first, session_on(second, tmp_path / "second") as other:
            moved = await first.planner().preflight(first.operator, MoveRequest(vera.upn, DESTINATION))
            upn = moved.users[0].upn_after
            copied = await other.copier().preflight(other.operator, _copy_as(moved, template), password)
            assert moved.ok and copied.ok, copied.problems
            assert (await collect(first.executor().run(moved, first.operator)))[-1].status == "done"
            events = await collect(other.executor().run(copied, other.operator, secrets={"password": password}))
            assert events[-1].status == "done", events[-1].message
            job = other.journal.job(events[0].job)
            pair.replicate(pair.dc2)  # the copy reaches DC1 (DC1 still holds the move back from DC2)
            after = await aftermath(second, job, other.audit, other.operator)
            assert after.replication.holding == (info.dc2.ldaps_url, info.dc1.ldaps_url)
            on_dc1 = {d.kind for d in after.duplicates if d.dc == info.dc1.ldaps_url}
            assert {"upn", "address", "sip", "name"} <= on_dc1, after.duplicates
            assert all(len(d.dns) == 2 for d in after.duplicates if d.kind != "name")
            assert "\nCNF:" in [d for d in after.duplicates if d.kind == "name"][0].dns[0].replace("\\0A", "\n")
            assert after.to_json()["duplicates"] and after.to_json()["replicated"]["holding"] == 2
            audited = [r for r in other.audit.entries() if r.job == job.id and r.result == "needs_attention"]
            assert audited and audited[0].detail.startswith("duplicates after replication: ") and upn in audited[0].detail
        pair.release(pair.dc1)
        pair.replicate()
        for dc in pair.dcs:
            assert len(await _holders_on(directory, dc, upn)) == 2
        both = await duplicates_of(directory, job, [info.dc1.ldaps_url, info.dc2.ldaps_url])
        assert {d.dc for d in both if d.kind == "upn"} == {info.dc1.ldaps_url, info.dc2.ldaps_url}
    finally:
        await _clean_up_row_8(pair, directory, second, upn, vera, template)


async def test_a_bulk_copy_racing_a_copy_on_the_other_dc_reports_the_duplicates_per_row(pair, directory, pair_password, tmp_path):
    """Issue item 7 for batches: a copy of the template as "Copy TesterN" through DC2
    (DC2's writes held from DC1), and a bulk copy with a row making the same user through
    DC1, which cannot see it: both done. Once DC2's copy reaches DC1, the check after the
    batch finds the row's UPN, address, SIP URI and username twice on DC1 and the conflict
    object replication made of the name: per row, and audited on the row's job."""
    from core.batch import row_aftermaths
    from core.bulk import BulkCopy
    from core.copy import CopyRequest
    from test_copy import copy_names, new_password

    template = await make_user(directory)
    first, last = copy_names()
    password = new_password()
    second = await connect(load(via_dc2(pair, tmp_path)), pair_password)
    upn = None
    try:
        pair.replicate()
        pair.hold(pair.dc2)
        async with session_on(second, tmp_path / "second") as other:
            copied = await other.copier().preflight(other.operator, CopyRequest(template.upn, first, last), password)
            assert copied.ok, copied.problems
            upn = copied.users[0].upn_after
            assert (await collect(other.executor().run(copied, other.operator, secrets={"password": password})))[-1].status == "done"
        async with session_on(directory, tmp_path / "first") as session:
            bulk = BulkCopy(session.copier(), session.executor())
            plan = await bulk.preflight(session.operator, [("row 1", CopyRequest(template.upn, first, last))], password=password)
            assert plan.ok, [x.message for row in plan.rows for x in row.plan.problems]  # DC1 has not seen DC2's copy
            assert plan.rows[0].plan.users[0].upn_after == upn
            results: dict = {}
            await collect(bulk.run(plan, session.operator, results=results, passwords={"row 1": password}))
            assert results["row 1"].status == "done", results
            pair.replicate(pair.dc2)  # DC2's copy reaches DC1 (DC1's inbound replication stays held)
            after = await row_aftermaths(directory, session.journal, session.audit, session.operator, results)
            found = after["row 1"].duplicates
            on_dc1 = {d.kind for d in found if d.dc == pair.info().dc1.ldaps_url}
            assert {"upn", "address", "sip", "sam", "name"} <= on_dc1, found
            assert all(len(d.dns) == 2 for d in found if d.kind != "name")
            audited = [r for r in session.audit.entries() if r.job == results["row 1"].job and r.result == "needs_attention"]
            assert len(audited) == 1 and audited[0].detail.startswith("duplicates after replication: ") and upn in audited[0].detail
    finally:
        await _clean_up_row_8(pair, directory, second, upn, template, held=pair.dc2)


# --------------------------------------------------------------------------- replication shown


async def test_the_console_result_names_the_dc_a_move_has_not_reached(pair, directory, tmp_path, monkeypatch):
    """Issue §8 in the console: a move through DC1 while DC2 receives nothing: the result
    screen says "replicated to 1 of 2" and names DC2, after a bounded wait (the worker
    ends: the keys settle); the journal's job is done."""
    from console_keys import SIZE, Keys, QuickApp, open_user, settle, shown, through_the_move
    from move_fixtures import SOURCE

    monkeypatch.setenv("TENANTRY_STATE_DIR", str(tmp_path))
    user = await make_user(directory)
    dc2 = pair.info().dc2.ldaps_url
    try:
        pair.replicate()
        pair.hold(pair.dc1)
        app = QuickApp(directory, directory.config)
        async with app.run_test(size=SIZE) as pilot:
            keys = Keys(pilot)
            await settle(pilot)
            await open_user(keys, SOURCE, user.upn)
            await keys("m")
            await through_the_move(keys, "globex")
            note = app.screen.query_one("#replication")
            assert note.checked is not None, shown(app)
            assert note.checked.replication.missing == (dc2,) and not note.checked.duplicates
            screen = " ".join(shown(app).split())
            assert "Done, replicated to 1 of 2 domain controllers (not yet:" in screen and dc2.split("//")[1] in screen
        assert journal_job(tmp_path).status == JobStatus.DONE
    finally:
        pair.release(pair.dc1)
        pair.replicate()
        await remove_user(directory, user)


# --------------------------------------------------------------------------- the write DC


async def test_jobs_go_to_the_pdc_emulator_unless_a_write_dc_is_set(pair, pair_password, tmp_path):
    """Issue item 2: without write_url a job is pinned to the PDC emulator (the NC head's
    fSMORoleOwner → its server's dNSHostName, here resolved to an address of ``urls``)
    even when ``urls`` names another DC first; with the PDC down, to the first that
    answers; with write_url, to that DC."""
    from directory_fixtures import write_dc_config

    info = pair.info()
    dc2_first = write_dc_config(info.dc1, tmp_path / "dc2-first.toml", urls=[info.dc2.ldaps_url, info.dc1.ldaps_url], ca_file=info.ca_file)

    async def pinned_to(config: Path) -> str:
        d = await connect(load(config), pair_password)
        try:
            assert d.server == (info.dc2.ldaps_url if pair.dc2.process else info.dc1.ldaps_url)  # reads: the first that answers
            return (await d.pin()).dc.url
        finally:
            await d.close()

    with info.dc1.connect() as conn:  # the seed's PDC emulator is DC1, which provisioned the domain
        conn.search(info.dc1.base_dn, "(objectClass=*)", "BASE", attributes=["fSMORoleOwner"])
        assert f"CN={pair.dc1.host_name.upper()}," in str(conn.entries[0].fSMORoleOwner.value)
    assert await pinned_to(dc2_first) == info.dc1.ldaps_url
    assert await pinned_to(via_dc2(pair, tmp_path)) == info.dc2.ldaps_url
    pair.dc1.crash()
    try:
        assert await pinned_to(dc2_first) == info.dc2.ldaps_url
    finally:
        pair.dc1.restart()
