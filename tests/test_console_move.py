"""Console tests of the users screen and the move wizard, driven with keys only at 80×24
over a fresh demo directory (moves change it), the journal and audit log in ``tmp_path``.

No sleeping: :func:`settle` waits for the screens' workers (never the wizard's own flow
worker, which lives as long as the wizard) and for the app to be idle.
"""

from __future__ import annotations


import pytest
from rich.text import Text
from textual.widgets import Input, Static

from core.demo.directory import open_demo
from core.demo.services import demo_services
from core.directory.layout import dn_key
from core.errors import TenantryError
from core.text import plain
from screens.move_destination import DestinationStep
from screens.move_result import ResultStep
from screens.move_review import ReviewStep
from screens.wizard.run import RunStep
from screens.move_services import ServicesStep
from screens.move_user import UserMappingStep
from screens.user_detail import UserDetailScreen
from screens.users import UsersScreen, UserTable
from widgets.progress import ProgressPane
from console_keys import SIZE, Keys, QuickApp, demo, open_user, problems, settle, shown, state  # noqa: F401
from test_demo_powershell import check_provisioned, everything

SOURCE, USER = "Fabrikam", "Ana Hall"  # exchange (Basic 2 GB) and OCS
DESTINATION = "Woodgrove Bank"  # exchange (Basic 2 GB, Premium 50 GB) and OCS


# --- the users screen --------------------------------------------------------------------

async def test_users_screen_lists_searches_marks_and_shows_details(demo):
    customer = await demo.customer(SOURCE)
    everyone = await demo.users(customer)
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await keys("slash")
        await keys.type(SOURCE)
        await keys("enter", "enter")
        screen = app.screen
        assert isinstance(screen, UsersScreen) and screen.customer.name == SOURCE
        table = screen.query_one(UserTable)
        assert table.row_count == len(everyone) > 10
        assert str(screen.query_one("#count", Static).render()) == f"{len(everyone)} users"
        assert all(isinstance(c, Text) for c in table.get_row(everyone[0].dn))

        await keys("slash")
        await keys.type("ana")
        assert screen.query_text == "ana"
        expected = await demo.users(customer, search="ana")
        assert [u.dn for u in screen.users.values()] == [u.dn for u in expected] and 0 < len(expected) < len(everyone)

        await keys("enter", "space")  # to the table, mark the first
        assert screen.marked == {expected[0].dn}
        assert table.get_cell(expected[0].dn, "mark").plain == "●"
        assert "1 marked" in str(screen.query_one("#count", Static).render())
        await keys("escape")  # clear the search: the mark stays
        assert table.row_count == len(everyone) and screen.marked == {expected[0].dn}

        table.move_cursor(row=table.get_row_index(expected[0].dn))
        await keys("enter")
        assert isinstance(app.screen, UserDetailScreen)
        text = shown(app)
        user = await demo.user(expected[0].dn)
        for fragment in (user.upn, user.sam, "Hosted Exchange (Services)", "Services", "Roles", "Attributes"):
            assert fragment in text, fragment
        await keys("escape")
        assert app.screen is screen
        await keys("escape")  # back to the customers
        assert not isinstance(app.screen, UsersScreen)


async def test_a_big_customer_shows_the_first_200_of_all_and_searches_them_locally(demo):
    big = await demo.customer("Globex Corporation")  # about 1,500 users
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, "globex", "")
        screen = app.screen
        assert screen.query_one(UserTable).row_count == 200
        everyone = await demo.users(big)
        assert str(screen.query_one("#count", Static).render()) == f"200 of {len(everyone):,} users"
        await keys("slash")
        await keys.type("oscar n")
        expected = await demo.users(big, search="oscar n")  # what the server finds, the index finds
        assert 0 < len(expected) < 200
        assert sorted(screen.users) == sorted(u.dn for u in expected)
        assert str(screen.query_one("#count", Static).render()) == f"{len(expected)} users"


async def test_footer_shows_the_keys_and_read_only_hides_move(demo):
    for readonly in (False, True):
        app = QuickApp(demo, demo.config, readonly=readonly)
        async with app.run_test(size=SIZE) as pilot:
            keys = Keys(pilot)
            await settle(pilot)
            await open_user(keys, SOURCE, USER)
            footer = {(b.binding.key, b.binding.description) for b in app.screen.active_bindings.values() if b.binding.show}
            assert {("slash", "Search"), ("escape", "Back"), ("enter", "Open"), ("space", "Mark")} <= footer
            assert (("m", "Move") in footer) is not readonly
            await keys("m")
            assert isinstance(app.screen, DestinationStep) is not readonly
            assert app.session is None or not readonly  # read-only: nothing opened for writing


