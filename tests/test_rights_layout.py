"""Issue 13, the rights and layout part, on the real Samba DC: roles a copy may grant
(hole 3), every group of the source left by a move, customers at any depth, operator
groups named by DN, and only customers' user accounts taken as a USER (hole 7).

Each attack is made as an operator would make it and checked in the directory afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_asyncio

from core import plan as p
from core.config import ConfigError, load, parse
from core.copy import CopyRequest
from core.demo.seed import PLATFORM_GROUPS, PLATFORM_GROUPS_OU, SECOND_PLATFORM_ADMIN, SECOND_PLATFORM_OPERATORS, SECOND_PLATFORM_OU, SECOND_PLATFORM_TENANTS, STAFF_GROUP, STAFF_GROUP_CUSTOMER
from core.directory import connect
from core.escape import child_dn
from core.directory.layout import dn_key
from core.errors import PermissionDenied, TenantryError, UsageError
from core.model import Customer, Operator, Rights
from core.move import MoveRequest
from core.plan import Step
from core.rights import withheld_roles
from core.session import Session
from directory_fixtures import PASSWORD_ENV, write_dc_config
from move_fixtures import DESTINATION, make_user, remove_user

dc = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parent.parent
BASE = "DC=example,DC=net"
ORDER = ("Customer Administrator", "Service Administrator", "User Administrator", "Partial User Administrator")
PARTIAL = "Partial User Administrator"


def _password() -> str:
    return f"Pw-{secrets.token_hex(6)}-Zz9!"


# -- the role order, decided in core/ ---------------------------------------------------------

R1 = "OU=Reseller One,OU=Hosting,DC=x"
A = Customer("A", f"OU=A,{R1}", reseller="Reseller One", reseller_dn=R1)
B = Customer("B", "OU=B,OU=Hosting,DC=x")


def _operator(**rights) -> Operator:
    return Operator("Jane", "CN=Jane,OU=Users,OU=A,DC=x", "jane@x", Rights(**rights))


@pytest.mark.parametrize(
    ("rights", "customer", "withheld"),
    [
        ({"sp_admin": True}, A, set()),
        ({"reseller_dns": frozenset({R1.upper()})}, A, set()),
        ({"reseller_dns": frozenset({R1})}, B, {*ORDER, "Billing Contact"}),  # outside their reseller: no rank at all
        ({"customer_roles": frozenset({(A.dn.upper(), "user administrator")})}, A,
         {"Customer Administrator", "Service Administrator", "User Administrator", "Billing Contact"}),
        ({"customer_roles": frozenset({(A.dn, "Service Administrator"), (A.dn, "User Administrator")})}, A,
         {"Customer Administrator", "Service Administrator", "Billing Contact"}),
        ({"customer_roles": frozenset({(B.dn, "Customer Administrator")})}, A, {*ORDER, "Billing Contact"}),  # another customer's role
        ({}, A, {*ORDER, "Billing Contact"}),
    ],
)
def test_roles_an_operator_may_grant(rights, customer, withheld):
    found = withheld_roles(_operator(**rights), customer, [*ORDER, "Billing Contact"], ORDER)
    assert set(found) == withheld
    assert all(reason.endswith(".") and "\n" not in reason for reason in found.values())


# -- the configuration: values that can never match are refused at load --------------------------

def _config(**layout):
    return parse({"directory": {"urls": ["ldaps://dc"], "base_dn": BASE, "bind_user": "svc"}, "layout": layout})


def test_layout_values_that_can_match_are_accepted():
    config = _config(users_ou="OU=Mailboxes,OU=People", sp_admins_group=f"CN=Ops,OU=Staff,{BASE}",
                     readonly_group="CN=Viewers", role_order=["Owner", "Helper"], outside_groups="leave")
    assert config.layout.role_order == ("Owner", "Helper") and config.layout.outside_groups == "leave"
    assert _config().layout.role_order == ORDER and _config().layout.outside_groups == "keep"


@pytest.mark.parametrize(
    ("layout", "says"),
    [
        ({"sp_admins_group": "CN=Ops,OU=Staff,DC=other,DC=org"}, "layout.sp_admins_group is outside directory.base_dn"),
        ({"readonly_group": "CN=Viewers,DC=example,DC=com"}, "layout.readonly_group is outside directory.base_dn"),
        ({"sp_admins_group": BASE}, "layout.sp_admins_group is the domain root"),
        ({"sp_admins_group": "not a dn"}, "layout.sp_admins_group must be a DN"),
        ({"users_ou": f"OU=Users,{BASE}"}, "layout.users_ou must be relative"),
        ({"roles_ou": "OU=Users"}, "layout.roles_ou is the same OU as users_ou"),
        ({"reseller_admins_group": "CN=Admins,OU=Groups"}, "layout.reseller_admins_group must be one RDN"),
        ({"role_order": ["Owner", "owner"]}, "layout.role_order names a role twice"),
        ({"role_order": ["Owner", 3]}, "layout.role_order must be a list of role names"),
        ({"outside_groups": "drop"}, "layout.outside_groups must be one of keep, leave"),
    ],
)
def test_layout_values_that_can_never_match_are_refused_in_one_sentence(layout, says):
    with pytest.raises(ConfigError) as error:
        _config(**layout)
    message = str(error.value)
    assert says in message and message.count("\n") == 0 and message.endswith(".")


@pytest.mark.parametrize("hosting_ou", [f"OU=Hosting,{BASE}", "Hosting"])
def test_a_hosting_ou_that_can_never_match_is_refused(hosting_ou):
    with pytest.raises(ConfigError, match="directory.hosting_ou must be a DN relative to directory.base_dn"):
        parse({"directory": {"urls": ["ldaps://dc"], "base_dn": BASE, "bind_user": "svc", "hosting_ou": hosting_ou}})


# -- helpers on the DC -------------------------------------------------------------------------

@pytest.fixture(scope="session")
def platform_admin(samba_dc) -> tuple[str, str]:
    """The second tree's SP administrator (not a seed operator): its UPN and a password set now."""
    password = _password()
    admin = samba_dc.connect()
    try:
        admin.extend.microsoft.modify_password(f"CN={SECOND_PLATFORM_ADMIN},OU=Staff,{BASE}", password)
    finally:
        admin.unbind()
    return f"{SECOND_PLATFORM_ADMIN}@example.net", password


