"""A move with Exchange + OCS + BlackBerry + two roles on the real Samba DC, the mail
platform's provisioning server and the two customers' own UEM servers (one process each):
every attribute, membership and HTTP call, and a real failure at each step (LDAP or HTTP)
undone to an identical directory and service state."""

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
from move_fixtures import DESTINATION, EXTRA_ROLE, SOURCE, make_user, remove_user, snapshot
from uem_server import tenant_tables

pytestmark = pytest.mark.asyncio(loop_scope="session")
TOKEN_ENV = "TENANTRY_TEST_UEM_TOKEN"
SERVICES = ("exchange", "ocs", "blackberry")


def services_config(provisioning_server) -> str:
    """The [services] of a DC config: the mail platform and CRM on the loopback provisioning
    server; BlackBerry's servers are each customer's own (the tenant map)."""
    return "".join(
        f'\n[services.{key}]\ndisplay_name = "{name}"\nadapter = "{adapter}"\n{extra}'
        for key, name, adapter, extra in (
            ("exchange", "Hosted Exchange", "exchange",
             f'plans = ["Basic 2 GB", "Premium 50 GB"]\nurl = "{provisioning_server.url}/provisioning"\ntoken_env = "{TOKEN_ENV}"\n'
             'timeout = 1\nbackoff = 0.01\nmove_path = "/users/{upn}"\n'),
            ("ocs", "Office Communications Server", "ocs", ""),
            ("blackberry", "BlackBerry", "blackberry",
             'plans = ["Standard", "Enterprise"]\ntimeout = 1\nbackoff = 0.01\n'),
            ("sharepoint", "SharePoint", "group", "movable = false\n"),
            ("crm", "Hosted CRM", "http", f'movable = false\nurl = "{provisioning_server.url}/provisioning"\ntoken_env = "{TOKEN_ENV}"\n'),
        )
    )


@pytest_asyncio.fixture(loop_scope="session")
async def session(samba_dc, sp_password, provisioning_server, uem_servers, monkeypatch, tmp_path):
    provisioning_server.reset()
    monkeypatch.setenv(TOKEN_ENV, provisioning_server.token)
    tables, environ = tenant_tables({SOURCE: uem_servers[0], DESTINATION: uem_servers[1]})
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    config = load(write_dc_config(samba_dc, tmp_path / "dc.toml", extra=services_config(provisioning_server), tenants=samba_dc.seed.tenants_toml(uem=tables)))
    directory = await connect(config, sp_password)
    session = await Session.open(directory, state=tmp_path)
    yield session
    await session.close()


async def seeded_user(session, server, uems):
    """A test user with its mailbox record, and its UEM user in the source's UEM (directory-linked,
    in the Standard group); the destination's UEM has the plan groups and knows the AD user."""
    user = await make_user(session.directory, services=SERVICES)
    source, destination = uems
    directory_id = f"AD:test-mover-{user.number}"
    for uem in uems:
        uem.add_directory_user(directory_id, username=user.upn)
        uem.add_group("Standard")
        uem.add_group("Enterprise")
    source.add_user({"username": user.upn, "emailAddress": user.upn, "displayName": f"Test Mover {user.number}",
                     "firstName": "Test", "lastName": f"Mover{user.number}", "directoryId": directory_id}, groups=("Standard",))
    server.seed_record(user.upn, customer=user.source.code, upn=user.upn, email=user.upn)  # the mail platform's mailbox
    return user


def services_state(server, uems) -> tuple:
    return server.snapshot(), uems[0].snapshot(), uems[1].snapshot()


async def test_happy_path_with_exchange_ocs_blackberry_and_two_roles(session, provisioning_server, uem_servers):
    server, d = provisioning_server, session.directory
    source_uem, destination_uem = uem_servers
    user = await seeded_user(session, server, uem_servers)
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
        # the BlackBerry side followed: the same directory-linked user in the destination's UEM, on
        # its plan's group, gone from the source's UEM; each UEM logged in to with its own admin
        uem = destination_uem.snapshot()["users"]
        assert list(uem) == [change.upn_after]
        assert uem[change.upn_after]["emailAddress"] == change.email_after
        assert uem[change.upn_after]["directoryId"] == f"AD:test-mover-{user.number}" and uem[change.upn_after]["directoryLinked"]
        assert uem[change.upn_after]["groups"] == ["Standard"]
        assert source_uem.snapshot()["users"] == {}
        assert ("PUT", f"/provisioning/users/{user.upn}") in [(c.method, c.path) for c in server.calls]  # the mailbox was re-homed
        for uem_server in uem_servers:
            (login,) = uem_server.calls("POST", f"/{uem_server.srp_id}/api/v1/util/authorization")
            assert f'"username": "{uem_server.admin}"' in login["body"]
        assert destination_uem.calls("POST", f"/{destination_uem.srp_id}/api/v1/users")
        assert source_uem.calls("DELETE", f"/{source_uem.srp_id}/api/v1/users/*")
    finally:
        await remove_user(d, user)


async def test_a_real_failure_at_each_step_leaves_directory_and_service_as_before(session, provisioning_server, uem_servers):
    server, d = provisioning_server, session.directory
    source_uem, destination_uem = uem_servers
    probe = await seeded_user(session, server, uem_servers)
    try:
        plan = await session.planner().preflight(session.operator, MoveRequest(probe.upn, DESTINATION))
        actions = [(s.action, (s.request or {}).get("op")) for s in plan.steps]
    finally:
        await remove_user(d, probe)
        reset(server, uem_servers)
    for failing, (action, op) in enumerate(actions):
        user = await seeded_user(session, server, uem_servers)
        try:
            before = (await snapshot(d, user.source, user.destination), services_state(server, uem_servers))
            plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
            if action == p.HTTP and op is None:  # the mail platform answers 500
                server.fail_next("PUT", "/provisioning/users/*", "status:500", message="Injected fault")
                hook = None
            elif action == p.HTTP:  # the customer's UEM answers 500 to the step's write
                uem, method = (destination_uem, "POST") if op == "create_user" else (source_uem, "DELETE")
                uem.fail_next(method, f"/{uem.srp_id}/api/v1/users*", "status:500", message="Injected fault")
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
            assert (await snapshot(d, user.source, user.destination), services_state(server, uem_servers)) == before, f"step {failing + 1}: {action}"
        finally:
            await remove_user(d, user)
            reset(server, uem_servers)


def reset(server, uems) -> None:
    server.reset()
    for uem in uems:
        uem.reset()
