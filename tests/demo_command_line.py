"""Run ``tenantry --demo ARGS…`` in this process as the ``tenantry`` command does, then
write what the demo left to DUMP as JSON (the demo's directory lives in memory and ends
with the process): every user below the hosting OU with the attributes Exchange and Lync
stamp, and the cmdlets the demo's PowerShell server ran (used by test_demo_powershell.py).

    python tests/demo_command_line.py DUMP move USER --to CUSTOMER --yes --json

The command's stdout, stderr and exit code are its own.
"""

from __future__ import annotations

import json
import sys

import ldap3

import core.demo.directory as demo
from cli.main import main

ATTRIBUTES = ("userPrincipalName", "mail", "proxyAddresses", "extensionAttribute1", "homeMDB", "msExchRecipientTypeDetails",
              "msExchAddressBookPolicyLink", "msExchUseOAB", "showInAddressBook", "msExchPoliciesExcluded", "legacyExchangeDN",
              "mailNickname", "msRTCSIP-PrimaryUserAddress", "msRTCSIP-UserEnabled", "msRTCSIP-PrimaryHomeServer",
              "msRTCSIP-OptionFlags", "msRTCSIP-UserPolicies", "msRTCSIP-TenantId", "msRTCSIP-GroupingID")


def run(dump: str, argv: list[str]) -> int:
    opened = []
    open_demo = demo.open_demo

    async def keep(*args, **kwargs):
        directory = await open_demo(*args, **kwargs)
        opened.append(directory)
        return directory

    demo.open_demo = keep  # cli.main imports it from the module when --demo is given
    code = main(["--demo", *argv])
    services = opened[0].services
    conn = services.connect()
    found = conn.extend.standard.paged_search(f"OU=Hosting,{demo.DEMO_BASE_DN}", "(objectClass=user)", ldap3.SUBTREE,
                                              attributes=list(ATTRIBUTES), paged_size=500, generator=False)
    users = {e["dn"]: {a: [str(v) for v in e["attributes"].get(a, [])] for a in ATTRIBUTES} for e in found if e.get("type") == "searchResEntry"}
    calls = [{"command": c.command, "script": c.script, "parameters": sorted(c.parameters)} for c in services.powershell.calls]
    with open(dump, "w", encoding="utf-8") as out:
        json.dump({"users": users, "calls": calls, "base_dn": demo.DEMO_BASE_DN}, out)
    return code


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], sys.argv[2:]))