@pytest.fixture
def credentials(samba_dc, platform_admin):
    def of(operator: str) -> tuple[str, str]:
        if operator == SECOND_PLATFORM_ADMIN:
            return platform_admin
        return samba_dc.seed.operator(operator).upn, samba_dc.operator_passwords[operator]
    return of


@pytest_asyncio.fixture(loop_scope="session")
async def sessions(samba_dc, credentials, tmp_path):
    """``open(extra=…, operator=…)``: a session on the test DC with that config, closed afterwards."""
    opened: list[Session] = []

    async def open_session(extra: str = "", operator: str = "sp-admin", tenants: str | None = None) -> Session:
        upn, password = credentials(operator)
        path = write_dc_config(samba_dc, tmp_path / f"{operator}-{len(opened)}.toml", user=upn, extra=extra, tenants=tenants)
        directory = await connect(load(path), password)
        session = await Session.open(directory, state=tmp_path / f"state-{len(opened)}")
        opened.append(session)
        return session

    yield open_session
    for session in opened:
        await session.close()


def _cli(samba_dc, tmp_path: Path, operator: str, extra: str = ""):
    upn, password = samba_dc.seed.operator(operator).upn, samba_dc.operator_passwords[operator]
    config = write_dc_config(samba_dc, tmp_path / f"cli-{operator}.toml", user=upn, extra=extra)
    env = {**os.environ, PASSWORD_ENV: password, "TENANTRY_STATE_DIR": str(tmp_path / "cli-state"),
           "PYTHONPATH": str(ROOT)}

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli", *args, "--config", str(config)], input=stdin,
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=180)

    return run


async def _members(directory, group_dn: str) -> set[tuple]:
    return {dn_key(m) for m in (await directory.values(group_dn, ["member"]))["member"]}


