"""The bulk move of marked users in the console, driven with keys only at 80×24: mark
users with ``space``, ``m`` → destination → the plan there of services whose plan the
destination lacks → one row per user with its new UPN/email and its problems → review →
run (one progress row per user) → result. On a fresh demo
directory and on the real Samba DC, checking the directory afterwards; ``ctrl+c`` mid-batch."""

from __future__ import annotations

import asyncio
import dataclasses
import io

import pytest
from rich.console import Console

from core.config import parse
from core.demo.directory import open_demo
from core.directory.layout import dn_key
from core.errors import ConfigError
from core.execute import CANCELLED
from move_fixtures import DESTINATION, make_user, remove_user
from screens.bulk_run import BulkResultStep, BulkRunStep
from screens.bulk_steps import BulkDestinationStep, BulkReviewStep, BulkRowsStep, BulkServicesStep
from screens.users import UsersScreen
from console_keys import SIZE, Keys, QuickApp, demo, settle, shown, state  # noqa: F401
from test_console_cancel import HeldApp, cancel_held, footer, frozen, until
from test_execute_cancel import Hold
from widgets.progress import BulkProgressPane

FROM, TO = "Fabrikam", "Northwind Traders"  # Northwind has Hosted Exchange on Premium 50 GB only
CLEAN = ("arjun.martin@fabrikam.example", "kate.weiss@fabrikam.example")
REFUSED = "ana.hall2@fabrikam.example"  # on Basic 2 GB: refused, with the reason on its row
PLAN_PROBLEM = "Northwind Traders has no Hosted Exchange plan Basic 2 GB; choose one of: Premium 50 GB."


def flat(app, selector: str | None = None) -> str:
    """The text of the screen (or of one widget), wrapped lines joined."""
    if selector is None:
        text = shown(app)
    else:
        console = Console(width=SIZE[0], file=io.StringIO(), record=True)
        console.print(app.screen.query_one(selector).content)
        text = console.export_text()
    return " ".join(line.strip() for line in text.splitlines())


async def mark(keys: Keys, *searches: str) -> None:
    """On a users screen: search each, mark the (only) row found."""
    for text in searches:
        await keys("slash", "ctrl+u")
        await keys.type(text)
        await keys("enter", "space")


async def to_users(keys: Keys, customer: str) -> None:
    await settle(keys.pilot)
    await keys("slash")
    await keys.type(customer)
    await keys("enter", "enter")
    assert isinstance(keys.pilot.app.screen, UsersScreen)


async def test_a_bulk_move_of_marked_users_on_the_demo(demo):
    source, destination = await demo.customer(FROM), await demo.customer(TO)
    users = {upn: await demo.user(upn) for upn in (*CLEAN, REFUSED)}
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await to_users(keys, FROM)
        users_screen = app.screen
        await mark(keys, CLEAN[0], REFUSED, CLEAN[1])
        assert users_screen.marked == {u.dn for u in users.values()}
        assert "3 marked" in shown(app)
        start = keys.count
        await keys("m")
        assert isinstance(app.screen, BulkDestinationStep)
        assert "Move 3 users from Fabrikam" in shown(app)
        await keys.type("northwind")
        await keys("enter")
        assert isinstance(app.screen, BulkServicesStep), shown(app)
        assert "Left unchosen, 1 user will not move." in flat(app)
        await keys("enter")  # no plan chosen: Ana Hall stays behind

        assert isinstance(app.screen, BulkRowsStep), shown(app)
        text = shown(app)
        assert "2 of 3 users can move to Northwind Traders" in text
        table = app.screen.query_one("#bulk-rows")
        assert table.row_count == 3
        rows = {key.value: [c.plain for c in table.get_row(key)] for key in table.rows}
        assert rows[REFUSED][0] == "✗" and {rows[upn][0] for upn in CLEAN} == {"✓"}
        for upn in CLEAN:
            assert rows[upn][2] == upn.replace("fabrikam", "northwind-traders")  # the new UPN on its row
        problems = flat(app, "#bulk-problems-text")
        assert users[REFUSED].display_name in problems and PLAN_PROBLEM in problems
        assert PLAN_PROBLEM in flat(app)  # on the screen, whole
        assert not any(users[upn].display_name in problems for upn in CLEAN)

        await keys("enter")
        assert isinstance(app.screen, BulkReviewStep)
        text = flat(app)
        assert "Will move (2)" in text and "Will not move (1)" in text and PLAN_PROBLEM in text
        assert "Nothing has been written yet" in text
        assert [(await demo.user(u.dn)).upn for u in users.values()] == list(users)  # indeed

        await keys("enter")
        assert isinstance(app.screen, BulkRunStep)
        pane = app.screen.query_one(BulkProgressPane)
        assert pane.states == ["done", "done"] and pane.status == "done"
        assert [pane.descriptions[i].plain for i in range(2)] == [users[upn].display_name for upn in CLEAN]
        assert "Done: 2 of 2 users moved" in shown(app)
        await keys("enter")
        assert isinstance(app.screen, BulkResultStep)
        text = flat(app)
        assert "Moved 2 of 3 users to Northwind Traders." in text
        for upn in CLEAN:
            assert upn.replace("fabrikam", "northwind-traders") in text
        assert f"{users[REFUSED].display_name}: not moved" in text and PLAN_PROBLEM in text
        print(f"\nbulk move keystrokes: {keys.count} in all from the start screen (the three users found and marked: "
              f"{start}); {keys.count - start} from 'm' ('northwind' is {len('northwind')} of them)")
        await keys("enter")
        assert app.screen is users_screen and not users_screen.marked and "marked" not in shown(app)
        await keys("escape")  # clear the search: every user left, read again
        assert set(users_screen.users) == {u.dn for u in await demo.users(source)}
        assert users[REFUSED].dn in users_screen.users and not {users[upn].dn for upn in CLEAN} & set(users_screen.users)

    for upn in CLEAN:
        moved = await demo.user(upn.replace("fabrikam", "northwind-traders"))
        assert dn_key(moved.dn)[1:] == dn_key(demo.layout.users_dn(destination.dn))
        assert set(moved.services) == set(users[upn].services) and moved.email is None  # no mailbox, as before
        if "ocs" in moved.services:
            assert moved.sip == "sip:" + moved.upn
    stayed = await demo.user(users[REFUSED].dn)
    assert (stayed.upn, set(stayed.groups)) == (REFUSED, set(users[REFUSED].groups))


