"""Console tests: the customers screen driven with Pilot at 80×24, over the demo directory.

No sleeping: the tests wait for the app's workers and for the state they check
(``console_keys.until``), and gate the directory with events where the order of things
matters.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_asyncio
from rich.text import Text
from textual.widgets import Input, Static

from console_keys import settle, until
from core.config import Config, ConsoleConfig
from core.demo.directory import open_demo
from core.errors import DirectoryUnavailable, TenantryError
from core.model import Customer, Operator, Rights
from core.text import plain
from screens.customers import CustomersScreen, CustomerTable
from screens.help import HelpScreen
from screens.users import UsersScreen
from tui.app import TenantryApp

SIZE = (80, 24)
HOSTILE = ("[@click=app.quit]x[/]", "[/foo] Holdings", "\x1b[31mRed Alert\x1b[0m Ltd", "[bold]Markup[/bold] Inc")


class Spy:
    """Wraps a directory, recording each customer search; ``gates`` hold searches back."""

    def __init__(self, directory: Any) -> None:
        self.directory = directory
        self.searches: list[str | None] = []
        self.cancelled: list[str | None] = []
        self.gates: dict[str | None, asyncio.Event] = {}
        self.closed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.directory, name)

    async def customers(self, search=None, *, limit=None, with_services=True):
        self.searches.append(search)
        try:
            if search in self.gates:
                await self.gates[search].wait()
            return await self.directory.customers(search=search, limit=limit, with_services=with_services)
        except asyncio.CancelledError:
            self.cancelled.append(search)
            raise

    async def close(self) -> None:
        self.closed = True


class QuickApp(TenantryApp):
    """The app with no search debounce and an adjustable row limit (tests only)."""

    limit = 200

    def get_default_screen(self) -> CustomersScreen:
        return CustomersScreen(self.wait_for_directory, limit=self.limit, debounce=0)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def demo():
    directory = await open_demo()
    yield directory
    await directory.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def all_customers(demo) -> list[Customer]:
    return await demo.customers()


def table(app) -> CustomerTable:
    return app.screen.query_one(CustomerTable)


def count(app) -> str:
    return str(app.screen.query_one("#count", Static).render())


def names(app) -> list[str]:
    t = table(app)
    return [t.get_cell_at((row, 0)).plain for row in range(t.row_count)]


def screen_lines(app) -> list[str]:
    """The table as the terminal shows it (plain text of each rendered line)."""
    t = table(app)
    return [t.render_line(y).text for y in range(t.size.height)]


# --- the table -----------------------------------------------------------------------

async def test_table_fills_with_every_customer(demo, all_customers):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: count(app) == f"{len(all_customers)} customers", "listed every customer")
        assert table(app).row_count == len(all_customers) > 20
        assert names(app) == [plain(c.name) for c in all_customers]
        assert count(app) == f"{len(all_customers)} customers"
        first = all_customers[0]
        cells = table(app).get_row(first.dn)
        assert all(isinstance(cell, Text) for cell in cells)
        assert table(app).has_focus
        assert app.operator is not None and app.operator.rights.sp_admin  # read from the directory
        assert app.format_title(app.title, app.sub_title).plain == f"Tenantry — {app.operator.name} on demo.example.net"


async def test_more_than_the_limit_says_first_n_shown(demo):
    app = QuickApp(demo, demo.config)
    app.limit = 10
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: count(app) == "first 10 shown", "said the first 10 are shown")
        assert table(app).row_count == 10


async def test_typing_searches_on_the_server(demo, all_customers):
    spy = Spy(demo)
    app = QuickApp(spy, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"corp")
        expected = [c for c in all_customers if "corp" in c.name.casefold() or any("corp" in d for d in c.domains)]
        assert 0 < len(expected) < len(all_customers)
        await until(pilot, lambda: names(app) == [plain(c.name) for c in expected], "showed the customers matching corp")
        assert app.screen.query_one("#search", Input).value == "corp"
        assert spy.searches[-1] == "corp"  # the filter went to the directory, not to the table
        assert count(app) == f"{len(expected)} customer{'s' if len(expected) != 1 else ''}"

        await pilot.press("escape", "escape")  # leave the box, then clear the search
        await until(pilot, lambda: table(app).row_count == len(all_customers), "listed every customer again")
        assert spy.searches[-1] is None


async def test_no_match_says_so_literally(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.screen.query_one("#search", Input).value = "[b]zz"
        await until(pilot, lambda: count(app) == "no customer matches “[b]zz”", "said no customer matches")
        assert table(app).row_count == 0


async def test_a_new_keystroke_cancels_the_search_in_flight(demo):
    spy = Spy(demo)
    spy.gates["a"] = asyncio.Event()  # the search for "a" never answers by itself
    app = QuickApp(spy, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", "a")
        await until(pilot, lambda: spy.searches[-1] == "a", "searched for a")
        await pilot.press("c")
        # the "a" search never answers: if it were not cancelled, this would never settle
        await settle(pilot)
        assert spy.cancelled == ["a"]
        assert spy.searches[-1] == "ac"
        assert app.screen.query_text == "ac"
        assert names(app) == [plain(c.name) for c in await demo.customers(search="ac")]


async def test_keys_typed_in_the_search_box_do_not_trigger_bindings(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("slash", "q", "question_mark", "slash")
        await until(pilot, lambda: app.screen.query_one("#search", Input).value == "q?/", "took q?/ into the search box")
        await settle(pilot)
        assert app.is_running


# --- untrusted names -------------------------------------------------------------------

@pytest.mark.parametrize("name", HOSTILE)
async def test_hostile_customer_name_renders_literally(demo, all_customers, name):
    customer = next(c for c in all_customers if c.name == name)
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await until(pilot, lambda: customer.dn in app.screen.rows, "listed the customer")
        await settle(pilot)
        t = table(app)
        row = t.get_row_index(customer.dn)
        cell = t.get_cell_at((row, 0))
        assert isinstance(cell, Text) and not cell.spans and not cell.style
        assert cell.plain == plain(name) and "\x1b" not in cell.plain
        assert row < t.size.height - 1  # visible without scrolling (the demo sorts them first)
        assert any(plain(name) in line for line in screen_lines(app))

        await pilot.click(CustomerTable, offset=(3, row + 1))  # on the name itself
        await pilot.press("enter")
        await until(pilot, lambda: any(isinstance(s, UsersScreen) for s in app.screen_stack), "opened the customer")
        await settle(pilot)
        assert app.is_running
        assert t.cursor_row == row
        # opened (by the click when the row was already highlighted, else by enter), named literally
        (users,) = [s for s in app.screen_stack if isinstance(s, UsersScreen)]
        assert users.customer == customer
        assert str(users.query_one("#context", Static).render()).startswith(plain(name))
        assert not app._notifications


async def test_enter_posts_customer_selected(demo, all_customers):
    selected: list[Customer] = []

    class Recorder(QuickApp):
        def on_customers_screen_customer_selected(self, message: CustomersScreen.CustomerSelected) -> None:
            selected.append(message.customer)

    app = Recorder(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await until(pilot, lambda: len(app.screen.rows) == len(all_customers), "listed every customer")
        await pilot.press("down", "down", "enter")
        await until(pilot, lambda: selected, "posted CustomerSelected")
        assert selected == [all_customers[2]]


async def test_header_shows_operator_and_server_as_plain_text(demo):
    operator = Operator("[@click=app.quit]Op[/] \x1b[2J", "CN=op", "CN=op", Rights(sp_admin=True))
    app = QuickApp(demo, demo.config, operator, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        title = app.format_title(app.title, app.sub_title)
        assert title.plain == f"Tenantry (read-only) — {plain(operator.name)} on demo.example.net"
        assert not [span for span in title.spans if "click" in str(span.style)]


# --- keys, help and settings -----------------------------------------------------------

async def test_q_quits(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, "quit")


async def test_footer_and_help_list_the_keys(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        shown = {(b.binding.key, b.binding.description) for b in app.screen.active_bindings.values() if b.binding.show}
        assert {("q", "Quit"), ("question_mark", "Help"), ("slash", "Search"), ("enter", "Open"), ("J", "Jobs"), ("A", "Audit")} <= shown
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "showed the help")
        help_text = "\n".join(strip.text for strip in app.screen._compositor.render_strips())
        for line in ("q  Quit", "?  Help", "/  Search", "esc  Back", "J  Jobs", "A  Audit"):
            assert line in help_text


async def test_command_palette_offers_the_actions(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        assert {"Search customers", "Quit"} <= set(titles)
        assert "Keys" not in titles  # Textual's key panel: ours (tui/palette.py) lists them all
        (search,) = [c for c in app.get_system_commands(app.screen) if c.title == "Search customers"]
        search.callback()
        await until(pilot, lambda: app.screen.query_one("#search", Input).has_focus, "focused the search box")


async def test_animations_off_unless_configured_and_no_color_honoured(demo, monkeypatch):
    assert QuickApp(demo, demo.config).animation_level == "none"
    animated = Config(demo.config.directory, console=ConsoleConfig(animations=True))
    assert QuickApp(demo, animated).animation_level != "none"
    slow = QuickApp(demo, animated, low_bandwidth=True)
    assert slow.animation_level == "none" and slow.theme == "ansi-dark"
    assert not QuickApp(demo, demo.config).no_color
    monkeypatch.setenv("NO_COLOR", "1")
    assert QuickApp(demo, demo.config).no_color  # Textual's own handling: a monochrome filter


# --- opening the directory, and errors -----------------------------------------------

async def test_first_screen_paints_before_the_directory_answers(demo, all_customers):
    release = asyncio.Event()
    spy = Spy(demo)

    async def opener():
        await release.wait()
        return spy

    app = QuickApp(opener, None)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.screen.query("#count"), "painted the customers screen")
        assert count(app) == "connecting…"  # whatever the time: "searching…" only once connected
        assert table(app).row_count == 0
        assert app.screen.query_one("#search", Input).display
        release.set()
        await until(pilot, lambda: table(app).row_count == len(all_customers), "listed every customer")
        assert app.config is demo.config  # taken from the directory when none was given
    assert spy.closed  # the app opened it, so the app closed it


async def test_a_directory_that_cannot_open_is_one_sentence(demo):
    sentence = "The domain controller at ldaps://dc1.example.net cannot be reached."

    async def opener():
        raise DirectoryUnavailable(sentence)

    app = QuickApp(opener, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: count(app) == "not loaded", "said nothing is loaded")
        assert app.is_running
        banner = app.screen.query_one("#banner", Static)
        assert banner.display and str(banner.render()) == sentence
        assert count(app) == "not loaded"


async def test_a_failing_search_keeps_the_rows_and_says_why(demo, all_customers):
    class Failing(Spy):
        async def customers(self, search=None, **kwargs):
            if search == "boom":
                raise TenantryError("The domain controller did not answer in time.")
            if search == "bug":
                raise KeyError("secret")
            return await super().customers(search, **kwargs)

    app = QuickApp(Failing(demo), demo.config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        banner = app.screen.query_one("#banner", Static)
        app.screen.query_one("#search", Input).value = "boom"
        await until(pilot, lambda: count(app) == "not updated", "said the rows are not updated")
        assert str(banner.render()) == "The domain controller did not answer in time."
        assert banner.display and count(app) == "not updated"
        assert table(app).row_count == len(all_customers)
        app.screen.query_one("#search", Input).value = "bug"
        await until(pilot, lambda: str(banner.render()) == "The customer search failed unexpectedly (KeyError).", "named the KeyError")
        app.screen.query_one("#search", Input).value = ""
        await until(pilot, lambda: not banner.display, "took the banner away")
        assert app.is_running


async def test_show_error_is_one_sentence_never_a_traceback(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        app.show_error(TenantryError("The customer [b]x[/b] no longer exists."))
        app.show_error(ValueError("line 1\nTraceback (most recent call last):"))
        await until(pilot, lambda: len(app._notifications) == 2, "showed both errors")
        shown = [(n.message, n.severity, n.markup) for n in app._notifications]
        assert shown == [
            ("The customer [b]x[/b] no longer exists.", "error", False),
            ("Something went wrong (ValueError); the details are in the log.", "error", False),
        ]


# --- the look --------------------------------------------------------------------------

def test_customers_screen_snapshot(snap_compare):
    async def run_before(pilot) -> None:
        await until(pilot, lambda: pilot.app.screen.query("#count") and count(pilot.app) == "40 customers", "listed the demo's 40 customers")
        await settle(pilot)

    app = TenantryApp(open_demo, None)
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


# --- insecure settings (issue 13, hole 5) -----------------------------------------------

@pytest.mark.parametrize(("settings", "shown"), [
    ({"tls_verify": False}, "Tenantry ⚠ TLS NOT VERIFIED"),
    ({"urls": ("ldap://dc1.example.net",), "start_tls": False, "allow_cleartext_bind": True}, "Tenantry ⚠ CLEAR-TEXT BIND"),
])
async def test_an_insecure_setting_stays_in_the_header_of_every_screen(demo, all_customers, settings, shown):
    from dataclasses import replace

    from textual.widgets._header import HeaderTitle

    config = replace(demo.config, directory=replace(demo.config.directory, **settings))
    app = QuickApp(demo, config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)  # painted, directory open, operator read: the title was refreshed since
        seen = [str(app.screen.query_one(HeaderTitle).render())]
        app.open_customer(all_customers[0])
        await settle(pilot)
        seen.append(str(app.screen.query_one(HeaderTitle).render()))
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        seen.append(str(app.format_title(app.title, app.sub_title)))
    assert all(text.startswith(shown + " — ") for text in seen), seen
