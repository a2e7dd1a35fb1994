"""Moving a user (PRODUCT §2), end to end through the core, on the demo and the real DC."""

from __future__ import annotations

import dataclasses

import pytest
import pytest_asyncio

from core import plan as p
from core.escape import child_dn, same_dn
from core.directory.layout import dn_key
from core.errors import PermissionDenied, TenantryError
from core.execute import Refused
from core.move import MoveRequest
from core.session import Session
from move_fixtures import DESTINATION, EXTRA_ROLE, OTHER_RESELLER, SOURCE, make_user, remove_user, snapshot

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest_asyncio.fixture(loop_scope="session")
async def session(directory, tmp_path):
    """A session on the demo directory and on the real DC (``directory`` is parametrised)."""
    session = await Session.open(directory, state=tmp_path)
    yield session
    session.journal.close()
    session.audit.close()


@pytest_asyncio.fixture(loop_scope="session")
async def mover(session):
    user = await make_user(session.directory)
    yield user
    await remove_user(session.directory, user)


async def run(session, plan, **kwargs):
    events = [e async for e in session.executor(**kwargs).run(plan, session.operator)]
    return events, events[-1].status


async def test_happy_path_moves_attributes_memberships_and_roles(session, mover):
    d = session.directory
    plan = await session.planner().preflight(session.operator, MoveRequest(mover.upn, DESTINATION))
    assert plan.ok, plan.problems
    events, status = await run(session, plan)
    assert status == "done"
    change = plan.users[0]
    moved = await d.user(change.upn_after)
    destination = await d.customer(DESTINATION)
    assert dn_key(moved.dn) == dn_key(child_dn("CN", mover.cn, d.layout.users_dn(destination.dn)))
    domain = destination.default_domain
    assert moved.upn == f"test.mover{mover.number}@{domain}"
    assert moved.email == f"test.mover{mover.number}@{domain}"
    assert moved.sip == f"sip:{moved.email}"
    # addresses in the source's domains left; the old legacyExchangeDN stays as X500; one primary
    assert [a for a in moved.proxy_addresses if a.startswith("SMTP:")] == [f"SMTP:{moved.email}"]
    assert not [a for a in moved.proxy_addresses if any(s in a for s in mover.source.domains)]
    assert f"X500:/o=Old/cn=Recipients/cn=oldmover{mover.number}" in moved.proxy_addresses
    assert any(a.startswith("X500:") and a.endswith(f"/cn=mover{mover.number}") for a in moved.proxy_addresses)
    assert moved.attribute("extensionAttribute1") == (destination.code,)
    assert moved.attribute("title") == ("Tester",)
    assert set(moved.services) == {"exchange", "ocs"}
    assert {pl.name for pl in moved.plans} == {"Premium 50 GB"}
    assert set(moved.roles) == {"Customer Administrator", EXTRA_ROLE}
    assert all(dn_key(g)[-len(dn_key(destination.dn)):] == dn_key(destination.dn) for g in moved.groups)
    assert await d.exists(child_dn("CN", EXTRA_ROLE, d.layout.roles_dn(destination.dn)))
    assert not await d.exists(mover.dn)
    audit = session.audit.entries()
    assert audit[0].result == "done" and audit[0].job == events[0].job


async def test_dry_run_writes_nothing(session, mover):
    before = await snapshot(session.directory, mover.source, mover.destination)
    plan = await session.planner().preflight(session.operator, MoveRequest(mover.upn, DESTINATION))
    assert plan.ok and plan.steps
    assert await snapshot(session.directory, mover.source, mover.destination) == before
    assert session.journal.jobs() == []


async def test_every_refusal_is_reported_at_once(session, mover):
    d = session.directory
    destination = await d.customer("Tailspin Toys")  # only OCS: no Exchange there
    # an unmovable service (SharePoint) the user holds
    sharepoint = child_dn("CN", "SharePoint", d.layout.services_dn(mover.source.dn))
    created = not await d.exists(sharepoint)
    if created:
        await d.create_group(sharepoint, f"{mover.source.code}-test-sp".lower())
    await d.add_member(sharepoint, mover.dn)
    try:
        plan = await session.planner().preflight(
            session.operator, MoveRequest(mover.upn, destination.name, upn="someone@not-owned.example", email="x@fabrikam.example"),
        )
    finally:
        await d.remove_member(sharepoint, mover.dn)
        if created:
            await d.delete(sharepoint)
    codes = [x.code for x in plan.problems]
    assert p.UNMOVABLE_SERVICE in codes and p.SERVICE_MISSING in codes and p.FOREIGN_DOMAIN in codes
    messages = " ".join(x.message for x in plan.problems)
    assert "SharePoint cannot be moved" in messages and "has no Hosted Exchange" in messages
    assert "someone@not-owned.example" in messages
    assert not plan.steps