async def _groups_of(directory, dn: str) -> set[tuple]:
    return {dn_key(g) for g in (await directory.values(dn, ["memberOf"]))["memberOf"]}


# -- hole 3: privilege escalation by copy ----------------------------------------------------------

@dc
async def test_a_user_administrator_copying_a_customer_administrator_does_not_grant_that_role(
        samba_dc, dc_directory, sessions, tmp_path):
    account = samba_dc.seed.operator("user-admin")
    customer_name = account.rights.split(":", 1)[1]
    customer = await dc_directory.customer(customer_name)
    roles_dn = dc_directory.layout.roles_dn(customer.dn)
    partial = child_dn("CN", PARTIAL, roles_dn)
    await dc_directory.create_group(partial, f"{customer.code.lower()}-t-partial")
    template = await make_user(dc_directory, customer_name, services=(),
                               roles=("Customer Administrator", "User Administrator", PARTIAL))
    session = await sessions(operator="user-admin")
    assert session.operator.rights.user_admin_customer_dns and not session.operator.rights.sp_admin
    new_dn = None
    try:
        request = CopyRequest(template.upn, "Escalation", f"Probe{template.number}")
        plan = await session.copier().preflight(session.operator, request, _password())
        assert plan.ok, plan.problems
        new_dn = plan.users[0].dn_after
        joined = {dn_key(s.target) for s in plan.steps if s.action == p.ADD_MEMBER}
        ca, ua = child_dn("CN", "Customer Administrator", roles_dn), child_dn("CN", "User Administrator", roles_dn)
        assert dn_key(partial) in joined and not {dn_key(ca), dn_key(ua)} & joined
        assert {dn_key(x.target): x.action for x in plan.left_out} == {dn_key(ca): p.NOT_GRANTED, dn_key(ua): p.NOT_GRANTED}
        assert all("may not grant" in x.reason for x in plan.left_out)

        # the same plan with the role slipped back in is refused by the executor, nothing written
        tampered = dataclasses.replace(plan, steps=(*plan.steps[:-1], Step(plan.steps[0].user, p.ADD_MEMBER, ca, None, new_dn), plan.steps[-1]))
        with pytest.raises(PermissionDenied, match="may not grant Customer Administrator"):
            [e async for e in session.executor().run(tampered, session.operator, secrets={"password": _password()})]
        assert not await dc_directory.exists(new_dn)

        events = [e async for e in session.executor().run(plan, session.operator, secrets={"password": _password()})]
        assert events[-1].status == "done", [e.message for e in events]
        copied = await dc_directory.user(new_dn)
        assert copied.roles == (PARTIAL,)
        assert dn_key(new_dn) not in await _members(dc_directory, ca) | await _members(dc_directory, ua)
        assert dn_key(template.dn) in await _members(dc_directory, ca)  # the template keeps its own

        # the command line's dry run says what is left out, in --json and in text
        cli = _cli(samba_dc, tmp_path, "user-admin")
        dry = cli("copy", template.upn, "--first", "Escalation", "--last", f"Again{template.number}", "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        out = json.loads(dry.stdout)
        assert out["status"] == "planned"
        assert {(x["action"], dn_key(x["target"])) for x in out["left_out"]} == {(p.NOT_GRANTED, dn_key(ca)), (p.NOT_GRANTED, dn_key(ua))}
        assert not any(dn_key(s["target"]) in (dn_key(ca), dn_key(ua)) for s in out["plan"])
        text = cli("copy", template.upn, "--first", "Escalation", "--last", f"Again{template.number}", "--dry-run")
        assert text.returncode == 0 and "left out: not_granted CN=Customer Administrator" in text.stdout, text.stdout
    finally:
        if new_dn and await dc_directory.exists(new_dn):
            await dc_directory.delete(new_dn)
        await remove_user(dc_directory, template)
        await dc_directory.delete(partial)


@dc
async def test_a_group_nested_into_a_role_the_operator_may_not_grant_is_not_copied_either(dc_directory, sessions):
    customer = await dc_directory.customer("Fabrikam")
    ca = child_dn("CN", "Customer Administrator", dc_directory.layout.roles_dn(customer.dn))
    escalators = child_dn("CN", "Escalators", customer.dn)  # a security group directly below the customer's OU
    await dc_directory.create_group(escalators, f"{customer.code.lower()}-t-escalators")
    template = await make_user(dc_directory, "Fabrikam", services=(), roles=())
    session = await sessions(operator="user-admin")
    new_dn = None
    try:
        await dc_directory.add_member(ca, escalators)
        await dc_directory.add_member(escalators, template.dn)
        before = (await _members(dc_directory, ca), await _members(dc_directory, escalators))
        plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, "Nested", f"Probe{template.number}"), _password())
        assert plan.ok, plan.problems
        new_dn = plan.users[0].dn_after
        assert not any(dn_key(s.target) == dn_key(escalators) for s in plan.steps)
        [left] = plan.left_out
        assert dn_key(left.target) == dn_key(escalators) and "is a member of the role Customer Administrator" in left.reason
        tampered = dataclasses.replace(plan, steps=(*plan.steps[:-1], Step(plan.steps[0].user, p.ADD_MEMBER, escalators, None, new_dn), plan.steps[-1]))
        with pytest.raises(PermissionDenied, match="Escalators is a member of the role Customer Administrator"):
            [e async for e in session.executor().run(tampered, session.operator, secrets={"password": _password()})]
        assert not await dc_directory.exists(new_dn)
        assert (await _members(dc_directory, ca), await _members(dc_directory, escalators)) == before
    finally:
        if new_dn and await dc_directory.exists(new_dn):
            await dc_directory.delete(new_dn)
        await remove_user(dc_directory, template)
        await dc_directory.delete(escalators)


