"""The PowerShell-remoting transport (core/services/powershell.py) through pypsrp, the real
client, to the loopback WSMan/PSRP server (tests/psrp_server.py) over HTTPS with a
throwaway CA and Basic authentication."""

from __future__ import annotations

import asyncio
import logging

import pytest
from psrpcore.types import PSCustomObject

from core.errors import ConfigError, ServiceError
from core.services.powershell import Cmdlet, PowerShellEndpoint
from psrp_server import CmdletError, PsrpServer, Runspace
from samba_dc import LOOPBACK, throwaway_password, write_certificates

HOSTILE = "O'Brien\"; Remove-Mailbox -Identity * $(Stop-Computer) `whoami` \n Get-Process\r\n'; exit"


class Echo(Runspace):
    """A session with two commands: Get-Thing echoes its parameters, Set-Thing records them."""

    configuration = "Microsoft.Exchange"

    def __init__(self) -> None:
        self.changes: list[dict] = []

    def cmdlets(self):
        def get(params):
            if params.get("Identity") == "missing":
                raise CmdletError("The operation couldn't be performed because object 'missing'\tcouldn't be found\non 'dc1'.",
                                  error_id="ManagementObjectNotFoundException")
            return [PSCustomObject(Identity=params.get("Identity"), Values=["SMTP:a@b.example", "X500:/o=Old"], Enabled=False)]

        def set_(params):
            self.changes.append(dict(params))
            return []

        return {"Get-Thing": get, "Set-Thing": set_}


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return write_certificates(tmp_path_factory.mktemp("psrp-tls"), LOOPBACK)


@pytest.fixture(scope="module")
def echo_server(tls):
    password = throwaway_password()
    runspace = Echo()
    server = PsrpServer({"/PowerShell": runspace}, username="svc-exchange@example.net", password=password,
                        certfile=str(tls["cert"]), keyfile=str(tls["key"]), address=LOOPBACK).start()
    server.runspace, server.password_value = runspace, password
    yield server
    server.stop()


@pytest.fixture
def server(echo_server):
    echo_server.reset()
    echo_server.runspace.changes.clear()
    return echo_server


def options(server, tls, **extra):
    base = {"url": f"https://{LOOPBACK}:{server.port}/PowerShell", "username": "svc-exchange@example.net",
            "password_env": "TENANTRY_TEST_EXCHANGE_PASSWORD", "ca_file": str(tls["ca"]), "timeout": 10}
    base.update(extra)
    return base


def endpoint(server, tls, password=None, **extra) -> PowerShellEndpoint:
    env = {"TENANTRY_TEST_EXCHANGE_PASSWORD": password or server.password_value}
    return PowerShellEndpoint("exchange", "Hosted Exchange", options(server, tls, **extra), environ=env)


async def test_hostile_values_reach_the_cmdlet_only_as_parameter_values(server, tls):
    ps = endpoint(server, tls)
    try:
        out = await ps.run(Cmdlet("Set-Thing", (("Identity", HOSTILE), ("DisplayName", HOSTILE), ("Enabled", False),
                                                ("EmailAddresses", ("SMTP:x@y.example", HOSTILE)), ("Clear", None))))
    finally:
        await ps.aclose()
    assert out == []
    assert [(c.command, c.script) for c in server.calls] == [("Set-Thing", False)]
    assert server.runspace.changes == [{"Identity": HOSTILE, "DisplayName": HOSTILE, "Enabled": False,
                                        "EmailAddresses": ["SMTP:x@y.example", HOSTILE], "Clear": None}]


async def test_output_objects_come_back_as_their_properties(server, tls):
    ps = endpoint(server, tls)
    try:
        out = await ps.run(Cmdlet("Get-Thing", (("Identity", "anna@contoso.example"),)))
    finally:
        await ps.aclose()
    assert out == [{"Identity": "anna@contoso.example", "Values": ["SMTP:a@b.example", "X500:/o=Old"], "Enabled": False}]
    assert server.open_shells() == 0  # aclose deleted the shell


async def test_a_cmdlet_error_is_one_sentence_with_its_own_message(server, tls):
    ps = endpoint(server, tls)
    try:
        with pytest.raises(ServiceError) as caught:
            await ps.run(Cmdlet("Get-Thing", (("Identity", "missing"),)))
        # the pool survives an error record: the next call works
        assert await ps.run(Cmdlet("Get-Thing", (("Identity", "x"),)))
    finally:
        await ps.aclose()
    message = str(caught.value)
    assert message == ("Hosted Exchange refused Get-Thing: The operation couldn't be performed because object "
                       "'missing' couldn't be found on 'dc1'.")
    assert caught.value.service == "exchange"


