"""The command palette (``:`` as ``ctrl+p``), driven by keys at 80×24 over a fresh demo
directory: "go to" a customer (searched on the server), "Move a user…" with nothing
selected (source customer → user → the move wizard), hostile customer names shown
literally, read-only mode without move or copy."""

from __future__ import annotations

from textual.command import CommandList, CommandPalette
from textual.widgets import Input

from core.directory.layout import dn_key
from core.text import plain
from screens.copy_steps import DetailsStep
from screens.customers import CustomersScreen
from screens.help import HelpScreen
from screens.move_destination import DestinationStep
from screens.move_source import SourceCustomerStep, SourceUserStep
from screens.users import UsersScreen
from console_keys import SIZE, Keys, QuickApp, demo, open_user, settle, shown, state, through_the_move  # noqa: F401

SOURCE, USER, DESTINATION = "Fabrikam", "Ana Hall", "Woodgrove Bank"


def hits(app) -> list[str]:
    """The palette's list, as the terminal shows it (each hit's first line)."""
    options = app.screen.query_one(CommandList).options
    return [option.prompt.plain.split("\n")[0] for option in options]


async def palette(keys: Keys, typed: str) -> None:
    await keys("colon")
    assert CommandPalette.is_open(keys.pilot.app)
    await keys.type(typed)


async def test_colon_and_ctrl_p_open_the_palette_and_esc_closes_it(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        for key in ("colon", "ctrl+p"):
            await keys(key)
            assert CommandPalette.is_open(app)
            await keys("escape")
            assert isinstance(app.screen, CustomersScreen)
        await keys("slash")
        await keys.type("a:b")  # in the search box a colon is typed, not a command
        assert app.screen.query_one("#search", Input).value == "a:b"
        assert not CommandPalette.is_open(app)


async def test_go_to_a_customer_opens_its_users(demo):
    fabrikam = await demo.customer(SOURCE)
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, "contoso", "")  # from somewhere else than the customers list
        await palette(keys, "go to")  # no name yet: the command that leads to the customers' search
        assert hits(app) == ["Go to customer…"]
        await keys("enter")
        assert isinstance(app.screen, CustomersScreen) and app.screen.query_one("#search", Input).has_focus
        await keys("enter", "enter")  # contoso's users again (the search kept)
        assert isinstance(app.screen, UsersScreen)
        await palette(keys, "go to fabri")
        assert hits(app) == ["Go to customer Fabrikam"]
        await keys("enter")
        screen = app.screen
        assert isinstance(screen, UsersScreen) and dn_key(screen.customer.dn) == dn_key(fabrikam.dn)
        assert len(screen.users) == len(await demo.users(fabrikam)) > 0
        await keys("escape")
        assert isinstance(app.screen, CustomersScreen)  # the customers list, not contoso's users


async def test_move_a_user_with_nothing_selected_picks_the_source_first(demo):
    source = await demo.customer(SOURCE)
    user = next(u for u in await demo.users(source) if u.display_name == USER)
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await palette(keys, "move a")
        assert hits(app) == ["Move a user…"]
        start = keys.count
        await keys("enter")
        assert isinstance(app.screen, SourceCustomerStep)
        assert "Move a user" in shown(app) and "1 Customer" in shown(app)
        await keys.type("fabrikam")
        await keys("enter")
        assert isinstance(app.screen, SourceUserStep) and app.screen.customer.name == SOURCE
        await keys.type("ana hall")
        await keys("enter")
        assert isinstance(app.screen, DestinationStep)
        await keys("escape")  # back to the user step, the search as it was
        assert isinstance(app.screen, SourceUserStep)
        assert app.screen.query_one("#search", Input).value == "ana hall"
        await keys("enter")
        assert isinstance(app.screen, DestinationStep) and app.screen.draft.user.dn == user.dn
        await through_the_move(keys, "woodgrove b")
        assert "now belongs to Woodgrove Bank" in shown(app)
        await keys("enter")
        assert isinstance(app.screen, CustomersScreen)  # where the palette was opened
        print(f"\nmove a user… from the palette: {keys.count - start + len(':move a')} keys "
              f"({len(':move a')} to open it and find the command, then {keys.count - start})")

    woodgrove = await demo.customer(DESTINATION)
    moved = await demo.users(woodgrove, search=user.upn.split("@")[0])
    assert [u.display_name for u in moved] == [USER] and dn_key(moved[0].dn)[1:] == dn_key(demo.layout.users_dn(woodgrove.dn))
    assert not [u for u in await demo.users(source) if u.dn == user.dn]


async def test_copy_a_user_with_nothing_selected_picks_the_template_first(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await keys("question_mark")
        assert isinstance(app.screen, HelpScreen)  # ``?`` lists the key the footer has no room for
        assert ":  Commands" in "\n".join(strip.text for strip in app.screen._compositor.render_strips())
        await keys("escape")
        await palette(keys, "copy a")
        await keys("enter")
        assert isinstance(app.screen, SourceCustomerStep) and "Copy a user" in shown(app)
        await keys.type("fabrikam")
        await keys("enter")
        await keys.type("ana hall")
        await keys("enter")
        assert isinstance(app.screen, DetailsStep) and app.screen.draft.template.display_name == USER
        await keys("escape")  # out of the copy wizard: back to picking the template
        assert isinstance(app.screen, SourceUserStep) and app.screen.customer.name == SOURCE
        await keys("escape", "escape")
        assert isinstance(app.screen, CustomersScreen) and not app.in_wizard


async def test_hostile_customer_names_are_shown_literally(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        for typed, name in (("markup", "[bold]Markup[/bold] Inc"), ("foo", "[/foo] Holdings"), ("red alert", plain("\x1b[31mRed Alert\x1b[0m Ltd"))):
            await palette(keys, f"go to {typed}")
            assert hits(app) == [f"Go to customer {name}"]
            assert f"Go to customer {name}" in shown(app) and "\x1b" not in shown(app)
            await keys("escape")
        await palette(keys, "go to click")
        assert hits(app) == ["Go to customer [@click=app.quit]x[/]"]
        await keys("enter")  # opens that customer: nothing is clicked, nothing quits
        assert app.is_running
        assert isinstance(app.screen, UsersScreen) and app.screen.customer.name == "[@click=app.quit]x[/]"


async def test_read_only_offers_no_move_or_copy(demo):
    app = QuickApp(demo, demo.config, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, SOURCE, USER)
        await palette(keys, "user")
        assert not [h for h in hits(app) if "Move" in h or "Copy" in h]
        await keys("ctrl+u")
        await keys.type("go to wood")
        assert "Go to customer Woodgrove Bank" in hits(app)
