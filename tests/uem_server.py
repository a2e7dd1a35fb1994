"""BlackBerry UEM test servers: one real HTTP server PROCESS per tenant, on loopback.

Each process serves one :class:`core.demo.uem.UemInstallation` (its own SRP ID, its own
administrators, users, devices and groups) on ``127.0.0.1:<free port>``, as a hosting
provider runs one UEM per customer. The test side (:class:`UemServer`) starts the
process, reads the port it printed, and drives it through control routes under
``/__control__/`` that only a caller holding the process's random control key may use
(the API itself never sees them): seeding, reading the state back, planning faults
(:meth:`UemServer.fail_next`), expiring every session (:meth:`UemServer.expire_tokens`)
and the log of every API call with the ``Authorization`` value and the login body it
carried (:meth:`UemServer.calls`).

Run as a script, this file is the server process itself.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONTROL = "/__control__/"


# -- the server process ------------------------------------------------------------------------

def _serve(srp_id: str, key: str, stall: float) -> None:
    sys.path.insert(0, str(ROOT))
    from core.demo.uem import UemInstallation, UemRequest

    state: dict[str, Any] = {"uem": UemInstallation(srp_id), "calls": [], "failures": []}
    lock = threading.Lock()

    def control(op: str, args: dict[str, Any]) -> Any:
        uem = state["uem"]
        if op == "reset":
            state.update(uem=UemInstallation(srp_id), calls=[], failures=[])
            return None
        if op == "fail_next":
            state["failures"].append(dict(args))
            return None
        if op == "calls":
            return list(state["calls"])
        if op == "add_user":
            return uem.add_user(args["user"], groups=tuple(args.get("groups", ())), devices=tuple(args.get("devices", ())))
        if op == "add_directory_user":
            return uem.add_directory_user(args.pop("directory_id"), **args)
        return getattr(uem, op)(**args)  # add_admin, add_client, add_group, add_device, expire_tokens, users, snapshot

    def take_failure(method: str, path: str) -> dict[str, Any] | None:
        for failure in state["failures"]:
            if failure["method"] == method and fnmatch.fnmatchcase(path, failure["pattern"]):
                failure["times"] -= 1
                if failure["times"] <= 0:
                    state["failures"].remove(failure)
                return failure
        return None

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, content: bytes, content_type: str | None, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if content:
                self.wfile.write(content)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            content = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            if path.startswith(CONTROL):
                if not secrets.compare_digest((self.headers.get("X-Control-Key") or "").encode(), key.encode()):
                    return self._send(403, b"", None)
                with lock:
                    result = control(path[len(CONTROL):], json.loads(content or b"{}"))
                return self._send(200, json.dumps(result).encode(), "application/json")
            from urllib.parse import unquote

            with lock:
                state["calls"].append(
                    {"method": self.command, "path": unquote(path), "target": self.path,
                     "authorization": self.headers.get("Authorization"), "body": content.decode("utf-8", "replace")}
                )
                failure = take_failure(self.command, unquote(path))
            if failure is not None:
                if failure["kind"] in ("timeout", "disconnect"):
                    if failure["kind"] == "timeout":
                        time.sleep(stall)
                    self.close_connection = True
                    return
                status = int(failure["kind"].split(":")[1])
                body = {"id": "injected", "subStatusCode": None, "message": failure.get("message") or f"Injected {status}."}
                return self._send(status, json.dumps(body).encode(), "application/vnd.blackberry.error-v1+json")
            request = UemRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, content)
            reply = state["uem"].handle(request, base_url=f"http://127.0.0.1:{self.server.server_address[1]}")
            self._send(reply.status, reply.content, reply.content_type, dict(reply.headers))

        def _safe(self) -> None:
            try:
                self._handle()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _safe

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    print(httpd.server_address[1], flush=True)
    httpd.serve_forever(poll_interval=0.05)


# -- the test side -----------------------------------------------------------------------------------

class UemServer:
    """A UEM server process for one tenant (see the module docstring)."""

    def __init__(self, srp_id: str, *, stall: float = 2.0):
        self.srp_id = srp_id
        self.stall = stall  # seconds a "timeout" fault waits (longer than the tests' client timeout)
        self._key = secrets.token_urlsafe(24)
        self.admin = "tenantry-admin"  # the administrator a reset server keeps
        self.admin_password = secrets.token_urlsafe(12)
        self._process: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def start(self) -> UemServer:
        self._process = subprocess.Popen(
            [sys.executable, __file__, self.srp_id, str(self.stall)],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "TENANTRY_UEM_CONTROL_KEY": self._key}, cwd=str(ROOT),
        )
        line = self._process.stdout.readline() if self._process.stdout else ""
        if not re.fullmatch(r"\d+\n", line):
            self.stop()
            raise RuntimeError(f"the UEM test server for {self.srp_id} did not start (it printed {line!r})")
        self.port = int(line)
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(timeout=10)

    def _control(self, op: str, **args: Any) -> Any:
        import httpx

        response = httpx.post(f"{self.url}{CONTROL}{op}", json=args, headers={"X-Control-Key": self._key}, timeout=10)
        response.raise_for_status()
        return response.json()

    # -- controls ---------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything; keep only the server's own administrator (:attr:`admin`)."""
        self._control("reset")
        self.add_admin(self.admin, self.admin_password)

    def add_admin(self, username: str, password: str, *, provider: str = "LOCAL", domain: str = "") -> None:
        self._control("add_admin", username=username, password=password, provider=provider, domain=domain)

    def add_client(self, client_id: str, secret: str) -> None:
        self._control("add_client", client_id=client_id, secret=secret)

    def add_directory_user(self, directory_id: str, **fields: Any) -> None:
        self._control("add_directory_user", directory_id=directory_id, **fields)

    def add_user(self, user: dict[str, Any], *, groups: tuple[str, ...] = (), devices: tuple[dict[str, Any], ...] = ()) -> str:
        return self._control("add_user", user=user, groups=list(groups), devices=list(devices))

    def add_group(self, name: str) -> str:
        return self._control("add_group", name=name)

    def expire_tokens(self) -> None:
        self._control("expire_tokens")

    def users(self) -> dict[str, dict[str, Any]]:
        return self._control("users")

    def snapshot(self) -> dict[str, Any]:
        return self._control("snapshot")

    def calls(self, method: str | None = None, pattern: str = "*") -> list[dict[str, Any]]:
        return [c for c in self._control("calls") if (method is None or c["method"] == method) and fnmatch.fnmatchcase(c["path"], pattern)]

    def fail_next(self, method: str, pattern: str, kind: str, *, message: str | None = None, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` to a path matching ``pattern`` (``fnmatch``, over the
        decoded path) fail: ``status:NNN`` (UEM's error shape), ``timeout`` or ``disconnect``."""
        if not (kind in ("timeout", "disconnect") or re.fullmatch(r"status:\d{3}", kind)):
            raise ValueError(f"unknown failure kind {kind!r}")
        self._control("fail_next", method=method.upper(), pattern=pattern, kind=kind, message=message, times=times)


def start_pair(srp_ids: tuple[str, ...] = ("S10000001", "S20000002")) -> Iterator[tuple[UemServer, ...]]:
    servers: list[UemServer] = []
    try:
        for srp in srp_ids:
            servers.append(UemServer(srp).start())
        yield tuple(servers)
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    _serve(sys.argv[1], os.environ["TENANTRY_UEM_CONTROL_KEY"], float(sys.argv[2]))


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def uem_processes() -> Iterator[tuple[UemServer, UemServer]]:
    """Two UEM server processes (tenants S10000001 and S20000002), started once."""
    yield from start_pair()


@pytest.fixture(scope="session")
def uem_third_process() -> Iterator[tuple[UemServer, ...]]:
    """A third UEM server process (tenant S30000003), for a customer outside the job."""
    yield from start_pair(("S30000003",))


@pytest.fixture
def uem_third(uem_third_process) -> UemServer:
    """The third UEM server, emptied for this test."""
    (server,) = uem_third_process
    server.reset()
    return server


@pytest.fixture
def uem_servers(uem_processes) -> tuple[UemServer, UemServer]:
    """The two UEM servers, emptied for this test."""
    for server in uem_processes:
        server.reset()
    return uem_processes


def tenant_tables(servers: dict[str, UemServer]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Customer name → its UEM server: each customer's blackberry table for the tenant map
    (LOCAL login as the server's administrator) and the environment holding the passwords."""
    tables, environ = {}, {}
    for number, (name, server) in enumerate(servers.items()):
        variable = f"TENANTRY_TEST_UEM_PASSWORD_{number}"
        tables[name] = {"url": server.url, "tenant_guid": server.srp_id, "username": server.admin, "password_env": variable}
        environ[variable] = server.admin_password
    return tables, environ
