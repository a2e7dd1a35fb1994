"""The BlackBerry adapter against two UEM server processes, one per tenant (tests/uem_server.py):
the login on both, a move with its directory link and groups checked on both servers, devices,
expired sessions, paging, faults at every call, and credentials kept to their own tenant."""

from __future__ import annotations

import base64

import httpx
import pytest

from core.config import LayoutConfig
from core.errors import ConfigError, ServiceError
from core.model import Customer, Service, ServicePlan as Plan, User
from core.plan import COLLISION, DEVICES, PLAN_MISSING, SERVICE_MISSING
from core.services.base import MoveContext
from core.services.blackberry import USERS_TYPE, BlackBerryAdapter
from tenant_maps import tenant_map

BLACKBERRY = Service("blackberry", "BlackBerry", "blackberry", True, ("Standard", "Enterprise"))
CONTOSO = Customer("Contoso", "OU=Contoso,OU=Hosting,DC=example,DC=net", domains=("contoso.example",), code="C0001", services=("blackberry",))
FABRIKAM = Customer("Fabrikam", "OU=Fabrikam,OU=Hosting,DC=example,DC=net", domains=("fabrikam.example",), code="C0002", services=("blackberry",))
ANNA = User(
    dn="CN=Anna Berg,OU=Users,OU=Contoso,OU=Hosting,DC=example,DC=net", cn="Anna Berg", sam="anna",
    upn="anna@contoso.example", display_name="Anna Berg", first="Anna", last="Berg", email="anna.berg@contoso.example",
    services=("blackberry",), plans=(Plan("blackberry", "Standard"),),
)
DIRECTORY_ID = "AD:0f8fad5b-d9cb-469f-a165-70867728950e"
ANNA_UEM = {
    "username": "anna@contoso.example", "emailAddress": "anna.berg@contoso.example", "displayName": "Anna Berg",
    "firstName": "Anna", "lastName": "Berg", "department": "Sales", "city": "Oslo", "directoryId": DIRECTORY_ID,
}
SECRETS = {"UEM_A_PASSWORD": "contoso-secret-1", "UEM_B_PASSWORD": "fabrikam-secret-2", "UEM_B_CLIENT_SECRET": "fabrikam-oauth-3"}


def context(plan: str | None = "Enterprise", *, with_devices: bool = False, remote=None) -> MoveContext:
    return MoveContext(
        user=ANNA, source=CONTOSO, destination=FABRIKAM, new_dn="CN=Anna Berg,OU=Users,OU=Fabrikam,OU=Hosting,DC=example,DC=net",
        upn="anna@fabrikam.example", email="anna.berg@fabrikam.example", sip=None, sam="anna",
        plan=Plan("blackberry", plan) if plan else None, remote=remote or {}, with_devices=with_devices,
    )


def settings(a, b, *, b_provider: str = "AD") -> dict[str, dict]:
    """Contoso on server A (LOCAL login), Fabrikam on server B (AD login, or OAuth)."""
    second = {"url": b.url, "tenant_guid": b.srp_id, "provider": b_provider}
    if b_provider == "OAUTH":
        second.update(client_id="tenantry-fabrikam", client_secret_env="UEM_B_CLIENT_SECRET", oauth_endpoint=f"{b.url}/oauth2/token")
    else:
        second.update(username="svc-uem", domain="FABRIKAM", password_env="UEM_B_PASSWORD")
    return {
        CONTOSO.dn: {"url": a.url, "tenant_guid": a.srp_id, "username": "admin", "password_env": "UEM_A_PASSWORD"},
        FABRIKAM.dn: second,
    }


def adapter(a, b, **kwargs) -> BlackBerryAdapter:
    tenants = tenant_map({dn: {"blackberry": table} for dn, table in settings(a, b, **kwargs).items()})
    return BlackBerryAdapter(BLACKBERRY, {"timeout": 1, "backoff": 0.01}, LayoutConfig(), tenants=tenants, environ=SECRETS)


