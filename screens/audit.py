"""The audit screen: who, bound as whom, did what to which users, when, and how it
ended — newest first, searched as you type (``/``) in an exclusive worker, a page at a
time (the next page is read when the cursor reaches the last row); ``enter`` shows an
entry in full (:mod:`screens.audit_entry`). Every string is
shown through :func:`core.text.plain` as a ``Text``: a user named ``[@click=app.quit]x[/]``
is text here, like anywhere else."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Awaitable, Callable

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from core.audit import AuditRecord
from core.errors import TenantryError
from core.text import plain
from screens.audit_entry import RESULT_LOOK, AuditEntryScreen
from widgets import RowTable, back_out, cell, column_widths, when

if TYPE_CHECKING:
    from core.session import Session

log = logging.getLogger("tenantry.console")

COLUMNS = (
    ("time", "Time"), ("result", "Result"), ("action", "What"),
    ("operator", "Operator"), ("users", "Users"), ("customers", "Customers"),
)
FIXED = (11, 15, 4, None, None, None)
SHARES = (2, 3, 3)
PAGE = 200



def entry_row(entry: AuditRecord) -> tuple[Text, ...]:
    """The table cells of one entry, each a sanitised ``Text`` (never markup)."""
    return (
        cell(when(entry.time)),
        cell(entry.result.replace("_", " "), RESULT_LOOK.get(entry.result, "")),
        cell(entry.action),
        cell(entry.operator),
        cell(", ".join(entry.users)),
        cell(" → ".join(entry.customers)),
    )


def entry_text(entry: AuditRecord) -> Group:
    """The highlighted entry in full, under the table: one line each for when and what,
    who, and on whom; then the detail (a refusal's reasons), wrapped."""
    line = {"no_wrap": True, "overflow": "ellipsis"}
    parts = [
        Text.assemble((f"#{entry.id}  ", "bold"), when(entry.time, full=True), "  ", (plain(entry.action), "bold"), " ",
                      (entry.result.replace("_", " "), RESULT_LOOK.get(entry.result, "")),
                      *((("  job ", "dim"), plain(entry.job)) if entry.job else ()), **line),
        Text.assemble(("by ", "dim"), plain(entry.operator), (" as ", "dim"), plain(entry.bound_as), **line),
        Text.assemble(plain(", ".join(entry.users)) or "—", ("  ·  ", "dim"), plain(" → ".join(entry.customers)) or "—", **line),
    ]
    if entry.detail:
        parts.append(Text(plain(entry.detail, single_line=False), overflow="ellipsis"))
    return Group(*parts)


class AuditTable(RowTable):
    BINDINGS = [Binding("enter", "select_cursor", "Details", id="audit.details")]


class AuditScreen(Screen[None]):
    """The audit log, newest first, :data:`PAGE` entries at a time."""

    CSS = """
    #audit { height: 1fr; scrollbar-size-vertical: 1; }
    #audit-entry { height: 5; padding: 0 1; background: $boost; }
    """
    AUTO_FOCUS = "#audit"
    SHOWN_BY = "audit"  # the app's action that opens this screen (not offered again on it)
    BINDINGS = [
        Binding("slash", "focus_search", "Search", id="audit.search"),
        Binding("escape", "back_out", "Back", id="audit.back"),
        Binding("down", "focus_table", "Results", show=False, id="audit.results"),
    ]

    def __init__(self, session: Callable[[], Awaitable[Session]], *, debounce: float = 0.15) -> None:
        super().__init__()
        self.session = session
        self.debounce = debounce
        self.entries: dict[str, AuditRecord] = {}  # by id (as text: the row key), the rows shown
        self.query_text: str | None = None  # the search the table shows
        self._requested: str | None = ""  # the search last started ("" = none yet)
        self._more = False  # an older page may follow

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="search-bar"):
            yield Input(placeholder="Search the audit log: user, customer, operator, job, result…  (/)", id="search", compact=True)
            yield Static(Text("loading…"), id="count")
        yield Static(id="banner")
        yield AuditTable(id="audit", cursor_type="row", zebra_stripes=False)
        yield Static(id="audit-entry")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#audit", DataTable)
        for (key, label), width in zip(COLUMNS, column_widths(self.app.size.width, FIXED, SHARES)):
            table.add_column(Text(label), width=width, key=key)
        self.query_one("#search", Input).cursor_blink = self.app.animation_level != "none"
        self.search(None, debounce=0)

    # -- searching -------------------------------------------------------------------------
    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.search(event.value)

    @on(Input.Submitted, "#search")
    def _search_submitted(self) -> None:
        self.action_focus_table()

    def search(self, text: str | None, *, debounce: float | None = None) -> None:
        """Show the entries mentioning ``text`` (any column), newest first."""
        wanted = (text or "").strip() or None
        if wanted == self._requested:
            return
        self._requested = wanted
        self._read(wanted, None, self.debounce if debounce is None else debounce)

    @work(exclusive=True, group="search", exit_on_error=False)
    async def _read(self, text: str | None, before: int | None, debounce: float) -> None:
        """One page: the first (``before`` None) replaces the rows, a later one adds to them."""
        if debounce:
            await asyncio.sleep(debounce)  # a newer keystroke cancels this worker here
        try:
            session = await self.session()
            found = await asyncio.to_thread(session.audit.entries, text, PAGE + 1, before)
        except TenantryError as error:
            self._show_error(str(error))
        except Exception as error:  # a defect below: one sentence here, the details in the log
            log.exception("reading the audit log failed")
            self._show_error(f"The audit log could not be read ({type(error).__name__}); the details are in the log.")
        else:
            self.show_entries(found[:PAGE], text, more=len(found) > PAGE, append=before is not None)

    def show_entries(self, found: list[AuditRecord], text: str | None, *, more: bool, append: bool) -> None:
        self.query_one("#banner", Static).remove_class("-shown")
        table = self.query_one(AuditTable)
        self.query_text = text
        self._more = more
        current = self.highlighted if append else None  # a new search starts at the top
        if not append:
            self.entries = {}
        for entry in found:
            self.entries[str(entry.id)] = entry
        table.show_rows([(key, entry_row(entry)) for key, entry in self.entries.items()],
                        str(current.id) if current is not None else None)
        count = len(self.entries)
        if count == 0 and text:
            shown = Text.assemble("no entry mentions “", plain(text), "”")
        else:
            shown = Text(f"{count}{'+' if more else ''} entr{'y' if count == 1 else 'ies'}")
        self.query_one("#count", Static).update(shown)
        self._show_entry()

    def _show_error(self, sentence: str) -> None:
        banner = self.query_one("#banner", Static)
        banner.update(Text(plain(sentence)))
        banner.add_class("-shown")
        self._requested = ""  # let the same search be tried again

    @property
    def highlighted(self) -> AuditRecord | None:
        table = self.query_one("#audit", DataTable)
        if not self.entries or table.cursor_row < 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return self.entries.get(key.value) if key.value is not None else None

    def _show_entry(self) -> None:
        entry = self.highlighted
        text = entry_text(entry) if entry else Text("Nothing recorded yet." if not self.query_text else "", style="dim")
        self.query_one("#audit-entry", Static).update(text)

    @on(DataTable.RowSelected, "#audit")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        entry = self.entries.get(event.row_key.value) if event.row_key.value else None
        if entry is not None:
            self.app.push_screen(AuditEntryScreen(entry))

    @on(DataTable.RowHighlighted, "#audit")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_entry()
        table = self.query_one("#audit", DataTable)
        if self._more and event.cursor_row == table.row_count - 1:
            self._more = False  # one request for the next page
            last = int(list(self.entries)[-1])
            self._read(self.query_text, last, 0)

    # -- keys ------------------------------------------------------------------------------
    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_focus_table(self) -> None:
        self.query_one("#audit", DataTable).focus()

    def action_back_out(self) -> None:
        """``esc``: clear the search, else leave the search box, else back."""
        back_out(self.query_one("#search", Input), self.query_one("#audit", DataTable), lambda: self.dismiss(None))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "focus_table":  # ``down`` leaves the search box; elsewhere it moves the cursor
            return self.query_one("#search", Input).has_focus
        return True
