"""Copying a user into a new one (PRODUCT §3), through the core, on the demo and the real DC.

The template is a test user of SOURCE with Exchange, OCS, two roles and the common
attributes; the copies are named "Copy Tester<n>". Every test removes what it made.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
from pathlib import Path

import ldap3
import pytest
import pytest_asyncio

from core import plan as p
from core.config import ConfigError, parse
from core.copy import CopyPlanner, CopyRequest, phone_prefix
from core.demo.services import is_demo
from core.escape import filter_value
from core.directory.layout import dn_key
from core.errors import AuthenticationFailed, PermissionDenied, TenantryError
from core.execute import PasswordRequired
from core.model import Rights
from core.password import PasswordPolicy, generate_password, password_problems
from core.session import Session
from move_fixtures import EXTRA_ROLE, SOURCE, make_user, remove_user, snapshot

pytestmark = pytest.mark.asyncio(loop_scope="session")

_numbers = itertools.count(1)
PHONE = "+1 425 555 0142"


def new_password() -> str:
    """A password the domain's default policy accepts, holding no part of a copy's name."""
    return f"Pw-{secrets.token_hex(6)}-Zz9!"


def copy_names() -> tuple[str, str]:
    return "Copy", f"Tester{next(_numbers)}"


@pytest_asyncio.fixture(loop_scope="session")
async def session(directory, tmp_path):
    """A session on the demo directory and on the real DC (``directory`` is parametrised)."""
    session = await Session.open(directory, state=tmp_path)
    yield session
    session.journal.close()
    session.audit.close()


async def make_template(directory, services=("exchange", "ocs"), **kwargs):
    """A template user with the common attributes, identity-ish ones that must not travel, and a manager."""
    user = await make_user(directory, services=services, **kwargs)
    customer = await directory.customer(SOURCE)
    manager = next(u for u in await directory.users(customer, limit=20) if u.dn != user.dn)
    extra = {
        "department": "Research", "company": "Adventure Works Cycles", "physicalDeliveryOfficeName": "Building 7",
        "streetAddress": "1 Main Street", "l": "Redmond", "st": "WA", "postalCode": "98052", "c": "US", "co": "United States",
        "telephoneNumber": PHONE, "facsimileTelephoneNumber": "+1 425 555 0100", "manager": manager.dn,
        "homeDirectory": f"\\\\files\\home\\{user.sam}", "employeeID": f"E{user.number:05d}", "description": "The template",
        "mobile": "+1 206 555 0199",
    }
    await directory.modify(user.dn, {k: ([], [v]) for k, v in extra.items()})
    user.extra = extra
    return user


async def remove_copy(directory, dn: str | None) -> None:
    if dn and await directory.exists(dn):
        await directory.delete(dn)


async def run(session, plan, password, **kwargs):
    events = [e async for e in session.executor(**kwargs).run(plan, session.operator, secrets={"password": password})]
    return events, events[-1].status


async def no_trace(directory, plan) -> None:
    """Nothing holds the copy's name, UPN, username or address."""
    change = plan.users[0]
    account = next(s.after for s in plan.steps if s.action == p.ADD_USER) if plan.steps else {}
    assert not await directory.exists(change.dn_after)
    conflicts = await directory.conflicts(
        upn=change.upn_after, addresses=[change.email_after] if change.email_after else [],
        sam=(account.get("sAMAccountName") or [None])[0],
    )
    assert conflicts == []


def bind_check(request, directory, upn: str, password: str) -> None:
    """The new user can bind with the new password (on the DC; the demo checks passwords too)."""
    if is_demo(directory):
        from core.demo.directory import demo_connection

        server = directory.pool._slots[0].conn.server if hasattr(directory.pool, "_slots") else None
        assert server is not None
        conn = demo_connection(server, upn, password)
        conn.unbind()
        with pytest.raises(AuthenticationFailed):
            demo_connection(server, upn, password + "x")
        return
    samba_dc = request.getfixturevalue("samba_dc")
    conn = samba_dc.connect(upn, password)
    try:
        assert conn.bound  # and the account reads its own entry as itself
        assert conn.search(samba_dc.base_dn, f"(userPrincipalName={filter_value(upn)})", attributes=["cn"]) and len(conn.entries) == 1
    finally:
        conn.unbind()
    with pytest.raises(ldap3.core.exceptions.LDAPInvalidCredentialsResult):
        samba_dc.connect(upn, password + "x")


