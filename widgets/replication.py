"""The line a job's result screen shows once the job is done: whether its writes have
reached the other domain controllers ("Done, replicated to 2 of 2 domain controllers",
or the DCs not reached yet) and any duplicate of its values they show — the same words
as the command line's, from :func:`core.convergence.aftermath`, asked off the event loop
and bounded in time (it waits a few seconds at most). A bulk result has one note for
all its done rows (:class:`RowsReplicationNote`, :func:`core.batch.row_aftermaths`)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Iterable, Mapping

from rich.text import Text
from textual import work
from textual.widgets import Static

from core.batch import row_aftermaths
from core.bulk import RowResult
from core.convergence import Aftermath, aftermath, rows_sentence
from core.errors import TenantryError
from core.text import plain

if TYPE_CHECKING:
    from core.session import Session

log = logging.getLogger("tenantry.console")
CHECKING = "Replication: asking the other domain controllers…"


def replication_text(after: Aftermath) -> Text:
    """``Done, replicated to N of M domain controllers.`` and a line per duplicate."""
    lines = [Text(f"Done, {plain(after.replication.sentence)}.", style="bold" if after.replication.missing else "")]
    lines += [Text.assemble(("⚠ Duplicate after replication: ", "bold"), duplicate.sentence + ".") for duplicate in after.duplicates]
    return Text("\n").join(lines)


def rows_replication_text(afters: Mapping[str, Aftermath]) -> Text:
    """``Done rows, replicated to N of M domain controllers.`` and a line per duplicate, naming its row."""
    if not afters:
        return Text("")
    missing = any(a.replication.missing for a in afters.values())
    lines = [Text(f"Done rows, {plain(rows_sentence(afters.values()))}.", style="bold" if missing else "")]
    lines += [Text.assemble(("⚠ Duplicate after replication ", "bold"), (f"({plain(row)})", "bold"), ": ", duplicate.sentence + ".")
              for row, after in afters.items() for duplicate in after.duplicates]
    return Text("\n").join(lines)


class ReplicationNote(Static):
    """Where a done job's writes are, and their duplicates; ``checked`` once known."""

    def __init__(self, session: Session, job: str) -> None:
        super().__init__(Text(CHECKING, style="dim italic"), id="replication")
        self.session = session
        self.job = job
        self.checked: Aftermath | None = None

    def on_mount(self) -> None:
        self.check()

    async def ask(self) -> Text:
        """Ask the DCs (bounded in time); the text to show."""
        record = await asyncio.to_thread(self.session.journal.job, self.job)
        self.checked = await aftermath(self.session.directory, record, self.session.audit, self.session.operator)
        return replication_text(self.checked)

    @work(exclusive=True, group="replication", exit_on_error=False)
    async def check(self) -> None:
        try:
            text = await self.ask()
        except TenantryError as error:
            self.update(Text(f"Replication not known: {plain(str(error))}", style="italic"))
            return
        except Exception as error:  # a defect below: one sentence here, the details in the log
            log.exception("the replication check of job %s failed", self.job)
            self.update(Text(f"Replication not known ({type(error).__name__}); the details are in the log.", style="italic"))
            return
        self.update(text)


class RowsReplicationNote(ReplicationNote):
    """:class:`ReplicationNote` of every row of a bulk run done in it (``earlier``: rows
    that ended before it, left out); ``checked``: row label → its aftermath, once known."""

    def __init__(self, session: Session, results: Iterable[RowResult], earlier: Iterable[str] = ()) -> None:
        super().__init__(session, "")
        self.results = {r.row: r for r in results}
        self.earlier = tuple(earlier)
        self.rows_checked: dict[str, Aftermath] | None = None

    async def ask(self) -> Text:
        s = self.session
        self.rows_checked = await row_aftermaths(s.directory, s.journal, s.audit, s.operator, self.results, earlier=self.earlier)
        return rows_replication_text(self.rows_checked)
