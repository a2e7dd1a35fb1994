"""The bulk move runs: one row per user in the progress pane (pending, running, done,
rolled back, failed) and one log, the events applied in batches about four times a
second; ``ctrl+c`` asks, then cancels the whole batch through the core. Then the result:
how many moved, each row's outcome and each new UPN."""

from __future__ import annotations

from typing import Any, Callable

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from core.bulk import BulkMove, BulkPlan, RowResult
from core.execute import Executor
from core.text import plain
from screens.bulk_draft import BulkDraft, BulkOutcome
from screens.bulk_steps import indented
from screens.running_job import RowsRun
from screens.wizard.engine import Place
from widgets.progress import ROW_STATES, BulkProgressPane
from widgets.replication import RowsReplicationNote


class BulkRunStep(RowsRun):
    WHAT = "bulk move"

    def __init__(self, draft: BulkDraft, place: Place, bulk: BulkPlan, executor: Callable[[], Executor]) -> None:
        super().__init__()
        self.draft = draft
        self.place = place
        self.bulk = bulk
        self.executor = executor
        self.results: dict[str, RowResult] = {}  # filled by the core as rows end

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.place.trail(self.draft.title())
        rows = []
        for row in self.bulk.clean:
            upn = row.plan.users[0].upn_after if row.plan.users else None
            rows.append((row.label, self.draft.name(row.label), Text(plain(upn or "(no UPN)"))))
        yield BulkProgressPane(rows)
        yield Footer()

    @work(exclusive=True, group="job", exit_on_error=False)
    async def run_job(self) -> None:
        session = self.draft.session
        mover = BulkMove(session.planner(), self.executor_for_job(self.executor))
        events = mover.run(self.bulk, session.operator, concurrency=self.draft.concurrency, results=self.results)
        error = await self.follow_rows(events, self.WHAT)
        results = tuple(self.results.get(row.label) or RowResult(row.label, row.request.user, "failed", message=error or "")
                        for row in self.bulk.rows)
        self.ended(BulkOutcome(results, self.bulk.batch, self.draft.destination, self.cancel_requested, error))


HEADLINE = {
    "done": "✓ {who}",
    "refused": "✗ {who}: not moved",
    "rolled_back": "↺ {who}: rolled back",
    "needs_attention": "! {who}: needs attention",
    "failed": "✗ {who}: failed",
}


def bulk_result_view(draft: BulkDraft, outcome: BulkOutcome) -> Group:
    where = plain(outcome.destination.name if outcome.destination else "")
    total = len(outcome.results)
    headline = f"Moved {outcome.moved} of {total} users to {where}."
    if outcome.cancelled:
        headline = f"Cancelled: moved {outcome.moved} of {total} users to {where}; the others were rolled back or not started."
    parts: list[Any] = [Text(headline, style="bold"), Text("")]
    for result in outcome.results:
        style = ROW_STATES.get(result.status, ROW_STATES["failed"])[2]
        head = HEADLINE.get(result.status, "✗ {who}: " + plain(result.status)).format(who=draft.name(result.row).plain)
        lines: list[Text] = []
        if result.status == "done":
            lines += [Text.assemble(("UPN    ", "bold"), plain(result.upn or "(none)")),
                      Text.assemble(("Email  ", "bold"), plain(result.email or "(none)"))]
        elif result.message:
            lines.append(Text(plain(result.message)))
        if result.status == "needs_attention" and result.job:
            lines.append(Text(f"Resume or roll back job {plain(result.job)} from the jobs list.", style="italic"))
        parts += [Text(head, style=style), indented(lines)]
    if outcome.error:
        parts += [Text(""), Text(plain(outcome.error), style="bold")]
    parts += [Text(""), Text.assemble(("Batch  ", "bold"), plain(outcome.batch), ("  (each user's job in the journal and the audit log)", "dim"))]
    return Group(*parts)


class BulkResultStep(Screen[None]):
    AUTO_FOCUS = "#result"
    BINDINGS = [
        Binding("enter", "close", "Back to the users", priority=True, id="bulk.done"),
        Binding("escape", "close", "Back to the users", show=False, id="bulk.close"),
    ]

    def __init__(self, draft: BulkDraft, place: Place, outcome: BulkOutcome) -> None:
        super().__init__()
        self.draft = draft
        self.place = place
        self.outcome = outcome

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.place.trail(self.draft.title())
        with VerticalScroll(id="result"):
            yield Static(bulk_result_view(self.draft, self.outcome), id="result-text")
            if self.outcome.moved:
                yield RowsReplicationNote(self.draft.session, self.outcome.results)
        yield Footer()

    def action_close(self) -> None:
        self.dismiss(None)