async def test_a_bulk_move_of_marked_users_on_the_real_dc(dc_directory):
    """Three test users of Adventure Works marked, one colliding by name with a user of
    Globex: its row is refused with the reason, the other two move."""
    d = dc_directory
    users = [await make_user(d) for _ in range(3)]
    squatter = await make_user(d, source_name=DESTINATION, cn=users[1].cn)
    try:
        app = QuickApp(d, d.config)
        async with app.run_test(size=SIZE) as pilot:
            keys = Keys(pilot)
            await to_users(keys, "adventure works")
            await mark(keys, *(u.sam for u in users))
            assert app.screen.marked == {u.dn for u in users}
            await keys("m")
            await keys.type("globex")
            await keys("enter")
            assert isinstance(app.screen, BulkRowsStep), shown(app)
            table = app.screen.query_one("#bulk-rows")
            assert [table.get_row(key)[0].plain for key in table.rows] == ["✓", "✗", "✓"]
            problems = flat(app, "#bulk-problems-text")
            assert f"Test Mover {users[1].number}" in problems and "already" in problems
            await keys("enter", "enter")
            assert isinstance(app.screen, BulkRunStep)
            assert app.screen.query_one(BulkProgressPane).states == ["done", "done"]
            await keys("enter")
            assert "Moved 2 of 3 users to Globex Corporation." in shown(app)
            note = app.screen.query_one("#replication")
            await until(pilot, lambda: note.rows_checked is not None, "the check after the batch ended")
            assert set(note.rows_checked) == {users[0].upn, users[2].upn}  # the done rows only
            assert "Done rows, replicated to 1 of 1 domain controller." in flat(app) and "Duplicate" not in flat(app)
            await keys("enter")
        destination = await d.customer(DESTINATION)
        for user in (users[0], users[2]):
            moved = await d.user(f"test.mover{user.number}@{destination.default_domain}")
            assert dn_key(moved.dn)[1:] == dn_key(d.layout.users_dn(destination.dn))
            assert set(moved.roles) >= {"Customer Administrator"} and set(moved.services) == {"exchange", "ocs"}
        stayed = await d.user(users[1].dn)
        assert stayed.upn == users[1].upn and dn_key(stayed.dn)[1:] == dn_key(d.layout.users_dn(users[1].source.dn))
    finally:
        for user in (*users, squatter):
            await remove_user(d, user)


def services_table(app) -> dict[str, list[str]]:
    """The services step's rows: ``"<service> <plan now>"`` → the cells."""
    table = app.screen.query_one("#services")
    rows = [[c.plain for c in table.get_row(key)] for key in table.rows]
    return {f"{row[0]} {row[2]}": row for row in rows}


def row_marks(app) -> dict[str, str]:
    table = app.screen.query_one("#bulk-rows")
    return {key.value: table.get_row(key)[0].plain for key in table.rows}


