"""Widgets the screens share: sanitised cells, a left/right choice, the wizard's step
trail, the problem list and the progress pane of a running job.

Every directory or API string reaches the terminal through :func:`cell` /
:func:`core.text.plain` as a ``rich.text.Text``: never as markup.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Iterable, Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import DataTable, Log, Static

from core.text import plain

if TYPE_CHECKING:  # the console's first screen should not wait for the whole core to import
    from core.execute import Event


def cell(value: object, style: str = "") -> Text:
    """A one-line table cell: sanitised, never markup, cut with an ellipsis."""
    return Text(plain(value), style=style, no_wrap=True, overflow="ellipsis")


def column_widths(total: int, fixed: Sequence[int | None], shares: Sequence[int]) -> list[int]:
    """Widths for a table ``total`` cells wide: ``fixed`` widths where given, the rest
    shared out by ``shares`` (cell padding and a one-cell scrollbar accounted for)."""
    overhead = 2 * len(fixed) + 1
    room = max(total - overhead - sum(w or 0 for w in fixed), 6 * len(shares))
    flexible = [max(4, room * share // sum(shares)) for share in shares]
    flexible[0] += max(0, room - sum(flexible))  # rounding leftovers go to the first
    widths, it = [], iter(flexible)
    for width in fixed:
        widths.append(width if width is not None else next(it))
    return widths


class Choice(Widget, can_focus=True):
    """One value among a few, changed with ``←``/``→`` (no pop-up: one key per change)."""

    DEFAULT_CSS = """
    Choice { width: auto; height: 1; padding: 0 1; background: $boost; }
    Choice:focus { background: $surface-lighten-1; text-style: bold; }
    """
    BINDINGS = [
        Binding("right", "step(1)", "Change", key_display="←→", id="choice.next"),
        Binding("left", "step(-1)", "Previous", show=False, id="choice.previous"),
    ]

    index: reactive[int] = reactive(0)

    class Changed(Message):
        def __init__(self, choice: Choice, value: str) -> None:
            super().__init__()
            self.choice = choice
            self.value = value

        @property
        def control(self) -> Choice:
            return self.choice

    def __init__(self, options: Sequence[str], value: str | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.options = list(options) or [""]
        self.set_reactive(Choice.index, self.options.index(value) if value in self.options else 0)

    @property
    def value(self) -> str:
        return self.options[self.index]

    def render(self) -> Text:
        many = len(self.options) > 1
        return Text.assemble(("‹ " if many else "", "dim"), plain(self.value), (" ›" if many else "", "dim"), no_wrap=True)

    def action_step(self, delta: int) -> None:
        self.index = (self.index + delta) % len(self.options)

    def watch_index(self) -> None:
        self.post_message(self.Changed(self, self.value))


class StepTrail(Static):
    """The wizard's two-line header: what is being done, and which step this is."""

    def __init__(self, title: Text, steps: Sequence[str], current: int, *, id: str | None = "trail") -> None:
        trail = Text(no_wrap=True, overflow="ellipsis")
        for index, name in enumerate(steps):
            if index:
                trail.append(" › ", style="dim")
            style = "reverse bold" if index == current else ("" if index < current else "dim")
            trail.append(f" {index + 1} {name} ", style=style)
        title = title.copy()
        title.no_wrap, title.overflow = True, "ellipsis"
        super().__init__(Text("\n").join([title, trail]), id=id)


class ProblemList(Static):
    """What blocks this step, every reason at once (hidden when there is none)."""

    def show(self, problems: Iterable[str], note: str | None = None) -> None:
        self.remove_class("-checking")
        lines = [Text.assemble(("✗ ", "bold"), plain(message)) for message in problems]
        self.set_class(bool(lines), "-blocking")
        if note:
            lines.append(Text(plain(note), style="italic"))
        self.set_class(bool(lines), "-shown")
        self.update(Text("\n").join(lines) if lines else Text(""))


# -- the progress pane ------------------------------------------------------------------------

STATES = {
    "pending": ("·", "pending", "dim"),
    "running": ("▶", "running", "bold"),
    "done": ("✓", "done", "green"),
    "failed": ("✗", "failed", "bold red"),
    "undone": ("↺", "undone", "yellow"),
    "undo_failed": ("!", "undo failed", "bold red"),
}
_EVENT_STATE = {
    "step_started": "running", "step_done": "done", "step_failed": "failed",
    "step_undone": "undone", "undo_failed": "undo_failed",
}
FINAL = {
    "done": "Done: every step succeeded.",
    "rolled_back": "Failed and rolled back: every done step was undone; nothing changed.",
    "needs_attention": "Failed, and the rollback did not finish: the job needs attention (resume or roll back it from the jobs list).",
}


