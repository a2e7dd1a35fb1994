"""A wizard's run step: the job it is given runs in the progress pane (see
:class:`~screens.running_job.JobRun` for the batching, ``ctrl+c`` and the no-leaving
rule); it dismisses with the :class:`Outcome`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.widgets import Footer, Header

from core.errors import TenantryError
from core.execute import CANCELLED, Event, Executor
from core.model import Customer
from core.plan import Plan, Step, UserChange
from screens.running_job import JobRun
from screens.wizard.engine import Place
from screens.wizard.step import StepParts
from widgets.progress import ProgressPane

log = logging.getLogger("tenantry.console")

Job = Callable[[Executor], AsyncIterator[Event]]
"""What a run step runs: the plan handed to the executor it is given (with any secret)."""


@dataclass(frozen=True)
class Outcome:
    """How a run ended: ``done``, ``rolled_back``, ``needs_attention`` or ``refused``."""

    status: str
    message: str
    job: str | None
    change: UserChange | None
    destination: Customer | None

    @property
    def ending(self) -> str:
        """The status, or ``cancelled`` for a job the operator cancelled (rolled back)."""
        return "cancelled" if self.status == "rolled_back" and self.message == CANCELLED else self.status


class RunStep(StepParts, JobRun):
    """Runs ``job`` with an executor from ``executor``; each plan step is one row, named by ``summary``."""

    def __init__(self, draft, *, place: Place, plan: Plan, job: Job, executor: Callable[[], Executor],
                 summary: Callable[[Step, Plan], Text], destination: Customer | None) -> None:
        super().__init__()
        self.draft = draft
        self.place = place
        self.plan = plan
        self.job = job
        self.executor = executor
        self.summary = summary
        self.destination = destination
        self.WHAT = place.wizard.what

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.trail()
        yield ProgressPane([self.summary(step, self.plan) for step in self.plan.steps])
        yield Footer()

    @work(exclusive=True, group="job", exit_on_error=False)
    async def run_job(self) -> None:
        self.pane.start()
        last: Event | None = None
        error: str | None = None
        try:
            async for event in self.job(self.executor_for_job(self.executor)):
                self.received(event)
                last = event
        except TenantryError as failure:
            error = str(failure)
        except Exception as failure:  # a defect below: one sentence here, the details in the log
            log.exception("the %s failed unexpectedly", self.WHAT)
            error = f"The {self.WHAT} stopped unexpectedly ({type(failure).__name__}); the details are in the log."
        self._flush()
        change = self.plan.users[0] if self.plan.users else None
        if error is not None and (last is None or last.kind != "job_finished"):
            self.pane.fail(error)
            # stopped mid-job: the journal keeps it for resume or rollback
            status = "refused" if last is None else "needs_attention"
            outcome = Outcome(status, error, last.job if last else None, change, self.destination)
        else:
            assert last is not None
            outcome = Outcome(last.status or "done", last.message, last.job, change, self.destination)
        self.ended(outcome)
