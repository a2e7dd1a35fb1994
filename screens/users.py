"""The users screen of one customer: its users, searched as you type in a local index
of this customer's users (:mod:`core.user_index`), loaded when the screen opens and
shown as its pages arrive — on the server while nothing is loaded yet, and for a
customer over the configured cap (:class:`~screens.search.SearchScreen`).
``space`` marks users for a bulk job, ``enter`` shows a user's details, ``m`` starts
the move wizard on the highlighted user — or, with users marked, the bulk move of the
marked users. Every cell is a sanitised ``Text``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Sequence

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Header, Input, Static

from core.errors import TenantryError
from core.index_keeper import FRESH, IndexKeeper
from core.local_search import Found
from core.model import Customer, User
from core.text import plain
from core.user_index import UserIndex
from screens.search import DirectoryProvider, SearchScreen
from widgets import RowTable, back_out, cell, column_widths

if TYPE_CHECKING:
    from core.directory import Directory

log = logging.getLogger("tenantry.console")

# (column key, label); widths: fixed where given, else shared by SHARES
COLUMNS = (
    ("mark", ""), ("name", "Name"), ("upn", "UPN"), ("email", "Email"),
    ("services", "Services"), ("roles", "Roles"), ("enabled", "On"),
)
FIXED = (1, None, None, None, None, 5, 3)
SHARES = (14, 18, 12, 12)
MARK = Text("●", style="bold", no_wrap=True)


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


class UserTable(RowTable):
    """The users table; ``enter`` shows details, ``space`` marks, ``ctrl+a`` marks every
    user shown, ``U`` clears the marks (htop's untag-all)."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Open", id="users.details"),
        Binding("space", "mark", "Mark", id="users.mark"),
        Binding("ctrl+a", "mark_all", "Mark all shown", show=False, id="users.mark_all"),
        Binding("U", "clear_marks", "Clear marks", show=False, id="users.clear_marks"),
    ]

    def action_mark(self) -> None:
        if isinstance(self.screen, UsersScreen):
            self.screen.toggle_mark()

    def action_mark_all(self) -> None:
        if isinstance(self.screen, UsersScreen):
            self.screen.mark_all()

    def action_clear_marks(self) -> None:
        if isinstance(self.screen, UsersScreen):
            self.screen.unmark_all()


class UsersScreen(SearchScreen):
    """The users of ``customer`` matching the search box, at most ``limit`` of them."""

    AUTO_FOCUS = "#users"
    TABLE = UserTable
    NOUN = "user"
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
        users_cap: int = 0,
        refresh_seconds: float = 30.0,
    ) -> None:
        super().__init__(directory, limit=limit, debounce=debounce)
        self.customer = customer
        self.index = UserIndex(customer, users_cap)  # users_cap 0: always searched on the DC
        # keeps the users fresh once loaded, until the screen closes
        self.keeper = IndexKeeper(self.index, interval=refresh_seconds, name=f"user index of {plain(customer.name)}")
        self._unwatch = self.keeper.watch(self._users_refreshed)
        self.initial_search = search or ""
        self.marked: set[str] = set()  # DNs, kept across searches
        self._marked_users: dict[str, User] = {}  # the marked users by DN, in the order marked

    @property
    def users(self) -> dict[str, User]:
        """The rows shown, by DN."""
        return self.rows

    # -- layout ------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self._customer_line(), id="context")
        yield from self.search_bar("Search users by name, UPN, email or username  (/)", self.initial_search, "loading…")
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
        if self.index.over_cap:
            self.search(self.initial_search, debounce=0)
        else:
            self._load_users()  # its first page is searched as soon as it arrives

    def on_unmount(self) -> None:
        self._unwatch()
        self.keeper.stop()
        self.index.close()  # the users go now, not at the next full garbage collection
        self.rows = {}

    # -- the local index of this customer's users ----------------------------------
    @work(group="user-index", exclusive=True, exit_on_error=False)
    async def _load_users(self) -> None:
        try:
            directory = await self._directory()
            await self.answered(directory, lambda: self.index.load(directory, self._users_arrived))
        except TenantryError as error:
            if self.index.usable:
                log.warning("the users of %s were not read again: %s", self.customer.dn, error)
            else:
                self._show_error(str(error))
        else:
            if self.index.complete and not self.keeper.running:
                self.keeper.start(directory)

    def _users_refreshed(self) -> None:
        last = self.keeper.last
        if self.keeper.state == FRESH and last is not None and last.changed:
            self._users_arrived()

    def _users_arrived(self) -> None:
        if self.index.usable or self.index.over_cap:
            self.search(self.query_one("#search", Input).value, again=True)
        else:
            self._show_count()

    def search_locally(self, text: str | None, limit: int) -> Found | None:
        return self.index.search(text, limit) if self.index.usable else None

    def reload(self) -> None:
        """Read the users again (after a job changed them)."""
        if self.index.usable:
            self._load_users()
        else:
            super().reload()

    # -- searching ---------------------------------------------------------------
    async def fetch(self, directory: Directory, text: str | None, limit: int) -> Sequence[User]:
        return await directory.users(self.customer, search=text, limit=limit)

    def cells(self, user: User) -> tuple[Text, ...]:
        return user_row(user, user.dn in self.marked)

    def cell_state(self, user: User) -> object:
        return user.dn in self.marked

    def count_text(self) -> Text:
        text = super().count_text()
        index = self.index
        if index.loading and not index.over_cap:
            of = f" of {index.expected:,}" if index.expected is not None else "…"
            text.append(f" · loading {len(index):,}{of}", style="italic")
        elif index.over_cap and index.cap > 0:
            text.append(f" · over {index.cap:,} users: searched on the DC", style="italic")
        if self.marked:
            text.append(f" · {len(self.marked)} marked", style="bold")
        return text

    # -- marks, details, move ---------------------------------------------------------
    def toggle_mark(self) -> None:
        user = self.highlighted
        if user is None:
            return
        self._set_marks([user], user.dn not in self.marked)
        self.query_one(UserTable).action_cursor_down()

    def mark_all(self) -> None:
        """Mark every user shown (what the search matches, up to the rows shown)."""
        self._set_marks(list(self.users.values()), True)

    def unmark_all(self) -> None:
        """Clear every mark, of the users shown and of those a search hides."""
        self._set_marks(list(self._marked_users.values()), False)

    def _set_marks(self, users: Sequence[User], on: bool) -> None:
        table = self.query_one(UserTable)
        with self.app.batch_update():
            for user in users:
                if on:
                    self.marked.add(user.dn)
                    self._marked_users.setdefault(user.dn, user)
                else:
                    self.marked.discard(user.dn)
                    self._marked_users.pop(user.dn, None)
                if user.dn in self.users:
                    table.set_cell(user.dn, "mark", MARK if on else Text(""))
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
        self.rows = {}  # every row is redrawn, without its mark
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
    def action_back_out(self) -> None:
        """``esc``: clear the search, else leave the search box, else back to the customers."""
        back_out(self.query_one("#search", Input), self.query_one(UserTable), lambda: self.dismiss(None))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "focus_table":
            return self.query_one("#search", Input).has_focus
        if action in ("move", "copy"):
            return self._can_move()  # read-only mode: hidden (and the core refuses anyway)
        return True
