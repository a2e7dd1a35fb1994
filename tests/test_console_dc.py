"""The console on the real Samba AD DC, driven by keys at 80×24: the move and copy
wizards end to end (the directory checked afterwards), and the banner while the DC is
away (its samba process stopped, then started again).

Each test makes its own users on the shared DC (tests/move_fixtures.py) and removes them
again; the DC is always running again when a test ends (tests/dc_outage.py).
"""

from __future__ import annotations

import contextlib
import time
from typing import AsyncIterator
from urllib.parse import urlsplit

import pytest
from textual.widgets import Input, Static

from core.escape import child_dn
from core.directory.layout import dn_key
from core.errors import NotFound
from core.text import plain
from screens.copy_steps import CopyResultStep, CopyReviewStep, CopyServicesStep, DetailsStep, PasswordStep
from screens.customers import CustomersScreen, CustomerTable
from screens.move_destination import DestinationStep
from screens.users import UsersScreen
from console_keys import SIZE, Keys, QuickApp, open_user, problems, settle, shown, state, through_the_move, until  # noqa: F401
from dc_outage import dc_outage  # noqa: F401
from move_fixtures import DESTINATION, EXTRA_ROLE, SOURCE, make_user, remove_user
from widgets.progress import ProgressPane
from widgets import ConnectionBanner

pytestmark = [pytest.mark.dc, pytest.mark.asyncio(loop_scope="session")]

PASSWORD = "Tr4velBus9"


def count(app) -> str:
    return str(app.screen.query_one("#count", Static).render())


# --- the move and copy wizards ---------------------------------------------------------------

@contextlib.asynccontextmanager
async def on_the_user(directory, upn: str) -> AsyncIterator[Keys]:
    """The console on ``directory``, the users of the test users' customer searched for ``upn``."""
    app = QuickApp(directory, directory.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, SOURCE, upn)
        yield keys


async def test_a_move_by_keys_on_the_dc(dc_directory):
    user = await make_user(dc_directory)  # Exchange (Premium 50 GB), OCS, two roles
    try:
        async with on_the_user(dc_directory, user.upn) as keys:
            app = keys.pilot.app
            assert [dn_key(dn) for dn in app.screen.users] == [dn_key(user.dn)]
            await keys("m")
            assert isinstance(app.screen, DestinationStep)
            await through_the_move(keys, "globex")
            assert f"now belongs to {DESTINATION}" in shown(app)
            await keys("enter")  # move another user: the source's users, reloaded
            assert isinstance(app.screen, UsersScreen) and not app.screen.users

        destination, d = user.destination, dc_directory
        domain = destination.default_domain
        moved = await d.user(f"test.mover{user.number}@{domain}")
        assert dn_key(moved.dn) == dn_key(child_dn("CN", user.cn, d.layout.users_dn(destination.dn)))
        assert moved.email == f"test.mover{user.number}@{domain}" and moved.sip == f"sip:{moved.email}"
        assert [a for a in moved.proxy_addresses if a.startswith("SMTP:")] == [f"SMTP:{moved.email}"]
        assert not [a for a in moved.proxy_addresses if any(s in a.lower() for s in user.source.domains)]
        assert f"X500:/o=Old/cn=Recipients/cn=oldmover{user.number}" in moved.proxy_addresses
        assert set(moved.services) == {"exchange", "ocs"} and {p.name for p in moved.plans} == {"Premium 50 GB"}
        assert set(moved.roles) == {"Customer Administrator", EXTRA_ROLE}
        assert moved.groups and all(dn_key(g)[-len(dn_key(destination.dn)):] == dn_key(destination.dn) for g in moved.groups)
        assert not await d.exists(user.dn)
    finally:
        await remove_user(dc_directory, user)


