"""The keys an SSH admin brings from less, vim, k9s and htop, driven at 80×24 over a fresh
demo directory: ``j``/``k``, ``g``/``G``, Home/End and PgUp/PgDn in every table (jobs
and audit on ``J``/``A``, so nothing collides), ``ctrl+c`` quitting when no job runs
(tests/test_console_cancel.py has it mid-job), one ``esc`` clearing a search, mark all and
clear marks on the users table, and the command palette's main commands before anything
is typed."""

from __future__ import annotations

from textual.command import CommandList, CommandPalette
from textual.widgets import DataTable, Input

from core.audit import Audit
from screens.audit import AuditScreen
from screens.customers import CustomersScreen
from screens.bulk_steps import BulkDestinationStep
from screens.jobs import JobsScreen
from screens.move_destination import DestinationStep
from screens.users import UsersScreen
from console_keys import SIZE, Keys, QuickApp, demo, open_user, settle, shown, snapshot_of, state  # noqa: F401
from test_console_audit import record
from test_console_jobs import fill_journal


def cursor(app, selector: str) -> int:
    return app.screen.query_one(selector, DataTable).cursor_row


async def moves_like_less(keys: Keys, selector: str) -> None:
    """The same keys move the cursor of the table ``selector`` on the screen in front."""
    app = keys.pilot.app
    table = app.screen.query_one(selector, DataTable)
    assert table.has_focus and table.row_count > 3, selector
    last = table.row_count - 1
    await keys("g")
    assert cursor(app, selector) == 0
    await keys("j", "j")
    assert cursor(app, selector) == 2
    await keys("k")
    assert cursor(app, selector) == 1
    await keys("G")
    assert cursor(app, selector) == last
    await keys("home")
    assert cursor(app, selector) == 0
    await keys("end")
    assert cursor(app, selector) == last
    await keys("g", "pagedown")
    page = cursor(app, selector)
    assert 0 < page < last or (last < 20 and page == last), page  # a page down (the table fits 80×24 or not)
    await keys("pageup")
    assert cursor(app, selector) == 0
    await keys("k")  # at the top: stays there
    assert cursor(app, selector) == 0


async def test_j_k_g_G_home_end_and_paging_move_in_every_table(demo, state):
    fill_journal(state)
    with Audit(state / "audit.sqlite3") as audit:
        for n in range(30):
            record(audit, n)
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        assert isinstance(app.screen, CustomersScreen)
        await moves_like_less(keys, "#customers")  # 40 customers: more than a page
        assert cursor(app, "#customers") == 0 and app.screen.query_one("#customers", DataTable).row_count == 40

        await open_user(keys, "Fabrikam", "")  # (its enter leaves the cursor in the table)
        assert isinstance(app.screen, UsersScreen)
        await moves_like_less(keys, "#users")
        await keys("J")  # the jobs: J, not j (j moved the cursor above)
        assert isinstance(app.screen, JobsScreen)
        await moves_like_less(keys, "#jobs")
        await keys("A")
        assert isinstance(app.screen, AuditScreen)
        await moves_like_less(keys, "#audit")
        await keys("escape", "escape")
        assert isinstance(app.screen, UsersScreen)

        # Typing: j, k, g, J and A are letters in a search box, never a move or a screen
        await keys("slash")
        await keys.type("jkgJA")
        assert app.screen.query_one("#search", Input).value == "jkgJA" and isinstance(app.screen, UsersScreen)


