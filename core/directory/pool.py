"""A few bound ldap3 connections, used from asyncio through worker threads.

Each connection is checked out by one task at a time and driven in a thread
(``asyncio.to_thread``), so independent calls run in parallel without blocking the
event loop. Servers are tried in the configured order (fail-over), TLS certificates
are verified unless the configuration says otherwise, and a dropped connection is
re-opened (reads are retried once; writes report the loss instead of guessing).

The pool also keeps the :class:`ConnectionStatus`: ``lost`` as soon as a call fails
because no domain controller can be reached, ``available`` again on the next call that
gets an answer. After a loss, the other pooled connections are re-opened before their
next use, so a write never goes out on a connection from before the loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, TypeVar
from urllib.parse import urlsplit

import ldap3
from ldap3.core import exceptions as lexc

from core.config import DirectoryConfig
from core.directory import ops
from core.escape import split_dn
from core.directory.layout import Layout
from core.errors import (
    AuthenticationFailed,
    CertificateError,
    ConfigError,
    DirectoryError,
    DirectoryUnavailable,
    WriteUnknown,
)
from core.text import plain

T = TypeVar("T")

log = logging.getLogger("tenantry.directory")

AVAILABLE = "available"
LOST = "lost"

_DROPPED = (
    lexc.LDAPSocketReceiveError,
    lexc.LDAPSocketSendError,
    lexc.LDAPSessionTerminatedByServerError,
    lexc.LDAPSocketOpenError,
    lexc.LDAPSocketCloseError,
    lexc.LDAPCommunicationError,
)


@dataclass(frozen=True)
class Endpoint:
    url: str
    host: str
    port: int
    use_ssl: bool


def parse_url(url: str) -> Endpoint:
    parts = urlsplit(url)
    use_ssl = parts.scheme.lower() == "ldaps"
    if not parts.hostname:
        raise DirectoryError(f"The directory URL {url!r} has no host name.")
    return Endpoint(url, parts.hostname, parts.port or (636 if use_ssl else 389), use_ssl)


class ConnectionFactory:
    """Opens one bound connection, trying each URL in order.

    ``bound_as`` is who the directory knows the connection as: ``bind_user`` for a
    simple bind, the ticket's principal (``jane@EXAMPLE.NET``) for Kerberos; and
    ``account`` the name to look the operator's entry up by (its UPN or
    sAMAccountName).
    """

    def __init__(self, config: DirectoryConfig, password: str | None):
        self.config = config
        self._password = password
        self.bound_url: str | None = None
        self.bound_as = config.bind_user
        self.account = config.bind_user

    def reaching(self, urls: tuple[str, ...]) -> ConnectionFactory:
        """A factory that opens connections to ``urls`` only (in order): one DC a job is
        pinned to, never failing over elsewhere, or the Global Catalog servers."""
        return ConnectionFactory(dataclasses.replace(self.config, urls=tuple(urls)), self._password)

    def for_child(self) -> tuple[DirectoryConfig, str | None]:
        """The settings and password a child process binds with: the DC bound now first,
        then the others in their order (the child reads where the console does)."""
        urls = self.config.urls
        if self.bound_url in urls:
            urls = (self.bound_url, *(u for u in urls if u != self.bound_url))
        return dataclasses.replace(self.config, urls=tuple(urls)), self._password

    def _tls(self) -> ldap3.Tls:
        if not self.config.tls_verify:
            return ldap3.Tls(validate=ssl.CERT_NONE)
        ca = str(self.config.ca_file) if self.config.ca_file else None
        return ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=ca, version=ssl.PROTOCOL_TLS_CLIENT)

    def _server(self, endpoint: Endpoint) -> ldap3.Server:
        return ldap3.Server(
            endpoint.host,
            port=endpoint.port,
            use_ssl=endpoint.use_ssl,
            tls=self._tls(),
            get_info=ldap3.NONE,
            connect_timeout=self.config.connect_timeout,
        )

    def open(self) -> ldap3.Connection:
        """Open and bind; raise one of the project's errors if no server will do."""
        failures: list[Exception] = []
        for url in self.config.urls:
            endpoint = parse_url(url)
            try:
                conn = self._open_one(endpoint)
            except AuthenticationFailed:
                raise  # the same identity would be refused by every DC
            except DirectoryError as error:
                failures.append(error)
                continue
            self.bound_url = url
            return conn
        certificate = [f for f in failures if isinstance(f, CertificateError)]
        if certificate:
            raise certificate[0]
        if len(failures) == 1:
            raise failures[0]
        raise DirectoryUnavailable(
            f"No domain controller could be reached ({'; '.join(str(f).rstrip('.') for f in failures)})."
        )

    def _open_one(self, endpoint: Endpoint) -> ldap3.Connection:
        if self.config.auth == "kerberos":
            conn = self._bind(endpoint, None, None, kerberos=True)
            try:
                self.bound_as, self.account = kerberos_identity(conn, self.config.base_dn)
            except BaseException:
                conn.unbind()
                raise
            return conn
        return self._bind(endpoint, self.config.bind_user, self._password)

    def _bind(self, endpoint: Endpoint, user: str | None, password: str | None, *, kerberos: bool = False) -> ldap3.Connection:
        """A connection to ``endpoint`` bound as ``user`` (simple) or from the ticket cache
        (``kerberos``); TLS first, unless the configuration allows a clear-text bind."""
        if not (endpoint.use_ssl or self.config.start_tls or self.config.allow_cleartext_bind):
            raise DirectoryError(f"Binding at {endpoint.url} without TLS is refused: use ldaps:// or StartTLS "
                                 "(allow_cleartext_bind = true is for labs only).")
        options: dict[str, Any] = {"user": user, "password": password, "authentication": ldap3.SIMPLE}
        if kerberos:
            require_gssapi()
            options = {"authentication": ldap3.SASL, "sasl_mechanism": ldap3.KERBEROS,
                       "sasl_credentials": (self.config.kerberos_host or None,)}
        conn = ldap3.Connection(
            self._server(endpoint),
            client_strategy=ldap3.SAFE_SYNC,
            receive_timeout=max(1, round(self.config.receive_timeout)),  # ldap3 packs it as an integer
            raise_exceptions=False,
            auto_referrals=False,
            read_only=False,
            **options,
        )
        try:
            conn.open()
            if not endpoint.use_ssl and self.config.start_tls:
                conn.start_tls()
            status, result, _response, _request = conn.bind()
        except (lexc.LDAPStartTLSError, lexc.LDAPSocketOpenError, lexc.LDAPSSLConfigurationError) as error:
            raise _connect_error(endpoint, error) from None
        except lexc.LDAPException as error:
            raise DirectoryUnavailable(f"The domain controller at {endpoint.url} failed: {error}.") from None
        except Exception as error:  # gssapi's own errors: no ticket, expired, unknown server principal
            if kerberos and type(error).__module__.startswith("gssapi"):
                conn.unbind()
                raise kerberos_error(endpoint, self.config.kerberos_host, error) from None
            raise
        if not status:
            conn.unbind()
            raise bind_error(endpoint.url, user or "your Kerberos principal", result)
        return conn

    def prove_operator(self, password: str | None) -> str:
        """Check that the person at the keyboard is ``directory.operator`` before a shared
        service account acts for them; return the name to look the operator up by.

        ``operator_proof = "password"``: a bind as the operator with their own password
        (then closed); ``"kerberos"``: a bind from their ticket cache, whose account must
        be the operator's. Anything less is refused: naming an operator proves nothing.
        """
        config = self.config
        operator = config.operator or ""
        endpoint = parse_url(self.bound_url or config.urls[0])
        if config.operator_proof == "kerberos":
            conn = self._bind(endpoint, None, None, kerberos=True)
            try:
                principal, account = kerberos_identity(conn, config.base_dn)
                if not _same_account(conn, config.base_dn, account, operator):
                    raise AuthenticationFailed(
                        f"Your Kerberos ticket is for {principal}, not for the operator {operator} (directory.operator); nothing was done.")
            finally:
                conn.unbind()
            return operator
        if not password:
            raise AuthenticationFailed(
                f"The shared account {config.bind_user} acts for {operator} only once {operator} proves who they are: "
                "give their own password (directory.operator_password_env, or the prompt on a terminal) or set "
                "operator_proof = \"kerberos\" with their ticket; nothing was done.")
        self._bind(endpoint, operator, password).unbind()
        return operator


