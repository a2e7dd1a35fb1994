"""Resuming or rolling back a whole bulk job (a batch) from the console, as ``tenantry
resume|rollback BATCH`` does it (:class:`core.batch.Batch`): the confirmation that says
exactly what will happen, the new users' password when copies still have to set it (it
is never kept), and the run with one progress row per user of the batch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.widgets import Footer, Header, Static

from core.batch import Batch, batch_row
from core.bulk import RowResult
from core.password import PasswordPolicy
from core.text import plain
from screens.job_run import RESUME, SHOWN_STEPS, ConfirmJob, PasswordDialog
from screens.running_job import RowsRun
from widgets.progress import BulkProgressPane
from widgets.replication import RowsReplicationNote

if TYPE_CHECKING:
    from core.session import Session


def batch_summary(batch: Batch) -> str:
    """``move of 3 users from A to B``, as plain text."""
    first = batch.jobs[0]
    customers = [plain(c) for c in first.customers]
    where = f" from {customers[0]} to {customers[-1]}" if len(customers) >= 2 else (f" in {customers[0]}" if customers else "")
    return f"{plain(batch.kind)} of {len(batch.jobs)} user{'' if len(batch.jobs) == 1 else 's'}{where}"


def confirm_text(batch: Batch, action: str) -> Group:
    """Exactly what resuming or rolling back the whole of ``batch`` will do."""
    what = batch_summary(batch)
    unfinished = batch.unfinished
    lines = [Text(f"{what[:1].upper()}{what[1:]}: {batch.done} of {len(batch.jobs)} rows done ({batch.tally()}).")]
    if action == RESUME:
        lines.append(Text(f"Resuming finishes the {len(unfinished)} unfinished row(s): a planned one starts after a fresh "
                          "check of its user, an interrupted one runs on from its step. A row that fails is rolled back; "
                          "the others go on."))
        if batch.needing_password():
            lines.append(Text("The new users' password is asked next: it is never kept.", style="bold"))
    else:
        lines.append(Text(f"Rolling back undoes the {len(unfinished)} unfinished row(s), each as it stands (a planned "
                          "one is only marked rolled back). The done rows stay done."))
    for job in unfinished[:SHOWN_STEPS]:
        lines.append(Text.assemble("  ", (f"{job.status.value.replace('_', ' '):<16}", "bold"), plain(batch_row(job).label),
                                   no_wrap=True, overflow="ellipsis"))
    if len(unfinished) > SHOWN_STEPS:
        lines.append(Text(f"  … and {len(unfinished) - SHOWN_STEPS} more", style="dim"))
    return Group(*lines)


def confirm(batch: Batch, action: str) -> ConfirmJob:
    return ConfirmJob(f"batch {batch.id}", confirm_text(batch, action), action)


def password_dialog(session: Session, batch: Batch) -> PasswordDialog:
    """The one password the copies of ``batch`` that still have to set theirs are given."""
    needing = batch.needing_password()
    intro = Text(f"Batch {plain(batch.id)} still has to set the password of {len(needing)} new user(s). "
                 "It is never kept: type it again, twice.")

    def check(password: str, policy: PasswordPolicy) -> list[str]:
        found = batch.password_problems_under(policy, password)
        return [f"{plain(label)}: {x.message}" for label, problems in found.items() for x in problems]

    return PasswordDialog(session, intro, check)


class BatchRunScreen(RowsRun):
    """Resume or roll back ``batch`` with one progress row per user (``ctrl+c`` cancels a
    resume: the rows running roll back, no other starts); ``enter`` goes back when it is
    over (dismissed with the batch's results)."""

    WHAT = "resumed batch"
    CSS = "#context { text-wrap: nowrap; text-overflow: ellipsis; }"

    def __init__(self, session: Session, batch: Batch, action: str, password: str | None = None, *, concurrency: int) -> None:
        super().__init__()
        self.session = session
        self.batch = batch
        self.action = action
        self.concurrency = concurrency
        self._password = password  # in memory until the core has it, never kept
        self.results: dict[str, RowResult] = {}  # filled by the core as rows end

    def compose(self) -> ComposeResult:
        verb = "Resuming" if self.action == RESUME else "Rolling back"
        yield Header()
        yield Static(Text.assemble((f"{verb} batch {plain(self.batch.id)}: ", "bold"), batch_summary(self.batch),
                                   no_wrap=True, overflow="ellipsis"), id="context")
        rows = [batch_row(job) for job in self.batch.jobs]
        yield BulkProgressPane([(row.label, Text(plain(row.user)), Text(plain(row.upn or "(no UPN)"))) for row in rows])
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.pane.show_results(self.batch.finished_results(), earlier=True)  # the rows already finished, as they ended

    @work(exclusive=True, group="job", exit_on_error=False)
    async def run_job(self) -> None:
        executor = self.executor_for_job(self.session.executor)
        operator = self.session.operator
        if self.action == RESUME:
            passwords = {batch_row(j).label: self._password for j in self.batch.needing_password()} if self._password else None
            rows = self.batch.resume(executor, operator, concurrency=self.concurrency, results=self.results, passwords=passwords)
        else:
            rows = self.batch.rollback(executor, operator, concurrency=self.concurrency, results=self.results)
        self._password = None
        earlier = self.batch.finished_results()
        await self.follow_rows(rows, "batch")
        self.ended(dict(self.results))
        if any(r.status == "done" and label not in earlier for label, r in self.results.items()):
            await self.mount(RowsReplicationNote(self.session, self.results.values(), earlier), before=self.query_one(Footer))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_job" and self.action != RESUME:
            return False  # a rollback is the way back already: nothing to cancel
        return super().check_action(action, parameters)