async def test_script_text_is_refused_by_the_no_language_endpoint(server, tls):
    """The double refuses AddScript as Exchange's endpoint does; the transport cannot send one."""
    ps = endpoint(server, tls)
    try:
        with pytest.raises(ServiceError, match="not recognized as the name of a cmdlet"):
            await ps.run(Cmdlet("Get-Thing; Remove-Mailbox"))
    finally:
        await ps.aclose()
    assert [c.script for c in server.calls] == [False]


async def test_a_cmdlet_past_its_timeout_is_stopped_and_fails(server, tls):
    ps = endpoint(server, tls, timeout=1)
    server.fail("Set-Thing", "timeout")
    try:
        with pytest.raises(ServiceError) as caught:
            await ps.run(Cmdlet("Set-Thing", (("Identity", "anna"),)))
        assert await ps.run(Cmdlet("Get-Thing", (("Identity", "x"),)))  # the pool is usable again
    finally:
        await ps.aclose()
    assert str(caught.value) == ("Hosted Exchange did not finish Set-Thing within 1 s; it was stopped and may or may "
                                 "not have made its change.")


async def test_a_dropped_connection_fails_the_call_and_the_next_one_reconnects(server, tls):
    ps = endpoint(server, tls)
    server.fail("Set-Thing", "drop")
    try:
        with pytest.raises(ServiceError, match=r"^The connection to Hosted Exchange at https://.* was lost during Set-Thing: "
                                               r"\w+; the cmdlet may or may not have run\.$"):
            await ps.run(Cmdlet("Set-Thing", (("Identity", "anna"),)))
        assert await ps.run(Cmdlet("Get-Thing", (("Identity", "x"),)))
    finally:
        await ps.aclose()
    assert server.runspace.changes == [{"Identity": "anna"}]  # it did run: the answer was lost


async def test_a_session_the_server_dropped_is_reopened_once(server, tls):
    ps = endpoint(server, tls)
    try:
        await ps.run(Cmdlet("Get-Thing", (("Identity", "a"),)))
        server.forget_shells()  # idle timeout on the server
        assert await ps.run(Cmdlet("Set-Thing", (("Identity", "b"),))) == []
    finally:
        await ps.aclose()
    assert server.runspace.changes == [{"Identity": "b"}]  # run once, on the new session
    assert [c.command for c in server.calls] == ["Get-Thing", "Set-Thing"]


async def test_an_endpoint_nobody_listens_on_is_one_sentence_saying_nothing_was_sent(tls):
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago, and nobody listens on
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
    ps = PowerShellEndpoint("exchange", "Hosted Exchange", {"url": f"https://{LOOPBACK}:{port}/PowerShell", "username": "u",
                                                            "password_env": "P", "ca_file": str(tls["ca"])}, environ={"P": throwaway_password()})
    with pytest.raises(ServiceError) as caught:
        await ps.run(Cmdlet("Get-Thing"))
    await ps.aclose()
    assert str(caught.value) == (f"Hosted Exchange at https://{LOOPBACK}:{port}/PowerShell cannot be reached (ConnectionError); "
                                 "Get-Thing was not sent.")


async def test_wrong_password_and_unknown_ca_are_one_sentence_each(server, tls):
    ps = endpoint(server, tls, password="not-the-password")
    with pytest.raises(ServiceError) as refused:
        await ps.run(Cmdlet("Get-Thing"))
    await ps.aclose()
    assert str(refused.value) == (f"Hosted Exchange refused the credentials of svc-exchange@example.net "
                                  f"(https://{LOOPBACK}:{server.port}/PowerShell).")
    ps = endpoint(server, tls, ca_file=str(tls["wrong_ca"]))
    with pytest.raises(ServiceError) as untrusted:
        await ps.run(Cmdlet("Get-Thing"))
    await ps.aclose()
    assert str(untrusted.value) == (f"The TLS certificate of Hosted Exchange at https://{LOOPBACK}:{server.port}/PowerShell "
                                    "could not be verified (set ca_file if it is signed by a private CA).")
    assert server.calls == []