def require_gssapi() -> None:
    """Kerberos needs the optional ``gssapi`` package (``tenantry[kerberos]``)."""
    try:
        import gssapi  # noqa: F401
    except ImportError:
        raise ConfigError('auth = "kerberos" needs Tenantry\'s Kerberos extra: install it with '
                          "pip install 'tenantry[kerberos]' (it builds against libkrb5: apt install libkrb5-dev).") from None


WHO_AM_I = "1.3.6.1.4.1.4203.1.11.3"  # RFC 4532


def kerberos_identity(conn: ldap3.Connection, base_dn: str) -> tuple[str, str]:
    """The principal a GSSAPI-bound connection authenticated (from the ticket cache), and
    the account name to look it up by: the DC's own answer to "Who am I?" where it gives
    one (AD: ``u:DOMAIN\\sam``), else the principal's name part — ``sam@REALM`` is an AD
    account's canonical principal, ``upn@REALM`` an enterprise one.

    Only a principal of the directory's own realm (``DC=example,DC=net`` → EXAMPLE.NET)
    is accepted: a trusted realm's ``bob`` is not this domain's ``bob``."""
    import gssapi

    principal = str(gssapi.Credentials(usage="initiate").name)
    realm = ".".join(value for key, value in split_dn(base_dn) if key.casefold() == "dc").upper()
    if principal.rpartition("@")[2].upper() != realm:
        raise AuthenticationFailed(f"Your Kerberos ticket is for {plain(principal)}, of another realm than the directory's "
                                   f"({realm}): kinit as an account of {realm}; nothing was done.")
    ok, result, _response, _request = conn.extended(WHO_AM_I)
    raw = result.get("responseValue") if ok else None
    who = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
    if who.startswith("u:") and "\\" in who:
        return principal, who.split("\\", 1)[1]
    return principal, principal.rpartition("@")[0] or principal


