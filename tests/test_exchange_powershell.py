"""Hosted Exchange and Lync moved and copied through their own cmdlets: the adapters
(core/services/exchange.py, core/services/lync.py) → pypsrp → the loopback PSRP server
(tests/psrp_server.py) running the Exchange and Lync cmdlets (core/demo/exchange.py,
core/demo/lync.py) → the Samba DC, checked attribute by attribute as Exchange and
Lync leave a user."""

from __future__ import annotations

import asyncio
import json
import logging
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
from core.demo.platform import EAP_EXCLUDED, ENHANCED_PRESENCE
from core.directory import connect
from core.errors import TenantryError
from core.move import MoveRequest
from core.services.powershell import Cmdlet
from core.session import Session
from cmdlet_bed import (DESTINATION_GROUPING, LYNC_TENANTS, PASSWORD_ENV, POOLS, add_tenants, admin, mailbox_user,
                        start_platform, write_platform_config)
from directory_fixtures import PASSWORD_ENV as DC_PASSWORD_ENV
from move_fixtures import DESTINATION, OTHER_RESELLER, SOURCE, make_user, remove_user, snapshot
from test_copy import copy_names, new_password, no_trace, remove_copy

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.dc]
ROOT = Path(__file__).resolve().parent.parent
HOSTILE = "O'Hara \"Q\"; $(Stop-Computer) `whoami`"
QUOTA_KB = {"mDBStorageQuota": [str(int(1.8 * 2**30) // 1024)], "mDBOverQuotaLimit": [str(int(1.9 * 2**30) // 1024)],
            "mDBOverHardQuotaLimit": [str(2 * 2**20)]}


@pytest.fixture(scope="module")
def exchange(samba_dc, tmp_path_factory):
    platform = start_platform(samba_dc, tmp_path_factory.mktemp("exchange-tls"))
    yield platform
    platform.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def session(samba_dc, sp_password, exchange, monkeypatch, tmp_path):
    exchange.server.reset()
    monkeypatch.setenv(PASSWORD_ENV, exchange.password)
    config = load(write_platform_config(samba_dc, exchange, tmp_path / "dc.toml"))
    directory = await connect(config, sp_password)
    await add_tenants(directory, exchange)
    session = await Session.open(directory, state=tmp_path)
    yield session
    await session.close()


EXCHANGE_ATTRIBUTES = ["mail", "proxyAddresses", "extensionAttribute1", "msExchAddressBookPolicyLink", "msExchUseOAB",
                       "showInAddressBook", "msExchPoliciesExcluded", "homeMDB", "msExchRecipientTypeDetails", "mailNickname",
                       "msRTCSIP-PrimaryUserAddress", "msRTCSIP-UserEnabled", "msRTCSIP-PrimaryHomeServer", "msRTCSIP-OptionFlags",
                       "msRTCSIP-UserPolicies", "msRTCSIP-TenantId", "msRTCSIP-GroupingID", "mDBStorageQuota", "mDBOverQuotaLimit", "mDBOverHardQuotaLimit", "mDBUseDefaults"]


def folded(values: list[str]) -> set[str]:
    return {v.casefold() for v in values}


async def test_a_move_re_homes_the_mailbox_through_the_cmdlets(session, exchange):
    d, server, org = session.directory, exchange.server, exchange.org
    user = await mailbox_user(session, exchange)
    try:
        source, destination = user.source, user.destination
        before = await d.values(user.dn, EXCHANGE_ATTRIBUTES)
        assert folded(before["msExchAddressBookPolicyLink"]) == {org.dn_of("abp", f"{source.code} ABP").casefold()}
        server.reset()
        plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
        assert plan.ok, plan.problems
        assert [c.command for c in server.calls] == ["Get-Mailbox", "Get-AddressBookPolicy", "Get-CsUser",
                                                      "Get-CsConferencingPolicy"]  # preflight only reads
        change = plan.users[0]
        new_email = change.email_after
        (step,) = [s for s in plan.steps if s.service == "exchange"]
        guid = user_guid(before, plan)
        assert step.target == (f"Set-Mailbox -Identity '{guid}' -CustomAttribute1 '{destination.code}' "
                               f"-EmailAddresses 'SMTP:{new_email}','X500:/o=Old/cn=Recipients/cn=oldmover{user.number}','SIP:{new_email}' "
                               f"-EmailAddressPolicyEnabled:$false -AddressBookPolicy '{destination.code} Tenant ABP' "
                               f"-OfflineAddressBook '{destination.code} Tenant OAB'")
        assert [s.target for s in plan.steps if s.service == "ocs"] == [
            f"Set-CsUser -Identity '{guid}' -SipAddress 'sip:{new_email}'",
            f"Move-CsUser -Identity '{guid}' -Target '{POOLS[1]}' -Confirm:$false",
            f"Grant-CsConferencingPolicy -Identity '{guid}' -PolicyName '{destination.code} Conferencing'"]
        endpoint = session.adapters["exchange"].endpoint
        trips = endpoint.round_trips
        events = [e async for e in session.executor().run(plan, session.operator)]
        assert events[-1].status == "done", [e.message for e in events]
        assert [c.command for c in server.calls] == ["Get-Mailbox", "Get-AddressBookPolicy", "Get-CsUser",
                                                      "Get-CsConferencingPolicy", "Set-Mailbox", "Set-CsUser",
                                                      "Move-CsUser", "Grant-CsConferencingPolicy"]
        # one cmdlet = Command, Receive, Signal (terminate); the pool was opened in preflight
        assert endpoint.round_trips - trips == 3
        assert not any(c.script for c in server.calls)
        after = await d.values(change.dn_after, EXCHANGE_ATTRIBUTES)
        assert after["mail"] == [new_email]
        assert folded(after["proxyAddresses"]) == folded([f"SMTP:{new_email}", f"X500:/o=Old/cn=Recipients/cn=oldmover{user.number}",
                                                          f"SIP:{new_email}"])
        assert [a for a in after["proxyAddresses"] if a.startswith("SMTP:")] == [f"SMTP:{new_email}"]
        assert after["extensionAttribute1"] == [destination.code]
        assert folded(after["msExchAddressBookPolicyLink"]) == {org.dn_of("abp", f"{destination.code} Tenant ABP").casefold()}
        assert folded(after["msExchUseOAB"]) == {org.dn_of("oab", f"{destination.code} Tenant OAB").casefold()}
        assert folded(after["showInAddressBook"]) == {org.dn_of(kind, f"{destination.code} Tenant {what}").casefold()
                                                       for kind, what in (("list", "AL"), ("list", "Rooms"), ("gal", "GAL"))}
        assert after["msExchPoliciesExcluded"] == [EAP_EXCLUDED]
        assert after["homeMDB"] == before["homeMDB"] and after["msExchRecipientTypeDetails"] == ["1"]
        assert after["mailNickname"] == before["mailNickname"]
        assert after["msRTCSIP-PrimaryUserAddress"] == [f"sip:{new_email}"] and after["msRTCSIP-UserEnabled"] == ["TRUE"]
        assert folded(after["msRTCSIP-PrimaryHomeServer"]) == {exchange.lync.pool_dn(POOLS[1]).casefold()}
        assert after["msRTCSIP-UserPolicies"] == [f"ConferencingPolicy={destination.code} Conferencing"]
        assert before["msRTCSIP-TenantId"] == before["msRTCSIP-GroupingID"] == [LYNC_TENANTS[SOURCE]]
        assert (after["msRTCSIP-TenantId"], after["msRTCSIP-GroupingID"]) == ([LYNC_TENANTS[DESTINATION]], [DESTINATION_GROUPING])
        (modify,) = [s for s in plan.steps if s.action == p.MODIFY and s.target == user.dn]  # one compare-and-swap modify
        assert (modify.before["msRTCSIP-TenantId"], modify.after["msRTCSIP-GroupingID"]) == (
            [LYNC_TENANTS[SOURCE]], [DESTINATION_GROUPING])
    finally:
        await remove_user(d, user)


def user_guid(values, plan) -> str:
    return next(s for s in plan.steps if s.service == "exchange").request["cmdlets"][0]["parameters"][0][1]


async def test_a_destination_without_an_address_book_policy_is_refused_in_preflight(session, exchange):
    d, server, org = session.directory, exchange.server, exchange.org
    user = await mailbox_user(session, exchange)
    abp = org.dn_of("abp", f"{user.destination.code} Tenant ABP")
    try:
        before = await snapshot(d, user.source, user.destination)
        with org.lock:
            assert org.conn.delete(abp)
        server.reset()
        plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
        assert not plan.ok
        messages = [x.message for x in plan.problems if x.code == p.SERVICE_MISSING]
        assert messages == [f"Hosted Exchange: the address book policy '{user.destination.code} Tenant ABP' of {user.destination.name} "
                            f"cannot be used (Hosted Exchange refused Get-AddressBookPolicy: The operation couldn't be performed "
                            f"because object '{user.destination.code} Tenant ABP' couldn't be found on 'dc1'.)."]
        assert [c.command for c in server.calls] == ["Get-Mailbox", "Get-AddressBookPolicy", "Get-CsUser",
                                                      "Get-CsConferencingPolicy"]
        assert await snapshot(d, user.source, user.destination) == before
    finally:
        org.install()
        org.add_tenant(user.destination.code, f"{user.destination.code} Tenant")
        await remove_user(d, user)


async def test_a_cmdlet_or_directory_failure_at_each_step_is_undone_exactly(session, exchange):
    """Every step fails once (the directory refusing, or Set-Mailbox answering an error,
    timing out, or running and losing its answer); the directory is then exactly as before,
    Exchange's stamping included. The source mailbox has its address policy on, so the undo
    switches it back on after restoring the addresses."""
    d, server = session.directory, exchange.server
    probe = await mailbox_user(session, exchange, policy_enabled=True)
    try:
        plan = await session.planner().preflight(session.operator, MoveRequest(probe.upn, DESTINATION))
        assert plan.ok, plan.problems
        actions = [s.action for s in plan.steps]
        cmdlets = [(s.request or {}).get("cmdlets", [{}])[0].get("name") for s in plan.steps]
    finally:
        await remove_user(d, probe)
    assert [c for c in cmdlets if c] == ["Set-Mailbox", "Set-CsUser", "Move-CsUser", "Grant-CsConferencingPolicy"]
    cases = [(i, None) for i, a in enumerate(actions) if a != p.HTTP]
    cases += [(i, kind) for i, a in enumerate(actions) if a == p.HTTP for kind in ("error", "timeout", "drop")]
    for failing, kind in cases:
        user = await mailbox_user(session, exchange, policy_enabled=True)
        try:
            before = await snapshot(d, user.source, user.destination)
            plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
            hook = None
            if kind:
                server.fail(cmdlets[failing], kind, message="Injected: the server is in maintenance.")
            else:
                async def hook(index, step, failing=failing):
                    if index == failing:
                        raise TenantryError(f"injected LDAP failure at step {index + 1}")
            events = [e async for e in session.executor(before_step=hook).run(plan, session.operator)]
            assert events[-1].status == "rolled_back", (failing, kind, [e.message for e in events])
            failed = next(e for e in events if e.kind == "step_failed")
            assert failed.index == failing
            if kind == "error":
                service = plan.steps[failing].service
                name = {"exchange": "Hosted Exchange", "ocs": "Office Communications Server"}[service]
                assert failed.message == f"{name} refused {cmdlets[failing]}: Injected: the server is in maintenance."
            assert await snapshot(d, user.source, user.destination) == before, f"step {failing + 1}: {actions[failing]} {kind}"
        finally:
            await remove_user(d, user)


async def test_a_copy_enables_a_mailbox_in_the_tenants_address_book(session, exchange):
    d, server, org = session.directory, exchange.server, exchange.org
    template = await mailbox_user(session, exchange)
    copy_dn = None
    try:
        customer = template.source
        first, last = copy_names()
        password = new_password()
        server.reset()
        plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, first, last), password)
        assert plan.ok, plan.problems
        assert [c.command for c in server.calls] == ["Get-AddressBookPolicy", "Get-CsConferencingPolicy"]
        copy_dn = plan.users[0].dn_after
        email = plan.users[0].email_after
        shown = [s.target for s in plan.steps if s.service == "exchange"]
        assert shown == [f"Enable-Mailbox -Identity '{copy_dn}' -Database 'DB01' -Alias '{email.split('@')[0]}' -PrimarySmtpAddress '{email}'",
                         f"Set-Mailbox -Identity '{copy_dn}' -CustomAttribute1 '{customer.code}' -EmailAddressPolicyEnabled:$false "
                         f"-AddressBookPolicy '{customer.code} ABP' -OfflineAddressBook '{customer.code} OAB'"]
        sip = f"sip:{email}"
        assert [s.target for s in plan.steps if s.service == "ocs"] == [
            f"Enable-CsUser -Identity '{copy_dn}' -RegistrarPool '{POOLS[0]}' -SipAddress '{sip}'",
            f"Grant-CsConferencingPolicy -Identity '{copy_dn}' -PolicyName '{customer.code} Conferencing'"]
        events = [e async for e in session.executor().run(plan, session.operator, secrets={"password": password})]
        assert events[-1].status == "done", [e.message for e in events]
        values = await d.values(copy_dn, EXCHANGE_ATTRIBUTES)
        assert values["mail"] == [email] and values["proxyAddresses"] == [f"SMTP:{email}"]
        assert values["msExchRecipientTypeDetails"] == ["1"]
        assert folded(values["homeMDB"]) == {org.dn_of("database", "DB01").casefold()}
        assert values["extensionAttribute1"] == [customer.code]
        assert folded(values["msExchAddressBookPolicyLink"]) == {org.dn_of("abp", f"{customer.code} ABP").casefold()}
        assert folded(values["msExchUseOAB"]) == {org.dn_of("oab", f"{customer.code} OAB").casefold()}
        assert len(values["showInAddressBook"]) == 3
        assert values["msExchPoliciesExcluded"] == [EAP_EXCLUDED]
        assert values["msRTCSIP-PrimaryUserAddress"] == [sip] and values["msRTCSIP-UserEnabled"] == ["TRUE"]
        assert folded(values["msRTCSIP-PrimaryHomeServer"]) == {exchange.lync.pool_dn(POOLS[0]).casefold()}
        assert values["msRTCSIP-OptionFlags"] == [ENHANCED_PRESENCE]
        assert values["msRTCSIP-UserPolicies"] == [f"ConferencingPolicy={customer.code} Conferencing"]
        assert values["msRTCSIP-TenantId"] == values["msRTCSIP-GroupingID"] == [LYNC_TENANTS[SOURCE]]
    finally:
        await remove_copy(d, copy_dn)
        await remove_user(d, template)


