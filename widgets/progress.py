"""The progress pane of a running job: its steps (pending, running, done, failed,
undone), the elapsed time and a log, and the bulk job's pane with one row per user.
Events are applied in batches, never one repaint each, so a fast job cannot flood a
slow link."""

from __future__ import annotations

import time
from typing import Mapping, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Log, Static

from core.bulk import RowEvent, RowResult
from core.execute import CANCELLED, Event
from core.text import plain
from widgets import RowTable, column_widths

STATES = {
    "pending": ("·", "pending", "dim"),
    "running": ("▶", "running", "bold"),
    "done": ("✓", "done", "green"),
    "failed": ("✗", "failed", "bold red"),
    "undone": ("↺", "undone", "yellow"),
    "undo_failed": ("!", "undo failed", "bold red"),
    "interrupted": ("?", "interrupted", "bold yellow"),  # a journal step a crash left running
    "undoing": ("?", "undoing", "bold yellow"),  # a journal step a crash left half undone
}
_EVENT_STATE = {
    "step_started": "running", "step_done": "done", "step_failed": "failed",
    "step_undone": "undone", "undo_failed": "undo_failed",
}
FINAL = {
    "done": "Done: every step succeeded.",
    "rolled_back": "Failed and rolled back: every done step was undone; nothing changed.",
    "cancelled": "Cancelled and rolled back: every done step undone; nothing changed.",
    "needs_attention": "Failed, and the rollback did not finish: the job needs attention (resume or roll back it from the jobs list).",
}
CANCELLING = "cancelling: finishing the step in flight, then undoing the done steps"


class ProgressPane(Vertical):
    """The steps of a running job (pending, running, done, failed, undone), the elapsed
    time and a log. Events are applied in batches (:meth:`apply`), never one repaint each."""

    clock = staticmethod(time.monotonic)  # when events come and the clock reads (tests freeze it)

    def __init__(
        self,
        steps: Sequence[Text],
        *,
        id: str | None = "progress",
        states: Sequence[str] | None = None,
        final: Mapping[str, str] | None = None,
    ) -> None:
        """``states``: where each step starts (a resumed job's done steps); ``final``:
        the sentences that replace :data:`FINAL`'s for this job's end."""
        super().__init__(id=id)
        self.descriptions = list(steps)
        self.states = list(states) if states is not None else ["pending"] * len(steps)
        self.final = {**FINAL, **(final or {})}
        self.started: float | None = None
        self.finished: float | None = None
        self.status: str | None = None  # the job's final status
        self.job: str | None = None
        self.rolling_back = False
        self.rollback_reason: str | None = None
        self.cancelled = False  # the operator asked to cancel (ctrl+c, confirmed)
        self.failure: Text | None = None  # why the job could not start or stopped (fail): shown until the end

    def compose(self) -> ComposeResult:
        yield Static(id="progress-status")
        yield RowTable(id="progress-steps", cursor_type="none", show_cursor=False, zebra_stripes=False)
        yield Log(id="progress-log", max_lines=500, auto_scroll=True)

    def on_mount(self) -> None:
        self._fill(self.query_one("#progress-steps", RowTable))
        self._show_status()

    def _fill(self, table: RowTable) -> None:
        """The table's columns and its rows, all pending (Textual calls every class's
        ``on_mount``: a subclass changes this instead)."""
        width = max(20, self.app.size.width - 2 - 11 - 4 - 7)
        table.add_column(Text("State"), width=11, key="state")
        table.add_column(Text("#"), width=2, key="n")
        table.add_column(Text("Step"), width=width, key="step")
        for index, description in enumerate(self.descriptions):
            table.add_row(self._state_cell(self.states[index]), Text(str(index + 1)), description, key=str(index))

    @staticmethod
    def _state_cell(state: str) -> Text:
        glyph, word, style = STATES[state]
        return Text(f"{glyph} {word}", style=style, no_wrap=True)

    def start(self) -> None:
        self.started = self.clock()
        self._show_status()

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished if self.finished is not None else self.clock()) - self.started

    def cancelling(self) -> None:
        """The operator confirmed the cancel: say what happens next."""
        self.cancelled = True
        self.query_one("#progress-log", Log).write_line(f"{self.elapsed:6.2f}s {CANCELLING}")
        self._show_status()

    def apply(self, events: Sequence[tuple[float, Event]]) -> None:
        """Show a batch of the executor's events (each with the :attr:`clock` reading it
        came at): one repaint for all of them."""
        table = self.query_one("#progress-steps", RowTable)
        log = self.query_one("#progress-log", Log)
        lines: list[str] = []
        with self.app.batch_update():
            for at, event in events:
                self.job = event.job or self.job
                state = _EVENT_STATE.get(event.kind)
                if state is not None and event.index is not None and 0 <= event.index < len(self.states):
                    self.states[event.index] = state
                    table.set_cell(str(event.index), "state", self._state_cell(state))
                    if state in ("running", "failed", "undone"):
                        table.move_cursor(row=event.index, animate=False, scroll=True)
                lines.extend(self._log_lines(event, at - (self.started or at)))
                if event.kind == "rolling_back":
                    self.rolling_back = True
                    self.rollback_reason = event.message
                if event.kind == "job_finished":
                    self.finished = at
                    self.status = event.status
            if lines:
                log.write_lines(lines)
            self._show_status()

    def fail(self, sentence: str, outcome: str = "Nothing was written.") -> None:
        """The job could not start (refused or an error): nothing was written — or, with
        another ``outcome`` sentence, it stopped part-way."""
        self.finished = self.clock()
        self.status = "refused"
        self.query_one("#progress-log", Log).write_line(plain(sentence))
        self.failure = Text.assemble(("✗ ", "bold"), plain(sentence), " ", outcome)
        self._show_status()

    def _log_lines(self, event: Event, elapsed: float) -> list[str]:
        at = f"{elapsed:6.2f}s "
        step = f"step {event.index + 1}" if event.index is not None else ""
        message = plain(event.message)
        if event.kind == "job_started":
            return [f"{at}job {plain(event.job)} started: {message}"]
        if event.kind == "waiting":
            return [f"{at}{message}"]
        if event.kind == "step_started":
            return [f"{at}{step} running: {self._plain(event.index)}"]
        if event.kind == "step_done":
            return [f"{at}{step} done" + (f": {message}" if message else "")]
        if event.kind == "step_failed":
            return [f"{at}{step} FAILED: {message}"]
        if event.kind == "rolling_back":
            return [f"{at}rolling back: {message}"]
        if event.kind == "step_undone":
            return [f"{at}{step} undone"]
        if event.kind == "undo_failed":
            return [f"{at}{step} UNDO FAILED: {message}"]
        if event.kind == "job_finished":
            return [f"{at}job {plain(event.status)}: {message}"]
        return [f"{at}{plain(event.kind)} {message}"]

    def _plain(self, index: int | None) -> str:
        if index is None or not 0 <= index < len(self.descriptions):
            return ""
        return self.descriptions[index].plain

    def _show_status(self) -> None:
        # a failure stays: a later clock tick must not say "Running…" again
        self.query_one("#progress-status", Static).update(self.failure or self._status())

    def _status(self) -> Text:
        """The status line as the job stands (the states, the clock, the end)."""
        done = sum(1 for s in self.states if s == "done")
        undone = sum(1 for s in self.states if s == "undone")
        clock = f"{self.elapsed:.1f} s"
        final = "cancelled" if self.status == "rolled_back" and self.rollback_reason == CANCELLED else self.status
        if final in self.final:
            return Text.assemble((self.final[final], "bold"), f"  ({clock})")
        if self.cancelled and not self.rolling_back:
            return Text(f"Cancelling… the step in flight finishes first  ({clock})", style="bold")
        if self.rolling_back:
            return Text(f"Rolling back… {undone} step(s) undone  ({clock})", style="bold")
        if self.started is None:
            return Text(f"{len(self.states)} steps to run")
        return Text(f"Running… {done}/{len(self.states)} steps done  ({clock})")

    def tick(self) -> None:
        """Refresh the clock (called with each batch, about four times a second)."""
        self._show_status()


