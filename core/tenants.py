"""The tenant map: each customer's identity for every service, as the SP configured it.

A tenant's admins can edit their customer OU (its description, its ``uPNSuffixes``) and
their users' ``mail``, so nothing read from inside a tenant may decide which service
tenant, address book or domain Tenantry acts on. The SP's configuration maps each
customer, keyed by what those admins cannot change (the OU's objectGUID, or its DN), to
its code, its domains and one settings table per service::

    [tenants."OU=Contoso,OU=Hosting,DC=example,DC=net"]
    code = "C0012"
    domains = ["contoso.example"]
    [tenants."OU=Contoso,OU=Hosting,DC=example,DC=net".blackberry]
    tenant_guid = "S12345678"

A customer with no entry has no code and no usable domain; a job that needs them is
refused in preflight, naming the customer (:func:`problems_of`), never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from core.errors import ConfigError
from core.plan import TENANT, Problem
from core.text import plain

if TYPE_CHECKING:
    from core.model import Customer

GUID = re.compile(r"^\{?([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})\}?$")
DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")

# The per-tenant settings each adapter reads from its table (``[tenants."…".<service>]``).
# Anything else there is refused at load, so a typo cannot silently fall back to a default.
TENANT_SETTINGS: dict[str, frozenset[str]] = {
    # the customer's own UEM: its server, tenant GUID (SRP ID) and login (core.services.uem_client)
    "blackberry": frozenset(
        {"url", "tenant_guid", "provider", "username", "domain", "password_env", "password_file",
         "client_id", "client_secret_env", "client_secret_file", "oauth_endpoint", "ca_file"}
    ),
    "exchange": frozenset(),
    # the customer's address book in Exchange (else the [services.<key>] templates over its code)
    "exchange_powershell": frozenset({"address_book_policy", "offline_address_book", "custom_attribute1", "database"}),
    "ocs": frozenset(),
    # the pool the customer's users are homed on; its hosting tenant id and address-book grouping id
    "lync_powershell": frozenset({"registrar_pool", "tenant_id", "grouping_id"}),
    "group": frozenset(),
    "http": frozenset(),
}
# Settings that identify the customer in that service: two customers may not share one.
UNIQUE_SETTINGS = frozenset({"tenant_guid", "tenant_id", "grouping_id"})
# A secret is named by an environment variable or a file, never written in the config.
_SECRET = re.compile(r"password|secret|token|credential|api_?key", re.IGNORECASE)
_SECRET_REFERENCE = ("_env", "_file")


def dn_key(dn: str) -> tuple[tuple[str, str], ...] | None:
    # Imported here: core.directory imports core.config, which imports this module.
    from core.escape import dn_key_or_none

    return dn_key_or_none(dn)


@dataclass(frozen=True)
class Tenant:
    """One customer's identity for every service, from the SP's configuration."""

    key: str  # the config key: an objectGUID (lower case, no braces) or a normalised DN
    code: str | None = None  # the customer code: address-book value, sAMAccountName suffix
    domains: tuple[str, ...] = ()  # the domains the SP assigned (the first is the default)
    services: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # service key → settings

    @property
    def by_guid(self) -> bool:
        return GUID.match(self.key) is not None

    def service(self, key: str) -> Mapping[str, Any] | None:
        return self.services.get(key)


class TenantMap:
    """The configured tenants, found by a customer's objectGUID, else by its DN."""

    def __init__(self, tenants: Iterable[Tenant] = ()):
        self._tenants = tuple(tenants)
        self._by_guid = {t.key: t for t in self._tenants if t.by_guid}
        self._by_dn = {dn_key(t.key): t for t in self._tenants if not t.by_guid}  # keys parsed at load

    def __len__(self) -> int:
        return len(self._tenants)

    def __iter__(self) -> Iterator[Tenant]:
        """Every tenant (the demo points each one's UEM at its own in-process server)."""
        return iter(self._tenants)

    def get(self, key: str) -> Tenant | None:
        """The tenant of a config key (a journaled UEM step names its tenant so)."""
        return next((t for t in self._tenants if t.key == key), None)

    def for_customer(self, customer: Customer) -> Tenant | None:
        if customer.guid and (tenant := self._by_guid.get(customer.guid.lower())):
            return tenant
        key = dn_key(customer.dn)
        return self._by_dn.get(key) if key else None

    def owner_of_domain(self, domain: str) -> Tenant | None:
        folded = domain.casefold()
        return next((t for t in self._tenants if folded in t.domains), None)

    def owner_of_code(self, code: str) -> Tenant | None:
        folded = code.casefold()
        return next((t for t in self._tenants if t.code and t.code.casefold() == folded), None)