async def test_a_copy_failing_at_its_settings_leaves_no_mailbox_and_no_account(session, exchange):
    d, server = session.directory, exchange.server
    template = await mailbox_user(session, exchange)
    try:
        password = new_password()
        plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, *copy_names()), password)
        server.fail("Set-Mailbox", "error", message="Injected.")
        events = [e async for e in session.executor().run(plan, session.operator, secrets={"password": password})]
        assert events[-1].status == "rolled_back", [e.message for e in events]
        assert [c.command for c in server.calls][-3:] == ["Enable-Mailbox", "Set-Mailbox", "Disable-Mailbox"]
        await no_trace(d, plan)
    finally:
        await remove_user(d, template)


async def test_a_hostile_name_reaches_the_cmdlets_only_as_a_parameter_value(session, exchange):
    d, server = session.directory, exchange.server
    template = await mailbox_user(session, exchange)
    copy_dn = None
    try:
        password = new_password()
        server.reset()
        # a newline cannot even become a name: refused before any cmdlet that writes
        refused = await session.copier().preflight(
            session.operator, CopyRequest(template.upn, "Evil", "Name", display_name=HOSTILE + "\nGet-Process"), password)
        assert any("holds control characters" in x.message for x in refused.problems), refused.problems
        assert [c.command for c in server.calls] == ["Get-AddressBookPolicy", "Get-CsConferencingPolicy"]
        plan = await session.copier().preflight(
            session.operator, CopyRequest(template.upn, "Evil", f"Name{copy_names()[1]}", display_name=HOSTILE + " " + copy_names()[1]), password)
        assert plan.ok, plan.problems
        copy_dn = plan.users[0].dn_after
        events = [e async for e in session.executor().run(plan, session.operator, secrets={"password": password})]
        assert events[-1].status == "done", [e.message for e in events]
        enable = next(c for c in server.calls if c.command == "Enable-Mailbox")
        assert not any(c.script for c in server.calls)
        assert enable.parameters["Identity"] == copy_dn and HOSTILE in copy_dn.replace("\\", "")
        assert (await d.values(copy_dn, ["msExchRecipientTypeDetails"]))["msExchRecipientTypeDetails"] == ["1"]
    finally:
        await remove_copy(d, copy_dn)
        await remove_user(d, template)


