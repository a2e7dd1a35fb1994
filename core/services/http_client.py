"""The one small httpx wrapper every HTTP service adapter uses.

A :class:`ServiceClient` is built from a service's ``[services.<key>]`` options:

``url``
    Base URL of the API (``https://…``; ``http://`` only for a loopback test server
    or a deliberate choice). Request paths are appended to it.
``token_env`` / ``token_file``
    A bearer token, from an environment variable or a file (first line). Never from
    the configuration file itself. ``token_scheme`` (default ``"Bearer"``) is the
    word before it in the ``Authorization`` header; ``""`` sends the token alone
    (BlackBerry UEM's own tokens are sent that way).
``username`` + ``password_env`` / ``password_file``
    HTTP basic authentication instead of a token.
``timeout``
    Seconds one try of a request may take in all — connecting, sending and reading
    the whole answer (default 10). A server that drips its answer a byte at a time
    cannot keep a call alive past it.
``max_response_bytes``
    The largest answer accepted (default 10 MiB). The body is read as a stream and
    the call refused as soon as it passes the cap (or at once when its
    ``Content-Length`` says it will), so a hostile or broken service cannot fill
    the memory.
``retries`` / ``backoff``
    How many times an *idempotent* call (GET, PUT, DELETE, HEAD, OPTIONS) is tried
    again after a connection failure, a timeout or a 502/503/504 answer (default 2,
    so three tries) and the first pause (default 0.2 s, doubled each time). A POST
    is never retried unless the caller says the call is idempotent.
``ca_file``
    A PEM bundle to verify the server's certificate with; without it the system's
    trust store is used. Verification cannot be turned off.

Request paths are checked before anything is sent: a path segment that is empty,
``.`` or ``..`` (percent-encoded too) is refused, so a value such as a customer code
of ``..`` cannot drop a segment (the tenant) from the URL.

Every failure becomes one :class:`core.errors.ServiceError` sentence that names the
service and, when the answer carries one (``{"message": …}`` or ``{"error": …}``),
the service's own message — sanitised with :func:`core.text.plain` and cut short,
because it is untrusted. Secrets are read when the client is built, are kept out of
``repr``, headers visible on the client, logs and messages, and are scrubbed from any
message a server echoes back.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import logging
import os
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

import httpx

from core.errors import ConfigError, ServiceError
from core.services.base import ServiceAdapter
from core.text import plain


log = logging.getLogger("tenantry.services")

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({502, 503, 504})
MESSAGE_LIMIT = 200  # characters of a service's own error message kept in ours
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 2
DEFAULT_BACKOFF = 0.2
MAX_BACKOFF = 5.0
DEFAULT_MAX_RESPONSE_BYTES = 10 * 1024 * 1024

CLIENT_OPTIONS = frozenset(
    {"url", "token_env", "token_file", "token_scheme", "username", "password_env", "password_file", "timeout", "retries", "backoff", "ca_file", "max_response_bytes"}
)


@dataclass(frozen=True)
class ServiceResponse:
    """An answer: HTTP status, decoded JSON body (``None`` when empty) and headers."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class _Secret:
    """A credential that never shows itself in ``repr``/``str``."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


class _HeaderAuth(httpx.Auth):
    """Adds the ``Authorization`` header per request, so it is never in ``client.headers``."""

    def __init__(self, value: _Secret):
        self._value = value

    def auth_flow(self, request: httpx.Request):
        request.headers["Authorization"] = self._value.reveal()
        yield request

    def __repr__(self) -> str:
        return "<authorization>"


def _basic(username: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{username}:{password}".encode("utf-8")).decode("ascii")


class ServiceClient:
    """An async client for one configured service (see the module docstring for options)."""

    def __init__(
        self,
        key: str,
        options: Mapping[str, Any],
        *,
        display_name: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
    ):
        self.key = key
        self.name = display_name or key
        self._where = f"services.{key}"
        env = os.environ if environ is None else environ
        self.url = self._url(options.get("url"))
        self.timeout = self._number(options, "timeout", DEFAULT_TIMEOUT, low=0.01)
        self.retries = int(self._number(options, "retries", DEFAULT_RETRIES, low=0, integer=True))
        self.backoff = self._number(options, "backoff", DEFAULT_BACKOFF, low=0.0)
        self.max_bytes = int(self._number(options, "max_response_bytes", DEFAULT_MAX_RESPONSE_BYTES, low=1, integer=True))
        self._secrets: tuple[str, ...] = ()
        self._auth_label = "none"
        auth = self._auth(options, env)
        verify: ssl.SSLContext | bool = True
        ca_file = options.get("ca_file")
        if ca_file is not None:
            if not isinstance(ca_file, str) or not ca_file.strip():
                raise ConfigError(f"{self._where}.ca_file must be the path of a PEM file.")
            path = Path(ca_file).expanduser()
            try:
                verify = ssl.create_default_context(cafile=str(path))
            except (OSError, ssl.SSLError) as error:
                raise ConfigError(f"The CA file {path} ({self._where}.ca_file) cannot be used: {getattr(error, 'strerror', None) or error}.") from None
        self._client = httpx.AsyncClient(
            auth=auth,
            timeout=httpx.Timeout(self.timeout),
            verify=verify,
            transport=transport,
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": "tenantry"},
        )

    # -- configuration ------------------------------------------------------------

    def _url(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{self._where}.url is missing: set it to the base URL of the {self.name} API.")
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{self._where}.url must be an http:// or https:// URL, not {plain(value)!r}.")
        if parts.username or parts.password:
            raise ConfigError(f"{self._where}.url must not contain credentials: use token_env/token_file or username with password_env/password_file.")
        return value.strip().rstrip("/")

    def _number(self, options: Mapping[str, Any], name: str, default: float, *, low: float, integer: bool = False) -> float:
        value = options.get(name, default)
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds) or value < low:
            kind = "an integer" if integer else "a number"
            raise ConfigError(f"{self._where}.{name} must be {kind} of at least {low:g}, not {plain(repr(value))}.")
        return float(value)

    def _read_file(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{self._where}.{name} must be the path of a file.")
        path = Path(value).expanduser()
        try:
            text = path.read_text(encoding="utf-8").splitlines()
        except OSError as error:
            raise ConfigError(f"The file {path} ({self._where}.{name}) cannot be read: {error.strerror}.") from None
        secret = text[0].strip() if text else ""
        if not secret:
            raise ConfigError(f"The file {path} ({self._where}.{name}) is empty.")
        return secret

    def _read_env(self, name: str, value: Any, env: Mapping[str, str]) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{self._where}.{name} must name an environment variable.")
        secret = env.get(value, "").strip()
        if not secret:
            raise ConfigError(f"The environment variable {value} ({self._where}.{name}) is not set.")
        return secret

    def _auth(self, options: Mapping[str, Any], env: Mapping[str, str]) -> httpx.Auth | None:
        for forbidden in ("token", "password"):
            if forbidden in options:
                raise ConfigError(f"{self._where}.{forbidden} is not allowed: use {forbidden}_env or {forbidden}_file.")
        token_keys = [k for k in ("token_env", "token_file") if options.get(k) is not None]
        password_keys = [k for k in ("password_env", "password_file") if options.get(k) is not None]
        username = options.get("username")
        if len(token_keys) > 1 or len(password_keys) > 1:
            both = token_keys if len(token_keys) > 1 else password_keys
            raise ConfigError(f"{self._where}: set only one of {' and '.join(both)}.")
        if token_keys and (username is not None or password_keys):
            raise ConfigError(f"{self._where}: use either a token ({token_keys[0]}) or username with a password, not both.")
        if token_keys:
            key = token_keys[0]
            token = self._read_env(key, options[key], env) if key == "token_env" else self._read_file(key, options[key])
            scheme = options.get("token_scheme", "Bearer")
            if not isinstance(scheme, str):
                raise ConfigError(f"{self._where}.token_scheme must be a string such as \"Bearer\".")
            self._secrets = (token,)
            self._auth_label = f"token from {key.split('_')[1]} {options[key]}"
            return _HeaderAuth(_Secret(f"{scheme.strip()} {token}" if scheme.strip() else token))
        if username is not None or password_keys:
            if not isinstance(username, str) or not username.strip():
                raise ConfigError(f"{self._where}.username is missing: basic authentication needs username and password_env or password_file.")
            if not password_keys:
                raise ConfigError(f"{self._where}: username {username!r} needs password_env or password_file.")
            key = password_keys[0]
            password = self._read_env(key, options[key], env) if key == "password_env" else self._read_file(key, options[key])
            header = _basic(username, password)
            self._secrets = (password, header.split(" ", 1)[1])
            self._auth_label = f"basic as {username}"
            return _HeaderAuth(_Secret(header))
        return None

    def __repr__(self) -> str:
        return f"ServiceClient(key={self.key!r}, url={self.url!r}, auth={self._auth_label!r}, timeout={self.timeout:g})"

    # -- calls ----------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        allow: tuple[int, ...] = (),
    ) -> ServiceResponse:
        """Call ``method`` on ``url + path``; return the answer or raise :class:`ServiceError`.

        Statuses in ``allow`` (e.g. ``(404,)`` for a lookup) are returned rather than
        raised. Idempotent calls are retried (see the module docstring); ``idempotent``
        overrides the method's default.
        """
        method = method.upper()
        if not path.startswith("/") or path.startswith("//"):
            raise ValueError(f"request path must start with a single '/': {path!r}")
        what = f"{method} {path}"
        if not _segments_ok(path):
            raise self._error(f"{self.name}: the request {what} was refused before it was sent: a path segment is empty, '.' or '..'.")
        retry = (method in IDEMPOTENT_METHODS) if idempotent is None else idempotent
        tries = 1 + (self.retries if retry else 0)
        for attempt in range(1, tries + 1):
            last = attempt == tries
            try:
                response, content = await self._send(method, self.url + path, json=json, params=params, headers=headers)
            except _TooLarge:
                raise self._error(f"{self.name} answered {what} with more than {self.max_bytes} bytes, which is refused.") from None
            except (httpx.TimeoutException, TimeoutError):
                log.debug("%s: %s timed out (try %d of %d)", self.key, what, attempt, tries)
                if not last:
                    await self._pause(attempt)
                    continue
                raise self._error(f"{self.name} did not answer within {self.timeout:g} s ({what}{self._tries(tries)}).") from None
            except httpx.TransportError as error:
                log.debug("%s: %s failed: %s (try %d of %d)", self.key, what, type(error).__name__, attempt, tries)
                if isinstance(error, httpx.ConnectError) and _is_certificate_error(error):
                    raise self._error(f"The TLS certificate of {self.name} at {self.url} could not be verified (set ca_file if it is signed by a private CA).") from None
                if not last:
                    await self._pause(attempt)
                    continue
                reason = self._clean(str(error)) or type(error).__name__
                raise self._error(f"{self.name} at {self.url} cannot be reached ({what}{self._tries(tries)}): {reason}.") from None
            log.debug("%s: %s -> %d", self.key, what, response.status_code)
            if response.status_code in RETRY_STATUSES and not last:
                await self._pause(attempt)
                continue
            return self._answer(response, content, what, allow, tries if response.status_code in RETRY_STATUSES else 1)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _send(self, method: str, url: str, **kwargs: Any) -> tuple[httpx.Response, bytes]:
        """One try: the whole exchange within ``timeout``, the body streamed up to the cap."""
        async with asyncio.timeout(self.timeout):
            async with self._client.stream(method, url, **kwargs) as response:
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise _TooLarge
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise _TooLarge
                return response, bytes(body)

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- helpers --------------------------------------------------------------------

    async def _pause(self, attempt: int) -> None:
        await asyncio.sleep(min(self.backoff * (2 ** (attempt - 1)), MAX_BACKOFF))

    @staticmethod
    def _tries(tries: int) -> str:
        return f", {tries} tries" if tries > 1 else ""

    def _answer(self, response: httpx.Response, content: bytes, what: str, allow: tuple[int, ...], tries: int) -> ServiceResponse:
        status = response.status_code
        body: Any = None
        malformed = False
        if content.strip():
            try:
                body = jsonlib.loads(content)
            except (ValueError, UnicodeDecodeError):
                malformed = True
        if 200 <= status < 300 or status in allow:
            if malformed:
                raise self._error(f"{self.name} answered {what} with a body that is not valid JSON.", status)
            return ServiceResponse(status, body, dict(response.headers))
        reason = response.reason_phrase or "error"
        message = self._message(body)
        text = f"{self.name} answered {what} with {status} {reason}{self._tries(tries)}"
        raise self._error(f"{text}: {message}" if message else f"{text}.", status)

    def _message(self, body: Any) -> str:
        """The service's own error message, if the body has one: sanitised and capped."""
        found: Any = None
        if isinstance(body, dict):
            for key in ("message", "error", "detail", "error_description"):
                value = body.get(key)
                if isinstance(value, dict):
                    value = value.get("message")
                if isinstance(value, str) and value.strip():
                    found = value
                    break
        if found is None:
            return ""
        text = self._clean(found).strip()
        if len(text) > MESSAGE_LIMIT:
            text = text[: MESSAGE_LIMIT - 1].rstrip() + "…"
        if text and text[-1] not in ".!?…":
            text += "."
        return text

    def _clean(self, text: str) -> str:
        """Untrusted text made safe to show: control characters gone, secrets masked."""
        cleaned = plain(text)
        for secret in self._secrets:
            if secret:
                cleaned = cleaned.replace(secret, "***")
        return cleaned

    def _error(self, message: str, status: int | None = None) -> ServiceError:
        return ServiceError(self._clean(message), service=self.key, status=status)


class _TooLarge(Exception):
    """An answer past ``max_response_bytes`` (declared or read)."""


def _segments_ok(path: str) -> bool:
    """Whether every segment of ``path`` (before any query) is a real one: not empty,
    ``.`` or ``..``, also when percent-encoded."""
    segments = path.split("?", 1)[0].split("/")[1:]
    return all(unquote(segment) not in ("", ".", "..") for segment in segments)


def _is_certificate_error(error: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        current = current.__cause__ or current.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(error)


class ApiAdapter(ServiceAdapter):
    """An adapter whose service is an HTTP API: one lazily built :class:`ServiceClient`.

    The client is built on first use, so a configured but unused service needs no
    credentials; ``transport`` (tests, the demo) replaces the network.
    """

    def __init__(self, service, options, layout, *, transport=None, environ=None):
        super().__init__(service, options, layout)
        self._transport = transport
        self._environ = environ
        self._client: ServiceClient | None = None

    @property
    def client(self) -> ServiceClient:
        if self._client is None:
            self._client = ServiceClient(
                self.key, self.options, display_name=self.service.display_name, transport=self._transport, environ=self._environ
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(key={self.key!r}, client={self._client!r})"
