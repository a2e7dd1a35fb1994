"""Bulk moves (PRODUCT §4): many users, every row preflighted first, then run in parallel.

``BulkMove.preflight`` plans every row with the single-user :class:`MovePlanner`, and
adds the problems only a batch has: the same user named twice, and two rows that would
give two users the same UPN, email address or SIP URI. An unknown user is a problem of
its row, not an error of the batch. ``BulkMove.run`` runs the clean rows, each as its own
all-or-nothing journal job (``meta={"batch": id}``) so one failure never undoes
another user, with at most ``concurrency`` jobs at once, and yields the executor's
events tagged with their row.

Rows that would create the same role group in the destination: the first one creates
it, the others drop that step and start only after the first has finished (so a
rollback of the creator never deletes a group a later user joined).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field, replace
from typing import AsyncIterator

from core import plan as p
from core.errors import TenantryError
from core.execute import Event, Executor
from core.model import Operator
from core.move import MovePlanner, MoveRequest
from core.plan import Plan, Problem
from core.text import plain

DEFAULT_CONCURRENCY = 4
DUPLICATE = "duplicate_row"  # the same user in two rows
UNKNOWN = "not_found"  # the row names no user (or no customer)
_SIP_ATTRIBUTE = "msrtcsip-primaryuseraddress"


@dataclass(frozen=True)
class BulkRow:
    label: str  # what the operator wrote (the user), with the row number when from a CSV
    request: MoveRequest
    plan: Plan

    @property
    def ok(self) -> bool:
        return self.plan.ok


@dataclass(frozen=True)
class BulkPlan:
    rows: tuple[BulkRow, ...]
    batch: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def clean(self) -> tuple[BulkRow, ...]:
        return tuple(r for r in self.rows if r.ok)

    @property
    def refused(self) -> tuple[BulkRow, ...]:
        return tuple(r for r in self.rows if not r.ok)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)


@dataclass(frozen=True)
class RowEvent:
    row: str
    event: Event


@dataclass
class RowResult:
    row: str
    user: str
    status: str  # done | rolled_back | needs_attention | refused | failed
    job: str | None = None
    message: str = ""
    upn: str | None = None
    email: str | None = None

    def to_json(self) -> dict:
        return dict(self.__dict__)


class BulkMove:
    def __init__(self, planner: MovePlanner, executor: Executor):
        self.planner = planner
        self.executor = executor

    async def preflight(self, operator: Operator, requests: list[tuple[str, MoveRequest]], *, concurrency: int = DEFAULT_CONCURRENCY) -> BulkPlan:
        """Plan every row (reads in parallel, bounded), then check the rows against each other."""
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(label: str, request: MoveRequest) -> BulkRow:
            async with gate:
                try:
                    plan = await self.planner.preflight(operator, request)
                except TenantryError as error:  # unknown user or customer: a problem of this row
                    plan = Plan("move", None, request.destination, (), (), (Problem(UNKNOWN, str(error), request.user),))
            return BulkRow(label, request, plan)

        rows = list(await asyncio.gather(*(one(label, request) for label, request in requests)))
        return BulkPlan(tuple(_cross_row_problems(rows)))

    async def run(
        self, bulk: BulkPlan, operator: Operator, *, concurrency: int = DEFAULT_CONCURRENCY, only_clean: bool = True,
        results: dict[str, RowResult] | None = None,
    ) -> AsyncIterator[RowEvent]:
        """Run the clean rows; yields every row's events. ``results`` (row label → result)
        is filled as rows finish, refused rows included."""
        if not only_clean and not bulk.ok:
            raise TenantryError("Some rows have problems: run only the clean rows, or fix them first.")
        results = results if results is not None else {}
        for row in bulk.refused:
            results[row.label] = RowResult(row.label, row.request.user, "refused", message=" ".join(x.message for x in row.plan.problems))
        queue: asyncio.Queue[RowEvent | None] = asyncio.Queue()
        gate = asyncio.Semaphore(max(1, concurrency))
        finished: dict[str, asyncio.Event] = {row.label: asyncio.Event() for row in bulk.clean}
        plans, waits = _share_created_groups(bulk.clean)

        async def one(row: BulkRow) -> None:
            change = row.plan.users[0]
            result = RowResult(row.label, row.request.user, "failed", upn=change.upn_after, email=change.email_after)
            try:
                for label in waits.get(row.label, ()):
                    await finished[label].wait()
                async with gate:
                    async for event in self.executor.run(plans[row.label], operator, meta={"batch": bulk.batch, "row": row.label}):
                        result.job = event.job
                        if event.kind == "job_finished":
                            result.status = event.status or "failed"
                            result.message = event.message
                        await queue.put(RowEvent(row.label, event))
            except TenantryError as error:
                result.status = "refused" if getattr(error, "exit_code", 1) == 3 else "failed"
                result.message = str(error)
            except Exception as error:  # noqa: BLE001 -- one user's unexpected failure must not stop the others
                result.status = "needs_attention" if result.job else "failed"
                result.message = f"{type(error).__name__}: {error}"
            finally:
                results[row.label] = result
                finished[row.label].set()

        async def all_rows() -> None:
            try:
                await asyncio.gather(*(one(row) for row in bulk.clean))
            finally:
                await queue.put(None)

        task = asyncio.create_task(all_rows())
        try:
            while (item := await queue.get()) is not None:
                yield item
        finally:
            if not task.done():
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _cross_row_problems(rows: list[BulkRow]) -> list[BulkRow]:
    """Add problems between rows: one user twice, or two rows mapping to the same UPN, email or SIP."""
    extra: dict[int, list[Problem]] = {i: [] for i in range(len(rows))}
    seen: dict[tuple[str, str], int] = {}
    for i, row in enumerate(rows):
        if not row.plan.users:
            continue
        change = row.plan.users[0]
        keys = [("user", change.dn_before.casefold(), "user")]
        if change.upn_after:
            keys.append(("address", change.upn_after.casefold(), "UPN"))
        if change.email_after and (change.email_after or "").casefold() != (change.upn_after or "").casefold():
            keys.append(("address", change.email_after.casefold(), "email address"))
        sip = _sip_after(row.plan)
        if sip:
            keys.append(("sip", sip.casefold(), "SIP URI"))
        for kind, value, what in keys:
            first = seen.setdefault((kind, value), i)
            if first == i:
                continue
            other = rows[first].label
            if kind == "user":
                extra[i].append(Problem(DUPLICATE, f"{plain(row.label)} is the same user as {plain(other)}.", row.request.user))
                break  # its addresses collide with that row's, of course: one problem is enough
            else:
                extra[i].append(Problem(p.COLLISION, f"The {what} {plain(value)} would also be given to {plain(other)}.", row.request.user))
    return [replace(row, plan=replace(row.plan, problems=row.plan.problems + tuple(extra[i]))) if extra[i] else row
            for i, row in enumerate(rows)]


def _sip_after(plan: Plan) -> str | None:
    for step in plan.steps:
        if step.action == p.MODIFY and isinstance(step.after, dict):
            for attribute, values in step.after.items():
                if attribute.casefold() == _SIP_ATTRIBUTE and values:
                    return str(values[0])
    return None


def _share_created_groups(rows: tuple[BulkRow, ...]) -> tuple[dict[str, Plan], dict[str, list[str]]]:
    """Only the first row creating a role group keeps that step; the others wait for it."""
    creators: dict[str, str] = {}
    plans: dict[str, Plan] = {}
    waits: dict[str, list[str]] = {}
    for row in rows:
        steps = []
        for step in row.plan.steps:
            if step.action == p.CREATE_GROUP:
                key = step.target.casefold()
                if key in creators:
                    waits.setdefault(row.label, []).append(creators[key])
                    continue
                creators[key] = row.label
            steps.append(step)
        plans[row.label] = replace(row.plan, steps=tuple(steps))
    return plans, waits