async def test_the_wrong_session_configuration_is_refused(server, tls):
    ps = endpoint(server, tls, configuration_name="Microsoft.PowerShell")
    with pytest.raises(ServiceError, match=r"^Hosted Exchange refused Get-Thing: The WS-Management service cannot process "
                                           r"the request\. The resource URI \(http://schemas\.microsoft\.com/powershell/"
                                           r"Microsoft\.PowerShell\) was not found"):
        await ps.run(Cmdlet("Get-Thing"))
    await ps.aclose()


async def test_calls_run_off_the_event_loop(server, tls):
    ps = endpoint(server, tls, timeout=2)
    server.fail("Set-Thing", "timeout")
    ticked = asyncio.Event()

    async def ticker():
        for _ in range(20):
            await asyncio.sleep(0)
        ticked.set()

    call = asyncio.ensure_future(ps.run(Cmdlet("Set-Thing")))
    tick = asyncio.ensure_future(ticker())
    done, _ = await asyncio.wait({call, tick}, return_when=asyncio.FIRST_COMPLETED)
    assert tick in done and not call.done()
    with pytest.raises(ServiceError):
        await call
    await ps.aclose()


async def test_the_password_is_in_no_log_message_or_error(server, tls, caplog):
    caplog.set_level(logging.DEBUG)  # pypsrp logs every envelope at DEBUG
    ps = endpoint(server, tls)
    await ps.run(Cmdlet("Get-Thing", (("Identity", "anna@contoso.example"),)))
    server.fail("Set-Thing", "error", message=f"echoing {server.password_value} back")
    with pytest.raises(ServiceError) as caught:
        await ps.run(Cmdlet("Set-Thing"))
    await ps.aclose()
    assert str(caught.value) == "Hosted Exchange refused Set-Thing: echoing *** back."
    basic = server.authorizations[0].split(" ", 1)[1]
    assert server.password_value not in repr(ps)
    assert "Get-Thing" in caplog.text  # the envelopes were logged, so the checks below look at something
    for secret in (server.password_value, basic):
        assert secret not in caplog.text.replace(f"echoing {server.password_value} back", "")


def test_configuration_faults_are_one_sentence(tls, tmp_path):
    base = {"url": "https://mail.example.net/PowerShell", "username": "svc@example.net", "password_env": "P"}
    cases = [
        ({"password": "x"}, "services.exchange.password is not allowed: use password_env or password_file."),
        ({"url": "http://mail.example.net/PowerShell"}, "services.exchange.url must use https:// (http:// is allowed only to a loopback address)."),
        ({"url": "https://u:p@mail.example.net/PowerShell"}, "services.exchange.url must be an https:// URL without credentials, not 'https://u:p@mail.example.net/PowerShell'."),
        ({"username": None}, "services.exchange.username is missing: basic authentication needs username and password_env or password_file."),
        ({"auth": "credssp"}, "services.exchange.auth must be one of basic, negotiate, kerberos, not 'credssp'."),
        ({"password_env": "UNSET"}, "The environment variable UNSET (services.exchange.password_env) is not set."),
        ({"timeout": 0}, "services.exchange.timeout must be a number of seconds of at least 1, not 0."),
        ({"ca_file": str(tmp_path / "missing.pem")},
         f"The CA file {tmp_path / 'missing.pem'} (services.exchange.ca_file) does not exist or is not a file."),
    ]
    for change, message in cases:
        opts = {k: v for k, v in (base | change).items() if v is not None}
        with pytest.raises(ConfigError) as caught:
            PowerShellEndpoint("exchange", "Hosted Exchange", opts, environ={"P": "secret"})
        assert str(caught.value) == message


def test_the_plan_shows_a_cmdlet_with_its_parameters():
    cmdlet = Cmdlet("Set-Mailbox", (("Identity", "o'brien@contoso.example"), ("EmailAddresses", ("SMTP:a@b", "X500:/o=x")),
                                    ("EmailAddressPolicyEnabled", False), ("Force", True), ("CustomAttribute1", None)))
    assert cmdlet.show() == ("Set-Mailbox -Identity 'o''brien@contoso.example' -EmailAddresses 'SMTP:a@b','X500:/o=x' "
                             "-EmailAddressPolicyEnabled:$false -Force -CustomAttribute1 $null")
    assert Cmdlet.from_json(cmdlet.to_json()) == cmdlet