def _same_account(conn: ldap3.Connection, base_dn: str, account: str, operator: str) -> bool:
    """Whether ``operator`` (UPN, sAMAccountName or DN) names the account ``account``."""
    if "=" in operator and "," in operator:
        entry = ops.read(conn, operator, ["sAMAccountName"])
        found = [entry] if entry is not None else []
    else:
        found = ops.search(conn, base_dn, Layout.user_identity_filter(operator), "sub", ["sAMAccountName"])
    return len(found) == 1 and (found[0].first("sAMAccountName") or "").casefold() == account.casefold()


def kerberos_error(endpoint: Endpoint, host: str | None, error: Exception) -> DirectoryError:
    text = str(error).lower()
    if "no credentials" in text or "no kerberos credentials" in text or "credentials cache" in text or "expired" in text:
        return AuthenticationFailed("No valid Kerberos ticket: run kinit (check KRB5CCNAME), then start Tenantry again.")
    if "server not found" in text or "unknown server" in text:
        return AuthenticationFailed(
            f"The Kerberos realm does not know the directory service at {host or endpoint.host} (set directory.kerberos_host "
            "to the domain controller's host name).")
    return AuthenticationFailed(f"The Kerberos bind at {endpoint.url} failed: {plain(str(error))}.")


def _connect_error(endpoint: Endpoint, error: Exception) -> DirectoryError:
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate" in text.lower() or "hostname" in text.lower():
        return CertificateError(
            f"The TLS certificate of {endpoint.url} could not be verified (check directory.ca_file and the server name)."
        )
    if "timed out" in text or "timeout" in text.lower():
        return DirectoryUnavailable(f"The domain controller at {endpoint.url} did not answer in time.")
    return DirectoryUnavailable(f"The domain controller at {endpoint.url} cannot be reached.")


def bind_error(url: str, user: str, result: dict[str, Any]) -> DirectoryError:
    code = result.get("result")
    if code == 49:
        return AuthenticationFailed(f"The domain controller at {url} refused the password for {user}.")
    if code == 8:
        return DirectoryError(f"The domain controller at {url} requires TLS for binding: use ldaps:// or StartTLS.")
    return DirectoryError(f"Binding as {user} at {url} failed: {result.get('description', 'unknown error')}.")