# -- the happy path -------------------------------------------------------------------------


async def test_copy_creates_an_enabled_user_with_copied_attributes_roles_and_services(session, request):
    d = session.directory
    template = await make_template(d)
    first, last = copy_names()
    password = new_password()
    copy_dn = None
    try:
        plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, first, last), password)
        assert plan.ok, plan.problems
        assert plan.kind == "copy" and plan.source == plan.destination == SOURCE
        actions = [s.action for s in plan.steps]
        # the safe order: created disabled, password, memberships, services, enabled last
        assert actions[:2] == [p.ADD_USER, p.SET_PASSWORD] and actions[-1] == p.MODIFY
        assert set(actions[2:-1]) == {p.ADD_MEMBER}
        assert plan.steps[0].after["userAccountControl"] == ["514"]
        assert plan.steps[-1].before == {"userAccountControl": ["514"]} and plan.steps[-1].after == {"userAccountControl": ["512"]}
        assert plan.steps[1].before is None and plan.steps[1].after is None  # no password in the plan
        copy_dn = plan.users[0].dn_after
        events, status = await run(session, plan, password)
        assert status == "done", [e.message for e in events]

        customer = await d.customer(SOURCE)
        domain = customer.default_domain
        new = await d.user(copy_dn)
        t = await d.user(template.dn)
        assert new.enabled and new.cn == f"{first} {last}" and new.display_name == f"{first} {last}"
        assert (new.first, new.last) == (first, last)
        assert new.upn == f"copy.{last.lower()}@{domain}" and new.email == new.upn
        assert new.sam == f"c{last.lower()}.{customer.code.lower()}"  # {f}{last} + the template's customer-code suffix
        assert new.proxy_addresses == (f"SMTP:{new.email}",)  # no alias, no X500 of the template
        assert new.attribute("mailNickname") == (f"copy.{last.lower()}",)
        (legacy,) = new.attribute("legacyExchangeDN")
        assert legacy != t.attribute("legacyExchangeDN")[0] and legacy.startswith(t.attribute("legacyExchangeDN")[0].rsplit("/cn=", 1)[0])
        assert new.attribute("extensionAttribute1") == (customer.code,)
        assert new.sip == f"sip:{new.email}" and new.attribute("msRTCSIP-UserEnabled") == ("TRUE",)
        # the configured common attributes travel; the phone number as its prefix
        for name in ("department", "company", "physicalDeliveryOfficeName", "streetAddress", "l", "st", "postalCode", "c", "co",
                     "facsimileTelephoneNumber", "title"):
            assert (await d.values(copy_dn, [name]))[name] == (await d.values(template.dn, [name]))[name], name
        values = await d.values(copy_dn, ["telephoneNumber", "manager", "homeDirectory", "employeeID", "description", "mobile"])
        assert values["telephoneNumber"] == ["+1 425 555"]
        assert [dn_key(v) for v in values["manager"]] == [dn_key(template.extra["manager"])]
        # identity and personal attributes do not
        assert values["homeDirectory"] == values["employeeID"] == values["description"] == values["mobile"] == []
        assert new.guid != t.guid
        # roles, services and plans as the template's
        assert set(new.roles) == set(t.roles) == {"Customer Administrator", EXTRA_ROLE}
        assert set(new.services) == set(t.services) == {"exchange", "ocs"}
        assert set(new.plans) == set(t.plans)
        bind_check(request, d, new.upn, password)
        audit = session.audit.entries()
        assert audit[0].action == "copy" and audit[0].result == "done" and list(audit[0].customers) == [SOURCE]
    finally:
        await remove_copy(d, copy_dn)
        await remove_user(d, template)