async def test_a_plan_the_destination_lacks_is_chosen_for_the_batch_and_kept_going_back(demo):
    """Ana Hall and Emma Patel are on Basic 2 GB, which Northwind Traders lacks: the
    services step offers its Premium 50 GB, and with it all three users move."""
    marked = ("ana.hall2@fabrikam.example", "arjun.martin@fabrikam.example", "emma.patel@fabrikam.example")
    users = {upn: await demo.user(upn) for upn in marked}
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await to_users(keys, FROM)
        await mark(keys, *marked)
        start = keys.count
        await keys("m")
        await keys.type("northwind")
        await keys("enter")
        assert isinstance(app.screen, BulkServicesStep), shown(app)
        text = flat(app)
        assert "Left unchosen, 2 users will not move." in text and "2 Services" in text
        rows = services_table(app)
        assert rows["Hosted Exchange Basic 2 GB"] == ["Hosted Exchange", "2", "Basic 2 GB", "(none)", "✗ choose a plan ←→"]
        ocs = next(row for name, row in rows.items() if name.startswith("Office Communications"))
        assert ocs[1:] == ["2", "—", "—", "moves"] and len(rows) == 2  # no plans: nothing to choose
        assert ("right", "Plan") in footer(app) and ("enter", "Users") in footer(app)
        await keys("right")  # the only plan there: Premium 50 GB
        assert services_table(app)["Hosted Exchange Basic 2 GB"][3:] == ["Premium 50 GB", "moves, plan changes"]
        assert "Every service that moves has its plan at Northwind Traders" in flat(app)
        await keys("enter")

        assert isinstance(app.screen, BulkRowsStep), shown(app)
        assert "3 of 3 users can move to Northwind Traders" in shown(app)
        assert set(row_marks(app).values()) == {"✓"} and PLAN_PROBLEM not in flat(app)
        await keys("enter")
        assert isinstance(app.screen, BulkReviewStep) and "Will move (3)" in flat(app)
        await keys("escape", "escape")  # back to the services step: the choice kept
        assert isinstance(app.screen, BulkServicesStep)
        assert services_table(app)["Hosted Exchange Basic 2 GB"][3] == "Premium 50 GB"
        await keys("escape")  # to the destination, and the same one again: still chosen
        assert isinstance(app.screen, BulkDestinationStep)
        await keys("enter")
        assert isinstance(app.screen, BulkServicesStep), shown(app)
        assert services_table(app)["Hosted Exchange Basic 2 GB"][3] == "Premium 50 GB"
        await keys("enter")
        assert set(row_marks(app).values()) == {"✓"}
        await keys("enter")
        assert "Will move (3)" in flat(app) and "Will not move" not in flat(app)
        await keys("enter")
        assert isinstance(app.screen, BulkRunStep)
        assert app.screen.query_one(BulkProgressPane).states == ["done"] * 3
        assert "Done: 3 of 3 users moved" in shown(app)
        print(f"\nbulk move with a plan chosen, keystrokes from 'm': {keys.count - start}")
        await keys("enter")
        assert "Moved 3 of 3 users to Northwind Traders." in flat(app)
        await keys("enter")

    destination = await demo.customer(TO)
    for upn, before in users.items():
        moved = await demo.user(upn.replace("fabrikam", "northwind-traders"))
        assert dn_key(moved.dn)[1:] == dn_key(demo.layout.users_dn(destination.dn))
        assert set(moved.services) == set(before.services)
        plans = {(pl.service, pl.name) for pl in moved.plans}
        assert plans == ({("exchange", "Premium 50 GB")} if "exchange" in before.services else set())
    assert "Premium 50 GB" in {pl.name for pl in (await demo.customer(TO)).plans}


async def test_a_service_that_cannot_move_keeps_its_row_refused_whatever_plan_is_chosen(demo):
    """Noah Capek has Hosted CRM, which cannot be moved: choosing the Exchange plan clears
    the plan problem of every row, his stays refused with that reason, and he stays."""
    source_name = "Adventure Works Cycles"
    crm, basic, premium = ("noah.capek@adventure-works-cycles.example", "helene.rossi@adventure-works-cycles.example",
                           "mehmet.edwards5@adventure-works-cycles.example")
    noah = await demo.user(crm)
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await to_users(keys, source_name)
        await mark(keys, crm, basic, premium)
        await keys("m")
        await keys.type("northwind")
        await keys("enter")
        assert isinstance(app.screen, BulkServicesStep), shown(app)
        rows = services_table(app)
        assert rows["Hosted Exchange Basic 2 GB"][1] == "2"
        assert rows["Hosted Exchange Premium 50 GB"][1:] == ["1", "Premium 50 GB", "Premium 50 GB", "moves"]  # kept
        crm_row = next(row for name, row in rows.items() if name.startswith("Hosted CRM"))
        assert crm_row[-1] == "✗ cannot be moved"
        assert list(rows)[:2] == ["Hosted Exchange Basic 2 GB", "Hosted Exchange Premium 50 GB"]  # a service's plans together
        await keys("down", "down")  # on a service that cannot move, ←→ changes nothing
        await keys("right")
        assert services_table(app) == rows
        await keys("up", "up", "right", "enter")

        assert isinstance(app.screen, BulkRowsStep), shown(app)
        assert row_marks(app) == {crm: "✗", basic: "✓", premium: "✓"}
        problems = flat(app, "#bulk-problems-text")
        assert "Hosted CRM cannot be moved: deprovision it from noah.capek@adventure-works-cycles.example first." in problems
        assert "has no Hosted Exchange plan" not in problems
        await keys("enter", "enter")
        assert isinstance(app.screen, BulkRunStep) and app.screen.query_one(BulkProgressPane).states == ["done", "done"]
        await keys("enter", "enter")
    stayed = await demo.user(noah.dn)
    assert (stayed.upn, set(stayed.groups)) == (crm, set(noah.groups))
    moved = await demo.user(basic.replace("adventure-works-cycles", "northwind-traders"))
    assert [(pl.service, pl.name) for pl in moved.plans] == [("exchange", "Premium 50 GB")]


