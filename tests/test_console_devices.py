"""The move wizard and a BlackBerry user with mobile devices, on the demo (its in-process UEMs):
refused on the services step with the count, moved once the admin ticks "with devices"."""

from __future__ import annotations

import pytest
from textual.widgets import Checkbox

from core.demo.services import demo_services
from core.move import MoveRequest
from core.session import Session
from screens.move_result import ResultStep
from screens.move_review import ReviewStep
from screens.move_services import ServicesStep
from screens.move_user import UserMappingStep
from console_keys import SIZE, Keys, QuickApp, demo, open_user, problems, settle, shown, state  # noqa: F401

pytestmark = pytest.mark.asyncio(loop_scope="session")
SOURCE = "Adventure Works Cycles"  # exchange, ocs, blackberry, crm
DESTINATION = "Globex Corporation"  # every service


async def blackberry_user(demo, tmp_path):
    """A plain-named BlackBerry user of SOURCE whose move passes preflight, given two devices in UEM."""
    session = await Session.open(demo, state=tmp_path / "probe")
    try:
        source = await demo.customer(SOURCE)
        for user in await demo.users(source):
            if set(user.services) == {"exchange", "ocs", "blackberry"} and user.display_name and user.display_name.isascii():
                if (await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))).ok:
                    break
        else:
            pytest.fail("no movable BlackBerry user in the demo")
    finally:
        await session.close()
    uem = demo_services(demo).uem(source.code.lower())
    guid = uem.users()[user.upn]["guid"]
    for model in ("KEY2", "Passport"):
        uem.add_device(guid, {"model": model, "os": "Android"})
    return user, uem


async def test_devices_are_refused_on_the_services_step_until_with_devices_is_ticked(demo, tmp_path):
    user, uem = await blackberry_user(demo, tmp_path)
    directory_id = uem.users()[user.upn]["directoryId"]
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, SOURCE, user.display_name)
        await keys("m")
        await keys.type(DESTINATION)
        await keys("enter")
        assert isinstance(app.screen, UserMappingStep)
        await keys("enter")
        assert isinstance(app.screen, ServicesStep)
        assert f"{user.upn} has 2 devices in BlackBerry tenant {uem.srp_id}" in problems(app)
        box = app.screen.query_one("#with-devices", Checkbox)
        assert box.display and not box.value
        await keys("enter")
        assert isinstance(app.screen, ServicesStep)  # refused: enter does not go on
        await keys("d")
        assert box.value and "devices" not in problems(app)
        await keys("enter")
        assert isinstance(app.screen, ReviewStep)
        assert any(s.target.startswith("blackberry: remove 2 device(s)") for s in app.screen.plan.steps)
        await keys("enter", "enter")
        assert isinstance(app.screen, ResultStep), shown(app)
    assert user.upn not in uem.users()
    there = demo_services(demo).uem((await demo.customer(DESTINATION)).code.lower()).snapshot()["users"]
    (record,) = [r for r in there.values() if r.get("directoryId") == directory_id]  # the same directory-linked user
    assert record["devices"] == 0 and record["directoryLinked"]


async def test_a_bulk_move_refuses_the_user_with_devices_until_d(demo, tmp_path):
    from screens.bulk_run import BulkRunStep
    from screens.bulk_steps import BulkDestinationStep, BulkReviewStep, BulkRowsStep
    from screens.users import UsersScreen
    from test_console_bulk import flat

    user, uem = await blackberry_user(demo, tmp_path)
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await open_user(keys, SOURCE, user.display_name)
        assert isinstance(app.screen, UsersScreen)
        await keys("space", "m")
        assert isinstance(app.screen, BulkDestinationStep)
        await keys.type(DESTINATION)
        await keys("enter")
        if not isinstance(app.screen, BulkRowsStep):  # a services step only when a plan must be chosen
            await keys("enter")
        assert isinstance(app.screen, BulkRowsStep), shown(app)
        def banner() -> str:
            return app.screen.query_one("#bulk-banner").render().plain

        assert "No user can move" in banner() and "d: move the users with devices too." in banner()
        assert f"{user.upn} has 2 devices" in flat(app, "#bulk-problems-text")
        await keys("d")
        assert "1 of 1 users can move" in banner() and "With devices (d)" in banner() and app.screen.draft.with_devices
        await keys("enter")
        assert isinstance(app.screen, BulkReviewStep)
        await keys("enter")
        assert isinstance(app.screen, BulkRunStep), shown(app)
        assert "Done: 1 of 1 users moved" in shown(app)
    assert user.upn not in uem.users()
