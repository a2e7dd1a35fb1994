"""Move wizard, step 5: the job runs; the progress pane shows each step (pending,
running, done, failed, undone), the elapsed time and a log. The executor's events are
applied in batches about four times a second, so a fast job cannot flood a slow link.

``ctrl+c`` while the job runs asks to cancel it; confirmed, the core finishes the step in
flight and undoes every done step, and the pane shows the undo live. Nothing leaves or
quits the console mid-job (see :meth:`TenantryApp.action_quit`)."""

from __future__ import annotations

import logging
from typing import Any, Callable

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Header, Static

from core.errors import TenantryError
from core.execute import Event, Executor
from core.plan import Plan
from screens.move_flow import MoveDraft, Outcome, WizardStep
from screens.move_review import step_summary
from screens.move_step import StepParts
from tui.progress import ProgressPane

log = logging.getLogger("tenantry.console")

BATCH = 0.25  # seconds between repaints of the progress pane


class CancelJob(ModalScreen[bool]):
    """``Cancel the move and roll back what is done?`` — ``enter`` yes, ``esc`` no."""

    BINDINGS = [
        Binding("enter", "answer(True)", "Cancel and roll back", priority=True, id="cancel.yes"),
        Binding("escape", "answer(False)", "Keep running", id="cancel.no"),
        Binding("ctrl+c", "nothing", show=False, priority=True, id="cancel.again"),  # a second ctrl+c decides nothing
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="cancel-box"):
            yield Static(Text(self.question, style="bold"), id="cancel-question")
            yield Static(Text("The step in flight finishes first; then every done step is undone.", style="italic"))
        yield Footer()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    def action_nothing(self) -> None:
        pass


class JobRun(Screen[Any]):
    """What a running job's screen shares: events batched onto its :class:`ProgressPane`,
    ``ctrl+c`` to cancel (confirmed, then rolled back by the core), and no leaving before
    the job has ended. A subclass composes the pane and starts :meth:`run_job`."""

    WHAT = "move"  # in "Cancel the move and roll back what is done?"
    BINDINGS = [
        Binding("enter", "finish", "Continue", priority=True, id="move.continue"),
        Binding("escape", "finish", "Continue", show=False, id="move.close"),
        Binding("ctrl+c", "cancel_job", "Cancel", priority=True, id="move.cancel"),
        Binding("q", "hold", "Quit", show=False, id="move.hold"),
    ]

    outcome: Any = None  # set when the job has ended

    def __init__(self) -> None:
        super().__init__()
        self._pending: list[tuple[float, Any]] = []  # (when it came, event), until the next batch
        self._executor: Executor | None = None
        self.cancel_requested = False

    @property
    def pane(self) -> ProgressPane:
        return self.query_one(ProgressPane)

    @property
    def job_running(self) -> bool:
        return self.outcome is None

    def on_mount(self) -> None:
        self._ticker = self.set_interval(BATCH, self._flush)
        self.run_job()

    def run_job(self) -> None:
        raise NotImplementedError

    def executor_for_job(self, make: Callable[[], Executor]) -> Executor:
        """The job's executor, kept to cancel it (a cancel confirmed before it existed applies)."""
        self._executor = make()
        if self.cancel_requested:
            self._executor.cancel()
        return self._executor

    def received(self, event: Any) -> None:
        self._pending.append((self.pane.clock(), event))

    def _flush(self) -> None:
        if self._pending:
            batch, self._pending = self._pending, []
            self.pane.apply(batch)
        else:
            self.pane.tick()

    def ended(self, outcome: Any) -> None:
        """The job is over: show the last events, then let the operator go on."""
        self._ticker.stop()
        self._flush()
        self.outcome = outcome
        self.refresh_bindings()

    # -- keys ------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "finish":
            return True if self.outcome is not None else None
        if action == "cancel_job":
            return self.job_running  # once over, ctrl+c is Textual's own again
        return True

    def action_cancel_job(self) -> None:
        if self.cancel_requested:
            self.notify("Already cancelling: the done steps are being undone.", markup=False)
            return
        self.app.push_screen(CancelJob(f"Cancel the {self.WHAT} and roll back what is done?"), self._cancel_answered)

    def _cancel_answered(self, yes: bool | None) -> None:
        if not yes:
            return
        if self.outcome is not None:
            self.notify(f"The {self.WHAT} had already ended; there was nothing to cancel.", markup=False)
            return
        self.cancel_requested = True
        if self._executor is not None:
            self._executor.cancel()
        self.pane.cancelling()
        self.refresh_bindings()

    def action_finish(self) -> None:
        if self.outcome is None:
            self.notify(f"The {self.WHAT} is running; it cannot be left half done (ctrl+c cancels it).", markup=False)
            return
        self.dismiss(self.outcome)

    def action_hold(self) -> None:
        if self.outcome is None:
            self.notify(f"The {self.WHAT} is running: wait for it to finish, or cancel it with ctrl+c, before quitting.", markup=False)
        else:
            self.app.exit()


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