class ProgressPane(Vertical):
    """The steps of a running job (pending, running, done, failed, undone), the elapsed
    time and a log. Events are applied in batches (:meth:`apply`), never one repaint each."""

    def __init__(self, steps: Sequence[Text], *, id: str | None = "progress") -> None:
        super().__init__(id=id)
        self.descriptions = list(steps)
        self.states = ["pending"] * len(steps)
        self.started: float | None = None
        self.finished: float | None = None
        self.status: str | None = None  # the job's final status
        self.job: str | None = None
        self.rolling_back = False

    def compose(self) -> ComposeResult:
        yield Static(id="progress-status")
        yield DataTable(id="progress-steps", cursor_type="none", show_cursor=False, zebra_stripes=False)
        yield Log(id="progress-log", max_lines=500, auto_scroll=True)

    def on_mount(self) -> None:
        table = self.query_one("#progress-steps", DataTable)
        width = max(20, self.app.size.width - 2 - 11 - 4 - 7)
        table.add_column(Text("State"), width=11, key="state")
        table.add_column(Text("#"), width=2, key="n")
        table.add_column(Text("Step"), width=width, key="step")
        for index, description in enumerate(self.descriptions):
            table.add_row(self._state_cell("pending"), Text(str(index + 1)), description, key=str(index))
        self._show_status()

    @staticmethod
    def _state_cell(state: str) -> Text:
        glyph, word, style = STATES[state]
        return Text(f"{glyph} {word}", style=style, no_wrap=True)

    def start(self) -> None:
        self.started = time.monotonic()
        self._show_status()

    @property
    def elapsed(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started

    def apply(self, events: Sequence[tuple[float, Event]]) -> None:
        """Show a batch of the executor's events (each with the ``time.monotonic()`` it
        came at): one repaint for all of them."""
        table = self.query_one("#progress-steps", DataTable)
        log = self.query_one("#progress-log", Log)
        lines: list[str] = []
        with self.app.batch_update():
            for at, event in events:
                self.job = event.job or self.job
                state = _EVENT_STATE.get(event.kind)
                if state is not None and event.index is not None and 0 <= event.index < len(self.states):
                    self.states[event.index] = state
                    table.update_cell(str(event.index), "state", self._state_cell(state))
                    if state in ("running", "failed"):
                        table.move_cursor(row=event.index, animate=False, scroll=True)
                lines.extend(self._log_lines(event, at - (self.started or at)))
                if event.kind == "rolling_back":
                    self.rolling_back = True
                if event.kind == "job_finished":
                    self.finished = at
                    self.status = event.status
            if lines:
                log.write_lines(lines)
            self._show_status()

    def fail(self, sentence: str) -> None:
        """The job could not start (refused or an error): nothing was written."""
        self.finished = time.monotonic()
        self.status = "refused"
        self.query_one("#progress-log", Log).write_line(plain(sentence))
        self._show_status(Text.assemble(("✗ ", "bold"), plain(sentence), " Nothing was written."))

    def _log_lines(self, event: Event, elapsed: float) -> list[str]:
        at = f"{elapsed:6.2f}s "
        step = f"step {event.index + 1}" if event.index is not None else ""
        message = plain(event.message)
        if event.kind == "job_started":
            return [f"{at}job {plain(event.job)} started: {message}"]
        if event.kind == "step_started":
            return [f"{at}{step} running: {self._plain(event.index)}"]
        if event.kind == "step_done":
            return [f"{at}{step} done"]
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

    def _show_status(self, text: Text | None = None) -> None:
        if text is None:
            done = sum(1 for s in self.states if s == "done")
            undone = sum(1 for s in self.states if s == "undone")
            clock = f"{self.elapsed:.1f} s"
            if self.status in FINAL:
                text = Text.assemble((FINAL[self.status], "bold"), f"  ({clock})")
            elif self.rolling_back:
                text = Text(f"Rolling back… {undone} step(s) undone  ({clock})", style="bold")
            elif self.started is None:
                text = Text(f"{len(self.states)} steps to run")
            else:
                text = Text(f"Running… {done}/{len(self.states)} steps done  ({clock})")
        self.query_one("#progress-status", Static).update(text)

    def tick(self) -> None:
        """Refresh the clock (called with each batch, about four times a second)."""
        self._show_status()
