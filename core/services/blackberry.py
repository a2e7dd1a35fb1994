"""BlackBerry: a user's UEM account, moved between the customers' own UEM tenants.

Each customer has its own UEM (or UEM Cloud tenant), found in the SP's tenant map by the
customer's immutable identity — never by anything inside the customer (see
:mod:`core.services.uem_client` for the per-tenant settings and the login). A user is
found in its tenant by its exact username (the UPN, or the sAMAccountName with
``username_from = "sam"``), never by its mail.

Calls (BlackBerry UEM 12.x REST API reference; media types are sent exactly, ``Accept``
for answers and ``Content-Type`` for bodies):

- *Utilities*: ``POST /{tenantGuid}/api/v1/util/authorization`` (``authorizationrequest-v1``)
  — the login, in :mod:`core.services.uem_client`;
- *Users*: ``GET …/users?query=username=<name>&max=100&offset=<n>`` (``users-v1``, read page
  by page), ``POST …/users`` (``user-v1``, 201 + ``Location``), ``DELETE …/users/{guid}``
  (``user-v1``), ``GET …/users/{guid}/groups`` (``groups-v1``),
  ``GET …/users/{guid}/userDevices`` (``userdevices-v1``),
  ``POST …/users/{guid}/userDevices/{guid}/commands`` (``command-v1``,
  ``{"type": "REMOVE_DEVICE"}``);
- *User groups*: ``GET …/groups?query=name=<name>`` (``groups-v1``), ``POST
  …/groups/{guid}/users`` (``users-v1``, ``{"users": [{"guid"}]}``).

Query values escape ``\\``, ``,`` and ``*`` with a backslash (UEM's query syntax).

Options (``[services.<key>]``, besides the client options every tenant shares):

``plan_groups``
    A table from plan name to UEM group name; by default a plan's group has the plan's
    name (plan "Standard" → group "Standard").
``username_from``
    Which identity is the UEM ``username``: ``"upn"`` (default) or ``"sam"``.

A move is create-then-delete (UEM has no move):

1. create the user in the destination tenant as the same user — directory-linked with
   the same ``directoryId`` when it was, the same profile with its new username,
   address and names, in the groups it was in (by name, in the destination tenant) with
   the source plan's group replaced by the destination plan's — undone by deleting it;
2. only when the user has devices and the operator opted in (``--with-devices``, the
   services step's checkbox): ``REMOVE_DEVICE`` for each device, because UEM refuses to
   delete a user that still has devices. UEM stops managing them and removes its work
   data and profiles from them; they are activated again by the user in the new
   tenant. This cannot be undone. Without the opt-in, preflight refuses with the count;
3. delete the user from the source tenant — undone by re-creating exactly the captured
   user there (profile, ``directoryId``, groups); UEM gives it a new GUID.

Every step is idempotent (a create that finds the same user there counts as done;
deleting a user that is gone counts as done) and plain data naming the tenant by its
key in the tenant map, so a resumed job finds the same server and checks that its URL
and tenant GUID are still the ones planned.

A copy creates a new user in the customer's tenant (its organisation fields from the
template's UEM user), in the chosen plan's group; undone by deleting it (only if it
still has the address the copy gave it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from core.errors import ConfigError
from core.model import Customer, User
from core.plan import COLLISION, DEVICES, HTTP, PLAN_MISSING, SERVICE_MISSING, Problem, Step
from core.services.base import CopyContext, MoveContext, ServiceAdapter, ServiceCopy, ServiceMove
from core.services.http_client import ServiceError, ServiceResponse
from core.services.uem_client import UemClient, segment
from core.tenants import TenantMap
from core.text import plain

USERS_TYPE = "application/vnd.blackberry.users-v1+json"
USER_TYPE = "application/vnd.blackberry.user-v1+json"
GROUPS_TYPE = "application/vnd.blackberry.groups-v1+json"
DEVICES_TYPE = "application/vnd.blackberry.userdevices-v1+json"
COMMAND_TYPE = "application/vnd.blackberry.command-v1+json"
PAGE = 100  # UEM's largest page (max=1..100)

# Profile fields of a UEM user carried over on a move (and given back on its undo).
PROFILE_FIELDS = (
    "username", "emailAddress", "displayName", "firstName", "lastName", "company", "title", "department",
    "officePhoneNumber", "homePhoneNumber", "mobilePhoneNumber", "streetAddress", "poBox", "city", "state",
    "postalCode", "country", "directoryId",
)
# Profile fields a copied user takes over from its template's UEM user (not its identity).
COPIED_PROFILE_FIELDS = ("company", "title", "department", "streetAddress", "poBox", "city", "state", "postalCode", "country")

CREATE_USER = "create_user"
DELETE_USER = "delete_user"
REMOVE_DEVICES = "remove_devices"
DEVICES_KEPT_OUT = "devices_not_restorable"
DEVICE_FATE = (
    "UEM stops managing them (REMOVE_DEVICE): their work data, apps and profiles are removed, "
    "and each is activated again in the new tenant; this cannot be undone"
)


def query_value(value: str) -> str:
    """A value for UEM's ``query=field=value`` syntax: ``\\``, ``,`` and ``*`` escaped."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("*", "\\*")


