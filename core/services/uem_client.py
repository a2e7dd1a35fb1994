"""A client for one BlackBerry UEM tenant: its server, its tenant GUID, its login.

A hosting provider runs one UEM (or one UEM Cloud tenant) per customer: the tenant GUID
of an on-premises UEM is its SRP ID, one per installation. So every customer's settings
come from the SP's tenant map (``[tenants."<customer>".blackberry]``, see
:mod:`core.tenants`), never from anything inside the customer:

``url``
    The UEM server (``https://uem-contoso.example.net:18084``; ``http://`` only for a
    loopback test server). Paths ``/{tenant_guid}/api/v1/…`` are appended to it.
``tenant_guid``
    The tenant GUID (on premises: the SRP ID, e.g. ``S12345678``).
``provider``
    How to log in: ``"LOCAL"`` (default) or ``"AD"`` — UEM's own login,
    ``POST /{tenant_guid}/api/v1/util/authorization`` with ``username``, the password
    base64-encoded and, for AD, ``domain`` — or ``"OAUTH"`` for UEM Cloud: the client
    credentials grant (RFC 6749 §4.4) at ``oauth_endpoint`` with ``client_id``.
``username`` / ``domain``
    The UEM administrator (LOCAL, AD) and its AD domain (AD only).
``password_env`` / ``password_file``, ``client_secret_env`` / ``client_secret_file``
    The secret, from an environment variable or a file (first line); never inline.

``ca_file``
    The CA bundle of this tenant's server, if not the one of ``[services.blackberry]``.

The other client options of ``[services.blackberry]`` (``timeout``, ``retries``,
``backoff``, …, see :mod:`core.services.http_client`) apply to every tenant. The tenant
map refuses any other key, and an inline secret, when the configuration is loaded.

The authorization UEM answers is kept in memory only, sent bare in ``Authorization``
(an OAuth token as ``Bearer <token>``), and renewed once when a call is answered 401
(UEM sessions expire); a second 401 is a failure in one sentence. A client sends its
credentials and its authorization to its own server only.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncGenerator, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from core.errors import ConfigError, ServiceError
from core.services.credentials import secret_from_env, secret_from_file
from core.services.http_client import CLIENT_OPTIONS, ServiceClient
from core.text import plain

AUTHORIZATION_TYPE = "application/vnd.blackberry.authorizationrequest-v1+json"
PROVIDERS = ("LOCAL", "AD", "OAUTH")
# Client options of [services.blackberry] every tenant shares (its url and login are its own).
SHARED_OPTIONS = CLIENT_OPTIONS - {"url", "token_env", "token_file", "token_scheme", "username", "password_env", "password_file"}


def segment(value: str) -> str:
    """One path segment, fully percent-encoded (a hostile value cannot add a path)."""
    return quote(str(value), safe="")


LOGIN_ANSWER_LIMIT = 64 * 1024  # bytes of a login (or 401) answer read, at most


class UemLogin(httpx.Auth):
    """Logs in on first use, keeps the authorization in memory, renews it once on 401.

    Only the login's answers and a 401's are read here (capped); every other answer is
    left to the client, which streams it under its own deadline and size cap."""

    def __init__(self, client: UemClient, secret: str):
        self._client = client
        self._secret = secret
        self._value: str | None = None

    def __repr__(self) -> str:
        return "<uem login>"

    def sync_auth_flow(self, request: httpx.Request):
        raise RuntimeError("the UEM login runs on the async client only")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        client = self._client
        if not str(request.url).startswith(client.url + "/"):
            raise ServiceError(f"{client.label} refused to send its credentials to {plain(str(request.url.copy_with(query=None)))}.", service=client.key)
        for _ in range(2):  # the session in hand (or a fresh login), then once more after a 401
            value = self._value
            if value is None:
                login, who = self._login_request()
                answer = yield login
                value = self._logged_in(await _read(answer), who)
            request.headers["Authorization"] = value
            response = yield request
            if response.status_code != 401:
                return
            await _read(response)
            if self._value == value:
                self._value = None  # the session expired: log in again, once
        message = client.message_of(response)
        raise ServiceError(
            f"{client.label} answered {request.method} {plain(request.url.path)} with 401 Unauthorized even after a fresh login"
            + (f": {message}" if message else "."),
            service=client.key, status=401,
        )

    def _login_request(self) -> tuple[httpx.Request, str]:
        client = self._client
        if client.provider == "OAUTH":
            basic = base64.b64encode(f"{client.client_id}:{self._secret}".encode()).decode("ascii")
            request = httpx.Request(
                "POST", client.oauth_endpoint, data={"grant_type": "client_credentials"},
                headers={"Authorization": f"Basic {basic}", "Accept": "application/json"},
            )
            return request, f"client {client.client_id}"
        body = {"provider": client.provider, "username": client.username, "password": base64.b64encode(self._secret.encode()).decode("ascii")}
        if client.provider == "AD":
            body["domain"] = client.domain
        request = httpx.Request(
            "POST", f"{client.url}/{segment(client.tenant_guid)}/api/v1/util/authorization",
            content=json.dumps(body).encode(), headers={"Content-Type": AUTHORIZATION_TYPE, "Accept": "*/*"},
        )
        return request, f"{client.username} ({client.provider})"

    def _logged_in(self, response: httpx.Response, who: str) -> str:
        client = self._client
        if response.status_code != 200:
            message = client.message_of(response)
            raise ServiceError(
                f"{client.label} refused the login of {plain(who)} with {response.status_code} {plain(response.reason_phrase)}"
                + (f": {message}" if message else "."),
                service=client.key, status=response.status_code,
            )
        value = _authorization(response, client.provider == "OAUTH")
        if value is None:
            raise ServiceError(f"{client.label} answered the login of {plain(who)} without an authorization.", service=client.key)
        self._value = value
        return value


async def _read(response: httpx.Response) -> httpx.Response:
    """Read a (login or 401) answer into ``response.content``, refusing more than LOGIN_ANSWER_LIMIT bytes."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > LOGIN_ANSWER_LIMIT:
            await response.aclose()
            raise ServiceError(f"A UEM login answer passed {LOGIN_ANSWER_LIMIT} bytes, which is refused.")
    response._content = bytes(body)
    return response