async def test_the_exchange_password_is_kept_out_of_journal_audit_and_logs(session, exchange, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    d, server = session.directory, exchange.server
    user = await mailbox_user(session, exchange)
    try:
        server.reset()
        plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
        events = [e async for e in session.executor().run(plan, session.operator)]
        assert events[-1].status == "done"
        basic = server.authorizations[0].split(" ", 1)[1]
        assert "Set-Mailbox" in caplog.text  # pypsrp's envelopes were logged: the check below looks at something
        stored = b"".join(f.read_bytes() for f in tmp_path.rglob("*") if f.is_file())
        with sqlite3.connect(session.journal.path) as db:  # the journal's rows, whatever its file holds
            rows = repr(db.execute("select * from steps").fetchall()).encode()
        assert b"Set-Mailbox" in stored + rows
        for secret in (exchange.password, basic):
            assert secret not in caplog.text
            assert secret.encode() not in stored + rows
    finally:
        await remove_user(d, user)


async def tenantry(exchange, sp_password, tmp_path, *args: str) -> subprocess.CompletedProcess:
    """The command line, as a script runs it, on the session's configuration (tmp_path/dc.toml)."""
    env = {**os.environ, DC_PASSWORD_ENV: sp_password, PASSWORD_ENV: exchange.password,
           "TENANTRY_STATE_DIR": str(tmp_path / "cli-state"), "PYTHONPATH": str(ROOT)}
    return await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "cli", *args, "--config", str(tmp_path / "dc.toml")],
                                   capture_output=True, text=True, cwd=ROOT, env=env, timeout=180)


