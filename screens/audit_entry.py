"""One audit entry in full (``enter`` on a row of the audit screen): every field of the
record — its number, the time (local and as recorded, UTC), what, how it ended, the
operator and the identity bound, each user and customer on a line of its own, the job,
and the detail wrapped — each shown literally through :func:`core.text.plain` (a user
named ``[@click=app.quit]x[/]`` is that text; control characters are stripped). ``esc``
goes back."""

from __future__ import annotations

from rich.console import Group
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from core.audit import AuditRecord
from core.text import plain
from widgets import field_grid, when

RESULT_LOOK = {
    "done": "green", "refused": "bold", "denied": "bold red", "rolled_back": "yellow",
    "needs_attention": "bold red", "failed": "red", "planned": "",
}


def result_text(result: str) -> Text:
    return Text(plain(result).replace("_", " "), style=RESULT_LOOK.get(result, ""))


def _lines(values: tuple[str, ...]) -> Text:
    return Text("\n").join(Text(plain(value)) for value in values) if values else Text("—", style="dim")


def entry_view(entry: AuditRecord) -> Group:
    """Every field of ``entry``, one a line (lists one value a line, the detail wrapped)."""
    facts = field_grid([
        ("Entry", Text(f"#{entry.id}", style="bold")),
        ("Time", Text.assemble(when(entry.time, full=True), ("  (recorded ", "dim"), plain(entry.time), (")", "dim"))),
        ("What", Text(plain(entry.action), style="bold")),
        ("Result", result_text(entry.result)),
        ("Operator", entry.operator),
        ("Bound as", entry.bound_as),
        ("Users", _lines(entry.users)),
        ("Customers", _lines(entry.customers)),
        ("Job", Text(plain(entry.job)) if entry.job else Text("—", style="dim")),
    ], label_width=10)
    detail = Text(plain(entry.detail, single_line=False)) if entry.detail else Text("No detail recorded.", style="dim")
    return Group(facts, Text(""), Text("Detail", style="bold underline"), detail)


class AuditEntryScreen(Screen[None]):
    """One audit entry, every field."""

    CSS = "#audit-detail { height: 1fr; padding: 0 1; scrollbar-size-vertical: 1; }"
    AUTO_FOCUS = "#audit-detail"
    BINDINGS = [Binding("escape", "close", "Back", id="audit.entry.back")]

    def __init__(self, entry: AuditRecord) -> None:
        super().__init__()
        self.entry = entry

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="audit-detail"):
            yield Static(entry_view(self.entry), id="audit-detail-text")
        yield Footer()

    def action_close(self) -> None:
        self.dismiss(None)