async def test_same_customer_is_refused(session, mover):
    plan = await session.planner().preflight(session.operator, MoveRequest(mover.upn, SOURCE))
    assert [x.code for x in plan.problems] == [p.SAME_CUSTOMER]


async def test_every_kind_of_collision(session, mover):
    d = session.directory
    destination = await d.customer(DESTINATION)
    holder = next(u for u in await d.users(destination, limit=50) if u.email)
    # a user of the destination with the same CN blocks the move (the CN must be unique in the OU)
    twin = await make_user(d, DESTINATION, cn=mover.cn, destination_name=SOURCE, roles=())
    try:
        plan = await session.planner().preflight(session.operator, MoveRequest(mover.upn, DESTINATION, upn=holder.upn, email=holder.email))
        kinds = {x.message.split(" ")[1] for x in plan.problems if x.code == p.COLLISION}
        assert {"UPN", "email", "name"} <= kinds, plan.problems
        plan = await session.planner().preflight(session.operator, MoveRequest(mover.upn, DESTINATION, sam=holder.sam))
        assert any(x.code == p.COLLISION and x.message.startswith(f"The username {holder.sam} ") for x in plan.problems), plan.problems
        # an alias that stays with the user (it is in a destination domain) and is someone else's address
        mine = (await d.user(mover.dn)).proxy_addresses
        await d.modify(mover.dn, {"proxyAddresses": (list(mine), [*mine, f"smtp:{holder.email}"])})
        plan = await session.planner().preflight(session.operator, MoveRequest(mover.upn, DESTINATION))
        assert any(x.code == p.COLLISION and f"email address {holder.email} " in x.message for x in plan.problems), plan.problems
        sip_holder = next(u for u in await d.users(destination, limit=400) if u.sip)
        plan = await session.planner().preflight(
            session.operator, MoveRequest(mover.upn, DESTINATION, email=sip_holder.sip.removeprefix("sip:")))
        assert any(x.code == p.COLLISION and "SIP URI" in x.message for x in plan.problems), plan.problems
    finally:
        await remove_user(d, twin)


async def test_reseller_admin_cannot_move_across_resellers_even_calling_the_core(session, mover):
    d = session.directory
    reseller_admin = dataclasses.replace(
        session.operator, name="reseller-admin-1",
        rights=(await d.operator(next(o for o in _seed_operators() if o.name == "reseller-admin-1").upn)).rights,
    )
    plan = await session.planner().preflight(reseller_admin, MoveRequest(mover.upn, OTHER_RESELLER))
    assert any(x.code == p.NOT_ALLOWED and "Leading Spaces" in x.message for x in plan.problems)
    # a plan made by an SP administrator, run as the reseller administrator: the executor refuses
    allowed = await session.planner().preflight(session.operator, MoveRequest(mover.upn, OTHER_RESELLER))
    assert allowed.ok, allowed.problems
    before = await snapshot(d, mover.source)
    with pytest.raises(PermissionDenied):
        [e async for e in session.executor().run(allowed, reseller_admin)]
    assert await snapshot(d, mover.source) == before


async def test_a_failure_at_each_step_leaves_everything_as_before(session):
    d = session.directory
    probe = await make_user(d)
    try:
        plan = await session.planner().preflight(session.operator, MoveRequest(probe.upn, DESTINATION))
        count = len(plan.steps)
    finally:
        await remove_user(d, probe)
    assert count >= 8
    for failing in range(count):
        user = await make_user(d)
        try:
            before = await snapshot(d, user.source, user.destination)
            plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))

            async def fail(index, step, failing=failing):
                if index == failing:
                    raise TenantryError(f"injected failure at step {index + 1}")

            events, status = await run(session, plan, before_step=fail)
            assert status == "rolled_back", [e.message for e in events]
            assert [e.index for e in events if e.kind == "step_undone"] == list(range(failing - 1, -1, -1))
            assert await snapshot(d, user.source, user.destination) == before, f"step {failing + 1}"
        finally:
            await remove_user(d, user)


