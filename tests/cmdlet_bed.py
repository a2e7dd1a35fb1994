"""The Exchange + Lync platform the cmdlet adapters are tested (and benchmarked) against:
the loopback PSRP server (tests/psrp_server.py, on core/demo/powershell.py) with the
Exchange and Lync sessions (core/demo/exchange.py, core/demo/lync.py) on a Samba DC, a Tenantry
configuration using it, and users provisioned as the platform's own tools would."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from core.demo.exchange import ExchangeOrganization, ExchangeRunspace
from core.demo.lync import LyncDeployment, LyncRunspace
from core.services.powershell import Cmdlet, PowerShellEndpoint
from directory_fixtures import write_dc_config
from move_fixtures import DESTINATION, SOURCE, make_user
from psrp_server import PsrpServer
from samba_dc import LOOPBACK, throwaway_password, write_certificates

PASSWORD_ENV = "TENANTRY_TEST_EXCHANGE_PASSWORD"
ACCOUNT = "svc-exchange@example.net"
POOLS = ("pool1.lync.example.net", "pool2.lync.example.net")
# the Lync hosting tenants (the source's grouping id is its tenant id; the destination's its own)
LYNC_TENANTS = {SOURCE: "6f1c1d2e-0b6a-4e59-9d1e-5a1b2c3d4e01", DESTINATION: "6f1c1d2e-0b6a-4e59-9d1e-5a1b2c3d4e02"}
DESTINATION_GROUPING = "6f1c1d2e-0b6a-4e59-9d1e-5a1b2c3d4e03"
# the Basic plan's mailboxes live on DB02 with their own quotas (the Premium plan keeps the defaults)
QUOTA_CONFIG = ('plan_quotas = { "Basic 2 GB" = { issue_warning = "1.8GB", prohibit_send = "1.9GB", prohibit_send_receive = "2GB" } }\n'
                'plan_databases = { "Basic 2 GB" = "DB02" }\n')


def start_platform(samba_dc, tls_dir: Path) -> SimpleNamespace:
    """The organisation and the topology in the DC, and the PSRP server serving both
    endpoints over HTTPS (Basic, a throwaway password); ``stop()`` ends it."""
    tls = write_certificates(tls_dir, LOOPBACK)
    conn = samba_dc.connect()
    org = ExchangeOrganization(conn, samba_dc.base_dn)
    org.install()
    lync = LyncDeployment(conn, samba_dc.base_dn, lock=org.lock)
    lync.install(POOLS)
    password = throwaway_password()
    server = PsrpServer({"/PowerShell": ExchangeRunspace(org), "/OcsPowershell": LyncRunspace(lync)}, username=ACCOUNT,
                        password=password, certfile=str(tls["cert"]), keyfile=str(tls["key"]), address=LOOPBACK).start()
    options = {"url": f"https://{LOOPBACK}:{server.port}/PowerShell", "username": ACCOUNT, "password_env": PASSWORD_ENV,
               "ca_file": str(tls["ca"]), "timeout": 3}
    lync_options = {**options, "url": f"https://{LOOPBACK}:{server.port}/OcsPowershell", "configuration_name": "Microsoft.PowerShell"}

    def stop() -> None:
        server.stop()
        conn.unbind()

    return SimpleNamespace(server=server, org=org, lync=lync, password=password, options=options, lync_options=lync_options,
                           stop=stop)


def write_platform_config(samba_dc, platform: SimpleNamespace, path: Path) -> Path:
    """A config whose exchange and ocs services run on the platform's cmdlets. The source's
    address book follows the [services.exchange] templates, the destination's is named in
    its tenant table; both have Lync hosting tenant ids."""
    def toml(options):
        return "".join(f'{k} = {v!r}\n'.replace("'", '"') for k, v in options.items() if k != "configuration_name")
    services = (
        '\n[services.exchange]\ndisplay_name = "Hosted Exchange"\nadapter = "exchange_powershell"\n'
        'plans = ["Basic 2 GB", "Premium 50 GB"]\n' + QUOTA_CONFIG + toml(platform.options) +
        '\n[services.ocs]\ndisplay_name = "Office Communications Server"\nadapter = "lync_powershell"\n'
        f'registrar_pool = "{POOLS[0]}"\npolicies = {{ ConferencingPolicy = "{{code}} Conferencing" }}\n'
        + toml(platform.lync_options)
    )
    destination = samba_dc.seed.customer(DESTINATION).dn
    code = samba_dc.seed.tenants(())[destination]["code"]
    source = samba_dc.seed.customer(SOURCE).dn
    tenants = (samba_dc.seed.tenants_toml(services=())
               + f'[tenants.{json.dumps(destination)}.exchange]\naddress_book_policy = "{code} Tenant ABP"\n'
               + f'[tenants.{json.dumps(destination)}.ocs]\nregistrar_pool = "{POOLS[1]}"\n'
               + f'tenant_id = "{{{LYNC_TENANTS[DESTINATION]}}}"\ngrouping_id = "{DESTINATION_GROUPING.upper()}"\n'
               + f'[tenants.{json.dumps(source)}.ocs]\ntenant_id = "{LYNC_TENANTS[SOURCE]}"\n')
    return write_dc_config(samba_dc, path, extra=services, tenants=tenants)


async def add_tenants(directory, platform: SimpleNamespace) -> None:
    """The source's and the destination's address books and conferencing policies."""
    source, destination = await directory.customer(SOURCE), await directory.customer(DESTINATION)
    platform.org.add_tenant(source.code)
    platform.org.add_tenant(destination.code, f"{destination.code} Tenant")
    platform.lync.policies = {"ConferencingPolicy": {f"{source.code} Conferencing", f"{destination.code} Conferencing"}}


async def admin(exchange, *cmdlets: Cmdlet, lync: bool = False) -> list:
    """What the platform's own provisioning did before Tenantry came along."""
    options = exchange.lync_options if lync else exchange.options
    endpoint = PowerShellEndpoint("admin", "Exchange", options, environ={PASSWORD_ENV: exchange.password})
    try:
        return [await endpoint.run(c) for c in cmdlets]
    finally:
        await endpoint.aclose()


