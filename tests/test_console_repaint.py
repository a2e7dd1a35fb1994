"""What the console sends to the terminal when a key changes the rows (issue 12): only the
cells that differ, and still the picture a full repaint would give.

Every frame Textual hands to its driver is rendered here to the bytes an 80×24
``xterm-256color`` terminal gets (what ``bench/terminal.py`` counts in a real
pseudo-terminal, there by waiting for quiet, here frame by frame without any timing) and
played onto a picture of the screen. After each search typed into the customers and users
screens over the demo's hostile names, the table holds the rows a fresh fill would (keys,
order, cells, the cursor), and the terminal's picture equals a full repaint of the screen
rendered from scratch: nothing that changed was left unsent.
"""

from __future__ import annotations

import io
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.cells import get_character_cell_size
from rich.console import Console
from rich.control import Control
from rich.text import Text
from textual._compositor import CompositorUpdate

from console_keys import SIZE, Keys, QuickApp, demo, settle, state, until  # noqa: F401
from core.demo.directory import open_demo
from core.demo.seed import BIG_CUSTOMER, HOSTILE_CUSTOMERS, HOSTILE_PEOPLE, NORMAL_CUSTOMERS
from screens.customers import CustomersScreen, CustomerTable
from screens.users import UsersScreen, UserTable
from widgets import RowTable

CSI = re.compile(r"\x1b\[([0-9;?]*)([@-~])")


class Terminal:
    """An 80×24 terminal fed with every frame the app displays: counts the bytes and keeps
    the picture (each cell's character and SGR attributes)."""

    def __init__(self, app, size: tuple[int, int] = SIZE) -> None:
        self.width, self.height = size
        self.console = Console(color_system="256", force_terminal=True, width=self.width, height=self.height,
                               file=io.StringIO(), legacy_windows=False)
        self.picture = self.blank()
        self.written = 0
        self.app = app
        app._display = self._display  # what App._display would write to a real terminal

    def blank(self) -> list[list[tuple[str, str]]]:
        return [[(" ", "")] * self.width for _ in range(self.height)]

    def _display(self, screen, update) -> None:
        if isinstance(update, CompositorUpdate) and not self.app._batch_count:  # App._display drops a frame made in a batch
            data = update.render_segments(self.console)
            self.written += len(data.encode("utf-8"))
            self.play(data, self.picture)

    def play(self, data: str, picture: list[list[tuple[str, str]]]) -> None:
        x = y = 0
        sgr = ""
        position = 0
        for match in [*CSI.finditer(data), None]:
            text = data[position: match.start() if match else len(data)]
            for char in text:
                if char == "\n":
                    y += 1
                    continue
                width = get_character_cell_size(char)
                if width and 0 <= y < self.height and 0 <= x < self.width:
                    picture[y][x] = (char, sgr)
                    if width == 2 and x + 1 < self.width:
                        picture[y][x + 1] = ("", sgr)
                x += width
            if match is None:
                break
            position = match.end()
            params, final = match.groups()
            if final == "H":
                row, _, column = params.partition(";")
                y, x = int(row or 1) - 1, int(column or 1) - 1
            elif final == "m":
                sgr = "" if params in ("", "0") else f"{sgr};{params}" if sgr else params

    def full_repaint(self) -> list[list[tuple[str, str]]]:
        """The screen rendered from scratch (every cache of every widget dropped)."""
        screen = self.app.screen
        for widget in screen.walk_children(with_self=True):
            widget._styles_cache.clear()
            if isinstance(widget, RowTable):
                widget._clear_caches()
        picture = self.blank()
        frame = "".join(Control.move_to(0, y).segment.text + strip.render(self.console)
                        for y, strip in enumerate(screen._compositor.render_strips()))
        self.play(frame, picture)
        return picture

    def differences(self) -> list[str]:
        """The lines where the terminal shows something else than a full repaint would."""
        fresh = self.full_repaint()
        return [f"line {y}: terminal {''.join(c for c, _ in shown)!r} / repaint {''.join(c for c, _ in want)!r}"
                for y, (shown, want) in enumerate(zip(self.picture, fresh)) if shown != want]