# --- the move wizard: the happy path ---------------------------------------------------------

async def test_a_move_by_keys_in_few_keystrokes(demo):
    source = await demo.customer(SOURCE)
    user = next(u for u in await demo.users(source) if u.display_name == USER)
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, SOURCE, USER)
        before_move = keys.count
        await keys("m")
        assert isinstance(app.screen, DestinationStep)
        await keys.type("woodgrove b")
        typed = len("woodgrove b")
        after_name = keys.count
        await keys("enter")
        assert isinstance(app.screen, UserMappingStep)
        upn = app.screen.query_one("#upn-prefix", Input).value + "@" + app.screen.query_one("#upn-domain").value
        assert upn == user.upn.split("@")[0] + "@woodgrove-bank.example"
        await keys("enter")
        assert isinstance(app.screen, ServicesStep)
        await keys("enter")
        assert isinstance(app.screen, ReviewStep)
        assert "Nothing has been written yet" in shown(app)
        assert (await demo.user(user.dn)).upn == user.upn  # nothing written yet indeed
        await keys("enter")
        assert isinstance(app.screen, RunStep)
        pane = app.screen.query_one(ProgressPane)
        assert pane.status == "done" and set(pane.states) == {"done"}
        await keys("enter")
        assert isinstance(app.screen, ResultStep)
        assert upn in shown(app)
        note = app.screen.query_one("#replication", Static)
        assert note.checked is not None and note.checked.replication.holding == tuple(demo.config.directory.urls) and not note.checked.duplicates
        assert "Done, replicated to 1 of 1 domain controller." in shown(app)
        await keys("enter")  # move another user: back to the (reloaded) users of the source
        assert isinstance(app.screen, UsersScreen) and user.dn not in app.screen.users

        total, from_m, after = keys.count, keys.count - before_move, keys.count - after_name
        print(f"\nmove keystrokes: {total} in all from the start screen; {from_m} from 'm' "
              f"({typed} of them the destination's name); {after} after the name")
        assert after < 15

    # Hosted Exchange and OCS moved by their cmdlets, through pypsrp to the demo's PowerShell server
    moved = await demo.user(user.sam)
    check_provisioned(everything(demo, moved.dn), DESTINATION, moved.email, moved.sip)
    server = demo_services(demo).powershell
    assert [c.command for c in server.calls][-3:] == ["Set-Mailbox", "Set-CsUser", "Grant-CsConferencingPolicy"]
    assert not any(c.script for c in server.calls)

    destination = await demo.customer(DESTINATION)
    moved = await demo.user(upn)
    assert dn_key(moved.dn)[1:] == dn_key(demo.layout.users_dn(destination.dn))
    assert moved.email and moved.email.endswith("@woodgrove-bank.example")
    assert set(moved.services) == set(user.services)
    assert [u.dn for u in await demo.users(destination, search=upn)] == [moved.dn]
    assert not [u for u in await demo.users(source) if u.dn == user.dn]


async def test_open_the_new_user_after_a_move(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, SOURCE, "Jan Green")
        await keys("m")
        await keys.type("woodgrove b")
        await keys("enter", "enter", "enter", "enter", "enter", "o")
        assert isinstance(app.screen, UserDetailScreen)
        assert "jan.green2@woodgrove-bank.example" in shown(app) and "Woodgrove Bank" in shown(app)
        await keys("escape")
        assert isinstance(app.screen, UsersScreen) and app.screen.customer.name == DESTINATION
        await keys("escape", "escape")
        assert not isinstance(app.screen, UsersScreen)  # the source's users screen was left


