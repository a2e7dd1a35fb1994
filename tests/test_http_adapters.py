"""The HTTP client and the generic HTTP adapter against a real server on 127.0.0.1 (BlackBerry
has its own UEM servers: test_blackberry.py),
plus httpx.MockTransport for the fault cases a real server cannot stage precisely."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from core.config import LayoutConfig
from core.errors import ConfigError
from core.model import Customer, Service, ServicePlan, User
from core.plan import COLLISION, PLAN_MISSING, SERVICE_MISSING, Step
from core.services.base import MoveContext
from core.services.blackberry import BlackBerryAdapter
from core.services.http import HttpAdapter
from core.services.http_client import ServiceClient, ServiceError
from core.tenants import Tenant, TenantMap
from provisioning_server import ProvisioningServer

TOKEN_ENV = "TENANTRY_TEST_SERVICE_TOKEN"
BLACKBERRY = Service("blackberry", "BlackBerry", "blackberry", True, ("Standard", "Enterprise"))
CRM = Service("crm", "Hosted CRM", "http", True)

CONTOSO = Customer("Contoso", "OU=Contoso,OU=Hosting,DC=example,DC=net", domains=("contoso.example",), code="CONTOSO", services=("blackberry", "crm"))
FABRIKAM = Customer("Fabrikam", "OU=Fabrikam,OU=Hosting,DC=example,DC=net", domains=("fabrikam.example",), code="FABRIKAM", services=("blackberry", "crm"))
# The SP's tenant map: the UEM tenant of each customer (keyed by DN, as [tenants] may be).
TENANTS = TenantMap([
    Tenant(CONTOSO.dn, "CONTOSO", ("contoso.example",), {"blackberry": {"tenant_guid": "contoso"}}),
    Tenant(FABRIKAM.dn, "FABRIKAM", ("fabrikam.example",), {"blackberry": {"tenant_guid": "fabrikam"}}),
])

ANNA = User(
    dn="CN=Anna Berg,OU=Users,OU=Contoso,OU=Hosting,DC=example,DC=net",
    cn="Anna Berg",
    sam="anna",
    upn="anna@contoso.example",
    display_name="Anna Berg",
    first="Anna",
    last="Berg",
    email="anna.berg@contoso.example",
    services=("blackberry", "crm"),
    plans=(ServicePlan("blackberry", "Standard"),),
)
ANNA_UEM = {
    "username": "anna@contoso.example",
    "emailAddress": "anna.berg@contoso.example",
    "displayName": "Anna Berg",
    "firstName": "Anna",
    "lastName": "Berg",
    "department": "Sales",
    "city": "Oslo",
}


def context(plan: str | None = "Standard", *, upn="anna@fabrikam.example", email="anna.berg@fabrikam.example", remote=None) -> MoveContext:
    return MoveContext(
        user=ANNA,
        source=CONTOSO,
        destination=FABRIKAM,
        new_dn="CN=Anna Berg,OU=Users,OU=Fabrikam,OU=Hosting,DC=example,DC=net",
        upn=upn,
        email=email,
        sip=None,
        sam="anna",
        plan=ServicePlan("blackberry", plan) if plan else None,
        remote=remote or {},
    )


@pytest.fixture
def server(provisioning_server, monkeypatch) -> ProvisioningServer:  # noqa: F811
    provisioning_server.reset()
    monkeypatch.setenv(TOKEN_ENV, provisioning_server.token)
    return provisioning_server


def options(server: ProvisioningServer, **extra) -> dict:
    return {"url": server.url, "token_env": TOKEN_ENV, "timeout": 1, "backoff": 0.01, **extra}


def replay(step: Step) -> Step:
    """A step as another process reads it back from the journal."""
    return Step.from_json(json.loads(json.dumps(step.to_json())))


# -- retries -------------------------------------------------------------------------------------


ANNA_PATH = "/users/anna@contoso.example"


@pytest.fixture
async def client(server):
    server.seed_record("anna@contoso.example", customer="CONTOSO", email="anna.berg@contoso.example")
    client = ServiceClient("crm", options(server, url=server.url + "/provisioning"), display_name="Hosted CRM")
    yield client
    await client.aclose()


async def test_get_is_retried_on_503(server, client):
    server.fail_next("GET", "/provisioning/users/*", "status:503")
    assert (await client.request("GET", ANNA_PATH)).body["customer"] == "CONTOSO"
    assert len(server.calls_to("GET")) == 2


async def test_delete_is_retried_on_503_and_502(server, client):
    server.fail_next("DELETE", "/provisioning/users/*", "status:503")
    server.fail_next("DELETE", "/provisioning/users/*", "status:502")
    assert (await client.request("DELETE", ANNA_PATH)).status == 204
    assert len(server.calls_to("DELETE")) == 3 and server.snapshot()["records"] == {}


async def test_put_is_retried_on_503(server):
    server.seed_record("anna@contoso.example", customer="CONTOSO", email="anna.berg@contoso.example")
    adapter = HttpAdapter(CRM, options(server, url=server.url + "/provisioning"), LayoutConfig())
    try:
        remote, _ = await adapter.inspect(context())
        (step,) = adapter.plan_move(context(remote=remote)).steps
        server.fail_next("PUT", "/provisioning/users/*", "status:503")
        await adapter.perform(replay(step))
    finally:
        await adapter.aclose()
    assert len(server.calls_to("PUT")) == 2
    assert server.snapshot()["records"]["anna@fabrikam.example"]["customer"] == "FABRIKAM"


async def test_post_is_never_retried(server, client):
    server.fail_next("POST", "/provisioning/users", "status:503")
    with pytest.raises(ServiceError) as caught:
        await client.request("POST", "/users", json={"upn": "new@contoso.example"})
    assert str(caught.value) == "Hosted CRM answered POST /users with 503 Service Unavailable: Injected 503."
    assert caught.value.status == 503
    assert len(server.calls_to("POST")) == 1 and "new@contoso.example" not in server.snapshot()["records"]


async def test_retries_stop_after_three_tries(server, client):
    server.fail_next("GET", "/provisioning/users/*", "status:503", times=5)
    with pytest.raises(ServiceError) as caught:
        await client.request("GET", ANNA_PATH)
    assert str(caught.value) == f"Hosted CRM answered GET {ANNA_PATH} with 503 Service Unavailable, 3 tries: Injected 503."
    assert len(server.calls_to("GET")) == 3


async def test_500_is_not_retried(server, client):
    server.fail_next("GET", "/provisioning/users/*", "status:500", message="Database unavailable")
    with pytest.raises(ServiceError, match=r"500 Internal Server Error: Database unavailable\.$"):
        await client.request("GET", ANNA_PATH)
    assert len(server.calls) == 1


async def test_a_dropped_connection_on_get_is_retried(server, client):
    server.fail_next("GET", "/provisioning/users/*", "disconnect")
    assert (await client.request("GET", ANNA_PATH)).status == 200
    assert len(server.calls_to("GET")) == 2


# -- failures as one clear sentence ---------------------------------------------------------------


async def test_timeout_is_one_clear_sentence(server):
    server.seed_record("anna@contoso.example", customer="CONTOSO")
    server.fail_next("GET", "/provisioning/users/*", "timeout")
    adapter = HttpAdapter(CRM, options(server, url=server.url + "/provisioning", timeout=0.3, retries=0), LayoutConfig())
    try:
        with pytest.raises(ServiceError) as caught:
            await adapter.inspect(context())
    finally:
        await adapter.aclose()
    assert str(caught.value) == f"Hosted CRM did not answer within 0.3 s (GET {ANNA_PATH})."


async def test_timeout_after_retries_says_how_many_tries():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        raise httpx.ReadTimeout("timed out", request=request)

    client = ServiceClient("crm", {"url": "https://crm.example", "timeout": 2, "backoff": 0}, display_name="Hosted CRM", transport=httpx.MockTransport(handler))
    with pytest.raises(ServiceError) as caught:
        await client.request("DELETE", "/users/x")
    assert str(caught.value) == "Hosted CRM did not answer within 2 s (DELETE /users/x, 3 tries)."
    assert calls == ["DELETE"] * 3
    calls.clear()
    with pytest.raises(ServiceError, match=r"did not answer within 2 s \(POST /users\)\.$"):
        await client.request("POST", "/users", json={})
    assert calls == ["POST"]
    await client.aclose()


async def test_post_retried_only_when_the_caller_says_it_is_idempotent():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        return httpx.Response(503 if len(calls) == 1 else 204)

    client = ServiceClient("crm", {"url": "https://crm.example", "backoff": 0}, transport=httpx.MockTransport(handler))
    assert (await client.request("POST", "/groups/g/users", json={}, idempotent=True)).status == 204
    assert calls == ["POST", "POST"]
    await client.aclose()


async def test_malformed_json_is_one_clear_sentence(server, client):
    server.fail_next("GET", "/provisioning/users/*", "malformed")
    with pytest.raises(ServiceError) as caught:
        await client.request("GET", ANNA_PATH)
    assert str(caught.value) == f"Hosted CRM answered GET {ANNA_PATH} with a body that is not valid JSON."


async def test_a_4xx_shows_the_services_own_message(server, client):
    server.fail_next("POST", "/provisioning/users", "status:400", message="The username is reserved")
    with pytest.raises(ServiceError) as caught:
        await client.request("POST", "/users", json={"upn": "x@contoso.example"})
    assert str(caught.value) == "Hosted CRM answered POST /users with 400 Bad Request: The username is reserved."


@pytest.mark.parametrize(
    "body",
    [
        {"message": "\x1b[2J\x1b]0;pwned\x07Bad \x9b31mthing\x00" + "A" * 1000},
        {"error": "\x1b[2J\x1b]0;pwned\x07Bad \x9b31mthing\x00" + "A" * 1000},
        {"error": {"message": "\x1b[2J\x1b]0;pwned\x07Bad \x9b31mthing\x00" + "A" * 1000}},
    ],
)
async def test_a_hostile_message_is_sanitised_and_capped(body):
    transport = httpx.MockTransport(lambda request: httpx.Response(422, json=body))
    client = ServiceClient("blackberry", {"url": "https://uem.example"}, display_name="BlackBerry", transport=transport)
    with pytest.raises(ServiceError) as caught:
        await client.request("GET", "/t/api/v1/users")
    text = str(caught.value)
    assert text.startswith("BlackBerry answered GET /t/api/v1/users with 422 Unprocessable Entity: [2J]0;pwnedBad 31mthing")
    assert not any(ord(c) < 32 or 0x7F <= ord(c) <= 0x9F for c in text)
    assert len(text) < 300 and text.endswith("…")
    await client.aclose()


async def test_a_non_json_error_page_still_gives_a_sentence():
    transport = httpx.MockTransport(lambda request: httpx.Response(502, text="<html>Bad gateway</html>"))
    client = ServiceClient("crm", {"url": "https://crm.example", "retries": 0}, transport=transport)
    with pytest.raises(ServiceError) as caught:
        await client.request("GET", "/users/x")
    assert str(caught.value) == "crm answered GET /users/x with 502 Bad Gateway."
    await client.aclose()


async def test_unreachable_service_is_one_clear_sentence():
    def handler(request):
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    client = ServiceClient("crm", {"url": "https://crm.example", "backoff": 0}, display_name="Hosted CRM", transport=httpx.MockTransport(handler))
    with pytest.raises(ServiceError) as caught:
        await client.request("GET", "/users/x")
    assert str(caught.value) == "Hosted CRM at https://crm.example cannot be reached (GET /users/x, 3 tries): [Errno 111] Connection refused."
    await client.aclose()


async def test_unreachable_real_port():
    with socket.socket() as probe:  # a free port, closed again: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = ServiceClient("crm", {"url": f"http://127.0.0.1:{port}", "retries": 1, "backoff": 0, "timeout": 1})
    with pytest.raises(ServiceError, match=rf"^crm at http://127.0.0.1:{port} cannot be reached \(GET /x, 2 tries\): "):
        await client.request("GET", "/x")
    await client.aclose()


# -- secrets ---------------------------------------------------------------------------------------


async def test_the_token_never_shows(server, client):
    token = server.token
    crm = HttpAdapter(CRM, options(server, url=server.url + "/provisioning"), LayoutConfig())
    remote, _ = await crm.inspect(context())
    steps = crm.plan_move(context(remote=remote)).steps
    assert token not in json.dumps([s.to_json() for s in steps])
    assert token not in repr(crm) and token not in repr(crm.client)
    assert token not in repr(crm.client._client.headers) and "authorization" not in crm.client._client.headers
    await crm.aclose()
    # A server that echoes the Authorization header back in its message.
    echo = httpx.MockTransport(lambda request: httpx.Response(401, json={"message": f"bad credentials {request.headers['Authorization']}"}))
    echoing = ServiceClient("crm", options(server), display_name="Hosted CRM", transport=echo)
    with pytest.raises(ServiceError) as caught:
        await echoing.request("GET", "/users")
    assert token not in str(caught.value) and "Bearer ***" in str(caught.value)
    await echoing.aclose()
    # The real server refusing a missing token.
    wrong = ServiceClient("crm", {"url": server.url + "/provisioning"}, display_name="Hosted CRM")
    with pytest.raises(ServiceError, match=r"401 Unauthorized: Not authenticated\.$"):
        await wrong.request("GET", ANNA_PATH)
    await wrong.aclose()


async def test_basic_auth_password_never_shows(server, monkeypatch, tmp_path):
    server.basic = ("svc-tenantry", "s3cret-Pa55")
    password_file = tmp_path / "password"
    password_file.write_text("s3cret-Pa55\n")
    server.seed_record("anna@contoso.example", customer="CONTOSO")
    echo = httpx.MockTransport(lambda request: httpx.Response(403, json={"error": f"{request.headers['Authorization']} s3cret-Pa55"}))
    for transport in (None, echo):
        client = ServiceClient("crm", {"url": server.url + "/provisioning", "username": "svc-tenantry", "password_file": str(password_file)}, transport=transport)
        assert "s3cret" not in repr(client)
        if transport is None:
            assert (await client.request("GET", "/users/anna@contoso.example")).body["customer"] == "CONTOSO"
        else:
            with pytest.raises(ServiceError) as caught:
                await client.request("GET", "/users/anna@contoso.example")
            assert "s3cret" not in str(caught.value) and "c3ZjLXRlbmFudHJ5" not in str(caught.value)
        await client.aclose()


def test_token_from_a_file(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("abc123\n")
    client = ServiceClient("blackberry", {"url": "https://uem.example", "token_file": str(token_file), "token_scheme": ""})
    assert "abc123" not in repr(client)


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({}, "services.crm.url is missing: set it to the base URL of the crm API."),
        ({"url": "ftp://x"}, "services.crm.url must be an http:// or https:// URL, not 'ftp://x'."),
        ({"url": "https://u:p@x"}, "services.crm.url must not contain credentials"),
        ({"url": "https://x", "token_env": "TENANTRY_TEST_UNSET_VARIABLE"}, "The environment variable TENANTRY_TEST_UNSET_VARIABLE (services.crm.token_env) is not set."),
        ({"url": "https://x", "token_file": "/nonexistent/token"}, "The file /nonexistent/token (services.crm.token_file) cannot be read"),
        ({"url": "https://x", "token": "abc"}, "services.crm.token is not allowed"),
        ({"url": "https://x", "username": "u"}, "services.crm: username 'u' needs password_env or password_file."),
        ({"url": "https://x", "token_env": "A", "password_env": "B"}, "use either a token (token_env) or username with a password, not both."),
        ({"url": "https://x", "timeout": 0}, "services.crm.timeout must be a number of at least 0.01, not 0."),
        ({"url": "https://x", "retries": 1.5}, "services.crm.retries must be an integer of at least 0, not 1.5."),
        ({"url": "https://x", "ca_file": "/nonexistent/ca.pem"}, "The CA file /nonexistent/ca.pem (services.crm.ca_file) cannot be used"),
    ],
)
def test_client_configuration_errors_are_one_sentence(opts, message):
    with pytest.raises(ConfigError) as caught:
        ServiceClient("crm", opts, environ={"A": "x"})
    assert message in str(caught.value)


def test_adapter_configuration_errors_and_lazy_credentials():
    with pytest.raises(ConfigError, match="username_from"):
        BlackBerryAdapter(BLACKBERRY, {"username_from": "email"}, LayoutConfig(), tenants=TENANTS)
    with pytest.raises(ConfigError, match="unknown placeholder"):
        HttpAdapter(CRM, {"move_path": "/users/{nope}"}, LayoutConfig())
    # Built without url or token (a configured service nobody moves): no error until used.
    adapter = HttpAdapter(CRM, {}, LayoutConfig())
    with pytest.raises(ConfigError, match="url is missing"):
        adapter.client


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    from samba_dc import write_certificates

    paths = write_certificates(tmp_path_factory.mktemp("provisioning-tls"), "127.0.0.1")  # where the server listens, whatever the DC's address
    server = ProvisioningServer(certfile=str(paths["cert"]), keyfile=str(paths["key"])).start()
    server.seed_record("anna@contoso.example", customer="CONTOSO")
    try:
        yield server, paths
    finally:
        server.stop()


@pytest.mark.parametrize("ca", [None, "wrong_ca"])
async def test_an_unverifiable_certificate_is_refused(tls_server, ca, monkeypatch):
    server, paths = tls_server
    monkeypatch.setenv(TOKEN_ENV, server.token)
    opts = options(server, url=server.url + "/provisioning", **({"ca_file": str(paths[ca])} if ca else {}))
    client = ServiceClient("crm", opts, display_name="Hosted CRM")
    with pytest.raises(ServiceError) as caught:
        await client.request("GET", "/users/anna@contoso.example")
    assert str(caught.value) == f"The TLS certificate of Hosted CRM at {server.url}/provisioning could not be verified (set ca_file if it is signed by a private CA)."
    await client.aclose()


async def test_a_certificate_from_the_configured_ca_is_accepted(tls_server, monkeypatch):
    server, paths = tls_server
    monkeypatch.setenv(TOKEN_ENV, server.token)
    client = ServiceClient("crm", options(server, url=server.url + "/provisioning", ca_file=str(paths["ca"])))
    assert (await client.request("GET", "/users/anna@contoso.example")).body["customer"] == "CONTOSO"
    await client.aclose()


# -- generic HTTP adapter ---------------------------------------------------------------------------


@pytest.fixture
async def crm(server):
    adapter = HttpAdapter(CRM, options(server, url=server.url + "/provisioning"), LayoutConfig())
    yield adapter
    await adapter.aclose()


async def test_generic_move_then_undo(server, crm):
    server.seed_record("anna@contoso.example", customer="CONTOSO", email="anna.berg@contoso.example", seats=3)
    before = server.snapshot()
    remote, problems = await crm.inspect(context())
    assert problems == []
    (step,) = crm.plan_move(context(remote=remote)).steps
    assert step.target == "crm: PUT /users/anna@contoso.example"
    assert step.request["json"] == {"customer": "FABRIKAM", "upn": "anna@fabrikam.example", "email": "anna.berg@fabrikam.example"}
    assert step.undo_request["json"] == {"customer": "CONTOSO", "upn": "anna@contoso.example", "email": "anna.berg@contoso.example"}
    result = await crm.perform(replay(step))
    assert json.dumps(result)
    assert server.snapshot()["records"] == {
        "anna@fabrikam.example": {"upn": "anna@fabrikam.example", "customer": "FABRIKAM", "email": "anna.berg@fabrikam.example", "seats": 3}
    }
    # Resumed after a crash: the same call again is recognised as done.
    assert (await crm.perform(replay(step)))["already"] is True
    await crm.undo(replay(step), result)
    await crm.undo(replay(step), result)  # and the undo too
    assert server.snapshot() == before
    assert [(c.method, c.path) for c in server.calls if c.method == "PUT"] == [
        ("PUT", "/provisioning/users/anna@contoso.example"),
        ("PUT", "/provisioning/users/anna@contoso.example"),
        ("PUT", "/provisioning/users/anna@fabrikam.example"),
        ("PUT", "/provisioning/users/anna@fabrikam.example"),
    ]


async def test_generic_inspect_problems(server, crm):
    remote, problems = await crm.inspect(context())
    assert [(p.code, p.message) for p in problems] == [(SERVICE_MISSING, "Hosted CRM has no user anna@contoso.example.")]
    server.seed_record("anna@contoso.example", customer="CONTOSO")
    server.seed_record("anna@fabrikam.example", customer="FABRIKAM")
    remote, problems = await crm.inspect(context())
    assert [(p.code, p.message) for p in problems] == [(COLLISION, "Hosted CRM already has a user anna@fabrikam.example.")]


async def test_generic_perform_on_a_vanished_record_fails_clearly(server, crm):
    server.seed_record("anna@contoso.example", customer="CONTOSO")
    remote, _ = await crm.inspect(context())
    (step,) = crm.plan_move(context(remote=remote)).steps
    server.reset()
    server.seed_record("zed@contoso.example")
    with pytest.raises(ServiceError, match=r"^Hosted CRM has no user at /users/anna@contoso.example\.$"):
        await crm.perform(replay(step))


async def test_generic_paths_and_body_are_configurable(server):
    server.seed_record("anna", customer="CONTOSO", tier="gold")
    adapter = HttpAdapter(
        CRM,
        options(server, url=server.url + "/provisioning", user_path="/users/{sam}", move_path="/users/{sam}", undo_path="/users/{new_sam}", move_body={"customer": "{destination}"}),
        LayoutConfig(),
    )
    try:
        remote, problems = await adapter.inspect(context())
        (step,) = adapter.plan_move(context(remote=remote)).steps
        assert step.request == {"method": "PUT", "path": "/users/anna", "json": {"customer": "FABRIKAM"}, "check": "/users/anna"}
        await adapter.perform(replay(step))
        assert server.snapshot()["records"]["anna"] == {"upn": "anna", "customer": "FABRIKAM", "tier": "gold"}
        await adapter.undo(replay(step), None)
        assert server.snapshot()["records"]["anna"]["customer"] == "CONTOSO"
    finally:
        await adapter.aclose()