async def test_the_dry_run_shows_each_cmdlet_with_its_parameters_and_writes_nothing(session, exchange, sp_password, tmp_path):
    d, server = session.directory, exchange.server
    user = await mailbox_user(session, exchange)
    try:
        before = await snapshot(d, user.source, user.destination)
        server.reset()
        done = await tenantry(exchange, sp_password, tmp_path, "move", user.upn, "--to", DESTINATION, "--dry-run")
        assert done.returncode == 0, done.stderr
        lines = [line.strip() for line in done.stdout.splitlines()]
        shown = [line.split(". ", 1)[1] for line in lines if ". powershell " in line]
        code = user.destination.code
        assert [s.split(" -Identity ")[0] for s in shown] == ["powershell Set-Mailbox", "powershell Set-CsUser",
                                                              "powershell Move-CsUser", "powershell Grant-CsConferencingPolicy"]
        assert f"-AddressBookPolicy '{code} Tenant ABP' -OfflineAddressBook '{code} Tenant OAB'" in shown[0]
        assert f"-Target '{POOLS[1]}' -Confirm:$false" in shown[2]
        assert [c.command for c in server.calls] == ["Get-Mailbox", "Get-AddressBookPolicy", "Get-CsUser",
                                                      "Get-CsConferencingPolicy"]
        assert await snapshot(d, user.source, user.destination) == before
    finally:
        await remove_user(d, user)


