"""Console tests of the copy wizard, driven with keys only at 80×24 over a fresh demo
directory (copies change it), the journal and audit log in ``tmp_path``."""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio
from textual.widgets import Input

from core.demo.directory import open_demo
from core.state import state_dir
from screens.copy_steps import (
    CopyResultStep,
    CopyReviewStep,
    CopyRunStep,
    CopyServicesStep,
    DetailsStep,
    PasswordStep,
)
from screens.user_detail import UserDetailScreen
from screens.users import UsersScreen
from tests.test_console_move import SIZE, QuickApp, problems, shown
from tui.widgets import ProgressPane

CUSTOMER, TEMPLATE = "Fabrikam", "Ana Hall"  # exchange (Basic 2 GB) and OCS
PASSWORD = "Tr4velBus9"
FLOWS = {"move-flow", "copy-flow"}  # the wizards' own workers live as long as the wizard


async def settle(pilot, rounds: int = 3) -> None:
    """Wait until no screen worker runs and the app has been idle ``rounds`` times."""
    app, quiet = pilot.app, 0
    while quiet < rounds:
        busy = [w for w in app.workers if w.group not in FLOWS and not w.is_finished]
        if busy:
            quiet = 0
            await asyncio.wait_for(asyncio.gather(*(w.wait() for w in busy), return_exceptions=True), timeout=30)
        else:
            quiet += 1
        await pilot.pause()


class Keys:
    """Presses keys one at a time (settling after each) and counts them."""

    def __init__(self, pilot) -> None:
        self.pilot = pilot
        self.count = 0

    async def __call__(self, *keys: str) -> None:
        for key in keys:
            self.count += 1
            await self.pilot.press(key)
            await settle(self.pilot)

    async def type(self, text: str) -> None:
        await self(*("space" if c == " " else c for c in text))


async def open_user(keys: Keys, customer: str, search: str) -> None:
    """From the customers screen: open ``customer``, search ``search`` in its users."""
    await keys("slash")
    await keys.type(customer)
    await keys("enter", "enter")
    assert isinstance(keys.pilot.app.screen, UsersScreen)
    await keys("slash")
    await keys.type(search)
    await keys("enter")


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("TENANTRY_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest_asyncio.fixture(loop_scope="session")
async def demo():
    directory = await open_demo()  # a fresh one: the tests create users
    yield directory
    await directory.close()


async def test_a_copy_by_keys_end_to_end(demo):
    customer = await demo.customer(CUSTOMER)
    template = next(u for u in await demo.users(customer) if u.display_name == TEMPLATE)
    template = await demo.user(template.dn)
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, CUSTOMER, TEMPLATE)
        before = keys.count
        await keys("c")
        assert isinstance(app.screen, DetailsStep)
        await keys.type("Zoe")
        await keys("tab")
        await keys.type("Quinn")
        typed = len("Zoe") + len("Quinn")
        screen = app.screen
        upn = screen.query_one("#upn-prefix", Input).value + "@" + screen.query_one("#copy-domain").value
        assert screen.query_one("#display-name", Input).value == "Zoe Quinn"
        assert upn.endswith("@fabrikam.example") and "zoe" in upn.lower()
        assert screen.query_one("#username", Input).value  # proposed from the customer's format
        await keys("enter")
        assert isinstance(app.screen, PasswordStep), problems(app)
        assert "at least 7 characters" in shown(app)  # the domain's policy
        await keys.type(PASSWORD)
        await keys("tab")
        await keys.type(PASSWORD)
        typed += 2 * len(PASSWORD)
        assert "meets the domain's policy" in shown(app) and PASSWORD not in shown(app)
        await keys("enter")
        assert isinstance(app.screen, CopyServicesStep), problems(app)
        await keys("enter")  # the template's services and plans
        assert isinstance(app.screen, CopyReviewStep), problems(app)
        text = shown(app)
        assert "Nothing has been written yet" in text and upn in text and PASSWORD not in text
        assert not await demo.users(customer, search=upn)  # nothing written yet indeed
        await keys("enter")
        assert isinstance(app.screen, CopyRunStep)
        pane = app.screen.query_one(ProgressPane)
        assert pane.status == "done" and set(pane.states) == {"done"}, pane.states
        await keys("enter")
        assert isinstance(app.screen, CopyResultStep)
        assert upn in shown(app)
        await keys("escape")  # back to the (reloaded) list, the new user in it
        assert isinstance(app.screen, UsersScreen)
        total, from_c = keys.count, keys.count - before
        print(f"\ncopy keystrokes: {total} in all from the start screen; {from_c} from 'c' "
              f"({typed} of them the names and the password typed twice); {from_c - typed} others")
        assert from_c - typed < 15

    new = await demo.user(upn)
    assert new.display_name == "Zoe Quinn" and new.customer_dn == template.customer_dn
    assert set(new.services) == set(template.services)
    assert {pl.name for pl in new.plans} == {pl.name for pl in template.plans}
    assert new.enabled
    written = [p for p in state_dir().rglob("*") if p.is_file()]
    assert written  # the journal and the audit log
    for path in written:
        assert PASSWORD not in path.read_text(errors="replace"), path  # never journaled nor audited


async def test_open_the_new_user_after_a_copy(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, CUSTOMER, TEMPLATE)
        await keys("enter")  # the details panel: c copies from there too
        assert isinstance(app.screen, UserDetailScreen)
        await keys("c")
        assert isinstance(app.screen, DetailsStep)
        await keys.type("Ida")
        await keys("tab")
        await keys.type("Moss")
        await keys("enter", "ctrl+g")  # a generated password, shown once
        assert "shown once" in shown(app)
        await keys("enter", "enter", "enter", "enter", "enter")
        assert isinstance(app.screen, UserDetailScreen)
        assert "Ida Moss" in shown(app)


async def test_a_weak_password_is_refused_on_the_password_step(demo):
    customer = await demo.customer(CUSTOMER)
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, CUSTOMER, TEMPLATE)
        await keys("c")
        await keys.type("Uma")
        await keys("tab")
        await keys.type("Rook")
        upn = app.screen.query_one("#upn-prefix", Input).value + "@" + app.screen.query_one("#copy-domain").value
        await keys("enter")
        assert isinstance(app.screen, PasswordStep)
        await keys.type("abc")
        await keys("tab")
        await keys.type("abc")
        assert "shorter than the domain's minimum" in shown(app)
        await keys("enter")
        assert isinstance(app.screen, PasswordStep)  # refused: stays
        assert "shorter than the domain's minimum" in problems(app)
        await keys("escape")  # back, keeping the entries
        assert isinstance(app.screen, DetailsStep)
        assert app.screen.query_one("#first", Input).value == "Uma"
    assert not await demo.users(customer, search=upn)  # nothing was written


async def _to_copy_details(pilot) -> None:
    keys = Keys(pilot)
    await settle(pilot)
    await open_user(keys, CUSTOMER, TEMPLATE)
    await keys("c")
    await keys.type("Zoe")
    await keys("tab")
    await keys.type("Quinn")


def test_snapshot_details(snap_compare):
    assert snap_compare(QuickApp(open_demo, None), terminal_size=SIZE, run_before=_to_copy_details)
