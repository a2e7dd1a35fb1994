"""An in-memory generic provisioning API, as one pure request handler.

(BlackBerry UEM is modelled on its own, one installation per tenant, in
:mod:`core.demo.uem`.) :class:`ProvisioningBackend` keeps, in memory, a generic
provisioning API under ``/provisioning``: ``GET``/``PUT``/``DELETE
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
import threading
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import parse_qs, unquote, urlsplit

import httpx

__all__ = ["GENERIC_PREFIX", "ProvisioningBackend", "Reply", "Request"]

GENERIC_PREFIX = "/provisioning"  # where the generic records API lives


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


class ProvisioningBackend:
    """The in-memory generic records (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
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
            self._records.clear()

    def seed_record(self, upn: str, /, **fields: Any) -> None:
        """A user record of the generic API."""
        with self._lock:
            self._records[upn.casefold()] = {"upn": upn, **fields}

    def snapshot(self) -> dict[str, Any]:
        """Every record, by UPN (case-folded)."""
        with self._lock:
            return {"records": {k: dict(v) for k, v in self._records.items()}}

    def record(self, upn: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._records.get(upn.casefold())
            return dict(found) if found is not None else None

    # -- routes (called with the lock held) -------------------------------------------------

    def _route(self, request: Request, base_url: str) -> Reply:
        segments = [unquote(s) for s in request.raw_path.split("/")[1:]]
        prefix = GENERIC_PREFIX.strip("/")
        if segments[:2] == [prefix, "users"] and len(segments) == 3 and segments[2]:
            return self._generic(request.method, segments[2], request.body)
        if segments[:2] == [prefix, "users"] and len(segments) in (2, 3):
            return self._generic_create(request.method, request.body)
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