@dc
async def test_a_reseller_administrator_copies_every_role(samba_dc, dc_directory, sessions):
    template = await make_user(dc_directory, services=(), roles=("Customer Administrator",))
    reseller = next(o.name for o in samba_dc.seed.operators if o.rights == f"reseller_admin:{template.source.reseller}")
    session = await sessions(operator=reseller)
    plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, "Reseller", f"Copy{template.number}"), _password())
    try:
        assert plan.ok and plan.left_out == ()
        assert any(s.action == p.ADD_MEMBER and s.target.startswith("CN=Customer Administrator,") for s in plan.steps)
    finally:
        await remove_user(dc_directory, template)


# -- a move leaves every group of the source customer -----------------------------------------------

async def _staff_and_platform_groups(directory):
    source = await directory.customer(STAFF_GROUP_CUSTOMER)
    staff = child_dn("CN", STAFF_GROUP, source.dn)
    newsletter = f"CN={PLATFORM_GROUPS[0]},{PLATFORM_GROUPS_OU},OU=Hosting,{BASE}"
    reseller_news = child_dn("CN", PLATFORM_GROUPS[1], source.reseller_dn)
    return staff, newsletter, reseller_news


@dc
async def test_a_moved_user_leaves_every_group_of_the_source_and_keeps_platform_ones(dc_directory, sessions):
    session = await sessions()
    d = session.directory
    staff, newsletter, reseller_news = await _staff_and_platform_groups(d)
    user = await make_user(d, STAFF_GROUP_CUSTOMER, services=())
    moved_dn = child_dn("CN", user.cn, d.layout.users_dn(user.destination.dn))
    try:
        for group in (staff, newsletter, reseller_news):
            await d.add_member(group, user.dn)
        plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
        assert plan.ok, plan.problems
        assert dn_key(plan.users[0].dn_after) == dn_key(moved_dn)
        left = {dn_key(s.target) for s in plan.steps if s.action == p.REMOVE_MEMBER}
        assert dn_key(staff) in left and not {dn_key(newsletter), dn_key(reseller_news)} & left
        events = [e async for e in session.executor().run(plan, session.operator)]
        assert events[-1].status == "done", [e.message for e in events]
        moved = await d.user(plan.users[0].dn_after)
        groups = await _groups_of(d, moved.dn)
        assert dn_key(staff) not in groups and {dn_key(newsletter), dn_key(reseller_news)} <= groups
        source_key = dn_key(user.source.dn)
        assert not [g for g in groups if g[-len(source_key):] == source_key]
    finally:
        for group in (newsletter, reseller_news):
            await d.remove_member(group, moved_dn)
            await d.remove_member(group, user.dn)
        await remove_user(d, user)


