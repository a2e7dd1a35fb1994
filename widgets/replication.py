"""The line a job's result screen shows once the job is done: whether its writes have
reached the other domain controllers ("Done, replicated to 2 of 2 domain controllers",
or the DCs not reached yet) and any duplicate of its values they show — the same words
as the command line's, from :func:`core.convergence.aftermath`, asked off the event loop
and bounded in time (it waits a few seconds at most)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.widgets import Static

from core.convergence import Aftermath, aftermath
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


class ReplicationNote(Static):
    """Where a done job's writes are, and their duplicates; ``checked`` once known."""

    def __init__(self, session: Session, job: str) -> None:
        super().__init__(Text(CHECKING, style="dim italic"), id="replication")
        self.session = session
        self.job = job
        self.checked: Aftermath | None = None

    def on_mount(self) -> None:
        self.check()

    @work(exclusive=True, group="replication", exit_on_error=False)
    async def check(self) -> None:
        try:
            record = await asyncio.to_thread(self.session.journal.job, self.job)
            self.checked = await aftermath(self.session.directory, record, self.session.audit, self.session.operator)
        except TenantryError as error:
            self.update(Text(f"Replication not known: {plain(str(error))}", style="italic"))
            return
        except Exception as error:  # a defect below: one sentence here, the details in the log
            log.exception("the replication check of job %s failed", self.job)
            self.update(Text(f"Replication not known ({type(error).__name__}); the details are in the log.", style="italic"))
            return
        self.update(replication_text(self.checked))