def _authorization(response: httpx.Response, oauth: bool) -> str | None:
    """The ``Authorization`` value a login answer carries (UEM: the text itself; OAuth: a bearer token)."""
    text = response.content.decode("utf-8", "replace").strip()
    if oauth:
        try:
            body = json.loads(text)
        except ValueError:
            return None
        token = body.get("access_token") if isinstance(body, dict) else None
        kind = str(body.get("token_type", "")).lower() if isinstance(body, dict) else ""
        return f"Bearer {token}" if isinstance(token, str) and token and kind == "bearer" and token.isprintable() else None
    if text.startswith('"'):
        try:
            text = json.loads(text)
        except ValueError:
            return None
    return text if isinstance(text, str) and text and text.isprintable() and " " not in text else None


class UemClient(ServiceClient):
    """The HTTP client of one UEM tenant (see the module docstring)."""

    def __init__(
        self,
        key: str,
        tenant: str,
        settings: Mapping[str, Any],
        service_options: Mapping[str, Any],
        *,
        display_name: str,
        transport: httpx.AsyncBaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
    ):
        self.where = f'tenants."{tenant}".{key}'
        self.tenant = tenant
        guid = settings.get("tenant_guid")
        if not isinstance(guid, str) or not guid.strip() or not guid.strip().isprintable():
            raise ConfigError(f"{self.where}.tenant_guid is missing: set it to the UEM tenant GUID (the SRP ID of an on-premises UEM).")
        self.tenant_guid = guid.strip()
        provider = settings.get("provider", "LOCAL")
        if not isinstance(provider, str) or provider.upper() not in PROVIDERS:
            raise ConfigError(f"{self.where}.provider must be one of {', '.join(PROVIDERS)}, not {plain(repr(provider))}.")
        self.provider = provider.upper()
        self._settings = settings
        self.label = f"{display_name} tenant {plain(self.tenant_guid)}"
        options = {k: v for k, v in service_options.items() if k in SHARED_OPTIONS}
        if settings.get("ca_file"):
            options["ca_file"] = settings["ca_file"]
        options["url"] = settings.get("url")
        if not isinstance(options["url"], str) or not options["url"].strip():
            raise ConfigError(f"{self.where}.url is missing: set it to the tenant's UEM server (https://host:18084).")
        super().__init__(key, options, display_name=self.label, transport=transport, environ=environ)
        self.label = f"{display_name} tenant {plain(self.tenant_guid)} at {self.url}"
        self.name = self.label

    def _setting(self, name: str) -> str:
        value = self._settings.get(name)
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{self.where}.{name} is missing (needed by provider {self.provider}).")
        return value.strip()

    def _secret(self, stem: str, env: Mapping[str, str]) -> str:
        keys = [k for k in (f"{stem}_env", f"{stem}_file") if self._settings.get(k) is not None]
        if len(keys) != 1:
            raise ConfigError(f"{self.where}: set exactly one of {stem}_env and {stem}_file.")
        value = self._settings[keys[0]]
        return secret_from_env(self.where, keys[0], value, env) if keys[0].endswith("_env") else secret_from_file(self.where, keys[0], value)

    def _auth(self, options: Mapping[str, Any], env: Mapping[str, str]) -> httpx.Auth:
        """Replaces the service-wide token/basic authentication by this tenant's login."""
        if self.provider == "OAUTH":
            self.client_id = self._setting("client_id")
            self.oauth_endpoint = self._setting("oauth_endpoint")
            parts = urlsplit(self.oauth_endpoint)
            if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
                raise ConfigError(f"{self.where}.oauth_endpoint must be an https:// URL without credentials.")
            secret = self._secret("client_secret", env)
        else:
            self.username = self._setting("username")
            self.domain = self._setting("domain") if self.provider == "AD" else ""
            if self.provider == "LOCAL" and self._settings.get("domain"):
                raise ConfigError(f"{self.where}.domain is only for provider AD.")
            secret = self._secret("password", env)
        self._secrets = (secret, base64.b64encode(secret.encode()).decode("ascii"))
        self._auth_label = f"{self.provider} login"
        return UemLogin(self, secret)

    def message_of(self, response: httpx.Response) -> str:
        """UEM's own message in an error answer (``{id, subStatusCode, message}``), sanitised."""
        try:
            body = json.loads(response.content)
        except ValueError:
            return ""
        return self._message(body)