async def test_one_esc_clears_the_search_and_the_next_does_what_esc_did(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        search = app.screen.query_one("#search", Input)
        await keys("slash")
        await keys.type("fabri")
        assert app.screen.query_one("#customers", DataTable).row_count == 1
        await keys("escape")  # one esc: no filter, the whole list, the cursor in it
        assert search.value == "" and "40 customers" in shown(app)
        assert app.screen.query_one("#customers", DataTable).has_focus
        await keys("escape")  # the first screen: nothing to go back to
        assert isinstance(app.screen, CustomersScreen) and app.is_running

        await open_user(keys, "Fabrikam", "Ana")  # the search typed, enter: the cursor in the table
        users = app.screen
        assert users.query_one("#users", DataTable).row_count == 1
        await keys("escape")  # clears it
        assert app.screen is users and users.query_one("#search", Input).value == ""
        assert users.query_one("#users", DataTable).row_count == 18
        await keys("escape")  # then back, as before
        assert isinstance(app.screen, CustomersScreen)

        await open_user(keys, "Fabrikam", "")
        await keys("slash")
        await keys.type("zz")
        await keys("escape")  # in the box with text: cleared, out of the box
        assert app.screen.query_one("#search", Input).value == "" and app.screen.query_one("#users", DataTable).has_focus
        await keys("slash", "escape")  # in the box, empty: out of it (what esc did)
        assert isinstance(app.screen, UsersScreen) and app.screen.query_one("#users", DataTable).has_focus


async def test_mark_all_shown_then_clear_every_mark(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, "Fabrikam", "")
        screen = app.screen
        table = screen.query_one("#users", DataTable)
        await keys("ctrl+a")  # every user shown
        assert len(screen.marked) == 18 == table.row_count and "18 marked" in shown(app)
        assert all(table.get_cell(dn, "mark").plain == "●" for dn in screen.users)
        await keys("U")
        assert not screen.marked and not screen.marked_users and "marked" not in shown(app)
        assert all(table.get_cell(dn, "mark").plain == "" for dn in screen.users)

        await keys("slash")
        await keys.type("hall")  # a search: mark all marks what it shows ...
        await keys("enter", "ctrl+a")
        shown_now = set(screen.users)
        assert screen.marked == shown_now and 0 < len(shown_now) < 18
        await keys("escape")  # ... and the marks stay when the search is cleared
        assert screen.marked == shown_now and f"{len(shown_now)} marked" in shown(app)
        await keys("j", "space")  # one more by hand, then all cleared, hidden or not
        assert len(screen.marked) == len(shown_now) + 1
        await keys("slash")
        await keys.type("nobody at all")
        await keys("escape", "U")  # the search cleared, then every mark
        assert not screen.marked and "marked" not in shown(app)
        commands = {c.title: c for c in app.get_system_commands(screen)}
        assert "Clear the marks" not in commands  # the palette has both too
        commands["Mark every user shown"].callback()
        await settle(pilot)
        assert len(screen.marked) == 18
        {c.title: c for c in app.get_system_commands(screen)}["Clear the marks"].callback()
        await settle(pilot)
        assert not screen.marked
        await keys("m")  # no marks: m moves the highlighted user, not a bulk move
        assert isinstance(app.screen, DestinationStep) and not isinstance(app.screen, BulkDestinationStep)


async def test_help_lists_the_table_and_mark_keys(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, "Fabrikam", "")
        await keys("question_mark")
        text = shown(app)
        await keys("end")  # the help scrolls
        text += shown(app)
        for line in ("^a  Mark all shown", "U  Clear marks", "J  Jobs", "A  Audit", "j  Down", "k  Up",
                     "g  First row", "G  Last row", "^c  Quit (copy if selected)"):
            assert line in text, line
        assert "Copy selected text" not in text.replace("super+c  Copy selected text", "")


def palette_hits(app) -> list[str]:
    return [option.prompt.plain.split("\n")[0] for option in app.screen.query_one(CommandList).options]


async def test_the_palette_lists_the_main_commands_before_anything_is_typed(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await keys("colon")
        assert CommandPalette.is_open(app)
        main = ["Move a user…", "Copy a user…", "Go to customer…", "Jobs", "Audit log", "Keys"]
        assert palette_hits(app)[:6] == main and palette_hits(app).count("Keys") == 1
        text = shown(app)
        for title in main:  # on the screen at 80×24, not below the fold
            assert title in text, title
        await keys("enter")  # the first: Move a user… (nothing highlighted: find the user first)
        assert "Move a user" in shown(app) and "The user's customer" in shown(app)

    readonly = QuickApp(demo, demo.config, readonly=True)
    async with readonly.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await keys("colon")
        assert palette_hits(readonly)[:4] == ["Go to customer…", "Jobs", "Audit log", "Keys"]
        assert not {"Move a user…", "Copy a user…"} & set(palette_hits(readonly))
        await keys("down", "enter")  # Jobs
        assert isinstance(readonly.screen, JobsScreen)


# --- what 80×24 and 60×20 show: nothing cut that matters, nothing stray ------------------------

SMALL = (60, 20)
TO_FABRIKAM = ("slash", *"fabrikam", "enter", "enter")  # the customers' search, then its users


async def test_the_read_only_marker_and_the_footers_fit_80x24_and_60x20(demo):
    for size in (SIZE, SMALL):
        app = QuickApp(demo, demo.config, readonly=True)
        async with app.run_test(size=size) as pilot:
            keys = Keys(pilot)
            await settle(pilot)
            for screen in ("customers", "users"):
                lines = shown(app).splitlines()
                assert "Tenantry (read-only) — " in lines[0], (size, screen, lines[0])
                assert lines[-1].rstrip().endswith("^p palette"), (size, screen, lines[-1])  # nothing after it
                if screen == "customers":
                    await keys(*TO_FABRIKAM)
                    assert isinstance(app.screen, UsersScreen)
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SMALL) as pilot:  # not read-only: the users screen's eight keys
        keys = Keys(pilot)
        await settle(pilot)
        await keys(*TO_FABRIKAM)
        footer = shown(app).splitlines()[-1]
        assert footer.endswith("▏^p palette") and "paletteH" not in footer, footer


def test_customers_snapshot_80x24_read_only(snap_compare):
    assert snapshot_of(snap_compare, readonly=True)


def test_users_snapshot_80x24(snap_compare):
    assert snapshot_of(snap_compare, *TO_FABRIKAM)


def test_customers_snapshot_60x20(snap_compare):
    assert snapshot_of(snap_compare, size=SMALL)


def test_users_snapshot_60x20(snap_compare):
    assert snapshot_of(snap_compare, *TO_FABRIKAM, size=SMALL)
