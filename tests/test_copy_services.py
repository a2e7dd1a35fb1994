"""A copy with Exchange (and its mail platform), OCS and BlackBerry on the real Samba DC
the mail platform's provisioning server and the customer's own UEM server: every attribute, membership and HTTP call, the
new user binding with its password, and a real failure at each step (LDAP or HTTP)
leaving no trace of the new account in the directory or the services."""

from __future__ import annotations

import pytest

from core import plan as p
from core.copy import CopyRequest
from core.errors import TenantryError
from move_fixtures import EXTRA_ROLE, remove_user, snapshot
from test_copy import bind_check, copy_names, new_password, no_trace, remove_copy
from move_fixtures import make_user
from test_move_services import SERVICES, session  # noqa: F401  (session: the fixture)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def seeded_user(session, server, uem):
    """A template with Exchange, OCS and BlackBerry (Standard), its user in its customer's UEM and its mailbox record."""
    user = await make_user(session.directory, services=SERVICES)
    uem.add_group("Enterprise")
    uem.add_user({"username": user.upn, "emailAddress": user.upn, "displayName": f"Test Mover {user.number}",
                  "firstName": "Test", "lastName": f"Mover{user.number}", "company": "Adventure Works Cycles", "title": "Tester"},
                 groups=("Standard",))
    server.seed_record(user.upn, customer=user.source.code, email=user.upn)  # the mail platform's mailbox
    return user


async def test_copy_with_exchange_ocs_and_blackberry_attribute_by_attribute(session, provisioning_server, uem_servers, request):
    server, d, uem = provisioning_server, session.directory, uem_servers[0]
    template = await seeded_user(session, server, uem)
    first, last = copy_names()
    password = new_password()
    copy_dn = None
    try:
        uem_before = uem.users()[template.upn]
        server.calls.clear()
        plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, first, last), password)
        assert plan.ok, plan.problems
        assert [(c.method) for c in server.calls if c.method != "GET"] == []  # preflight only reads
        http = [s for s in plan.steps if s.action == p.HTTP]
        assert [s.service for s in http] == ["exchange", "blackberry"]
        assert [s.action for s in plan.steps][-1] == p.MODIFY  # enabled after the services
        copy_dn = plan.users[0].dn_after
        events, status = await run(session, plan, password)
        assert status == "done", [e.message for e in events]

        customer = template.source
        new = await d.user(copy_dn)
        upn = f"copy.{last.lower()}@{customer.default_domain}"
        assert new.upn == upn and new.email == upn and new.enabled
        values = await d.values(copy_dn, [
            "userAccountControl", "mail", "proxyAddresses", "mailNickname", "legacyExchangeDN", "extensionAttribute1",
            "msRTCSIP-PrimaryUserAddress", "msRTCSIP-UserEnabled", "givenName", "sn", "displayName", "title",
            "sAMAccountName", "cn",
        ])
        assert values["userAccountControl"] == ["512"]
        assert values["mail"] == [upn] and values["proxyAddresses"] == [f"SMTP:{upn}"]
        assert values["mailNickname"] == [f"copy.{last.lower()}"]
        assert values["legacyExchangeDN"][0].startswith("/o=Example Hosting/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=copy.")
        assert values["extensionAttribute1"] == [customer.code]
        assert values["msRTCSIP-PrimaryUserAddress"] == [f"sip:{upn}"] and values["msRTCSIP-UserEnabled"] == ["TRUE"]
        assert (values["givenName"], values["sn"], values["displayName"], values["cn"]) == ([first], [last], [f"{first} {last}"], [f"{first} {last}"])
        assert values["title"] == ["Tester"]  # copied from the template
        assert set(new.services) == set(SERVICES)
        assert {(x.service, x.name) for x in new.plans} == {("exchange", "Premium 50 GB"), ("blackberry", "Standard")}
        assert set(new.roles) == {"Customer Administrator", EXTRA_ROLE}
        # the mail platform has a mailbox record for the new user
        assert server.backend.record(upn) == {"customer": customer.code, "upn": upn, "email": upn}
        assert ("POST", "/provisioning/users") in [(c.method, c.path) for c in server.calls]
        # BlackBerry: a new UEM user in the customer's tenant, in the plan's group; the template's untouched
        users = uem.users()
        assert set(users) == {template.upn, upn}
        assert users[upn]["emailAddress"] == upn and users[upn]["displayName"] == f"{first} {last}"
        assert (users[upn]["company"], users[upn]["title"]) == ("Adventure Works Cycles", "Tester")  # the template's organisation fields
        assert (users[upn]["firstName"], users[upn]["lastName"]) == (first, last)
        assert uem.snapshot()["users"][upn]["groups"] == ["Standard"]
        assert users[template.upn] == uem_before
        # the template is as it was
        assert (await d.user(template.dn)).version == plan.users[0].version
        bind_check(request, d, upn, password)
    finally:
        await remove_copy(d, copy_dn)
        await remove_user(d, template)
        server.reset()
        uem.reset()


