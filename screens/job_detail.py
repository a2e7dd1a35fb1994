"""One job of the journal in full: who ran it, on whom, and every step with its state —
the error of a failed step or undo, and, for a job that needs attention, what remains.
``r`` resumes and ``b`` rolls back an unfinished job (after a confirmation)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from core.errors import TenantryError
from core.journal import JobRecord, JobStatus, StepRecord, StepState
from core.text import plain
from screens.job_actions import JobActions
from screens.job_run import PANE_STATE, job_plan, step_lines, who_and_where
from screens.plan_view import step_details
from widgets.progress import STATES
from widgets import field_grid, when

if TYPE_CHECKING:
    from core.session import Session

log = logging.getLogger("tenantry.console")

STATUS_LOOK = {
    JobStatus.PLANNED: ("planned", "bold"),
    JobStatus.RUNNING: ("running", "bold"),
    JobStatus.NEEDS_ATTENTION: ("needs attention", "bold red"),
    JobStatus.ROLLING_BACK: ("rolling back", "bold yellow"),
    JobStatus.DONE: ("done", "green"),
    JobStatus.ROLLED_BACK: ("rolled back", "yellow"),
    JobStatus.FAILED: ("failed", "red"),
}

def status_text(status: JobStatus) -> Text:
    word, style = STATUS_LOOK[status]
    return Text(word, style=style, no_wrap=True)


def state_cell(step: StepRecord) -> Text:
    glyph, word, style = STATES[PANE_STATE[step.state]]
    return Text(f"{glyph} {word:<11}", style=style, no_wrap=True)


def job_view(job: JobRecord) -> Group:
    """Everything the journal holds about ``job``, as literal text."""
    facts: list[tuple[str, Any]] = [
        ("Job", job.id),
        ("Status", status_text(job.status)),
        ("What", who_and_where(job)),
        ("By", f"{plain(job.operator)} (bound as {plain(job.bound_as)})"),
        ("Started", when(job.created_at, full=True)),
        ("Updated", when(job.updated_at, full=True)),
    ]
    if job.batch:
        facts.append(("Batch", f"{plain(job.batch)}, row {plain(job.meta.get('row', '?'))}"))
    for change in job.meta.get("users", []) if isinstance(job.meta.get("users"), list) else []:
        if isinstance(change, dict) and change.get("upn_after"):
            facts.append(("UPN", f"{plain(change.get('upn_before') or '(none)')}  →  {plain(change['upn_after'])}"))
    if job.error:
        facts.append(("Error", job.error))
    parts: list[Any] = [field_grid(facts), Text(""), Text(f"Steps ({len(job.done_steps)} of {len(job.steps)} done)", style="bold underline")]
    lines = step_lines(job)
    for record in job.steps:
        parts.append(Text.assemble(state_cell(record), f" {record.index + 1:>2} ", lines[record.index], no_wrap=True, overflow="ellipsis"))
        problems = [("error", record.error)] if record.error else []
        if record.undo_error:
            problems.append(("undo error", record.undo_error))
        if problems:
            parts.append(field_grid([(f"  {k}", Text(plain(v, single_line=False), style="bold")) for k, v in problems], label_width=12))
    if job.status is JobStatus.NEEDS_ATTENTION:
        parts += [Text(""), *remains(job)]
    parts += [Text(""), Text("The changes, step by step", style="bold underline")]
    for index, step in enumerate(job_plan(job).steps):
        parts.append(Text.assemble((f"{index + 1:>2} ", "bold"), lines[index], no_wrap=True, overflow="ellipsis"))
        parts.append(field_grid([(f"  {k}", v) for k, v in step_details(step)], label_width=18))
    return Group(*parts)


def remains(job: JobRecord) -> list[Text]:
    """What a job that needs attention still holds: steps in effect, and steps never run."""
    lines = [Text("What remains", style="bold underline")]
    lines.append(Text(plain(job.error or "The job stopped part-way.", single_line=False)))
    summaries = step_lines(job)
    in_effect = job.steps_to_undo
    if in_effect:
        lines.append(Text("In effect (b undoes these, last first):", style="bold"))
        lines += [Text.assemble(f"  {s.index + 1:>2} ", summaries[s.index], f"  ({PANE_STATE[s.state].replace('_', ' ')})") for s in in_effect]
    not_run = [s for s in job.steps if s.state is StepState.PENDING]
    if not_run:
        lines.append(Text(f"Never run: {len(not_run)} step(s), nothing to undo there.", style="dim"))
    if not in_effect:
        lines.append(Text("No step is in effect any more.", style="dim"))
    return lines


class JobDetailScreen(JobActions, Screen[None]):
    """One job, read fresh from the journal each time the screen shows."""

    CSS = "#job-detail { height: 1fr; padding: 0 1; scrollbar-size-vertical: 1; }"
    AUTO_FOCUS = "#job-detail"
    BINDINGS = [
        Binding("r", "resume", "Resume", id="job.resume"),
        Binding("b", "rollback", "Roll back", id="job.rollback"),
        Binding("escape", "close", "Back", id="job.back"),
    ]

    def __init__(self, job: JobRecord, session: Callable[[], Awaitable[Session]]) -> None:
        super().__init__()
        self.job = job
        self.session = session

    @property
    def current_job(self) -> JobRecord | None:
        return self.job

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="job-detail"):
            yield Static(job_view(self.job), id="job-detail-text")
        yield Footer()

    def on_screen_resume(self) -> None:
        self.load()

    @work(exclusive=True, group="job-detail", exit_on_error=False)
    async def load(self) -> None:
        try:
            session = await self.session()
            self.job = await asyncio.to_thread(session.journal.job, self.job.id)
        except TenantryError as error:
            self.notify(plain(str(error)), severity="error", markup=False)
            return
        except Exception as error:  # a defect below: one sentence here, the details in the log
            log.exception("reading a job failed")
            self.notify(f"The job could not be read ({type(error).__name__}); the details are in the log.", severity="error", markup=False)
            return
        self.query_one("#job-detail-text", Static).update(job_view(self.job))
        self.refresh_bindings()

    def action_close(self) -> None:
        self.dismiss(None)
