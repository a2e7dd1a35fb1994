"""The demo's Hosted Exchange and OCS through the real PowerShell remoting client: pypsrp
→ the in-process WS-Management/PSRP server (core/demo/powershell.py) → the Exchange and
Lync cmdlets (core/demo/exchange.py, core/demo/lync.py) → the demo directory, checked
attribute by attribute as Exchange and Lync leave them; a cmdlet failure rolled back to
the exact before-state; and a demo that starts without any of it imported. (The console's
move by keys on the demo, test_console_move.py, checks its user the same way.)"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import ldap3
import pytest

from core.demo.directory import DEMO_BASE_DN
from core.demo.platform import (DEMO_POOL, EAP_EXCLUDED, ENHANCED_PRESENCE, AddressBook, address_list_dns, exchange_dn, lync_tenant_id,
                                pool_dn)
from core.demo.seed import build_seed
from core.demo.services import demo_services
from core.move import MoveRequest
from core.session import Session
from console_keys import demo  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
SEED = build_seed()
SOURCE, DESTINATION = "Fabrikam", "Woodgrove Bank"  # both with Hosted Exchange (Basic 2 GB) and OCS
TEMPLATE_CUSTOMER = "Woodgrove Bank"
REMOTING = ("pypsrp", "psrpcore", "spnego", "requests")  # what only a cmdlet needs
VOLATILE = {"usnchanged", "whenchanged"}  # what any write changes, undone or not


def _code(name: str) -> str:
    return SEED.customer(name).first("description")


def _seed_user(customer: str, *, x500: bool) -> str:
    """The UPN of the customer's first enabled user with a mailbox and Lync (and an X500 address)."""
    for entry in SEED.users(SEED.customer(customer).dn):
        proxies = entry.attributes.get("proxyAddresses", ())
        if entry.first("msRTCSIP-PrimaryUserAddress") and proxies and (not x500 or any(p.startswith("X500:") for p in proxies)):
            if entry.first("userAccountControl") == "512":
                return entry.first("userPrincipalName")
    raise LookupError(customer)


def _mailbox_of(customer: str) -> dict[str, set[str]]:
    """What every mailbox of ``customer``'s tenant carries, as the demo's Exchange stamps it."""
    code, book = _code(customer), AddressBook.of(_code(customer))
    return {"extensionattribute1": {code}, "msexchaddressbookpolicylink": {exchange_dn(DEMO_BASE_DN, "abp", book.policy).casefold()},
            "msexchuseoab": {exchange_dn(DEMO_BASE_DN, "oab", book.oab).casefold()},
            "showinaddressbook": {dn.casefold() for dn in address_list_dns(DEMO_BASE_DN, book)},
            "homemdb": {exchange_dn(DEMO_BASE_DN, "database", "DB01").casefold()}, "msexchrecipienttypedetails": {"1"},
            "msexchpoliciesexcluded": {EAP_EXCLUDED}}


def _lync_of(customer: str) -> dict[str, set[str]]:
    code = _code(customer)
    return {"msrtcsip-primaryhomeserver": {pool_dn(DEMO_BASE_DN, DEMO_POOL).casefold()}, "msrtcsip-userenabled": {"TRUE"},
            "msrtcsip-optionflags": {ENHANCED_PRESENCE}, "msrtcsip-userpolicies": {f"ConferencingPolicy={code} Conferencing"},
            "msrtcsip-tenantid": {lync_tenant_id(code)}, "msrtcsip-groupingid": {lync_tenant_id(code)}}


def check_provisioned(values: dict[str, list[str]], customer: str, email: str, sip: str, *, kept: tuple[str, ...] = (),
                       sip_proxy: bool = True) -> None:
    """``values`` (attribute → values, any case) as Exchange and Lync leave a user of ``customer``
    whose address is ``email`` and SIP URI ``sip``: its tenant's address book and pool, one
    primary address, (a moved user's) SIP: address, nothing in another customer's domains."""
    folded = {k.casefold(): v for k, v in values.items()}
    for name, expected in {**_mailbox_of(customer), **_lync_of(customer)}.items():
        got = {v.casefold() for v in folded.get(name, ())}
        assert got == {e.casefold() for e in expected}, (name, got, expected)
    proxies = folded["proxyaddresses"]
    assert [p for p in proxies if p.startswith("SMTP:")] == [f"SMTP:{email}"] and folded["mail"] == [email]
    assert (f"SIP:{sip.removeprefix('sip:')}" in proxies) is sip_proxy and folded["msrtcsip-primaryuseraddress"] == [sip]
    domains = {d.casefold() for d in SEED.customer(customer).attributes["uPNSuffixes"]}
    assert all(p.partition(":")[2].rpartition("@")[2].casefold() in domains for p in proxies if not p.startswith("X500:"))
    assert all(k in proxies for k in kept)


