"""The jobs screen: the journal's jobs, newest first, all of them or only the unfinished
ones (``u``); a bulk job's rows (a batch) are one row with how many of them are done.
``enter`` opens a job's details, or a batch's rows (the same screen, for that batch); on
an unfinished job or batch ``r`` resumes it and ``b`` rolls it back, each after a
confirmation. The journal is read through the session (``core.journal``), in a worker,
never on the event loop."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Awaitable, Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from core.batch import Batch
from core.errors import TenantryError
from core.journal import JobRecord, Journal
from core.text import plain
from screens.job_detail import JobDetailScreen, status_text
from screens.job_actions import JobActions
from widgets import RowTable, cell, column_widths, when

if TYPE_CHECKING:
    from core.session import Session

log = logging.getLogger("tenantry.console")

# (column key, label); widths: fixed where given, else shared by SHARES
COLUMNS = (
    ("id", "Job"), ("kind", "Kind"), ("status", "Status"), ("started", "Started"),
    ("users", "Users"), ("customers", "From → to"), ("operator", "By"),
)
FIXED = (4, 4, 15, 11, None, None, None)
SHARES = (3, 4, 2)
LIMIT = 200


def short_id(job_id: str) -> str:
    """The random tail of a job id (``20240514-093211-ab12`` → ``ab12``)."""
    return job_id.rsplit("-", 1)[-1]


def job_row(job: JobRecord) -> tuple[Text, ...]:
    """The table cells of one job, each a sanitised ``Text`` (never markup)."""
    return (
        cell(short_id(job.id), "bold"),
        cell(job.kind),
        status_text(job.status),
        cell(when(job.created_at)),
        cell(", ".join(job.names)),
        cell(" → ".join(job.customers)),
        cell(operator_id(job)),
    )


def batch_cells(batch: Batch) -> tuple[Text, ...]:
    """The one row of a whole batch: its id, how many of its rows are done, its users."""
    first = batch.jobs[0]
    look = {"unfinished": "bold", "done": "green"}.get(batch.state, "yellow")
    users = f"{len(batch.jobs)} users: " + ", ".join(name for job in batch.jobs for name in job.names)
    return (
        cell(batch.id[:4], "bold reverse"),
        cell(batch.kind),
        cell(f"{batch.done} of {len(batch.jobs)} done", look),
        cell(when(first.created_at)),
        cell(users),
        cell(" → ".join(first.customers)),
        cell(operator_id(first)),
    )


def batch_summary(batch: Batch) -> Text:
    """Two lines under the table about the highlighted batch."""
    first = batch.jobs[0]
    line = Text.assemble(("Batch ", "dim"), plain(batch.id), f"  ·  {batch.state}: {plain(batch.tally())}",
                         ("  ·  enter: its rows", "dim"), no_wrap=True, overflow="ellipsis")
    second = Text.assemble(("started ", "dim"), when(first.created_at, full=True), ("  ·  by ", "dim"), plain(first.operator),
                           (" as ", "dim"), plain(first.bound_as), no_wrap=True, overflow="ellipsis")
    return Text("\n").join([line, second])


def grouped(journal: Journal, jobs: list[JobRecord]) -> list[JobRecord | Batch]:
    """``jobs`` with each batch's rows replaced by the whole batch (read in full), where its
    newest row was."""
    shown: list[JobRecord | Batch] = []
    seen: set[str] = set()
    for job in jobs:
        batch = job.batch
        if not batch:
            shown.append(job)
        elif batch not in seen:
            seen.add(batch)
            shown.append(Batch.load(journal, batch))
    return shown


def row_key(item: JobRecord | Batch) -> str:
    return f"batch {item.id}" if isinstance(item, Batch) else item.id


def operator_id(job: JobRecord) -> str:
    """Who ran the job, short: the account bound as (``sp-admin@example.net`` → ``sp-admin``),
    else the operator's name (the summary line has both in full)."""
    account, at, _domain = job.bound_as.partition("@")
    return account if at and account else job.operator


def job_summary(job: JobRecord) -> Text:
    """Two lines under the table about the highlighted job: what the columns cut."""
    first = Text.assemble(("Job ", "dim"), plain(job.id), f"  ·  {len(job.done_steps)}/{len(job.steps)} steps done",
                          no_wrap=True, overflow="ellipsis")
    if job.batch:
        first.append(f"  ·  batch {plain(job.batch)}, row {plain(job.meta.get('row', '?'))}")
    second = Text.assemble(
        ("updated ", "dim"), when(job.updated_at, full=True), ("  ·  by ", "dim"), plain(job.operator),
        (" as ", "dim"), plain(job.bound_as), no_wrap=True, overflow="ellipsis",
    )
    return Text("\n").join([first, second])


class JobTable(RowTable):
    BINDINGS = [Binding("enter", "select_cursor", "Details", id="jobs.details")]


