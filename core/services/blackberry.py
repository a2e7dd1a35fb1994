"""BlackBerry: users, tenants and groups behind a BlackBerry UEM-shaped REST API.

The resources used are UEM's (``/{tenantGuid}/api/v1/…``, media types
``application/vnd.blackberry.*-v1+json``):

- ``GET  /{tenant}/api/v1/users?query=username=<name>`` (or ``emailAddress=``, only to
  refuse a clash): search users, answer ``{"users": [{"guid", "username", "emailAddress", "displayName", …}]}``;
- ``POST /{tenant}/api/v1/users``: create a local user (``201``, ``Location`` header);
- ``DELETE /{tenant}/api/v1/users/{userGuid}``: remove a user;
- ``GET  /{tenant}/api/v1/users/{userGuid}/groups``: the user's groups;
- ``GET  /{tenant}/api/v1/groups?query=name=<name>``: find a group (``{"groups": […]}``);
- ``POST /{tenant}/api/v1/groups/{groupGuid}/users`` with ``{"users": [{"guid": …}]}``:
  add users to a group.

Query values escape ``\\``, ``,`` and ``*`` with a backslash (UEM's query syntax).
A tenant the server does not know answers 404 on its collections.

Configuration (``[services.<key>]``, besides the client options of
:mod:`core.services.http_client`):

The UEM tenant of a customer is ``tenant_guid`` in its ``[tenants."<guid or DN>".<key>]``
table (:mod:`core.tenants`), set by the SP: never derived from the customer's code or
name, which the tenant's admins can edit. A customer without one is a preflight problem.
``plan_groups``
    A table from plan name to UEM group name; by default a plan's group has the
    plan's name (plan "Standard" → group "Standard").
``username_from``
    Which identity becomes the UEM ``username``: ``"upn"`` (default), ``"sam"`` or
    ``"email"``.

A move of one user is two steps, both plain data that another process can replay:

1. create the user in the destination tenant (new username, email address and
   display name; the other profile fields are carried over) and add it to the
   destination plan's group — undone by deleting the user created (found by
   username when the step's result was lost in a crash);
2. delete the user from the source tenant — undone by creating it again from the
   profile and group list captured at plan time (UEM gives it a new GUID, and its
   devices have to be activated again: UEM cannot keep them across a delete).

Both are idempotent: a create that finds the same user already there counts as
done, and deleting a user that is gone counts as done.

A copy of a user is one step: create a new UEM user in the customer's tenant (the new
username, address and names; the template's organisation fields — company, title,
department, address — when the template has a UEM user) in the chosen plan's group,
undone by deleting it (only if it still has the address the copy gave it).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from core.errors import ConfigError
from core.model import Customer, User
from core.plan import COLLISION, HTTP, PLAN_MISSING, SERVICE_MISSING, Problem, Step
from core.services.base import CopyContext, MoveContext, ServiceCopy, ServiceMove
from core.services.http_client import ApiAdapter, ServiceError, ServiceResponse
from core.tenants import TenantMap
from core.text import plain

USERS_TYPE = "application/vnd.blackberry.users-v1+json"
USER_TYPE = "application/vnd.blackberry.user-v1+json"
GROUPS_TYPE = "application/vnd.blackberry.groups-v1+json"

# Profile fields UEM accepts when creating a local user; carried over on a move.
PROFILE_FIELDS = (
    "username",
    "emailAddress",
    "displayName",
    "firstName",
    "lastName",
    "company",
    "title",
    "department",
    "officePhoneNumber",
    "homePhoneNumber",
    "mobilePhoneNumber",
    "streetAddress",
    "poBox",
    "city",
    "state",
    "postalCode",
    "country",
)

# Profile fields a copied user takes over from its template's UEM user (not its identity).
COPIED_PROFILE_FIELDS = ("company", "title", "department", "streetAddress", "poBox", "city", "state", "postalCode", "country")

CREATE_USER = "create_user"
DELETE_USER = "delete_user"


def query_value(value: str) -> str:
    """A value for UEM's ``query=field=value`` syntax: ``\\``, ``,`` and ``*`` escaped."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("*", "\\*")


def segment(value: str) -> str:
    """One path segment, fully percent-encoded (a hostile GUID cannot add a path)."""
    return quote(str(value), safe="")


def _same(a: Any, b: Any) -> bool:
    return str(a or "").casefold() == str(b or "").casefold()