# -- the progress pane of a bulk job: one row per user ------------------------------------------

ROW_STATES = {  # a user's job as a whole (the steps' glyphs where they mean the same)
    **{state: STATES[state] for state in ("pending", "running", "done", "failed")},
    "rolling_back": ("↺", "rolling back", "bold yellow"),
    "rolled_back": ("↺", "rolled back", "yellow"),
    "needs_attention": ("!", "attention", "bold red"),
    "refused": ("–", "not run", "dim"),
}
BULK_CANCELLING = "cancelling: running users roll back after their step in flight"


class BulkProgressPane(ProgressPane):
    """A bulk job: one row per user (pending, running, done, rolled back, failed) with
    its current step or its outcome, the elapsed time, and one log for every user.
    ``rows`` are ``(label, who, becomes)``: the row's label in the bulk plan, the user's
    name and what it becomes (its new UPN), each already sanitised."""

    def __init__(self, rows: Sequence[tuple[str, Text, Text]], *, id: str | None = "progress") -> None:
        super().__init__([who for _, who, _ in rows], id=id)
        self.labels = [label for label, _, _ in rows]
        self.becomes = [becomes for _, _, becomes in rows]
        self.row_of = {label: index for index, label in enumerate(self.labels)}

    def _fill(self, table: RowTable) -> None:
        for (key, label), width in zip((("state", "State"), ("who", "User"), ("now", "Progress")),
                                       column_widths(self.app.size.width, (13, None, None), (1, 1))):
            table.add_column(Text(label), width=width, key=key)
        for index, who in enumerate(self.descriptions):
            table.add_row(self._row_state("pending"), who, self._becomes(index), key=str(index))

    @staticmethod
    def _row_state(state: str) -> Text:
        glyph, word, style = ROW_STATES[state]
        return Text(f"{glyph} {word}", style=style, no_wrap=True)

    def _becomes(self, index: int) -> Text:
        return Text.assemble(("→ ", "dim"), self.becomes[index], no_wrap=True, overflow="ellipsis")

    def _set(self, table: RowTable, index: int, state: str | None, now: Text | str | None) -> None:
        if state is not None and state != self.states[index]:
            self.states[index] = state
            table.set_cell(str(index), "state", self._row_state(state))
        if now is not None:
            table.set_cell(str(index), "now", now if isinstance(now, Text) else Text(plain(now), no_wrap=True, overflow="ellipsis"))

    def apply(self, events: Sequence[tuple[float, RowEvent]]) -> None:  # type: ignore[override]
        """Show a batch of the bulk job's row events: one repaint for all of them."""
        table = self.query_one("#progress-steps", RowTable)
        lines: list[str] = []
        with self.app.batch_update():
            for at, item in events:
                index = self.row_of.get(item.row)
                if index is None:
                    continue
                lines.extend(self._row_event(table, index, item.event, at - (self.started or at)))
            if lines:
                self.query_one("#progress-log", Log).write_lines(lines)
            self._show_status()

    def _row_event(self, table: RowTable, index: int, event: Event, elapsed: float) -> list[str]:
        at, who = f"{elapsed:6.2f}s ", self.descriptions[index].plain
        step = f"step {event.index + 1}" if event.index is not None else ""
        message = plain(event.message)
        if event.kind == "job_started":
            self._set(table, index, "running", "starting")
            table.move_cursor(row=index, animate=False, scroll=True)
            return [f"{at}{who}: job {plain(event.job)} started"]
        if event.kind == "step_started":
            self._set(table, index, None, f"{step} running")
        elif event.kind == "step_failed":
            self._set(table, index, None, f"{step} failed: {message}")
            return [f"{at}{who}: {step} FAILED: {message}"]
        elif event.kind == "rolling_back":
            self._set(table, index, "rolling_back", f"rolling back: {message}")
            return [f"{at}{who}: rolling back: {message}"]
        elif event.kind == "step_undone":
            self._set(table, index, None, f"{step} undone")
            return [f"{at}{who}: {step} undone"]
        elif event.kind == "undo_failed":
            return [f"{at}{who}: {step} UNDO FAILED: {message}"]
        elif event.kind in ("replanned", "waiting"):
            return [f"{at}{who}: {message}"]
        elif event.kind == "job_finished":
            status = event.status if event.status in ROW_STATES else "failed"
            self._set(table, index, status, self._becomes(index) if status == "done" else message)
            return [f"{at}{who}: {plain(event.status)}" + (f": {message}" if status != "done" else "")]
        return []

    def show_results(self, results: Mapping[str, RowResult], *, earlier: bool = False) -> None:
        """Rows that ended without an event of their own (not started after a cancel, or
        refused when they came to run; ``earlier``: finished before this run, a resumed
        batch's) take their result."""
        table = self.query_one("#progress-steps", RowTable)
        lines = []
        for label, result in results.items():
            index = self.row_of.get(label)
            if index is not None and self.states[index] == "pending":  # no event of its own came
                state = result.status if result.status in ROW_STATES else "failed"
                self._set(table, index, state, "before this run" if earlier else result.message)
                if not earlier:
                    lines.append(f"{self.elapsed:6.2f}s {self.descriptions[index].plain}: not run: {plain(result.message)}")
        if lines:
            self.query_one("#progress-log", Log).write_lines(lines)
        self._show_status()

    def cancelling(self) -> None:
        self.cancelled = True
        self.query_one("#progress-log", Log).write_line(f"{self.elapsed:6.2f}s {BULK_CANCELLING}")
        self._show_status()

    def finish(self) -> None:
        """Every row has ended."""
        self.finished = self.clock()
        self.status = "done" if all(s == "done" for s in self.states) else "incomplete"
        self._show_status()

    def _status(self) -> Text:
        counts = {state: self.states.count(state) for state in ROW_STATES}
        total, done, clock = len(self.states), counts["done"], f"{self.elapsed:.1f} s"
        others = ", ".join(f"{counts[s]} {ROW_STATES[s][1]}" for s in ROW_STATES
                           if s not in ("done", "pending") and counts[s])
        if self.status is not None:
            headline = "Cancelled: " if self.cancelled else ("Done: " if self.status == "done" else "Finished: ")
            return Text.assemble((f"{headline}{done} of {total} users moved", "bold"), f"{'; ' + others if others else ''}  ({clock})")
        if self.started is None:
            return Text(f"{total} users to move")
        state = "Cancelling (no new user starts)…" if self.cancelled else "Running…"
        return Text(f"{state} {done} of {total} moved{', ' + others if others else ''}  ({clock})", style="bold" if self.cancelled else "")
