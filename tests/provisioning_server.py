"""A real HTTP server on 127.0.0.1 for the HTTP adapters' tests.

The resources, routes and JSON answers are those of
:class:`core.demo.provisioning.ProvisioningBackend` (the generic records API under
``/provisioning/users/{upn}``): the demo answers from the same backend in process.
(BlackBerry UEM has its own servers, one process per tenant: ``tests/uem_server.py``.)
This module adds what only the tests need: the socket (HTTP, or HTTPS with
``certfile``), a bearer token it generates (or basic credentials), fault injection
(:meth:`ProvisioningServer.fail_next`) and a log of every call
(:attr:`ProvisioningServer.calls`). Seeding and reading (:meth:`seed_record`,
:meth:`snapshot`) go to the backend; :meth:`reset` forgets it all.

Usage (the ``provisioning_server`` fixture is session-scoped; reset it per test)::

    @pytest.fixture
    def server(provisioning_server):
        provisioning_server.reset()
        return provisioning_server

    server.seed_record("anna@contoso.example", customer="C0001")
    options = {"url": server.url + "/provisioning", "token_env": "X"}   # with X set to server.token
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
from dataclasses import dataclass
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

    # -- the backend's state ---------------------------------------------------------------

    def seed_record(self, upn: str, /, **fields: Any) -> None:
        """A user record of the generic API."""
        self.backend.seed_record(upn, **fields)

    def snapshot(self) -> dict[str, Any]:
        """Every record."""
        return self.backend.snapshot()

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
                    if failure.kind == "malformed":
                        return self._send(200, b'{"users": [ {"guid": ', {"Content-Type": "application/json"})
                    status = int(failure.kind.split(":")[1])
                    message = failure.message if failure.message is not None else f"Injected {status}."
                    return self._reply(Reply(status, {"message": message}))
                if not server._authorised(self.headers.get("Authorization")):
                    return self._reply(Reply(401, {"message": "Not authenticated."}))
                self._reply(server.backend.handle(request, base_url=server.url))

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
