"""Move wizard, step 5: the job runs; the progress pane shows each step (pending,
running, done, failed, undone), the elapsed time and a log. The executor's events are
applied in batches about four times a second, so a fast job cannot flood a slow link."""

from __future__ import annotations

import logging
import time
from typing import Callable

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header

from core.errors import TenantryError
from core.execute import Event, Executor
from core.plan import Plan
from screens.move_flow import MoveDraft, Outcome, WizardStep
from screens.move_review import step_summary
from screens.move_step import StepParts
from tui.widgets import ProgressPane

log = logging.getLogger("tenantry.console")

BATCH = 0.25  # seconds between repaints of the progress pane


class RunStep(StepParts, Screen[Outcome]):
    STEP = WizardStep.RUN
    BINDINGS = [
        Binding("enter", "finish", "Continue", priority=True, id="move.continue"),
        Binding("escape", "finish", "Continue", show=False, id="move.close"),
        Binding("q", "hold", "Quit", show=False, id="move.hold"),
    ]

    def __init__(self, draft: MoveDraft, plan: Plan, executor: Callable[[], Executor]) -> None:
        super().__init__()
        self.draft = draft
        self.plan = plan
        self.executor = executor
        self.outcome: Outcome | None = None
        self._pending: list[tuple[float, Event]] = []  # (when it came, event), until the next batch

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.trail()
        yield ProgressPane([step_summary(step, self.plan) for step in self.plan.steps])
        yield Footer()

    def on_mount(self) -> None:
        self._ticker = self.set_interval(BATCH, self._flush)
        self.run_job()

    @property
    def pane(self) -> ProgressPane:
        return self.query_one(ProgressPane)

    @work(exclusive=True, group="job", exit_on_error=False)
    async def run_job(self) -> None:
        session = self.draft.session
        self.pane.start()
        last: Event | None = None
        error: str | None = None
        try:
            async for event in self.executor().run(self.plan, session.operator):
                self._pending.append((time.monotonic(), event))
                last = event
        except TenantryError as failure:
            error = str(failure)
        except Exception as failure:  # a defect below: one sentence here, the details in the log
            log.exception("the move failed unexpectedly")
            error = f"The move stopped unexpectedly ({type(failure).__name__}); the details are in the log."
        self._ticker.stop()
        self._flush()
        if error is not None and (last is None or last.kind != "job_finished"):
            if last is None:
                self.pane.fail(error)
                status = "refused"
            else:  # stopped mid-job: the journal keeps it for resume or rollback
                self.pane.fail(error)
                status = "needs_attention"
            self.outcome = Outcome(status, error, last.job if last else None, self.plan.users[0], self.draft.destination)
        else:
            assert last is not None
            self.outcome = Outcome(last.status or "done", last.message, last.job, self.plan.users[0], self.draft.destination)
        self.refresh_bindings()

    def _flush(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            self.pane.apply(batch)
        else:
            self.pane.tick()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "finish":
            return True if self.outcome is not None else None
        return True

    def action_finish(self) -> None:
        if self.outcome is None:
            self.notify("The move is running; it cannot be left half done.", markup=False)
            return
        self.dismiss(self.outcome)

    def action_hold(self) -> None:
        if self.outcome is None:
            self.notify("The move is running: wait for it to finish (or roll back) before quitting.", markup=False)
        else:
            self.app.exit()