class SecondJob(Hold):
    """Holds the second job of the batch on step ``at``."""

    seen = 0

    async def __call__(self, index, step) -> None:
        if index == self.at:
            self.seen += 1
            if self.seen == 2:
                await super().__call__(index, step)


async def test_ctrl_c_mid_batch_keeps_the_moved_user_rolls_back_the_running_one_and_starts_no_other(demo):
    """Concurrency 1 from the configuration: the first user has moved, the second is held
    on a step when ctrl+c is confirmed, the third never starts."""
    config = dataclasses.replace(demo.config, console=dataclasses.replace(demo.config.console, bulk_concurrency=1))
    source = await demo.customer(FROM)
    upns = ("arjun.martin@fabrikam.example", "peter.thomas2@fabrikam.example", "francois.vanderberg2@fabrikam.example")
    users = [await demo.user(upn) for upn in upns]
    app = HeldApp(demo, config, hold=SecondJob(1))  # on its step 2, the account's move
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await to_users(keys, FROM)
        await mark(keys, *(u.upn for u in users))
        await keys("m")
        await keys.type("northwind")
        await keys("enter", "enter")
        assert isinstance(app.screen, BulkReviewStep) and "At most 1 at once" in shown(app)
        await pilot.press("enter")
        await asyncio.wait_for(app.hold.reached.wait(), timeout=60)
        run = app.screen
        assert isinstance(run, BulkRunStep)
        await until(pilot, lambda: run.pane.states == ["done", "running", "pending"])  # one at a time
        assert ("ctrl+c", "Cancel") in footer(app)
        await cancel_held(pilot, "Cancel the bulk move and roll back what is done?")
        assert run.pane.states == ["done", "rolled_back", "refused"]
        text = shown(app)
        assert "Cancelled: 1 of 3 users moved" in text and "rolled back" in text and "not run" in text
        log = "\n".join(str(line) for line in run.query_one("#progress-log").lines)
        assert f"rolling back: {CANCELLED}" in log and "step 2 undone" in log and "step 1 undone" in log
        await keys("enter")
        assert "Cancelled: moved 1 of 3 users" in shown(app)
    moved = await demo.user(upns[0].replace("fabrikam", "northwind-traders"))
    assert moved.dn != users[0].dn
    for user in users[1:]:
        after = await demo.user(user.dn)
        assert (after.upn, set(after.groups)) == (user.upn, set(user.groups))
    assert {u.dn for u in users[1:]} <= {u.dn for u in await demo.users(source)}


def test_the_bulk_concurrency_comes_from_the_configuration():
    raw = {"directory": {"urls": ["ldaps://dc1.example.net"], "base_dn": "DC=example,DC=net", "bind_user": "svc@example.net"}}
    assert parse(raw).console.bulk_concurrency == 4
    assert parse({**raw, "console": {"bulk_concurrency": 2}}).console.bulk_concurrency == 2
    for bad in (0, -1, "4", True):
        with pytest.raises(ConfigError, match="console.bulk_concurrency"):
            parse({**raw, "console": {"bulk_concurrency": bad}})


def test_snapshot_of_the_bulk_progress(snap_compare, monkeypatch):
    frozen(monkeypatch)
    app = QuickApp(open_demo, None)

    async def run_before(pilot) -> None:
        keys = Keys(pilot)
        await to_users(keys, FROM)
        app.config = dataclasses.replace(app.config, console=dataclasses.replace(app.config.console, bulk_concurrency=1))
        await mark(keys, CLEAN[0], REFUSED, CLEAN[1])
        await keys("m")
        await keys.type("northwind")
        await keys("enter", "enter", "enter", "enter")  # Ana Hall's plan left unchosen
        assert isinstance(app.screen, BulkRunStep)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