def _look(cell) -> tuple:
    return (cell.plain, str(cell.style), tuple(cell.spans)) if isinstance(cell, Text) else (cell,)


def table_problems(screen, table: RowTable, text: str | None, keep: str | None) -> list[str]:
    """How the table differs from a fresh fill with the rows matching ``text``: their keys in
    order, their cells, the cursor on ``keep`` where it is shown, else on the first row."""
    found = screen.search_locally(text, screen.limit)
    assert found is not None, "the screen searched on the server: its index is not loaded"
    wanted = list(found.rows[: screen.limit])
    problems = []
    keys = shown_keys(table)
    if keys != [item.dn for item in wanted]:
        problems.append(f"rows {len(keys)} in another order or set than the {len(wanted)} matching {text!r}")
    for item in wanted[:60]:
        if item.dn in keys and [_look(c) for c in table.get_row(item.dn)] != [_look(c) for c in screen.cells(item)]:
            problems.append(f"the cells of {item.dn!r} differ from a fresh fill's")
    dns = [item.dn for item in wanted]
    cursor = dns.index(keep) if keep in dns else 0
    if wanted and table.cursor_row != cursor:
        problems.append(f"cursor on row {table.cursor_row}, a fresh fill has it on {cursor}")
    if table.virtual_size.height != table.header_height + len(wanted):
        problems.append(f"virtual height {table.virtual_size.height} for {len(wanted)} rows")
    return problems


# -- many searches in a row ---------------------------------------------------------------

NAMES = [*HOSTILE_CUSTOMERS, *NORMAL_CUSTOMERS, *(f"{given} {surname}" for given, surname, *_ in HOSTILE_PEOPLE),
         "müller", "smith", "@", ".example", "östra", "東京"]


@st.composite
def _step(draw) -> tuple[str, object]:
    """Typing (a piece of a name, maybe upper-cased; or nothing), or moving the cursor."""
    if draw(st.integers(0, 4)) == 0:
        return ("cursor", draw(st.integers(0, 300)))
    if draw(st.integers(0, 6)) == 0:
        return ("search", "")
    name = draw(st.sampled_from(NAMES))
    start = draw(st.integers(0, max(0, len(name) - 1)))
    text = name[start: draw(st.integers(start + 1, len(name)))]
    return ("search", text.upper() if draw(st.booleans()) else text)


def _runs(count: int) -> list[list[tuple[str, object]]]:
    runs: list[list[tuple[str, object]]] = []

    @settings(max_examples=count, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.lists(_step(), min_size=1, max_size=6))
    def collect(steps):
        runs.append(steps)

    collect()
    return runs


async def _searches_match_fresh_fills(pilot, terminal: Terminal, screen, table: RowTable) -> int:
    checked = 0
    for steps in _runs(25):
        for kind, value in steps:
            if kind == "cursor":
                if table.row_count:
                    table.move_cursor(row=value % table.row_count)
                await settle(pilot)
                continue
            keep = screen.cursor_key()
            screen.search(value)
            await settle(pilot)
            wanted = value.strip() or None
            assert not (problems := table_problems(screen, table, wanted, keep)), (value, problems)
            assert not (stale := terminal.differences()), (value, stale)
            checked += 1
    return checked


async def test_the_customers_table_after_many_searches_is_a_fresh_fill_on_the_terminal_too(state):
    app = QuickApp(open_demo, None)
    terminal = Terminal(app)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, CustomersScreen)
        await until(pilot, lambda: screen.search_locally(None, 1) is not None, "loaded the customer index")
        await settle(pilot)
        checked = await _searches_match_fresh_fills(pilot, terminal, screen, screen.query_one(CustomerTable))
        assert checked > 50


