"""In-memory provisioning APIs, as one pure request handler.

:class:`ProvisioningBackend` keeps, in memory:

- BlackBerry UEM-shaped resources: tenants, each with users and groups
  (``/{tenant}/api/v1/users[?query=field=value]``, ``…/users/{guid}``,
  ``…/users/{guid}/groups``, ``/{tenant}/api/v1/groups[?query=name=…]``,
  ``…/groups/{guid}/users``), with UEM's answers: ``{"users": […]}``,
  ``{"groups": […]}``, ``201`` + ``Location`` on create, ``409`` on a duplicate
  username or address, ``404`` with ``{"message": …}`` for an unknown tenant, user
  or group;
- a generic provisioning API under ``/provisioning``: ``GET``/``PUT``/``DELETE
  /provisioning/users/{upn}`` (a PUT with another ``upn`` in its body renames the
  record) and ``POST /provisioning/users`` (creates a record: 201, or 409 when its
  ``upn`` is taken).

It answers a parsed :class:`Request` with a :class:`Reply` and opens no socket. Two
front ends use it: the demo, through an :class:`httpx.MockTransport`
(:meth:`ProvisioningBackend.transport`, wired by :mod:`core.demo.services`), and the
tests' real HTTP server (``tests/provisioning_server.py``), which adds the socket,
authentication, fault injection and a call log. The backend checks no credentials.
Thread-safe: every request and every seeding or reading method holds one lock.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

__all__ = ["GENERIC_PREFIX", "ProvisioningBackend", "Reply", "Request"]

GENERIC_PREFIX = "/provisioning"  # where the generic records API lives
USER_QUERY_FIELDS = frozenset({"username", "emailAddress", "displayName", "firstName", "lastName"})
GROUP_QUERY_FIELDS = frozenset({"name"})


@dataclass(frozen=True)
class Request:
    """One HTTP request, decoded once for the backend (and for a caller's call log)."""

    method: str
    raw_path: str  # as sent, still percent-encoded: "%2F" stays inside its segment
    path: str  # decoded
    query: dict[str, str]  # first value of each parameter
    body: Any  # decoded JSON, or None (empty or malformed body)
    malformed: bool = False  # a body was sent and it is not JSON

    @classmethod
    def parse(cls, method: str, target: str, content: bytes = b"") -> Request:
        """``target`` is the request line's path and query (``/a/b?x=1``), ``content`` the raw body."""
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        body, malformed = None, False
        if content:
            try:
                body = json.loads(content)
            except ValueError:
                malformed = True
        return cls(method.upper(), parts.path, unquote(parts.path), query, body, malformed)


@dataclass(frozen=True)
class Reply:
    """An answer: status, a JSON-able body (``None``: no body) and headers."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)

    def content(self) -> bytes:
        return b"" if self.body is None else json.dumps(self.body).encode()


class _Answer(Exception):
    """Raised by a route to answer at once (errors, mostly)."""

    def __init__(self, status: int, body: Any = None, headers: Mapping[str, str] | None = None):
        self.reply = Reply(status, body, dict(headers or {}))


@dataclass
class _Tenant:
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # guid → user
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # guid → {"guid","name","description","members": set}


def _unescape_query(value: str) -> tuple[str, bool]:
    """UEM query value → (literal text, prefix match?): ``\\`` escapes, trailing ``*`` is a prefix."""
    out, i, prefix = [], 0, False
    while i < len(value):
        char = value[i]
        if char == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
            continue
        if char == "*" and i == len(value) - 1:
            prefix = True
        else:
            out.append(char)
        i += 1
    return "".join(out), prefix


def _filter(items: list[dict[str, Any]], query: str | None, fields: frozenset[str]) -> list[dict[str, Any]]:
    """UEM's ``field=value[,field=value]`` search, ``\\`` escaping; commas split only when unescaped."""
    if not query:
        return items
    out = items
    for term in re.split(r"(?<!\\),", query):
        name, _, value = term.partition("=")
        if name not in fields:
            raise _Answer(400, {"message": f"Invalid search query field {name}."})
        text, prefix = _unescape_query(value)
        folded = text.casefold()
        if prefix:
            out = [i for i in out if str(i.get(name, "")).casefold().startswith(folded)]
        else:
            out = [i for i in out if str(i.get(name, "")).casefold() == folded]
    return out


def _group_view(group: dict[str, Any]) -> dict[str, Any]:
    return {"guid": group["guid"], "name": group["name"], "description": group["description"], "directoryLinked": False}


class ProvisioningBackend:
    """The in-memory UEM tenants and generic records (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tenants: dict[str, _Tenant] = {}
        self._records: dict[str, dict[str, Any]] = {}  # generic API: upn (casefolded) → record

    # -- front ends ---------------------------------------------------------------------

    def handle(self, request: Request, *, base_url: str) -> Reply:
        """Answer one request; ``base_url`` (scheme and host) is used in ``Location`` headers."""
        if request.malformed:
            return Reply(400, {"message": "The request body is not JSON."})
        try:
            with self._lock:
                return self._route(request, base_url.rstrip("/"))
        except _Answer as answer:
            return answer.reply

    def __call__(self, request: httpx.Request) -> httpx.Response:
        """An :class:`httpx.MockTransport` handler."""
        url = request.url
        parsed = Request.parse(request.method, url.raw_path.decode("ascii"), request.content)
        reply = self.handle(parsed, base_url=f"{url.scheme}://{url.netloc.decode('ascii')}")
        headers = {"Content-Type": "application/json", **reply.headers}
        return httpx.Response(reply.status, headers=headers, content=reply.content())

    def transport(self) -> httpx.MockTransport:
        """A transport that answers every request from this backend, in process."""
        return httpx.MockTransport(self)

    # -- seeding and reading --------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self._tenants.clear()
            self._records.clear()

    def seed_tenant(self, tenant: str, *, users: list[dict[str, Any]] = (), groups: dict[str, list[str]] | None = None) -> dict[str, str]:
        """Create a tenant (or add to it) with users (UEM fields; ``guid`` optional) and
        groups (name → member usernames). Returns the guids given, by username and by group name."""
        guids: dict[str, str] = {}
        with self._lock:
            state = self._tenants.setdefault(tenant, _Tenant())
            for user in users:
                record = dict(user)
                record.setdefault("guid", str(uuid.uuid4()))
                state.users[record["guid"]] = record
                guids[record["username"]] = record["guid"]
            if groups:
                by_name = {u["username"].casefold(): g for g, u in state.users.items()}
                for name, members in groups.items():
                    guid = str(uuid.uuid4())
                    state.groups[guid] = {"guid": guid, "name": name, "description": "", "members": {by_name[m.casefold()] for m in members}}
                    guids[name] = guid
        return guids

    def seed_record(self, upn: str, /, **fields: Any) -> None:
        """A user record of the generic API."""
        with self._lock:
            self._records[upn.casefold()] = {"upn": upn, **fields}

    def snapshot(self) -> dict[str, Any]:
        """The whole state, GUIDs replaced by usernames/names (UEM gives a re-created user a new GUID)."""
        with self._lock:
            tenants = {}
            for name, state in self._tenants.items():
                users = {u["username"]: {k: v for k, v in u.items() if k != "guid"} for u in state.users.values()}
                groups = {
                    g["name"]: sorted(state.users[m]["username"] for m in g["members"] if m in state.users) for g in state.groups.values()
                }
                tenants[name] = {"users": users, "groups": groups}
            return {"tenants": tenants, "records": {k: dict(v) for k, v in self._records.items()}}

    def tenants(self) -> list[str]:
        with self._lock:
            return sorted(self._tenants)

    def users(self, tenant: str) -> dict[str, dict[str, Any]]:
        """The users of a tenant by username (with their guid)."""
        with self._lock:
            return {u["username"]: dict(u) for u in self._tenants[tenant].users.values()}

    def members(self, tenant: str, group: str) -> list[str]:
        """The usernames in a tenant's group (by name)."""
        with self._lock:
            state = self._tenants[tenant]
            found = next(g for g in state.groups.values() if g["name"] == group)
            return sorted(state.users[m]["username"] for m in found["members"] if m in state.users)

    def group_guid(self, tenant: str, name: str) -> str:
        """The guid of a tenant's group (by name)."""
        with self._lock:
            return next(g["guid"] for g in self._tenants[tenant].groups.values() if g["name"] == name)

    def record(self, upn: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._records.get(upn.casefold())
            return dict(found) if found is not None else None

    # -- routes (called with the lock held) -------------------------------------------------

    def _route(self, request: Request, base_url: str) -> Reply:
        # Split the raw path first, then decode each segment.
        raw_segments = request.raw_path.split("/")[1:]
        segments = [unquote(s) for s in raw_segments]
        prefix = GENERIC_PREFIX.strip("/")
        if segments[:2] == [prefix, "users"] and len(segments) == 3 and segments[2]:
            return self._generic(request.method, segments[2], request.body)
        if segments[:2] == [prefix, "users"] and len(segments) in (2, 3):
            return self._generic_create(request.method, request.body)
        if len(segments) < 4 or segments[1:3] != ["api", "v1"]:
            raise _Answer(404, {"message": "No such resource."})
        tenant = self._tenants.get(segments[0])
        if tenant is None:
            raise _Answer(404, {"message": "Tenant not found."})
        parts = [s for s in segments[3:] if s] or [""]
        base = f"{base_url}/{raw_segments[0]}/api/v1"
        if parts[0] == "users":
            return self._users(tenant, request.method, parts[1:], request.query, request.body, base)
        if parts[0] == "groups":
            return self._groups(tenant, request.method, parts[1:], request.query, request.body)
        raise _Answer(404, {"message": "No such resource."})

    def _users(self, tenant: _Tenant, method: str, parts: list[str], query: dict[str, str], body: Any, base: str) -> Reply:
        if not parts:
            if method == "GET":
                users = sorted(tenant.users.values(), key=lambda u: u.get("displayName", ""))
                found = _filter(users, query.get("query"), USER_QUERY_FIELDS)
                return Reply(200, {"users": [dict(u) for u in found]})
            if method == "POST":
                if not isinstance(body, dict) or not body.get("username"):
                    raise _Answer(400, {"message": "A username is required."})
                for user in tenant.users.values():
                    if user["username"].casefold() == str(body["username"]).casefold():
                        raise _Answer(409, {"message": "A user with this username already exists."})
                    if body.get("emailAddress") and str(user.get("emailAddress", "")).casefold() == str(body["emailAddress"]).casefold():
                        raise _Answer(409, {"message": "A user with this email address already exists."})
                guid = str(uuid.uuid4())
                tenant.users[guid] = {**{k: v for k, v in body.items() if k != "password"}, "guid": guid}
                return Reply(201, None, {"Location": f"{base}/users/{guid}"})
            raise _Answer(405, {"message": "Method not allowed."})
        user = tenant.users.get(parts[0])
        if user is None:
            raise _Answer(404, {"message": "User not found."})
        if len(parts) == 1:
            if method == "GET":
                return Reply(200, dict(user))
            if method == "DELETE":
                del tenant.users[parts[0]]
                for group in tenant.groups.values():
                    group["members"].discard(parts[0])
                return Reply(204)
            raise _Answer(405, {"message": "Method not allowed."})
        if parts[1:] == ["groups"] and method == "GET":
            groups = [g for g in tenant.groups.values() if parts[0] in g["members"]]
            return Reply(200, {"groups": [_group_view(g) for g in groups]})
        raise _Answer(404, {"message": "No such resource."})

    def _groups(self, tenant: _Tenant, method: str, parts: list[str], query: dict[str, str], body: Any) -> Reply:
        if not parts:
            if method == "GET":
                found = _filter(list(tenant.groups.values()), query.get("query"), GROUP_QUERY_FIELDS)
                return Reply(200, {"groups": [_group_view(g) for g in found]})
            raise _Answer(405, {"message": "Method not allowed."})
        group = tenant.groups.get(parts[0])
        if group is None:
            raise _Answer(404, {"message": "Group not found."})
        if parts[1:] == ["users"]:
            if method == "GET":
                return Reply(200, {"users": [dict(tenant.users[m]) for m in group["members"] if m in tenant.users]})
            if method in ("POST", "DELETE"):
                guids = [u.get("guid") for u in (body or {}).get("users", [])] if isinstance(body, dict) else []
                if not guids or any(g not in tenant.users for g in guids):
                    raise _Answer(404 if guids else 400, {"message": "User not found." if guids else "No users given."})
                for guid in guids:
                    (group["members"].add if method == "POST" else group["members"].discard)(guid)
                return Reply(204)
        raise _Answer(404, {"message": "No such resource."})

    def _generic(self, method: str, upn: str, body: Any) -> Reply:
        key = upn.casefold()
        record = self._records.get(key)
        if record is None:
            raise _Answer(404, {"message": f"No user {upn}."})
        if method == "GET":
            return Reply(200, dict(record))
        if method == "PUT":
            if not isinstance(body, dict):
                raise _Answer(400, {"message": "A JSON object is required."})
            new_upn = body.get("upn") or record["upn"]
            if new_upn.casefold() != key and new_upn.casefold() in self._records:
                raise _Answer(409, {"message": f"A user {new_upn} already exists."})
            updated = {**record, **body, "upn": new_upn}
            del self._records[key]
            self._records[new_upn.casefold()] = updated
            return Reply(200, dict(updated))
        if method == "DELETE":
            del self._records[key]
            return Reply(204)
        raise _Answer(405, {"message": "Method not allowed."})

    def _generic_create(self, method: str, body: Any) -> Reply:
        """``POST /provisioning/users`` with a record holding its ``upn``: 201, or 409 if taken."""
        if method != "POST":
            raise _Answer(405, {"message": "Method not allowed."})
        if not isinstance(body, dict) or not isinstance(body.get("upn"), str) or not body["upn"]:
            raise _Answer(400, {"message": "A JSON object with a upn is required."})
        key = body["upn"].casefold()
        if key in self._records:
            raise _Answer(409, {"message": f"A user {body['upn']} already exists."})
        self._records[key] = dict(body)
        return Reply(201, dict(body))