async def test_a_destination_without_its_lync_policy_is_refused_in_preflight(session, exchange):
    d, lync = session.directory, exchange.lync
    user = await mailbox_user(session, exchange)
    policy = f"{user.destination.code} Conferencing"
    try:
        lync.policies["ConferencingPolicy"].discard(policy)
        plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
        assert [x.message for x in plan.problems] == [
            f"Office Communications Server: the ConferencingPolicy '{policy}' of {user.destination.name} cannot be used "
            f"(Office Communications Server refused Get-CsConferencingPolicy: Cannot get the ConferencingPolicy "
            f"\"{policy}\": no such policy exists.)."]
    finally:
        lync.policies["ConferencingPolicy"].add(policy)
        await remove_user(d, user)


def _edited(plan, service: str, change):
    """``plan`` with its first ``service`` cmdlet step's cmdlet changed by ``change`` (as
    someone editing the journal on disk would)."""
    import dataclasses

    index, step = next((i, s) for i, s in enumerate(plan.steps) if s.service == service)
    cmdlet = change(Cmdlet.from_json(step.request["cmdlets"][0]))
    edited = dataclasses.replace(step, request={**step.request, "cmdlets": [cmdlet.to_json()]})
    return dataclasses.replace(plan, steps=(*plan.steps[:index], edited, *plan.steps[index + 1:]))


def _with(cmdlet: Cmdlet, name: str, value) -> Cmdlet:
    return Cmdlet(cmdlet.name, tuple((n, value if n == name else v) for n, v in cmdlet.parameters))


