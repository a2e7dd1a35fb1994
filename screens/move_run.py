"""Move wizard, step 5: the job runs in the progress pane (see
:class:`~screens.running_job.JobRun` for the batching, ``ctrl+c`` and the no-leaving rule)."""

from __future__ import annotations

import logging
from typing import Callable

from textual import work
from textual.app import ComposeResult
from textual.widgets import Footer, Header

from core.errors import TenantryError
from core.execute import Event, Executor
from core.plan import Plan
from screens.move_flow import MoveDraft, Outcome, WizardStep
from screens.move_review import step_summary
from screens.move_step import StepParts
from screens.running_job import JobRun
from tui.progress import ProgressPane

log = logging.getLogger("tenantry.console")


class RunStep(StepParts, JobRun):
    STEP = WizardStep.RUN

    def __init__(self, draft: MoveDraft, plan: Plan, executor: Callable[[], Executor]) -> None:
        super().__init__()
        self.draft = draft
        self.plan = plan
        self.executor = executor

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.trail()
        yield ProgressPane([step_summary(step, self.plan) for step in self.plan.steps])
        yield Footer()

    @work(exclusive=True, group="job", exit_on_error=False)
    async def run_job(self) -> None:
        session = self.draft.session
        self.pane.start()
        last: Event | None = None
        error: str | None = None
        try:
            async for event in self.executor_for_job(self.executor).run(self.plan, session.operator):
                self.received(event)
                last = event
        except TenantryError as failure:
            error = str(failure)
        except Exception as failure:  # a defect below: one sentence here, the details in the log
            log.exception("the %s failed unexpectedly", self.WHAT)
            error = f"The {self.WHAT} stopped unexpectedly ({type(failure).__name__}); the details are in the log."
        self._flush()
        if error is not None and (last is None or last.kind != "job_finished"):
            self.pane.fail(error)
            # stopped mid-job: the journal keeps it for resume or rollback
            status = "refused" if last is None else "needs_attention"
            outcome = Outcome(status, error, last.job if last else None, self.plan.users[0], self.draft.destination)
        else:
            assert last is not None
            outcome = Outcome(last.status or "done", last.message, last.job, self.plan.users[0], self.draft.destination)
        self.ended(outcome)
