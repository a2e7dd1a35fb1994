"""The domain: immutable values read from the directory or the configuration."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServicePlan:
    """A plan of a service, e.g. Hosted Exchange "Premium 50 GB"."""

    service: str  # the configured service key
    name: str


@dataclass(frozen=True)
class Service:
    """A service the platform sells, as configured (its key, adapter and plans)."""

    key: str
    display_name: str
    adapter: str
    movable: bool
    plans: tuple[str, ...] = ()


@dataclass(frozen=True)
class Reseller:
    name: str
    dn: str


@dataclass(frozen=True)
class Customer:
    """A tenant: an OU marked as customer, with its domains and provisioned services.

    ``code`` and ``domains`` are what the SP's tenant map (``[tenants]``) assigns to it,
    never what the OU says; ``claimed_domains`` / ``claimed_code`` are the OU's own values
    (which the tenant's admins can edit), kept to refuse claims on another tenant's."""

    name: str
    dn: str
    reseller: str | None = None
    reseller_dn: str | None = None
    domains: tuple[str, ...] = ()  # usable domains (the first is the default), from the tenant map
    code: str | None = None  # from the tenant map
    services: tuple[str, ...] = ()  # service keys provisioned to this customer
    plans: tuple[ServicePlan, ...] = ()  # plans offered, per service
    roles: tuple[str, ...] = ()  # role group names present
    guid: str | None = field(default=None, compare=False)  # the OU's objectGUID: survives renames and moves
    claimed_domains: tuple[str, ...] = ()  # the OU's domains attribute (uPNSuffixes)
    claimed_code: str | None = None  # the OU's code attribute (description)

    @property
    def default_domain(self) -> str | None:
        return self.domains[0] if self.domains else None

    def owns_domain(self, domain: str) -> bool:
        return domain.casefold() in {d.casefold() for d in self.domains}


@dataclass(frozen=True)
class User:
    """A user account with what the console shows and the core plans with."""

    dn: str
    cn: str
    sam: str
    upn: str | None
    display_name: str | None = None
    first: str | None = None
    last: str | None = None
    email: str | None = None
    enabled: bool = True
    customer_dn: str | None = None
    services: tuple[str, ...] = ()
    plans: tuple[ServicePlan, ...] = ()
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()  # DNs of every group the user is a direct member of
    proxy_addresses: tuple[str, ...] = ()
    sip: str | None = None
    guid: str | None = None
    usn_changed: str | None = None  # this DC's own counter: shown, never compared across DCs
    version: str | None = None  # digest of the replicated values read: detects a change between read and write
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = field(default=(), compare=False)

    def attribute(self, name: str) -> tuple[str, ...]:
        lowered = name.lower()
        for key, values in self.attributes:
            if key.lower() == lowered:
                return values
        return ()


@dataclass(frozen=True)
class Rights:
    """What an operator may do, from nested group membership."""

    sp_admin: bool = False
    reseller_dns: frozenset[str] = frozenset()
    user_admin_customer_dns: frozenset[str] = frozenset()
    readonly: bool = False
    customer_roles: frozenset[tuple[str, str]] = frozenset()  # (customer DN, role name) the operator holds

    @property
    def summary(self) -> str:
        if self.sp_admin:
            return "service provider administrator"
        if self.reseller_dns:
            return "reseller administrator"
        if self.user_admin_customer_dns:
            return "customer user administrator"
        return "read-only operator"


@dataclass(frozen=True)
class Operator:
    """The person at the keyboard: who they are, whom they bound as, their rights."""

    name: str
    dn: str
    bound_as: str
    rights: Rights