async def test_only_the_chosen_services_with_a_chosen_plan(session):
    d = session.directory
    template = await make_template(d)
    first, last = copy_names()
    copy_dn = None
    try:
        request = CopyRequest(template.upn, first, last, display_name=f"{last}, {first}", username=f"cp{last.lower()}",
                              services=("exchange",), plans={"exchange": "Basic 2 GB"})
        plan = await session.copier().preflight(session.operator, request, new_password())
        assert plan.ok, plan.problems
        copy_dn = plan.users[0].dn_after
        assert "msRTCSIP-PrimaryUserAddress" not in plan.steps[0].after
        events, status = await run(session, plan, new_password())
        assert status == "done"
        new = await d.user(copy_dn)
        assert new.cn == f"{last}, {first}" and new.sam == f"cp{last.lower()}"
        assert new.services == ("exchange",) and new.sip is None
        assert [(x.service, x.name) for x in new.plans] == [("exchange", "Basic 2 GB")]
    finally:
        await remove_copy(d, copy_dn)
        await remove_user(d, template)


async def test_the_configured_attribute_list_is_honoured(session):
    d = session.directory
    template = await make_template(d)
    first, last = copy_names()
    copy_dn = None
    try:
        mapping = dataclasses.replace(session.config.mapping, copy_attributes=("department", "l"), copy_phone_prefixes=())
        copier = CopyPlanner(dataclasses.replace(session.config, mapping=mapping), d, session.adapters)
        plan = await copier.preflight(session.operator, CopyRequest(template.upn, first, last, services=()), new_password())
        assert plan.ok, plan.problems
        copy_dn = plan.users[0].dn_after
        created = set(plan.steps[0].after)
        assert created == {"cn", "sAMAccountName", "userPrincipalName", "givenName", "sn", "displayName", "userAccountControl",
                           "department", "l"}
        _events, status = await run(session, plan, new_password())
        assert status == "done"
        values = await d.values(copy_dn, ["department", "l", "title", "company", "telephoneNumber", "mail", "proxyAddresses"])
        assert values["department"] == ["Research"] and values["l"] == ["Redmond"]
        assert values["title"] == values["company"] == values["telephoneNumber"] == values["mail"] == values["proxyAddresses"] == []
        new = await d.user(copy_dn)
        assert new.services == () and set(new.roles) == {"Customer Administrator", EXTRA_ROLE}
    finally:
        await remove_copy(d, copy_dn)
        await remove_user(d, template)


async def test_identity_attributes_can_never_be_configured_to_be_copied():
    base = {"directory": {"urls": ["ldaps://dc"], "base_dn": "DC=example,DC=net", "bind_user": "x@example.net"}}
    for attribute in ("homeDirectory", "userPrincipalName", "mail", "proxyAddresses", "objectSid", "objectGUID",
                      "unicodePwd", "sn", "displayName", "sAMAccountName", "MAIL"):
        with pytest.raises(ConfigError, match="identity attribute"):
            parse({**base, "mapping": {"copy_attributes": ["department", attribute]}})
    for attribute in ("memberOf", "userAccountControl", "objectClass"):
        with pytest.raises(ConfigError, match="sets itself"):
            parse({**base, "mapping": {"copy_attributes": [attribute]}})
    with pytest.raises(ConfigError, match="identity attribute"):
        parse({**base, "mapping": {"copy_phone_prefixes": ["mail"]}})
    with pytest.raises(ConfigError, match="not one"):
        parse({**base, "mapping": {"copy_attributes": ["de partment"]}})
    config = parse({**base, "mapping": {"copy_attributes": ["department"], "copy_phone_prefixes": ["mobile"]}})
    assert config.mapping.copy_attributes == ("department",) and config.mapping.copy_phone_prefixes == ("mobile",)