def seed(a, b, *, devices: int = 0) -> None:
    a.add_admin("admin", SECRETS["UEM_A_PASSWORD"])
    b.add_admin("svc-uem", SECRETS["UEM_B_PASSWORD"], provider="AD", domain="FABRIKAM")
    b.add_client("tenantry-fabrikam", SECRETS["UEM_B_CLIENT_SECRET"])
    for server in (a, b):  # one AD behind both: the same directory user in both company directories
        server.add_directory_user(DIRECTORY_ID, username="anna", emailAddress="anna.berg@contoso.example")
    a.add_user(ANNA_UEM, groups=("Standard", "Sales"), devices=tuple({"model": f"Phone {i}", "os": "iOS"} for i in range(devices)))
    a.add_group("Enterprise")
    for name in ("Standard", "Enterprise", "Sales"):
        b.add_group(name)


async def run(adapter: BlackBerryAdapter, steps) -> None:
    """Perform the steps; on a failure undo the failed one (it may have half-happened) and the
    done ones in reverse, as core.execute does."""
    done = []
    try:
        for step in steps:
            done.append((step, None))
            done[-1] = (step, await adapter.perform(step))
    except ServiceError:
        for step, result in reversed(done):
            await adapter.undo(step, result)
        raise


def logins(server) -> list[dict]:
    return server.calls("POST", f"/{server.srp_id}/api/v1/util/authorization")


# -- the move ----------------------------------------------------------------------------------------

async def test_move_between_two_tenants_keeps_the_directory_link_and_groups_then_undo_restores_both(uem_servers):
    a, b = uem_servers
    seed(a, b)
    before = (a.snapshot(), b.snapshot())
    bb = adapter(a, b)
    remote, problems = await bb.inspect(context())
    assert problems == []
    steps = bb.plan_move(context(remote=remote)).steps
    assert [s.target for s in steps] == [
        f"blackberry: create user anna@fabrikam.example in tenant {b.srp_id}",
        f"blackberry: delete user anna@contoso.example from tenant {a.srp_id}",
    ]
    await run(bb, steps)
    moved = b.snapshot()["users"]["anna@fabrikam.example"]
    assert moved["directoryId"] == DIRECTORY_ID and moved["directoryLinked"] is True
    assert moved["groups"] == ["Enterprise", "Sales"]  # the plan's group instead of Standard, Sales by name
    assert (moved["emailAddress"], moved["department"], moved["city"]) == ("anna.berg@fabrikam.example", "Sales", "Oslo")
    assert a.snapshot()["users"] == {}
    assert len(logins(a)) == 1 and len(logins(b)) == 1  # one login per tenant, kept for every call
    login_b = logins(b)[0]["body"]
    assert '"provider": "AD"' in login_b and '"domain": "FABRIKAM"' in login_b
    assert base64.b64encode(SECRETS["UEM_B_PASSWORD"].encode()).decode() in login_b

    for step in reversed(steps):  # undo re-creates exactly the captured user in the source
        await bb.undo(step, None)
    assert (a.snapshot(), b.snapshot()) == before
    await bb.aclose()


async def test_a_tenants_credentials_and_sessions_never_reach_the_other_tenants_server(uem_servers):
    a, b = uem_servers
    seed(a, b)
    bb = adapter(a, b)
    remote, _ = await bb.inspect(context())
    await run(bb, bb.plan_move(context(remote=remote)).steps)
    for server, own, foreign in ((a, "UEM_A_PASSWORD", "UEM_B_PASSWORD"), (b, "UEM_B_PASSWORD", "UEM_A_PASSWORD")):
        other = b if server is a else a
        issued_elsewhere = {c["authorization"] for c in other.calls() if c["authorization"]}
        for call in server.calls():
            assert SECRETS[foreign] not in call["body"] and base64.b64encode(SECRETS[foreign].encode()).decode() not in call["body"]
            assert call["authorization"] is None or call["authorization"] not in issued_elsewhere
            assert call["path"].startswith(f"/{server.srp_id}/")
    await bb.aclose()


# -- preflight ---------------------------------------------------------------------------------------

