"""Bulk jobs (PRODUCT §4): many users moved, or many new users copied, in one batch.

:class:`BulkJob` is the machinery both share. ``preflight`` plans every row with the
single-user planner (reads in parallel, bounded); an unknown user or template is a
problem of its row, not an error of the batch. Then the rows are checked against each
other: the same operation twice (a duplicate row), or two rows that would give two
users the same UPN, email address, SIP URI, username, or name in one container.

``run`` records every clean row's job in the journal — ``planned``, meta ``{"batch",
"row"}`` — in one transaction before the first write, then starts them, at most
``concurrency`` at once, each its own all-or-nothing job (one failure never undoes
another user), and yields the executor's events tagged with their row. A job is
checked against a fresh read of its user when it starts (``Executor.resume``), so a
row started long after its plan was made never writes over a user changed since.

A batch the process left unfinished (killed, host lost) is found again by its id and
resumed or rolled back as a whole: :class:`core.batch.Batch`.

Rows that would create the same role group in the destination: the first one creates
it, the others drop that step and start only after the first has finished (so a
rollback of the creator never deletes a group a later user joined); the journal keeps
that order (meta ``"after"``) for a resume, and a rollback undoes in the reverse order.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, AsyncIterator, Callable, Mapping

from core import plan as p
from core.copy import CopyPlanner, CopyRequest
from core.escape import rdn_value
from core.directory.layout import dn_key
from core.errors import NotFound, TenantryError, UsageError
from core.execute import Event, Executor
from core.model import Operator
from core.move import MovePlanner, MoveRequest
from core.plan import Plan, Problem
from core.replan import request_meta
from core.text import plain

DEFAULT_CONCURRENCY = 4
DUPLICATE = "duplicate_row"  # the same operation in two rows (a move: the same user)
UNKNOWN = "not_found"  # the row names no user (or no customer)
_SIP_ATTRIBUTE = "msrtcsip-primaryuseraddress"
_SAM_ATTRIBUTE = "samaccountname"


@dataclass(frozen=True)
class BulkRow:
    label: str  # what the operator wrote (the user), with the row number when from a CSV
    request: MoveRequest | CopyRequest
    plan: Plan

    @property
    def ok(self) -> bool:
        return self.plan.ok

    @property
    def who(self) -> str:
        return _who(self.request)


def _who(request: MoveRequest | CopyRequest) -> str:
    """The user a row names: the user to move, or a copy's template."""
    return request.user if isinstance(request, MoveRequest) else request.template


@dataclass(frozen=True)
class BulkPlan:
    rows: tuple[BulkRow, ...]
    batch: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    kind: str = "move"

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


@dataclass(frozen=True)
class BatchRow:
    """One clean row of a batch, as journaled: its job, and the rows to wait for."""

    label: str
    job: str
    user: str
    upn: str | None = None
    email: str | None = None
    after: tuple[str, ...] = ()  # rows whose job must finish first (the creator of a role group it joins)