def test_the_cmdlet_adapters_refuse_faulty_settings_with_one_sentence():
    from core.config import LayoutConfig
    from core.model import Service
    from core.services.exchange import ExchangePowerShellAdapter
    from core.services.lync import LyncPowerShellAdapter

    layout = LayoutConfig()
    exchange = Service("exchange", "Hosted Exchange", "exchange_powershell", True, ())
    ocs = Service("ocs", "Skype for Business", "lync_powershell", True, ())
    planned = Service("exchange", "Hosted Exchange", "exchange_powershell", True, ("Basic 2 GB", "Premium 50 GB"))
    cases = [
        (ExchangePowerShellAdapter, exchange, {"plan_databases": ["DB01"]},
         'services.exchange.plan_databases must be a table of plan = "database".'),
        (ExchangePowerShellAdapter, planned, {"plan_quotas": {"Gold": {"issue_warning": "1GB", "prohibit_send": "2GB",
                                                                        "prohibit_send_receive": "3GB"}}},
         "services.exchange.plan_quotas: 'Gold' is not one of the service's plans (Basic 2 GB, Premium 50 GB)."),
        (ExchangePowerShellAdapter, planned, {"plan_quotas": {"Basic 2 GB": {"issue_warning": "1GB", "prohibit_send": "2GB"}}},
         "services.exchange.plan_quotas.'Basic 2 GB' must give issue_warning, prohibit_send and prohibit_send_receive."),
        (ExchangePowerShellAdapter, planned, {"plan_quotas": {"Basic 2 GB": {"issue_warning": "1 GiB", "prohibit_send": "2GB",
                                                                              "prohibit_send_receive": "3GB"}}},
         "services.exchange.plan_quotas.'Basic 2 GB'.issue_warning must be a size up to 2TB such as \"2GB\", or \"Unlimited\", "
         "not '1 GiB'."),
        (ExchangePowerShellAdapter, planned, {"plan_quotas": {"Basic 2 GB": {"issue_warning": "1GB", "prohibit_send": "2GB",
                                                                              "prohibit_send_receive": "3TB"}}},
         "services.exchange.plan_quotas.'Basic 2 GB'.prohibit_send_receive must be a size up to 2TB such as \"2GB\", or "
         "\"Unlimited\", not '3TB'."),
        (ExchangePowerShellAdapter, planned, {"plan_quotas": {"Basic 2 GB": {"issue_warning": "Unlimited", "prohibit_send": "2GB",
                                                                              "prohibit_send_receive": "3GB"}}},
         "services.exchange.plan_quotas.'Basic 2 GB': issue_warning ≤ prohibit_send ≤ prohibit_send_receive, as Exchange requires."),
        (ExchangePowerShellAdapter, planned, {"plan_quotas": {"Basic 2 GB": {"issue_warning": "1GB", "prohibit_send": "2049MB",
                                                                              "prohibit_send_receive": "2GB"}}},
         "services.exchange.plan_quotas.'Basic 2 GB': issue_warning ≤ prohibit_send ≤ prohibit_send_receive, as Exchange requires."),
        (ExchangePowerShellAdapter, exchange, {"address_book_policy": ""},
         "services.exchange.address_book_policy must be a non-empty string (a template over {code})."),
        (LyncPowerShellAdapter, ocs, {"policies": {"BogusPolicy": "x"}},
         "services.ocs.policies: BogusPolicy is not a policy type (known: ArchivingPolicy, ClientPolicy, ConferencingPolicy, "
         "DialPlan, ExternalAccessPolicy, LocationPolicy, MobilityPolicy, PinPolicy, PresencePolicy, VoicePolicy)."),
        (LyncPowerShellAdapter, ocs, {"registrar_pool": 5}, "services.ocs.registrar_pool must be a pool's FQDN (a template over {code})."),
    ]
    for cls, service, options, message in cases:
        with pytest.raises(ConfigError) as caught:
            cls(service, options, layout)
        assert str(caught.value) == message
    quotas = {"issue_warning": "1.8GB", "prohibit_send": "1.9 GB", "prohibit_send_receive": "Unlimited"}
    assert ExchangePowerShellAdapter(planned, {"plan_quotas": {"Basic 2 GB": quotas}}, layout).quotas == {
        "Basic 2 GB": {"IssueWarningQuota": "1.8GB", "ProhibitSendQuota": "1.9 GB", "ProhibitSendReceiveQuota": "Unlimited"}}
    # a configured but unused service needs no credentials: nothing is read until a call
    assert LyncPowerShellAdapter(ocs, {"url": "https://pool.example.net/OcsPowershell"}, layout).options["configuration_name"] == "Microsoft.PowerShell"