def _tenantry(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """``tenantry --demo ARGS`` in a process of its own, and what its demo directory held at the end."""
    dump = tmp_path / "demo.json"
    env = {**os.environ, "TENANTRY_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "demo_command_line.py"), str(dump), *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done, json.loads(dump.read_text(encoding="utf-8"))


def _user(dumped: dict, upn: str) -> tuple[str, dict[str, list[str]]]:
    (found,) = [(dn, values) for dn, values in dumped["users"].items() if values["userPrincipalName"] == [upn]]
    return found


async def test_the_command_line_moves_and_copies_exchange_and_lync_users_on_the_demo_through_pypsrp(tmp_path):
    upn = _seed_user(SOURCE, x500=True)
    seed = next(e for e in SEED.users() if e.first("userPrincipalName") == upn)
    x500 = tuple(p for p in seed.attributes["proxyAddresses"] if p.startswith("X500:"))
    done, dumped = await asyncio.to_thread(_tenantry, tmp_path, "move", upn, "--to", DESTINATION, "--yes", "--json")
    result = json.loads(done.stdout)
    assert result["status"] == "done"
    (change,) = result["users"]
    dn, values = _user(dumped, change["upn_after"])
    assert f",OU=Users,{SEED.customer(DESTINATION).dn}".casefold() in dn.casefold()
    sip = next(s["after"]["SipAddress"] for s in result["plan"] if s["target"].startswith("Set-CsUser"))
    check_provisioned(values, DESTINATION, change["email_after"], sip, kept=x500)
    commands = [c["command"] for c in dumped["calls"]]
    assert commands == ["Get-Mailbox", "Get-AddressBookPolicy", "Get-CsUser", "Get-CsConferencingPolicy",
                        "Set-Mailbox", "Set-CsUser", "Grant-CsConferencingPolicy"]
    assert not any(c["script"] for c in dumped["calls"])  # commands with parameters, never script text

    template = _seed_user(TEMPLATE_CUSTOMER, x500=False)
    done, dumped = await asyncio.to_thread(_tenantry, tmp_path, "copy", template, "--first", "Zoë", "--last", "O'Quinn",
                                           "--generate-password", "--yes", "--json")
    result = json.loads(done.stdout)
    assert result["status"] == "done"
    (change,) = result["users"]
    _, values = _user(dumped, change["upn_after"])
    sip = next(s["after"]["SipAddress"] for s in result["plan"] if s["target"].startswith("Enable-CsUser"))
    check_provisioned(values, TEMPLATE_CUSTOMER, change["email_after"], sip, sip_proxy=False)  # Enable-Mailbox adds no SIP:
    assert [c["command"] for c in dumped["calls"]] == ["Get-AddressBookPolicy", "Get-CsConferencingPolicy", "Enable-Mailbox",
                                                       "Set-Mailbox", "Enable-CsUser", "Grant-CsConferencingPolicy"]


def everything(directory, dn: str) -> dict[str, list]:
    conn = demo_services(directory).connect()
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=[ldap3.ALL_ATTRIBUTES])
    (entry,) = conn.entries
    return {k.casefold(): sorted(map(str, v)) for k, v in entry.entry_attributes_as_dict.items() if k.casefold() not in VOLATILE}


async def _dn_of(directory, upn: str) -> str:
    return (await directory.user(upn)).dn


@pytest.mark.parametrize("failing", ["Set-Mailbox", "Set-CsUser", "Grant-CsConferencingPolicy"])
async def test_a_cmdlet_failure_on_the_demo_rolls_the_move_back_to_the_exact_before_state(demo, failing):
    upn = _seed_user(SOURCE, x500=True)
    dn = await _dn_of(demo, upn)
    before = everything(demo, dn)
    session = await Session.open(demo)
    try:
        plan = await session.planner().preflight(session.operator, MoveRequest(upn, DESTINATION))
        assert plan.ok, plan.problems
        server = demo_services(demo).powershell
        server.fail(failing, message=f"{failing} failed on the demo (injected).")
        events = [e async for e in session.executor().run(plan, session.operator)]
    finally:
        await session.close()
    assert events[-1].status == "rolled_back", [e.message for e in events]
    assert any(f"{failing} failed on the demo (injected)" in (e.message or "") for e in events)
    assert everything(demo, dn) == before
    ran = [c.command for c in server.calls]
    assert failing in ran and ran[:4] == ["Get-Mailbox", "Get-AddressBookPolicy", "Get-CsUser", "Get-CsConferencingPolicy"]


STARTUP = """
import asyncio, json, sys
sys.path.insert(0, "tests")
from cli import main as cli
from console_keys import Keys, open_user, settle
from core.demo.directory import open_demo
from tui.app import TenantryApp

async def go():
    args = cli.build_parser().parse_args(["--demo"])
    app = TenantryApp.for_command_line(args, None, open_demo, state=cli._state(args))
    async with app.run_test(size=(80, 24)) as pilot:
        await app.wait_for_session()
        await settle(pilot)
        await open_user(Keys(pilot), sys.argv[1], sys.argv[2])  # a customer's users and one user's details
        await settle(pilot)
        print(json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[3:]))))

asyncio.run(go())
"""


async def test_the_demo_starts_and_shows_a_user_without_importing_powershell_remoting(tmp_path):
    upn = _seed_user(SOURCE, x500=False)
    name = next(e.first("displayName") for e in SEED.users() if e.first("userPrincipalName") == upn)
    env = {**os.environ, "TENANTRY_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    done = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", STARTUP, SOURCE, name, *REMOTING], capture_output=True,
                                   text=True, cwd=ROOT, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


async def test_the_demo_cmdlet_bench_runs_and_imports_remoting_only_with_the_cmdlet_adapters(tmp_path):
    """bench/demo_cmdlets.py, one run of each kind (no timing asserted: that is the bench's business)."""
    env = {**os.environ, "TENANTRY_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)}
    runs = {}
    for kind in ("cmdlets", "directory"):
        done = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "bench.demo_cmdlets", "--once", kind],
                                       capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        runs[kind] = json.loads(done.stdout.strip().splitlines()[-1])
    assert (runs["cmdlets"]["remoting imported"], runs["directory"]["remoting imported"]) == (1.0, 0.0)
    assert all(runs[kind][part] > 0 for kind in runs for part in ("first preflight", "first run", "second preflight", "second run"))
