"""The users screen of one customer: its users, searched on the server as you type.

Like the customers screen, every keystroke in the search box starts an *exclusive*
worker (a newer search cancels the one in flight) and at most ``limit`` rows are read.
``space`` marks users for a bulk job, ``enter`` shows a user's details, ``m`` starts
the move wizard on the highlighted user — or, with users marked, the bulk move of the
marked users. Every cell is a sanitised ``Text``.
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
from core.model import Customer, User
from core.text import plain
from tui.widgets import cell, column_widths

if TYPE_CHECKING:
    from core.directory import Directory

log = logging.getLogger("tenantry.console")

DirectoryProvider = Callable[[], Awaitable["Directory"]]

# (column key, label); widths: fixed where given, else shared by SHARES
COLUMNS = (
    ("mark", ""), ("name", "Name"), ("upn", "UPN"), ("email", "Email"),
    ("services", "Services"), ("roles", "Roles"), ("enabled", "On"),
)
FIXED = (1, None, None, None, None, 5, 3)
SHARES = (14, 18, 12, 12)
MARK = Text("●", style="bold", no_wrap=True)
SLOW_SEARCH = 0.25


def _initials(role: str) -> str:
    """``Customer Administrator`` → ``CA`` (the detail panel has the full names)."""
    return "".join(word[:1].upper() for word in plain(role).split()) or "?"


def user_row(user: User, marked: bool) -> tuple[Text, ...]:
    """The table cells of one user, each a sanitised ``Text`` (never markup)."""
    return (
        MARK if marked else Text(""),
        cell(user.display_name or user.cn),
        cell(user.upn or user.sam),
        cell(user.email) if user.email else Text("—", style="dim"),
        cell(",".join(user.services)) if user.services else Text("—", style="dim"),
        cell(",".join(_initials(r) for r in user.roles)) if user.roles else Text("—", style="dim"),
        Text("yes") if user.enabled else Text("no", style="bold"),
    )


class UserTable(DataTable):
    """The users table; ``enter`` shows details, ``space`` marks."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Open", id="users.details"),
        Binding("space", "mark", "Mark", id="users.mark"),
    ]

    def action_mark(self) -> None:
        screen = self.screen
        if isinstance(screen, UsersScreen):
            screen.toggle_mark()