class BulkJob:
    """Preflight every row, check the rows against each other, run the clean ones."""

    kind = ""

    def __init__(self, planner: MovePlanner | CopyPlanner, executor: Executor):
        self.planner = planner
        self.executor = executor

    async def _plan_row(self, operator: Operator, request: Any, **options: Any) -> Plan:
        raise NotImplementedError

    def _operation(self, row: BulkRow) -> tuple:
        """What the row does, for spotting duplicate rows (two rows alike are one operation twice)."""
        raise NotImplementedError

    def _duplicate_message(self, row: BulkRow, other: str) -> str:
        raise NotImplementedError

    async def _preflight(self, operator: Operator, requests: list[tuple[str, Any]], concurrency: int, **options: Any) -> BulkPlan:
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(label: str, request: Any) -> BulkRow:
            async with gate:
                try:
                    plan = await self._plan_row(operator, request, **options)
                except UsageError as error:  # unknown user, template or customer: a problem of this row
                    code = UNKNOWN if isinstance(error, NotFound) else p.INVALID_VALUE
                    plan = Plan(self.kind, None, None, (), (), (Problem(code, str(error), _who(request)),))
            return BulkRow(label, request, plan)

        rows = list(await asyncio.gather(*(one(label, request) for label, request in requests)))
        return BulkPlan(tuple(self._cross_row_problems(rows)), kind=self.kind)

    def _cross_row_problems(self, rows: list[BulkRow]) -> list[BulkRow]:
        """Add the problems between rows: an operation twice, or two rows claiming one value."""
        extra: dict[int, list[Problem]] = {i: [] for i in range(len(rows))}
        seen: dict[tuple, int] = {}
        for i, row in enumerate(rows):
            if not row.plan.users:
                continue
            for key, what in [(("row",) + self._operation(row), "")] + _claims(row.plan):
                first = seen.setdefault(key, i)
                if first == i:
                    continue
                other = plain(rows[first].label)
                if key[0] == "row":
                    extra[i].append(Problem(DUPLICATE, self._duplicate_message(row, other), row.who))
                    break  # it claims what that row claims, of course: one problem is enough
                extra[i].append(Problem(p.COLLISION, f"{what} would also be given to {other}.", row.who))
        return [replace(row, plan=replace(row.plan, problems=row.plan.problems + tuple(extra[i]))) if extra[i] else row
                for i, row in enumerate(rows)]

    async def run(
        self, bulk: BulkPlan, operator: Operator, *, concurrency: int = DEFAULT_CONCURRENCY, only_clean: bool = True,
        results: dict[str, RowResult] | None = None, passwords: Mapping[str, str] | None = None,
    ) -> AsyncIterator[RowEvent]:
        """Journal every clean row's job, then run them; yields every row's events.

        ``results`` (row label → result) is filled as rows finish, refused rows included.
        ``passwords`` (row label → password): each new user's password of a bulk copy,
        kept in memory only.
        """
        if not only_clean and not bulk.ok:
            raise TenantryError("Some rows have problems: run only the clean rows, or fix them first.")
        results = results if results is not None else {}
        for row in bulk.refused:
            results[row.label] = RowResult(row.label, row.who, "refused", message=" ".join(x.message for x in row.plan.problems))
        if not bulk.clean:
            return
        rows = await self.record(bulk, operator)
        async for item in run_rows(rows, job_starter(self.executor, operator, passwords), concurrency, results):
            yield item

    async def record(self, bulk: BulkPlan, operator: Operator) -> list[BatchRow]:
        """Journal every clean row's job as ``planned`` (one transaction), writing nothing
        else: what ``run`` does before its first write. ``Batch.load(…).resume`` runs them."""
        plans, waits = _share_created_groups(bulk.clean)
        jobs = await self.executor.record(
            [(plans[r.label], {"batch": bulk.batch, "row": r.label, "after": waits.get(r.label, []), "request": request_meta(r.request)})
             for r in bulk.clean], operator)
        rows = []
        for row, job in zip(bulk.clean, jobs):
            change = row.plan.users[0]
            rows.append(BatchRow(row.label, job, row.who, change.upn_after, change.email_after, tuple(waits.get(row.label, ()))))
        return rows


class BulkMove(BulkJob):
    kind = "move"

    async def preflight(self, operator: Operator, requests: list[tuple[str, MoveRequest]], *, concurrency: int = DEFAULT_CONCURRENCY) -> BulkPlan:
        """Plan every row (reads in parallel, bounded), then check the rows against each other."""
        return await self._preflight(operator, requests, concurrency)

    async def _plan_row(self, operator: Operator, request: MoveRequest, **options: Any) -> Plan:
        return await self.planner.preflight(operator, request)

    def _operation(self, row: BulkRow) -> tuple:
        return (dn_key(row.plan.users[0].dn_before),)

    def _duplicate_message(self, row: BulkRow, other: str) -> str:
        return f"{plain(row.label)} is the same user as {other}."


class BulkCopy(BulkJob):
    """New users copied from templates, one row each (PRODUCT §3 and §4)."""

    kind = "copy"

    async def preflight(self, operator: Operator, requests: list[tuple[str, CopyRequest]], *, concurrency: int = DEFAULT_CONCURRENCY,
                        password: str | None = None) -> BulkPlan:
        """Plan every row; ``password`` (one for every row, if given) is checked against
        each row's new account — the domain's policy and the user's names — here."""
        return await self._preflight(operator, requests, concurrency, password=password)

    async def _plan_row(self, operator: Operator, request: CopyRequest, **options: Any) -> Plan:
        return await self.planner.preflight(operator, request, options.get("password"))

    def _operation(self, row: BulkRow) -> tuple:
        r: CopyRequest = row.request  # type: ignore[assignment]
        fold = lambda value: (value or "").strip().casefold()  # noqa: E731
        services = None if r.services is None else tuple(sorted(set(r.services)))
        return (dn_key(row.plan.users[0].dn_before), fold(r.first), fold(r.last), fold(r.display_name), fold(r.username),
                fold(r.upn), fold(r.email), services, tuple(sorted((k, fold(v)) for k, v in r.plans.items())))

    def _duplicate_message(self, row: BulkRow, other: str) -> str:
        return f"{plain(row.label)} repeats {other}."

    async def generate_passwords(self, bulk: BulkPlan) -> dict[str, str]:
        """A password of its own for every clean row's new user, that the domain's policy accepts."""
        return {row.label: await self.planner.generate_password(row.plan) for row in bulk.clean}


