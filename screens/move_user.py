"""Move wizard, step 2: the user's new identity in the destination — the UPN (a prefix
and one of the destination's domains), the email address, and the SIP URI and username
they lead to, shown live from the core's mapping. Collisions, foreign domains and
malformed values are flagged as the admin types (a debounced preflight)."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer, Header, Input, Label, Static

from core.text import plain
from screens.wizard.step import StepScreen
from widgets import Choice, ProblemList


def _value(value: str | None) -> Text:
    return Text(plain(value), no_wrap=True, overflow="ellipsis") if value else Text("—", style="dim")


class UserMappingStep(StepScreen):
    AUTO_FOCUS = "#upn-prefix"
    BINDINGS = [
        Binding("enter", "next", "Next", priority=True, id="move.next"),
        Binding("escape", "back", "Back", id="move.back"),
    ]

    def compose(self) -> ComposeResult:
        draft = self.draft
        assert draft.destination is not None
        yield Header()
        yield self.trail()
        with Vertical(id="mapping-form"):
            with Horizontal(classes="field"):
                yield Label("UPN", classes="field-label")
                yield Input(draft.upn_prefix, id="upn-prefix", compact=True)
                yield Static("@", id="at")
                yield Choice(draft.destination.domains or (draft.upn_domain,), draft.upn_domain, id="upn-domain")
            with Horizontal(classes="field"):
                yield Label("Email", classes="field-label")
                if draft.email is None:
                    yield Static(Text("none: the user has no mailbox", style="dim"), id="no-email")
                else:
                    yield Input(draft.email, id="email", compact=True)
        yield Static(id="mapping-preview")
        yield Static(Text("tab: next field · ←→: domain · enter: next step · nothing is written yet", style="dim"), id="hint")
        yield ProblemList(id="problems")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#upn-prefix", Input).cursor_blink = self.app.animation_level != "none"
        if self.draft.email is not None:
            self.query_one("#email", Input).cursor_blink = self.app.animation_level != "none"
        self.show_preview()
        plan = self.draft.checked
        if plan is not None:
            self.show_plan(plan)
        self.live_check(0)

    # -- editing -----------------------------------------------------------------
    @on(Input.Changed, "#upn-prefix")
    @on(Choice.Changed, "#upn-domain")
    def _upn_changed(self) -> None:
        prefix = self.query_one("#upn-prefix", Input).value
        domain = self.query_one("#upn-domain", Choice).value
        if (prefix.strip(), domain) == (self.draft.upn_prefix, self.draft.upn_domain):
            return
        self.draft.set_upn(prefix, domain)
        if self.draft.email is not None and self.draft.email_auto:
            self.query_one("#email", Input).value = self.draft.email  # the email follows the domain
        self._edited()

    @on(Input.Changed, "#email")
    def _email_changed(self, event: Input.Changed) -> None:
        if event.value.strip() == (self.draft.email or ""):
            return
        self.draft.set_email(event.value)
        self._edited()

    def _edited(self) -> None:
        self.show_preview()
        self.live_check(self.debounce)

    def show_preview(self) -> None:
        """Now → after the move, from the core's mapping of what is entered."""
        user, mapping = self.draft.user, self.draft.mapping()
        table = Table.grid(padding=(0, 1), expand=True)
        table.add_column(width=9, no_wrap=True)
        table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
        table.add_row(Text(""), Text("Now", style="bold"), Text("After the move", style="bold"))
        table.add_row(Text("UPN"), _value(user.upn), _value(mapping.upn))
        table.add_row(Text("Email"), _value(user.email), _value(mapping.email))
        table.add_row(Text("SIP"), _value(user.sip), _value(mapping.sip))
        kept = mapping.sam.casefold() == user.sam.casefold()
        sam = _value(mapping.sam)
        if kept:
            sam.append(" (kept)", style="dim")
        table.add_row(Text("Username"), _value(user.sam), sam)
        self.query_one("#mapping-preview", Static).update(table)