def problems_of(customer: Customer, tenants: TenantMap) -> list[Problem]:
    """Why ``customer`` cannot take part in a job, as far as the tenant map goes.

    No entry in the map; or the directory claims for it a domain or a code the SP
    assigned to another customer (its admins can edit ``uPNSuffixes`` and the code
    attribute, so such a claim is an attempt on another tenant, or a mistake)."""
    name = plain(customer.name)
    tenant = tenants.for_customer(customer)
    if tenant is None:
        return [Problem(TENANT, f"{name} has no entry in the [tenants] configuration, so its code, domains and service tenants are unknown.")]
    out = []
    for domain in customer.claimed_domains:
        owner = tenants.owner_of_domain(domain)
        if owner is not None and owner is not tenant:
            out.append(Problem(TENANT, f"{name} claims the domain {plain(domain)} in the directory, which the configuration assigns to another customer."))
    claimed = customer.claimed_code
    if claimed and (owner := tenants.owner_of_code(claimed)) is not None and owner is not tenant:
        out.append(Problem(TENANT, f"{name} claims the code {plain(claimed)} in the directory, which the configuration assigns to another customer."))
    return out


# -- reading [tenants] -----------------------------------------------------------------
def parse_tenants(raw: Any, where: str, services: Mapping[str, str], hosting_dn: str | None = None) -> TenantMap:
    """``[tenants]`` of the configuration; ``services`` maps each service key to its adapter;
    a DN key must lie below ``hosting_dn`` (if given), where customers are.

    Every fault raises :class:`ConfigError` naming the key: an unknown key, a malformed
    GUID/DN/code/domain, a code or domain given to two customers, two entries for one
    customer, an inline secret.
    """
    if raw is None:
        return TenantMap()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: tenants must be a table of customers keyed by objectGUID or DN.")
    tenants: list[Tenant] = []
    keys: dict[Any, str] = {}
    codes: dict[str, str] = {}
    domains: dict[str, str] = {}
    identities: dict[tuple[str, str, str], str] = {}  # (service, setting, value) → tenant key
    hosting = dn_key(hosting_dn) if hosting_dn else None
    for key, entry in raw.items():
        name = f'tenants."{key}"'
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: {name} must be a table.")
        normalised, identity = _tenant_key(key, where, name)
        if hosting and isinstance(identity, tuple) and (len(identity) <= len(hosting) or identity[-len(hosting):] != hosting):
            raise ConfigError(f"{where}: {name} is not below the hosting OU {hosting_dn}, so it can never be a customer.")
        if identity in keys:
            raise ConfigError(f"{where}: {name} names the same customer as tenants.\"{keys[identity]}\".")
        keys[identity] = key
        unknown = [k for k in entry if k not in ("code", "domains") and k not in services]
        if unknown:
            raise ConfigError(
                f"{where}: unknown key {name}.{unknown[0]} (expected code, domains or a configured service: {', '.join(services) or 'none'})."
            )
        code = entry.get("code")
        if code is not None:
            if not isinstance(code, str) or not CODE.match(code):
                raise ConfigError(f"{where}: {name}.code must be a short code of letters, digits, '-' or '_', not {code!r}.")
            if code.casefold() in codes:
                raise ConfigError(f"{where}: {name}.code {code} is also the code of tenants.\"{codes[code.casefold()]}\"; codes must be unique.")
            codes[code.casefold()] = key
        listed = entry.get("domains", [])
        if not isinstance(listed, list) or not all(isinstance(d, str) for d in listed):
            raise ConfigError(f"{where}: {name}.domains must be a list of domain names.")
        folded: list[str] = []
        for domain in listed:
            value = domain.strip().casefold()
            if not DOMAIN.match(value):
                raise ConfigError(f"{where}: {name}.domains lists {domain!r}, which is not a domain name.")
            if value in domains:
                raise ConfigError(f"{where}: {name}.domains lists {value}, which tenants.\"{domains[value]}\" lists too; a domain belongs to one customer.")
            domains[value] = key
            folded.append(value)
        settings = {service: _settings(entry[service], where, f"{name}.{service}", services[service]) for service in entry if service in services}
        for service, table in settings.items():
            for setting in UNIQUE_SETTINGS & set(table):
                value = table[setting]
                other = identities.setdefault((service, setting, value.casefold()), key)
                if other != key:
                    raise ConfigError(f"{where}: {name}.{service}.{setting} {value} is also the {setting} of tenants.\"{other}\"; it must be unique.")
        tenants.append(Tenant(normalised, code, tuple(folded), settings))
    return TenantMap(tenants)


def _tenant_key(key: str, where: str, name: str) -> tuple[str, Any]:
    guid = GUID.match(key.strip())
    if guid:
        value = guid.group(1).lower()
        return value, value
    parts = dn_key(key)
    if not parts:
        raise ConfigError(f"{where}: {name} must be a customer OU's objectGUID or its DN.")
    from core.escape import rdn, split_dn

    return ",".join(rdn(attr.upper(), value) for attr, value in split_dn(key)), parts


def _settings(raw: Any, where: str, name: str, adapter: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: {name} must be a table of that service's settings for this customer.")
    allowed = TENANT_SETTINGS.get(adapter, frozenset())
    for key, value in raw.items():
        if _SECRET.search(key) and not key.endswith(_SECRET_REFERENCE):
            raise ConfigError(f"{where}: {name}.{key} is not allowed: name a secret with {key}_env or {key}_file, never inline.")
        if key not in allowed:
            expected = ", ".join(sorted(allowed)) or "nothing per customer"
            raise ConfigError(f"{where}: unknown key {name}.{key} (the {adapter} adapter takes {expected}).")
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: {name}.{key} must be a non-empty string.")
    return dict(raw)