async def test_phone_prefix_and_password_rules():
    assert phone_prefix("+44 20 7946 0123") == "+44 20 7946"
    assert phone_prefix("+1-425-555-0100") == "+1-425-555"
    assert phone_prefix("4255550100") is None
    policy = PasswordPolicy(min_length=8, complex=True)
    ok = "Blue-Kettle-42"
    assert password_problems(ok, policy, sam="jdoe", display_name="Jane Doe") == []
    assert password_problems("short1A", policy)  # 7 < 8
    assert password_problems("alllowercase12", policy)  # two kinds only
    assert password_problems("xJDOE-9-abc", policy, sam="jdoe")  # the username, case-insensitively
    assert password_problems("Kettle-Jane-42", policy, sam="jd", display_name="Jane Doe")  # a part of the name
    assert password_problems("Ab1-Doe", PasswordPolicy(min_length=0, complex=False), display_name="Jane Doe")
    assert password_problems("Ab1-Do", PasswordPolicy(min_length=0, complex=False), display_name="Jane Do") == []  # "Do" < 3
    assert password_problems("Tab\tbed-42", policy)
    assert not any("Blue-Kettle-42" in m for m in password_problems("Blue-Kettle-42", policy, sam="kettle"))  # never quoted
    for _ in range(50):
        generated = generate_password(policy, sam="amuller", display_name="Anna Muller")
        assert len(generated) >= 20 and password_problems(generated, policy, sam="amuller", display_name="Anna Muller") == []


async def test_the_policy_is_read_from_the_domain(session):
    policy = await session.directory.password_policy()
    assert policy.min_length == 7 and policy.complex is True


# -- refusals ------------------------------------------------------------------------------


async def test_a_weak_password_is_refused_before_anything_is_written(session):
    d = session.directory
    template = await make_template(d)
    first, last = copy_names()
    try:
        before = await snapshot(d, template.source)
        for weak in ("Ab1!", "alllowercase", f"Xx9-{last.lower()}", f"Xx9-c{last.lower()}.{template.source.code.lower()}"):
            plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, first, last), weak)
            assert not plan.ok and {x.code for x in plan.problems} == {p.WEAK_PASSWORD}, plan.problems
            assert not plan.steps
            assert all(weak not in x.message for x in plan.problems)
        # a plan made without a password cannot run without one either
        plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, first, last))
        assert plan.ok
        with pytest.raises(PasswordRequired):
            [e async for e in session.executor().run(plan, session.operator)]
        assert await snapshot(d, template.source) == before
        assert session.journal.jobs() == []
        await no_trace(d, plan)
    finally:
        await remove_user(d, template)


async def set_min_password_length(request, directory, length: int) -> int:
    """Change the domain's minPwdLength (on the DC as Administrator); returns the old value."""
    old = (await directory.password_policy()).min_length
    base = directory.config.directory.base_dn
    if is_demo(directory):
        await directory.modify(base, {"minPwdLength": ([str(old)], [str(length)])})
    else:
        admin = request.getfixturevalue("samba_dc").connect()
        try:
            admin.modify(base, {"minPwdLength": [(ldap3.MODIFY_REPLACE, [str(length)])]})
        finally:
            admin.unbind()
    return old


async def test_a_password_the_directory_refuses_rolls_back_to_no_account(session, request):
    d = session.directory
    template = await make_template(d)
    first, last = copy_names()
    password = new_password()  # 19 characters: fine for the policy read at preflight
    old = None
    try:
        before = await snapshot(d, template.source)
        plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, first, last), password)
        assert plan.ok, plan.problems

        async def tighten(index, step):
            nonlocal old
            if step.action == p.SET_PASSWORD:  # the domain's policy changes under the job
                old = await set_min_password_length(request, d, 25)

        events, status = await run(session, plan, password, before_step=tighten)
        assert status == "rolled_back", [e.message for e in events]
        failed = next(e for e in events if e.kind == "step_failed")
        assert failed.step.action == p.SET_PASSWORD
        assert "refused the password" in failed.message and "password policy" in failed.message and password not in failed.message
        assert [e.step.action for e in events if e.kind == "step_undone"] == [p.ADD_USER]
        assert await snapshot(d, template.source) == before
        await no_trace(d, plan)
    finally:
        if old is not None:
            await set_min_password_length(request, d, old)
        await remove_user(d, template)
    assert (await d.password_policy()).min_length == 7


