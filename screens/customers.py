"""The customers screen: find a customer by name or domain as you type, in the local
customer index (:mod:`core.customer_index`) once it is loaded or restored from its
snapshot — on the server until then (:class:`~screens.search.SearchScreen`).
Every cell is built from :func:`core.text.plain` as a ``rich.text.Text``: directory
strings are never parsed as markup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Input

from core.local_search import Found
from core.model import Customer
from core.text import plain
from screens.index_status import index_status
from screens.search import DirectoryProvider, SearchScreen
from widgets import RowTable, back_out

if TYPE_CHECKING:
    from core.directory import Directory
    from core.index_keeper import IndexKeeper

# (column key, label, share of the width at 80 columns)
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("name", "Customer", 23),
    ("reseller", "Reseller", 12),
    ("domains", "Domains", 18),
    ("services", "Services", 18),
)
DIRECT = Text("—", style="dim", no_wrap=True)  # a customer bought directly from the SP


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


class CustomerTable(RowTable):
    """The customers table; ``enter`` opens the highlighted customer (``j``/``k``, ``g``/``G``… move)."""

    BINDINGS = [Binding("enter", "select_cursor", "Open", id="customers.open")]


class CustomersScreen(SearchScreen):
    """Customers matching the search box, at most ``limit`` of them."""

    AUTO_FOCUS = "#customers"
    TABLE = CustomerTable
    NOUN = "customer"
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

    def __init__(self, directory: DirectoryProvider, *, keeper: IndexKeeper | None = None, **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self.keeper = keeper  # the local customer index and what keeps it fresh
        self._stale = False  # the index changed while another screen was in front
        self._unwatch: list[Callable[[], None]] = []
        self._domains_width: int | None = None  # set with the columns

    @property
    def customers(self) -> dict[str, Customer]:
        """The rows shown, by DN."""
        return self.rows

    # -- layout ------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        yield from self.search_bar("Search customers by name or domain  (/)")
        yield CustomerTable(id="customers", cursor_type="row", zebra_stripes=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(CustomerTable)
        for (key, label, _), width in zip(COLUMNS, column_widths(self.app.size.width)):
            table.add_column(Text(label), width=width, key=key)
        self._domains_width = table.columns["domains"].width  # the domains cell fits it
        self.query_one("#search", Input).cursor_blink = self.app.animation_level != "none"
        if self.keeper is not None:
            self._unwatch = [self.keeper.index.watch(self._index_changed), self.keeper.watch(self._show_count)]
        self.search(None, debounce=0)

    def on_unmount(self) -> None:
        for unwatch in self._unwatch:
            unwatch()

    # -- the local index ---------------------------------------------------------
    def search_locally(self, text: str | None, limit: int) -> Found | None:
        index = self.keeper.index if self.keeper is not None else None
        if index is None or not len(index):
            return None  # nothing loaded yet: the server answers what was typed
        return index.search(text, limit)  # while loading, what is in ("loading n…" says so)

    def _index_changed(self) -> None:
        if self.is_current:
            self.search(self.query_one("#search", Input).value, again=True)
        else:
            self._stale = True

    def on_screen_resume(self) -> None:
        if self._stale:
            self._stale = False
            self.search(self.query_one("#search", Input).value, again=True)

    def count_text(self) -> Text:
        text = super().count_text()
        if self.keeper is not None:
            text.append_text(index_status(self.keeper))
        return text

    # -- searching ---------------------------------------------------------------
    async def fetch(self, directory: Directory, text: str | None, limit: int) -> Sequence[Customer]:
        return await directory.customers(search=text, limit=limit)

    def cells(self, customer: Customer) -> tuple[Text, ...]:
        return customer_row(customer, self._domains_width)

    def cell_state(self, customer: Customer) -> int | None:
        return self._domains_width

    # -- opening -----------------------------------------------------------------
    @on(DataTable.RowSelected, "#customers")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        customer = self.customers.get(event.row_key.value) if event.row_key.value else None
        if customer is not None:
            self.post_message(self.CustomerSelected(customer))

    # -- actions -----------------------------------------------------------------
    def action_back_out(self) -> None:
        """``esc``: clear the search, else leave the search box (the first screen: no back)."""
        back_out(self.query_one("#search", Input), self.query_one(CustomerTable))
