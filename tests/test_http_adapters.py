"""HTTP adapters (BlackBerry UEM-shaped and generic) against a real server on 127.0.0.1,
plus httpx.MockTransport for the fault cases a real server cannot stage precisely."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from core.config import LayoutConfig
from core.errors import ConfigError
from core.model import Customer, Plan, Service, User
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
    plans=(Plan("blackberry", "Standard"),),
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
        plan=Plan("blackberry", plan) if plan else None,
        remote=remote or {},
    )


@pytest.fixture
def server(provisioning_server, monkeypatch) -> ProvisioningServer:  # noqa: F811
    provisioning_server.reset()
    monkeypatch.setenv(TOKEN_ENV, provisioning_server.token)
    return provisioning_server


def options(server: ProvisioningServer, **extra) -> dict:
    return {"url": server.url, "token_env": TOKEN_ENV, "timeout": 1, "backoff": 0.01, **extra}


@pytest.fixture
async def blackberry(server):
    adapter = BlackBerryAdapter(BLACKBERRY, options(server), LayoutConfig(), tenants=TENANTS)
    yield adapter
    await adapter.aclose()


def seed_blackberry(server: ProvisioningServer) -> None:
    server.seed_tenant(
        "contoso",
        users=[ANNA_UEM, {"username": "bob@contoso.example", "emailAddress": "bob@contoso.example", "displayName": "Bob"}],
        groups={"Standard": ["anna@contoso.example", "bob@contoso.example"], "Travellers": ["anna@contoso.example"]},
    )
    server.seed_tenant(
        "fabrikam",
        users=[{"username": "carl@fabrikam.example", "emailAddress": "carl@fabrikam.example", "displayName": "Carl"}],
        groups={"Standard": ["carl@fabrikam.example"], "Enterprise": []},
    )


def replay(step: Step) -> Step:
    """A step as another process reads it back from the journal."""
    return Step.from_json(json.loads(json.dumps(step.to_json())))


async def planned(adapter: BlackBerryAdapter, ctx: MoveContext) -> tuple[Step, ...]:
    remote, problems = await adapter.inspect(ctx)
    assert problems == []
    move = adapter.plan_move(context(remote=remote))
    assert move.problems == ()
    return move.steps


# -- BlackBerry: the move and its undo --------------------------------------------------------


async def test_blackberry_move_then_undo_restores_the_server_exactly(server, blackberry):
    seed_blackberry(server)
    before = server.snapshot()
    steps = await planned(blackberry, context())
    assert [s.target for s in steps] == [
        "blackberry: create user anna@fabrikam.example in tenant fabrikam",
        "blackberry: delete user anna@contoso.example from tenant contoso",
    ]
    assert all(s.action == "http" and s.service == "blackberry" for s in steps)
    assert steps[0].after["groups"] == ["Standard"]
    assert sorted(steps[1].before["groups"]) == ["Standard", "Travellers"]
    assert server.snapshot() == before, "inspect and plan must not write"
    server.calls.clear()

    # Perform in a "new process": steps read back from JSON, a fresh adapter.
    runner = BlackBerryAdapter(BLACKBERRY, options(server), LayoutConfig(), tenants=TENANTS)
    try:
        results = [await runner.perform(replay(step)) for step in steps]
        json.dumps(results)  # JSON-able for the journal
        fabrikam, contoso = server.users("fabrikam"), server.users("contoso")
        assert "anna@contoso.example" not in contoso
        moved = fabrikam["anna@fabrikam.example"]
        assert results[0]["guid"] == moved["guid"]
        assert moved["emailAddress"] == "anna.berg@fabrikam.example"
        assert moved["displayName"] == "Anna Berg" and moved["department"] == "Sales" and moved["city"] == "Oslo"
        assert server.members("fabrikam", "Standard") == ["anna@fabrikam.example", "carl@fabrikam.example"]
        assert server.members("contoso", "Standard") == ["bob@contoso.example"]
        assert [(c.method, c.path) for c in server.calls] == [
            ("POST", "/fabrikam/api/v1/users"),
            ("POST", f"/fabrikam/api/v1/groups/{_group_guid(server, 'fabrikam', 'Standard')}/users"),
            ("DELETE", f"/contoso/api/v1/users/{blackberry_guid(before_guid=steps[1])}"),
        ]

        for step, result in reversed(list(zip(steps, results))):
            await runner.undo(replay(step), result)
    finally:
        await runner.aclose()
    assert server.snapshot() == before


def _group_guid(server: ProvisioningServer, tenant: str, name: str) -> str:
    return next(g["guid"] for g in server._tenants[tenant].groups.values() if g["name"] == name)


def blackberry_guid(before_guid: Step) -> str:
    return before_guid.before["guid"]


async def test_inspect_only_reads_and_finds_the_user_by_username_query(server, blackberry):
    seed_blackberry(server)
    remote, problems = await blackberry.inspect(context())
    assert problems == []
    assert {c.method for c in server.calls} == {"GET"}
    assert server.calls[0].path == "/contoso/api/v1/users"
    assert server.calls[0].query == {"query": "username=anna@contoso.example"}
    assert remote["user"]["emailAddress"] == "anna.berg@contoso.example"
    assert remote["plan_group"]["name"] == "Standard"


async def test_inspect_problem_when_the_user_is_absent(server, blackberry):
    server.seed_tenant("contoso", users=[])
    server.seed_tenant("fabrikam", groups={"Standard": []})
    remote, problems = await blackberry.inspect(context())
    assert [(p.code, p.message) for p in problems] == [
        (SERVICE_MISSING, "BlackBerry has no user anna@contoso.example in tenant contoso (customer Contoso).")
    ]


async def test_inspect_never_finds_a_user_by_email_address(server, blackberry):
    # A user's mail is editable by its tenant's admins: a UEM user whose address matches
    # but whose username does not is someone else, and is neither moved nor deleted.
    server.seed_tenant("contoso", users=[{**ANNA_UEM, "username": "anna"}])
    server.seed_tenant("fabrikam", groups={"Standard": []})
    remote, problems = await blackberry.inspect(context())
    assert remote == {} and [(p.code, p.message) for p in problems] == [
        (SERVICE_MISSING, "BlackBerry has no user anna@contoso.example in tenant contoso (customer Contoso).")
    ]
    assert all("emailAddress" not in str(call.query) for call in server.calls)


async def test_inspect_problems_for_collisions_and_a_missing_plan_group(server, blackberry):
    seed_blackberry(server)
    server.seed_tenant(
        "fabrikam",
        users=[
            {"username": "anna@fabrikam.example", "emailAddress": "someone@fabrikam.example"},
            {"username": "other", "emailAddress": "anna.berg@fabrikam.example"},
        ],
    )
    remote, problems = await blackberry.inspect(context(plan="Enterprise"))
    assert [p.code for p in problems] == [COLLISION, COLLISION]
    assert problems[0].message == "BlackBerry tenant fabrikam already has a user anna@fabrikam.example."
    assert problems[1].message == "BlackBerry tenant fabrikam already has a user with the address anna.berg@fabrikam.example."

    remote, problems = await blackberry.inspect(context(plan="Gold", upn="anna2@fabrikam.example", email="anna2@fabrikam.example"))
    assert [(p.code, p.message) for p in problems] == [(PLAN_MISSING, "BlackBerry tenant fabrikam has no group Gold for plan Gold.")]


async def test_inspect_problem_when_the_destination_tenant_does_not_exist(server, blackberry):
    server.seed_tenant("contoso", users=[ANNA_UEM])
    remote, problems = await blackberry.inspect(context())
    assert [(p.code, p.message) for p in problems] == [(SERVICE_MISSING, "BlackBerry has no tenant fabrikam (customer Fabrikam).")]


async def test_the_uem_tenant_comes_from_the_tenant_map_only(server):
    adapter = BlackBerryAdapter(BLACKBERRY, options(server), LayoutConfig(), tenants=TENANTS)
    assert adapter.tenant_for(CONTOSO) == "contoso" and adapter.tenant_for(FABRIKAM) == "fabrikam"
    # A code (editable by the tenant's admins) that names another tenant decides nothing.
    impostor = Customer("Impostor", "OU=Impostor,OU=Hosting,DC=example,DC=net", code="FABRIKAM")
    assert adapter.tenant_for(impostor) is None
    with pytest.raises(ConfigError, match=r"services\.blackberry\.tenants is not allowed"):
        BlackBerryAdapter(BLACKBERRY, options(server, tenants={"FABRIKAM": "fabrikam"}), LayoutConfig(), tenants=TENANTS)


async def test_query_values_are_escaped(server, blackberry):
    server.seed_tenant("contoso", users=[{**ANNA_UEM, "username": "a,b*"}])
    assert await blackberry._find_user("contoso", "a,b*") is not None
    assert await blackberry._find_user("contoso", "a") is None
    assert server.calls[0].query == {"query": "username=a\\,b\\*"}


async def test_hostile_guid_stays_one_path_segment(server, blackberry):
    server.seed_tenant("contoso", users=[{**ANNA_UEM, "guid": "../../x"}], groups={})
    server.seed_tenant("fabrikam", groups={"Standard": []})
    remote, problems = await blackberry.inspect(context())
    step = blackberry.plan_move(context(remote=remote)).steps[1]
    assert step.request["path"] == "/contoso/api/v1/users/..%2F..%2Fx"


# -- BlackBerry: idempotence and crashes ---------------------------------------------------------


async def test_undo_after_a_crash_finds_the_created_user_by_username(server, blackberry):
    seed_blackberry(server)
    before = server.snapshot()
    create, _ = await planned(blackberry, context())
    await blackberry.perform(replay(create))  # the result is lost in the crash
    assert "anna@fabrikam.example" in server.users("fabrikam")
    server.calls.clear()
    fresh = BlackBerryAdapter(BLACKBERRY, options(server), LayoutConfig(), tenants=TENANTS)
    try:
        await fresh.undo(replay(create), None)
    finally:
        await fresh.aclose()
    assert server.snapshot() == before
    assert [c.method for c in server.calls] == ["GET", "DELETE"]


async def test_undo_of_a_create_that_never_happened_is_done(server, blackberry):
    seed_blackberry(server)
    before = server.snapshot()
    create, _ = await planned(blackberry, context())
    await blackberry.undo(replay(create), None)
    assert server.snapshot() == before


async def test_undo_leaves_a_same_named_user_with_another_address_alone(server, blackberry):
    seed_blackberry(server)
    create, _ = await planned(blackberry, context())
    server.seed_tenant("fabrikam", users=[{"username": "anna@fabrikam.example", "emailAddress": "not-ours@fabrikam.example"}])
    with pytest.raises(ServiceError, match="another address; it was left alone"):
        await blackberry.undo(replay(create), None)
    assert "anna@fabrikam.example" in server.users("fabrikam")


async def test_perform_again_after_a_crash_is_done_not_a_duplicate(server, blackberry):
    seed_blackberry(server)
    create, delete = await planned(blackberry, context())
    first = await blackberry.perform(replay(create))
    again = await blackberry.perform(replay(create))
    assert again["guid"] == first["guid"]
    assert len([u for u in server.users("fabrikam") if u.startswith("anna")]) == 1
    assert server.members("fabrikam", "Standard") == ["anna@fabrikam.example", "carl@fabrikam.example"]
    await blackberry.perform(replay(delete))
    assert (await blackberry.perform(replay(delete)))["deleted"] is False


async def test_create_refuses_a_same_named_user_it_did_not_create(server, blackberry):
    seed_blackberry(server)
    create, _ = await planned(blackberry, context())
    server.seed_tenant("fabrikam", users=[{"username": "anna@fabrikam.example", "emailAddress": "x@fabrikam.example"}])
    with pytest.raises(ServiceError, match="already has a user anna@fabrikam.example or the address anna.berg@fabrikam.example that this job did not create"):
        await blackberry.perform(replay(create))


# -- retries -------------------------------------------------------------------------------------


async def test_get_is_retried_on_503(server, blackberry):
    seed_blackberry(server)
    server.fail_next("GET", "/contoso/api/v1/users", "status:503")
    remote, problems = await blackberry.inspect(context())
    assert problems == []
    assert len(server.calls_to("GET", "/contoso/api/v1/users")) == 2


async def test_delete_is_retried_on_503_and_502(server, blackberry):
    seed_blackberry(server)
    _, delete = await planned(blackberry, context())
    server.fail_next("DELETE", "/contoso/api/v1/users/*", "status:503")
    server.fail_next("DELETE", "/contoso/api/v1/users/*", "status:502")
    result = await blackberry.perform(replay(delete))
    assert result["deleted"] is True
    assert len(server.calls_to("DELETE")) == 3


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


async def test_post_is_never_retried(server, blackberry):
    seed_blackberry(server)
    create, _ = await planned(blackberry, context())
    server.fail_next("POST", "/fabrikam/api/v1/users", "status:503")
    with pytest.raises(ServiceError) as caught:
        await blackberry.perform(replay(create))
    assert str(caught.value) == "BlackBerry answered POST /fabrikam/api/v1/users with 503 Service Unavailable: Injected 503."
    assert caught.value.status == 503
    assert len(server.calls_to("POST")) == 1
    assert "anna@fabrikam.example" not in server.users("fabrikam")


async def test_retries_stop_after_three_tries(server, blackberry):
    server.seed_tenant("contoso", users=[ANNA_UEM])
    server.fail_next("GET", "/contoso/api/v1/users", "status:503", times=5)
    with pytest.raises(ServiceError) as caught:
        await blackberry.inspect(context())
    assert str(caught.value) == "BlackBerry answered GET /contoso/api/v1/users with 503 Service Unavailable, 3 tries: Injected 503."
    assert len(server.calls_to("GET")) == 3


async def test_500_is_not_retried(server, blackberry):
    server.seed_tenant("contoso", users=[ANNA_UEM])
    server.fail_next("GET", "/contoso/api/v1/users", "status:500", message="Database unavailable")
    with pytest.raises(ServiceError, match=r"500 Internal Server Error: Database unavailable\.$"):
        await blackberry.inspect(context())
    assert len(server.calls) == 1


async def test_a_dropped_connection_on_get_is_retried(server, blackberry):
    seed_blackberry(server)
    server.fail_next("GET", "/contoso/api/v1/users", "disconnect")
    remote, problems = await blackberry.inspect(context())
    assert problems == [] and len(server.calls_to("GET", "/contoso/api/v1/users")) == 2


# -- failures as one clear sentence ---------------------------------------------------------------


async def test_timeout_is_one_clear_sentence(server):
    server.seed_tenant("contoso", users=[ANNA_UEM])
    server.fail_next("GET", "/contoso/api/v1/users", "timeout")
    adapter = BlackBerryAdapter(BLACKBERRY, options(server, timeout=0.3, retries=0), LayoutConfig(), tenants=TENANTS)
    try:
        with pytest.raises(ServiceError) as caught:
            await adapter.inspect(context())
    finally:
        await adapter.aclose()
    assert str(caught.value) == "BlackBerry did not answer within 0.3 s (GET /contoso/api/v1/users)."


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


async def test_malformed_json_is_one_clear_sentence(server, blackberry):
    server.seed_tenant("contoso", users=[ANNA_UEM])
    server.fail_next("GET", "/contoso/api/v1/users", "malformed")
    with pytest.raises(ServiceError) as caught:
        await blackberry.inspect(context())
    assert str(caught.value) == "BlackBerry answered GET /contoso/api/v1/users with a body that is not valid JSON."


async def test_json_of_the_wrong_shape_is_one_clear_sentence():
    client_transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"users": "nope"}))
    adapter = BlackBerryAdapter(BLACKBERRY, {"url": "https://uem.example"}, LayoutConfig(), tenants=TENANTS, transport=client_transport)
    with pytest.raises(ServiceError, match=r"^BlackBerry sent an answer without a list of users\.$"):
        await adapter._find_user("contoso", "anna")
    await adapter.aclose()


async def test_a_4xx_shows_the_services_own_message(server, blackberry):
    seed_blackberry(server)
    create, _ = await planned(blackberry, context())
    server.fail_next("POST", "/fabrikam/api/v1/users", "status:400", message="The username is reserved")
    with pytest.raises(ServiceError) as caught:
        await blackberry.perform(replay(create))
    assert str(caught.value) == "BlackBerry answered POST /fabrikam/api/v1/users with 400 Bad Request: The username is reserved."


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


async def test_the_token_never_shows(server, blackberry):
    seed_blackberry(server)
    token = server.token
    steps = await planned(blackberry, context())
    assert token not in json.dumps([s.to_json() for s in steps])
    assert token not in repr(blackberry) and token not in repr(blackberry.client)
    assert token not in repr(blackberry.client._client.headers) and "authorization" not in blackberry.client._client.headers
    # A server that echoes the Authorization header back in its message.
    echo = httpx.MockTransport(lambda request: httpx.Response(401, json={"message": f"bad credentials {request.headers['Authorization']}"}))
    client = ServiceClient("blackberry", options(server), display_name="BlackBerry", transport=echo)
    with pytest.raises(ServiceError) as caught:
        await client.request("GET", "/t/api/v1/users")
    assert token not in str(caught.value) and "Bearer ***" in str(caught.value)
    await client.aclose()
    # The real server refusing a wrong token.
    wrong = ServiceClient("blackberry", {"url": server.url}, display_name="BlackBerry")
    with pytest.raises(ServiceError, match=r"401 Unauthorized: Not authenticated\.$"):
        await wrong.request("GET", "/contoso/api/v1/users")
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
        BlackBerryAdapter(BLACKBERRY, {"username_from": "guid"}, LayoutConfig(), tenants=TENANTS)
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