async def test_a_uem_or_mail_platform_clash_is_found_in_preflight(session, provisioning_server, uem_servers):
    server, d, uem = provisioning_server, session.directory, uem_servers[0]
    template = await seeded_user(session, server, uem)
    first, last = copy_names()
    try:
        upn = f"copy.{last.lower()}@{template.source.default_domain}"
        uem.add_user({"username": upn, "emailAddress": "someone@else.example"})
        server.seed_record(upn, customer="X", email=upn)
        plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, first, last), new_password())
        messages = [x.message for x in plan.problems if x.code == p.COLLISION]
        assert any("BlackBerry tenant" in m and upn in m for m in messages), plan.problems
        assert any("Hosted Exchange already has a user" in m for m in messages), plan.problems
    finally:
        await remove_user(d, template)
        server.reset()
        uem.reset()


async def run(session, plan, password, **kwargs):
    events = [e async for e in session.executor(**kwargs).run(plan, session.operator, secrets={"password": password})]
    return events, events[-1].status


async def test_a_real_failure_at_each_step_leaves_no_trace(session, provisioning_server, uem_servers):
    server, d, uem = provisioning_server, session.directory, uem_servers[0]
    template = await seeded_user(session, server, uem)
    try:
        probe = await session.copier().preflight(session.operator, CopyRequest(template.upn, *copy_names()), None)
        actions = [(s.action, s.service) for s in probe.steps]
        assert len(actions) >= 10
        for failing, (action, service) in enumerate(actions):
            before = (await snapshot(d, template.source), server.snapshot(), uem.snapshot())
            plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, *copy_names()), new_password())
            assert plan.ok, plan.problems
            hook = None
            if action == p.HTTP and service == "exchange":  # the mail platform answers 500
                server.fail_next("POST", "/provisioning/users", "status:500", message="Injected fault")
            elif action == p.HTTP:  # UEM answers 500 to the create
                uem.fail_next("POST", f"/{uem.srp_id}/api/v1/users", "status:500", message="Injected fault")
            else:  # the directory refuses the step's write
                async def hook(index, step, failing=failing):
                    if index == failing:
                        raise TenantryError(f"injected LDAP failure at step {index + 1}")
            try:
                events, status = await run(session, plan, new_password(), before_step=hook)
                assert status == "rolled_back", (failing, [e.message for e in events])
                failed = next(e for e in events if e.kind == "step_failed")
                assert failed.index == failing
                if action == p.HTTP:
                    assert "Injected fault" in failed.message
                assert (await snapshot(d, template.source), server.snapshot(), uem.snapshot()) == before, f"step {failing + 1}: {action}"
                await no_trace(d, plan)
            finally:
                await remove_copy(d, plan.users[0].dn_after)
    finally:
        await remove_user(d, template)
        server.reset()
        uem.reset()


async def test_a_failure_after_the_services_removes_the_uem_user_and_the_mailbox(session, provisioning_server, uem_servers):
    """The last step (enable) fails after both services created their side: both are undone."""
    server, d, uem = provisioning_server, session.directory, uem_servers[0]
    template = await seeded_user(session, server, uem)
    try:
        before = (await snapshot(d, template.source), server.snapshot(), uem.snapshot())
        plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, *copy_names()), new_password())

        async def meddle(index, step):
            if index == len(plan.steps) - 1:  # someone enables the half-made account: the CAS write fails
                await d.modify(step.target, {"userAccountControl": (["514"], ["66050"])})

        events, status = await run(session, plan, new_password(), before_step=meddle)
        assert status == "rolled_back", [e.message for e in events]
        assert "changed by someone else" in next(e.message for e in events if e.kind == "step_failed")
        assert any(c.method == "DELETE" and c.path.startswith("/provisioning/users/") for c in server.calls)
        assert uem.calls("DELETE", f"/{uem.srp_id}/api/v1/users/*")
        assert (await snapshot(d, template.source), server.snapshot(), uem.snapshot()) == before
        await no_trace(d, plan)
    finally:
        await remove_user(d, template)
        server.reset()
        uem.reset()