async def test_preflight_refuses_a_user_with_devices_and_moves_it_with_the_opt_in(uem_servers):
    a, b = uem_servers
    seed(a, b, devices=2)
    bb = adapter(a, b)
    _, problems = await bb.inspect(context())
    assert [(p.code, p.message) for p in problems] == [(
        DEVICES,
        f"anna@contoso.example has 2 devices in BlackBerry tenant {a.srp_id} at {a.url}, and UEM cannot delete a user with devices: "
        "move with --with-devices (in the console: 'With devices', key d) to have UEM stop managing them.",
    )]
    remote, problems = await bb.inspect(context(with_devices=True))
    assert problems == []
    steps = bb.plan_move(context(with_devices=True, remote=remote)).steps
    assert steps[1].target == f"blackberry: remove 2 device(s) of anna@contoso.example from tenant {a.srp_id}"
    assert steps[1].before["devices"] == ["Phone 0", "Phone 1"] and "REMOVE_DEVICE" in steps[1].after["devices"]
    await run(bb, steps)
    assert a.snapshot()["users"] == {} and b.snapshot()["users"]["anna@fabrikam.example"]["devices"] == 0
    assert len(a.calls("POST", f"/{a.srp_id}/api/v1/users/*/userDevices/*/commands")) == 2
    await bb.aclose()


async def test_preflight_problems_collision_missing_groups_and_missing_tenant(uem_servers):
    a, b = uem_servers
    seed(a, b)
    b.add_user({"username": "anna@fabrikam.example"})
    bb = adapter(a, b)
    _, problems = await bb.inspect(context(plan="Gold"))
    assert [(p.code, p.message) for p in problems] == [
        (COLLISION, f"BlackBerry tenant {b.srp_id} at {b.url} already has a user anna@fabrikam.example."),
        (PLAN_MISSING, f"BlackBerry tenant {b.srp_id} at {b.url} has no group Gold for plan Gold."),
    ]
    tenants = tenant_map({CONTOSO.dn: {"blackberry": settings(a, b)[CONTOSO.dn]}})  # Fabrikam has no UEM tenant
    lonely = BlackBerryAdapter(BLACKBERRY, {}, LayoutConfig(), tenants=tenants, environ=SECRETS)
    _, problems = await lonely.inspect(context())
    assert [p.code for p in problems] == [SERVICE_MISSING] and "customer Fabrikam" in problems[0].message
    assert logins(b) == [] or all(c["path"].startswith(f"/{b.srp_id}/") for c in b.calls())
    await bb.aclose()


async def test_the_user_is_found_by_its_exact_username_never_by_its_mail(uem_servers):
    a, b = uem_servers
    seed(a, b)
    a.add_user({"username": "anna@contoso.example.evil", "emailAddress": ANNA.upn})  # a prefix and a mail that match
    bb = adapter(a, b)
    remote, problems = await bb.inspect(context())
    assert problems == [] and remote["user"]["directoryId"] == DIRECTORY_ID
    a.reset()
    seed(a, b)
    guid = next(u["guid"] for u in a.users().values())
    a.add_user({"username": "mallory@contoso.example", "emailAddress": ANNA.upn})
    # the real Anna is deleted from UEM; a user holding her address is not her
    a.add_admin("tester", "x")
    async with httpx.AsyncClient() as http:
        login = await http.post(f"{a.url}/{a.srp_id}/api/v1/util/authorization", content=b'{"provider":"LOCAL","username":"tester","password":"eA=="}',
                                headers={"Content-Type": "application/vnd.blackberry.authorizationrequest-v1+json"})
        gone = await http.delete(f"{a.url}/{a.srp_id}/api/v1/users/{guid}", headers={"Authorization": login.text})
        assert gone.status_code == 204
    _, problems = await bb.inspect(context())
    assert [(p.code, p.message) for p in problems] == [
        (SERVICE_MISSING, f"BlackBerry tenant {a.srp_id} at {a.url} has no user anna@contoso.example (customer Contoso).")
    ]
    assert all("emailAddress" not in c["target"] for c in a.calls("GET"))
    await bb.aclose()


# -- sessions and logins -------------------------------------------------------------------------------

async def test_an_expired_session_is_renewed_once_then_a_second_401_is_one_clear_sentence(uem_servers):
    a, b = uem_servers
    seed(a, b)
    bb = adapter(a, b)
    await bb.inspect(context())
    assert len(logins(a)) == 1
    a.expire_tokens()
    remote, problems = await bb.inspect(context())
    assert problems == [] and len(logins(a)) == 2  # renewed once, and the call went through
    a.fail_next("GET", f"/{a.srp_id}/api/v1/users", "status:401", message="Session expired.", times=2)
    with pytest.raises(ServiceError) as failed:
        await bb.inspect(context())
    assert str(failed.value) == (
        f"BlackBerry tenant {a.srp_id} at {a.url} answered GET /{a.srp_id}/api/v1/users with 401 Unauthorized "
        "even after a fresh login: Session expired."
    )
    assert len(logins(a)) == 3
    await bb.aclose()


