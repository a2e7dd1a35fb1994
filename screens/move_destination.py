"""Move wizard, step 1: the destination customer, found with the customers screen's
server-side search. Typing a name and ``enter`` picks the top match."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Input

from core.model import Customer
from screens.customers import CustomersScreen, CustomerTable
from screens.wizard.engine import Draft, Go, Place
from screens.wizard.step import StepParts
from widgets import ProblemList


class DestinationStep(StepParts, CustomersScreen):
    """Choose where the user goes; refusals about the destination itself show here."""

    AUTO_FOCUS = "#search"
    BINDINGS = [
        Binding("enter", "choose", "Choose", priority=True, id="move.choose"),
        Binding("escape", "back", "Back", id="move.back"),
        Binding("slash", "focus_search", "Search", id="move.search"),
    ]

    def __init__(self, draft: Draft, *, place: Place, limit: int = 200, debounce: float = 0.15) -> None:
        async def directory():
            return draft.session.directory

        super().__init__(directory, limit=limit, debounce=debounce)
        self.draft = draft
        self.place = place

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.trail()
        yield from self.search_bar("Destination customer: type its name or domain, then enter")
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
        self.pick()

    def cursor_key(self) -> str | None:
        current = self.draft.destination  # back from a later step: the cursor on it
        return current.dn if current is not None else super().cursor_key()

    def picked(self, customer: Customer | None) -> None:
        self._choose(customer)

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
        await self.advance()

    def action_back(self) -> None:
        self.workers.cancel_group(self, "check")
        self.dismiss(Go.BACK)
