"""One way into a move or a copy, for the command line and the console alike:
:func:`attempt` makes the final preflight (a refusal is audited, so every refusal leaves
its row whoever asked), then :meth:`Attempt.run` runs the plan and :attr:`Attempt.status`
says how it ended.

Checks made while an admin types (the console's live checks) are not attempts: they use
the planners directly and leave no audit row.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

from core.copy import CopyRequest
from core.execute import Event, Executor, audit_refusal
from core.move import MoveRequest
from core.plan import Plan
from core.replan import request_meta

if TYPE_CHECKING:
    from core.session import Session

Request = Union[MoveRequest, CopyRequest]


@dataclass
class Attempt:
    """A request checked by the core: its plan, then (if run) the job and how it ended."""

    session: Session
    plan: Plan
    password: str | None = field(default=None, repr=False)  # a copy's new password, in memory only
    request: Request | None = None  # what was asked: the job keeps it, to be planned again if its user changes first
    job: str | None = None
    status: str = "planned"  # then "refused", or the job's end: done, rolled_back, needs_attention

    def run(self, executor: Executor | None = None) -> AsyncIterator[Event]:
        """The job's events (``executor``: the session's unless given, e.g. one to cancel)."""
        return self._run(executor or self.session.executor())

    async def _run(self, executor: Executor) -> AsyncIterator[Event]:
        secrets = {"password": self.password} if self.password is not None else None
        meta = {"request": request_meta(self.request)} if self.request is not None else None
        async for event in executor.run(self.plan, self.session.operator, secrets=secrets, meta=meta):
            self.job = event.job
            if event.kind == "job_finished":
                self.status = event.status or "done"
            yield event


async def attempt(session: Session, request: Request, *, password: str | None = None) -> Attempt:
    """The core's preflight of ``request`` as the session's operator (a copy's password
    against the domain's policy, if given); a refusal is audited."""
    if isinstance(request, CopyRequest):
        plan = await session.copier().preflight(session.operator, request, password)
    else:
        plan = await session.planner().preflight(session.operator, request)
    result = Attempt(session, plan, password, request=request)
    if not plan.ok:
        audit_refusal(session.audit, session.operator, plan)
        result.status = "refused"
    return result