class BlackBerryAdapter(ApiAdapter):
    """Moves a user's BlackBerry account between UEM tenants (see the module docstring)."""

    def __init__(self, service, options, layout, *, tenants: TenantMap, transport=None, environ=None):
        super().__init__(service, options, layout, transport=transport, environ=environ)
        where = f"services.{service.key}"
        if "tenants" in options:
            raise ConfigError(f"{where}.tenants is not allowed: set tenant_guid in each customer's [tenants.\"<guid or DN>\".{service.key}] table.")
        plan_groups = options.get("plan_groups", {})
        if not isinstance(plan_groups, dict) or not all(isinstance(v, str) and v.strip() for v in plan_groups.values()):
            raise ConfigError(f"{where}.plan_groups must be a table of plan name = \"UEM group name\".")
        username_from = options.get("username_from", "upn")
        if username_from not in ("upn", "sam", "email"):
            raise ConfigError(f"{where}.username_from must be \"upn\", \"sam\" or \"email\", not {plain(repr(username_from))}.")
        self._tenants = tenants
        self._plan_groups = {str(k).casefold(): v for k, v in plan_groups.items()}
        self._username_from = username_from

    # -- client -----------------------------------------------------------------------

    # -- mapping ------------------------------------------------------------------------

    def tenant_for(self, customer: Customer) -> str | None:
        """The UEM tenant of a customer: ``tenant_guid`` of its tenant map entry, else none."""
        tenant = self._tenants.for_customer(customer)
        settings = tenant.service(self.key) if tenant else None
        return settings.get("tenant_guid") if settings else None

    def group_for(self, plan_name: str) -> str:
        return self._plan_groups.get(plan_name.casefold(), plan_name)

    def _old_username(self, user: User) -> str | None:
        return {"upn": user.upn, "sam": user.sam, "email": user.email}[self._username_from]

    def _new_username(self, context: MoveContext) -> str | None:
        return {"upn": context.upn, "sam": context.sam, "email": context.email}[self._username_from]

    # -- reads --------------------------------------------------------------------------

    def _users_path(self, tenant: str) -> str:
        return f"/{segment(tenant)}/api/v1/users"

    async def _search_users(self, tenant: str, field: str, value: str) -> list[dict[str, Any]] | None:
        """Users whose ``field`` equals ``value`` (case-insensitive); ``None`` if the tenant is unknown."""
        response = await self.client.request(
            "GET",
            self._users_path(tenant),
            params={"query": f"{field}={query_value(value)}"},
            headers={"Accept": USERS_TYPE},
            allow=(404,),
        )
        if response.status == 404:
            return None
        users = self._list(response, "users")
        return [u for u in users if _same(u.get(field), value)]

    async def _find_user(self, tenant: str, username: str) -> dict[str, Any] | None:
        found = await self._search_users(tenant, "username", username)
        return found[0] if found else None

    async def _find_group(self, tenant: str, name: str) -> dict[str, Any] | None:
        response = await self.client.request(
            "GET",
            f"/{segment(tenant)}/api/v1/groups",
            params={"query": f"name={query_value(name)}"},
            headers={"Accept": GROUPS_TYPE},
            allow=(404,),
        )
        if response.status == 404:
            return None
        return next((g for g in self._list(response, "groups") if _same(g.get("name"), name)), None)

    async def _user_groups(self, tenant: str, guid: str) -> list[dict[str, Any]]:
        response = await self.client.request(
            "GET", f"{self._users_path(tenant)}/{segment(guid)}/groups", headers={"Accept": GROUPS_TYPE}
        )
        return self._list(response, "groups")

    def _list(self, response: ServiceResponse, key: str) -> list[dict[str, Any]]:
        body = response.body
        items = body.get(key) if isinstance(body, dict) else None
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ServiceError(f"{self.service.display_name} sent an answer without a list of {key}.", service=self.key)
        return items

    # -- preflight ------------------------------------------------------------------------

    async def inspect(self, context: MoveContext) -> tuple[dict[str, Any], list[Problem]]:
        name = self.service.display_name
        who = context.user.upn or context.user.sam
        problems: list[Problem] = []
        source, destination = self.tenant_for(context.source), self.tenant_for(context.destination)
        for customer, tenant in ((context.source, source), (context.destination, destination)):
            if tenant is None:
                problems.append(Problem(SERVICE_MISSING, f"{name} has no tenant for customer {customer.name} (set tenant_guid in its [tenants] {self.key} table).", who))
        old_username, new_username = self._old_username(context.user), self._new_username(context)
        if not old_username or not new_username:
            problems.append(Problem(SERVICE_MISSING, f"{name} needs the user's {self._username_from} as username, and {who} has none.", who))
        if problems:
            return {}, problems
        assert source and destination and old_username and new_username

        # The user at the source: by its exact username only. Never by address: a user's
        # mail is editable by its tenant's admins, so it could name another person.
        found = await self._search_users(source, "username", old_username)
        if found is None:
            return {}, [Problem(SERVICE_MISSING, f"{name} has no tenant {source} (customer {context.source.name}).", who)]
        if len(found) > 1:
            return {}, [Problem(COLLISION, f"{name} tenant {source} has {len(found)} users named {old_username}; none is moved.", who)]
        if not found:
            return {}, [Problem(SERVICE_MISSING, f"{name} has no user {old_username} in tenant {source} (customer {context.source.name}).", who)]
        user = found[0]
        guid = user.get("guid")
        if not isinstance(guid, str) or not guid:
            raise ServiceError(f"{name} sent user {plain(old_username)} without a guid.", service=self.key)
        groups = [{"guid": g.get("guid"), "name": g.get("name")} for g in await self._user_groups(source, guid)]

        # The destination: it exists, holds no user with the new username or address,
        # and has the plan's group.
        clash = await self._search_users(destination, "username", new_username)
        if clash is None:
            return {}, [Problem(SERVICE_MISSING, f"{name} has no tenant {destination} (customer {context.destination.name}).", who)]
        if clash:
            problems.append(Problem(COLLISION, f"{name} tenant {destination} already has a user {new_username}.", who))
        if context.email and not _same(context.email, new_username):
            if await self._search_users(destination, "emailAddress", context.email):
                problems.append(Problem(COLLISION, f"{name} tenant {destination} already has a user with the address {context.email}.", who))
        plan_group = None
        if context.plan is not None:
            group_name = self.group_for(context.plan.name)
            group = await self._find_group(destination, group_name)
            if group is None or not group.get("guid"):
                problems.append(Problem(PLAN_MISSING, f"{name} tenant {destination} has no group {group_name} for plan {context.plan.name}.", who))
            else:
                plan_group = {"guid": group["guid"], "name": group.get("name") or group_name}
        remote = {
            "source_tenant": source,
            "destination_tenant": destination,
            "user": {k: user[k] for k in ("guid", *PROFILE_FIELDS) if user.get(k) is not None},
            "groups": groups,
            "plan_group": plan_group,
            "username": new_username,
        }
        return remote, problems

    # -- plan -------------------------------------------------------------------------------

    def plan_move(self, context: MoveContext) -> ServiceMove:
        remote = context.remote
        who = context.user.upn or context.user.sam
        if not remote.get("user"):
            return ServiceMove(problems=(Problem(SERVICE_MISSING, f"{self.service.display_name} was not inspected for {who}.", who),))
        source, destination = remote["source_tenant"], remote["destination_tenant"]
        old = dict(remote["user"])
        old_guid = old.pop("guid")
        new = {k: v for k, v in old.items()}
        new["username"] = remote["username"]
        if context.email:
            new["emailAddress"] = context.email
        else:
            new.pop("emailAddress", None)
        for key, value in (("displayName", context.user.display_name), ("firstName", context.user.first), ("lastName", context.user.last)):
            if value:
                new[key] = value
        plan_groups = [remote["plan_group"]] if remote.get("plan_group") else []
        label = self.key
        create = Step(
            user=who,
            action=HTTP,
            target=f"{label}: create user {plain(new['username'])} in tenant {plain(destination)}",
            before=None,
            after={"tenant": destination, **self._shown(new), "groups": [plain(g["name"]) for g in plan_groups]},
            service=self.key,
            request=self._create_request(destination, new, plan_groups),
            undo_request=self._delete_request(destination, None, new),
        )
        delete = Step(
            user=who,
            action=HTTP,
            target=f"{label}: delete user {plain(old.get('username', ''))} from tenant {plain(source)}",
            before={"tenant": source, "guid": plain(old_guid), **self._shown(old), "groups": [plain(g.get("name")) for g in remote.get("groups", [])]},
            after=None,
            service=self.key,
            request=self._delete_request(source, old_guid, old),
            undo_request=self._create_request(source, old, [g for g in remote.get("groups", []) if g.get("guid")]),
        )
        return ServiceMove(steps=(create, delete))

    # -- copy -------------------------------------------------------------------------------

    def _copy_username(self, context: CopyContext) -> str | None:
        return {"upn": context.upn, "sam": context.sam, "email": context.email}[self._username_from]

    async def inspect_copy(self, context: CopyContext) -> tuple[dict[str, Any], list[Problem]]:
        name = self.service.display_name
        who = context.upn
        tenant = self.tenant_for(context.customer)
        if tenant is None:
            return {}, [Problem(SERVICE_MISSING, f"{name} has no tenant for customer {context.customer.name} (set tenant_guid in its [tenants] {self.key} table).", who)]
        username = self._copy_username(context)
        if not username:
            return {}, [Problem(SERVICE_MISSING, f"{name} needs the new user's {self._username_from} as username, and {who} has none.", who)]
        clash = await self._search_users(tenant, "username", username)
        if clash is None:
            return {}, [Problem(SERVICE_MISSING, f"{name} has no tenant {tenant} (customer {context.customer.name}).", who)]
        problems: list[Problem] = []
        if clash:
            problems.append(Problem(COLLISION, f"{name} tenant {tenant} already has a user {username}.", who))
        if context.email and not _same(context.email, username):
            if await self._search_users(tenant, "emailAddress", context.email):
                problems.append(Problem(COLLISION, f"{name} tenant {tenant} already has a user with the address {context.email}.", who))
        plan_group = None
        if context.plan is not None:
            group_name = self.group_for(context.plan.name)
            group = await self._find_group(tenant, group_name)
            if group is None or not group.get("guid"):
                problems.append(Problem(PLAN_MISSING, f"{name} tenant {tenant} has no group {group_name} for plan {context.plan.name}.", who))
            else:
                plan_group = {"guid": group["guid"], "name": group.get("name") or group_name}
        profile: dict[str, Any] = {}
        template_username = self._old_username(context.template)
        if template_username:
            found = await self._search_users(tenant, "username", template_username) or []
            if found:
                profile = {k: found[0][k] for k in COPIED_PROFILE_FIELDS if isinstance(found[0].get(k), str) and found[0][k]}
        return {"tenant": tenant, "username": username, "plan_group": plan_group, "profile": profile}, problems

    def plan_copy(self, context: CopyContext) -> ServiceCopy:
        remote = context.remote
        who = context.upn
        if not remote.get("tenant"):
            return ServiceCopy(problems=(Problem(SERVICE_MISSING, f"{self.service.display_name} was not inspected for {who}.", who),))
        tenant = remote["tenant"]
        new: dict[str, Any] = dict(remote.get("profile") or {})
        new["username"] = remote["username"]
        if context.email:
            new["emailAddress"] = context.email
        new.update({"displayName": context.display_name, "firstName": context.first, "lastName": context.last})
        groups = [remote["plan_group"]] if remote.get("plan_group") else []
        step = Step(
            user=who,
            action=HTTP,
            target=f"{self.key}: create user {plain(new['username'])} in tenant {plain(tenant)}",
            before=None,
            after={"tenant": tenant, **self._shown(new), "groups": [plain(g["name"]) for g in groups]},
            service=self.key,
            request=self._create_request(tenant, new, groups),
            undo_request=self._delete_request(tenant, None, new),
        )
        return ServiceCopy(steps=(step,))

    @staticmethod
    def _shown(user: dict[str, Any]) -> dict[str, str]:
        return {k: plain(user[k]) for k in ("username", "emailAddress", "displayName") if user.get(k)}

    def _create_request(self, tenant: str, user: dict[str, Any], groups: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "op": CREATE_USER,
            "method": "POST",
            "path": self._users_path(tenant),
            "tenant": tenant,
            "json": dict(user),
            "groups": [{"guid": g["guid"], "name": g.get("name")} for g in groups],
        }

    def _delete_request(self, tenant: str, guid: str | None, user: dict[str, Any]) -> dict[str, Any]:
        return {
            "op": DELETE_USER,
            "method": "DELETE",
            "path": f"{self._users_path(tenant)}/{segment(guid) if guid else '{guid}'}",
            "tenant": tenant,
            "guid": guid,
            "username": user.get("username"),
            "emailAddress": user.get("emailAddress"),
        }

    def foreign_call(self, step: Step, customers) -> str | None:
        """A call (and its undo) must name the UEM tenant of one of ``customers``, from the
        tenant map, and the path this adapter builds for that tenant."""
        tenants = {t for t in (self.tenant_for(c) for c in customers) if t}
        for request in (step.request, step.undo_request):
            request = request or {}
            tenant = request.get("tenant")
            if not isinstance(tenant, str) or tenant not in tenants:
                return f"names UEM tenant {plain(str(tenant))}, which is not the tenant of a customer of this job"
            users = self._users_path(tenant)
            guid = request.get("guid")
            expected = {CREATE_USER: users, DELETE_USER: f"{users}/{segment(guid) if guid else '{guid}'}"}.get(request.get("op"))
            if expected is None or request.get("path") != expected:
                return f"calls {plain(str(request.get('path')))}, which is not a path of UEM tenant {plain(tenant)}"
        return None

    # -- run --------------------------------------------------------------------------------

    async def perform(self, step: Step) -> dict[str, Any] | None:
        return await self._run(step.request or {}, None)

    async def undo(self, step: Step, result: dict[str, Any] | None) -> None:
        await self._run(step.undo_request or {}, result)

    async def _run(self, request: dict[str, Any], result: dict[str, Any] | None) -> dict[str, Any] | None:
        op = request.get("op")
        if op == CREATE_USER:
            return await self._create(request)
        if op == DELETE_USER:
            return await self._delete(request, result)
        raise ServiceError(f"{self.service.display_name} cannot run a step of kind {plain(repr(op))}.", service=self.key)

    async def _create(self, request: dict[str, Any]) -> dict[str, Any]:
        """Create a user (or find it already created with the same data), then add it to its groups."""
        tenant, body = request["tenant"], request["json"]
        username = body["username"]
        response = await self.client.request(
            "POST", request["path"], json=body, headers={"Content-Type": USER_TYPE}, allow=(409,)
        )
        guid = None
        if response.status == 409:
            existing = await self._find_user(tenant, username)
            if existing is None or not _same(existing.get("emailAddress"), body.get("emailAddress")):
                address = f" or the address {plain(body['emailAddress'])}" if body.get("emailAddress") else ""
                raise ServiceError(
                    f"{self.service.display_name} tenant {plain(tenant)} already has a user {plain(username)}{address} that this job did not create.",
                    service=self.key,
                    status=409,
                )
            guid = existing.get("guid")
        else:
            guid = self._created_guid(response)
            if guid is None:  # an answer without Location or body: look the user up
                existing = await self._find_user(tenant, username)
                guid = existing.get("guid") if existing else None
        if not guid:
            raise ServiceError(f"{self.service.display_name} created user {plain(username)} but did not say its guid.", service=self.key)
        for group in request.get("groups", []):
            # Adding a member twice leaves one membership: safe to retry.
            await self.client.request(
                "POST",
                f"/{segment(tenant)}/api/v1/groups/{segment(group['guid'])}/users",
                json={"users": [{"guid": guid}]},
                headers={"Content-Type": USERS_TYPE},
                idempotent=True,
            )
        return {"tenant": tenant, "guid": guid, "username": username}

    @staticmethod
    def _created_guid(response: ServiceResponse) -> str | None:
        if isinstance(response.body, dict) and isinstance(response.body.get("guid"), str):
            return response.body["guid"]
        location = {k.lower(): v for k, v in response.headers.items()}.get("location")
        if location:
            return location.rstrip("/").rsplit("/", 1)[-1] or None
        return None

    async def _delete(self, request: dict[str, Any], result: dict[str, Any] | None) -> dict[str, Any]:
        """Delete a user by guid (from the step, else the result, else a lookup by username)."""
        tenant = request["tenant"]
        guid = request.get("guid") or (result or {}).get("guid")
        if not guid:
            # After a crash the create's result may be missing: find what it created,
            # and only if it is the user this job meant (same address), delete it.
            existing = await self._find_user(tenant, request["username"])
            if existing is None:
                return {"tenant": tenant, "guid": None, "deleted": False}
            if request.get("emailAddress") and not _same(existing.get("emailAddress"), request["emailAddress"]):
                raise ServiceError(
                    f"{self.service.display_name} tenant {plain(tenant)} has a user {plain(request['username'])} with another address; it was left alone.",
                    service=self.key,
                )
            guid = existing.get("guid")
        response = await self.client.request(
            "DELETE", f"{self._users_path(tenant)}/{segment(guid)}", headers={"Accept": USER_TYPE}, allow=(404,)
        )
        return {"tenant": tenant, "guid": guid, "deleted": response.status != 404}