@dc
async def test_with_outside_groups_leave_platform_groups_are_left_too_and_undo_restores_them(sessions):
    session = await sessions(extra='[layout]\noutside_groups = "leave"\n')
    d = session.directory
    staff, newsletter, reseller_news = await _staff_and_platform_groups(d)
    user = await make_user(d, STAFF_GROUP_CUSTOMER, services=())
    groups = (staff, newsletter, reseller_news)
    try:
        for group in groups:
            await d.add_member(group, user.dn)
        before = {g: await _members(d, g) for g in groups}
        before_user = await _groups_of(d, user.dn)
        plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
        assert plan.ok, plan.problems
        left = {dn_key(s.target) for s in plan.steps if s.action == p.REMOVE_MEMBER}
        assert {dn_key(g) for g in groups} <= left
        last = len(plan.steps) - 1

        async def fail(index, step):
            if index == last:
                raise TenantryError("injected failure at the last step")

        events = [e async for e in session.executor(before_step=fail).run(plan, session.operator)]
        assert events[-1].status == "rolled_back", [e.message for e in events]
        assert {g: await _members(d, g) for g in groups} == before
        assert await _groups_of(d, user.dn) == before_user

        plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))  # the undo wrote
        events = [e async for e in session.executor().run(plan, session.operator)]
        assert events[-1].status == "done", [e.message for e in events]
        assert not {dn_key(g) for g in groups} & await _groups_of(d, plan.users[0].dn_after)
    finally:
        await remove_user(d, user)


@dc
async def test_with_outside_groups_keep_the_executor_refuses_leaving_a_platform_group(sessions):
    session = await sessions()
    d = session.directory
    _staff, newsletter, _news = await _staff_and_platform_groups(d)
    user = await make_user(d, STAFF_GROUP_CUSTOMER, services=())
    try:
        await d.add_member(newsletter, user.dn)
        plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
        assert plan.ok, plan.problems
        new_dn = plan.users[0].dn_after
        tampered = dataclasses.replace(plan, steps=(*plan.steps, Step(plan.steps[0].user, p.REMOVE_MEMBER, newsletter, new_dn)))
        with pytest.raises(PermissionDenied, match="outside the customers of this job"):
            [e async for e in session.executor().run(tampered, session.operator)]
        assert dn_key(user.dn) in await _members(d, newsletter) and await d.exists(user.dn)
    finally:
        await d.remove_member(newsletter, user.dn)
        await remove_user(d, user)


# -- a second hosting tree: users two levels down, operators named by full DN -------------------

def _second_platform(sp_admins_group: str | None = f"CN={SECOND_PLATFORM_OPERATORS},OU=Staff,{BASE}") -> str:
    return (
        'hosting_ou = "OU=Second Platform,OU=Hosting"\n[layout]\ncustomer_marker = "tenant"\n'
        'users_ou = "OU=Mailboxes,OU=People"\n'
        + (f'sp_admins_group = "{sp_admins_group}"\n' if sp_admins_group else "")
    )


def _second_platform_tenants() -> str:
    """The SP's [tenants] map of the second tree (its customers are below its own hosting OU)."""
    return "".join(
        f'[tenants."OU={name},{SECOND_PLATFORM_OU},OU=Hosting,{BASE}"]\ncode = "{code}"\ndomains = ["{domain}"]\n'
        for name, domain, code in SECOND_PLATFORM_TENANTS
    )


