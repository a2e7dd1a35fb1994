"""A real HTTP server on 127.0.0.1 for the HTTP adapters' tests.

It keeps in memory, behind a bearer token it generates:

- BlackBerry UEM-shaped resources: tenants, each with users and groups
  (``/{tenant}/api/v1/users[?query=field=value]``, ``…/users/{guid}``,
  ``…/users/{guid}/groups``, ``/{tenant}/api/v1/groups[?query=name=…]``,
  ``…/groups/{guid}/users``), with UEM's answers: ``{"users": […]}``,
  ``{"groups": […]}``, ``201`` + ``Location`` on create, ``409`` on a duplicate
  username or address, ``404`` with ``{"message": …}`` for an unknown tenant, user
  or group;
- a generic provisioning API under ``/provisioning``: ``GET``/``PUT
  /provisioning/users/{upn}`` (a PUT with another ``upn`` in its body renames the
  record).

Tests can make a chosen call fail (:meth:`ProvisioningServer.fail_next`), read every
call made (:attr:`ProvisioningServer.calls`), seed data (:meth:`seed_tenant`,
:meth:`seed_record`), compare states (:meth:`snapshot`) and :meth:`reset` it all.

Usage (the ``provisioning_server`` fixture is session-scoped; reset it per test)::

    @pytest.fixture
    def server(provisioning_server):
        provisioning_server.reset()
        return provisioning_server

    server.seed_tenant("contoso", users=[{"username": "anna@contoso.example", …}],
                       groups={"Standard": ["anna@contoso.example"]})
    options = {"url": server.url, "token_env": "X"}   # with X set to server.token
"""

from __future__ import annotations

import fnmatch
import json
import re
import secrets
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest



@dataclass(frozen=True)
class Call:
    method: str
    path: str  # decoded path, without the query string
    query: dict[str, str]
    body: Any  # decoded JSON body, or None


@dataclass
class _Failure:
    method: str
    pattern: str
    kind: str
    message: str | None
    times: int


@dataclass
class _Tenant:
    users: dict[str, dict[str, Any]] = field(default_factory=dict)  # guid → user
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)  # guid → {"guid","name","description","members": set}


class _Reply(Exception):
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None):
        self.status, self.body, self.headers = status, body, headers or {}


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


