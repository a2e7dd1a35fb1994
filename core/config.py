"""Configuration: read from TOML, typed and validated at load.

The file is found from ``--config PATH``, else ``$TENANTRY_CONFIG``, else
``$XDG_CONFIG_HOME/tenantry/config.toml`` (``~/.config/tenantry/config.toml``).
Every error names the file, the key and what is wrong, in one sentence.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

import tomli
from ldap3.core.exceptions import LDAPInvalidDnError
from ldap3.utils.dn import parse_dn

from core.audit_shipping import SyslogTarget
from core.errors import ConfigError, UsageError
from core.mapping import Formats
from core.model import Customer, Service
from core.tenants import TenantMap, parse_tenants

ADAPTERS = ("exchange", "exchange_powershell", "ocs", "lync_powershell", "blackberry", "group", "http")
MAIL_ADAPTERS = frozenset({"exchange", "exchange_powershell"})  # a user of these has an email address
SIP_ADAPTERS = frozenset({"ocs", "lync_powershell"})  # … and of these a SIP URI
AUTHS = ("simple", "kerberos")
PROOFS = ("password", "kerberos")


@dataclass(frozen=True)
class DirectoryConfig:
    urls: tuple[str, ...]
    base_dn: str
    hosting_ou: str = "OU=Hosting"
    write_url: str | None = None  # the DC jobs are pinned to while it answers (else the PDC emulator, else the first of urls that does)
    # Global Catalog servers (port 3268, or 3269 for LDAPS), tried in order: where set, the
    # forest-wide values (UPN, addresses, SIP URI, username) are checked for uniqueness there too.
    gc_urls: tuple[str, ...] = ()
    # Seconds a resume or rollback waits for another DC to hold a job's writes when the
    # job's DC does not answer (after asking it to pull them); 0: no wait, no request.
    replication_wait: float = 30.0
    bind_user: str = ""
    password_env: str | None = None
    password_file: Path | None = None
    # "simple": bind_user and its password; "kerberos": SASL/GSSAPI from the operator's
    # own ticket cache (kinit), no bind_user, no password.
    auth: str = "simple"
    # bind_user is an account several people share: an `operator` may then act through it,
    # once that operator has proved who they are (operator_proof).
    service_account: bool = False
    operator: str | None = None
    operator_proof: str = "password"  # "password": the operator's own bind first; "kerberos": their ticket
    operator_password_env: str | None = None  # else asked on the terminal
    kerberos_host: str | None = None  # the DC's host name in its ldap/ SPN, if not the URL's host
    ca_file: Path | None = None
    tls_verify: bool = True
    start_tls: bool = True  # for ldap:// URLs; ldaps:// is TLS from the start
    allow_cleartext_bind: bool = False  # lab only: bind over ldap:// without StartTLS
    connect_timeout: float = 5.0
    receive_timeout: float = 15.0
    pool_size: int = 3
    page_size: int = 500

    @property
    def hosting_dn(self) -> str:
        return f"{self.hosting_ou},{self.base_dn}"

    @property
    def cleartext(self) -> bool:
        """Whether some URL binds without TLS (ldap:// with start_tls = false)."""
        return not self.start_tls and any(url.lower().startswith("ldap://") for url in (*self.urls, *self.gc_urls))

    @property
    def insecure(self) -> tuple[str, ...]:
        """The insecure settings in force, as short labels the console keeps on show."""
        labels = []
        if self.cleartext:
            labels.append("CLEAR-TEXT BIND")
        if not self.tls_verify:
            labels.append("TLS NOT VERIFIED")
        return tuple(labels)


DEFAULT_ROLE_ORDER: tuple[str, ...] = (
    "Customer Administrator", "Service Administrator", "User Administrator", "Partial User Administrator",
)
OUTSIDE_GROUPS = ("keep", "leave")


@dataclass(frozen=True)
class LayoutConfig:
    """Names and markers of the hosting layout (PRODUCT §1)."""

    marker_attribute: str = "businessCategory"
    reseller_marker: str = "reseller"
    customer_marker: str = "customer"
    domains_attribute: str = "uPNSuffixes"
    code_attribute: str = "description"
    users_ou: str = "OU=Users"
    roles_ou: str = "OU=Roles"
    services_ou: str = "OU=Services"
    sp_admins_group: str = "CN=Service Provider Administrators"
    readonly_group: str = "CN=Tenantry Read Only"
    reseller_admins_group: str = "CN=Reseller Administrators"
    user_admin_role: str = "User Administrator"
    plan_group_format: str = "{service} - {plan}"
    address_book_attribute: str = "extensionAttribute1"
    # Security roles, highest first: a customer's administrator may grant (by a copy) only
    # the roles below their own highest one; a role not listed only SP and reseller
    # administrators may grant.
    role_order: tuple[str, ...] = DEFAULT_ROLE_ORDER
    # A moved user's groups outside every customer (platform-wide ones): "keep" or "leave".
    outside_groups: str = "keep"


@dataclass(frozen=True)
class ConsoleConfig:
    readonly: bool = False
    low_bandwidth: bool = False
    animations: bool = False
    bulk_concurrency: int = 4  # users a bulk move started from the console moves at once
    theme: str = "textual-dark"  # until the admin picks another in the console (then remembered)
    keymap: dict[str, str] = field(default_factory=dict)  # binding id → keys, e.g. "users.move" = "v"
    users_cap: int = 50_000  # a customer with more users is searched on the server, not indexed
    refresh_seconds: float = 30.0  # how often the local indexes ask the DC whether anything changed


@dataclass(frozen=True)
class AuditConfig:
    """``[audit]``: ship every entry to syslog as it is written (core/audit_shipping.py)."""

    syslog: bool = False
    syslog_address: str = "/dev/log"  # a socket path, or host:port (UDP)
    syslog_facility: str = "authpriv"


# What a copied user takes over from its template (PRODUCT §3): the common attributes
# of the organisation, never the person's identity. ``[mapping] copy_attributes``.
DEFAULT_COPY_ATTRIBUTES: tuple[str, ...] = (
    "department", "company", "title", "physicalDeliveryOfficeName", "streetAddress", "postOfficeBox",
    "l", "st", "postalCode", "c", "co", "countryCode", "manager", "facsimileTelephoneNumber", "wWWHomePage",
)
# Phone numbers of which only the prefix is copied: the number without its last group
# of digits (the extension), e.g. "+44 20 7946 0123" → "+44 20 7946". A number
# without a separator is not copied. ``[mapping] copy_phone_prefixes``.
DEFAULT_COPY_PHONE_PREFIXES: tuple[str, ...] = ("telephoneNumber",)
# Never copied, whatever the configuration says (a ConfigError names the first one
# found): a person's identity and credentials …
IDENTITY_ATTRIBUTES = frozenset(a.casefold() for a in (
    "cn", "name", "displayName", "givenName", "sn", "initials", "middleName", "sAMAccountName",
    "userPrincipalName", "mail", "proxyAddresses", "mailNickname", "legacyExchangeDN", "targetAddress",
    "msRTCSIP-PrimaryUserAddress", "msRTCSIP-Line", "objectSid", "sIDHistory", "objectGUID",
    "unicodePwd", "userPassword", "dBCSPwd", "ntPwdHistory", "lmPwdHistory", "supplementalCredentials",
    "homeDirectory", "homeDrive", "profilePath", "employeeID", "employeeNumber", "altSecurityIdentities",
    "userCertificate", "userSMIMECertificate", "thumbnailPhoto", "jpegPhoto", "msExchMailboxGuid",
))
# … and what Tenantry or the directory itself sets on a new account.
MANAGED_ATTRIBUTES = frozenset(a.casefold() for a in (
    "objectClass", "objectCategory", "distinguishedName", "memberOf", "member", "directReports",
    "userAccountControl", "pwdLastSet", "accountExpires", "lockoutTime", "badPwdCount", "logonCount",
    "lastLogon", "lastLogonTimestamp", "primaryGroupID", "sAMAccountType", "instanceType",
    "uSNChanged", "uSNCreated", "whenChanged", "whenCreated", "nTSecurityDescriptor",
    "msRTCSIP-UserEnabled", "adminCount",
))


@dataclass(frozen=True)
class MappingConfig:
    """Formats of new UPNs, emails, SIP URIs and usernames; per customer if configured;
    and what a copy takes over from its template."""

    default: Formats = Formats()
    customers: dict[str, Formats] = field(default_factory=dict)  # by customer name or code
    copy_attributes: tuple[str, ...] = DEFAULT_COPY_ATTRIBUTES
    copy_phone_prefixes: tuple[str, ...] = DEFAULT_COPY_PHONE_PREFIXES

    def formats_for(self, customer: Customer) -> Formats:
        for key in (customer.name, customer.code):
            if key and key in self.customers:
                return self.customers[key]
        return self.default


@dataclass(frozen=True)
class ServiceConfig:
    service: Service
    options: dict[str, Any] = field(default_factory=dict)  # adapter settings (url, auth, …)


@dataclass(frozen=True)
class Config:
    directory: DirectoryConfig
    layout: LayoutConfig = LayoutConfig()
    console: ConsoleConfig = ConsoleConfig()
    services: dict[str, ServiceConfig] = field(default_factory=dict)
    mapping: MappingConfig = MappingConfig()
    source: Path | None = None
    tenants: TenantMap = field(default_factory=TenantMap)  # [tenants]: each customer's code, domains, service tenants
    audit: AuditConfig = AuditConfig()

    def service(self, key: str) -> Service | None:
        entry = self.services.get(key)
        return entry.service if entry else None

    def kinds(self, keys: Iterable[str]) -> set[str]:
        """The adapters of the services ``keys`` names: what decides whether a user gets an
        email address or a SIP URI, whatever the services are called (``[services.mail]
        adapter = "exchange"`` is Exchange)."""
        return {entry.service.adapter for key in keys if (entry := self.services.get(key)) is not None}

    def service_by_name(self, display_name: str) -> Service | None:
        folded = display_name.casefold()
        for entry in self.services.values():
            if entry.service.display_name.casefold() == folded:
                return entry.service
        return None


DEFAULT_SERVICES: dict[str, Service] = {
    "exchange": Service("exchange", "Hosted Exchange", "exchange", True, ("Basic 2 GB", "Premium 50 GB")),
    "ocs": Service("ocs", "Office Communications Server", "ocs", True),
    "blackberry": Service("blackberry", "BlackBerry", "blackberry", True, ("Standard", "Enterprise")),
    "sharepoint": Service("sharepoint", "SharePoint", "group", False),
    "crm": Service("crm", "Hosted CRM", "http", False),
}


def default_path(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("TENANTRY_CONFIG"):
        return Path(env["TENANTRY_CONFIG"])
    xdg = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "tenantry" / "config.toml"


def load(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Config:
    """Load and validate the configuration; raise :class:`ConfigError` on any fault."""
    file = Path(path) if path else default_path(environ)
    try:
        raw = tomli.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"The configuration file {file} does not exist (pass --config PATH, set TENANTRY_CONFIG, or use --demo).") from None
    except OSError as error:
        raise ConfigError(f"The configuration file {file} cannot be read: {error.strerror}.") from None
    except (tomli.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{file} is not valid TOML: {error}.") from None
    return parse(raw, source=file)


def parse(raw: dict[str, Any], source: Path | None = None) -> Config:
    """Validate an already-decoded TOML document."""
    where = str(source) if source else "configuration"
    sections = _Table(raw, where, "")
    sections.allow_only({"directory", "layout", "console", "services", "mapping", "tenants", "audit"}, kind="section")
    directory = _directory(sections.table("directory", required=True), where)
    hosting = _dn_parts(directory.hosting_ou)
    if not hosting or any(attribute == "dc" for attribute, _ in hosting):
        raise ConfigError(f"{where}: directory.hosting_ou must be a DN relative to directory.base_dn, such as OU=Hosting, not {directory.hosting_ou!r}.")
    layout = _layout(sections.table("layout"), directory)
    console = _dataclass_from(ConsoleConfig, sections.table("console"), where, "console")
    if console.bulk_concurrency < 1:
        raise sections.table("console").fail("bulk_concurrency", "must be at least 1")
    keymap = sections.table("console").table("keymap")
    for binding_id, keys in console.keymap.items():
        if not isinstance(keys, str) or not keys.strip():
            raise keymap.fail(binding_id, "must be a key or keys separated by commas, e.g. \"v\" or \"v,ctrl+v\"")
    if console.users_cap < 0:
        raise sections.table("console").fail("users_cap", "must be 0 or more")
    if console.refresh_seconds < 1:
        raise sections.table("console").fail("refresh_seconds", "must be at least 1")
    services = _services(sections.table("services"), where)
    mapping = _mapping(sections.table("mapping"))
    tenants = parse_tenants(raw.get("tenants"), where, {key: entry.service.adapter for key, entry in services.items()}, directory.hosting_dn)
    audit = _dataclass_from(AuditConfig, sections.table("audit"), where, "audit")
    SyslogTarget.parse(audit.syslog_address, audit.syslog_facility, where)
    return Config(directory, layout, console, services, mapping, source, tenants, audit)


class _Table:
    """A TOML table with typed accessors whose errors name file, key and fault."""

    def __init__(self, data: dict[str, Any], where: str, prefix: str):
        self.data, self.where, self.prefix = data, where, prefix

    def name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.where}: {self.name(key)} {problem}.")

    def allow_only(self, keys: set[str], kind: str = "key") -> None:
        for key in self.data:
            if key not in keys:
                label = f"[{self.name(key)}]" if kind == "section" else self.name(key)
                raise ConfigError(f"{self.where}: unknown {kind} {label} (expected one of: {', '.join(sorted(keys))}).")

    def table(self, key: str, required: bool = False) -> _Table:
        value = self.data.get(key)
        if value is None:
            if required:
                raise ConfigError(f"{self.where}: the [{self.name(key)}] section is missing.")
            value = {}
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, not {_kind(value)}")
        return _Table(value, self.where, self.name(key))

    def get(self, key: str, expected: type | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        if key not in self.data:
            if required:
                raise ConfigError(f"{self.where}: the required key {self.name(key)} is missing.")
            return default
        value = self.data[key]
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        ok = isinstance(value, expected) and not (isinstance(value, bool) and expected in (int, float))
        if not ok:
            raise self.fail(key, f"must be {_kind_name(expected)}, not {_kind(value)}")
        return value


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def _kind_name(expected: type | tuple[type, ...]) -> str:
    names = {bool: "a boolean (true or false)", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a table"}
    return names.get(expected, str(expected)) if isinstance(expected, type) else "valid"


def _dataclass_from(cls: type, table: _Table, where: str, section: str):
    defaults = cls()
    fields = {name: getattr(defaults, name) for name in cls.__dataclass_fields__}
    table.allow_only(set(fields))
    values = {name: table.get(name, type(default), default) for name, default in fields.items()}
    for name, value in values.items():
        if isinstance(value, str) and not value.strip():
            raise table.fail(name, "must not be empty")
    return cls(**values)


def _dn_parts(value: str) -> list[tuple[str, str]]:
    """``value`` split into (attribute, value) pairs, case-folded; empty if it is no DN."""
    try:
        parts = parse_dn(value, escape=False) if value else []
    except LDAPInvalidDnError:
        return []
    return [(attribute.lower(), part.casefold()) for attribute, part, _sep in parts]


def _layout_dn(table: _Table, layout: LayoutConfig, key: str, example: str) -> list[tuple[str, str]]:
    value = getattr(layout, key)
    parts = _dn_parts(value)
    if not parts:
        raise table.fail(key, f"must be a DN such as {example}, not {value!r}")
    return parts


def _layout(table: _Table, directory: DirectoryConfig) -> LayoutConfig:
    """The ``[layout]`` section; a value that can never match an entry is refused."""
    if "role_order" in table.data:
        roles = table.get("role_order", list)
        if not all(isinstance(r, str) and r.strip() for r in roles):
            raise table.fail("role_order", "must be a list of role names, highest first")
        if len({r.casefold() for r in roles}) != len(roles):
            raise table.fail("role_order", "names a role twice")
    strings = _Table({k: v for k, v in table.data.items() if k != "role_order"}, table.where, table.prefix)
    layout = _dataclass_from(LayoutConfig, strings, table.where, "layout")
    if "role_order" in table.data:
        layout = replace(layout, role_order=tuple(table.data["role_order"]))
    if layout.outside_groups not in OUTSIDE_GROUPS:
        raise table.fail("outside_groups", f"must be one of {', '.join(OUTSIDE_GROUPS)}, not {layout.outside_groups!r}")
    base = _dn_parts(directory.base_dn)
    for key in ("users_ou", "roles_ou", "services_ou", "reseller_admins_group"):
        parts = _layout_dn(table, layout, key, "OU=Users" if key.endswith("_ou") else "CN=Reseller Administrators")
        if any(attribute == "dc" for attribute, _ in parts):
            raise table.fail(key, "must be relative to the customer (or reseller) OU, without DC= parts")
        if key == "reseller_admins_group" and len(parts) != 1:
            raise table.fail(key, "must be one RDN (the group directly below each reseller OU), such as CN=Reseller Administrators")
    seen: dict[tuple, str] = {}
    for key in ("users_ou", "roles_ou", "services_ou"):
        parts = tuple(_layout_dn(table, layout, key, "OU=Users"))
        if parts in seen:
            raise table.fail(key, f"is the same OU as {seen[parts]}: each names its own OU of a customer")
        seen[parts] = key
    for key in ("sp_admins_group", "readonly_group"):
        parts = _layout_dn(table, layout, key, "CN=Service Provider Administrators")
        if parts[-len(base):] == base:
            if len(parts) == len(base):
                raise table.fail(key, f"is the domain root {directory.base_dn}, not a group")
        elif any(attribute == "dc" for attribute, _ in parts):
            raise table.fail(key, f"is outside directory.base_dn ({directory.base_dn}), so no entry can ever match it")
    return layout


def _directory(table: _Table, where: str) -> DirectoryConfig:
    if "password" in table.data:
        raise table.fail("password", "is not allowed: use password_env or password_file")
    table.allow_only(set(DirectoryConfig.__dataclass_fields__))
    urls = table.get("urls", list, required=True)
    if not urls or not all(isinstance(u, str) and u.lower().startswith(("ldap://", "ldaps://")) for u in urls):
        raise table.fail("urls", "must be a non-empty list of ldap:// or ldaps:// URLs")
    gc_urls = table.get("gc_urls", list, [])
    if not all(isinstance(u, str) and u.lower().startswith(("ldap://", "ldaps://")) for u in gc_urls):
        raise table.fail("gc_urls", "must be a list of ldap:// or ldaps:// URLs of Global Catalog servers (ports 3268 / 3269)")
    write_url = table.get("write_url", str)
    if write_url is not None and write_url not in urls:
        raise table.fail("write_url", "must be one of directory.urls")
    base_dn = table.get("base_dn", str, required=True)
    if "=" not in base_dn:
        raise table.fail("base_dn", f"must be a DN such as DC=example,DC=net, not {base_dn!r}")
    password_env = table.get("password_env", str)
    password_file = table.get("password_file", str)
    if password_env and password_file:
        raise table.fail("password_file", "cannot be set together with password_env")
    ca_file = table.get("ca_file", str)
    tls_verify = table.get("tls_verify", bool, True)
    if ca_file and not tls_verify:
        raise table.fail("tls_verify", "cannot be false when ca_file is set")
    if ca_file and not Path(ca_file).expanduser().is_file():
        raise table.fail("ca_file", f"names {ca_file!r}, which is not a file (give the CA that signed the DCs' certificates, or leave it out)")
    numbers = {}
    for key, low in (("connect_timeout", 0.1), ("receive_timeout", 0.1), ("pool_size", 1), ("page_size", 1), ("replication_wait", 0)):
        default = getattr(DirectoryConfig, key)
        value = table.get(key, type(default), default)
        if value < low:
            raise table.fail(key, f"must be at least {low}")
        numbers[key] = value
    identity = _identity(table)
    config = DirectoryConfig(
        urls=tuple(urls),
        base_dn=base_dn,
        write_url=write_url,
        gc_urls=tuple(gc_urls),
        hosting_ou=table.get("hosting_ou", str, "OU=Hosting"),
        password_env=password_env,
        password_file=Path(password_file).expanduser() if password_file else None,
        ca_file=Path(ca_file).expanduser() if ca_file else None,
        tls_verify=tls_verify,
        start_tls=table.get("start_tls", bool, True),
        allow_cleartext_bind=table.get("allow_cleartext_bind", bool, False),
        **identity,
        **numbers,
    )
    if config.cleartext and not config.allow_cleartext_bind:
        raise table.fail("start_tls", "is false with an ldap:// URL, which would send the bind in clear text: use ldaps:// "
                         "or StartTLS, or (in a lab only) set allow_cleartext_bind = true")
    if config.auth == "kerberos" and (password_env or password_file):
        raise table.fail("password_env" if password_env else "password_file", "is not used with auth = \"kerberos\" (the ticket is the credential): remove it")
    return config


def _identity(table: _Table) -> dict[str, Any]:
    """Who binds, and who the operator is: the bound account, unless a shared service
    account acts for an operator who proves who they are (PRODUCT §7)."""
    auth = table.get("auth", str, "simple")
    if auth not in AUTHS:
        raise table.fail("auth", f"must be one of {', '.join(AUTHS)}, not {auth!r}")
    kerberos = auth == "kerberos"
    bind_user = table.get("bind_user", str, "", required=not kerberos)
    service_account = table.get("service_account", bool, False)
    operator = table.get("operator", str)
    proof = table.get("operator_proof", str, "password")
    if proof not in PROOFS:
        raise table.fail("operator_proof", f"must be one of {', '.join(PROOFS)}, not {proof!r}")
    if kerberos and (bind_user or service_account or operator):
        key = "bind_user" if bind_user else "service_account" if service_account else "operator"
        raise table.fail(key, "is not used with auth = \"kerberos\": you bind as the principal of your own ticket")
    if operator and not service_account:
        raise table.fail("operator", f"names {operator!r}, but the operator is the account that binds ({bind_user}); "
                         "naming another is only for a shared account (service_account = true) whose operator proves who they are")
    return {
        "auth": auth,
        "bind_user": bind_user,
        "service_account": service_account,
        "operator": operator,
        "operator_proof": proof,
        "operator_password_env": table.get("operator_password_env", str),
        "kerberos_host": table.get("kerberos_host", str),
    }


def _services(table: _Table, where: str) -> dict[str, ServiceConfig]:
    if not table.data:
        return {key: ServiceConfig(service) for key, service in DEFAULT_SERVICES.items()}
    services: dict[str, ServiceConfig] = {}
    for key in table.data:
        entry = table.table(key)
        display_name = entry.get("display_name", str, required=True)
        adapter = entry.get("adapter", str, required=True)
        if adapter not in ADAPTERS:
            raise entry.fail("adapter", f"must be one of {', '.join(ADAPTERS)}, not {adapter!r}")
        movable = entry.get("movable", bool, adapter in ("exchange", "exchange_powershell", "ocs", "lync_powershell", "blackberry"))
        plans = entry.get("plans", list, [])
        if not all(isinstance(p, str) and p.strip() for p in plans):
            raise entry.fail("plans", "must be a list of plan names")
        options = {k: v for k, v in entry.data.items() if k not in {"display_name", "adapter", "movable", "plans"}}
        if "password" in options or "token" in options:
            raise entry.fail("token" if "token" in options else "password", "is not allowed: use token_env/token_file or password_env/password_file")
        services[key] = ServiceConfig(Service(key, display_name, adapter, movable, tuple(plans)), options)
    return services


def _formats(table: _Table, base: Formats) -> Formats:
    fields = ("upn", "email", "sip", "sam")
    formats = Formats(**{name: table.get(name, str, getattr(base, name)) for name in fields})
    try:
        formats.check(f"{table.where}: [{table.prefix}]")
    except UsageError as error:
        raise ConfigError(str(error)) from None
    return formats


_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
_COPY_KEYS = ("copy_attributes", "copy_phone_prefixes")


def _mapping(table: _Table) -> MappingConfig:
    table.allow_only({"upn", "email", "sip", "sam", "customers", *_COPY_KEYS})
    formats = {k: v for k, v in table.data.items() if k not in ("customers", *_COPY_KEYS)}
    default = _formats(_Table(formats, table.where, table.prefix), Formats())
    customers_table = table.table("customers")
    customers = {}
    for name in customers_table.data:
        entry = customers_table.table(name)
        entry.allow_only({"upn", "email", "sip", "sam"})
        customers[name] = _formats(entry, default)
    copied = {key: _copy_list(table, key, default) for key, default in
              (("copy_attributes", DEFAULT_COPY_ATTRIBUTES), ("copy_phone_prefixes", DEFAULT_COPY_PHONE_PREFIXES))}
    both = {a.casefold() for a in copied["copy_attributes"]} & {a.casefold() for a in copied["copy_phone_prefixes"]}
    if both:
        raise table.fail("copy_phone_prefixes", f"names {sorted(both)[0]}, which copy_attributes copies whole; list it in one of them")
    return MappingConfig(default, customers, copied["copy_attributes"], copied["copy_phone_prefixes"])


def _copy_list(table: _Table, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A list of attribute names a copy takes over; identity and managed attributes refused."""
    values = table.get(key, list, list(default))
    seen: set[str] = set()
    out: list[str] = []
    for value in values:
        if not isinstance(value, str) or not _ATTRIBUTE_NAME.match(value):
            raise table.fail(key, f"must be a list of LDAP attribute names, and {value!r} is not one")
        folded = value.casefold()
        if folded in IDENTITY_ATTRIBUTES:
            raise table.fail(key, f"lists {value}, an identity attribute: a copy never takes over a person's names, addresses, IDs, password or home directory")
        if folded in MANAGED_ATTRIBUTES:
            raise table.fail(key, f"lists {value}, which Tenantry or the directory sets itself on a new account")
        if folded not in seen:
            seen.add(folded)
            out.append(value)
    return tuple(out)


def read_password(config: DirectoryConfig, prompt: Callable[[str], str] | None = None, environ: dict[str, str] | None = None) -> str:
    """The bind password: from the named environment variable, the file, or a prompt."""
    env = os.environ if environ is None else environ
    if config.password_env:
        value = env.get(config.password_env)
        if value:
            return value
        if prompt is None:
            raise ConfigError(f"The environment variable {config.password_env} (directory.password_env) is not set.")
    if config.password_file:
        try:
            value = config.password_file.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as error:
            raise ConfigError(f"The password file {config.password_file} (directory.password_file) cannot be read: {error.strerror}.") from None
        if not value:
            raise ConfigError(f"The password file {config.password_file} (directory.password_file) is empty.")
        return value
    if prompt is None or not sys.stdin.isatty():
        raise ConfigError("No bind password: set directory.password_env or directory.password_file, or run on a terminal to be asked.")
    return prompt(f"Password for {config.bind_user}: ")


def read_operator_password(config: DirectoryConfig, prompt: Callable[[str], str] | None = None,
                           environ: dict[str, str] | None = None) -> str | None:
    """The operator's own password, when a shared account acts for them and they prove
    who they are by it: from ``operator_password_env``, else asked on a terminal; ``None``
    when there is none (the connection then refuses the operator in one sentence)."""
    if not config.operator or config.operator_proof != "password":
        return None
    env = os.environ if environ is None else environ
    if config.operator_password_env and env.get(config.operator_password_env):
        return env[config.operator_password_env]
    if prompt is None or not sys.stdin.isatty():
        return None
    return prompt(f"Password of the operator {config.operator} (to prove who you are): ") or None