@dc
async def test_two_level_users_ou_lists_services_and_moves_between_tenants(sessions):
    session = await sessions(extra=_second_platform(), operator=SECOND_PLATFORM_ADMIN, tenants=_second_platform_tenants())
    d = session.directory
    assert session.operator.rights.sp_admin  # named by a DN outside the hosting OU
    one, two = [await d.customer(name) for name, _domain, _code in SECOND_PLATFORM_TENANTS]
    assert [c.name for c in await d.customers()] == ["Tenant One", "Tenant Two"]
    anna = next(u for u in await d.users(one) if u.cn == "Anna People")
    assert anna.services == ("exchange",) and dn_key(anna.customer_dn) == dn_key(one.dn)

    dn = child_dn("CN", "Depth Mover", d.layout.users_dn(one.dn))
    upn = "depth.mover@tenant-one.example"
    await d.add_user(dn, {"cn": "Depth Mover", "sAMAccountName": "depth.mover.t1", "userPrincipalName": upn,
                          "givenName": "Depth", "sn": "Mover", "userAccountControl": "514"})
    moved_dn = child_dn("CN", "Depth Mover", d.layout.users_dn(two.dn))
    try:
        await d.add_member(child_dn("CN", "Customer Administrator", d.layout.roles_dn(one.dn)), dn)
        user = await d.user(upn)
        assert dn_key(user.customer_dn) == dn_key(one.dn) and user.roles == ("Customer Administrator",)
        plan = await session.planner().preflight(session.operator, MoveRequest(upn, "Tenant Two"))
        assert plan.ok, plan.problems
        events = [e async for e in session.executor().run(plan, session.operator)]
        assert events[-1].status == "done", [e.message for e in events]
        moved = await d.user(moved_dn)
        assert moved.upn == "depth.mover@tenant-two.example"
        assert dn_key(moved.customer_dn) == dn_key(two.dn) and moved.roles == ("Customer Administrator",)
        assert await _groups_of(d, moved.dn) == {dn_key(child_dn("CN", "Customer Administrator", d.layout.roles_dn(two.dn)))}
    finally:
        for candidate in (dn, moved_dn):
            if await d.exists(candidate):
                await d.delete(candidate)


@dc
async def test_a_relative_sp_admins_group_keeps_its_meaning_and_a_missing_one_grants_nothing(sessions):
    session = await sessions(extra=_second_platform(None), operator=SECOND_PLATFORM_ADMIN, tenants=_second_platform_tenants())  # no such group below the second tree
    assert not session.operator.rights.sp_admin
    plan = await session.planner().preflight(session.operator, MoveRequest("anna.people@tenant-one.example", "Tenant Two"))
    assert [x.code for x in plan.problems][:1] == [p.NOT_ALLOWED]
    default = await sessions(operator=SECOND_PLATFORM_ADMIN)  # the relative default: the first tree's SP group
    assert not default.operator.rights.sp_admin
    assert (await sessions()).operator.rights.sp_admin  # sp-admin is in it (through Tier 2 Support)


# -- hole 7: a USER is a customer's user account, nothing else ----------------------------------