async def test_the_manager_moving_is_no_change_of_the_user_but_another_manager_is(session, mover):
    """The directory shows ``manager`` at the manager's current DN: the manager's own move
    (an earlier row of the same bulk move, say) rewrites it without anyone writing to the
    user, and the user's plan still runs; someone setting another manager stops it."""
    d = session.directory
    manager, other = await make_user(d, roles=()), await make_user(d, roles=())  # no role group to create
    try:
        await d.modify(mover.dn, {"manager": ([], [manager.dn])})
        plan = await session.planner().preflight(session.operator, MoveRequest(mover.upn, DESTINATION))
        await d.modify(mover.dn, {"manager": ([manager.dn], [other.dn])})
        with pytest.raises(Refused, match="changed since the plan"):
            [e async for e in session.executor().run(plan, session.operator)]
        assert await d.exists(mover.dn)
        await d.modify(mover.dn, {"manager": ([other.dn], [manager.dn])})

        plan = await session.planner().preflight(session.operator, MoveRequest(mover.upn, DESTINATION))
        manager_plan = await session.planner().preflight(session.operator, MoveRequest(manager.upn, DESTINATION))
        assert (await run(session, manager_plan))[1] == "done"
        moved_manager = manager_plan.users[0].dn_after
        assert same_dn((await d.values(mover.dn, ["manager"]))["manager"][0], moved_manager)  # rewritten by the DC
        events, status = await run(session, plan)
        assert status == "done", [e.message for e in events]
        moved = await d.user(plan.users[0].dn_after)
        assert same_dn(moved.dn, plan.users[0].dn_after) and moved.customer_dn == mover.destination.dn
        assert same_dn((await d.values(moved.dn, ["manager"]))["manager"][0], moved_manager)
    finally:
        for user in (manager, other):
            await remove_user(d, user)


async def test_a_change_between_plan_and_run_stops_the_move(session, mover):
    d = session.directory
    plan = await session.planner().preflight(session.operator, MoveRequest(mover.upn, DESTINATION))
    await d.modify(mover.dn, {"title": (["Tester"], ["Promoted"])})
    with pytest.raises(Refused, match="changed since the plan"):
        [e async for e in session.executor().run(plan, session.operator)]
    assert await d.exists(mover.dn)
    # a change after the run started: the compare-and-swap write stops it and it rolls back
    plan = await session.planner().preflight(session.operator, MoveRequest(mover.upn, DESTINATION))

    async def meddle(index, step):
        if index == 0:
            await d.modify(mover.dn, {"mail": ([mover.upn], [f"meddled@{mover.source.default_domain}"])})

    events, status = await run(session, plan, before_step=meddle)
    assert status == "rolled_back"
    assert "changed by someone else" in next(e.message for e in events if e.kind == "step_failed")
    assert (await d.user(mover.dn)).email == f"meddled@{mover.source.default_domain}"


def _seed_operators():
    from core.demo.seed import build_seed

    return build_seed().operators



async def test_a_move_makes_exactly_the_writes_its_plan_needs(session, mover, monkeypatch, capsys):
    from core.directory import ops

    plan = await session.planner().preflight(session.operator, MoveRequest(mover.upn, DESTINATION))
    counts = {"write": 0, "read": 0}
    for name, kind in (("add", "write"), ("modify", "write"), ("modify_dn", "write"), ("delete", "write"),
                       ("search_page", "read"), ("read", "read")):
        original = getattr(ops, name)

        def counted(*args, _original=original, _kind=kind, **kwargs):
            counts[_kind] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(ops, name, counted)
    events, status = await run(session, plan)
    assert status == "done"
    ldap_steps = [s for s in plan.steps if s.action != p.HTTP]
    assert counts["write"] == len(ldap_steps)
    with capsys.disabled():
        print(f"\n  move: {len(ldap_steps)} LDAP steps -> {counts['write']} writes, {counts['read']} reads while running")


async def test_a_manager_renamed_between_plan_and_run_is_no_change_another_manager_is(dc_directory, tmp_path):
    """The user's version reads its manager by objectGUID: the manager renamed after the
    plan (the DC rewrites the user's ``manager`` to the new name) lets the move run;
    another manager set meanwhile refuses it, and the first one set back lets it run."""
    from core.escape import parent_dn

    d = dc_directory
    session = await Session.open(d, state=tmp_path)
    mover = await make_user(d)
    boss = await make_user(d, services=(), roles=())
    other = await make_user(d, services=(), roles=())
    renamed = boss.dn
    try:
        await d.modify(mover.dn, {"manager": ([], [boss.dn])})
        plan = await session.planner().preflight(session.operator, MoveRequest(mover.upn, DESTINATION))
        assert plan.ok, plan.problems
        renamed = await d.move(boss.dn, parent_dn(boss.dn), f"{boss.cn} Renamed")
        assert (await d.values(mover.dn, ["manager"]))["manager"] == [renamed]
        assert (await d.user(mover.dn)).version == plan.users[0].version
        await d.modify(mover.dn, {"manager": ([renamed], [other.dn])})
        with pytest.raises(Refused, match="changed since the plan was made"):
            await run(session, plan)
        await d.modify(mover.dn, {"manager": ([other.dn], [renamed])})
        _events, status = await run(session, plan)
        assert status == "done"
    finally:
        session.journal.close()
        session.audit.close()
        await remove_user(d, mover)
        if await d.exists(renamed):
            await d.delete(renamed)
        await remove_user(d, other)
