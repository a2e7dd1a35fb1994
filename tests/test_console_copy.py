"""Console tests of the copy wizard, driven with keys only at 80×24 over a fresh demo
directory (copies change it), the journal and audit log in ``tmp_path``."""

from __future__ import annotations


from textual.widgets import Input

from core.demo.directory import open_demo
from core.state import state_dir
from screens.copy_steps import (
    CopyResultStep,
    CopyReviewStep,
    CopyServicesStep,
    DetailsStep,
    PasswordStep,
)
from screens.wizard.run import RunStep as CopyRunStep
from screens.user_detail import UserDetailScreen
from screens.users import UsersScreen
from console_keys import SIZE, Keys, QuickApp, demo, open_user, problems, settle, shown, state  # noqa: F401
from widgets.progress import ProgressPane

CUSTOMER, TEMPLATE = "Fabrikam", "Ana Hall"  # exchange (Basic 2 GB) and OCS
PASSWORD = "Tr4velBus9"


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