async def test_wrong_password_oauth_login_and_missing_settings(uem_servers):
    a, b = uem_servers
    seed(a, b)
    wrong = BlackBerryAdapter(
        BLACKBERRY, {}, LayoutConfig(), environ={**SECRETS, "UEM_A_PASSWORD": "nope"},
        tenants=tenant_map({dn: {"blackberry": t} for dn, t in settings(a, b).items()}),
    )
    with pytest.raises(ServiceError) as failed:
        await wrong.inspect(context())
    assert str(failed.value) == f"BlackBerry tenant {a.srp_id} at {a.url} refused the login of admin (LOCAL) with 401 Unauthorized: Invalid credentials."
    assert "nope" not in str(failed.value)
    await wrong.aclose()

    oauth = adapter(a, b, b_provider="OAUTH")
    remote, problems = await oauth.inspect(context())
    assert problems == []
    assert all(c["authorization"].startswith("Bearer ") for c in b.calls("GET") if c["authorization"])
    assert len(b.calls("POST", "/oauth2/token")) == 1
    await oauth.aclose()

    table = settings(a, b)[CONTOSO.dn]
    with pytest.raises(ConfigError) as refused:  # the tenant map refuses an inline secret when it is loaded
        tenant_map({CONTOSO.dn: {"blackberry": {**table, "password": "inline"}}})
    assert "blackberry.password is not allowed: name a secret with password_env or password_file" in str(refused.value)
    where = 'tenants."OU=Contoso,OU=Hosting,DC=example,DC=net".blackberry'
    for change, message in (
        ({"tenant_guid": None}, f"{where}.tenant_guid is missing: set it to the UEM tenant GUID (the SRP ID of an on-premises UEM)."),
        ({"provider": "KERBEROS"}, f"{where}.provider must be one of LOCAL, AD, OAUTH, not 'KERBEROS'."),
        ({"provider": "AD"}, f"{where}.domain is missing (needed by provider AD)."),
        ({"password_env": None}, f"{where}: set exactly one of password_env and password_file."),
    ):
        changed = {k: v for k, v in {**table, **change}.items() if v is not None}
        broken = BlackBerryAdapter(BLACKBERRY, {}, LayoutConfig(), environ=SECRETS, tenants=tenant_map({CONTOSO.dn: {"blackberry": changed}}))
        with pytest.raises(ConfigError) as refused:
            broken.client(broken.tenant_of(CONTOSO))
        assert str(refused.value) == message


# -- faults at each call ---------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["status:409", "status:500", "timeout"])
async def test_a_fault_at_each_call_of_the_move_leaves_both_servers_as_before(uem_servers, kind):
    a, b = uem_servers
    calls = [
        (b, "POST", "/{b}/api/v1/users"),  # create in the destination
        (b, "POST", "/{b}/api/v1/groups/*/users"),  # first group membership
        (a, "DELETE", "/{a}/api/v1/users/*"),  # delete from the source
    ]
    for server, method, pattern in calls:
        a.reset()
        b.reset()
        seed(a, b, devices=0)
        before = (a.snapshot(), b.snapshot())
        bb = adapter(a, b)
        remote, problems = await bb.inspect(context())
        assert problems == []
        server.fail_next(method, pattern.format(a=a.srp_id, b=b.srp_id), kind, message="UEM says no.", times=3)
        with pytest.raises(ServiceError) as failed:
            await run(bb, bb.plan_move(context(remote=remote)).steps)
        message = str(failed.value)
        if kind == "timeout":
            assert "did not answer within 1 s" in message
        elif kind == "status:409" and pattern == "/{b}/api/v1/users":
            assert message == f"BlackBerry tenant {b.srp_id} at {b.url} already has a user anna@fabrikam.example that this job did not create."
        else:
            assert message.endswith("UEM says no.") and "\n" not in message
        assert (a.snapshot(), b.snapshot()) == before, (method, pattern, kind)
        await bb.aclose()


# -- paging -------------------------------------------------------------------------------------------------