async def test_every_problem_at_once_collisions_domains_plans_and_services(session):
    d = session.directory
    template = await make_template(d)
    try:
        customer = await d.customer(SOURCE)
        holder = next(u for u in await d.users(customer, limit=200) if u.email and u.sip and u.cn != template.cn)
        first, last = holder.first or "X", holder.last or "Y"
        request = CopyRequest(
            template.upn, first, last, display_name=holder.cn, username=holder.sam, upn=holder.upn, email=holder.email,
            services=("exchange", "ocs", "blackberry"), plans={"exchange": "Gold 1 TB"},
        )
        plan = await session.copier().preflight(session.operator, request, new_password())
        messages = [x.message for x in plan.problems]
        kinds = {m.split(" ")[1] for m, x in zip(messages, plan.problems) if x.code == p.COLLISION}
        assert {"UPN", "email", "username", "name"} <= kinds, messages
        assert any("has no service blackberry" in m for m in messages)
        assert any(x.code == p.PLAN_MISSING and "Gold 1 TB" in x.message for x in plan.problems)
        assert not plan.steps
        plan = await session.copier().preflight(session.operator, CopyRequest(
            template.upn, "New", "Person", upn="new.person@not-owned.example", email="new.person@fabrikam.example",
            username="bad name*"), None)
        codes = [x.code for x in plan.problems]
        assert codes.count(p.FOREIGN_DOMAIN) == 3 and p.INVALID_VALUE in codes, plan.problems  # UPN, email and the SIP URI made from it
        # a name in a script addresses cannot hold: the operator has to give a username and a UPN
        plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, "伟", "王"), None)
        messages = " ".join(x.message for x in plan.problems)
        assert "No username can be made" in messages and "has no name before the @" in messages, plan.problems
        # an OCS copy's SIP URI that someone else holds
        sip_holder = next(u for u in await d.users(customer, limit=400) if u.sip)
        plan = await session.copier().preflight(session.operator, CopyRequest(
            template.upn, "New", "Person", email=sip_holder.sip.removeprefix("sip:")), None)
        assert any(x.code == p.COLLISION and "SIP URI" in x.message for x in plan.problems), plan.problems
    finally:
        await remove_user(d, template)


async def test_rights_a_user_administrator_copies_only_inside_their_customer(session):
    d = session.directory
    template = await make_template(d)
    first, last = copy_names()
    copy_dn = None
    try:
        customer = await d.customer(SOURCE)
        other = await d.customer("Globex Corporation")
        own = dataclasses.replace(session.operator, name="ua", rights=Rights(user_admin_customer_dns=frozenset({customer.dn})))
        foreign = dataclasses.replace(session.operator, name="ub", rights=Rights(user_admin_customer_dns=frozenset({other.dn})))
        readonly = dataclasses.replace(session.operator, name="ro", rights=Rights(readonly=True))
        for operator in (foreign, readonly):
            plan = await session.copier().preflight(operator, CopyRequest(template.upn, first, last), new_password())
            assert [x.code for x in plan.problems] == [p.NOT_ALLOWED], plan.problems
        plan = await session.copier().preflight(own, CopyRequest(template.upn, first, last), new_password())
        assert plan.ok, plan.problems
        copy_dn = plan.users[0].dn_after
        before = await snapshot(d, template.source)
        with pytest.raises(PermissionDenied):  # the executor checks the rights again, whoever calls it
            [e async for e in session.executor().run(plan, foreign, secrets={"password": new_password()})]
        assert await snapshot(d, template.source) == before
        password = new_password()
        events = [e async for e in session.executor().run(plan, own, secrets={"password": password})]
        assert events[-1].status == "done"
    finally:
        await remove_copy(d, copy_dn)
        await remove_user(d, template)


# -- failures --------------------------------------------------------------------------------