@dc
async def test_anything_but_a_customers_user_account_is_refused_as_a_user(samba_dc, samba_admin, dc_directory, sessions, tmp_path):
    session = await sessions()
    d = session.directory
    source = await d.customer(STAFF_GROUP_CUSTOMER)
    users_dn = d.layout.users_dn(source.dn)
    computer = child_dn("CN", "HOLE7PC", users_dn)
    contact = child_dn("CN", "Hole Seven Contact", users_dn)
    stray_ou = f"OU=Users,{source.reseller_dn}"  # an OU=Users below a reseller, not a customer
    stray = child_dn("CN", "Stray User", stray_ou)
    samba_admin.add(computer, ["top", "person", "organizationalPerson", "user", "computer"],
                    {"sAMAccountName": "HOLE7PC$", "userAccountControl": "4096"})
    samba_admin.add(contact, ["top", "person", "organizationalPerson", "contact"], {"displayName": "Hole Seven"})
    samba_admin.add(stray_ou, ["top", "organizationalUnit"])
    samba_admin.add(stray, ["top", "person", "organizationalPerson", "user"],
                    {"sAMAccountName": "stray.user", "userPrincipalName": "stray.user@example.net", "userAccountControl": "514"})
    sp_admin = samba_dc.seed.operator("sp-admin")
    role = child_dn("CN", "Customer Administrator", d.layout.roles_dn(source.dn))
    anna = f"CN=Anna People,OU=Mailboxes,OU=People,OU=Tenant One,OU=Second Platform,OU=Hosting,{BASE}"
    try:
        role_members = await _members(d, role)
        cases = {
            sp_admin.dn: "is not in a customer's OU=Users OU",
            role: "is a group, not a user account",
            computer: "is a computer, not a user account",
            "HOLE7PC$": "is a computer, not a user account",
            contact: "is a contact, not a user account",
            anna: "is not in a customer's OU=Users OU",
        }
        for identity, says in cases.items():
            with pytest.raises(UsageError) as error:
                await session.planner().preflight(session.operator, MoveRequest(identity, DESTINATION))
            assert says in str(error.value) and "\n" not in str(error.value), identity
        with pytest.raises(UsageError, match="is not a customer"):
            await session.planner().preflight(session.operator, MoveRequest(stray, DESTINATION))
        with pytest.raises(UsageError, match="is a group"):
            await session.copier().preflight(session.operator, CopyRequest(role, "Group", "Copy"), _password())

        cli = _cli(samba_dc, tmp_path, "sp-admin")
        single = cli("move", sp_admin.dn, "--to", DESTINATION, "--yes", "--json")
        assert single.returncode == 2 and single.stdout == ""
        assert single.stderr.count("\n") == 1 and "is not in a customer's OU=Users OU" in single.stderr, single.stderr
        valid = await make_user(d, STAFF_GROUP_CUSTOMER, services=())
        try:
            bulk = cli("move", role, valid.upn, "--to", DESTINATION, "--dry-run", "--json")
            rows = {row["user"]: row for row in json.loads(bulk.stdout)["rows"]}
            assert rows[role]["status"] == "refused"
            assert [x["code"] for x in rows[role]["problems"]] == [p.INVALID_VALUE]
            assert "is a group, not a user account" in rows[role]["problems"][0]["message"]
            assert rows[valid.upn]["status"] == "planned"
        finally:
            await remove_user(d, valid)
        assert await _members(d, role) == role_members
        assert await d.exists(sp_admin.dn) and await d.exists(role)
    finally:
        for dn in (computer, contact, stray, stray_ou):
            samba_admin.delete(dn)


@dc
async def test_reading_a_group_as_a_user_is_refused(dc_directory):
    """The console's user detail and its move and copy wizards read a user through this."""
    role = child_dn("CN", "Customer Administrator", dc_directory.layout.roles_dn((await dc_directory.customer(DESTINATION)).dn))
    with pytest.raises(UsageError, match="is a group, not a user account"):
        await dc_directory.user(role)


@dc
async def test_the_console_refuses_a_group_given_as_the_user_to_move(tmp_path):
    """However a group reached the console's move (a hand-made User, here), it says why in
    one sentence and opens no wizard (on the demo directory, the console's own)."""
    from console_keys import settle, until
    from core.demo.directory import open_demo
    from core.model import User
    from screens.customers import CustomersScreen
    from tui.app import TenantryApp

    directory = await open_demo()
    try:
        source = await directory.customer(STAFF_GROUP_CUSTOMER)
        role = child_dn("CN", "Customer Administrator", directory.layout.roles_dn(source.dn))
        before = await _members(directory, role)
        app = TenantryApp(directory, directory.config, state=tmp_path / "state")
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await settle(pilot)
            app.start_move(User(dn=role, cn="Customer Administrator", sam="", upn=None), source)
            await until(pilot, lambda: any("is a group, not a user account" in n.message for n in app._notifications),
                        "said the group is not a user account")
            await settle(pilot)
            messages = [n.message for n in app._notifications]
            assert any("is a group, not a user account" in m and "\n" not in m for m in messages), messages
            assert isinstance(app.screen, CustomersScreen)
        assert await _members(directory, role) == before
    finally:
        await directory.close()