def _same(a: Any, b: Any) -> bool:
    return str(a or "").casefold() == str(b or "").casefold()


class BlackBerryAdapter(ServiceAdapter):
    """Moves a user's BlackBerry account between the customers' UEM tenants (module docstring)."""

    def __init__(self, service, options, layout, *, tenants: TenantMap, transport=None, environ=None):
        super().__init__(service, options, layout)
        where = f"services.{service.key}"
        for stale in ("tenants", "url", "token_env", "token_file"):
            if stale in options:
                raise ConfigError(f"{where}.{stale} is no longer used: each customer's UEM (url, tenant_guid, login) is set in [tenants.\"<customer>\".{service.key}].")
        plan_groups = options.get("plan_groups", {})
        if not isinstance(plan_groups, dict) or not all(isinstance(v, str) and v.strip() for v in plan_groups.values()):
            raise ConfigError(f"{where}.plan_groups must be a table of plan name = \"UEM group name\".")
        username_from = options.get("username_from", "upn")
        if username_from not in ("upn", "sam"):
            raise ConfigError(f"{where}.username_from must be \"upn\" or \"sam\", not {plain(repr(username_from))}.")
        self._plan_groups = {str(k).casefold(): v for k, v in plan_groups.items()}
        self._username_from = username_from
        self._tenants = tenants
        self._transport = transport
        self._environ = environ
        self._clients: dict[str, UemClient] = {}

    # -- tenants and clients ----------------------------------------------------------------

    def tenant_of(self, customer: Customer) -> str | None:
        """The tenant-map key of the customer's UEM tenant, if it has one for this service."""
        tenant = self._tenants.for_customer(customer)
        return tenant.key if tenant is not None and tenant.service(self.key) else None

    def client(self, tenant_key: str) -> UemClient:
        """The client of the tenant with this key (built once: it keeps its login)."""
        client = self._clients.get(tenant_key)
        if client is None:
            tenant = self._tenants.get(tenant_key)
            settings = tenant.service(self.key) if tenant is not None else None
            if not isinstance(settings, Mapping):
                raise ServiceError(f"{self.service.display_name} has no tenant {plain(tenant_key)} in the configuration any more.", service=self.key)
            client = self._clients[tenant_key] = UemClient(
                self.key, tenant_key, settings, self.options, display_name=self.service.display_name,
                transport=self._transport, environ=self._environ,
            )
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()

    def _where(self, tenant_key: str) -> dict[str, str]:
        """How a step names its tenant: the map key, and what it pointed at when planned."""
        client = self.client(tenant_key)
        return {"tenant": tenant_key, "tenant_guid": client.tenant_guid, "url": client.url}

    def _planned_client(self, request: Mapping[str, Any]) -> UemClient:
        client = self.client(request["tenant"])
        if (client.tenant_guid, client.url) != (request.get("tenant_guid"), request.get("url")):
            raise ServiceError(
                f"{self.service.display_name}: the configuration now points tenant {plain(request['tenant'])} at {client.tenant_guid} on {client.url}, "
                f"not at {plain(request.get('tenant_guid'))} on {plain(request.get('url'))} as when the job was planned; nothing was sent.",
                service=self.key,
            )
        return client

    def group_for(self, plan_name: str) -> str:
        return self._plan_groups.get(plan_name.casefold(), plan_name)

    def _username(self, user: User) -> str | None:
        return user.upn if self._username_from == "upn" else user.sam

    # -- reads --------------------------------------------------------------------------------

    @staticmethod
    def _base(client: UemClient) -> str:
        return f"/{segment(client.tenant_guid)}/api/v1"

    async def _pages(self, client: UemClient, path: str, kind: str, media: str, query: str) -> list[dict[str, Any]]:
        """Every item of a searched collection, read ``PAGE`` at a time."""
        items: list[dict[str, Any]] = []
        while True:
            response = await client.request(
                "GET", self._base(client) + path, params={"query": query, "max": str(PAGE), "offset": str(len(items))}, headers={"Accept": media}
            )
            page = self._list(client, response, kind)
            items += page
            if len(page) < PAGE:
                return items

    async def _find_user(self, client: UemClient, username: str) -> dict[str, Any] | None:
        found = await self._pages(client, "/users", "users", USERS_TYPE, f"username={query_value(username)}")
        return next((u for u in found if _same(u.get("username"), username)), None)

    async def _find_group(self, client: UemClient, name: str) -> dict[str, Any] | None:
        found = await self._pages(client, "/groups", "groups", GROUPS_TYPE, f"name={query_value(name)}")
        return next((g for g in found if g.get("name") == name and isinstance(g.get("guid"), str)), None)

    async def _read(self, client: UemClient, path: str, kind: str, media: str) -> list[dict[str, Any]]:
        response = await client.request("GET", self._base(client) + path, headers={"Accept": media})
        return self._list(client, response, kind)

    def _list(self, client: UemClient, response: ServiceResponse, key: str) -> list[dict[str, Any]]:
        body = response.body
        items = body.get(key) if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ServiceError(f"{client.label} sent an answer without a list of {key}.", service=self.key)
        return items

    # -- preflight ------------------------------------------------------------------------------

    def _no_tenant(self, customer: Customer, who: str) -> Problem:
        return Problem(
            SERVICE_MISSING,
            f"{self.service.display_name} has no UEM tenant for customer {plain(customer.name)} in the configuration "
            f"(a [tenants.\"…\".{self.key}] table keyed by the customer's GUID or DN).",
            who,
        )

    async def inspect(self, context: MoveContext) -> tuple[dict[str, Any], list[Problem]]:
        name = self.service.display_name
        who = context.user.upn or context.user.sam
        source, destination = self.tenant_of(context.source), self.tenant_of(context.destination)
        problems = [self._no_tenant(c, who) for c, t in ((context.source, source), (context.destination, destination)) if t is None]
        old_username = self._username(context.user)
        new_username = context.upn if self._username_from == "upn" else context.sam
        if not old_username:
            problems.append(Problem(SERVICE_MISSING, f"{name} needs the user's {self._username_from} as username, and {plain(who)} has none.", who))
        if problems:
            return {}, problems
        assert source and destination and old_username
        src, dst = self.client(source), self.client(destination)

        user = await self._find_user(src, old_username)
        if user is None:
            return {}, [Problem(SERVICE_MISSING, f"{src.label} has no user {plain(old_username)} (customer {plain(context.source.name)}).", who)]
        guid = user.get("guid")
        if not isinstance(guid, str) or not guid:
            raise ServiceError(f"{src.label} sent user {plain(old_username)} without a guid.", service=self.key)
        groups = [{"guid": g.get("guid"), "name": g.get("name")} for g in await self._read(src, f"/users/{segment(guid)}/groups", "groups", GROUPS_TYPE)]
        devices = await self._read(src, f"/users/{segment(guid)}/userDevices", "userDevices", DEVICES_TYPE)
        if devices and not context.with_devices:
            problems.append(Problem(
                DEVICES,
                f"{plain(who)} has {len(devices)} device{'s' if len(devices) != 1 else ''} in {src.label}, and UEM cannot delete a user with devices: "
                "move with --with-devices (in the console: 'With devices', key d) to have UEM stop managing them.",
                who,
            ))

        if await self._find_user(dst, new_username) is not None:
            problems.append(Problem(COLLISION, f"{dst.label} already has a user {plain(new_username)}.", who))
        # Groups by name in the destination: those it is in, the source plan's swapped for the destination plan's.
        source_plan = self.user_plan(context.user)
        dropped = self.group_for(source_plan.name) if source_plan else None
        wanted = [g["name"] for g in groups if isinstance(g.get("name"), str) and g["name"] != dropped]
        plan_group = self.group_for(context.plan.name) if context.plan else None
        if plan_group and plan_group not in wanted:
            wanted.append(plan_group)
        new_groups = []
        for group_name in wanted:
            found = await self._find_group(dst, group_name)
            if found is None:
                reason = f"for plan {plain(context.plan.name)}" if context.plan and group_name == plan_group else "that the user is in at the source"
                problems.append(Problem(PLAN_MISSING if group_name == plan_group else SERVICE_MISSING, f"{dst.label} has no group {plain(group_name)} {reason}.", who))
            else:
                new_groups.append({"guid": found["guid"], "name": found["name"]})
        remote = {
            "source": self._where(source),
            "destination": self._where(destination),
            "user": {k: user[k] for k in ("guid", *PROFILE_FIELDS) if user.get(k) is not None},
            "groups": groups,
            "new_groups": new_groups,
            "devices": [{"guid": d.get("guid"), "model": plain((d.get("device") or {}).get("model") or "")} for d in devices if isinstance(d.get("guid"), str)],
            "username": new_username,
        }
        return remote, problems

    # -- plan ---------------------------------------------------------------------------------------

    def plan_move(self, context: MoveContext) -> ServiceMove:
        remote = context.remote
        who = context.user.upn or context.user.sam
        if not remote.get("user"):
            return ServiceMove(problems=(Problem(SERVICE_MISSING, f"{self.service.display_name} was not inspected for {who}.", who),))
        source, destination = remote["source"], remote["destination"]
        old = dict(remote["user"])
        old_guid = old.pop("guid")
        new = dict(old)
        new["username"] = remote["username"]
        if context.email:
            new["emailAddress"] = context.email
        else:
            new.pop("emailAddress", None)
        for key, value in (("displayName", context.user.display_name), ("firstName", context.user.first), ("lastName", context.user.last)):
            if value:
                new[key] = value
        create = Step(
            user=who,
            action=HTTP,
            target=f"{self.key}: create user {plain(new['username'])} in tenant {plain(destination['tenant_guid'])}",
            before=None,
            after={"tenant": destination["tenant_guid"], **self._shown(new), "groups": [plain(g["name"]) for g in remote["new_groups"]]},
            service=self.key,
            request=self._create_request(destination, new, remote["new_groups"]),
            undo_request=self._delete_request(destination, None, new),
        )
        steps = [create]
        devices = remote.get("devices") or []
        if devices:
            steps.append(Step(
                user=who,
                action=HTTP,
                target=f"{self.key}: remove {len(devices)} device(s) of {plain(old.get('username', ''))} from tenant {plain(source['tenant_guid'])}",
                before={"tenant": source["tenant_guid"], "devices": [d["model"] or d["guid"] for d in devices]},
                after={"devices": DEVICE_FATE},
                service=self.key,
                request={"op": REMOVE_DEVICES, **source, "guid": old_guid, "devices": [d["guid"] for d in devices]},
                undo_request={"op": DEVICES_KEPT_OUT},
            ))
        steps.append(Step(
            user=who,
            action=HTTP,
            target=f"{self.key}: delete user {plain(old.get('username', ''))} from tenant {plain(source['tenant_guid'])}",
            before={"tenant": source["tenant_guid"], "guid": plain(old_guid), **self._shown(old), "groups": [plain(g.get("name")) for g in remote.get("groups", [])]},
            after=None,
            service=self.key,
            request=self._delete_request(source, old_guid, old),
            undo_request=self._create_request(source, old, [g for g in remote.get("groups", []) if g.get("guid")]),
        ))
        return ServiceMove(steps=tuple(steps))

    # -- copy -----------------------------------------------------------------------------------------

    async def inspect_copy(self, context: CopyContext) -> tuple[dict[str, Any], list[Problem]]:
        who = context.upn
        tenant = self.tenant_of(context.customer)
        if tenant is None:
            return {}, [self._no_tenant(context.customer, who)]
        client = self.client(tenant)
        username = context.upn if self._username_from == "upn" else context.sam
        problems: list[Problem] = []
        if await self._find_user(client, username) is not None:
            problems.append(Problem(COLLISION, f"{client.label} already has a user {plain(username)}.", who))
        plan_group = None
        if context.plan is not None:
            group_name = self.group_for(context.plan.name)
            group = await self._find_group(client, group_name)
            if group is None:
                problems.append(Problem(PLAN_MISSING, f"{client.label} has no group {plain(group_name)} for plan {plain(context.plan.name)}.", who))
            else:
                plan_group = {"guid": group["guid"], "name": group["name"]}
        profile: dict[str, Any] = {}
        template_username = self._username(context.template)
        found = await self._find_user(client, template_username) if template_username else None
        if found:
            profile = {k: found[k] for k in COPIED_PROFILE_FIELDS if isinstance(found.get(k), str) and found[k]}
        return {"tenant": self._where(tenant), "username": username, "plan_group": plan_group, "profile": profile}, problems

    def plan_copy(self, context: CopyContext) -> ServiceCopy:
        remote = context.remote
        if not remote.get("tenant"):
            return ServiceCopy(problems=(Problem(SERVICE_MISSING, f"{self.service.display_name} was not inspected for {context.upn}.", context.upn),))
        tenant = remote["tenant"]
        new: dict[str, Any] = dict(remote.get("profile") or {})
        new["username"] = remote["username"]
        if context.email:
            new["emailAddress"] = context.email
        new.update({"displayName": context.display_name, "firstName": context.first, "lastName": context.last})
        groups = [remote["plan_group"]] if remote.get("plan_group") else []
        step = Step(
            user=context.upn,
            action=HTTP,
            target=f"{self.key}: create user {plain(new['username'])} in tenant {plain(tenant['tenant_guid'])}",
            before=None,
            after={"tenant": tenant["tenant_guid"], **self._shown(new), "groups": [plain(g["name"]) for g in groups]},
            service=self.key,
            request=self._create_request(tenant, new, groups),
            undo_request=self._delete_request(tenant, None, new),
        )
        return ServiceCopy(steps=(step,))

    @staticmethod
    def _shown(user: dict[str, Any]) -> dict[str, str]:
        return {k: plain(user[k]) for k in ("username", "emailAddress", "displayName", "directoryId") if user.get(k)}

    @staticmethod
    def _create_request(where: dict[str, str], user: dict[str, Any], groups: list[dict[str, Any]]) -> dict[str, Any]:
        return {"op": CREATE_USER, **where, "json": dict(user), "groups": [{"guid": g["guid"], "name": g.get("name")} for g in groups]}

    @staticmethod
    def _delete_request(where: dict[str, str], guid: str | None, user: dict[str, Any]) -> dict[str, Any]:
        return {"op": DELETE_USER, **where, "guid": guid, "username": user.get("username"), "emailAddress": user.get("emailAddress")}

    def foreign_call(self, step: Step, customers) -> str | None:
        """Why a step (and its undo) must not run: it names a UEM tenant that is not the
        tenant-map entry of one of ``customers``, or a server or tenant GUID other than the
        one that entry configures (a journal edited to send a login elsewhere)."""
        tenants = {t for t in (self.tenant_of(c) for c in customers) if t}
        for request in (step.request, step.undo_request):
            request = request or {}
            if request.get("op") == DEVICES_KEPT_OUT:
                continue
            tenant = request.get("tenant")
            if not isinstance(tenant, str) or tenant not in tenants:
                return f"names UEM tenant {plain(str(tenant))}, which is not the tenant of a customer of this job"
            client = self.client(tenant)
            if (request.get("tenant_guid"), request.get("url")) != (client.tenant_guid, client.url):
                return (f"calls UEM tenant {plain(str(request.get('tenant_guid')))} at {plain(str(request.get('url')))}, "
                        f"which is not where the configuration puts tenant {plain(tenant)}")
        return None

    # -- run ------------------------------------------------------------------------------------------

    async def perform(self, step: Step) -> dict[str, Any] | None:
        return await self._run(step.request or {}, None)

    async def undo(self, step: Step, result: dict[str, Any] | None) -> None:
        await self._run(step.undo_request or {}, result)

    async def _run(self, request: dict[str, Any], result: dict[str, Any] | None) -> dict[str, Any] | None:
        op = request.get("op")
        if op == DEVICES_KEPT_OUT:
            return {"restored": False}  # removed devices come back only by being activated again (the plan says so)
        if op not in (CREATE_USER, DELETE_USER, REMOVE_DEVICES):
            raise ServiceError(f"{self.service.display_name} cannot run a step of kind {plain(repr(op))}.", service=self.key)
        client = self._planned_client(request)
        if op == CREATE_USER:
            return await self._create(client, request)
        if op == REMOVE_DEVICES:
            return await self._remove_devices(client, request)
        return await self._delete(client, request, result)

    async def _create(self, client: UemClient, request: dict[str, Any]) -> dict[str, Any]:
        """Create a user (or find it already created with the same data), then add it to its groups."""
        body = request["json"]
        username = body["username"]
        response = await client.request("POST", self._base(client) + "/users", json=body, headers={"Content-Type": USER_TYPE}, allow=(409,))
        if response.status == 409:
            existing = await self._find_user(client, username)
            if existing is None or not _same(existing.get("emailAddress"), body.get("emailAddress")) or existing.get("directoryId") != body.get("directoryId"):
                raise ServiceError(f"{client.label} already has a user {plain(username)} that this job did not create.", service=self.key, status=409)
            guid = existing.get("guid")
        else:
            guid = self._created_guid(response)
            if guid is None:  # an answer without Location: look the user up
                existing = await self._find_user(client, username)
                guid = existing.get("guid") if existing else None
        if not guid:
            raise ServiceError(f"{client.label} created user {plain(username)} but did not say its guid.", service=self.key)
        for group in request.get("groups", []):
            # Adding a member twice leaves one membership: safe to retry.
            await client.request(
                "POST", f"{self._base(client)}/groups/{segment(group['guid'])}/users",
                json={"users": [{"guid": guid}]}, headers={"Content-Type": USERS_TYPE}, idempotent=True,
            )
        return {"tenant": request["tenant"], "guid": guid, "username": username}

    @staticmethod
    def _created_guid(response: ServiceResponse) -> str | None:
        location = {k.lower(): v for k, v in response.headers.items()}.get("location")
        if location:
            return location.rstrip("/").rsplit("/", 1)[-1] or None
        return None

    async def _remove_devices(self, client: UemClient, request: dict[str, Any]) -> dict[str, Any]:
        """``REMOVE_DEVICE`` for each device the plan listed (one already gone counts as done)."""
        for device in request["devices"]:
            await client.request(
                "POST", f"{self._base(client)}/users/{segment(request['guid'])}/userDevices/{segment(device)}/commands",
                json={"type": "REMOVE_DEVICE"}, headers={"Content-Type": COMMAND_TYPE}, idempotent=True, allow=(404,),
            )
        return {"tenant": request["tenant"], "removed": list(request["devices"])}

    async def _delete(self, client: UemClient, request: dict[str, Any], result: dict[str, Any] | None) -> dict[str, Any]:
        """Delete a user by guid (from the step, else the result, else a lookup by username)."""
        guid = request.get("guid") or (result or {}).get("guid")
        if not guid:
            # After a crash the create's result may be missing: find what it created,
            # and only if it is the user this job meant (same address), delete it.
            existing = await self._find_user(client, request["username"])
            if existing is None:
                return {"tenant": request["tenant"], "guid": None, "deleted": False}
            if not _same(existing.get("emailAddress"), request.get("emailAddress")):
                raise ServiceError(f"{client.label} has a user {plain(request['username'])} with another address; it was left alone.", service=self.key)
            guid = existing.get("guid")
        response = await client.request("DELETE", f"{self._base(client)}/users/{segment(guid)}", headers={"Accept": USER_TYPE}, allow=(404,))
        return {"tenant": request["tenant"], "guid": guid, "deleted": response.status != 404}
