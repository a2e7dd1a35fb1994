"""What every running job's screen shares (a move, a copy, a bulk move, a resumed job):
the executor's events applied to the progress pane in batches about four times a second,
so a fast job cannot flood a slow link; ``ctrl+c`` to cancel, confirmed, after which the
core finishes the step in flight and undoes every done step, live in the pane; and no
leaving or quitting the console mid-job (see :meth:`TenantryApp.action_quit`)."""

from __future__ import annotations

import logging
from typing import Any, AsyncIterator, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Static

from core.errors import TenantryError
from core.execute import Executor
from widgets.progress import BulkProgressPane, ProgressPane

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
        self._asking: CancelJob | None = None  # the cancel question, while it is open
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
        self.last_event = event

    last_event: Any = None  # the newest event the job sent

    async def follow(self, events: AsyncIterator[Any], what: str) -> str | None:
        """Show every event of ``events`` (in batches); the sentence that stopped them, if any."""
        try:
            async for event in events:
                self.received(event)
        except TenantryError as failure:
            return str(failure)
        except Exception as failure:  # a defect below: one sentence here, the details in the log
            log.exception("the %s failed unexpectedly", what)
            return f"The {what} stopped unexpectedly ({type(failure).__name__}); the details are in the log."
        finally:
            self._flush()
        return None

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
        if self._asking is not None and self.app.screen is self._asking:  # nothing left to cancel: the question goes
            self._asking.dismiss(None)
            self.notify(f"The {self.WHAT} ended before it could be cancelled.", markup=False)

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
        self._asking = CancelJob(f"Cancel the {self.WHAT} and roll back what is done?")
        self.app.push_screen(self._asking, self._cancel_answered)

    def _cancel_answered(self, yes: bool | None) -> None:
        self._asking = None
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


class RowsRun(JobRun):
    """A job of many users (a bulk move, a batch resumed): one progress row per user."""

    results: dict  # row label → RowResult, filled by the core as rows end

    @property
    def pane(self) -> BulkProgressPane:
        return self.query_one(BulkProgressPane)

    async def follow_rows(self, rows: AsyncIterator[Any], what: str) -> str | None:
        """:meth:`follow` the rows' events, then say how they ended; the error, if any."""
        self.pane.start()
        error = await self.follow(rows, what)
        if error is not None:
            self.pane.fail(error)
        else:
            self.pane.finish()
        return error

    def _flush(self) -> None:
        super()._flush()
        self.pane.show_results(self.results)  # rows that ended without starting (after a cancel)