def job_starter(executor: Executor, operator: Operator, passwords: Mapping[str, str] | None) -> Callable[[BatchRow], AsyncIterator[Event]]:
    """Start (or resume) a row's journaled job, with its new user's password if it has one
    (the executor keeps each job's secret apart, and one cancel reaches every row)."""

    def start(row: BatchRow) -> AsyncIterator[Event]:
        password = (passwords or {}).get(row.label)
        if password is None:
            return executor.resume(row.job, operator)
        return executor.resume(row.job, operator, secrets={"password": password})

    return start


async def run_rows(
    rows: list[BatchRow], act: Callable[[BatchRow], AsyncIterator[Event]], concurrency: int,
    results: dict[str, RowResult], *, backward: bool = False,
) -> AsyncIterator[RowEvent]:
    """Run ``act`` on every row, at most ``concurrency`` at once, a row after the rows it
    waits for (``backward``: before them); yields every event tagged with its row and
    fills ``results`` as rows finish."""
    queue: asyncio.Queue[RowEvent | None] = asyncio.Queue()
    gate = asyncio.Semaphore(max(1, concurrency))
    finished = {row.label: asyncio.Event() for row in rows}
    waits: dict[str, list[str]] = {row.label: [] for row in rows}
    for row in rows:
        for first in row.after:
            if first in finished:
                if backward:
                    waits[first].append(row.label)
                else:
                    waits[row.label].append(first)

    async def one(row: BatchRow) -> None:
        result = RowResult(row.label, row.user, "failed", job=row.job, upn=row.upn, email=row.email)
        try:
            for label in waits[row.label]:
                await finished[label].wait()
            async with gate:
                async for event in act(row):
                    if event.kind == "job_finished":
                        result.status = event.status or "failed"
                        result.message = event.message
                    await queue.put(RowEvent(row.label, event))
        except TenantryError as error:
            result.status = "refused" if getattr(error, "exit_code", 1) == 3 else "failed"
            result.message = str(error)
        except Exception as error:  # noqa: BLE001 -- one user's unexpected failure must not stop the others
            result.status = "needs_attention"
            result.message = f"{type(error).__name__}: {error}"
        finally:
            results[row.label] = result
            finished[row.label].set()

    async def all_rows() -> None:
        try:
            await asyncio.gather(*(one(row) for row in rows))
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


def _claims(plan: Plan) -> list[tuple[tuple, str]]:
    """What a row's user would hold that no other user may: ``(key, "The UPN …")``."""
    change = plan.users[0]
    claims: list[tuple[tuple, str]] = []
    if change.dn_after and change.dn_after[:3].casefold() == "cn=":
        claims.append((("name",) + dn_key(change.dn_after), f"The name {plain(rdn_value(change.dn_after))} in the same container"))
    if change.upn_after:
        claims.append((("address", change.upn_after.casefold()), f"The UPN {plain(change.upn_after)}"))
    if change.email_after and change.email_after.casefold() != (change.upn_after or "").casefold():
        claims.append((("address", change.email_after.casefold()), f"The email address {plain(change.email_after)}"))
    for attribute, kind, what in ((_SIP_ATTRIBUTE, "sip", "SIP URI"), (_SAM_ATTRIBUTE, "sam", "username")):
        value = _new_value(plan, attribute)
        if value:
            claims.append(((kind, value.casefold()), f"The {what} {plain(value)}"))
    return claims


def _new_value(plan: Plan, attribute: str) -> str | None:
    """The value a modify or add-user step of ``plan`` gives ``attribute`` (case-insensitive name)."""
    for step in plan.steps:
        if step.action in (p.MODIFY, p.ADD_USER) and isinstance(step.after, dict):
            for name, values in step.after.items():
                if name.casefold() == attribute and values:
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