async def test_searches_read_every_page_of_100(uem_servers):
    a, b = uem_servers
    seed(a, b)
    for i in range(250):
        a.add_user({"username": f"bulk{i:03}@contoso.example"})
    bb = adapter(a, b)
    client = bb.client(bb.tenant_of(CONTOSO))
    found = await bb._pages(client, "/users", "users", USERS_TYPE, "username=bulk*")
    assert sorted(u["username"] for u in found) == [f"bulk{i:03}@contoso.example" for i in range(250)]
    offsets = [c["target"].split("offset=")[1] for c in a.calls("GET", f"/{a.srp_id}/api/v1/users")]
    assert offsets == ["0", "100", "200"]
    await bb.aclose()


# -- the server refuses what UEM refuses -----------------------------------------------------------------

async def test_the_test_server_refuses_what_uem_refuses(uem_servers):
    a, _ = uem_servers
    a.add_admin("admin", "pw")
    guid = a.add_user({"username": "dev@contoso.example"}, devices=({"model": "Phone"},))
    base = f"{a.url}/{a.srp_id}/api/v1"
    async with httpx.AsyncClient() as http:
        login = await http.post(f"{base}/util/authorization", json={"provider": "LOCAL", "username": "admin", "password": "cHc="})
        assert login.status_code == 415
        login = await http.post(f"{base}/util/authorization", content=b'{"provider": "LOCAL", "username": "admin", "password": "cHc="}',
                                headers={"Content-Type": "application/vnd.blackberry.authorizationrequest-v1+json"})
        token = login.text
        assert login.status_code == 200 and token
        assert (await http.get(f"{base}/users", headers={"Accept": USERS_TYPE})).status_code == 401
        assert (await http.get(f"{base}/users", headers={"Accept": USERS_TYPE, "Authorization": f"Bearer {token}"})).status_code == 401
        assert (await http.get(f"{base}/users", headers={"Accept": "application/json", "Authorization": token})).status_code == 406
        assert (await http.get(f"{base}/users?max=101", headers={"Accept": USERS_TYPE, "Authorization": token})).status_code == 400
        refused = await http.delete(f"{base}/users/{guid}", headers={"Authorization": token})
        assert refused.status_code == 409 and set(refused.json()) == {"id", "subStatusCode", "message"}
        created = await http.post(f"{base}/users", json={"username": "x"}, headers={"Authorization": token})
        assert created.status_code == 415
        other = await http.get(f"{a.url}/S99999999/api/v1/users", headers={"Accept": USERS_TYPE, "Authorization": token})
        assert other.status_code == 404
        a.expire_tokens()
        assert (await http.get(f"{base}/users", headers={"Accept": USERS_TYPE, "Authorization": token})).status_code == 401


# -- hostile answers (httpx.MockTransport: precise shapes a real server would not send) -------------

@pytest.mark.parametrize(("login", "users", "message"), [
    (httpx.Response(200, text="x" * 70_000), None, "A UEM login answer passed 65536 bytes, which is refused."),
    (httpx.Response(200, text="tok\x1b[31m"), None, "BlackBerry tenant S1 at https://uem.test answered the login of admin (LOCAL) without an authorization."),
    (httpx.Response(200, text="good-token"), httpx.Response(200, json={"users": "nope"}),
     "BlackBerry tenant S1 at https://uem.test sent an answer without a list of users."),
    (httpx.Response(200, text="good-token"), httpx.Response(500, json={"id": "x", "subStatusCode": 12, "message": "Database \x1b[2Jdown"}),
     "BlackBerry tenant S1 at https://uem.test answered GET /S1/api/v1/users with 500 Internal Server Error: Database [2Jdown."),
])
async def test_hostile_or_broken_answers_are_one_sentence(login, users, message):
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/util/authorization"):
            return login
        assert request.headers["Authorization"] == "good-token"
        return users

    tenants = tenant_map({dn: {"blackberry": {"url": f"https://uem{n}.test".replace("uem1", "uem"), "tenant_guid": f"S{n}",
                                              "username": "admin", "password_env": "UEM_A_PASSWORD"}}
                          for n, dn in ((1, CONTOSO.dn), (2, FABRIKAM.dn))})
    bb = BlackBerryAdapter(BLACKBERRY, {"retries": 0}, LayoutConfig(), tenants=tenants, environ=SECRETS, transport=httpx.MockTransport(answer))
    with pytest.raises(ServiceError) as failed:
        await bb.inspect(context())
    text = str(failed.value)
    assert text == message and "\x1b" not in text
    await bb.aclose()
