"""Move wizard, the end: what changed (the new UPN and email), and what next —
move another user, or open the moved user in its new customer."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from core.text import plain
from screens.move_draft import MoveDraft
from screens.wizard.engine import Place
from screens.wizard.run import Outcome
from screens.wizard.step import StepParts
from widgets.replication import ReplicationNote

ANOTHER = "another"
OPEN = "open"

HEADLINES = {
    "done": "✓ {who} now belongs to {destination}.",
    "rolled_back": "✗ The move of {who} failed and was rolled back: nothing changed.",
    "cancelled": "✗ The move of {who} was cancelled and rolled back: nothing changed.",
    "needs_attention": "✗ The move of {who} failed and could not be fully rolled back.",
    "refused": "✗ The move of {who} was refused: nothing was written.",
}


def result_text(draft: MoveDraft, outcome: Outcome) -> Text:
    destination = plain(outcome.destination.name if outcome.destination else "")
    headline = HEADLINES.get(outcome.ending, "The move ended: {status}.")
    lines = [Text(headline.format(who=draft.who, destination=destination, status=plain(outcome.status)), style="bold")]
    change = outcome.change
    if outcome.status == "done" and change is not None:
        lines.append(Text(""))
        lines.append(Text.assemble(("UPN    ", "bold"), plain(change.upn_before or "(none)"), ("  →  ", "dim"), plain(change.upn_after or "(none)")))
        lines.append(Text.assemble(("Email  ", "bold"), plain(change.email_before or "(none)"), ("  →  ", "dim"), plain(change.email_after or "(none)")))
        lines.append(Text.assemble(("DN     ", "bold"), plain(change.dn_after)))
    elif outcome.message:
        lines.append(Text(""))
        lines.append(Text.assemble(("Reason  ", "bold"), plain(outcome.message, single_line=False)))
    if outcome.job:
        lines.append(Text(""))
        lines.append(Text.assemble(("Job    ", "bold"), plain(outcome.job), ("  (in the journal and the audit log)", "dim")))
    if outcome.status == "needs_attention":
        lines.append(Text("Resume or roll back this job from the jobs list (tenantry jobs / resume / rollback).", style="italic"))
    return Text("\n").join(lines)


class ResultStep(StepParts, Screen[str | None]):
    AUTO_FOCUS = "#result"
    BINDINGS = [
        Binding("enter", "another", "Move another", priority=True, id="move.another"),  # short: Quit and Help fit 80 columns
        Binding("o", "open", "Open user", id="move.open"),
        Binding("escape", "close", "Back", id="move.done"),
    ]

    def __init__(self, draft: MoveDraft, place: Place, outcome: Outcome) -> None:
        super().__init__()
        self.draft = draft
        self.place = place
        self.outcome = outcome

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.trail()
        with VerticalScroll(id="result"):
            yield Static(result_text(self.draft, self.outcome), id="result-text")
            if self.outcome.status == "done" and self.outcome.job:
                yield ReplicationNote(self.draft.session, self.outcome.job)
        yield Footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open":
            return self.outcome.status == "done"
        return True

    def action_another(self) -> None:
        self.dismiss(ANOTHER)

    def action_open(self) -> None:
        self.dismiss(OPEN)

    def action_close(self) -> None:
        self.dismiss(None)
