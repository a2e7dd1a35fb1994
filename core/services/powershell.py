"""PowerShell remoting to a service's management endpoint (Exchange, Lync/Skype for Business).

A :class:`PowerShellEndpoint` runs one :class:`Cmdlet` at a time over WS-Management with
pypsrp: a runspace pool opened on the endpoint's session configuration
(``Microsoft.Exchange`` on Exchange's ``https://<server>/PowerShell``), kept open between
calls and reopened after a lost connection. A cmdlet is sent only as a command with named
parameters (PSRP's ``AddCommand``/``AddParameter``): values read from the directory are
data, never script text, and Exchange's endpoint (no-language mode) would refuse script
anyway.

Options (``[services.<key>]`` for the adapters that use it):

``url``
    The endpoint, e.g. ``https://mail.example.net/PowerShell`` (Exchange) or
    ``https://pool.example.net/OcsPowershell`` (Lync). ``https`` (port 443 unless given);
    ``http`` only to a loopback address.
``configuration_name``
    The session configuration (default ``Microsoft.Exchange``; Lync's is
    ``Microsoft.PowerShell``).
``auth``
    ``basic`` (default; over HTTPS only), ``negotiate`` or ``kerberos`` (a ticket from
    the operator's cache when no ``username`` is given).
``kerberos_service`` / ``kerberos_host``
    The service principal Negotiate/Kerberos asks a ticket for, ``<service>/<host>``:
    ``HTTP`` (Exchange's and Lync's endpoints are IIS sites) and the url's host by
    default; set ``kerberos_host`` when the url names an address or an alias that is not
    the name the SPN is registered under.
``username`` + ``password_env`` / ``password_file``
    The account, and where its password is (never in the configuration file).
``ca_file``
    A PEM bundle to verify the server's certificate with (else the system's store).
    Verification cannot be turned off.
``timeout``
    Seconds one cmdlet may take (default 60): past it the pipeline is stopped and the
    call fails.

Every failure is one :class:`ServiceError` sentence naming the service and the cmdlet and
carrying the cmdlet's own message (sanitised, cut short: it is untrusted text). Calls run
in a worker thread (``asyncio.to_thread``), never on the event loop.

pypsrp (and requests, spnego) are imported when the first cmdlet runs, not with this
module: a session whose plans never reach Exchange or Lync does not pay for them (the
console starts without them). ``transport``, if given, is a requests transport adapter
mounted on pypsrp's session for both schemes: it carries the WS-Management requests
instead of the network (the demo's in-process server).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import os
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


from core.errors import ConfigError, ServiceError
from core.model import Customer
from core.plan import HTTP, Step
from core.services.base import ServiceAdapter
from core.services.credentials import secret_from_env, secret_from_file
from core.tenants import TenantMap
from core.text import plain

log = logging.getLogger("tenantry.services")

DEFAULT_CONFIGURATION = "Microsoft.Exchange"
DEFAULT_TIMEOUT = 60.0
AUTHS = ("basic", "negotiate", "kerberos")
MESSAGE_LIMIT = 300  # characters of a cmdlet's own error message kept in ours
POLL = 5  # seconds one WS-Management Receive may wait (its OperationTimeout) within a call
SHELL_NOT_FOUND = 2150858843  # WS-Management: the shell (runspace pool) is no longer on the server
ENDPOINT_OPTIONS = frozenset({"url", "configuration_name", "auth", "username", "password_env", "password_file", "ca_file", "timeout",
                              "kerberos_service", "kerberos_host"})
HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")

Value = str | bool | int | None | tuple[str, ...]


@dataclass(frozen=True)
class Cmdlet:
    """One command with its named parameters, in order. A ``True`` value is a switch
    (``-Name``); ``False`` is ``-Name:$false``; ``None`` is ``$null``; a tuple is an array."""

    name: str
    parameters: tuple[tuple[str, Value], ...] = ()

    def show(self) -> str:
        """How the plan shows it: ``Set-Mailbox -Identity 'a@b' -EmailAddressPolicyEnabled:$false``
        (values quoted PowerShell's way, for reading; the call never sends this text)."""
        parts = [self.name]
        for name, value in self.parameters:
            if value is True:
                parts.append(f"-{name}")
            elif value is False:
                parts.append(f"-{name}:$false")
            else:
                parts.append(f"-{name} {_literal(value)}")
        return plain(" ".join(parts))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "parameters": [[n, list(v) if isinstance(v, tuple) else v] for n, v in self.parameters]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Cmdlet:
        return cls(str(data["name"]), tuple((str(n), tuple(v) if isinstance(v, list) else v) for n, v in data.get("parameters", ())))


def _literal(value: Value) -> str:
    if value is None:
        return "$null"
    if isinstance(value, tuple):
        return ",".join(_literal(v) for v in value) if value else "@()"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


class PowerShellEndpoint:
    """One remote PowerShell endpoint of a service (see the module docstring)."""

    def __init__(self, key: str, display_name: str, options: Mapping[str, Any], *, environ: Mapping[str, str] | None = None,
                 transport: Any = None):
        self.key = key
        self._transport = transport
        self.name = display_name
        self._where = where = f"services.{key}"
        env = os.environ if environ is None else environ
        url = options.get("url")
        if not isinstance(url, str) or not url.strip():
            raise ConfigError(f"{where}.url is missing: set it to the PowerShell endpoint (https://server/PowerShell).")
        parts = urlsplit(url.strip())
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
            raise ConfigError(f"{where}.url must be an https:// URL without credentials, not {plain(url)!r}.")
        if parts.scheme == "http" and not _loopback(parts.hostname):
            raise ConfigError(f"{where}.url must use https:// (http:// is allowed only to a loopback address).")
        self.url = url.strip()
        self._server, self._ssl = parts.hostname, parts.scheme == "https"
        self._port = parts.port or (443 if self._ssl else 80)
        self._path = parts.path.lstrip("/") or "PowerShell"
        configuration = options.get("configuration_name", DEFAULT_CONFIGURATION)
        if not isinstance(configuration, str) or not configuration.strip():
            raise ConfigError(f"{where}.configuration_name must be a session configuration name such as {DEFAULT_CONFIGURATION!r}.")
        self.configuration = configuration.strip()
        auth = options.get("auth", "basic")
        if auth not in AUTHS:
            raise ConfigError(f"{where}.auth must be one of {', '.join(AUTHS)}, not {plain(repr(auth))}.")
        if auth == "basic" and not self._ssl:
            raise ConfigError(f"{where}: basic authentication needs an https:// url.")
        self.auth = auth
        self._spn: dict[str, str] = {}  # pypsrp's negotiate_service / negotiate_hostname_override
        for name, key in (("kerberos_service", "negotiate_service"), ("kerberos_host", "negotiate_hostname_override")):
            value = options.get(name)
            if value is None:
                continue
            if not isinstance(value, str) or not HOST_NAME.match(value.strip()):
                raise ConfigError(f"{where}.{name} must be a name such as {'HTTP' if name == 'kerberos_service' else 'mail.example.net'}, "
                                  f"not {plain(repr(value))}.")
            self._spn[key] = value.strip()
        if auth != "basic":
            self._spn.setdefault("negotiate_service", "HTTP")
        if "password" in options:
            raise ConfigError(f"{where}.password is not allowed: use password_env or password_file.")
        username = options.get("username")
        keys = [k for k in ("password_env", "password_file") if options.get(k) is not None]
        if len(keys) > 1:
            raise ConfigError(f"{where}: set only one of password_env and password_file.")
        if username is None and (auth != "kerberos" or keys):
            raise ConfigError(f"{where}.username is missing: {auth} authentication needs username and password_env or password_file.")
        if username is not None and (not isinstance(username, str) or not username.strip()):
            raise ConfigError(f"{where}.username must be an account name such as 'svc-tenantry@example.net'.")
        if username is not None and not keys:
            raise ConfigError(f"{where}: username {plain(username)!r} needs password_env or password_file.")
        self.username = username.strip() if isinstance(username, str) else None
        self._password = None
        if keys:
            key_name = keys[0]
            read = secret_from_env(where, key_name, options[key_name], env) if key_name == "password_env" else secret_from_file(where, key_name, options[key_name])
            self._password = read
        ca_file = options.get("ca_file")
        if ca_file is not None and (not isinstance(ca_file, str) or not ca_file.strip()):
            raise ConfigError(f"{where}.ca_file must be the path of a PEM file.")
        if ca_file is not None and not Path(ca_file).expanduser().is_file():
            raise ConfigError(f"The CA file {plain(ca_file)} ({where}.ca_file) does not exist or is not a file.")
        self._verify: str | bool = str(Path(ca_file).expanduser()) if ca_file else True
        timeout = options.get("timeout", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 1:
            raise ConfigError(f"{where}.timeout must be a number of seconds of at least 1, not {plain(repr(timeout))}.")
        self.timeout = float(timeout)
        self._lock = threading.Lock()  # one pipeline at a time on the pool
        self._pool: Any = None
        self.round_trips = 0  # WS-Management requests sent (for the bench)

    def __repr__(self) -> str:
        return f"PowerShellEndpoint(key={self.key!r}, url={self.url!r}, auth={self.auth!r}, user={self.username!r})"

    # -- calls --------------------------------------------------------------------------

    async def run(self, cmdlet: Cmdlet) -> list[dict[str, Any]]:
        """Run ``cmdlet``; its output objects as dicts (property → value), or :class:`ServiceError`."""
        return await asyncio.to_thread(self._run, cmdlet)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._close)

    def _run(self, cmdlet: Cmdlet) -> list[dict[str, Any]]:
        import requests
        import spnego.exceptions
        from pypsrp.exceptions import AuthenticationError, WinRMError, WSManFaultError

        with self._lock:
            try:
                reused = self._pool is not None
                try:
                    return self._invoke(self._open(), cmdlet)
                except _ShellGone:
                    # The server dropped the idle session before the command was created
                    # (Exchange ends idle runspaces): nothing ran, so open a new one once.
                    if not reused:
                        raise
                    self._discard()
                    log.debug("%s: the remote session was gone; reopening it", self.key)
                    return self._invoke(self._open(), cmdlet)
            except _ShellGone:
                self._discard()
                raise self._error(f"{self.name} lost the session it had just opened ({self.url}).") from None
            except ServiceError:
                raise
            except spnego.exceptions.SpnegoError as error:
                self._discard()
                spn = f"{self._spn.get('negotiate_service', 'HTTP')}/{self._spn.get('negotiate_hostname_override', self._server)}"
                raise self._error(f"{self.name} could not get a Kerberos ticket for {spn} ({self.url}): "
                                  f"{self._clean(str(error))}; {cmdlet.name} was not sent.") from None
            except AuthenticationError:
                self._discard()
                raise self._error(f"{self.name} refused the credentials of {self.username or 'the Kerberos ticket'} ({self.url}).") from None
            except requests.exceptions.SSLError:
                self._discard()
                raise self._error(f"The TLS certificate of {self.name} at {self.url} could not be verified (set ca_file if it is signed by a private CA).") from None
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as error:
                self._discard()
                if _never_connected(error):
                    raise self._error(f"{self.name} at {self.url} cannot be reached ({self._clean(type(error).__name__)}); "
                                      f"{cmdlet.name} was not sent.") from None
                raise self._error(f"The connection to {self.name} at {self.url} was lost during {cmdlet.name}: {self._clean(type(error).__name__)}; "
                                  "the cmdlet may or may not have run.") from None
            except WSManFaultError as fault:
                self._discard()
                reason = self._clean(fault.reason or fault.provider_fault or str(fault.code))
                raise self._error(f"{self.name} refused {cmdlet.name}: {reason}") from None
            except WinRMError as error:
                self._discard()
                raise self._error(f"{self.name} failed during {cmdlet.name}: {self._clean(str(error))}") from None
            except Exception as error:  # noqa: BLE001 - pypsrp fails on malformed answers in many ways
                self._discard()
                log.debug("%s: %s failed in the client", self.key, cmdlet.name, exc_info=True)
                raise self._error(f"{self.name} sent an answer to {cmdlet.name} that could not be read ({type(error).__name__}); "
                                  "the cmdlet may or may not have run.") from None

    def _open(self) -> Any:
        if self._pool is not None:
            return self._pool
        from pypsrp.powershell import RunspacePool

        wsman = _counting_wsman()(
            self,
            self._server,
            port=self._port,
            path=self._path,
            ssl=self._ssl,
            auth=self.auth,
            username=self.username,
            password=self._password,
            cert_validation=self._verify,
            encryption="never" if not self._ssl else "auto",
            operation_timeout=POLL,
            connection_timeout=min(self.timeout, 30),
            read_timeout=min(self.timeout, 30) + POLL,
            no_proxy=True,
            **self._spn,
        )
        pool = RunspacePool(wsman, configuration_name=self.configuration)
        pool.open()
        self._pool = pool
        return pool

    def _invoke(self, pool: Any, cmdlet: Cmdlet) -> list[dict[str, Any]]:
        from pypsrp.complex_objects import PSInvocationState
        from pypsrp.exceptions import WSManFaultError
        from pypsrp.powershell import PowerShell

        shell = PowerShell(pool)
        shell.add_cmdlet(cmdlet.name)
        for name, value in cmdlet.parameters:
            shell.add_parameter(name, list(value) if isinstance(value, tuple) else value)
        deadline = time.monotonic() + self.timeout
        try:
            shell.begin_invoke()
        except WSManFaultError as fault:
            if fault.code == SHELL_NOT_FOUND:
                raise _ShellGone() from None
            raise
        while shell.state == PSInvocationState.RUNNING:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                shell.stop()
                raise self._error(f"{self.name} did not finish {cmdlet.name} within {self.timeout:g} s; it was stopped "
                                  "and may or may not have made its change.")
            shell.poll_invoke(timeout=max(1, min(POLL, int(remaining))))
        shell.close()
        errors = [self._clean(str(record)) for record in shell.streams.error]
        if errors or shell.state != PSInvocationState.COMPLETED:
            message = errors[0] if errors else f"the pipeline ended {shell.state}"
            raise self._error(f"{self.name} refused {cmdlet.name}: {_sentence(message)}")
        return [_plain_object(value) for value in shell.output]

    def _discard(self) -> None:
        """Forget a pool whose connection cannot be trusted any more (reopened on next use)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                pool.connection.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail any way
                log.debug("%s: closing a broken connection failed", self.key)

    def _close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            if pool is None:
                return
            try:
                pool.close()
            except Exception:  # noqa: BLE001 - the session ends whatever the server says
                log.debug("%s: the runspace pool did not close cleanly", self.key)
            finally:
                pool.connection.close()

    # -- messages -------------------------------------------------------------------------

    def _clean(self, text: str) -> str:
        cleaned = plain(text).strip()
        if self._password:
            cleaned = cleaned.replace(self._password, "***")
        if len(cleaned) > MESSAGE_LIMIT:
            cleaned = cleaned[: MESSAGE_LIMIT - 1].rstrip() + "…"
        return cleaned

    def _error(self, message: str) -> ServiceError:
        return ServiceError(self._clean(_sentence(message)), service=self.key)


def _never_connected(error: BaseException) -> bool:
    """Whether a requests error happened while connecting (nothing reached the server)."""
    import requests
    import urllib3

    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError))


def _sentence(text: str) -> str:
    return text if not text or text[-1] in ".!?…" else text + "."


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _plain_object(value: Any) -> Any:
    """A deserialized PowerShell object as plain Python: objects → dict of their properties
    (adapted, then extended), lists → lists, primitives as they are."""
    from pypsrp.complex_objects import ComplexObject, GenericComplexObject

    if isinstance(value, GenericComplexObject):
        if value.property_sets:
            return [_plain_object(v) for v in value.property_sets]
        if value.adapted_properties or value.extended_properties:
            merged = dict(value.adapted_properties)
            merged.update(value.extended_properties)
            return {str(k): _plain_object(v) for k, v in merged.items()}
        if value.to_string is not None:
            return value.to_string
        return [_plain_object(v) for v in value.list_value] if value.list_value else {}
    if isinstance(value, ComplexObject):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain_object(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain_object(v) for k, v in value.items()}
    return value


class _ShellGone(Exception):
    """The server no longer has the session (runspace pool); the command was not created."""


class CmdletAdapter(ServiceAdapter):
    """A service adapter whose steps are cmdlets on the service's PowerShell endpoint.

    A step (``HTTP``, a service call) carries the cmdlets it runs and the cmdlets that undo
    it (``request["cmdlets"]`` / ``undo_request["cmdlets"]``), so the journal holds all a
    resume or a rollback needs; its target is the cmdlet as the review shows it."""

    def __init__(self, service, options, layout, *, tenants: TenantMap | None = None, environ=None,
                 endpoint: PowerShellEndpoint | None = None, transport: Any = None):
        super().__init__(service, options, layout)
        self.tenants = tenants or TenantMap()
        self._environ = environ
        self._transport = transport  # carries the endpoint's requests instead of the network (the demo)
        self._endpoint = endpoint

    def setting(self, name: str, customer: Customer, default: str | None = None) -> str | None:
        """A per-customer setting: the value in the customer's tenant-map table
        (``[tenants."…".<key>]``), else the service's ``name`` template (or ``default``)
        over ``{code}``, the customer's code from the same map."""
        tenant = self.tenants.for_customer(customer)
        table = (tenant.service(self.key) if tenant else None) or {}
        if name in table:
            return str(table[name])
        template = self.options.get(name, default)
        if template is None:
            return None
        try:
            return str(template).format(code=customer.code or "")
        except (KeyError, IndexError, ValueError):
            raise ConfigError(f"services.{self.key}.{name} may use only {{code}}, not {plain(template)!r}.") from None

    @property
    def endpoint(self) -> PowerShellEndpoint:
        """Built on first use, so a configured but unused service needs no credentials."""
        if self._endpoint is None:
            options = {k: v for k, v in self.options.items() if k in ENDPOINT_OPTIONS}
            self._endpoint = PowerShellEndpoint(self.key, self.service.display_name, options, environ=self._environ,
                                                transport=self._transport)
        return self._endpoint

    async def aclose(self) -> None:
        if self._endpoint is not None:
            await self._endpoint.aclose()

    def cmdlet_step(self, who: str, do: Cmdlet, undo: list[Cmdlet], before: dict[str, Any], after: dict[str, Any]) -> Step:
        return Step(who, HTTP, do.show(), before=before, after=after, service=self.key,
                    request={"method": "PowerShell", "path": do.show(), "cmdlets": [do.to_json()]},
                    undo_request={"method": "PowerShell", "path": "; ".join(c.show() for c in undo), "cmdlets": [c.to_json() for c in undo]})

    # -- what a journaled step may do (the executor asks before every run, resume, rollback) --

    WRITES: frozenset[str] = frozenset()  # the cmdlets this adapter's steps run (case-folded)

    def tenant_values(self, customer: Customer) -> dict[str, set[str]]:
        """Parameter → the values a step may set it to for ``customer`` (its ABP, pool, …)."""
        return {}

    def identities(self, step: Step) -> tuple[str, ...]:
        """Every -Identity of the step's cmdlets and of their undo (the executor checks that
        each names a user of the job: a DN, or an objectGUID it looks up)."""
        found = []
        for requested in (step.request, step.undo_request):
            for data in (requested or {}).get("cmdlets", ()):
                try:
                    cmdlet = Cmdlet.from_json(data)
                except (KeyError, TypeError, ValueError):
                    continue  # foreign_call refuses it
                found += [str(v) for n, v in cmdlet.parameters if n.casefold() == "identity"]
        return tuple(found)

    def foreign_call(self, step: Step, customers) -> str | None:
        """A cmdlet step edited to reach outside the job's customers: another cmdlet than
        this adapter runs, an address outside their domains, or a tenant object (address
        book policy, pool, policy…) none of them is given. An undo may also set back a
        value the step recorded as before. Its -Identity values are the executor's to
        check (:meth:`identities`)."""
        domains = {d.casefold() for c in customers for d in (*c.domains, *c.claimed_domains)}
        allowed: dict[str, set[str]] = {}
        for customer in customers:
            for name, values in self.tenant_values(customer).items():
                allowed.setdefault(name.casefold(), set()).update(str(v).casefold() for v in values)
        before = step.before if isinstance(step.before, dict) else {}
        recorded = {str(k).casefold(): {str(v).casefold() for v in (vs if isinstance(vs, list) else [vs])} for k, vs in before.items()}
        for requested, undoing in ((step.request, False), (step.undo_request, True)):
            for data in (requested or {}).get("cmdlets", ()):
                try:
                    cmdlet = Cmdlet.from_json(data)
                except (KeyError, TypeError, ValueError):
                    return "holds a cmdlet that cannot be read"
                if cmdlet.name.casefold() not in self.WRITES and not any(
                        w.endswith("*") and cmdlet.name.casefold().startswith(w[:-1]) for w in self.WRITES):
                    return f"runs {plain(cmdlet.name)}, which {self.service.display_name} never runs"
                for name, value in cmdlet.parameters:
                    why = self._foreign_value(name, value, domains, allowed, recorded if undoing else {})
                    if why:
                        return f"sets -{plain(name)} to {why}"
        return None

    @staticmethod
    def _foreign_value(name: str, value: Any, domains: set[str], allowed: dict[str, set[str]],
                       recorded: dict[str, set[str]]) -> str | None:
        if name.casefold() == "identity":
            return None  # the executor's to check (identities)
        values = value if isinstance(value, (list, tuple)) else (value,)
        for item in values:
            if item is None or isinstance(item, bool):
                continue
            text = str(item)
            kind, colon, rest = text.partition(":")
            if colon and kind.casefold() == "x500":
                continue
            address = rest if colon and kind.casefold() in ("smtp", "sip", "eum") else text
            if "@" in address:
                if address.rpartition("@")[2].split(";")[0].casefold() not in domains:
                    return f"{plain(text)}, an address outside the customers' domains"
                continue
            folded = name.casefold()
            if folded in allowed and text.casefold() not in allowed[folded] | recorded.get(folded, set()):
                return f"{plain(text)}, which none of the customers of this job is given"
        return None

    async def perform(self, step: Step) -> dict[str, Any] | None:
        for data in (step.request or {}).get("cmdlets", ()):
            await self.endpoint.run(Cmdlet.from_json(data))
        return None

    async def undo(self, step: Step, result: dict[str, Any] | None) -> None:
        for data in (step.undo_request or {}).get("cmdlets", ()):
            await self.endpoint.run(Cmdlet.from_json(data))


@functools.cache
def _counting_wsman() -> type:
    """pypsrp's WSMan, counting the requests it sends (the round trips, for the bench) and
    sending them through the endpoint's ``transport`` when it has one (a class made on
    first use: pypsrp is imported then)."""
    from pypsrp.wsman import WSMan

    class CountingWSMan(WSMan):
        def __init__(self, endpoint: PowerShellEndpoint, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._endpoint = endpoint
            if endpoint._transport is not None:
                # pypsrp's own session (headers, authentication, proxies off), the
                # network replaced by the transport for both schemes
                session = self.transport._build_session()
                session.mount("https://", endpoint._transport)
                session.mount("http://", endpoint._transport)
                self.transport.session = session

        def invoke(self, *args: Any, **kwargs: Any) -> Any:
            self._endpoint.round_trips += 1
            return super().invoke(*args, **kwargs)

    return CountingWSMan