def test_the_lync_hosting_ids_follow_the_tenant_map_and_a_destination_without_one_is_refused():
    """msRTCSIP-TenantId / -GroupingID are directory attributes of the move (no cmdlet sets
    them): the destination's ids from its tenant-map table; a user in a hosting tenant
    cannot move to a customer with none (it would stay in the old tenant)."""
    from core.config import LayoutConfig
    from core.model import Customer, Service, User
    from core.services.base import MoveContext
    from core.services.lync import LyncPowerShellAdapter
    from core.tenants import Tenant, TenantMap

    ocs = Service("ocs", "Skype for Business", "lync_powershell", True, ())
    guids = ["0b5c4d3e-1111-4a4a-8b8b-00000000000" + str(i) for i in range(4)]
    tenants = TenantMap([Tenant(guids[0], "C1", ("one.example",), {"ocs": {"tenant_id": "{" + guids[2].upper() + "}"}}),
                         Tenant(guids[1], "C2", ("two.example",), {})])
    adapter = LyncPowerShellAdapter(ocs, {"url": "https://pool.example.net/OcsPowershell"}, LayoutConfig(), tenants=tenants)
    one = Customer("One", "OU=One,OU=Hosting,DC=example,DC=net", domains=("one.example",), code="C1", guid=guids[0])
    two = Customer("Two", "OU=Two,OU=Hosting,DC=example,DC=net", domains=("two.example",), code="C2", guid=guids[1])
    user = User("CN=A,OU=Users,OU=Two,OU=Hosting,DC=example,DC=net", "A", "a.c2", "a@two.example",
                attributes=(("msRTCSIP-TenantId", (guids[3],)), ("msRTCSIP-GroupingID", (guids[3],))))
    remote = {"identity": guids[3], "sip": "sip:a@two.example", "pool": None, "policies": {}}

    def context(source, destination):
        return MoveContext(user, source, destination, user.dn, "a@x.example", None, "sip:a@x.example", "a", None, remote)

    moved = adapter.plan_move(context(two, one))
    assert moved.attributes == {"msRTCSIP-TenantId": ((guids[3],), (guids[2],)), "msRTCSIP-GroupingID": ((guids[3],), (guids[2],))}
    refused = adapter.plan_move(context(one, two))
    assert [x.message for x in refused.problems] == [
        'Skype for Business: a@two.example belongs to a hosting tenant, and no tenant_id is configured for Two ([tenants."…".ocs]).']
    assert not refused.steps and not refused.attributes
    bad = TenantMap([Tenant(guids[0], "C1", (), {"ocs": {"tenant_id": "C1"}})])
    with pytest.raises(ConfigError) as caught:
        LyncPowerShellAdapter(ocs, {}, LayoutConfig(), tenants=bad)
    assert str(caught.value) == f'tenants."{guids[0]}".ocs.tenant_id must be a GUID, not \'C1\'.'


def test_a_journaled_exchange_step_may_name_only_the_databases_configured_for_its_customers():
    from core.config import LayoutConfig
    from core.model import Customer, Service
    from core.services.exchange import ExchangePowerShellAdapter

    service = Service("exchange", "Hosted Exchange", "exchange_powershell", True, ("Basic 2 GB", "Premium 50 GB"))
    adapter = ExchangePowerShellAdapter(service, {"plan_databases": {"Basic 2 GB": "DB02"}}, LayoutConfig())
    customers = [Customer("One", "OU=One,OU=Hosting,DC=example,DC=net", domains=("one.example",), code="C1")]
    guid = "0b5c4d3e-1111-4a4a-8b8b-000000000001"

    def move(target: str, back: str):
        return adapter.cmdlet_step("a@one.example", Cmdlet("New-MoveRequest", (("Identity", guid), ("TargetDatabase", target))),
                                   [Cmdlet("Remove-MoveRequest", (("Identity", guid), ("Confirm", False))),
                                    Cmdlet("New-MoveRequest", (("Identity", guid), ("TargetDatabase", back)))],
                                   {"Database": "DB07"}, {"Database": target})

    assert adapter.foreign_call(move("DB02", "DB07"), customers) is None  # the plan's database; back where it was
    assert adapter.foreign_call(move("DB01", "DB07"), customers) is None  # the default database
    assert adapter.foreign_call(move("DB99", "DB07"), customers) == (
        "sets -TargetDatabase to DB99, a database none of the customers of this job is given")
    assert adapter.foreign_call(move("DB02", "DB66"), customers) == (
        "sets -TargetDatabase to DB66, a database none of the customers of this job is given")