async def test_esc_goes_back_a_step_keeping_what_was_entered(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, SOURCE, USER)
        await keys("m")
        await keys.type("woodgrove b")
        await keys("enter")
        await keys("ctrl+u")
        await keys.type("ahall")
        await keys("tab", "right")  # the next of the destination's domains
        domain = app.screen.query_one("#upn-domain").value
        assert domain != "woodgrove-bank.example"
        assert app.screen.query_one("#email", Input).value.endswith("@" + domain)  # the email follows
        assert f"ahall@{domain}" in shown(app)  # the live preview
        await keys("enter")
        assert isinstance(app.screen, ServicesStep)
        await keys("escape")
        assert isinstance(app.screen, UserMappingStep)
        assert app.screen.query_one("#upn-prefix", Input).value == "ahall"
        assert app.screen.query_one("#upn-domain").value == domain
        await keys("escape")
        assert isinstance(app.screen, DestinationStep)
        assert app.screen.query_one("#search", Input).value == "woodgrove b"
        await keys("enter")  # the same destination: the mapping is kept
        assert app.screen.query_one("#upn-prefix", Input).value == "ahall"
        await keys("escape", "escape", "escape")
        assert isinstance(app.screen, UsersScreen)


# --- refusals on the step they belong to ----------------------------------------------------

async def test_a_refused_move_shows_its_reasons_on_the_right_step(demo):
    source = await demo.customer(SOURCE)
    user = next(u for u in await demo.users(source) if u.display_name == USER)
    woodgrove = await demo.customer(DESTINATION)
    holder = next(u for u in await demo.users(woodgrove) if u.upn)
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, SOURCE, USER)
        await keys("m")

        # the same customer: refused on the destination step, which stays
        await keys.type(SOURCE)
        await keys("enter")
        assert isinstance(app.screen, DestinationStep)
        assert f"already belongs to {SOURCE}" in problems(app)

        # a destination without Hosted Exchange: fine here and on the user step,
        # refused on the services step, with the reason; enter does not go on
        await keys("ctrl+u")
        await keys.type("tailspin")
        await keys("enter")
        assert isinstance(app.screen, UserMappingStep)
        assert "has no Hosted Exchange" not in problems(app)
        assert "1 on the services step" in problems(app)
        await keys("enter")
        assert isinstance(app.screen, ServicesStep)
        assert "Tailspin Toys has no Hosted Exchange: provision it there first." in problems(app)
        assert "✗ missing there" in shown(app)
        await keys("enter")
        assert isinstance(app.screen, ServicesStep)

        # a colliding UPN: flagged live on the user mapping step, which stays
        await keys("escape", "escape", "ctrl+u")
        await keys.type("woodgrove b")
        await keys("enter")
        await keys("ctrl+u")
        await keys.type(holder.upn.split("@")[0])
        assert f"The UPN {holder.upn} is already used by" in problems(app)
        await keys("enter")
        assert isinstance(app.screen, UserMappingStep)

        # a plan the destination lacks: chosen on the services step with ←/→
        await keys("escape", "ctrl+u")
        await keys.type("northwind")
        await keys("enter", "enter")
        assert isinstance(app.screen, ServicesStep)
        assert "has no Hosted Exchange plan Basic 2 GB; choose one of: Premium 50 GB." in problems(app)
        await keys("enter")
        assert isinstance(app.screen, ServicesStep)
        await keys("right")
        assert "plan" not in problems(app).lower()
        await keys("enter")
        assert isinstance(app.screen, ReviewStep)
        assert any(s.target.startswith("CN=Hosted Exchange - Premium 50 GB,") for s in app.screen.plan.steps)
        await keys("end")  # the memberships come after the move, before the services' cmdlets
        for _ in range(len(app.screen.plan.steps)):
            if "Join Hosted Exchange - Premium 50 GB (Services) of Northwind" in shown(app):
                break
            await keys("pageup")
        assert "Join Hosted Exchange - Premium 50 GB (Services) of Northwind" in shown(app)
    assert (await demo.user(user.dn)).upn == user.upn  # nothing was written


# --- a failure rolls back, in the progress pane --------------------------------------------------

FAIL_AT = 3  # the fourth step (a membership), after the attributes and the move are done


class FailingApp(QuickApp):
    def move_executor(self, session):
        async def fail(index, step):
            if index == FAIL_AT:
                raise TenantryError("The domain controller refused the change (injected).")

        return session.executor(before_step=fail)