async def test_a_cmdlet_step_edited_to_reach_elsewhere_is_refused_and_nothing_runs(session, exchange):
    from core.errors import PermissionDenied

    d, server = session.directory, exchange.server
    user = await mailbox_user(session, exchange)
    # the objectGUIDs an edited journal could name instead of the job's user: a user of
    # another tenant (a customer of neither side), another user of the source, and none at all
    victim = await make_user(d, OTHER_RESELLER, services=("exchange",), destination_name=SOURCE)
    neighbour = await make_user(d, services=("exchange",))
    guids = {name: (await d.values(u.dn, ["objectGUID"]))["objectGUID"][0].strip("{}") for name, u in
             (("victim", victim), ("neighbour", neighbour))}
    try:
        plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
        assert plan.ok, plan.problems
        before = await snapshot(d, user.source, user.destination)
        victim_before = await d.values(victim.dn, EXCHANGE_ATTRIBUTES)
        attacks = {
            "another tenant's user by objectGUID": _edited(plan, "exchange", lambda c: _with(c, "Identity", guids["victim"])),
            "another tenant's user's GUID in braces, upper case": _edited(
                plan, "ocs", lambda c: _with(c, "Identity", "{" + guids["victim"].upper() + "}")),
            "another user of the same customer": _edited(plan, "exchange", lambda c: _with(c, "Identity", guids["neighbour"])),
            "a GUID of no object": _edited(plan, "exchange", lambda c: _with(c, "Identity", "00000000-0000-4000-8000-000000000000")),
            "a name instead of a GUID": _edited(plan, "exchange", lambda c: _with(c, "Identity", victim.upn)),
            "another tenant's address book policy": _edited(plan, "exchange", lambda c: _with(c, "AddressBookPolicy", "C9999 Tenant ABP")),
            "an address in a domain of neither customer": _edited(plan, "exchange", lambda c: _with(c, "EmailAddresses", ("SMTP:ceo@fabrikam.example",))),
            "a cmdlet the adapter never runs": _edited(plan, "exchange", lambda c: Cmdlet("Remove-Mailbox", c.parameters[:1])),
            "an Identity outside the job's customers": _edited(plan, "ocs", lambda c: _with(c, "Identity", f"CN=Victim,OU=Users,OU=Fabrikam,OU=Blue Yonder Reseller,OU=Hosting,{d.config.directory.base_dn}")),
            "another tenant's conferencing policy": _edited(plan, "ocs", lambda c: Cmdlet("Grant-CsConferencingPolicy", (c.parameters[0], ("PolicyName", "C9999 Conferencing")))),
        }
        for attack, tampered in attacks.items():
            server.reset()
            with pytest.raises(PermissionDenied, match="nothing was written"):
                [e async for e in session.executor().run(tampered, session.operator)]
            assert server.calls == [], attack  # not one cmdlet sent
            assert await snapshot(d, user.source, user.destination) == before, attack
            assert await d.values(victim.dn, EXCHANGE_ATTRIBUTES) == victim_before, attack
        # the undo side is checked too: a rollback's Set-Mailbox aimed at the victim
        index, step = next((i, s) for i, s in enumerate(plan.steps) if s.service == "exchange")
        undo = [_with(Cmdlet.from_json(c), "Identity", guids["victim"]).to_json() for c in step.undo_request["cmdlets"]]
        import dataclasses
        tampered = dataclasses.replace(plan, steps=(*plan.steps[:index], dataclasses.replace(step, undo_request={**step.undo_request, "cmdlets": undo}),
                                                    *plan.steps[index + 1:]))
        server.reset()
        with pytest.raises(PermissionDenied, match="which is not the user of this job; nothing was written"):
            [e async for e in session.executor().run(tampered, session.operator)]
        assert server.calls == []
    finally:
        await remove_user(d, user)
        await remove_user(d, victim)
        await remove_user(d, neighbour)


async def test_a_move_onto_a_plan_sets_its_quotas_and_requests_the_move_to_its_database(session, exchange):
    """The Basic plan has quotas and lives on DB02: Set-Mailbox carries the quotas (database
    defaults off) and a New-MoveRequest follows, which the Mailbox Replication Service
    completes (homeMDB on DB02). A failure after it (the Lync policy grant) undoes it: the
    completed request removed, the mailbox moved back to DB01, every quota attribute back."""
    d, server, org = session.directory, exchange.server, exchange.org
    user = await mailbox_user(session, exchange, exchange_plan="Basic 2 GB")
    try:
        before = await snapshot(d, user.source, user.destination)
        values = await d.values(user.dn, EXCHANGE_ATTRIBUTES)
        assert values["mDBUseDefaults"] == ["TRUE"] and not values["mDBStorageQuota"]
        assert folded(values["homeMDB"]) == {org.dn_of("database", "DB01").casefold()}
        plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
        assert plan.ok, plan.problems
        guid = user_guid(values, plan)
        settings, move = [s for s in plan.steps if s.service == "exchange"]
        assert settings.target.endswith("-IssueWarningQuota '1.8GB' -ProhibitSendQuota '1.9GB' -ProhibitSendReceiveQuota '2GB' "
                                        "-UseDatabaseQuotaDefaults:$false")
        assert settings.before["UseDatabaseQuotaDefaults"] is True and settings.before["IssueWarningQuota"] == "Unlimited"
        assert move.target == f"New-MoveRequest -Identity '{guid}' -TargetDatabase 'DB02'"
        assert (move.before, move.after) == ({"Database": "DB01"}, {"Database": "DB02"})
        org.mrs = "complete"
        server.reset()
        server.fail("Grant-CsConferencingPolicy", "error", message="Injected.")
        events = [e async for e in session.executor().run(plan, session.operator)]
        assert events[-1].status == "rolled_back", [e.message for e in events]
        assert [c.command for c in server.calls if c.command.endswith("MoveRequest")] == [
            "New-MoveRequest", "Remove-MoveRequest", "New-MoveRequest"]
        assert [c.parameters.get("TargetDatabase") for c in server.calls if c.command == "New-MoveRequest"] == ["DB02", "DB01"]
        assert await snapshot(d, user.source, user.destination) == before
        org.moves.clear()  # the request that moved it back, completed
        plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
        events = [e async for e in session.executor().run(plan, session.operator)]
        assert events[-1].status == "done", [e.message for e in events]
        done = [e for e in events if e.kind == "step_done" and e.step.target == move.target]
        assert done[0].message == ("the move of the mailbox to DB02 is Queued: Exchange finishes it in the background "
                                   "(Get-MoveRequest shows its progress)")
        after = await d.values(plan.users[0].dn_after, EXCHANGE_ATTRIBUTES)
        assert {k: after[k] for k in QUOTA_KB} == QUOTA_KB and after["mDBUseDefaults"] == ["FALSE"]
        assert folded(after["homeMDB"]) == {org.dn_of("database", "DB02").casefold()}
        (box,), = await admin(exchange, Cmdlet("Get-Mailbox", (("Identity", guid),)))
        assert (box["Database"], box["MailboxMoveStatus"], box["ProhibitSendReceiveQuota"]) == (
            "DB02", "Completed", "2 GB (2,147,483,648 bytes)")
    finally:
        org.moves.clear()
        await remove_user(d, user)