class UsersScreen(Screen[None]):
    """The users of ``customer`` matching the search box, at most ``limit`` of them."""

    AUTO_FOCUS = "#users"
    BINDINGS = [
        Binding("slash", "focus_search", "Search", id="users.search"),
        Binding("m", "move", "Move", id="users.move"),
        Binding("c", "copy", "Copy", id="users.copy"),
        Binding("escape", "back_out", "Back", id="users.back"),
        Binding("down", "focus_table", "Results", show=False, id="users.results"),
    ]

    class MoveUser(Message):
        """The operator asked to move a user (``m``)."""

        def __init__(self, user: User, customer: Customer) -> None:
            super().__init__()
            self.user = user
            self.customer = customer

    class MoveMarked(Message):
        """The operator asked to move the marked users (``m`` with marks): a bulk move."""

        def __init__(self, users: list[User], customer: Customer) -> None:
            super().__init__()
            self.users = users
            self.customer = customer

    class CopyUser(Message):
        """The operator asked to copy a user (``c``): a new user with it as template."""

        def __init__(self, user: User, customer: Customer) -> None:
            super().__init__()
            self.user = user
            self.customer = customer

    def __init__(
        self,
        customer: Customer,
        directory: DirectoryProvider,
        *,
        limit: int = 200,
        debounce: float = 0.15,
        search: str | None = None,
    ) -> None:
        super().__init__()
        self.customer = customer
        self._directory = directory
        self.limit = limit
        self.debounce = debounce
        self.initial_search = search or ""
        self.users: dict[str, User] = {}  # by DN, the rows shown
        self.marked: set[str] = set()  # DNs, kept across searches
        self._marked_users: dict[str, User] = {}  # the marked users by DN, in the order marked
        self.query_text: str | None = None
        self._requested: str | None = ""

    # -- layout ------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self._customer_line(), id="context")
        with Horizontal(id="search-bar"):
            yield Input(self.initial_search, placeholder="Search users by name, UPN, email or username  (/)", id="search", compact=True)
            yield Static(Text("loading…"), id="count")
        yield Static(id="banner")
        yield UserTable(id="users", cursor_type="row", zebra_stripes=False)
        yield Footer(compact=True)  # eight keys: they fit 80 columns only compact

    def _customer_line(self) -> Text:
        c = self.customer
        text = Text.assemble((plain(c.name), "bold"), no_wrap=True, overflow="ellipsis")
        text.append(f"  ·  {plain(c.reseller)}" if c.reseller else "  ·  direct")
        if c.domains:
            text.append(f"  ·  {plain(c.domains[0])}")
            if len(c.domains) > 1:
                text.append(f" +{len(c.domains) - 1}", style="dim")
        return text

    def on_mount(self) -> None:
        table = self.query_one(UserTable)
        for (key, label), width in zip(COLUMNS, column_widths(self.app.size.width, FIXED, SHARES)):
            table.add_column(Text(label), width=width, key=key)
        self.query_one("#search", Input).cursor_blink = self.app.animation_level != "none"
        self.search(self.initial_search, debounce=0)

    # -- searching ---------------------------------------------------------------
    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        self.search(event.value)

    @on(Input.Submitted, "#search")
    def _search_submitted(self) -> None:
        self.action_focus_table()

    def search(self, text: str | None, *, debounce: float | None = None, again: bool = False) -> None:
        """Show the users matching ``text`` (name, UPN, email, username), searched server-side."""
        wanted = (text or "").strip() or None
        if wanted == self._requested and not again:
            return
        self._requested = wanted
        self._run_search(wanted, self.debounce if debounce is None else debounce)

    def reload(self) -> None:
        """Read the rows again (after a move changed them)."""
        self.search(self.query_one("#search", Input).value, debounce=0, again=True)

    @work(exclusive=True, group="search", exit_on_error=False)
    async def _run_search(self, text: str | None, debounce: float) -> None:
        if debounce:
            await asyncio.sleep(debounce)  # a newer keystroke cancels this worker here
        slow = self.set_timer(SLOW_SEARCH, lambda: self._set_count(Text("searching…", style="italic")))
        try:
            directory = await self._directory()
            found = await directory.users(self.customer, search=text, limit=self.limit + 1)
        except TenantryError as error:
            self._show_error(str(error))
        except Exception as error:  # a defect: one sentence here, the details in the log
            log.exception("user search failed")
            self._show_error(f"The user search failed unexpectedly ({type(error).__name__}).")
        else:
            self.show_users(found, text)
        finally:
            slow.stop()

    # -- showing -----------------------------------------------------------------
    def show_users(self, found: Sequence[User], text: str | None) -> None:
        self.query_one("#banner", Static).remove_class("-shown")
        shown = list(found[: self.limit])
        self.query_text = text
        self._more = len(found) > self.limit
        if [u.dn for u in shown] != list(self.users) or shown != list(self.users.values()):
            table = self.query_one(UserTable)  # else the same rows: send nothing to the terminal
            current = self.highlighted
            with self.app.batch_update():
                table.clear()
                self.users = {u.dn: u for u in shown}
                for user in shown:
                    table.add_row(*user_row(user, user.dn in self.marked), key=user.dn)
                if current is not None and current.dn in self.users:
                    table.move_cursor(row=table.get_row_index(current.dn), animate=False)
        self._show_count()

    _more = False  # more users match than are shown

    def _show_count(self) -> None:
        count = len(self.users)
        if self._more:
            text = Text(f"first {count} shown")
        elif count == 0 and self.query_text:
            text = Text.assemble("no user matches “", plain(self.query_text), "”")
        else:
            text = Text(f"{count} user{'' if count == 1 else 's'}")
        if self.marked:
            text.append(f" · {len(self.marked)} marked", style="bold")
        self._set_count(text)

    def _set_count(self, text: Text) -> None:
        self.query_one("#count", Static).update(text)

    def _show_error(self, sentence: str) -> None:
        banner = self.query_one("#banner", Static)
        banner.update(Text(plain(sentence)))
        banner.add_class("-shown")
        self._set_count(Text("not loaded" if not self.users else "not updated", style="italic"))
        self._requested = ""  # let the same search be tried again

    @property
    def highlighted(self) -> User | None:
        table = self.query_one(UserTable)
        if not self.users or table.cursor_row < 0:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        return self.users.get(key.value) if key.value is not None else None

    # -- marks, details, move ---------------------------------------------------------
    def toggle_mark(self) -> None:
        user = self.highlighted
        if user is None:
            return
        self.marked.symmetric_difference_update({user.dn})
        if user.dn in self.marked:
            self._marked_users[user.dn] = user
        else:
            self._marked_users.pop(user.dn, None)
        table = self.query_one(UserTable)
        table.update_cell(user.dn, "mark", MARK if user.dn in self.marked else Text(""))
        table.action_cursor_down()
        self._show_count()

    @on(DataTable.RowSelected, "#users")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if event.row_key.value in self.users:
            self.open_detail(event.row_key.value)

    def open_detail(self, dn: str) -> None:
        """The details panel of one user; ``m`` there moves that user."""
        from screens.user_detail import UserDetailScreen

        panel = UserDetailScreen(dn, self._directory, movable=self._can_move(), customer=self.customer.name)
        self.app.push_screen(panel, self._detail_closed)

    def _detail_closed(self, to_move: User | tuple[str, User] | None) -> None:
        if isinstance(to_move, tuple):  # ("copy", user): ``c`` on the details panel
            self.post_message(self.CopyUser(to_move[1], self.customer))
        elif to_move is not None:
            self.post_message(self.MoveUser(to_move, self.customer))

    def _can_move(self) -> bool:
        return not getattr(self.app, "readonly", False)

    @property
    def marked_users(self) -> list[User]:
        return list(self._marked_users.values())

    def clear_marks(self) -> None:
        """Forget the marks (a bulk job took them); the rows are read again."""
        self.marked.clear()
        self._marked_users.clear()
        self.users = {}  # every row is redrawn, without its mark
        self.reload()

    def action_move(self) -> None:
        if self.marked:
            self.post_message(self.MoveMarked(self.marked_users, self.customer))
            return
        user = self.highlighted
        if user is None:
            self.app.bell()
            return
        self.post_message(self.MoveUser(user, self.customer))

    def action_copy(self) -> None:
        user = self.highlighted
        if user is None:
            self.app.bell()
            return
        self.post_message(self.CopyUser(user, self.customer))

    # -- keys --------------------------------------------------------------------
    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_focus_table(self) -> None:
        self.query_one(UserTable).focus()

    def action_back_out(self) -> None:
        """``esc``: leave the search box; clear the search; then back to the customers."""
        search = self.query_one("#search", Input)
        if search.has_focus:
            self.action_focus_table()
        elif search.value:
            search.value = ""
        else:
            self.dismiss(None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "focus_table":
            return self.query_one("#search", Input).has_focus
        if action in ("move", "copy"):
            return self._can_move()  # read-only mode: hidden (and the core refuses anyway)
        return True