async def test_a_failed_move_shows_the_rollback_in_the_progress_pane(demo):
    source = await demo.customer(SOURCE)
    user = await demo.user(next(u for u in await demo.users(source) if u.display_name == USER).dn)
    app = FailingApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, SOURCE, USER)
        await keys("m")
        await keys.type("woodgrove b")
        await keys("enter", "enter", "enter", "enter")
        assert isinstance(app.screen, RunStep)
        pane = app.screen.query_one(ProgressPane)
        assert pane.status == "rolled_back"
        assert pane.states[:FAIL_AT + 1] == ["undone"] * FAIL_AT + ["failed"]
        assert set(pane.states[FAIL_AT + 1:]) == {"pending"}
        text = shown(app)
        assert "Failed and rolled back" in text and "↺ undone" in text and "✗ failed" in text
        log = "\n".join(str(line) for line in app.screen.query_one("#progress-log").lines)
        assert "FAILED: The domain controller refused the change (injected)." in log
        assert "rolling back" in log and "step 1 undone" in log
        await keys("enter")
        assert isinstance(app.screen, ResultStep)
        assert "rolled back: nothing changed" in shown(app)
        assert "o" not in {b.binding.key for b in app.screen.active_bindings.values() if b.binding.show}
    after = await demo.user(user.dn)
    assert (after.upn, after.email, set(after.groups)) == (user.upn, user.email, set(user.groups))


# --- untrusted names ---------------------------------------------------------------------------

async def test_a_hostile_user_renders_literally_and_moves(demo):
    hostile = "[@click=app.quit]Mallory[/] Clicker"
    home = await demo.customer("Tailspin Toys")
    user = next(u for u in await demo.users(home) if u.display_name == hostile)
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, "tailspin", "mallory")
        table = app.screen.query_one(UserTable)
        name = table.get_cell(user.dn, "name")
        assert isinstance(name, Text) and name.plain == hostile and not name.spans
        assert hostile[:12] in shown(app)  # literally, cut to the column's width
        await pilot.click(UserTable, offset=(6, table.get_row_index(user.dn) + 1))  # on the name
        await keys("enter")
        assert app.is_running and isinstance(app.screen, UserDetailScreen)
        assert hostile in shown(app)
        await keys("m")  # from the details: the wizard
        assert isinstance(app.screen, DestinationStep) and hostile in shown(app)
        await keys.type(SOURCE)
        await keys("enter", "enter", "enter")
        assert isinstance(app.screen, ReviewStep), problems(app)
        await keys("enter", "enter")
        assert isinstance(app.screen, ResultStep)
        assert f"✓ {hostile} now belongs to {SOURCE}." in shown(app)
        assert app.is_running
    moved = await demo.user(user.upn.replace("tailspin-toys", "fabrikam"))
    assert moved.display_name == hostile


@pytest.mark.parametrize("name", ["\x1b[31mRoot\x1b[0m Kit", "Trudy [/foo] Closer"])
async def test_control_bytes_and_broken_markup_in_names(demo, name):
    customers = {"\x1b[31mRoot\x1b[0m Kit": "Graphic Design Institute", "Trudy [/foo] Closer": "Margie's Travel"}
    customer = await demo.customer(customers[name])
    user = next(u for u in await demo.users(customer) if u.display_name == name)
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, customers[name].split()[0].lower(), user.upn.split("@")[0])
        cell = app.screen.query_one(UserTable).get_cell(user.dn, "name")
        assert cell.plain == plain(name) and "\x1b" not in cell.plain
        await keys("enter")
        text = shown(app)
        assert plain(name) in text and "\x1b" not in text
        await keys("m")
        assert plain(name) in shown(app)


# --- the look ------------------------------------------------------------------------------------

async def _to_users(pilot) -> None:
    keys = Keys(pilot)
    await settle(pilot)
    await keys("slash")
    await keys.type(SOURCE)
    await keys("enter", "enter")


async def _to_user_mapping(pilot) -> None:
    keys = Keys(pilot)
    await _to_users(pilot)
    await keys("slash")
    await keys.type(USER)
    await keys("enter", "m")
    await keys.type("woodgrove b")
    await keys("enter")


async def _to_review(pilot) -> None:
    await _to_user_mapping(pilot)
    await Keys(pilot)("enter", "enter")


@pytest.mark.parametrize("run_before", [_to_users, _to_user_mapping, _to_review], ids=["users", "user_mapping", "review"])
def test_snapshot(snap_compare, run_before):
    assert snap_compare(QuickApp(open_demo, None), terminal_size=SIZE, run_before=run_before)