class ProvisioningServer:
    """The server and its in-memory state; thread-safe."""

    def __init__(self, *, certfile: str | None = None, keyfile: str | None = None) -> None:
        self.token = secrets.token_urlsafe(24)
        self.basic: tuple[str, str] | None = None  # accepted basic credentials, if set
        self.stall = 2.0  # seconds a "timeout" failure sleeps (longer than the tests' client timeout)
        self._lock = threading.Lock()
        self._tenants: dict[str, _Tenant] = {}
        self._records: dict[str, dict[str, Any]] = {}  # generic API: upn (casefolded) → record
        self._failures: list[_Failure] = []
        self.calls: list[Call] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False
        self.port = self._httpd.server_address[1]
        scheme = "http"
        if certfile:  # HTTPS, for the certificate-verification tests
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certfile, keyfile)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="provisioning-server", daemon=True)

    # -- life -------------------------------------------------------------------------

    def start(self) -> ProvisioningServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def reset(self) -> None:
        """Forget every tenant, record, planned failure and logged call."""
        with self._lock:
            self._tenants.clear()
            self._records.clear()
            self._failures.clear()
            self.calls.clear()
            self.basic = None

    # -- test controls ------------------------------------------------------------------

    def fail_next(self, method: str, path_pattern: str, kind: str, *, message: str | None = None, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` to a path matching ``path_pattern`` fail.

        ``path_pattern`` is a shell-style pattern (``fnmatch``, case-sensitive) over the
        decoded path without its query string. ``kind``: ``"status:NNN"`` (answers NNN,
        with ``{"message": message}`` when given), ``"timeout"`` (sleeps ``stall``
        seconds, then closes without answering), ``"malformed"`` (200 with a body that
        is not JSON) or ``"disconnect"`` (closes the connection at once).
        """
        if not (kind in ("timeout", "malformed", "disconnect") or re.fullmatch(r"status:\d{3}", kind)):
            raise ValueError(f"unknown failure kind {kind!r}")
        with self._lock:
            self._failures.append(_Failure(method.upper(), path_pattern, kind, message, times))

    def seed_tenant(self, tenant: str, *, users: list[dict[str, Any]] = (), groups: dict[str, list[str]] | None = None) -> dict[str, str]:
        """Create a tenant with users (UEM fields; ``guid`` optional) and groups (name → member usernames).

        Returns the guids given, by username and by group name.
        """
        guids: dict[str, str] = {}
        with self._lock:
            state = self._tenants.setdefault(tenant, _Tenant())
            for user in users:
                record = dict(user)
                record.setdefault("guid", str(uuid.uuid4()))
                state.users[record["guid"]] = record
                guids[record["username"]] = record["guid"]
            for name, members in (groups or {}).items():
                guid = str(uuid.uuid4())
                by_name = {u["username"].casefold(): g for g, u in state.users.items()}
                state.groups[guid] = {"guid": guid, "name": name, "description": "", "members": {by_name[m.casefold()] for m in members}}
                guids[name] = guid
        return guids

    def seed_record(self, upn: str, **fields: Any) -> None:
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

    def users(self, tenant: str) -> dict[str, dict[str, Any]]:
        """The users of a tenant by username (with their guid)."""
        with self._lock:
            return {u["username"]: dict(u) for u in self._tenants[tenant].users.values()}

    def members(self, tenant: str, group: str) -> list[str]:
        with self._lock:
            state = self._tenants[tenant]
            g = next(g for g in state.groups.values() if g["name"] == group)
            return sorted(state.users[m]["username"] for m in g["members"] if m in state.users)

    def calls_to(self, method: str | None = None, pattern: str = "*") -> list[Call]:
        return [c for c in list(self.calls) if (method is None or c.method == method) and fnmatch.fnmatchcase(c.path, pattern)]

    # -- request handling ---------------------------------------------------------------

    def _take_failure(self, method: str, path: str) -> _Failure | None:
        with self._lock:
            for failure in self._failures:
                if failure.method == method and fnmatch.fnmatchcase(path, failure.pattern):
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    return failure
        return None

    def _authorised(self, header: str | None) -> bool:
        if header is None:
            return False
        if secrets.compare_digest(header.encode(), f"Bearer {self.token}".encode()):
            return True
        if self.basic:
            import base64

            expected = "Basic " + base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            return secrets.compare_digest(header.encode(), expected.encode())
        return False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                path = unquote(parts.path)
                query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = ValueError
                server.calls.append(Call(self.command, path, query, None if body is ValueError else body))
                failure = server._take_failure(self.command, path)
                if failure is not None:
                    if failure.kind == "timeout":
                        time.sleep(server.stall)
                        self.close_connection = True
                        return
                    if failure.kind == "disconnect":
                        self.close_connection = True
                        return
                    if failure.kind == "malformed":
                        return self._send(200, b'{"users": [ {"guid": ', {"Content-Type": "application/json"})
                    status = int(failure.kind.split(":")[1])
                    payload = {"message": failure.message} if failure.message is not None else {"message": f"Injected {status}."}
                    return self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})
                if not server._authorised(self.headers.get("Authorization")):
                    return self._json(401, {"message": "Not authenticated."})
                if body is ValueError:
                    return self._json(400, {"message": "The request body is not JSON."})
                try:
                    with server._lock:
                        status, payload, headers = server._route(self.command, parts.path, query, body)
                except _Reply as reply:
                    status, payload, headers = reply.status, reply.body, reply.headers
                self._json(status, payload, headers)

            def _json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                data = b"" if payload is None else json.dumps(payload).encode()
                self._send(status, data, {"Content-Type": "application/json", **(headers or {})})

            def _send(self, status: int, data: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if data:
                    self.wfile.write(data)

            def _safe(self) -> None:
                try:
                    self._serve()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _safe

        return Handler

    # -- routes (called with the lock held) -------------------------------------------------

    def _route(self, method: str, raw_path: str, query: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        # Split the raw path first, then decode each segment: "%2F" stays inside its segment.
        segments = [unquote(s) for s in raw_path.split("/")[1:]]
        if segments[:2] == ["provisioning", "users"] and len(segments) == 3:
            return self._generic(method, segments[2], body)
        if len(segments) < 4 or segments[1:3] != ["api", "v1"]:
            raise _Reply(404, {"message": "No such resource."})
        tenant = self._tenants.get(segments[0])
        if tenant is None:
            raise _Reply(404, {"message": "Tenant not found."})
        parts = [s for s in segments[3:] if s] or [""]
        base = f"{self.url}/{raw_path.split('/')[1]}/api/v1"
        if parts[0] == "users":
            return self._users(tenant, method, parts[1:], query, body, base)
        if parts[0] == "groups":
            return self._groups(tenant, method, parts[1:], query, body)
        raise _Reply(404, {"message": "No such resource."})

    @staticmethod
    def _filter(items: list[dict[str, Any]], query: str | None, fields: set[str]) -> list[dict[str, Any]]:
        if not query:
            return items
        # "field=value[,field=value]" with "\" escaping; commas split only when unescaped.
        terms = re.split(r"(?<!\\),", query)
        out = items
        for term in terms:
            name, _, value = term.partition("=")
            if name not in fields:
                raise _Reply(400, {"message": f"Invalid search query field {name}."})
            text, prefix = _unescape_query(value)
            folded = text.casefold()
            out = [i for i in out if (str(i.get(name, "")).casefold().startswith(folded) if prefix else str(i.get(name, "")).casefold() == folded)]
        return out

    def _users(self, tenant: _Tenant, method: str, parts: list[str], query: dict[str, str], body: Any, base: str):
        if not parts:
            if method == "GET":
                users = sorted(tenant.users.values(), key=lambda u: u.get("displayName", ""))
                found = self._filter(users, query.get("query"), {"username", "emailAddress", "displayName", "firstName", "lastName"})
                return 200, {"users": [dict(u) for u in found]}, {}
            if method == "POST":
                if not isinstance(body, dict) or not body.get("username"):
                    raise _Reply(400, {"message": "A username is required."})
                for user in tenant.users.values():
                    if user["username"].casefold() == str(body["username"]).casefold():
                        raise _Reply(409, {"message": "A user with this username already exists."})
                    if body.get("emailAddress") and str(user.get("emailAddress", "")).casefold() == str(body["emailAddress"]).casefold():
                        raise _Reply(409, {"message": "A user with this email address already exists."})
                guid = str(uuid.uuid4())
                tenant.users[guid] = {**{k: v for k, v in body.items() if k != "password"}, "guid": guid}
                return 201, None, {"Location": f"{base}/users/{guid}"}
            raise _Reply(405, {"message": "Method not allowed."})
        user = tenant.users.get(parts[0])
        if user is None:
            raise _Reply(404, {"message": "User not found."})
        if len(parts) == 1:
            if method == "GET":
                return 200, dict(user), {}
            if method == "DELETE":
                del tenant.users[parts[0]]
                for group in tenant.groups.values():
                    group["members"].discard(parts[0])
                return 204, None, {}
            raise _Reply(405, {"message": "Method not allowed."})
        if parts[1:] == ["groups"] and method == "GET":
            groups = [g for g in tenant.groups.values() if parts[0] in g["members"]]
            return 200, {"groups": [self._group(g) for g in groups]}, {}
        raise _Reply(404, {"message": "No such resource."})

    @staticmethod
    def _group(group: dict[str, Any]) -> dict[str, Any]:
        return {"guid": group["guid"], "name": group["name"], "description": group["description"], "directoryLinked": False}

    def _groups(self, tenant: _Tenant, method: str, parts: list[str], query: dict[str, str], body: Any):
        if not parts:
            if method == "GET":
                found = self._filter(list(tenant.groups.values()), query.get("query"), {"name"})
                return 200, {"groups": [self._group(g) for g in found]}, {}
            raise _Reply(405, {"message": "Method not allowed."})
        group = tenant.groups.get(parts[0])
        if group is None:
            raise _Reply(404, {"message": "Group not found."})
        if parts[1:] == ["users"]:
            if method == "GET":
                return 200, {"users": [dict(tenant.users[m]) for m in group["members"] if m in tenant.users]}, {}
            if method in ("POST", "DELETE"):
                guids = [u.get("guid") for u in (body or {}).get("users", [])] if isinstance(body, dict) else []
                if not guids or any(g not in tenant.users for g in guids):
                    raise _Reply(404 if guids else 400, {"message": "User not found." if guids else "No users given."})
                for guid in guids:
                    (group["members"].add if method == "POST" else group["members"].discard)(guid)
                return 204, None, {}
        raise _Reply(404, {"message": "No such resource."})

    def _generic(self, method: str, upn: str, body: Any):
        key = upn.casefold()
        record = self._records.get(key)
        if record is None:
            raise _Reply(404, {"message": f"No user {upn}."})
        if method == "GET":
            return 200, dict(record), {}
        if method == "PUT":
            if not isinstance(body, dict):
                raise _Reply(400, {"message": "A JSON object is required."})
            new_upn = body.get("upn") or record["upn"]
            if new_upn.casefold() != key and new_upn.casefold() in self._records:
                raise _Reply(409, {"message": f"A user {new_upn} already exists."})
            updated = {**record, **body, "upn": new_upn}
            del self._records[key]
            self._records[new_upn.casefold()] = updated
            return 200, dict(updated), {}
        raise _Reply(405, {"message": "Method not allowed."})


@pytest.fixture(scope="session")
def provisioning_server() -> Iterator[ProvisioningServer]:
    """The provisioning server, started once on a free port of 127.0.0.1; ``reset()`` it per test."""
    server = ProvisioningServer().start()
    try:
        yield server
    finally:
        server.stop()
