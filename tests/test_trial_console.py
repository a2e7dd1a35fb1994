"""Console defects a new user's trial found at 80×24 (issue 15), driven with keys over a
fresh demo directory."""

from __future__ import annotations

import asyncio
import dataclasses

from core.directory.layout import dn_key
from move_fixtures import make_user
from screens.copy_steps import DetailsStep, PasswordStep
from screens.move_destination import DestinationStep
from screens.users import UsersScreen
from screens.running_job import CancelJob
from screens.wizard.run import RunStep
from console_keys import SIZE, Keys, QuickApp, demo, open_user, problems, settle, shown, state  # noqa: F401
from test_console_cancel import HELD, HeldApp, start_held_move, until
from test_execute_cancel import Hold
from test_wizard import at_ana_hall


async def to_the_password(keys: Keys) -> None:
    """From Ana Hall in the users: c, a new user Zoe Quinn, on to the password step."""
    app = keys.pilot.app
    await keys("c")
    assert isinstance(app.screen, DetailsStep)
    await keys.type("Zoe")
    await keys("tab")
    await keys.type("Quinn")
    await keys("enter")
    assert isinstance(app.screen, PasswordStep), problems(app)


async def test_a_generated_password_clears_the_typed_ones_errors(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = await at_ana_hall(pilot)
        await to_the_password(keys)
        await keys.type("abc")
        await keys("tab")
        await keys.type("abd")
        await keys("enter")
        assert "The two passwords differ." in problems(app)
        await keys("ctrl+g")
        assert "Generated (shown once" in shown(app)
        assert "differ" not in problems(app) and "differ" not in shown(app)


class Told(HeldApp):
    """Keeps every notification's text (they expire from the screen after a few seconds)."""

    def notify(self, message, *args, **kwargs) -> None:
        self.told = [*getattr(self, "told", []), str(message)]
        super().notify(message, *args, **kwargs)


async def test_the_cancel_question_goes_when_the_job_ends_first(demo):
    user = await make_user(demo)
    app = Told(demo, demo.config, hold=Hold(HELD))
    async with app.run_test(size=SIZE) as pilot:
        await start_held_move(app, pilot, user)
        run = app.screen
        await pilot.press("ctrl+c")
        await until(pilot, lambda: isinstance(app.screen, CancelJob))
        app.hold.release.set()  # the job goes on and ends while the question is open
        job = next(w for w in app.workers if w.node is run and w.group == "job")
        await asyncio.wait_for(job.wait(), timeout=60)
        await until(pilot, lambda: app.screen is run)
        assert isinstance(run, RunStep) and run.outcome.status == "done"
        assert any("ended before it could be cancelled" in m for m in app.told), app.told
    moved = await demo.user(run.outcome.change.dn_after)
    assert dn_key(moved.customer_dn) == dn_key(user.destination.dn)  # it was not rolled back


async def test_help_on_the_customers_screen_says_how_to_move_or_copy_a_user(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await keys("question_mark")
        text = " ".join(shown(app).split())
        assert "Move a user: m on the user" in text and "Copy a user: c there" in text, text
        assert "Move a user…" in text and "Copy a user…" in text  # the palette's commands


async def test_a_keymap_in_the_config_remaps_a_binding_id(demo):
    console = dataclasses.replace(demo.config.console, keymap={"users.move": "v"})
    app = QuickApp(demo, dataclasses.replace(demo.config, console=console))
    async with app.run_test(size=SIZE) as pilot:
        keys = await at_ana_hall(pilot)
        assert "v Move" in shown(app).splitlines()[-1]  # the footer shows the key it has now
        await keys("m")
        assert isinstance(app.screen, UsersScreen)  # m no longer moves
        await keys("v")
        assert isinstance(app.screen, DestinationStep)


async def test_the_theme_picked_is_remembered_over_the_configs(demo, state):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.theme == demo.config.console.theme
        app.theme = "nord"  # as the palette's theme picker does
        await settle(pilot)
    again = QuickApp(demo, demo.config)
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert again.theme == "nord"


async def test_the_upn_domain_picker_shows_every_domain_whole_or_by_its_end(demo):
    from screens.move_user import UserMappingStep
    from widgets import Choice

    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = await at_ana_hall(pilot)
        await keys("m")
        await keys.type("Adventure Works")
        await keys("enter")
        assert isinstance(app.screen, UserMappingStep)
        picker = app.screen.query_one("#upn-domain", Choice)
        await keys("tab")
        assert picker.has_focus
        seen = []
        for _ in picker.options:
            line = next(line for line in shown(app).splitlines() if line.lstrip().startswith("UPN") and "@" in line)
            text = line.split("‹", 1)[1].split("›", 1)[0].strip()  # as the terminal shows it
            value = picker.value
            assert text == value or (text.startswith("…") and value.endswith(text[1:]) and len(text) > 8), (text, value)
            seen.append(text)
            await keys("right")
        assert len(set(seen)) == len(picker.options)  # .example and .example.org look different
        assert any(t.endswith(".example.org") for t in seen)


async def test_copy_service_ticks_differ_by_shape_not_only_colour(demo, monkeypatch):
    from screens.copy_steps import CopyServicesStep

    monkeypatch.setenv("NO_COLOR", "1")
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = await at_ana_hall(pilot)
        await to_the_password(keys)
        await keys.type("Tr4velBus9")
        await keys("tab")
        await keys.type("Tr4velBus9")
        await keys("enter")
        assert isinstance(app.screen, CopyServicesStep), problems(app)

        def service_line() -> str:
            return next(line for line in shown(app).splitlines() if "Hosted Exchange" in line)

        ticked = service_line()
        assert "✓" in ticked
        await keys("space")  # untick the focused first service
        assert "✓" not in service_line() and service_line() != ticked


async def test_the_palette_moves_step_trail_fits_80_columns(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await keys("colon")
        await keys.type("Move a user")
        await keys("enter")
        trail = shown(app).splitlines()[2]
        assert "1 Customer" in trail and trail.rstrip().endswith("7"), trail  # every step there, none cut
        assert "…" not in trail


async def test_tables_go_to_the_first_and_last_row_with_g_G_home_end(demo):
    from screens.move_services import ServicesStep, ServicesTable

    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = await at_ana_hall(pilot)
        await keys("m")
        await keys.type("Woodgrove Bank")
        await keys("enter", "enter")
        assert isinstance(app.screen, ServicesStep)
        table = app.screen.query_one(ServicesTable)
        assert table.has_focus and table.row_count >= 2
        rows = []
        for key in ("G", "g", "end", "home"):
            await keys(key)
            rows.append(table.cursor_row)
        assert rows == [table.row_count - 1, 0, table.row_count - 1, 0]