async def test_a_failure_at_each_step_leaves_no_trace_of_the_new_account(session):
    d = session.directory
    template = await make_template(d)
    try:
        probe = await session.copier().preflight(session.operator, CopyRequest(template.upn, *copy_names()), None)
        count = len(probe.steps)
        assert count >= 8
        for failing in range(count):
            first, last = copy_names()
            before = await snapshot(d, template.source)
            plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, first, last), new_password())
            assert plan.ok, plan.problems

            async def fail(index, step, failing=failing):
                if index == failing:
                    raise TenantryError(f"injected failure at step {index + 1}")

            try:
                events, status = await run(session, plan, new_password(), before_step=fail)
                assert status == "rolled_back", [e.message for e in events]
                assert [e.index for e in events if e.kind == "step_undone"] == list(range(failing - 1, -1, -1))
                assert await snapshot(d, template.source) == before, f"step {failing + 1}"
                await no_trace(d, plan)
            finally:
                await remove_copy(d, plan.users[0].dn_after)
    finally:
        await remove_user(d, template)


class Crash(BaseException):
    """Stands for the process dying: nothing below catches it."""


async def test_a_crashed_copy_resumed_needs_the_password_again(session, request):
    d = session.directory
    template = await make_template(d)
    first, last = copy_names()
    copy_dn = None
    try:
        plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, first, last), None)
        copy_dn = plan.users[0].dn_after

        async def crash(index, step):
            if step.action == p.SET_PASSWORD:
                raise Crash()

        with pytest.raises(Crash):
            await run(session, plan, new_password(), before_step=crash)
        job = session.journal.jobs()[0]
        assert job.status.value == "running" and await d.exists(copy_dn)
        assert not (await d.user(copy_dn)).enabled
        with pytest.raises(PasswordRequired, match="never kept"):
            [e async for e in session.executor().resume(job.id, session.operator)]
        password = new_password()
        events = [e async for e in session.executor().resume(job.id, session.operator, secrets={"password": password})]
        assert events[-1].status == "done", [e.message for e in events]
        new = await d.user(copy_dn)
        assert new.enabled and set(new.services) == {"exchange", "ocs"}
        bind_check(request, d, new.upn, password)
    finally:
        await remove_copy(d, copy_dn)
        await remove_user(d, template)


async def test_a_crash_after_the_account_was_added_rolls_back_to_nothing(session):
    d = session.directory
    template = await make_template(d)
    try:
        before = await snapshot(d, template.source)
        plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, *copy_names()), None)
        perform = type(session.executor())._perform

        class Dying(type(session.executor())):
            async def _perform(self, job_id, step, *, resuming):
                result = await perform(self, job_id, step, resuming=resuming)
                if step.action == p.ADD_USER:
                    raise Crash()  # added, and the process died before journaling it
                return result

        executor = Dying(d, session.adapters, session.journal, session.audit)
        with pytest.raises(Crash):
            [e async for e in executor.run(plan, session.operator, secrets={"password": new_password()})]
        job = session.journal.jobs()[0]
        assert job.steps[0].state.value == "running" and job.steps[0].result is None
        events = [e async for e in session.executor().rollback(job.id, session.operator)]
        assert events[-1].status == "rolled_back", [e.message for e in events]
        assert await snapshot(d, template.source) == before
        await no_trace(d, plan)
    finally:
        await remove_user(d, template)


async def test_the_password_is_in_no_journal_or_audit_file(session, tmp_path):
    d = session.directory
    template = await make_template(d)
    passwords = [new_password() for _ in range(3)]
    dns = []
    try:
        for index, password in enumerate(passwords):
            plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, *copy_names()), password)
            dns.append(plan.users[0].dn_after)

            async def fail(i, step, index=index):
                if index == 1 and step.action == p.MODIFY:
                    raise TenantryError("injected")

            await run(session, plan, password, before_step=fail)
        weak = "Ab1"
        await session.copier().preflight(session.operator, CopyRequest(template.upn, *copy_names()), weak)
        files = [f for f in Path(tmp_path).rglob("*") if f.is_file()]
        assert any(f.name == "journal.sqlite3" for f in files) and any(f.name == "audit.sqlite3" for f in files)
        for file in files:
            data = file.read_bytes()
            for password in passwords:
                for encoding in ("utf-8", "utf-16-le"):
                    assert password.encode(encoding) not in data, file
        assert {j.status.value for j in session.journal.jobs()} == {"done", "rolled_back"}
    finally:
        for dn in dns:
            await remove_copy(d, dn)
        await remove_user(d, template)

