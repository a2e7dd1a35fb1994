"""Kerberos to the PowerShell endpoint: pypsrp, the real client, authenticates with the
operator's own ticket (``kinit`` against the Samba DC's KDC, no password in the
configuration) to the loopback PSRP server over HTTPS, whose GSS-API acceptor checks the
ticket against a keytab the Samba DC exported for the endpoint's ``HTTP/<host>`` SPN.

The service account, its SPN and the keytab are made with ``samba-tool`` (``user create``,
``spn add``, ``domain exportkeytab``), as an administrator does for an IIS site that
accepts Kerberos.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from core.errors import ServiceError
from core.services.powershell import Cmdlet, PowerShellEndpoint
from psrp_server import PsrpServer
from samba_dc import LOOPBACK, REALM, _clean_env, throwaway_password, write_certificates
from test_powershell import Echo

pytestmark = pytest.mark.dc
SPN_HOST = f"psrp.{REALM.lower()}"  # the name the endpoint's SPN is registered under
OPERATOR = "sp-admin"


def samba_tool(samba_dc, *argv: str) -> str:
    done = subprocess.run(["samba-tool", *argv, "-s", str(Path(samba_dc.targetdir) / "etc" / "smb.conf")],
                          capture_output=True, text=True, env=_clean_env(), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def kerberos_endpoint(samba_dc, tmp_path_factory):
    """The PSRP server's service account with HTTP/<host> and its exported keytab; the
    server started on it; an operator's ticket in a private cache."""
    where = tmp_path_factory.mktemp("psrp-kerberos")
    keytab = where / "http.keytab"
    samba_tool(samba_dc, "user", "create", "svc-psrp", throwaway_password())
    samba_tool(samba_dc, "spn", "add", f"HTTP/{SPN_HOST}", "svc-psrp")
    samba_tool(samba_dc, "domain", "exportkeytab", str(keytab), f"--principal=HTTP/{SPN_HOST}")
    tls = write_certificates(where / "tls", LOOPBACK)
    server = PsrpServer({"/PowerShell": Echo()}, keytab=str(keytab), certfile=str(tls["cert"]), keyfile=str(tls["key"]),
                        address=LOOPBACK).start()
    env = {"KRB5_CONFIG": samba_dc.krb5_conf, "KRB5CCNAME": f"FILE:{where / 'ccache'}"}
    principal = f"{samba_dc.seed.operator(OPERATOR).sam}@{samba_dc.realm}"
    done = subprocess.run(["kinit", principal], input=samba_dc.operator_passwords[OPERATOR] + "\n",
                          capture_output=True, text=True, env={**os.environ, **env}, timeout=60)
    assert done.returncode == 0, done.stderr
    yield SimpleNamespace(server=server, env=env, principal=principal, ca=str(tls["ca"]), where=where)
    server.stop()


def options(ctx, **extra) -> dict:
    return {"url": f"https://{LOOPBACK}:{ctx.server.port}/PowerShell", "auth": "kerberos", "kerberos_host": SPN_HOST,
            "ca_file": ctx.ca, "timeout": 10, **extra}


@pytest.fixture
def ticket(kerberos_endpoint, monkeypatch):
    """The operator's ticket cache and the realm's krb5.conf, for this process's GSS-API."""
    for name, value in kerberos_endpoint.env.items():
        monkeypatch.setenv(name, value)
    kerberos_endpoint.server.reset()
    kerberos_endpoint.server.principals.clear()
    return kerberos_endpoint


def test_pypsrp_authenticates_with_the_operators_kerberos_ticket(ticket):
    endpoint = PowerShellEndpoint("exchange", "Hosted Exchange", options(ticket), environ={})
    try:
        (out,) = asyncio.run(_calls(endpoint, Cmdlet("Get-Thing", (("Identity", "a@b.example"),)), Cmdlet("Set-Thing", (("Identity", "x"),))))[:1]
    finally:
        asyncio.run(endpoint.aclose())
    assert out[0]["Identity"] == "a@b.example"
    # one Kerberos handshake for the connection, then every request on it is the operator's
    assert ticket.server.principals == [ticket.principal]
    tokens = [a for a in ticket.server.authorizations if a]
    assert len(tokens) == 1 and tokens[0].split(" ", 1)[0] in ("Negotiate", "Kerberos")
    assert not any(a.startswith("Basic") for a in ticket.server.authorizations)
    assert [c.command for c in ticket.server.calls] == ["Get-Thing", "Set-Thing"]


async def _calls(endpoint: PowerShellEndpoint, *cmdlets: Cmdlet) -> list:
    return [await endpoint.run(c) for c in cmdlets]


def test_a_ticket_for_an_spn_the_endpoint_has_no_key_for_is_one_sentence(ticket):
    """The url's own address as the SPN host (no kerberos_host): the KDC has no such
    principal, so no ticket; nothing reaches the server but the unauthenticated probe."""
    endpoint = PowerShellEndpoint("exchange", "Hosted Exchange", options(ticket, kerberos_host=None), environ={})
    with pytest.raises(ServiceError) as caught:
        asyncio.run(endpoint.run(Cmdlet("Set-Thing", (("Identity", "x"),))))
    asyncio.run(endpoint.aclose())
    message = str(caught.value)
    assert message.startswith(f"Hosted Exchange could not get a Kerberos ticket for HTTP/{LOOPBACK}"), message
    assert "\n" not in message and "Traceback" not in message
    assert ticket.server.calls == [] and ticket.server.principals == []


def test_without_a_ticket_the_endpoint_says_so_in_one_sentence(ticket, monkeypatch):
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{ticket.where / 'no-such-ccache'}")
    endpoint = PowerShellEndpoint("exchange", "Hosted Exchange", options(ticket), environ={})
    with pytest.raises(ServiceError) as caught:
        asyncio.run(endpoint.run(Cmdlet("Set-Thing", (("Identity", "x"),))))
    asyncio.run(endpoint.aclose())
    assert str(caught.value).startswith(f"Hosted Exchange could not get a Kerberos ticket for HTTP/{SPN_HOST}"), str(caught.value)
    assert ticket.server.calls == []
