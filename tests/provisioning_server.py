"""A real HTTP server on 127.0.0.1 for the HTTP adapters' tests.

The resources, routes and JSON answers are those of
:class:`core.demo.provisioning.ProvisioningBackend` (BlackBerry UEM-shaped tenants,
users and groups under ``/{tenant}/api/v1``; the generic records API under
``/provisioning/users/{upn}``): the demo answers from the same backend in process.
This module adds what only the tests need: the socket (HTTP, or HTTPS with
``certfile``), a bearer token it generates (or basic credentials), fault injection
(:meth:`ProvisioningServer.fail_next`) and a log of every call
(:attr:`ProvisioningServer.calls`). Seeding and reading (:meth:`seed_tenant`,
:meth:`seed_record`, :meth:`snapshot`, :meth:`users`, :meth:`members`) go to the
backend; :meth:`reset` forgets it all.

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

import base64
import fnmatch
import re
import secrets
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from core.demo.provisioning import ProvisioningBackend, Reply, Request


@dataclass(frozen=True)
class Call:
    method: str
    path: str  # decoded path, without the query string
    query: dict[str, str]
    body: Any  # decoded JSON body, or None


_STREAMS = ("drip", "huge", "huge-declared")


@dataclass
class Streamed:
    """What a streamed answer wrote: body bytes, whether all of it, whether the client hung up."""

    written: int = 0
    finished: bool = False
    hung_up: bool = False
    total: int = 0
    over: threading.Event = field(default_factory=threading.Event)  # set when the server stopped writing


@dataclass
class _Failure:
    method: str
    pattern: str
    kind: str
    message: str | None
    times: int


class ProvisioningServer:
    """The server around a :class:`ProvisioningBackend`; thread-safe."""

    def __init__(self, *, certfile: str | None = None, keyfile: str | None = None) -> None:
        self.token = secrets.token_urlsafe(24)
        self.basic: tuple[str, str] | None = None  # accepted basic credentials, if set
        self.stall = 2.0  # seconds a "timeout" failure sleeps (longer than the tests' client timeout)
        self.drip_pause = 0.1  # seconds between the bytes of a "drip" answer
        self.huge_bytes = 64 * 1024 * 1024  # the body of a "huge" answer
        self.streamed = Streamed()  # what the last "drip"/"huge" answer wrote
        self.backend = ProvisioningBackend()
        self._lock = threading.Lock()  # guards the planned failures
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
        self.backend.reset()
        with self._lock:
            self._failures.clear()
            self.calls.clear()
            self.basic = None
            self.streamed = Streamed()

    # -- test controls ------------------------------------------------------------------

    def fail_next(self, method: str, path_pattern: str, kind: str, *, message: str | None = None, times: int = 1) -> None:
        """Make the next ``times`` calls of ``method`` to a path matching ``path_pattern`` fail.

        ``path_pattern`` is a shell-style pattern (``fnmatch``, case-sensitive) over the
        decoded path without its query string. ``kind``: ``"status:NNN"`` (answers NNN,
        with ``{"message": message}`` when given), ``"timeout"`` (sleeps ``stall``
        seconds, then closes without answering), ``"malformed"`` (200 with a body that
        is not JSON), ``"disconnect"`` (closes the connection at once), ``"drip"`` (a
        200 whose valid JSON body comes one byte every ``drip_pause`` seconds, each
        well inside any read timeout), ``"huge"`` (a 200 streaming ``huge_bytes`` of
        JSON without a Content-Length) or ``"huge-declared"`` (a 200 that declares
        ``huge_bytes`` in its Content-Length). :attr:`streamed` then holds the bytes of
        the body written and whether the client hung up before the end.
        """
        if not (kind in ("timeout", "malformed", "disconnect", *_STREAMS) or re.fullmatch(r"status:\d{3}", kind)):
            raise ValueError(f"unknown failure kind {kind!r}")
        with self._lock:
            self._failures.append(_Failure(method.upper(), path_pattern, kind, message, times))

    # -- the backend's state ---------------------------------------------------------------

    def seed_tenant(self, tenant: str, *, users: list[dict[str, Any]] = (), groups: dict[str, list[str]] | None = None) -> dict[str, str]:
        """Create a tenant with users (UEM fields; ``guid`` optional) and groups (name → member usernames).

        Returns the guids given, by username and by group name.
        """
        return self.backend.seed_tenant(tenant, users=users, groups=groups)

    def seed_record(self, upn: str, /, **fields: Any) -> None:
        """A user record of the generic API."""
        self.backend.seed_record(upn, **fields)

    def snapshot(self) -> dict[str, Any]:
        """The whole state, GUIDs replaced by usernames/names (UEM gives a re-created user a new GUID)."""
        return self.backend.snapshot()

    def users(self, tenant: str) -> dict[str, dict[str, Any]]:
        """The users of a tenant by username (with their guid)."""
        return self.backend.users(tenant)

    def members(self, tenant: str, group: str) -> list[str]:
        return self.backend.members(tenant, group)

    def group_guid(self, tenant: str, name: str) -> str:
        return self.backend.group_guid(tenant, name)

    @property
    def _tenants(self) -> dict[str, Any]:
        """The backend's tenants, read-only use: test_http_adapters' ``_group_guid`` reads
        them (``server.group_guid(tenant, name)`` is the public way)."""
        return self.backend._tenants

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
                length = int(self.headers.get("Content-Length") or 0)
                request = Request.parse(self.command, self.path, self.rfile.read(length) if length else b"")
                server.calls.append(Call(request.method, request.path, request.query, request.body))
                failure = server._take_failure(request.method, request.path)
                if failure is not None:
                    if failure.kind in ("timeout", "disconnect"):
                        if failure.kind == "timeout":
                            time.sleep(server.stall)
                        self.close_connection = True
                        return
                    if failure.kind in _STREAMS:
                        return self._stream(failure.kind)
                    if failure.kind == "malformed":
                        return self._send(200, b'{"users": [ {"guid": ', {"Content-Type": "application/json"})
                    status = int(failure.kind.split(":")[1])
                    message = failure.message if failure.message is not None else f"Injected {status}."
                    return self._reply(Reply(status, {"message": message}))
                if not server._authorised(self.headers.get("Authorization")):
                    return self._reply(Reply(401, {"message": "Not authenticated."}))
                self._reply(server.backend.handle(request, base_url=server.url))

            def _stream(self, kind: str) -> None:
                """A valid JSON body (``{"users": [], "pad": "xxx…"}``), written slowly or hugely."""
                head, tail = b'{"users": [], "pad": "', b'"}'
                size = 64 if kind == "drip" else server.huge_bytes
                record = server.streamed = Streamed(total=size)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if kind == "huge-declared":
                    self.send_header("Content-Length", str(size))
                else:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.close_connection = True
                chunk = 1 if kind == "drip" else 64 * 1024
                body_left = size - len(head) - len(tail)
                pieces = [head] + [b"x" * min(chunk, body_left - i) for i in range(0, body_left, chunk)] + [tail]
                try:
                    for piece in pieces:
                        if kind == "drip":
                            time.sleep(server.drip_pause)
                        data = piece if kind == "huge-declared" else b"%x\r\n%s\r\n" % (len(piece), piece)
                        self.wfile.write(data)
                        self.wfile.flush()
                        record.written += len(piece)
                    if kind != "huge-declared":
                        self.wfile.write(b"0\r\n\r\n")
                    record.finished = True
                except (BrokenPipeError, ConnectionResetError):
                    record.hung_up = True
                finally:
                    record.over.set()

            def _reply(self, reply: Reply) -> None:
                self._send(reply.status, reply.content(), {"Content-Type": "application/json", **reply.headers})

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


@pytest.fixture(scope="session")
def provisioning_server() -> Iterator[ProvisioningServer]:
    """The provisioning server, started once on a free port of 127.0.0.1; ``reset()`` it per test."""
    server = ProvisioningServer().start()
    try:
        yield server
    finally:
        server.stop()