async def test_a_pending_move_request_is_reported_not_waited_for_and_cancelled_on_rollback(session, exchange):
    d, server, org = session.directory, exchange.server, exchange.org
    user = await mailbox_user(session, exchange, exchange_plan="Basic 2 GB")
    org.mrs = "hold"  # the Mailbox Replication Service does not pick requests up
    try:
        before = await snapshot(d, user.source, user.destination)
        plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
        server.reset()
        server.fail("Grant-CsConferencingPolicy", "error", message="Injected.")
        events = [e async for e in session.executor().run(plan, session.operator)]
        assert events[-1].status == "rolled_back", [e.message for e in events]
        # cancelled, never moved back: the mailbox never left DB01
        assert [c.command for c in server.calls if c.command.endswith("MoveRequest")] == ["New-MoveRequest", "Remove-MoveRequest"]
        assert not org.moves
        assert await snapshot(d, user.source, user.destination) == before
        plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
        events = [e async for e in session.executor().run(plan, session.operator)]
        assert events[-1].status == "done", [e.message for e in events]
        assert any("is Queued" in e.message for e in events if e.kind == "step_done")
        guid = user_guid(None, plan)
        (box,), = await admin(exchange, Cmdlet("Get-Mailbox", (("Identity", guid),)))
        assert (box["Database"], box["MailboxMoveStatus"]) == ("DB01", "Queued")
        (request,), = await admin(exchange, Cmdlet("Get-MoveRequest", (("Identity", guid),)))
        assert (request["Status"], request["TargetDatabase"]) == ("Queued", "DB02")
    finally:
        org.mrs = "complete"
        org.moves.clear()
        await remove_user(d, user)


async def test_a_mailbox_with_a_move_request_is_refused_and_a_failing_move_request_rolls_back(session, exchange):
    d, server, org = session.directory, exchange.server, exchange.org
    user = await mailbox_user(session, exchange, exchange_plan="Basic 2 GB")
    try:
        before = await snapshot(d, user.source, user.destination)
        org.mrs = "hold"
        await admin(exchange, Cmdlet("New-MoveRequest", (("Identity", user.dn), ("TargetDatabase", "DB02"))))
        refused = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
        assert [x.message for x in refused.problems] == [
            f"Hosted Exchange: the mailbox of {user.upn} already has a move request (Queued); remove it (Remove-MoveRequest) "
            "before moving it to DB02."]
        await admin(exchange, Cmdlet("Remove-MoveRequest", (("Identity", user.dn), ("Confirm", False))))
        org.mrs = "complete"
        plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
        assert plan.ok, plan.problems
        for kind in ("error", "drop"):
            server.fail("New-MoveRequest", kind, message="Injected: MRS is not running.")
            events = [e async for e in session.executor().run(plan, session.operator)]
            assert events[-1].status == "rolled_back", (kind, [e.message for e in events])
            assert await snapshot(d, user.source, user.destination) == before, kind
            org.moves.clear()  # a dropped answer: the request was made, and its undo removed it
            plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
    finally:
        org.mrs = "complete"
        org.moves.clear()
        await remove_user(d, user)


