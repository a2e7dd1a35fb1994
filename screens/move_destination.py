"""Move wizard, step 1: the destination customer, found with the customers screen's
server-side search. Typing a name and ``enter`` picks the top match."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer, Header, Input, Static

from core.model import Customer
from screens.customers import CustomersScreen, CustomerTable
from screens.move_flow import MoveDraft, WizardStep
from screens.move_step import StepParts
from tui.widgets import ProblemList


class DestinationStep(StepParts, CustomersScreen):
    """Choose where the user goes; refusals about the destination itself show here."""

    STEP = WizardStep.DESTINATION
    AUTO_FOCUS = "#search"
    BINDINGS = [
        Binding("enter", "choose", "Choose", priority=True, id="move.choose"),
        Binding("escape", "back", "Back", id="move.back"),
        Binding("slash", "focus_search", "Search", id="move.search"),
    ]

    def __init__(self, draft: MoveDraft, *, limit: int = 200, debounce: float = 0.15) -> None:
        async def directory():
            return draft.session.directory

        super().__init__(directory, limit=limit, debounce=debounce)
        self.draft = draft
        self._choose_when_shown = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.trail()
        with Horizontal(id="search-bar"):
            yield Input(placeholder="Destination customer: type its name or domain, then enter", id="search", compact=True)
            yield Static(Text("connecting…"), id="count")
        yield Static(id="banner")
        yield CustomerTable(id="customers", cursor_type="row", zebra_stripes=False)
        yield ProblemList(id="problems")
        yield Footer()

    def on_mount(self) -> None:
        if self.draft.destination_search:  # back from a later step: the search as it was
            self.query_one("#search", Input).value = self.draft.destination_search

    # -- choosing ----------------------------------------------------------------
    def action_choose(self) -> None:
        """``enter``: the highlighted customer — the top match while typing, once the
        search for what was typed has answered."""
        wanted = self.query_one("#search", Input).value.strip() or None
        if self.query_text == wanted and self._requested == wanted:
            self._choose(self.highlighted)
        else:
            self._choose_when_shown = True  # the search for what was typed is on its way

    def show_customers(self, found, text) -> None:
        super().show_customers(found, text)
        current = self.draft.destination
        if current is not None and current.dn in self.customers:
            table = self.query_one(CustomerTable)
            table.move_cursor(row=table.get_row_index(current.dn), animate=False)
        if self._choose_when_shown and text == self._requested:
            self._choose_when_shown = False
            self._choose(self.highlighted)

    def on_customers_screen_customer_selected(self, message: CustomersScreen.CustomerSelected) -> None:
        message.stop()  # (a click on a row) the destination, not a customer to open
        self._choose(message.customer)

    def _choose(self, customer: Customer | None) -> None:
        if customer is None:
            self.app.bell()
            return
        self.draft.destination_search = self.query_one("#search", Input).value
        self.draft.choose_destination(customer)
        self._check_destination(customer)

    @work(exclusive=True, group="check", exit_on_error=False)
    async def _check_destination(self, customer: Customer) -> None:
        await self.advance(customer)

    def action_back(self) -> None:
        from screens.move_flow import BACK

        self.workers.cancel_group(self, "check")
        self.dismiss(BACK)