async def mailbox_user(session, exchange, *, policy_enabled: bool = False, **kwargs):
    """A user of the source customer with a mailbox in its tenant's address book (with the
    SIP: address Exchange keeps for a Lync user), homed on the source's registrar pool with
    its conferencing policy."""
    user = await make_user(session.directory, services=("exchange", "ocs"), **kwargs)
    source = user.source
    (box,), _ = await admin(exchange,
                            Cmdlet("Enable-Mailbox", (("Identity", user.dn), ("Database", "DB01"))),
                            Cmdlet("Set-Mailbox", (("Identity", user.dn), ("CustomAttribute1", source.code),
                                                   ("EmailAddressPolicyEnabled", policy_enabled),
                                                   ("AddressBookPolicy", f"{source.code} ABP"),
                                                   ("OfflineAddressBook", f"{source.code} OAB"))))
    await admin(exchange, Cmdlet("Set-Mailbox", (("Identity", user.dn),
                                                 ("EmailAddresses", (*box["EmailAddresses"], f"SIP:{user.upn}")))))
    await admin(exchange, Cmdlet("Move-CsUser", (("Identity", user.dn), ("Target", POOLS[0]), ("Confirm", False))),
                Cmdlet("Grant-CsConferencingPolicy", (("Identity", user.dn), ("PolicyName", f"{source.code} Conferencing"))),
                lync=True)
    exchange.org.write(user.dn, {"msRTCSIP-TenantId": [LYNC_TENANTS[SOURCE]], "msRTCSIP-GroupingID": [LYNC_TENANTS[SOURCE]]})
    return user