async def test_a_copy_onto_a_plan_gets_its_database_and_quotas(session, exchange):
    d, org = session.directory, exchange.org
    template = await mailbox_user(session, exchange, exchange_plan="Basic 2 GB")
    copy_dn = None
    try:
        password = new_password()
        plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, *copy_names()), password)
        assert plan.ok, plan.problems
        copy_dn = plan.users[0].dn_after
        enable, settings = [s.target for s in plan.steps if s.service == "exchange"]
        assert f"-Database 'DB02'" in enable and settings.endswith("-UseDatabaseQuotaDefaults:$false")
        events = [e async for e in session.executor().run(plan, session.operator, secrets={"password": password})]
        assert events[-1].status == "done", [e.message for e in events]
        values = await d.values(copy_dn, EXCHANGE_ATTRIBUTES)
        assert {k: values[k] for k in QUOTA_KB} == QUOTA_KB and values["mDBUseDefaults"] == ["FALSE"]
        assert folded(values["homeMDB"]) == {org.dn_of("database", "DB02").casefold()}
    finally:
        await remove_copy(d, copy_dn)
        await remove_user(d, template)


async def test_the_cmdlet_bench_still_runs_and_counts_the_cmdlets_of_a_move_and_a_copy(session, exchange):
    """bench/cmdlets.py on the test platform, one user (no timing asserted: that is the
    bench's business): the cmdlets a move and a copy issue, three requests each once the
    runspace pools are open."""
    from bench.cmdlets import measure

    await measure(session, exchange, 1, True)  # opens the pools
    result = await measure(session, exchange, 1, True)
    assert result["move cmdlets"] == dict.fromkeys(
        ["Get-AddressBookPolicy", "Get-CsConferencingPolicy", "Get-CsUser", "Get-Mailbox", "Grant-CsConferencingPolicy",
         "Move-CsUser", "Set-CsUser", "Set-Mailbox"], 1.0)
    assert result["copy cmdlets"] == dict.fromkeys(
        ["Enable-CsUser", "Enable-Mailbox", "Get-AddressBookPolicy", "Get-CsConferencingPolicy", "Grant-CsConferencingPolicy",
         "Set-Mailbox"], 1.0)
    assert (result["move round trips"], result["copy round trips"]) == (24, 18)
    assert all(result[f"{kind} {part}"] > 0 for kind in ("move", "copy") for part in ("preflight", "run"))


async def test_the_command_line_reports_a_pending_move_request_in_its_json(session, exchange, sp_password, tmp_path):
    """A move onto the DB02 plan while the Mailbox Replication Service has not picked the
    request up: the job is done, not waiting, and --json says what is still running."""
    d, org = session.directory, exchange.org
    user = await mailbox_user(session, exchange, exchange_plan="Basic 2 GB")
    org.mrs = "hold"
    try:
        done = await tenantry(exchange, sp_password, tmp_path, "move", user.upn, "--to", DESTINATION, "--yes", "--json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["status"] == "done"
        assert result["notes"] == ["the move of the mailbox to DB02 is Queued: Exchange finishes it in the background "
                                   "(Get-MoveRequest shows its progress)"]
        assert [r["Status"] for r in org.moves.values()] == ["Queued"]
    finally:
        org.mrs = "complete"
        org.moves.clear()
        await remove_user(d, user)


async def test_a_bulk_move_reports_each_rows_pending_move_request_in_its_json(session, exchange, sp_password, tmp_path):
    """Two users onto the DB02 plan in one bulk move: each row of --json carries the notes
    of its own job, as a single move's --json does (a row without any has none)."""
    d, org = session.directory, exchange.org
    users = [await mailbox_user(session, exchange, exchange_plan="Basic 2 GB") for _ in range(2)]
    org.mrs = "hold"
    try:
        done = await tenantry(exchange, sp_password, tmp_path, "move", *(u.upn for u in users), "--to", DESTINATION, "--yes", "--json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["status"] == "done" and [r["status"] for r in result["rows"]] == ["done", "done"]
        assert [r["notes"] for r in result["rows"]] == [["the move of the mailbox to DB02 is Queued: Exchange finishes it in the "
                                                         "background (Get-MoveRequest shows its progress)"]] * 2
        assert sorted(r["Status"] for r in org.moves.values()) == ["Queued", "Queued"]
    finally:
        org.mrs = "complete"
        org.moves.clear()
        for user in users:
            await remove_user(d, user)
