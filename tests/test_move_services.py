"""A move with Exchange + OCS + BlackBerry + two roles on the real Samba DC and the
UEM-shaped provisioning server: every attribute, membership and HTTP call, and a real
failure at each step (LDAP or HTTP) undone to an identical directory and service state."""

from __future__ import annotations

import pytest
import pytest_asyncio

from core import plan as p
from core.config import load
from core.directory import connect
from core.errors import TenantryError
from core.move import MoveRequest
from core.session import Session
from directory_fixtures import write_dc_config
from move_fixtures import DESTINATION, EXTRA_ROLE, make_user, remove_user, snapshot

pytestmark = pytest.mark.asyncio(loop_scope="session")
TOKEN_ENV = "TENANTRY_TEST_UEM_TOKEN"
SERVICES = ("exchange", "ocs", "blackberry")


def services_config(provisioning_server) -> str:
    """The [services] of a DC config whose HTTP services are the loopback server."""
    return "".join(
        f'\n[services.{key}]\ndisplay_name = "{name}"\nadapter = "{adapter}"\n{extra}'
        for key, name, adapter, extra in (
            ("exchange", "Hosted Exchange", "exchange",
             f'plans = ["Basic 2 GB", "Premium 50 GB"]\nurl = "{provisioning_server.url}/provisioning"\ntoken_env = "{TOKEN_ENV}"\n'
             'timeout = 1\nbackoff = 0.01\nmove_path = "/users/{upn}"\n'),
            ("ocs", "Office Communications Server", "ocs", ""),
            ("blackberry", "BlackBerry", "blackberry",
             f'plans = ["Standard", "Enterprise"]\nurl = "{provisioning_server.url}"\ntoken_env = "{TOKEN_ENV}"\ntimeout = 1\nbackoff = 0.01\n'),
            ("sharepoint", "SharePoint", "group", "movable = false\n"),
            ("crm", "Hosted CRM", "http", f'movable = false\nurl = "{provisioning_server.url}/provisioning"\ntoken_env = "{TOKEN_ENV}"\n'),
        )
    )


@pytest_asyncio.fixture(loop_scope="session")
async def session(samba_dc, sp_password, provisioning_server, monkeypatch, tmp_path):
    provisioning_server.reset()
    monkeypatch.setenv(TOKEN_ENV, provisioning_server.token)
    config = load(write_dc_config(samba_dc, tmp_path / "dc.toml", extra=services_config(provisioning_server)))
    directory = await connect(config, sp_password)
    session = await Session.open(directory, state=tmp_path)
    yield session
    await session.close()


async def seeded_user(session, server):
    user = await make_user(session.directory, services=SERVICES)
    server.seed_tenant(
        user.source.code.lower(),
        users=[{"username": user.upn, "emailAddress": user.upn, "displayName": f"Test Mover {user.number}",
                "firstName": "Test", "lastName": f"Mover{user.number}"}],
        groups={"Standard": [user.upn], "Enterprise": []},
    )
    server.seed_tenant(user.destination.code.lower(), groups={"Standard": [], "Enterprise": []})
    server.seed_record(user.upn, customer=user.source.code, upn=user.upn, email=user.upn)  # the mail platform's mailbox
    return user


async def test_happy_path_with_exchange_ocs_blackberry_and_two_roles(session, provisioning_server):
    server, d = provisioning_server, session.directory
    user = await seeded_user(session, server)
    try:
        plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
        assert plan.ok, plan.problems
        http = [s for s in plan.steps if s.action == p.HTTP]
        assert [s.service for s in http] == ["exchange", "blackberry", "blackberry"]
        ldap_steps = [s for s in plan.steps if s.action != p.HTTP]
        # one modify, one move, add+remove for 3 services, 2 plan groups and 2 roles, one role group to create
        assert [s.action for s in ldap_steps].count(p.MODIFY) == 1
        assert [s.action for s in ldap_steps].count(p.CREATE_GROUP) == 1
        assert [s.action for s in ldap_steps].count(p.ADD_MEMBER) == 7 == [s.action for s in ldap_steps].count(p.REMOVE_MEMBER)
        server.calls.clear()
        events = [e async for e in session.executor().run(plan, session.operator)]
        assert events[-1].status == "done", [e.message for e in events]
        change = plan.users[0]
        moved = await d.user(change.upn_after)
        assert set(moved.services) == set(SERVICES)
        assert {(pl.service, pl.name) for pl in moved.plans} == {("exchange", "Premium 50 GB"), ("blackberry", "Standard")}
        assert set(moved.roles) == {"Customer Administrator", EXTRA_ROLE}
        assert moved.email == change.email_after and moved.sip == f"sip:{change.email_after}"
        # the BlackBerry side followed: a user in the destination tenant, on its plan's group, gone from the source
        destination_tenant, source_tenant = user.destination.code.lower(), user.source.code.lower()
        uem = server.users(destination_tenant)
        assert list(uem) == [change.upn_after]
        assert uem[change.upn_after]["emailAddress"] == change.email_after
        assert server.members(destination_tenant, "Standard") == [change.upn_after]
        assert server.users(source_tenant) == {}
        calls = [(c.method, c.path) for c in server.calls]
        assert ("PUT", f"/provisioning/users/{user.upn}") in calls  # the mailbox was re-homed on the mail platform
        assert ("POST", f"/{destination_tenant}/api/v1/users") in calls
        assert any(m == "DELETE" and path.startswith(f"/{source_tenant}/api/v1/users/") for m, path in calls)
    finally:
        await remove_user(d, user)


async def test_a_real_failure_at_each_step_leaves_directory_and_service_as_before(session, provisioning_server):
    server, d = provisioning_server, session.directory
    probe = await seeded_user(session, server)
    try:
        plan = await session.planner().preflight(session.operator, MoveRequest(probe.upn, DESTINATION))
        actions = [(s.action, (s.request or {}).get("op")) for s in plan.steps]
    finally:
        await remove_user(d, probe)
        server.reset()
    for failing, (action, op) in enumerate(actions):
        user = await seeded_user(session, server)
        try:
            before = (await snapshot(d, user.source, user.destination), server.snapshot())
            plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
            if action == p.HTTP and op is None:  # the mail platform answers 500
                server.fail_next("PUT", "/provisioning/users/*", "status:500", message="Injected fault")
                hook = None
            elif action == p.HTTP:  # the UEM service answers 500 to the step's write
                method, tenant = ("POST", user.destination) if op == "create_user" else ("DELETE", user.source)
                server.fail_next(method, f"/{tenant.code.lower()}/api/v1/users*", "status:500", message="Injected fault")
                hook = None
            else:  # the directory refuses the write (an LDAP error from the step's own call)
                async def hook(index, step, failing=failing):
                    if index == failing:
                        raise TenantryError(f"injected LDAP failure at step {index + 1}")
            events = [e async for e in session.executor(before_step=hook).run(plan, session.operator)]
            assert events[-1].status == "rolled_back", (failing, [e.message for e in events])
            failed = next(e for e in events if e.kind == "step_failed")
            assert failed.index == failing
            if action == p.HTTP:
                assert "Injected fault" in failed.message
            assert (await snapshot(d, user.source, user.destination), server.snapshot()) == before, f"step {failing + 1}: {action}"
        finally:
            await remove_user(d, user)
            server.reset()