class ConnectionStatus:
    """Whether the domain controller answers, as the directory's calls last found it.

    ``state`` is :data:`AVAILABLE` or :data:`LOST`; ``reason`` is the sentence of the
    failure that lost it. :meth:`watch` calls a listener (in the event loop) on each
    change; :meth:`wait_available` waits until a call gets an answer again.
    """

    def __init__(self) -> None:
        self.state = AVAILABLE
        self.reason: str | None = None
        self._listeners: list[Callable[[str], None]] = []
        self._available = asyncio.Event()
        self._available.set()

    @property
    def lost(self) -> bool:
        return self.state == LOST

    def watch(self, listener: Callable[[str], None]) -> Callable[[], None]:
        """Call ``listener(state)`` on each change; returns what stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def wait_available(self) -> None:
        await self._available.wait()

    def set(self, state: str, reason: str | None = None) -> None:
        if state == self.state:
            return
        self.state, self.reason = state, reason
        if state == AVAILABLE:
            self._available.set()
        else:
            self._available.clear()
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception:  # a listener's defect must not break a directory call
                log.exception("a connection status listener failed")


class _Slot:
    """One pooled connection; re-opening replaces the connection, not the slot."""

    def __init__(self, conn: Any, generation: int):
        self.conn = conn
        self.generation = generation  # the pool's generation when ``conn`` was opened
        self.busy: asyncio.Future | None = None  # the thread still using ``conn``, if any


class ConnectionPool:
    """Up to ``size`` connections, each used by one task at a time in a thread."""

    def __init__(self, opener: Callable[[], Any], size: int):
        self._opener = opener
        self._size = size
        self._idle: asyncio.Queue[_Slot] = asyncio.Queue()
        self._slots: list[_Slot] = []
        self._lock = asyncio.Lock()
        self._generation = 0  # raised on each loss: older connections are re-opened before use
        self.status = ConnectionStatus()

    async def start(self) -> None:
        """Open the first connection now, so configuration errors surface at once."""
        self._idle.put_nowait(await self._new_slot())

    async def _new_slot(self) -> _Slot:
        generation = self._generation
        slot = _Slot(await self._open(), generation)
        self._slots.append(slot)
        return slot

    async def _open(self) -> Any:
        """A new bound connection; no domain controller reachable means the connection is lost."""
        try:
            conn = await asyncio.to_thread(self._opener)
        except DirectoryUnavailable as error:
            self._lost(str(error))
            raise
        except DirectoryError:
            self.status.set(AVAILABLE)  # reached, but refused (password, certificate): not a lost connection
            raise
        self.status.set(AVAILABLE)
        return conn

    def _lost(self, sentence: str) -> None:
        self._generation += 1  # every connection open now may be dead
        self.status.set(LOST, sentence)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[_Slot]:
        """Check out one connection for several calls (a paged search needs that)."""
        slot = await self._checkout()
        try:
            yield slot
        finally:
            if slot.busy is not None and not slot.busy.done():
                # A cancelled caller: its thread still uses the connection. Hand the
                # connection back only when that call has really finished.
                slot.busy.add_done_callback(lambda _f: self._idle.put_nowait(slot))
            else:
                self._idle.put_nowait(slot)

    async def _checkout(self) -> _Slot:
        if self._idle.empty():
            async with self._lock:
                if self._idle.empty() and len(self._slots) < self._size:
                    return await self._new_slot()
        return await self._idle.get()

    async def run(self, operation: Callable[[Any], T], *, retry: bool = True) -> T:
        """Run ``operation(connection)`` in a thread; re-open a dropped connection."""
        async with self.slot() as slot:
            return await self.run_on(slot, operation, retry=retry)

    async def run_on(self, slot: _Slot, operation: Callable[[Any], T], *, retry: bool = True) -> T:
        if slot.generation != self._generation:
            await self._reopen(slot)  # opened before a loss: likely dead, and a write must not guess
        try:
            return await self._answer(slot, operation)
        except _DROPPED:
            self._generation += 1  # the DC may have restarted: every connection (this one too) is re-opened before use
            if not retry:
                raise WriteUnknown(
                    "The domain controller stopped answering during a write, which it may still apply; "
                    "check the object before trying again."
                ) from None
            await self._reopen(slot)
        try:
            return await self._answer(slot, operation)
        except _DROPPED:
            sentence = "The connection to the domain controller keeps dropping."
            self._lost(sentence)
            raise DirectoryUnavailable(sentence) from None

    async def _answer(self, slot: _Slot, operation: Callable[[Any], T]) -> T:
        """Run ``operation``; any answer, a refusal too, means the DC is there."""
        try:
            result = await self._in_thread(slot, operation)
        except (*_DROPPED, DirectoryUnavailable):
            raise
        except DirectoryError:
            self.status.set(AVAILABLE)
            raise
        self.status.set(AVAILABLE)
        return result

    @staticmethod
    async def _in_thread(slot: _Slot, operation: Callable[[Any], T]) -> T:
        slot.busy = asyncio.ensure_future(asyncio.to_thread(operation, slot.conn))
        result = await asyncio.shield(slot.busy)
        slot.busy = None
        return result

    async def _reopen(self, slot: _Slot) -> None:
        old, generation = slot.conn, self._generation
        slot.conn = await self._open()
        slot.generation = generation
        with contextlib.suppress(Exception):
            await asyncio.to_thread(old.unbind)

    async def close(self) -> None:
        for slot in self._slots:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(slot.conn.unbind)
        self._slots.clear()