class JobsScreen(JobActions, Screen[None]):
    """The journal's jobs, newest first (at most :data:`LIMIT`)."""

    CSS = """
    #jobs-filter { width: 1fr; padding: 0 1; }
    #jobs { height: 1fr; scrollbar-size-vertical: 1; }
    #job-summary { height: 2; padding: 0 1; background: $boost; text-wrap: nowrap; text-overflow: ellipsis; }
    """
    AUTO_FOCUS = "#jobs"
    SHOWN_BY = "jobs"  # the app's action that opens this screen (not offered again on it)
    BINDINGS = [
        Binding("r", "resume", "Resume", id="jobs.resume"),
        Binding("b", "rollback", "Roll back", id="jobs.rollback"),
        Binding("u", "unfinished", "Unfinished", id="jobs.unfinished"),
        Binding("escape", "close", "Back", id="jobs.back"),
    ]

    def __init__(self, session: Callable[[], Awaitable[Session]], *, unfinished: bool = False, batch: str | None = None) -> None:
        super().__init__()
        self.session = session
        self.unfinished = unfinished
        self.batch = batch  # only this batch's rows, each on its own
        self.jobs: dict[str, JobRecord | Batch] = {}  # by row key, the rows shown
        self._more = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="search-bar"):
            yield Static(id="jobs-filter")
            yield Static(Text("loading…"), id="count")
        yield Static(id="banner")
        yield JobTable(id="jobs", cursor_type="row", zebra_stripes=False)
        yield Static(id="job-summary")
        yield Footer(compact=True)  # six keys: they fit 80 columns only compact

    def on_mount(self) -> None:
        table = self.query_one(JobTable)
        for (key, label), width in zip(COLUMNS, column_widths(self.app.size.width, FIXED, SHARES)):
            table.add_column(Text(label), width=width, key=key)

    def on_screen_resume(self) -> None:
        self.load()  # on the first show, and back from a job's details or a run

    # -- reading -------------------------------------------------------------------------
    @work(exclusive=True, group="jobs", exit_on_error=False)
    async def load(self) -> None:
        self._show_filter()
        try:
            session = await self.session()
            found, more = await asyncio.to_thread(self._read, session.journal)
        except TenantryError as error:
            self._show_error(str(error))
            return
        except Exception as error:  # a defect below: one sentence here, the details in the log
            log.exception("reading the journal failed")
            self._show_error(f"The journal could not be read ({type(error).__name__}); the details are in the log.")
            return
        self.query_one("#banner", Static).remove_class("-shown")
        self.show_jobs(found, more=more)

    def _read(self, journal: Journal) -> tuple[list[JobRecord | Batch], bool]:
        """The rows to show (at most :data:`LIMIT` jobs' worth), and whether more were left out."""
        if self.batch is not None:
            rows = journal.batch_jobs(self.batch)
            return [job for job in rows if not (self.unfinished and job.is_finished)], False
        jobs = journal.jobs(LIMIT + 1, self.unfinished)
        return grouped(journal, jobs[:LIMIT]), len(jobs) > LIMIT

    def _show_error(self, sentence: str) -> None:
        banner = self.query_one("#banner", Static)
        banner.update(Text(plain(sentence)))
        banner.add_class("-shown")

    def show_jobs(self, jobs: list[JobRecord | Batch], *, more: bool) -> None:
        table = self.query_one(JobTable)
        current = self.current
        self._more = more
        self.jobs = {row_key(item): item for item in jobs}
        table.show_rows([(key, batch_cells(item) if isinstance(item, Batch) else job_row(item)) for key, item in self.jobs.items()],
                        row_key(current) if current is not None else None)
        count = len(jobs)
        what = ("unfinished " if self.unfinished else "") + ("row" if self.batch else "job")
        shown = f"first {count} shown" if more else f"{count} {what}{'' if count == 1 else 's'}"
        self.query_one("#count", Static).update(Text(shown))
        self._show_summary()

    def _show_filter(self) -> None:
        which = "Unfinished jobs" if self.unfinished else "All jobs"
        where = " in the journal, newest first"
        if self.batch is not None:
            which, where = f"{'Unfinished rows' if self.unfinished else 'Rows'} of batch ", Text(plain(self.batch))
        other = "all" if self.unfinished else "unfinished only"
        self.query_one("#jobs-filter", Static).update(
            Text.assemble((which, "bold"), where, (f"  (u: {other})", "dim"), no_wrap=True, overflow="ellipsis"))

    def _show_summary(self) -> None:
        current = self.current
        empty = "No unfinished job: nothing to resume or roll back." if self.unfinished else "No job in the journal yet."
        if current is None:
            summary = Text(empty, style="dim")
        else:
            summary = batch_summary(current) if isinstance(current, Batch) else job_summary(current)
        self.query_one("#job-summary", Static).update(summary)
        self.refresh_bindings()

    @property
    def current(self) -> JobRecord | Batch | None:
        """The job or batch under the cursor."""
        table = self.query_one(JobTable)
        if not self.jobs or table.cursor_row < 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return self.jobs.get(key.value) if key.value is not None else None

    @property
    def current_job(self) -> JobRecord | None:
        current = self.current
        return current if isinstance(current, JobRecord) else None

    @property
    def current_batch(self) -> Batch | None:
        current = self.current
        return current if isinstance(current, Batch) else None

    # -- keys ------------------------------------------------------------------------------
    @on(DataTable.RowHighlighted, "#jobs")
    def _highlighted(self) -> None:
        self._show_summary()

    @on(DataTable.RowSelected, "#jobs")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        chosen = self.jobs.get(event.row_key.value) if event.row_key.value else None
        if isinstance(chosen, Batch):
            self.app.push_screen(JobsScreen(self.session, batch=chosen.id))
        elif chosen is not None:
            self.app.push_screen(JobDetailScreen(chosen, self.session))

    def action_unfinished(self) -> None:
        self.unfinished = not self.unfinished
        self.load()

    def action_close(self) -> None:
        self.dismiss(None)

