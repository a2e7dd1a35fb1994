"""Move (or copy) a user with nothing selected — the article's first steps: the customer
the user belongs to, then the user, each found with the server-side search of the
customers and users screens. Typing and ``enter`` picks the top match; ``esc`` goes back
a step. :class:`SourcePicker` walks the two steps and remembers what was typed, so going
back from the wizard's first step returns to the user step as it was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input

from core.model import Customer, User
from core.text import plain
from screens.customers import CustomersScreen
from screens.search import DirectoryProvider, SearchScreen
from screens.users import COLUMNS, FIXED, SHARES, user_row
from screens.wizard.engine import Go
from widgets import StepTrail, RowTable, column_widths

if TYPE_CHECKING:
    from textual.app import App

    from core.directory import Directory

SOURCE_STEPS = ("Customer", "User")


class SourceStep(SearchScreen):
    """A step that picks one row: ``enter`` the top match, ``esc`` back."""

    AUTO_FOCUS = "#search"
    BINDINGS = [
        Binding("enter", "choose", "Choose", priority=True, id="source.choose"),
        Binding("escape", "back", "Back", id="source.back"),
        Binding("slash", "focus_search", "Search", id="source.search"),
        Binding("down", "focus_table", "Results", show=False, id="source.results"),
    ]
    PLACEHOLDER = ""
    TABLE_ID = ""
    INDEX = 0  # in the trail

    def __init__(self, title: Text, steps: Sequence[str], directory: DirectoryProvider, *, typed: str = "", debounce: float = 0.15) -> None:
        super().__init__(directory, debounce=debounce)
        self.title_text = title
        self.steps = steps
        self.typed = typed  # what was typed here last time: the search as it was

    def compose(self) -> ComposeResult:
        yield Header()
        yield StepTrail(self.title_text, self.steps, self.INDEX)
        yield from self.search_bar(self.PLACEHOLDER)
        yield self.TABLE(id=self.TABLE_ID, cursor_type="row", zebra_stripes=False)
        yield Footer()

    def on_mount(self) -> None:
        if self.typed:
            self.query_one("#search", Input).value = self.typed

    def action_choose(self) -> None:
        self.pick()

    def picked(self, item: Any) -> None:
        if item is None:
            self.app.bell()
            return
        self._leave(item)

    def action_back(self) -> None:
        self._leave(Go.BACK)

    def _leave(self, result: Any) -> None:
        self.typed = self.query_one("#search", Input).value
        self.dismiss(result)


class SourceCustomerStep(SourceStep, CustomersScreen):
    """Step 1: the customer the user belongs to."""

    PLACEHOLDER = "The user's customer: type its name or domain, then enter"
    TABLE_ID = "customers"

    def on_customers_screen_customer_selected(self, message: CustomersScreen.CustomerSelected) -> None:
        message.stop()  # (a click on a row) the source, not a customer to open
        self.picked(message.customer)


class SourceUserTable(RowTable):
    """The users to pick from (no marks: one user is picked)."""


class SourceUserStep(SourceStep):
    """Step 2: the user, among the chosen customer's users."""

    TABLE = SourceUserTable
    TABLE_ID = "users"
    NOUN = "user"
    INDEX = 1
    PLACEHOLDER = "The user: type a name, UPN, email or username, then enter"

    def __init__(self, customer: Customer, title: Text, steps: Sequence[str], directory: DirectoryProvider, **kwargs: Any) -> None:
        super().__init__(Text.assemble(title, " of ", plain(customer.name)), steps, directory, **kwargs)
        self.customer = customer

    def on_mount(self) -> None:
        table = self.query_one(SourceUserTable)
        for (key, label), width in list(zip(COLUMNS, column_widths(self.app.size.width, FIXED, SHARES)))[1:]:
            table.add_column(Text(label), width=width, key=key)
        self.search(self.typed, debounce=0)

    async def fetch(self, directory: Directory, text: str | None, limit: int) -> Sequence[User]:
        return await directory.users(self.customer, search=text, limit=limit)

    def cells(self, user: User) -> tuple[Text, ...]:
        return user_row(user, False)[1:]  # without the mark column

    @on(DataTable.RowSelected, "#users")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()  # (a click on a row)
        self.picked(self.rows.get(event.row_key.value))


class SourcePicker:
    """Walks the two steps; :meth:`pick` returns the user and its customer, or ``None``
    when the admin backed out of the first step."""

    def __init__(self, title: Text, steps: Sequence[str], directory: DirectoryProvider, *, debounce: float = 0.15) -> None:
        self.title = title
        self.steps = (*SOURCE_STEPS, *steps)
        self.directory = directory
        self.debounce = debounce
        self.customer: Customer | None = None
        self._at_customer = True  # else ``pick`` starts again at the user step
        self._typed = {"customer": "", "user": ""}

    async def pick(self, app: App) -> tuple[User, Customer] | None:
        while True:
            if self._at_customer or self.customer is None:
                step = SourceCustomerStep(self.title, self.steps, self.directory, typed=self._typed["customer"], debounce=self.debounce)
                chosen = await app.push_screen_wait(step)
                self._typed["customer"] = step.typed
                if chosen is Go.BACK:
                    return None
                if self.customer is not None and chosen.dn != self.customer.dn:
                    self._typed["user"] = ""  # another customer: its users afresh
                self.customer, self._at_customer = chosen, False
            user_step = SourceUserStep(self.customer, self.title, self.steps, self.directory, typed=self._typed["user"], debounce=self.debounce)
            user = await app.push_screen_wait(user_step)
            self._typed["user"] = user_step.typed
            if user is not Go.BACK:
                return user, self.customer
            self._at_customer = True