async def test_the_users_table_after_many_searches_is_a_fresh_fill_on_the_terminal_too(state):
    app = QuickApp(open_demo, None)
    terminal = Terminal(app)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await keys("slash")
        await keys.type("Globex")
        await keys("enter", "enter")
        screen = app.screen
        assert isinstance(screen, UsersScreen)
        await until(pilot, lambda: screen.index.complete, "loaded Globex's users")
        await settle(pilot)
        table = screen.query_one(UserTable)
        assert table.row_count == screen.limit  # more users than rows shown: the search picks among them
        await keys("space", "space")  # two marks: a mark cell is one of those that must follow
        checked = await _searches_match_fresh_fills(pilot, terminal, screen, table)
        assert checked > 50


# -- bytes -----------------------------------------------------------------------------

def shown_keys(table: RowTable) -> list[str]:
    return [table.coordinate_to_cell_key((row, 0)).row_key.value for row in range(table.row_count)]


async def _bytes_of(pilot, terminal: Terminal, *keys: str) -> int:
    before = terminal.written
    for key in keys:
        await pilot.press(key)
        await settle(pilot)
    return terminal.written - before


async def _full_repaint_bytes(pilot, terminal: Terminal, table: RowTable) -> int:
    before = terminal.written
    table.refresh()  # every line of the table, as clearing and refilling it sent
    await settle(pilot)
    return terminal.written - before


async def test_a_key_that_changes_some_rows_sends_only_their_cells(state):
    app = QuickApp(open_demo, None)
    terminal = Terminal(app)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.search_locally(None, 1) is not None, "loaded the customer index")
        await settle(pilot)
        table = screen.query_one(CustomerTable)
        full = await _full_repaint_bytes(pilot, terminal, table)
        await _bytes_of(pilot, terminal, "slash", "a")  # names starting with "a" first
        before = shown_keys(table)
        changed = await _bytes_of(pilot, terminal, "backspace")  # every customer again, in name order
        after = shown_keys(table)
        assert after != before and len(after) > table.size.height  # other rows; still more than fit
        assert table.scroll_y == 0 and table.show_vertical_scrollbar  # no scroll, the bar stays: cells only
        assert changed < full * 0.75, (changed, full)
        await _bytes_of(pilot, terminal, "a")
        same = await _bytes_of(pilot, terminal, "space")  # "a " searches what "a" did: the box only
        assert same <= 1024, same
        assert not terminal.differences()

        await _bytes_of(pilot, terminal, "escape", "escape")
        await _bytes_of(pilot, terminal, "slash", *BIG_CUSTOMER[:6], "enter", "enter")
        users = app.screen
        assert isinstance(users, UsersScreen)
        await until(pilot, lambda: users.index.complete, "loaded Globex's users")
        await settle(pilot)
        table = users.query_one(UserTable)
        full = await _full_repaint_bytes(pilot, terminal, table)
        marked = await _bytes_of(pilot, terminal, "space")  # the mark cell, the cursor's two rows, the count
        assert marked < full / 3, (marked, full)
        assert not terminal.differences()


async def test_rows_shown_silence_the_searching_notice_of_the_search_they_replaced(state):
    """A server search cancelled by a newer one (the index loaded meanwhile) ends its
    "searching…" notice only when its worker handles the cancellation; a timer that fires
    before that must not overwrite the count of the rows shown (a whole-suite run under
    load caught the customers screen saying "searching…" over 40 customers)."""
    from screens.slow_notice import SlowNotice

    app = QuickApp(open_demo, None)
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        await until(pilot, lambda: screen.search_locally(None, 1) is not None, "loaded the customer index")
        await settle(pilot)
        count = screen.query_one("#count")
        notice = screen._slow = SlowNotice(screen, 3600, lambda: screen._set_count(Text("searching…")))  # as _run_search
        screen.search("a")  # shown from the index, in this frame
        notice._fire()  # the earlier search's timer, come before its worker ended
        await settle(pilot)
        assert str(count.render()) == f"{len(screen.rows)} customers"
