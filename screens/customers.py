"""The customers screen: find a customer by name or domain, searched on the server.

Every keystroke in the search box starts an *exclusive* worker, so a newer search
cancels the one in flight; the directory is never loaded whole (at most ``limit`` rows,
filtered by the domain controller). Every cell is built from :func:`core.text.plain`
as a ``rich.text.Text``: directory strings are never parsed as markup.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Awaitable, Callable, Sequence

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from core.errors import TenantryError
from core.model import Customer
from core.text import plain

if TYPE_CHECKING:
    from core.directory import Directory

log = logging.getLogger("tenantry.console")

DirectoryProvider = Callable[[], Awaitable["Directory"]]
"""Returns the open directory, waiting while it is being opened (raises TenantryError)."""

# (column key, label, share of the width at 80 columns)
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("name", "Customer", 23),
    ("reseller", "Reseller", 12),
    ("domains", "Domains", 18),
    ("services", "Services", 18),
)
DIRECT = Text("—", style="dim", no_wrap=True)  # a customer bought directly from the SP
SLOW_SEARCH = 0.25  # seconds before "searching…" is shown (a fast search shows nothing)


def _cell(value: object) -> Text:
    return Text(plain(value), no_wrap=True, overflow="ellipsis")


def _domains_cell(domains: Sequence[str], width: int | None) -> Text:
    """The default domain, then "+N" for the others; the domain is cut, never the count."""
    cell = _cell(domains[0] if domains else "")
    if len(domains) > 1:
        more = f" +{len(domains) - 1}"
        if width is not None and cell.cell_len + len(more) > width:
            cell.truncate(max(1, width - len(more)), overflow="ellipsis")
        cell.append(more, style="dim")
    return cell


def customer_row(customer: Customer, domains_width: int | None = None) -> tuple[Text, Text, Text, Text]:
    """The table cells of one customer, each a sanitised ``Text`` (never markup)."""
    return (
        _cell(customer.name),
        _cell(customer.reseller) if customer.reseller else DIRECT,
        _domains_cell(customer.domains, domains_width),
        _cell(", ".join(customer.services)),
    )


def column_widths(total: int) -> list[int]:
    """Column widths for a terminal ``total`` cells wide (80 gives the designed widths)."""
    overhead = 2 * len(COLUMNS) + 1  # cell padding plus a one-cell scrollbar
    designed = sum(share for _, _, share in COLUMNS)
    room = max(total - overhead, len(COLUMNS) * 6)
    widths = [max(6, room * share // designed) for _, _, share in COLUMNS]
    widths[0] += max(0, room - sum(widths))  # the name gets what rounding left over
    return widths


class CustomerTable(DataTable):
    """The customers table; ``enter`` opens the highlighted customer."""

    BINDINGS = [Binding("enter", "select_cursor", "Open", id="customers.open")]


class CustomersScreen(Screen[None]):
    """Customers matching the search box, at most ``limit`` of them."""

    AUTO_FOCUS = "#customers"
    BINDINGS = [
        Binding("slash", "focus_search", "Search", id="customers.search"),
        Binding("escape", "back_out", "Back", show=False, id="customers.back"),
        Binding("down", "focus_table", "Results", show=False, id="customers.results"),
    ]

    class CustomerSelected(Message):
        """The operator opened a customer (``enter`` on its row)."""

        def __init__(self, customer: Customer) -> None:
            super().__init__()
            self.customer = customer

    def __init__(
        self,
        directory: DirectoryProvider,
        *,
        limit: int = 200,
        debounce: float = 0.15,
        name: str | None = None,
        id: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id)
        self._directory = directory
        self.limit = limit
        self.debounce = debounce
        self.customers: dict[str, Customer] = {}  # by DN, the rows shown
        self.query_text: str | None = None  # the search the table shows
        self._requested: str | None = ""  # the search last started ("" = none yet)

    # -- layout ------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="search-bar"):
            yield Input(placeholder="Search customers by name or domain  (/)", id="search", compact=True)
            yield Static(Text("connecting…"), id="count")
        yield Static(id="banner")
        yield CustomerTable(id="customers", cursor_type="row", zebra_stripes=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(CustomerTable)
        for (key, label, _), width in zip(COLUMNS, column_widths(self.app.size.width)):
            table.add_column(Text(label), width=width, key=key)
        self.query_one("#search", Input).cursor_blink = self.app.animation_level != "none"
        self.search(None, debounce=0)

    # -- searching ---------------------------------------------------------------
    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.search(event.value)

    @on(Input.Submitted, "#search")
    def _search_submitted(self) -> None:
        self.action_focus_table()

    def search(self, text: str | None, *, debounce: float | None = None) -> None:
        """Show the customers matching ``text`` (name or domain), searched server-side."""
        wanted = (text or "").strip() or None
        if wanted == self._requested:
            return
        self._requested = wanted
        self._run_search(wanted, self.debounce if debounce is None else debounce)

    @work(exclusive=True, group="search", exit_on_error=False)
    async def _run_search(self, text: str | None, debounce: float) -> None:
        if debounce:
            await asyncio.sleep(debounce)  # a newer keystroke cancels this worker here
        slow = self.set_timer(SLOW_SEARCH, self._show_searching)
        try:
            directory = await self._directory()
            found = await directory.customers(search=text, limit=self.limit + 1)
        except TenantryError as error:
            self._show_error(str(error))
        except Exception as error:  # a defect: one sentence here, the details in the log
            log.exception("customer search failed")
            self._show_error(f"The customer search failed unexpectedly ({type(error).__name__}).")
        else:
            self.show_customers(found, text)
        finally:
            slow.stop()

    def _show_searching(self) -> None:
        self._set_count(Text("searching…", style="italic"))

    # -- showing -----------------------------------------------------------------
    def show_customers(self, found: Sequence[Customer], text: str | None) -> None:
        """Fill the table with ``found`` (sorted by the directory), keeping the cursor."""
        self._clear_error()
        shown = list(found[: self.limit])
        self._set_count(self._count_text(len(shown), len(found) > self.limit, text))
        self.query_text = text
        keys = [c.dn for c in shown]
        if keys == list(self.customers) and shown == list(self.customers.values()):
            return  # same rows: send nothing to the terminal
        table = self.query_one(CustomerTable)
        current = self.highlighted
        with self.app.batch_update():
            table.clear()
            self.customers = {c.dn: c for c in shown}
            width = table.columns["domains"].width
            for customer in shown:
                table.add_row(*customer_row(customer, width), key=customer.dn)
            if current is not None and current.dn in self.customers:
                table.move_cursor(row=table.get_row_index(current.dn), animate=False)

    def _count_text(self, count: int, more: bool, text: str | None) -> Text:
        if more:
            return Text(f"first {count} shown")
        if count == 0 and text:
            return Text.assemble("no customer matches “", plain(text), "”")
        return Text(f"{count} customer{'' if count == 1 else 's'}")

    def _set_count(self, text: Text) -> None:
        self.query_one("#count", Static).update(text)

    def _show_error(self, sentence: str) -> None:
        banner = self.query_one("#banner", Static)
        banner.update(Text(plain(sentence)))
        banner.add_class("-shown")
        self._set_count(Text("not loaded" if not self.customers else "not updated", style="italic"))
        self._requested = ""  # let the same search be tried again

    def _clear_error(self) -> None:
        self.query_one("#banner", Static).remove_class("-shown")

    @property
    def highlighted(self) -> Customer | None:
        """The customer under the cursor, if any."""
        table = self.query_one(CustomerTable)
        if not self.customers or table.cursor_row < 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return self.customers.get(key.value) if key.value is not None else None

    # -- opening -----------------------------------------------------------------
    @on(DataTable.RowSelected, "#customers")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        customer = self.customers.get(event.row_key.value) if event.row_key.value else None
        if customer is not None:
            self.post_message(self.CustomerSelected(customer))

    # -- actions -----------------------------------------------------------------
    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_focus_table(self) -> None:
        self.query_one(CustomerTable).focus()

    def action_back_out(self) -> None:
        """``esc``: leave the search box; from the table, clear the search."""
        search = self.query_one("#search", Input)
        if search.has_focus:
            self.action_focus_table()
        elif search.value:
            search.value = ""  # Input.Changed runs the (now empty) search

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "focus_table":  # ``down`` leaves the search box; elsewhere it moves the cursor
            return self.query_one("#search", Input).has_focus
        return True
