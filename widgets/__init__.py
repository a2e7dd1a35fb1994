"""Widgets the screens share: sanitised cells, a left/right choice, the wizard's step
trail, the problem list, the password fields and the connection banner (the progress
panes are in :mod:`widgets.progress`).

Every directory or API string reaches the terminal through :func:`cell` /
:func:`core.text.plain` as a ``rich.text.Text``: never as markup.
"""

from __future__ import annotations

from datetime import datetime
from itertools import zip_longest
from typing import Awaitable, Callable, Iterable, Sequence

from rich.cells import cell_len
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Checkbox, DataTable, Input, Label, Static
from textual.widgets.data_table import CellType, ColumnKey, DuplicateKey, Row, RowKey

from core.password import PasswordPolicy
from core.text import plain


def cell(value: object, style: str = "") -> Text:
    """A one-line table cell: sanitised, never markup, cut with an ellipsis."""
    return Text(plain(value), style=style, no_wrap=True, overflow="ellipsis")


def when(iso: str | None, *, full: bool = False) -> str:
    """A journal or audit time (ISO 8601, UTC) in the local time zone: ``05-14 09:32``
    for a table cell, ``2024-05-14 09:32:11`` with ``full``; unreadable ones as given."""
    if not iso:
        return ""
    try:
        moment = datetime.fromisoformat(iso).astimezone()
    except ValueError:
        return plain(iso)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if full else "%m-%d %H:%M")


