"""What the customers and users screens (and the wizard steps built on them) share: a
table filled by a search as you type — in a local index when the screen has one
(:meth:`SearchScreen.search_locally`: no debounce, no worker, the table changes in the
frame of the key), else on the server.

Every keystroke in the search box starts an *exclusive* worker, so a newer search
cancels the one in flight; at most ``limit`` rows are read, filtered by the domain
controller, and the table is refilled only when the rows changed. A search that fails
because the connection to the domain controller is lost waits for it to come back (the
app shows why) and then runs again by itself. :meth:`SearchScreen.pick` is a wizard
step's ``enter``: the top match, once the search for what was typed has answered.
Every cell is built from :func:`core.text.plain` as a ``rich.text.Text``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable, ClassVar, Sequence

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Input, Static

from core.local_search import Found
from core.errors import DirectoryUnavailable, TenantryError
from core.text import plain
from screens.slow_notice import SlowNotice
from widgets import RowTable

if TYPE_CHECKING:
    from core.directory import Directory

log = logging.getLogger("tenantry.console")

DirectoryProvider = Callable[[], Awaitable["Directory"]]
"""Returns the open directory, waiting while it is being opened (raises TenantryError)."""

SLOW_SEARCH = 0.25  # seconds before "searching…" is shown (a fast search shows nothing)


class SearchScreen(Screen[Any]):
    """A search box over a table of what the directory found (rows keyed by DN)."""

    TABLE: ClassVar[type[RowTable]] = RowTable  # the screen's table
    NOUN: ClassVar[str] = "row"  # "customer", "user": for the count and the errors

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
        self.rows: dict[str, Any] = {}  # by DN, the rows shown
        self.query_text: str | None = None  # the search the table shows
        self._requested: str | None = ""  # the search last started ("" = none yet)
        self._more = False  # more rows match than are shown
        self._total: int | None = None  # how many match in all, when known
        self._count_shown: tuple | None = None  # what the count shows (text, style, spans)
        self._pick_when_shown = False
        self._slow: SlowNotice | None = None  # the "searching…" of the server search last started
        self._cells: dict[str, tuple[Any, object, tuple[Text, ...]]] = {}  # by DN, of the rows shown: row, state, cells

    # -- what a screen says ---------------------------------------------------------
    async def fetch(self, directory: Directory, text: str | None, limit: int) -> Sequence[Any]:
        """At most ``limit`` rows matching ``text``, sorted, read from ``directory``."""
        raise NotImplementedError

    def cells(self, item: Any) -> tuple[Text, ...]:
        """The table cells of one row, each a sanitised ``Text``."""
        raise NotImplementedError

    def cell_state(self, item: Any) -> object:
        """What a row's cells depend on besides the row itself (a mark, a column's width):
        the cells of a row shown again are built again only when it or this changed."""
        return None

    def search_locally(self, text: str | None, limit: int) -> Found | None:
        """The rows matching ``text`` from a local index, or ``None`` to search the server."""
        return None

    def picked(self, item: Any) -> None:
        """What :meth:`pick` chose (``None``: nothing matched)."""

    def cursor_key(self) -> str | None:
        """The row the cursor stays on when the rows change (the highlighted one)."""
        current = self.highlighted
        return current.dn if current is not None else None

    def search_bar(self, placeholder: str, value: str = "", count: str = "connecting…") -> ComposeResult:
        """The search box, the count beside it and the error banner below."""
        with Horizontal(id="search-bar"):
            yield Input(value, placeholder=placeholder, id="search", compact=True)
            yield Static(Text(count), id="count")
        yield Static(id="banner")

    # -- searching ---------------------------------------------------------------
    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.search(event.value)

    @on(Input.Submitted, "#search")
    def _search_submitted(self) -> None:
        self.action_focus_table()

    def search(self, text: str | None, *, debounce: float | None = None, again: bool = False) -> None:
        """Show the rows matching ``text``, searched on the server."""
        wanted = (text or "").strip() or None
        if wanted == self._requested and not again:
            return
        self._requested = wanted
        local = self.search_locally(wanted, self.limit)
        if local is not None:  # no debounce, no worker: the table changes in this frame
            self.workers.cancel_group(self, "search")
            self.show_found(local.rows, wanted, total=local.total)
            return
        self._run_search(wanted, self.debounce if debounce is None else debounce)

    def reload(self) -> None:
        """Read the rows again (after a job changed them)."""
        self.search(self.query_one("#search", Input).value, debounce=0, again=True)

    @work(exclusive=True, group="search", exit_on_error=False)
    async def _run_search(self, text: str | None, debounce: float) -> None:
        if debounce:
            await asyncio.sleep(debounce)  # a newer keystroke cancels this worker here
        slow: SlowNotice | None = None  # "connecting…" stays until the directory is open
        try:
            directory = await self._directory()
            slow = self._slow = SlowNotice(self, SLOW_SEARCH, lambda: self._set_count(Text("searching…", style="italic")))
            found = await self.answered(directory, lambda: self.fetch(directory, text, self.limit + 1), slow.stop)
        except TenantryError as error:
            self._show_error(str(error))
        except Exception as error:  # a defect: one sentence here, the details in the log
            log.exception("%s search failed", self.NOUN)
            self._show_error(f"The {self.NOUN} search failed unexpectedly ({type(error).__name__}).")
        else:
            self.show_found(found, text)
        finally:
            if slow is not None:
                slow.stop()

    async def answered(self, directory: Directory, call: Callable[[], Awaitable[Any]], lost: Callable[[], object] = lambda: None) -> Any:
        """``await call()``; while the connection to the DC is lost (the app's banner says
        why), the count says nothing is shown, and the call is made again once it answers."""
        while True:
            try:
                return await call()
            except DirectoryUnavailable:
                if not directory.connection.lost:
                    raise
                lost()
                self._set_count(self._not_shown())
                await directory.connection.wait_available()

    # -- showing -----------------------------------------------------------------
    def show_found(self, found: Sequence[Any], text: str | None, *, total: int | None = None) -> None:
        """Fill the table with ``found`` (sorted), keeping the cursor; ``total``: how
        many match in all, when known (a local index knows)."""
        self.query_one("#banner", Static).remove_class("-shown")
        if self._slow is not None:  # a server search these rows replaced: its timer may fire
            self._slow.stop()  # before its cancelled worker ends (seen under load in a snapshot)
        shown = list(found[: self.limit])
        self.query_text = text
        self._more = len(found) > self.limit if total is None else total > len(shown)
        self._total = total
        if [x.dn for x in shown] != list(self.rows) or shown != list(self.rows.values()):
            table = self.query_one(self.TABLE)  # else the same rows: send nothing to the terminal
            keep = self.cursor_key()
            self.rows = {x.dn: x for x in shown}
            held, self._cells = self._cells, {}
            table.show_rows([(x.dn, self._cells_of(x, held)) for x in shown], keep)  # only the cells that differ
        self._show_count()
        if self._pick_when_shown and text == self._requested:
            self._pick_when_shown = False
            self.picked(self.highlighted)

    def _cells_of(self, item: Any, held: dict[str, tuple[Any, object, tuple[Text, ...]]]) -> tuple[Text, ...]:
        """The cells of ``item``: those it had when shown last, if it is the same row in the
        same state (a key that keeps most rows builds few cells), else built."""
        state, kept = self.cell_state(item), held.get(item.dn)
        if kept is None or kept[0] is not item or kept[1] != state:
            kept = (item, state, self.cells(item))
        self._cells[item.dn] = kept
        return kept[2]

    def count_text(self) -> Text:
        count = len(self.rows)
        if self._more and self._total is not None:
            return Text(f"{count} of {self._total:,} {self.NOUN}s")
        if self._more:
            return Text(f"first {count} shown")
        if count == 0 and self.query_text:
            return Text.assemble(f"no {self.NOUN} matches “", plain(self.query_text), "”")
        return Text(f"{count} {self.NOUN}{'' if count == 1 else 's'}")

    def _show_count(self) -> None:
        self._set_count(self.count_text())

    def _set_count(self, text: Text) -> None:
        shown = (text.plain, str(text.style), tuple(text.spans))
        if shown != self._count_shown:  # an update re-lays the screen out: none when nothing changed
            self._count_shown = shown
            self.query_one("#count", Static).update(text)

    def _not_shown(self) -> Text:
        return Text("not loaded" if not self.rows else "not updated", style="italic")

    def _show_error(self, sentence: str) -> None:
        banner = self.query_one("#banner", Static)
        banner.update(Text(plain(sentence)))
        banner.add_class("-shown")
        self._set_count(self._not_shown())
        self._requested = ""  # let the same search be tried again

    @property
    def highlighted(self) -> Any | None:
        """The row under the cursor, if any."""
        table = self.query_one(self.TABLE)
        if not self.rows or table.cursor_row < 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return self.rows.get(key.value) if key.value is not None else None

    def pick(self) -> None:
        """Choose the highlighted row — the top match while typing — once the search for
        what was typed has answered; :meth:`picked` gets it."""
        wanted = self.query_one("#search", Input).value.strip() or None
        if self.query_text == wanted and self._requested == wanted:
            self.picked(self.highlighted)
        else:
            self._pick_when_shown = True  # the search for what was typed is on its way

    # -- keys --------------------------------------------------------------------
    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_focus_table(self) -> None:
        self.query_one(self.TABLE).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "focus_table":  # ``down`` leaves the search box; elsewhere it moves the cursor
            return self.query_one("#search", Input).has_focus
        return True
