"""One BlackBerry UEM installation (one tenant, one SRP ID), in memory, as its REST API answers.

Built from the BlackBerry UEM 12.x REST API reference (and UEM Cloud's client-credentials
login), not from Tenantry's client. :class:`UemInstallation` answers a parsed
:class:`UemRequest` with a :class:`UemReply` and opens no socket; the demo calls it in
process (:mod:`core.demo.services`) and the tests run it behind a real HTTP server, one
process per tenant (``tests/uem_server.py``).

What it holds and refuses, as UEM does:

- **Tenancy.** Every route is under ``/{tenantGuid}/api/v1``; the tenant GUID of an
  on-premises UEM is its SRP ID, one per installation. Any other tenant GUID is 404.
- **Login** (reference: *Utilities — generateAuthorizationHeader*):
  ``POST /{tenantGuid}/api/v1/util/authorization`` with media type
  ``application/vnd.blackberry.authorizationrequest-v1+json`` and
  ``{"provider": "LOCAL"|"AD", "username", "password": <base64>, "domain"}`` (``domain``
  only, and then required, for AD). It answers 200 with the authorization value as
  text; the caller sends it bare in ``Authorization``. UEM Cloud: ``POST /oauth2/token``
  with ``grant_type=client_credentials`` and the client's id and secret in HTTP basic
  authentication (RFC 6749 §4.4, §2.3.1), answering ``{"access_token", "token_type":
  "Bearer", "expires_in"}``; the token then goes as ``Bearer <token>`` (RFC 6750).
  A missing, unknown or expired authorization is 401.
- **Media types.** A body must come with its resource's ``Content-Type`` (else 415); an
  ``Accept`` that names neither the resource's media type nor a wildcard is 406.
- **Users** (*Users*): ``GET …/users`` (``users-v1``) searches with ``query=field=value``
  (``\\`` escapes; a trailing ``*`` is a prefix match) and pages with ``max`` (1–100,
  default 100) and ``offset``; ``POST …/users`` (``user-v1``) creates a local user
  (``username`` required) or a directory-linked one (``directoryId`` of a user in the
  installation's company directory), 201 with ``Location``; 409 for a username or
  directory user already there. ``GET``/``DELETE …/users/{guid}`` (``user-v1``); deleting a
  user that still has devices is 409. ``GET …/users/{guid}/userDevices``
  (``userdevices-v1``) lists its devices, ``POST …/users/{guid}/userDevices/{guid}/commands``
  (``command-v1``, ``{"type": "REMOVE_DEVICE"}``) removes one (202); ``GET
  …/users/{guid}/groups`` (``groups-v1``) its user groups.
- **Groups** (*User groups*): ``GET …/groups`` (``groups-v1``, ``query=name=…``, paged like
  users); ``POST …/groups/{guid}/users`` (``users-v1``, ``{"users": [{"guid"}]}``), 204.
- **Errors** are ``{"id", "subStatusCode", "message"}``.

Thread-safe: one lock around every request and every seeding or reading method.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["MEDIA", "UemInstallation", "UemReply", "UemRequest"]

MEDIA = {
    "authorization": "application/vnd.blackberry.authorizationrequest-v1+json",
    "users": "application/vnd.blackberry.users-v1+json",
    "user": "application/vnd.blackberry.user-v1+json",
    "userdevices": "application/vnd.blackberry.userdevices-v1+json",
    "command": "application/vnd.blackberry.command-v1+json",
    "groups": "application/vnd.blackberry.groups-v1+json",
    "error": "application/vnd.blackberry.error-v1+json",
}
PAGE_DEFAULT = 100
PAGE_MAX = 100
USER_QUERY_FIELDS = frozenset({"username", "emailAddress", "displayName", "firstName", "lastName"})
GROUP_QUERY_FIELDS = frozenset({"name"})
# What a created user may carry (anything else is refused: UEM validates its representations).
USER_FIELDS = frozenset(
    {
        "username", "emailAddress", "displayName", "firstName", "lastName", "password", "directoryId",
        "company", "title", "department", "officePhoneNumber", "homePhoneNumber", "mobilePhoneNumber",
        "streetAddress", "poBox", "city", "state", "postalCode", "country",
    }
)
DEVICE_COMMANDS = frozenset({"REMOVE_DEVICE", "DELETE_WORK_SPACE_DATA", "DELETE_ALL_DATA"})


@dataclass(frozen=True)
class UemRequest:
    """One HTTP request: method, target (path and query, still encoded), headers, raw body."""

    method: str
    target: str
    headers: Mapping[str, str] = field(default_factory=dict)  # names lower-cased
    content: bytes = b""

    @property
    def raw_path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(urlsplit(self.target).query, keep_blank_values=True).items()}

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class UemReply:
    status: int
    content: bytes = b""
    content_type: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, body: Any, media: str, headers: Mapping[str, str] | None = None) -> UemReply:
        return cls(status, json.dumps(body).encode(), media, dict(headers or {}))


class _Refused(Exception):
    def __init__(self, status: int, message: str, sub_status: int | None = None, headers: Mapping[str, str] | None = None):
        body = {"id": str(uuid.uuid4()), "subStatusCode": sub_status, "message": message}
        self.reply = UemReply.json(status, body, MEDIA["error"], headers)


def _media(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def _unescape(value: str) -> tuple[str, bool]:
    """A query value → (literal text, prefix match?): ``\\`` escapes; a trailing bare ``*`` is a prefix."""
    out, i, prefix = [], 0, False
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            out.append(value[i + 1])
            i += 2
            continue
        if value[i] == "*" and i == len(value) - 1:
            prefix = True
        else:
            out.append(value[i])
        i += 1
    return "".join(out), prefix


def _search(items: list[dict[str, Any]], query: str | None, fields: frozenset[str]) -> list[dict[str, Any]]:
    if not query:
        return items
    for term in re.split(r"(?<!\\),", query):
        name, equals, value = term.partition("=")
        if not equals or name not in fields:
            raise _Refused(400, f"Invalid search query: {name}.", 1)
        text, prefix = _unescape(value)
        folded = text.casefold()
        items = [i for i in items if (str(i.get(name, "")).casefold().startswith(folded) if prefix else str(i.get(name, "")).casefold() == folded)]
    return items


def _page(items: list[dict[str, Any]], query: dict[str, str]) -> list[dict[str, Any]]:
    try:
        size = int(query.get("max", PAGE_DEFAULT))
        offset = int(query.get("offset", 0))
    except ValueError:
        raise _Refused(400, "max and offset must be integers.", 2) from None
    if not 1 <= size <= PAGE_MAX or offset < 0:
        raise _Refused(400, f"max must be between 1 and {PAGE_MAX}, and offset at least 0.", 2)
    return items[offset : offset + size]


class UemInstallation:
    """One UEM installation: its SRP ID, administrators, company directory, users, devices
    and groups (see the module docstring)."""

    def __init__(self, srp_id: str, *, directory: dict[str, dict[str, Any]] | None = None) -> None:
        self.srp_id = srp_id
        self._lock = threading.RLock()
        self._admins: dict[tuple[str, str, str], str] = {}  # (provider, domain, username folded) → password
        self._clients: dict[str, str] = {}  # OAuth client id → secret
        self._tokens: dict[str, str] = {}  # authorization value → who logged in
        # directoryId → directory user: the company directory (UEMs linked to one AD may share it)
        self._directory: dict[str, dict[str, Any]] = {} if directory is None else directory
        self._users: dict[str, dict[str, Any]] = {}  # guid → user
        self._devices: dict[str, dict[str, dict[str, Any]]] = {}  # user guid → device guid → userDevice
        self._groups: dict[str, dict[str, Any]] = {}  # guid → {"guid","name","description","members": set}

    # -- administration (seeding, reading) -------------------------------------------

    def add_admin(self, username: str, password: str, *, provider: str = "LOCAL", domain: str = "") -> None:
        with self._lock:
            self._admins[(provider, domain.casefold(), username.casefold())] = password

    def add_client(self, client_id: str, secret: str) -> None:
        with self._lock:
            self._clients[client_id] = secret

    def expire_tokens(self) -> None:
        """Every authorization handed out so far stops working (a UEM session timeout)."""
        with self._lock:
            self._tokens.clear()

    def add_directory_user(self, directory_id: str, **fields: Any) -> None:
        with self._lock:
            self._directory[directory_id] = {"directoryId": directory_id, **fields}

    def add_user(self, user: Mapping[str, Any], *, groups: tuple[str, ...] = (), devices: tuple[Mapping[str, Any], ...] = ()) -> str:
        """A user (UEM fields; ``guid`` optional) in the named groups (created if missing), with devices."""
        with self._lock:
            record = dict(user)
            guid = record.setdefault("guid", str(uuid.uuid4()))
            record.setdefault("directoryLinked", bool(record.get("directoryId")))
            self._users[guid] = record
            for name in groups:
                self._group_named(name)["members"].add(guid)
            for device in devices:
                self.add_device(guid, device)
            return guid

    def add_device(self, user_guid: str, device: Mapping[str, Any]) -> str:
        with self._lock:
            guid = str(device.get("guid") or uuid.uuid4())
            self._devices.setdefault(user_guid, {})[guid] = {"guid": guid, "device": {k: v for k, v in device.items() if k != "guid"}}
            return guid

    def add_group(self, name: str) -> str:
        with self._lock:
            return self._group_named(name)["guid"]

    def _group_named(self, name: str) -> dict[str, Any]:
        found = next((g for g in self._groups.values() if g["name"] == name), None)
        if found is None:
            guid = str(uuid.uuid4())
            found = self._groups[guid] = {"guid": guid, "name": name, "description": "", "members": set()}
        return found

    def users(self) -> dict[str, dict[str, Any]]:
        """The users by username (with their guid)."""
        with self._lock:
            return {u["username"]: dict(u) for u in self._users.values()}

    def snapshot(self) -> dict[str, Any]:
        """Users (without guids: a re-created user has a new one), their groups and device counts."""
        with self._lock:
            users = {}
            for guid, user in self._users.items():
                users[user["username"]] = {
                    **{k: v for k, v in user.items() if k != "guid"},
                    "groups": sorted(g["name"] for g in self._groups.values() if guid in g["members"]),
                    "devices": len(self._devices.get(guid, {})),
                }
            return {"srp_id": self.srp_id, "users": users, "groups": sorted(g["name"] for g in self._groups.values())}

    # -- the API -------------------------------------------------------------------------

    def handle(self, request: UemRequest, *, base_url: str) -> UemReply:
        try:
            with self._lock:
                return self._route(request, base_url.rstrip("/"))
        except _Refused as refused:
            return refused.reply

    def _route(self, request: UemRequest, base_url: str) -> UemReply:
        raw = request.raw_path.split("/")[1:]
        segments = [unquote(s) for s in raw]
        if segments == ["oauth2", "token"] and request.method == "POST":
            return self._oauth(request)
        if len(segments) < 4 or segments[1:3] != ["api", "v1"] or segments[0] != self.srp_id:
            raise _Refused(404, "The requested resource was not found.")
        parts = segments[3:]
        if parts == ["util", "authorization"]:
            if request.method != "POST":
                raise _Refused(405, "Method not allowed.")
            return self._login(request)
        self._authorised(request)
        base = f"{base_url}/{raw[0]}/api/v1"
        if parts and parts[0] == "users":
            return self._users_route(request, parts[1:], base)
        if parts and parts[0] == "groups":
            return self._groups_route(request, parts[1:])
        raise _Refused(404, "The requested resource was not found.")

    # -- authentication ---------------------------------------------------------------------

    def _login(self, request: UemRequest) -> UemReply:
        body = self._body(request, "authorization")
        provider, username, password = body.get("provider"), body.get("username"), body.get("password")
        domain = body.get("domain") or ""
        if provider not in ("LOCAL", "AD") or not isinstance(username, str) or not isinstance(password, str):
            raise _Refused(400, "provider (LOCAL or AD), username and password are required.", 3)
        if provider == "AD" and not (isinstance(domain, str) and domain):
            raise _Refused(400, "domain is required for the AD provider.", 3)
        if provider == "LOCAL" and domain:
            raise _Refused(400, "domain is only allowed for the AD provider.", 3)
        try:
            clear = base64.b64decode(password.encode("ascii"), validate=True).decode("utf-8")
        except (ValueError, binascii.Error, UnicodeError):
            raise _Refused(400, "The password must be base64-encoded.", 4) from None
        expected = self._admins.get((provider, str(domain).casefold(), username.casefold()))
        if expected is None or not secrets.compare_digest(expected.encode(), clear.encode()):
            raise _Refused(401, "Invalid credentials.", 5)
        token = base64.b64encode(secrets.token_bytes(24)).decode("ascii")
        self._tokens[token] = f"{provider}:{username}"
        return UemReply(200, token.encode(), "text/plain;charset=UTF-8")

    def _oauth(self, request: UemRequest) -> UemReply:
        if _media(request.header("content-type")) != "application/x-www-form-urlencoded":
            raise _Refused(415, "The token request must be form-encoded.")
        form = {k: v[0] for k, v in parse_qs(request.content.decode("utf-8", "replace")).items()}
        auth = request.header("authorization") or ""
        client_id = secret = None
        if auth.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:]).decode("utf-8").partition(":")
            except (ValueError, binascii.Error, UnicodeError):
                client_id = None
        if form.get("grant_type") != "client_credentials":
            return UemReply.json(400, {"error": "unsupported_grant_type"}, "application/json")
        expected = self._clients.get(client_id or "")
        if expected is None or not secrets.compare_digest(expected.encode(), (secret or "").encode()):
            return UemReply.json(401, {"error": "invalid_client"}, "application/json", {"WWW-Authenticate": "Basic"})
        token = secrets.token_urlsafe(24)
        self._tokens[f"Bearer {token}"] = f"client:{client_id}"
        return UemReply.json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600}, "application/json")

    def _authorised(self, request: UemRequest) -> None:
        value = request.header("authorization")
        if not value or value not in self._tokens:
            raise _Refused(401, "The request is not authorized: log in again." if value else "Authorization is required.", 6)

    # -- media types ----------------------------------------------------------------------------

    def _accepts(self, request: UemRequest, kind: str) -> None:
        accept = request.header("accept")
        if accept is None:
            return
        wanted = {_media(part) for part in accept.split(",")}
        if not wanted & {MEDIA[kind], "*/*", "application/*"}:
            raise _Refused(406, f"This resource is only available as {MEDIA[kind]}.")

    def _body(self, request: UemRequest, kind: str) -> dict[str, Any]:
        if _media(request.header("content-type")) != MEDIA[kind]:
            raise _Refused(415, f"The request body must be {MEDIA[kind]}.")
        try:
            body = json.loads(request.content)
        except ValueError:
            raise _Refused(400, "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise _Refused(400, "The request body must be a JSON object.")
        return body

    # -- users -------------------------------------------------------------------------------------

    def _users_route(self, request: UemRequest, parts: list[str], base: str) -> UemReply:
        method = request.method
        if not parts:
            if method == "GET":
                self._accepts(request, "users")
                users = sorted(self._users.values(), key=lambda u: str(u.get("username", "")).casefold())
                found = _page(_search(users, request.query.get("query"), USER_QUERY_FIELDS), request.query)
                return UemReply.json(200, {"users": [self._user_view(u, base) for u in found]}, MEDIA["users"])
            if method == "POST":
                return self._create_user(self._body(request, "user"), base)
            raise _Refused(405, "Method not allowed.")
        user = self._users.get(parts[0])
        if user is None:
            raise _Refused(404, "User not found.")
        guid = parts[0]
        if len(parts) == 1:
            if method == "GET":
                self._accepts(request, "user")
                return UemReply.json(200, self._user_view(user, base), MEDIA["user"])
            if method == "DELETE":
                self._accepts(request, "user")
                if self._devices.get(guid):
                    raise _Refused(409, "User has associated services or enrolled devices and cannot be removed.", 7)
                del self._users[guid]
                self._devices.pop(guid, None)
                for group in self._groups.values():
                    group["members"].discard(guid)
                return UemReply(204)
            raise _Refused(405, "Method not allowed.")
        if parts[1:] == ["groups"] and method == "GET":
            self._accepts(request, "groups")
            groups = [g for g in self._groups.values() if guid in g["members"]]
            return UemReply.json(200, {"groups": [self._group_view(g) for g in groups]}, MEDIA["groups"])
        if parts[1:] == ["userDevices"] and method == "GET":
            self._accepts(request, "userdevices")
            devices = list(self._devices.get(guid, {}).values())
            return UemReply.json(200, {"userDevices": [json.loads(json.dumps(d)) for d in devices]}, MEDIA["userdevices"])
        if len(parts) == 4 and parts[1] == "userDevices" and parts[3] == "commands" and method == "POST":
            body = self._body(request, "command")
            device = self._devices.get(guid, {}).get(parts[2])
            if device is None:
                raise _Refused(404, "User or Device not found.")
            if body.get("type") not in DEVICE_COMMANDS:
                raise _Refused(400, "Invalid request: command not supported.", 8)
            if body["type"] == "REMOVE_DEVICE":
                del self._devices[guid][parts[2]]
            return UemReply(202)
        raise _Refused(404, "The requested resource was not found.")

    def _create_user(self, body: dict[str, Any], base: str) -> UemReply:
        unknown = sorted(set(body) - USER_FIELDS)
        if unknown:
            raise _Refused(400, f"Unknown field {unknown[0]}.", 9)
        record = {k: v for k, v in body.items() if k != "password"}
        directory_id = body.get("directoryId")
        if directory_id is not None:
            entry = self._directory.get(str(directory_id))
            if entry is None:
                raise _Refused(400, "Directory user not found in the company directory.", 10)
            if any(u.get("directoryId") == directory_id for u in self._users.values()):
                raise _Refused(409, "A user for this directory user already exists.", 11)
            record = {**{k: v for k, v in entry.items() if k in USER_FIELDS}, **record}
        if not isinstance(record.get("username"), str) or not record["username"]:
            raise _Refused(400, "username is required.", 9)
        for user in self._users.values():
            if str(user["username"]).casefold() == record["username"].casefold():
                raise _Refused(409, "A user with this username already exists.", 11)
        guid = str(uuid.uuid4())
        self._users[guid] = {**record, "guid": guid, "directoryLinked": directory_id is not None}
        return UemReply(201, headers={"Location": f"{base}/users/{guid}"})

    @staticmethod
    def _user_view(user: dict[str, Any], base: str) -> dict[str, Any]:
        return {**user, "links": [{"rel": "self", "href": f"{base}/users/{user['guid']}"}]}

    # -- groups ---------------------------------------------------------------------------------------

    def _groups_route(self, request: UemRequest, parts: list[str]) -> UemReply:
        if not parts:
            if request.method != "GET":
                raise _Refused(405, "Method not allowed.")
            self._accepts(request, "groups")
            groups = sorted(self._groups.values(), key=lambda g: g["name"].casefold())
            found = _page(_search(groups, request.query.get("query"), GROUP_QUERY_FIELDS), request.query)
            return UemReply.json(200, {"groups": [self._group_view(g) for g in found]}, MEDIA["groups"])
        group = self._groups.get(parts[0])
        if group is None:
            raise _Refused(404, "User group not found.")
        if parts[1:] == ["users"] and request.method == "POST":
            body = self._body(request, "users")
            entries = body.get("users")
            if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
                raise _Refused(400, "users must be a non-empty list.", 9)
            guids = [e.get("guid") for e in entries]
            if any(g not in self._users for g in guids):
                raise _Refused(404, "User not found.")
            group["members"].update(guids)
            return UemReply(204)
        raise _Refused(404, "The requested resource was not found.")

    @staticmethod
    def _group_view(group: dict[str, Any]) -> dict[str, Any]:
        return {"guid": group["guid"], "name": group["name"], "description": group["description"]}