async def test_a_copy_by_keys_on_the_dc(dc_directory, samba_dc):
    made = await make_user(dc_directory)
    detailed = await dc_directory.user(made.dn)
    upn = None
    try:
        async with on_the_user(dc_directory, made.upn) as keys:
            app = keys.pilot.app
            await keys("c")
            assert isinstance(app.screen, DetailsStep)
            await keys.type("Zoe")
            await keys("tab")
            await keys.type(f"Quinn{made.number}")
            upn = app.screen.query_one("#upn-prefix", Input).value + "@" + app.screen.query_one("#copy-domain").value
            await keys("enter")
            assert isinstance(app.screen, PasswordStep), problems(app)
            await keys.type(PASSWORD)
            await keys("tab")
            await keys.type(PASSWORD)
            await keys("enter")
            assert isinstance(app.screen, CopyServicesStep), problems(app)
            await keys("enter")
            assert isinstance(app.screen, CopyReviewStep), problems(app)
            await keys("enter")
            assert app.screen.query_one(ProgressPane).status == "done", shown(app)
            await keys("enter")
            assert isinstance(app.screen, CopyResultStep) and upn in shown(app)

        new = await dc_directory.user(upn)
        assert new.display_name == f"Zoe Quinn{made.number}" and new.enabled
        assert dn_key(new.customer_dn) == dn_key(made.source.dn)
        assert upn.endswith("@" + made.source.default_domain) and new.email
        assert [a for a in new.proxy_addresses if a.startswith("SMTP:")] == [f"SMTP:{new.email}"]
        assert set(new.services) == set(detailed.services) == {"exchange", "ocs"}
        assert {p.name for p in new.plans} == {p.name for p in detailed.plans}
        assert set(new.roles) == set(detailed.roles) == {"Customer Administrator", EXTRA_ROLE}
        assert new.attribute("title") == ("Tester",)  # a common attribute, copied
        with samba_dc.connect(upn, PASSWORD) as bound:  # the password typed, set and usable
            assert bound.bound
    finally:
        if upn is not None:
            try:
                await dc_directory.delete((await dc_directory.user(upn)).dn)
            except NotFound:
                pass  # the copy never happened
        await remove_user(dc_directory, made)


# --- a lost connection ----------------------------------------------------------------------

async def test_a_lost_dc_shows_a_banner_and_the_console_keeps_working(dc_directory, dc_outage, samba_dc):
    host = urlsplit(samba_dc.ldaps_url).hostname
    sentence = f"The connection to {host} is lost; retrying…"
    app = QuickApp(dc_directory, dc_directory.config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        customers = app.screen
        index = app.index_keeper.index
        expected = [plain(c.name) for c in index.search("co", 200).rows]
        assert isinstance(customers, CustomersScreen) and index.complete and len(customers.customers) > len(expected) > 1

        await dc_outage.stop()
        await pilot.press("slash", "c", "o")  # the customer index answers: no DC needed
        table = customers.query_one(CustomerTable)
        assert [table.get_cell_at((row, 0)).plain for row in range(table.row_count)] == expected
        pressed = time.monotonic()
        app.index_keeper.poke()  # the next refresh finds the DC gone
        await until(pilot, lambda: customers.query(ConnectionBanner), "the banner")
        appeared = time.monotonic() - pressed
        assert [str(b.render()) for b in customers.query(ConnectionBanner)] == [sentence]
        assert sentence in shown(app)
        assert not customers.query_one("#banner").has_class("-shown")  # one sentence, not two
        await until(pilot, lambda: app.index_keeper.error is not None, "the refresh given up")
        assert count(app).startswith(f"{len(expected)} customers · ")  # the rows stay searchable,
        assert count(app).endswith(" old, not refreshed")  # marked as what they are

        # what needs no DC still works: keys, another screen, back
        await pilot.press("escape")  # out of the search box
        await until(pilot, lambda: customers.query_one(CustomerTable).has_focus, "focused the table")
        await pilot.press("enter")  # a customer's users: they cannot be read now
        await until(pilot, lambda: isinstance(app.screen, UsersScreen) and count(app) == "not loaded", "the users screen")
        users = app.screen
        assert [str(b.render()) for b in users.query(ConnectionBanner)] == [sentence]

        await dc_outage.start()
        answering = time.monotonic()
        await until(pilot, lambda: not users.query(ConnectionBanner), "the banner gone")
        gone = time.monotonic() - answering
        await until(pilot, lambda: users.index.complete, "the users read once the DC answers")
        assert count(app).endswith(" users") and sentence not in shown(app)
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is customers, "went back to the customers")
        assert app.is_running
        print(f"\nbanner shown {appeared:.2f} s after the refresh was asked; gone {gone:.2f} s after the DC answered again")
        await pilot.press("q")
    assert not dc_directory.connection.lost
