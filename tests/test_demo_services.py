"""Demo mode's services: the HTTP-backed adapters answered in process, seeded like the directory.

A move of a user with Hosted Exchange, OCS and BlackBerry on the demo directory
re-homes the user's UEM account too; a BlackBerry failure rolls the directory back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import types
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from core.config import Config, DirectoryConfig
from core.demo.directory import open_demo
from core.demo.services import DemoServices, demo_adapters, demo_services
from core.journal import Journal
from core.move import MoveRequest
from core.services.blackberry import BlackBerryAdapter
from core.services.http import HttpAdapter
from core.session import Session

pytestmark = pytest.mark.asyncio(loop_scope="session")

ROOT = Path(__file__).resolve().parent.parent
SOURCE = "Adventure Works Cycles"  # Blue Yonder Reseller: exchange, ocs, blackberry, crm
DESTINATION = "Globex Corporation"  # Blue Yonder Reseller: every service
SERVICES = {"exchange", "ocs", "blackberry"}


@pytest_asyncio.fixture(loop_scope="session")
async def demo():
    """A fresh demo directory per test: a move changes it and its services."""
    directory = await open_demo()
    yield directory
    await directory.close()


async def open_session(directory, state: Path, **kwargs) -> Session:
    return await Session.open(directory, state=state, **kwargs)


async def close(session: Session) -> None:
    """Close what the session opened; the directory belongs to the ``demo`` fixture."""
    for adapter in session.adapters.values():
        await adapter.aclose()
    session.journal.close()
    session.audit.close()


async def movable_user(session: Session):
    """A user of SOURCE with exactly Exchange, OCS and BlackBerry whose move to DESTINATION passes preflight."""
    source = await session.directory.customer(SOURCE)
    async for page in session.directory.user_pages(source):
        for user in page:
            if set(user.services) == SERVICES:
                plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
                if plan.ok:
                    return user, plan
    pytest.fail(f"the seed has no user of {SOURCE} with {sorted(SERVICES)} that can move to {DESTINATION}")


async def run(session: Session, plan, **kwargs):
    events = [e async for e in session.executor(**kwargs).run(plan, session.operator)]
    return events, events[-1].status


def tenant(customer) -> str:
    return customer.code.lower()  # the tenant_guid the demo's tenant map gives each customer


def view(user) -> dict:
    """What a move changes and a rollback must restore (not the USN or change time)."""
    return {
        "dn": user.dn, "upn": user.upn, "email": user.email, "sip": user.sip, "sam": user.sam,
        "proxy_addresses": sorted(user.proxy_addresses), "groups": sorted(g.casefold() for g in user.groups),
        "services": user.services, "plans": user.plans, "roles": user.roles,
    }


# -- the backend holds what the directory says -----------------------------------------------


async def test_the_backend_holds_a_tenant_per_blackberry_customer_and_a_record_per_crm_user(demo):
    """Checked against the demo directory itself (users' services and plans as the layout reads them)."""
    services = demo_services(demo)
    backend = services.backend
    customers = await demo.customers()
    with_blackberry = {tenant(c) for c in customers if "blackberry" in c.services}
    assert with_blackberry and {u.srp_id for u in services.uems.values()} == with_blackberry  # one UEM per tenant
    records = 0
    for customer in customers:
        users = [u async for page in demo.user_pages(customer) for u in page]
        if "blackberry" in customer.services:
            uem = services.uem(tenant(customer)).snapshot()["users"]
            assert set(uem) == {u.upn for u in users if "blackberry" in u.services}, customer.name
            assert all(record["directoryLinked"] for record in uem.values())
            for plan in (p.name for p in customer.plans if p.service == "blackberry"):
                on_plan = sorted(u.upn for u in users if any(p.service == "blackberry" and p.name == plan for p in u.plans))
                assert sorted(n for n, r in uem.items() if plan in r["groups"]) == on_plan, (customer.name, plan)
        for user in users:
            record = backend.record(user.upn)
            if "crm" in user.services:
                records += 1
                assert record == {"upn": user.upn, "customer": customer.code, "email": user.email or ""}
            else:
                assert record is None, user.upn
    assert records and len(backend.snapshot()["records"]) == records


async def test_a_uem_user_carries_the_directory_profile(demo, tmp_path):
    session = await open_session(demo, tmp_path)
    try:
        user, _plan = await movable_user(session)
        source = await demo.customer(SOURCE)
        uem = demo_services(demo).uem(tenant(source)).users()[user.upn]
        assert uem["emailAddress"] == user.email
        assert (uem["displayName"], uem["firstName"], uem["lastName"]) == (user.display_name, user.first, user.last)
        assert uem["guid"]
    finally:
        await close(session)


# -- the wiring -------------------------------------------------------------------------------


async def test_a_demo_session_gets_adapters_on_the_demo_backend(demo, tmp_path):
    session = await open_session(demo, tmp_path)
    try:
        blackberry, crm = session.adapters["blackberry"], session.adapters["crm"]
        assert isinstance(blackberry, BlackBerryAdapter) and isinstance(crm, HttpAdapter)
        source = await demo.customer(SOURCE)
        client = blackberry.client(blackberry.tenant_of(source))
        assert client.url.endswith(".demo.invalid") and client.tenant_guid == tenant(source)
        assert crm.client.url == "https://services.demo.invalid/provisioning"
        # One backend per demo directory, shared by its sessions.
        assert demo_services(demo) is demo_services(demo)
    finally:
        await close(session)


async def test_any_other_directory_gets_the_configured_adapters():
    real = types.SimpleNamespace(config=Config(directory=DirectoryConfig(urls=("ldaps://dc1.example.net",), base_dn="DC=example,DC=net")), services=None)
    assert demo_services(real) is None and demo_adapters(real) is None


async def test_demo_options_drop_credentials_and_keep_adapter_settings():
    from core.config import ServiceConfig
    from core.demo.directory import demo_config, demo_tenants
    from core.demo.seed import build_seed

    base, seed = demo_config(), build_seed()
    options = {"timeout": 5, "ca_file": "/etc/ca.pem", "plan_groups": {"Standard": "BES Standard"}}
    config = Config(directory=base.directory, layout=base.layout, services={
        **base.services, "blackberry": ServiceConfig(base.services["blackberry"].service, options),
    })
    config = dataclasses.replace(config, tenants=demo_tenants(seed, config))
    services = DemoServices(config, seed, connect=lambda: None)  # no cmdlet runs here
    assert services.config(config).services["blackberry"].options == {"plan_groups": {"Standard": "BES Standard"}}
    # tenant ids as the tenant map gives them; plan groups named as plan_groups says
    assert "BES Standard" in services.uem("c0001").snapshot()["groups"]


# -- moves ------------------------------------------------------------------------------------


async def test_moving_a_blackberry_user_re_homes_the_uem_account(demo, tmp_path):
    session = await open_session(demo, tmp_path)
    try:
        user, plan = await movable_user(session)
        source, destination = await demo.customer(SOURCE), await demo.customer(DESTINATION)
        (bb_plan,) = [p.name for p in user.plans if p.service == "blackberry"]
        services = demo_services(demo)
        assert user.upn in services.uem(tenant(source)).users()
        events, status = await run(session, plan)
        assert status == "done", [e.message for e in events if e.kind in ("step_failed", "job_finished")]
        change = plan.users[0]
        moved = await demo.user(change.upn_after)
        assert moved.upn == change.upn_after and moved.email == change.email_after
        assert set(moved.services) == SERVICES and moved.customer_dn.casefold() == destination.dn.casefold()
        uem = services.uem(tenant(destination)).snapshot()["users"]
        assert uem[change.upn_after]["emailAddress"] == change.email_after
        assert bb_plan in uem[change.upn_after]["groups"] and uem[change.upn_after]["directoryLinked"]
        assert user.upn not in services.uem(tenant(source)).users()
    finally:
        await close(session)


async def test_a_blackberry_failure_rolls_the_directory_back(demo, tmp_path):
    services = demo_services(demo)
    destination = await demo.customer(DESTINATION)
    create = f"/{tenant(destination)}/api/v1/users"  # on the destination's own demo UEM
    failed = []

    def failing(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == create and not failed:
            failed.append(request)
            return httpx.Response(500, json={"message": "Injected failure."})
        return services.answer(request)

    adapters = services.adapters(demo.config, transport=httpx.MockTransport(failing))
    session = await open_session(demo, tmp_path, adapters=adapters)
    try:
        user, plan = await movable_user(session)
        before_user, before_services = view(await demo.user(user.upn)), services.snapshot()
        index = next(i for i, s in enumerate(plan.steps) if s.service == "blackberry")
        assert index > 0, "directory steps must run before the BlackBerry create, or there is nothing to roll back"
        events, status = await run(session, plan)
        assert failed, "the BlackBerry create was not called"
        assert status == "rolled_back"
        assert [e.index for e in events if e.kind == "step_failed"] == [index]
        undone = {e.index for e in events if e.kind == "step_undone"}
        assert set(range(index)) <= undone <= set(range(index + 1))  # the failed step may be undone too
        assert view(await demo.user(user.upn)) == before_user
        assert not await demo.exists(plan.users[0].dn_after)
        assert services.snapshot() == before_services
    finally:
        await close(session)


async def test_the_command_line_moves_a_blackberry_user_on_the_demo(demo, tmp_path):
    session = await open_session(demo, tmp_path)
    try:
        user, _plan = await movable_user(session)  # the CLI's demo is a fresh copy of this one
    finally:
        await close(session)
    state = tmp_path / "state"
    env = {**os.environ, "TENANTRY_STATE_DIR": str(state)}
    command = [sys.executable, "-m", "cli", "move", user.upn, "--to", DESTINATION, "--demo", "--yes"]
    result = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    journal = Journal(state / "demo" / "journal.sqlite3")
    try:
        (job,) = journal.jobs()
        assert job.status.value == "done" and job.users == (user.upn,)
    finally:
        journal.close()
