"""The hosting layout: where things live, how to find them, and entry → model."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import replace
from typing import TYPE_CHECKING, Iterable, Mapping

from core.config import Config
from core.escape import dn_key, dn_key_or_none, filter_value, parent_dn, rdn_value, same_dn, split_dn
from core.directory.ops import Entry
from core.model import Customer, Reseller, ServicePlan, User
from core.text import plain

if TYPE_CHECKING:
    from core.tenants import Tenant

UAC_DISABLED = 0x2
# Kept by each DC for itself, never replicated: they differ between DCs for one object.
PER_DC_ATTRIBUTES = frozenset({"usnchanged", "usncreated", "whenchanged", "dscorepropagationdata"})
# Links to another object that the DC shows at that object's current DN: its move to
# another OU (another row of the same bulk move, say) or its rename rewrites them without
# anyone writing to this user, so the version sees the object they point to — by its
# objectGUID where it was read, else by the name they point to.
FOLLOWING_LINKS = frozenset({"manager"})

USER_LIST_ATTRIBUTES = [
    "cn", "displayName", "givenName", "sn", "sAMAccountName", "userPrincipalName", "mail",
    "userAccountControl", "memberOf", "uSNChanged", "msRTCSIP-PrimaryUserAddress",
]
EXCHANGE_ATTRIBUTES = ["proxyAddresses", "mailNickname", "legacyExchangeDN"]
OCS_ATTRIBUTES = ["msRTCSIP-PrimaryUserAddress", "msRTCSIP-UserEnabled", "msRTCSIP-PrimaryHomeServer", "msRTCSIP-OptionFlags",
                  "msRTCSIP-TenantId", "msRTCSIP-GroupingID"]
COMMON_ATTRIBUTES = [
    "description", "department", "company", "title", "physicalDeliveryOfficeName", "telephoneNumber",
    "mobile", "facsimileTelephoneNumber", "streetAddress", "l", "st", "postalCode", "c", "co", "manager",
]


def is_below(dn: str, ancestor: str) -> bool:
    """Whether ``dn`` is strictly below ``ancestor`` (at any depth)."""
    key, above = dn_key(dn), dn_key(ancestor)
    return len(key) > len(above) and key[-len(above):] == above


def _strip_container(dn: str, container: str, depth: int) -> str | None:
    """``<rdn>,<container>,<rest>`` → ``<rest>`` (as the server spelled it); else ``None``."""
    key = dn_key(dn)
    if len(key) <= depth + 1 or key[1:depth + 1] != dn_key(container):
        return None
    for _ in range(depth + 1):
        dn = parent_dn(dn)
    return dn


class Layout:
    def __init__(self, config: Config):
        self.config = config
        self.names = config.layout
        self.hosting_dn = config.directory.hosting_dn
        self.base_dn = config.directory.base_dn
        self.sp_admins_dn = self._operator_group(self.names.sp_admins_group)
        self.readonly_dn = self._operator_group(self.names.readonly_group)
        self._users_depth = len(split_dn(self.names.users_ou))
        self._roles_depth = len(split_dn(self.names.roles_ou))
        self._plan_pattern = re.compile(
            "^" + re.escape(self.names.plan_group_format)
            .replace(re.escape("{service}"), "(?P<service>.+?)")
            .replace(re.escape("{plan}"), "(?P<plan>.+)") + "$"
        )
        self.user_list_attributes = list(USER_LIST_ATTRIBUTES)
        self.user_detail_attributes = sorted(
            {*USER_LIST_ATTRIBUTES, *EXCHANGE_ATTRIBUTES, *OCS_ATTRIBUTES, *COMMON_ATTRIBUTES,
             self.names.address_book_attribute, "objectGUID", "whenChanged", "objectClass"}
        )

    # -- where things are ---------------------------------------------------
    def users_dn(self, customer_dn: str) -> str:
        return f"{self.names.users_ou},{customer_dn}"

    def roles_dn(self, customer_dn: str) -> str:
        return f"{self.names.roles_ou},{customer_dn}"

    def services_dn(self, customer_dn: str) -> str:
        return f"{self.names.services_ou},{customer_dn}"

    def _operator_group(self, value: str) -> str:
        """An operator group named in the configuration: a full DN below base_dn as it
        is, anything else relative to the hosting OU."""
        under_base = is_below(value, self.base_dn)
        return value if under_base else f"{value},{self.hosting_dn}"

    def customer_of(self, user_dn: str) -> str | None:
        """The customer DN of a user DN (``CN=…,<users_ou>,<customer>``, however many
        levels ``users_ou`` has); ``None`` if the entry is not directly in a users OU."""
        return _strip_container(user_dn, self.names.users_ou, self._users_depth)

    def customer_of_role(self, group_dn: str) -> str | None:
        """The customer DN of a role group (``CN=…,<roles_ou>,<customer>``); else ``None``."""
        return _strip_container(group_dn, self.names.roles_ou, self._roles_depth)

    def not_a_customer_user(self, entry: Entry) -> str | None:
        """Why ``entry`` cannot be moved or copied as a user (``None``: it can): it must be
        a user account (not a computer, group or contact) directly in a customer's users OU
        below the hosting OU. Whether that OU's parent is marked as a customer is
        :meth:`Directory.customer_at`'s to check."""
        classes = {c.casefold() for c in entry.get("objectClass")}
        if "user" not in classes or "computer" in classes:
            kind = next((k for k in ("computer", "group", "contact") if k in classes), None)
            what = f"a {kind}, not a user account" if kind else "not a user account"
            return f"{plain(entry.dn)} is {what}: only users can be moved or copied."
        customer = self.customer_of(entry.dn)
        if customer is None or not is_below(customer, self.hosting_dn):
            return f"{plain(entry.dn)} is not in a customer's {self.names.users_ou} OU below {self.hosting_dn}: only customers' users can be moved or copied."
        return None

    # -- filters ------------------------------------------------------------
    def marked(self, marker: str) -> str:
        return f"(&(objectClass=organizationalUnit)({self.names.marker_attribute}={filter_value(marker)}))"

    def customer_filter(self, text: str | None = None) -> str:
        base = self.marked(self.names.customer_marker)
        if not text:
            return base
        value = filter_value(text)
        return f"(&{base}(|(ou=*{value}*)({self.names.domains_attribute}=*{value}*)))"

    def customer_name_filter(self, name: str) -> str:
        return f"(&{self.marked(self.names.customer_marker)}(ou={filter_value(name)}))"

    def customer_prefix_filter(self, text: str) -> str:
        """Customers whose name starts with ``text`` (served by the ``ou`` index)."""
        return f"(&{self.marked(self.names.customer_marker)}(ou={filter_value(text)}*))"

    def customer_domain_filter(self, domain: str) -> str:
        return f"(&{self.marked(self.names.customer_marker)}({self.names.domains_attribute}={filter_value(domain)}))"

    def customer_tenant_filter(self, tenant: Tenant) -> tuple[str, str, str]:
        """Where and how to find the customer OU a tenant map entry names: ``(base, filter, scope)``."""
        marked = self.marked(self.names.customer_marker)
        if tenant.by_guid:
            return self.hosting_dn, f"(&{marked}{self.guid_filter(tenant.key)})", "sub"
        return tenant.key, marked, "base"

    @staticmethod
    def guid_filter(guid: str) -> str:
        """``(objectGUID=…)`` for a GUID in its text form (a binary value, escaped byte by byte);
        ValueError if ``guid`` is not one."""
        return "(objectGUID=" + "".join(f"\\{b:02x}" for b in uuid.UUID(guid.strip()).bytes_le) + ")"

    @staticmethod
    def user_filter(text: str | None = None) -> str:
        base = "(&(objectClass=user)(!(objectClass=computer)))"
        if not text:
            return base
        value = filter_value(text)
        matches = "".join(f"({a}=*{value}*)" for a in ("displayName", "userPrincipalName", "mail", "sAMAccountName"))
        return f"(&{base}(|{matches}))"

    @staticmethod
    def user_address_filter(address: str) -> str:
        """Users holding ``address`` as their mail or one of their SMTP addresses (both
        indexed equality; ``smtp:`` matches the primary ``SMTP:`` too)."""
        value = filter_value(address)
        return f"(&(objectClass=user)(|(mail={value})(proxyAddresses=smtp:{value})))"

    @staticmethod
    def user_identity_filter(identity: str) -> str:
        value = filter_value(identity)
        attr = "userPrincipalName" if "@" in identity else "sAMAccountName"
        return f"(&(objectClass=user)({attr}={value}))"

    # -- entry → model ------------------------------------------------------
    def reseller_from(self, entry: Entry) -> Reseller:
        return Reseller(entry.first("ou") or rdn_value(entry.dn), entry.dn)

    @property
    def customer_attributes(self) -> list[str]:
        """What is read of a customer OU (its objectGUID keys the tenant map)."""
        return ["ou", "objectGUID", self.names.domains_attribute, self.names.code_attribute]

    def customer_from(self, entry: Entry, groups: Iterable[str] = ()) -> Customer:
        """The customer an OU entry is; its code and domains from the tenant map only."""
        parent = parent_dn(entry.dn)
        is_direct = same_dn(parent, self.hosting_dn)
        services, plans, roles = self.classify_groups(entry.dn, groups)
        customer = Customer(
            name=entry.first("ou") or rdn_value(entry.dn),
            dn=entry.dn,
            reseller=None if is_direct else rdn_value(parent),
            reseller_dn=None if is_direct else parent,
            services=services,
            plans=plans,
            roles=roles,
            guid=entry.first("objectGUID"),
            claimed_domains=tuple(entry.get(self.names.domains_attribute)),
            claimed_code=entry.first(self.names.code_attribute),
        )
        return self.with_tenant(customer)

    def with_tenant(self, customer: Customer) -> Customer:
        """``customer`` with its code and usable domains from the tenant map (none when unmapped)."""
        tenant = self.config.tenants.for_customer(customer)
        if tenant is None:
            return replace(customer, code=None, domains=())
        return replace(customer, code=tenant.code, domains=tenant.domains)

    def service_group_names(self) -> list[str]:
        """The CN of every configured service group and plan group."""
        names: list[str] = []
        for configured in self.config.services.values():
            service = configured.service
            names.append(service.display_name)
            names.extend(self.names.plan_group_format.format(service=service.display_name, plan=p) for p in service.plans)
        return names

    def service_groups_filter(self, since_usn: int | None = None) -> str:
        """The configured service and plan groups (equality on ``cn``: indexed), changed
        since ``since_usn`` if given."""
        names = "".join(f"(cn={filter_value(n)})" for n in self.service_group_names())
        changed = f"(uSNChanged>={int(since_usn)})" if since_usn is not None else ""
        return f"(&(objectClass=group){changed}(|{names}))"

    @staticmethod
    def user_searched(user: User) -> tuple[str | None, ...]:
        """What a search for users matches, locally as :meth:`user_filter` on the DC."""
        return (user.display_name, user.upn, user.email, user.sam)

    def changed_customers_filter(self, since_usn: int) -> str:
        return self.changed_since(self.marked(self.names.customer_marker), since_usn)

    @staticmethod
    def changed_since(search_filter: str, since_usn: int) -> str:
        """``search_filter``, for the entries this DC changed at ``since_usn`` or later."""
        return f"(&{search_filter}(uSNChanged>={int(since_usn)}))"

    def classify_groups(self, customer_dn: str, group_dns: Iterable[str]) -> tuple[tuple[str, ...], tuple[ServicePlan, ...], tuple[str, ...]]:
        """Split group DNs into this customer's services, plans and roles."""
        services_key = dn_key(self.services_dn(customer_dn))
        roles_key = dn_key(self.roles_dn(customer_dn))
        services: list[str] = []
        plans: list[ServicePlan] = []
        roles: list[str] = []
        for group_dn in group_dns:
            parts = dn_key(group_dn)
            name = rdn_value(group_dn)
            if parts[1:] == services_key:
                service = self.config.service_by_name(name)
                if service is not None:
                    services.append(service.key)
                    continue
                plan = self.plan_of_group(name)
                if plan is not None:
                    plans.append(plan)
                else:
                    services.append(name)  # a service the configuration does not know
            elif parts[1:] == roles_key:
                roles.append(name)
        order = {key: index for index, key in enumerate(self.config.services)}

        def by_order(key: str) -> tuple[int, str]:  # the configured order, unknown services last
            return order.get(key, len(order)), key

        return (
            tuple(sorted(set(services), key=by_order)),
            tuple(sorted(set(plans), key=lambda p: (by_order(p.service), p.name))),
            tuple(sorted(set(roles))),
        )

    def plan_of_group(self, group_name: str) -> ServicePlan | None:
        """The plan a group named ``group_name`` stands for, if it is a plan group."""
        match = self._plan_pattern.match(group_name)
        if not match:
            return None
        service = self.config.service_by_name(match["service"])
        return ServicePlan(service.key, match["plan"]) if service else None

    def user_row(self, entry: Entry) -> User:
        """A user as a table row of a local index: without its attribute list or group
        DNs (a third of the memory); a plan reads the user afresh."""
        return replace(self.user_from(entry), groups=(), attributes=())

    def user_from(self, entry: Entry, linked: Mapping[tuple, str] | None = None) -> User:
        """The user ``entry`` holds; ``linked``: the objectGUIDs of the objects its
        following links point to, by DN key (see :func:`replicated_version`)."""
        customer_dn = self.customer_of(entry.dn)
        groups = tuple(entry.get("memberOf"))
        services, plans, roles = self.classify_groups(customer_dn, groups) if customer_dn else ((), (), ())
        uac = entry.first("userAccountControl")
        sip = entry.first("msRTCSIP-PrimaryUserAddress")
        return User(
            dn=entry.dn,
            cn=entry.first("cn") or rdn_value(entry.dn),
            sam=entry.first("sAMAccountName") or "",
            upn=entry.first("userPrincipalName"),
            display_name=entry.first("displayName"),
            first=entry.first("givenName"),
            last=entry.first("sn"),
            email=entry.first("mail"),
            enabled=not (int(uac) & UAC_DISABLED) if uac and uac.lstrip("-").isdigit() else True,
            customer_dn=customer_dn,
            services=services,
            plans=plans,
            roles=roles,
            groups=groups,
            proxy_addresses=tuple(entry.get("proxyAddresses")),
            sip=sip,
            guid=entry.first("objectGUID"),
            usn_changed=entry.first("uSNChanged"),
            version=replicated_version(entry, linked),
            attributes=tuple(sorted((name, tuple(values)) for name, values in entry.attributes.items())),
        )


def replicated_version(entry: Entry, linked: Mapping[tuple, str] | None = None) -> str:
    """A digest of the entry's DN and replicated values: the same on every DC that holds
    the same state of the object, different as soon as one of the values read changes
    (``uSNChanged`` is a per-DC counter and cannot say that across DCs). A following
    link (``manager``) counts as the objectGUID ``linked`` gives for the DN it holds, so
    the manager renamed or moved is no change and another manager is; without one, as
    the name it points to."""
    linked = linked or {}

    def target(dn: str) -> str:
        key = dn_key_or_none(dn)
        guid = linked.get(key) if key is not None else None
        return f"<GUID={guid}>" if guid else _linked_rdn(dn)

    values = sorted(
        (name, sorted(target(v) for v in vals) if name in FOLLOWING_LINKS else sorted(vals))
        for name, vals in entry.attributes.items() if name not in PER_DC_ATTRIBUTES
    )
    text = json.dumps([dn_key(entry.dn), values], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _linked_rdn(dn: str) -> str:
    """The RDN a link value points to (``dn`` itself when it is no DN: read as it is)."""
    key = dn_key_or_none(dn)
    return "=".join(key[0]) if key else dn
