"""Tenant isolation (issue 13): a tenant's admins edit what they can edit — their customer
OU's code and domains, a user's mail, the journal on disk — and try to reach another
tenant. Each attack runs against the real Samba DC and the loopback UEM/provisioning
server and is refused with one sentence, nothing written on either side."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_asyncio

from core import plan as p
from core.config import load
from core.copy import CopyRequest
from core.directory import connect
from core.escape import child_dn
from core.errors import PermissionDenied
from core.journal import JobStatus
from core.move import MoveRequest
from core.session import Session
from core.tenants import problems_of
from directory_fixtures import PASSWORD_ENV, operator, write_dc_config
from move_fixtures import DESTINATION, OTHER_RESELLER, SOURCE, remove_user, snapshot
from test_move_services import TOKEN_ENV, seeded_user, services_config, session  # noqa: F401 (session: a fixture)
from uem_server import tenant_tables

pytestmark = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parent.parent


class Crash(BaseException):
    """The process dies mid-job (not an error the executor handles)."""


@pytest_asyncio.fixture(loop_scope="session")
async def reseller(samba_dc, provisioning_server, uem_servers, uem_third, monkeypatch, tmp_path):
    """A session bound as the administrator of the reseller of SOURCE and DESTINATION."""
    monkeypatch.setenv(TOKEN_ENV, provisioning_server.token)
    admin = operator(samba_dc, "reseller_admin:Blue Yonder")
    tables, environ = tenant_tables({SOURCE: uem_servers[0], DESTINATION: uem_servers[1], OTHER_RESELLER: uem_third})
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    path = write_dc_config(samba_dc, tmp_path / "reseller.toml", user=admin.upn, extra=services_config(provisioning_server),
                           tenants=samba_dc.seed.tenants_toml(uem=tables))
    directory = await connect(load(path), samba_dc.operator_passwords[admin.name])
    session = await Session.open(directory, state=tmp_path / "reseller")
    yield session
    await session.close()


@pytest_asyncio.fixture(loop_scope="session")
async def mover(session, provisioning_server, uem_servers):
    """A user of SOURCE with Exchange, OCS and BlackBerry (a UEM user in SOURCE's own UEM)."""
    user = await seeded_user(session, provisioning_server, uem_servers)
    yield user
    await remove_user(session.directory, user)


@pytest_asyncio.fixture(loop_scope="session")
async def victim(session):
    """A customer of another reseller."""
    return await session.directory.customer(OTHER_RESELLER)


class OuEdit:
    """An edit of a customer OU's own attributes, as that tenant's admin may make it; undone after."""

    def __init__(self, directory, customer, attribute: str, values: list[str]):
        self.directory, self.dn, self.attribute, self.values = directory, customer.dn, attribute, values

    async def __aenter__(self):
        self.old = (await self.directory.values(self.dn, [self.attribute])).get(self.attribute, [])
        await self.directory.modify(self.dn, {self.attribute: (self.old, self.values)})
        return self

    async def __aexit__(self, *exc):
        await self.directory.modify(self.dn, {self.attribute: (self.values, self.old)})


async def state(session, server, *customers, uems=()):
    return await snapshot(session.directory, *customers), server.snapshot(), [uem.snapshot() for uem in uems]


# -- hole 1: a customer code claimed, a victim's address as the user's mail -------------------


async def test_a_reseller_cannot_reach_another_resellers_uem_tenant_by_claiming_its_code(
        session, reseller, provisioning_server, uem_servers, uem_third, mover, victim):
    server, d = provisioning_server, session.directory
    victim_address = f"ceo@{victim.default_domain}"
    uem_third.add_user({"username": victim_address, "emailAddress": victim_address, "displayName": "Victim"}, groups=("Standard",))
    uems = (*uem_servers, uem_third)
    # The reseller admin sets their customer's code to the victim's, and their user's mail to the victim's address.
    async with OuEdit(d, mover.source, "description", [victim.code]):
        await d.modify(mover.dn, {"mail": ([mover.upn], [victim_address])})
        before = await state(session, server, mover.source, mover.destination, victim, uems=uems)
        server.calls.clear()
        plan = await reseller.planner().preflight(reseller.operator, MoveRequest(mover.upn, DESTINATION))
        assert not plan.ok and not plan.steps
        assert (p.TENANT, f"{mover.source.name} claims the code {victim.code} in the directory, which the configuration assigns to another customer.") in [
            (x.code, x.message) for x in plan.problems]
        assert await state(session, server, mover.source, mover.destination, victim, uems=uems) == before
        assert uem_third.calls() == []  # the victim's UEM was never even read
        assert uem_third.users()[victim_address]["displayName"] == "Victim"


async def test_the_uem_tenant_and_address_book_follow_the_map_not_the_ou_code(session, uem_servers, mover):
    """A code nobody was assigned changes nothing: the tenant map's code is used."""
    async with OuEdit(session.directory, mover.destination, "description", ["Z9999"]):
        plan = await session.planner().preflight(session.operator, MoveRequest(mover.upn, DESTINATION))
        assert plan.ok, plan.problems
        modify = next(s for s in plan.steps if s.action == p.MODIFY)
        assert modify.after["extensionAttribute1"] == [mover.destination.code]  # the address-book value
        tenants = {s.request["tenant_guid"] for s in plan.steps if s.service == "blackberry"}
        assert tenants == {uem.srp_id for uem in uem_servers}


# -- the address-book value and domains claimed in the directory ------------------------------


async def test_a_copy_into_a_customer_claiming_another_tenants_code_is_refused(session, provisioning_server, mover, victim):
    server = provisioning_server
    async with OuEdit(session.directory, mover.source, "description", [victim.code]):
        before = await state(session, server, mover.source, victim)
        plan = await session.copier().preflight(session.operator, CopyRequest(mover.upn, "Eve", "Intruder"))
        assert [x.code for x in plan.problems] == [p.TENANT] and not plan.steps
        assert await state(session, server, mover.source, victim) == before


@pytest.mark.parametrize("claim", ["victim", "unassigned"])
async def test_a_domain_added_to_uPNSuffixes_is_not_usable(session, provisioning_server, claim, mover, victim):
    server, d = provisioning_server, session.directory
    domain = victim.default_domain if claim == "victim" else "free-for-all.example"
    upn = f"eve.intruder@{domain}"
    async with OuEdit(d, mover.source, "uPNSuffixes", [*mover.source.claimed_domains, domain]):
        before = await state(session, server, mover.source, victim)
        plan = await session.copier().preflight(session.operator, CopyRequest(mover.upn, "Eve", "Intruder", upn=upn, email=upn))
        problems = [(x.code, x.message) for x in plan.problems]
        assert (p.FOREIGN_DOMAIN, f"The UPN {upn} is in a domain {mover.source.name} does not own.") in problems
        claimed = (p.TENANT, f"{mover.source.name} claims the domain {domain} in the directory, which the configuration assigns to another customer.")
        assert (claimed in problems) == (claim == "victim")
        assert not plan.steps and await state(session, server, mover.source, victim) == before
        assert not await d.conflicts(upn=upn)  # no account holds it
        if claim == "victim":  # the SP's map names the domain's customer: the claim makes no ambiguity
            assert (await d.customer(domain)).dn == victim.dn


# -- hole 4: a journal edited on disk -----------------------------------------------------------


async def crashed_move(session, mover, crash_at):
    """A move of ``mover`` whose process dies as step ``crash_at(step)`` is reached: the job is left running."""
    plan = await session.planner().preflight(session.operator, MoveRequest(mover.upn, DESTINATION))
    assert plan.ok, plan.problems

    async def hook(index, step):
        if crash_at(step):
            raise Crash()

    events = []
    with pytest.raises(Crash):
        async for event in session.executor(before_step=hook).run(plan, session.operator):
            events.append(event)
    job = session.journal.job(events[0].job)
    assert job.status is JobStatus.RUNNING
    return job


def edit_journal(session, job_id: str, index: int, spec: dict) -> None:
    """Rewrite one step of a job in the journal file, as someone with access to it could."""
    with sqlite3.connect(session.journal.path) as db:
        db.execute("UPDATE steps SET spec = ? WHERE job_id = ? AND idx = ?", (json.dumps(spec), job_id, index))


async def restored_rolls_back(session, job, index: int, original: dict) -> None:
    """With the row as it was written, the same job rolls back: the refusal was the edit's."""
    edit_journal(session, job.id, index, original)
    events = [e async for e in session.executor().rollback(job.id, session.operator)]
    assert events[-1].status == "rolled_back", [e.message for e in events]


async def refused_everywhere(session, server, job, customers, message: str) -> None:
    """Resume and rollback both refuse the job with ``message``, writing nothing."""
    before = await state(session, server, *customers)
    server.calls.clear()
    for attempt in (lambda: session.executor().resume(job.id, session.operator), lambda: session.executor().rollback(job.id, session.operator)):
        with pytest.raises(PermissionDenied) as error:
            [e async for e in attempt()]
        assert str(error.value) == message
    assert await state(session, server, *customers) == before
    assert [c for c in server.calls if c.method != "GET"] == []
    assert session.journal.job(job.id).status is JobStatus.RUNNING


async def test_a_journal_row_edited_to_delete_another_tenants_uem_user_is_refused(session, provisioning_server, uem_servers, uem_third, mover, victim):
    server = provisioning_server
    victim_guid = uem_third.add_user({"username": f"ceo@{victim.default_domain}", "displayName": "Victim"})
    job = await crashed_move(session, mover, lambda s: (s.request or {}).get("op") == "delete_user")
    record = next(s for s in job.steps if (s.spec.get("request") or {}).get("op") == "delete_user")
    original = record.spec
    own = original["request"]["tenant"]
    forged = {**original, "request": {**original["request"], "tenant": victim.dn, "guid": victim_guid}}
    edit_journal(session, job.id, record.index, forged)
    await refused_everywhere(session, server, job, (mover.source, mover.destination, victim),
                             f"A step ({original['target']}) names UEM tenant {victim.dn}, which is not the tenant of a customer of this job; nothing was written.")
    # the job's own tenant, sent to another server (its login would go there) or another tenant GUID
    for change in ({"url": uem_third.url}, {"tenant_guid": uem_third.srp_id}):
        request = {**original["request"], **change, "guid": victim_guid}
        edit_journal(session, job.id, record.index, {**original, "request": request})
        await refused_everywhere(session, server, job, (mover.source, mover.destination, victim),
                                 f"A step ({original['target']}) calls UEM tenant {request['tenant_guid']} at {request['url']}, "
                                 f"which is not where the configuration puts tenant {own}; nothing was written.")
    assert uem_third.calls() == [] and f"ceo@{victim.default_domain}" in uem_third.users()
    await restored_rolls_back(session, job, record.index, original)


async def test_a_journal_row_edited_to_call_another_tenants_record_is_refused(session, provisioning_server, mover, victim):
    server = provisioning_server
    victim_upn = f"ceo@{victim.default_domain}"
    server.seed_record(victim_upn, customer=victim.code, upn=victim_upn, email=victim_upn)
    job = await crashed_move(session, mover, lambda s: s.action == p.MOVE)
    record = next(s for s in job.steps if s.spec.get("service") == "exchange")
    original = record.spec
    forged = {**original, "request": {**original["request"], "path": f"/users/{victim_upn}"}}
    edit_journal(session, job.id, record.index, forged)
    await refused_everywhere(session, server, job, (mover.source, mover.destination, victim),
                             f"A step ({original['target']}) calls /users/{victim_upn}, which is not a path of this service for a customer of this job; nothing was written.")
    body = {**original, "request": {**original["request"], "json": {**original["request"]["json"], "customer": victim.code}}}
    edit_journal(session, job.id, record.index, body)
    await refused_everywhere(session, server, job, (mover.source, mover.destination, victim),
                             f"A step ({original['target']}) sends customer = {victim.code}, which is not a value of a customer of this job; nothing was written.")
    assert server.backend.record(victim_upn)["customer"] == victim.code
    await restored_rolls_back(session, job, record.index, original)


@pytest.mark.parametrize("action, field", [(p.ADD_MEMBER, "after"), (p.REMOVE_MEMBER, "before"), (p.ADD_MEMBER, "target")])
async def test_a_journal_row_edited_to_name_another_tenants_user_or_group_is_refused(session, provisioning_server, action, field, mover, victim):
    server, d = provisioning_server, session.directory
    victim_user = (await d.users(victim, limit=1))[0]
    victim_group = child_dn("CN", "Customer Administrator", d.layout.roles_dn(victim.dn))
    job = await crashed_move(session, mover, lambda s: s.action == p.MOVE)
    record = next(s for s in job.steps if s.spec["action"] == action)
    forged_dn = victim_group if field == "target" else victim_user.dn
    edit_journal(session, job.id, record.index, {**record.spec, field: forged_dn})
    await refused_everywhere(session, server, job, (mover.source, mover.destination, victim),
                             f"A step touches {forged_dn}, outside the customers of this job; nothing was written.")
    await restored_rolls_back(session, job, record.index, record.spec)


# -- the tenant map keyed by objectGUID --------------------------------------------------------


async def test_a_customer_keyed_by_its_objectGUID_gets_its_code_and_domains_from_the_map(samba_dc, sp_password, session, tmp_path):
    source = await session.directory.customer(SOURCE)
    guid = (await session.directory.values(source.dn, ["objectGUID"]))["objectGUID"][0]
    assert source.guid == guid
    entry = f'[tenants."{{{guid.upper()}}}"]\ncode = "G0001"\ndomains = ["{source.claimed_domains[-1]}"]\n'
    directory = await connect(load(write_dc_config(samba_dc, tmp_path / "guid.toml", tenants=entry)), sp_password)
    try:
        mapped = await directory.customer(SOURCE)
        assert (mapped.code, mapped.domains) == ("G0001", (source.claimed_domains[-1],))
        assert (await directory.customer(source.claimed_domains[-1])).dn == source.dn  # found by its objectGUID
        # every other customer is unmapped now: no code, no domain, and a job with it is refused
        other = await directory.customer(DESTINATION)
        assert (other.code, other.domains) == (None, ())
        assert [x.code for x in problems_of(other, directory.config.tenants)] == [p.TENANT]
    finally:
        await directory.close()


@pytest.mark.parametrize("attribute", ["extensionAttribute1", "userPrincipalName", "proxyAddresses"])
async def test_a_journal_row_edited_to_write_another_tenants_value_is_refused(session, provisioning_server, mover, victim, attribute):
    """The address-book value of another tenant, or an address in its domain, written by an edited row."""
    job = await crashed_move(session, mover, lambda s: s.action == p.MOVE)
    record = next(s for s in job.steps if s.spec["action"] == p.MODIFY)
    value = {"extensionAttribute1": victim.code, "userPrincipalName": f"eve@{victim.default_domain}",
             "proxyAddresses": f"smtp:ceo@{victim.default_domain}"}[attribute]
    after = dict(record.spec["after"])
    after[attribute] = [*after.get(attribute, []), value] if attribute == "proxyAddresses" else [value]
    edit_journal(session, job.id, record.index, {**record.spec, "after": after})
    await refused_everywhere(session, provisioning_server, job, (mover.source, mover.destination, victim),
                             f"A step writes {attribute} = {value} to {record.spec['target']}, a value of none of the customers of this job; nothing was written.")
    await restored_rolls_back(session, job, record.index, record.spec)


async def test_the_command_line_refuses_an_edited_job_in_one_sentence(session, provisioning_server, mover, victim, sp_password, tmp_path):
    """`tenantry resume` / `rollback` of the forged job (same config and state as ``session``): exit 3, one line."""
    tenant = victim.dn  # the victim's entry in the tenant map, not a customer of this job
    server = provisioning_server
    job = await crashed_move(session, mover, lambda s: (s.request or {}).get("op") == "delete_user")
    record = next(s for s in job.steps if (s.spec.get("request") or {}).get("op") == "delete_user")
    edit_journal(session, job.id, record.index, {**record.spec, "request": {**record.spec["request"], "tenant": tenant}})
    before = await state(session, server, mover.source, mover.destination, victim)
    env = {**os.environ, PASSWORD_ENV: sp_password, TOKEN_ENV: server.token, "TENANTRY_STATE_DIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
    for command in ("resume", "rollback"):
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "cli", command, job.id, "--config", str(tmp_path / "dc.toml")],
            capture_output=True, text=True, cwd=ROOT, env=env, timeout=180,
        )
        assert done.returncode == 3, done.stderr
        assert done.stderr.strip().splitlines() == [
            f"tenantry: A step ({record.spec['target']}) names UEM tenant {tenant}, which is not the tenant of a customer of this job; nothing was written."]
    assert await state(session, server, mover.source, mover.destination, victim) == before
    await restored_rolls_back(session, job, record.index, record.spec)
