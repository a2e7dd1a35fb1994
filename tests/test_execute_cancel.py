"""Cancelling a running job (``Executor.cancel``): the step in flight finishes, then every
done step is undone — journaled and audited as cancelled by the operator — and jobs of the
same executor not started yet refuse to start. On the demo and the real Samba DC (an HTTP
step in flight: tests/test_execute_cancel_services.py)."""

from __future__ import annotations

import asyncio

import pytest

from core import plan as p
from core.bulk import BulkMove
from core.directory.layout import dn_key
from core.execute import CANCELLED, Refused
from core.journal import JobBusy, JobStatus, StepState
from core.move import MoveRequest
from move_fixtures import DESTINATION, make_user, remove_user, snapshot
from test_move import mover, session  # noqa: F401  (demo and DC: ``directory`` is parametrised)

pytestmark = pytest.mark.asyncio(loop_scope="session")
HELD = 3  # the step the job is held on (after the attribute swap, the move and a membership)


class Hold:
    """A ``before_step`` hook that holds the job on step ``at`` (an index, or a step of
    the plan) until released."""

    def __init__(self, at) -> None:
        self.at = at
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, index, step) -> None:
        if index == self.at or (not isinstance(self.at, int) and step.to_json() == self.at.to_json()):
            self.reached.set()
            await self.release.wait()


async def cancel_while_held(executor, plan, operator, hold: Hold) -> list:
    """Run ``plan``; once it is held on its step, cancel, then let the step finish."""
    events: list = []

    async def consume():
        async for event in executor.run(plan, operator):
            events.append(event)

    task = asyncio.create_task(consume())
    await asyncio.wait_for(hold.reached.wait(), timeout=30)
    executor.cancel()
    hold.release.set()
    await asyncio.wait_for(task, timeout=60)
    return events


async def test_cancel_mid_move_finishes_the_step_in_flight_then_rolls_back_everything(session, mover):
    d = session.directory
    before = await snapshot(d, mover.source, mover.destination)
    plan = await session.planner().preflight(session.operator, MoveRequest(mover.upn, DESTINATION))
    assert plan.ok and len(plan.steps) > HELD + 1, plan.problems
    hold = Hold(HELD)
    events = await cancel_while_held(session.executor(before_step=hold), plan, session.operator, hold)

    kinds = [(e.kind, e.index) for e in events]
    assert ("step_done", HELD) in kinds  # the step in flight was not cut: it finished
    assert ("step_started", HELD + 1) not in kinds  # and nothing after it began
    rolling = next(e for e in events if e.kind == "rolling_back")
    assert rolling.message == CANCELLED
    assert [e.index for e in events if e.kind == "step_undone"] == list(range(HELD, -1, -1))
    assert events[-1].kind == "job_finished" and events[-1].status == "rolled_back"
    assert await snapshot(d, mover.source, mover.destination) == before

    job = session.journal.job(events[0].job)
    assert job.status == JobStatus.ROLLED_BACK and job.error == CANCELLED
    assert [s.state for s in job.steps] == [StepState.UNDONE] * (HELD + 1) + [StepState.PENDING] * (len(plan.steps) - HELD - 1)
    entry = session.audit.entries(search=job.id)[0]
    assert (entry.result, entry.detail, entry.action) == ("rolled_back", CANCELLED, "move")


async def test_a_cancelled_executor_refuses_to_start_a_job_and_writes_nothing(session, mover):
    d = session.directory
    before = await snapshot(d, mover.source, mover.destination)
    plan = await session.planner().preflight(session.operator, MoveRequest(mover.upn, DESTINATION))
    executor = session.executor()
    jobs_before = len(session.journal.jobs(limit=1000))
    executor.cancel()
    with pytest.raises(Refused, match="cancelled by the operator"):
        [e async for e in executor.run(plan, session.operator)]
    assert await snapshot(d, mover.source, mover.destination) == before
    assert len(session.journal.jobs(limit=1000)) == jobs_before  # no job was even journaled
    entry = session.audit.entries(search=mover.upn)[0]
    assert entry.result == "refused" and CANCELLED in entry.detail and entry.job is None


async def test_cancel_in_a_bulk_move_keeps_finished_users_rolls_back_the_running_one_and_starts_no_other(session):
    """Concurrency 1, three users: the first has moved, the second is held mid-job when
    the operator cancels, the third has not started."""
    d = session.directory
    users = [await make_user(d) for _ in range(3)]
    try:
        before = await snapshot(d, users[0].source, users[0].destination)
        started: list[str] = []
        hold = Hold(None)
        executor = session.executor(before_step=hold)
        bulk = BulkMove(session.planner(), executor)
        plan = await bulk.preflight(session.operator, [(u.upn, MoveRequest(u.upn, DESTINATION)) for u in users])
        assert plan.ok
        hold.at = next(s for s in plan.rows[1].plan.steps if s.action == p.ADD_MEMBER)  # a membership of the second user
        results: dict = {}

        async def consume():
            async for item in bulk.run(plan, session.operator, concurrency=1, results=results):
                if item.event.kind == "job_started":
                    started.append(item.row)

        task = asyncio.create_task(consume())
        await asyncio.wait_for(hold.reached.wait(), timeout=60)
        executor.cancel()
        hold.release.set()
        await asyncio.wait_for(task, timeout=60)

        first, second, third = (results[u.upn] for u in users)
        assert first.status == "done"
        assert (second.status, second.message) == ("rolled_back", CANCELLED)
        assert third.status == "refused" and CANCELLED in third.message
        assert session.journal.job(third.job).status is JobStatus.ROLLED_BACK  # recorded, never started, closed
        assert started == [users[0].upn, users[1].upn]
        moved = await d.user(first.upn)  # the finished user stays moved
        assert moved.upn == first.upn
        after = await snapshot(d, users[0].source, users[0].destination)
        for user in users[1:]:  # every attribute, memberOf included, as before
            assert after[dn_key(user.dn)] == before[dn_key(user.dn)]
    finally:
        for user in users:
            await remove_user(d, user)



async def test_a_running_job_cannot_be_resumed_or_rolled_back_by_a_second_run(session, mover):
    """The console and a `tenantry resume` in another terminal must not race one job:
    while it runs, a resume or a rollback of it is refused and writes nothing."""
    plan = await session.planner().preflight(session.operator, MoveRequest(mover.upn, DESTINATION))
    hold = Hold(HELD)
    events: list = []

    async def consume():
        async for event in session.executor(before_step=hold).run(plan, session.operator):
            events.append(event)

    task = asyncio.create_task(consume())
    await asyncio.wait_for(hold.reached.wait(), timeout=30)
    job_id = events[0].job
    for second in (session.executor().resume(job_id, session.operator), session.executor().rollback(job_id, session.operator)):
        with pytest.raises(JobBusy):
            [e async for e in second]
    hold.release.set()
    await asyncio.wait_for(task, timeout=60)
    assert events[-1].status == "done" and session.journal.job(job_id).status is JobStatus.DONE
    assert [s.state for s in session.journal.job(job_id).steps] == [StepState.DONE] * len(plan.steps)
    assert (await session.directory.user(plan.users[0].upn_after)).upn == plan.users[0].upn_after