def field_grid(rows: Iterable[tuple[str, object]], label_width: int = 10) -> Table:
    """Label and value, one pair a line (a value wraps; a ``str`` is sanitised, never markup)."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=label_width, no_wrap=True, style="bold")
    grid.add_column(ratio=1, overflow="fold")
    for label, value in rows:
        grid.add_row(Text(label), value if isinstance(value, Text) else Text(plain(value, single_line=False)))
    return grid


def column_widths(total: int, fixed: Sequence[int | None], shares: Sequence[int]) -> list[int]:
    """Widths for a table ``total`` cells wide: ``fixed`` widths where given, the rest
    shared out by ``shares`` (cell padding and a one-cell scrollbar accounted for)."""
    overhead = 2 * len(fixed) + 1
    room = max(total - overhead - sum(w or 0 for w in fixed), 6 * len(shares))
    flexible = [max(4, room * share // sum(shares)) for share in shares]
    flexible[0] += max(0, room - sum(flexible))  # rounding leftovers go to the first
    widths, it = [], iter(flexible)
    for width in fixed:
        widths.append(width if width is not None else next(it))
    return widths


def back_out(search: Input, table: Widget, leave: Callable[[], object] | None = None) -> None:
    """``esc`` on a screen with a search box over a table: one ``esc`` clears an active
    search (the whole table again, the cursor on it); else it leaves the box for the
    table; else ``leave`` (back a screen), if any."""
    if search.value:
        search.value = ""  # Input.Changed runs the (now empty) search
        table.focus()
    elif search.has_focus:
        table.focus()
    elif leave is not None:
        leave()


class Choice(Widget, can_focus=True):
    """One value among a few, changed with ``←``/``→`` (no pop-up: one key per change)."""

    DEFAULT_CSS = """
    Choice { width: auto; height: 1; padding: 0 1; background: $boost; }
    Choice:focus { background: $surface-lighten-1; text-style: bold; }
    """
    BINDINGS = [
        Binding("right", "step(1)", "Change", key_display="←→", id="choice.next"),
        Binding("left", "step(-1)", "Previous", show=False, id="choice.previous"),
    ]

    index: reactive[int] = reactive(0)

    class Changed(Message):
        def __init__(self, choice: Choice, value: str) -> None:
            super().__init__()
            self.choice = choice
            self.value = value

        @property
        def control(self) -> Choice:
            return self.choice

    def __init__(self, options: Sequence[str], value: str | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.options = list(options) or [""]
        self.set_reactive(Choice.index, self.options.index(value) if value in self.options else 0)

    @property
    def value(self) -> str:
        return self.options[self.index]

    @property
    def _arrows(self) -> int:
        return 4 if len(self.options) > 1 else 0

    def get_content_width(self, container: Size, viewport: Size) -> int:
        """As wide as the longest option: the width does not jump (nor cut) as it changes."""
        return max(cell_len(plain(option)) for option in self.options) + self._arrows

    def render(self) -> Text:
        many = len(self.options) > 1
        value, room = plain(self.value), self.content_size.width - self._arrows
        if 0 < room < cell_len(value):  # cut at the start: the end tells .example from .example.org
            value = "…" + value[len(value) - room + 1:]
        return Text.assemble(("‹ " if many else "", "dim"), value, (" ›" if many else "", "dim"), no_wrap=True)

    def action_step(self, delta: int) -> None:
        self.index = (self.index + delta) % len(self.options)

    def watch_index(self) -> None:
        self.refresh(layout=True)
        self.post_message(self.Changed(self, self.value))


class RowTable(DataTable):
    """A table that moves as an SSH admin's other tools (less, vim, k9s, htop) do: ``j``/``k``
    down and up, Home or ``g`` to the first row, End or ``G`` to the last, PgUp/PgDn a page
    (DataTable's own). Every table of the console is one, so the keys are the same
    everywhere; a table without a cursor (a progress pane's) scrolls instead."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("home,g", "first_row", "First row", show=False),
        Binding("end,G", "last_row", "Last row", show=False),
    ]

    def action_first_row(self) -> None:
        if self.cursor_type == "none":
            self.scroll_to(y=0, animate=False)
        elif self.row_count:
            self.move_cursor(row=0)

    def action_last_row(self) -> None:
        if self.cursor_type == "none":
            self.scroll_to(y=self.max_scroll_y, animate=False)
        elif self.row_count:
            self.move_cursor(row=self.row_count - 1)

    def show_rows(self, rows: Sequence[tuple[str, Sequence[CellType]]], keep: str | None = None) -> None:
        """Show ``rows`` — (key, cells), in order, one line each — by changing only what
        differs from what the table holds: a cell that differs from the one at its place is
        replaced and repainted alone, rows past the old end are added and those past the new
        end removed; nothing is cleared, so a key that changes a few cells sends a few cells
        to the terminal. The cursor goes to the row ``keep`` where it is shown, else to the
        first row (where a freshly filled table has it: ``enter`` takes the top match)."""
        columns = [column.key for column in self.ordered_columns]
        before = [self._row_locations.get_key(index) for index in range(self.row_count)]
        under_cursor = before[self.cursor_row] if 0 <= self.cursor_row < len(before) else None
        data: dict[RowKey, dict[ColumnKey, CellType]] = {}
        locations = type(self._row_locations)({})  # Textual's two-way index ↔ key map
        for index, (key, cells) in enumerate(rows):
            if len(cells) > len(columns):
                raise ValueError("More values provided than there are columns.")
            row_key = RowKey(key)
            if row_key in data:
                raise DuplicateKey(f"The row key {row_key!r} already exists.")
            data[row_key] = dict(zip_longest(columns, cells))
            locations[row_key] = index
        dirty = self._changed_regions(before, list(data.values()), columns)
        self._data.clear()
        self._data.update(data)
        self.rows.clear()
        self.rows.update((key, Row(key, 1)) for key in data)
        self._row_locations = locations
        self._update_count += 1  # the caches of rendered rows, cells and lines are keyed on it
        if any(column.auto_width for column in self.ordered_columns):
            self._new_rows.update(data)  # Textual measures them on idle, then repaints every line
            self._require_update_dimensions = True
            self.check_idle()
        elif len(data) != len(before):
            self._set_height()
        for region in dirty:
            self._refresh_region(region)
        target = locations.get(RowKey(keep)) if keep is not None else None
        self.hover_coordinate = self.hover_coordinate  # clamped to the rows there are now
        moved = self.cursor_coordinate
        self.move_cursor(row=target or 0, animate=False)
        if self.cursor_coordinate == moved and self.row_count and locations.get_key(self.cursor_row) != under_cursor:
            self._highlight_cursor()  # another row under an unmoved cursor: say so, as a move would

    def set_cell(self, row_key: RowKey | str, column_key: ColumnKey | str, value: CellType) -> None:
        """Put ``value`` in one cell and repaint that cell alone (DataTable's ``update_cell``
        repaints every line of the table)."""
        row_key = RowKey(row_key) if isinstance(row_key, str) else row_key
        column_key = ColumnKey(column_key) if isinstance(column_key, str) else column_key
        coordinate = self.get_cell_coordinate(row_key, column_key)  # raises if there is none
        row = self._data[row_key]
        if not _same_cell(row[column_key], value):
            row[column_key] = value
            self._update_count += 1
            self.refresh_coordinate(coordinate)

    _sized: tuple[Size, ...] | None = None  # what the scrollbar was last set for

    def _size_updated(self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True) -> bool:
        """Textual's ScrollView sets its scrollbar again — a repaint of the whole bar, ~700
        bytes at 80×24 — on every layout of the screen (it compares its own virtual size with
        the compositor's, which differ for a DataTable): here only when one of them changed."""
        seen = (size, virtual_size, self.virtual_size, container_size)
        if seen == self._sized:
            return False
        self._sized = seen
        return super()._size_updated(size, virtual_size, container_size, layout)

    def _set_height(self) -> None:
        """The virtual size for the rows held, set without repainting the table (Textual's own
        setter repaints every line): the layout that follows moves the scrollbar only."""
        width = sum(column.get_render_width(self) for column in self.ordered_columns) + self._row_label_column_width
        height = (self.header_height if self.show_header else 0) + self.row_count
        self.set_reactive(DataTable.virtual_size, Size(width, height))
        self._refresh_scrollbars()  # a scrollbar that comes or goes does so in this layout, not the next
        self.refresh(repaint=False, layout=True)

    def _changed_regions(self, before: list[RowKey], after: list[dict[ColumnKey, CellType]], columns: list[ColumnKey]) -> list[Region]:
        """The regions (in the table's virtual space) of the cells of ``after`` that differ
        from those at their place in the table, and of the lines gained or lost at the end;
        only the lines in view (the rest is painted when scrolled to)."""
        header = self.header_height if self.show_header else 0
        top = int(self.scroll_y)  # the first row in view (under the header)
        bottom = top + self.size.height  # past the last
        edges = [self._row_label_column_width]
        for column in self.ordered_columns:
            edges.append(edges[-1] + column.get_render_width(self))
        regions = []
        for index in range(top, min(len(before), len(after), bottom)):
            held = self._data[before[index]]
            changed = [not _same_cell(held.get(key), after[index][key]) for key in columns]
            start = None
            for column, differs in enumerate([*changed, False]):
                if differs and start is None:
                    start = column
                elif not differs and start is not None:  # one region per run of changed cells
                    regions.append(Region(edges[start], header + index, edges[column] - edges[start], 1))
                    start = None
        low, high = sorted((len(before), len(after)))
        low, high = max(low, top), min(high, bottom)
        if high > low:
            width = max(self.virtual_size.width, self.size.width, edges[-1])
            regions.append(Region(0, header + low, width, high - low))
        return regions


def _same_cell(a: object, b: object) -> bool:
    """Whether two cells look the same (a ``Text``'s ``==`` ignores its style)."""
    if isinstance(a, Text) and isinstance(b, Text):
        return (a.plain, a.style, a.spans, a.justify, a.overflow, a.no_wrap) == (b.plain, b.style, b.spans, b.justify, b.overflow, b.no_wrap)
    return type(a) is type(b) and a == b


class Tick(Checkbox):
    """A checkbox whose mark says ticked or not by its shape (✓ or blank), not only its
    colour: the two look alike in some themes and the same under ``NO_COLOR``."""

    @property
    def BUTTON_INNER(self) -> str:  # type: ignore[override]  # read by ToggleButton when it renders
        return "✓" if self.value else " "


class StepTrail(Widget):
    """The wizard's two-line header: what is being done, and which step this is. When the
    steps do not fit the width, the others are shown by their numbers only."""

    DEFAULT_CSS = "StepTrail { height: 2; }"

    def __init__(self, title: Text, steps: Sequence[str], current: int, *, id: str | None = "trail") -> None:
        super().__init__(id=id)
        self.title_text, self.steps, self.current = title, tuple(steps), current

    def retitle(self, title: Text) -> None:
        self.title_text = title
        self.refresh()

    def _trail(self, names: Sequence[str]) -> Text:
        trail = Text(no_wrap=True, overflow="ellipsis")
        for index, name in enumerate(names):
            if index:
                trail.append(" › ", style="dim")
            style = "reverse bold" if index == self.current else ("" if index < self.current else "dim")
            trail.append(f" {index + 1} {name} ".replace("  ", " "), style=style)
        return trail

    def render(self) -> Text:
        trail = self._trail(self.steps)
        if trail.cell_len > self.content_size.width:
            trail = self._trail([name if index == self.current else "" for index, name in enumerate(self.steps)])
        title = self.title_text.copy()
        title.no_wrap, title.overflow = True, "ellipsis"
        return Text("\n").join([title, trail])


class ProblemList(Static):
    """What blocks this step, every reason at once (hidden when there is none)."""

    def show(self, problems: Iterable[str], note: str | None = None) -> None:
        self.remove_class("-checking")
        lines = [Text.assemble(("✗ ", "bold"), plain(message)) for message in problems]
        self.set_class(bool(lines), "-blocking")
        if note:
            lines.append(Text(plain(note), style="italic"))
        self.set_class(bool(lines), "-shown")
        self.update(Text("\n").join(lines) if lines else Text(""))


# -- a new user's password ------------------------------------------------------------------

class PasswordFields(Vertical):
    """A new user's password, masked, typed twice, checked as it is typed: ``check``
    (the core's check for this user) against the domain's policy, read once with
    ``read_policy``. The password is only ever in the two fields and :attr:`value`."""

    DEFAULT_CSS = """
    PasswordFields { height: auto; }
    PasswordFields .pfield { height: 1; }
    PasswordFields .pfield Label { width: 13; text-style: bold; }
    PasswordFields .pfield Input { width: 1fr; }
    PasswordFields #policy, PasswordFields #password-state { height: auto; margin-top: 1; }
    """

    class Changed(Message):
        """The first field changed (``value``: what it holds now)."""

        def __init__(self, value: str) -> None:
            super().__init__()
            self.value = value

    policy: PasswordPolicy | None = None

    def __init__(
        self,
        read_policy: Callable[[], Awaitable[PasswordPolicy]],
        check: Callable[[str, PasswordPolicy], list[str]],
        *,
        value: str = "",
        hint: str = "Type a password, then tab, then the same again.",
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self._read_policy = read_policy
        self._check = check
        self._value = value
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Horizontal(classes="pfield"):
            yield Label("Password")
            yield Input(self._value, password=True, id="password", compact=True)
        with Horizontal(classes="pfield"):
            yield Label("Again")
            yield Input(self._value, password=True, id="password-again", compact=True)
        yield Static(Text("Reading the domain's password policy…", style="italic"), id="policy")
        yield Static(id="password-state")

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = self.app.animation_level != "none"
        self.read_policy()

    @work(exclusive=True, group="policy", exit_on_error=False)
    async def read_policy(self) -> None:
        policy_line = self.query_one("#policy", Static)
        try:
            self.policy = await self._read_policy()
        except Exception as error:  # the core checks it again before anything is written
            policy_line.update(Text(f"The policy could not be read ({type(error).__name__}).", style="italic"))
            return
        policy_line.update(Text.assemble(("Domain policy: ", "bold"), plain(self.policy.describe())))
        self.show_state()

    @property
    def value(self) -> str:
        return self.query_one("#password", Input).value

    @property
    def same_twice(self) -> bool:
        return self.value == self.query_one("#password-again", Input).value

    def set_value(self, password: str) -> None:
        """Put ``password`` in both fields (a generated one)."""
        for name in ("#password", "#password-again"):
            field = self.query_one(name, Input)
            with field.prevent(Input.Changed):
                field.value = password
        self.show_state()

    def problems(self) -> list[str]:
        """Why the password cannot be used (empty: it can); the policy unread counts as none."""
        first = self.value
        found = self._check(first, self.policy) if self.policy else []
        if first and not self.same_twice:
            again = self.query_one("#password-again", Input).value
            found.append("The two passwords differ." if again else "Type the password again.")
        return found

    def show_state(self) -> None:
        if not self.value:
            state = Text(self.hint, style="dim")
        elif found := self.problems():
            state = Text("\n").join([Text.assemble(("✗ ", "bold"), plain(x)) for x in found])
        else:
            state = Text("✓ The password meets the domain's policy.", style="green")
        self.query_one("#password-state", Static).update(state)

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        self.show_state()
        self.post_message(self.Changed(self.value))


class ConnectionBanner(Static):
    """The line that says the domain controller is out of reach (the app shows it on
    the screen in front while the connection is lost)."""

    def __init__(self, host: str) -> None:
        where = plain(host) or "the domain controller"
        super().__init__(Text(f"The connection to {where} is lost; retrying…"), id="connection-banner")
