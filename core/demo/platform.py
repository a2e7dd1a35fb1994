"""The demo's Exchange organisation and Lync topology: where they live in the directory,
and the demo directory's mailboxes and Lync users as those servers would have left them.

The names and places are Exchange's and Lync's own (the cmdlets of
:mod:`core.demo.exchange` and :mod:`core.demo.lync` use the same functions, on the Samba
test DC as on the demo): the organisation in the configuration partition,
``CN=<org>,CN=Microsoft Exchange,CN=Services,CN=Configuration,<root>``, with its address
lists, global address lists, offline address books, address book policies and mailbox
databases; the registrar pools under ``CN=Pools,CN=RTC Service,CN=Services,
CN=Configuration,<root>``. A hosting tenant's address book is named after its customer
code the way hosting guides do it (``C0012 ABP``, ``C0012 GAL``, ``C0012 OAB``,
``C0012 AL``, ``C0012 Rooms``), its lists selecting ``CustomAttribute1 -eq 'C0012'``.

:func:`platform_entries` is what :func:`core.demo.directory.build_demo_server` loads:
the seed's entries with every user that has an address (``mail``) made a mailbox of its
customer's tenant (``homeMDB`` on DB01, ``msExchRecipientTypeDetails`` UserMailbox, the
tenant's ABP, OAB and address lists, the e-mail address policy off, the database's
quota defaults) and every Lync user homed on the demo pool with its tenant's
conferencing policy and hosting tenant id (and, when it has a mailbox too, the
``SIP:`` proxy address Exchange keeps for it); then the organisation's and the
topology's configuration objects. Pure data: nothing of PowerShell remoting is imported
here (the demo imports this module at start-up).

The demo has no real configuration partition: ``CN=Configuration`` is a container below
the domain root here (in AD it is a naming context of its own at that DN), holding
plain ``container`` objects with the real names and places.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ldap3.utils.dn import escape_rdn

ORGANIZATION = "Example Hosting"
ADMIN_GROUP = "Exchange Administrative Group (FYDIBOHF23SPDLT)"
DATABASES = ("DB01", "DB02")
DEMO_DATABASE = "DB01"  # where the demo's mailboxes are (the adapter's default database)
DEMO_POOL = "lyncpool.example.net"  # the demo's one registrar pool
EAP_EXCLUDED = "{26491cfc-9e50-4857-861b-0cb8df22b5d7}"  # msExchPoliciesExcluded: the policy does not apply
USER_MAILBOX = "1"  # msExchRecipientTypeDetails
ENHANCED_PRESENCE = "256"  # msRTCSIP-OptionFlags
CONFERENCING_POLICY = "{code} Conferencing"  # the demo tenants' conferencing policy (a template over the code)
_TENANT_NAMESPACE = uuid.UUID("5d4b7f0e-3c1a-4e8b-9a61-2f0c7d9e4b10")  # the demo's Lync tenant ids derive from it


@dataclass(frozen=True)
class AddressBook:
    """One tenant's address book: the ABP and the lists it groups (names), and the
    ``CustomAttribute1`` value the tenant's lists select."""

    policy: str
    gal: str
    oab: str
    address_lists: tuple[str, ...]
    room_list: str
    custom_attribute1: str

    @classmethod
    def of(cls, code: str, name: str | None = None) -> AddressBook:
        """The address book of the tenant ``code``, its objects named after ``name`` (default: the code)."""
        name = name or code
        return cls(f"{name} ABP", f"{name} GAL", f"{name} OAB", (f"{name} AL",), f"{name} Rooms", code)


def organization_dn(base_dn: str) -> str:
    return f"CN={ORGANIZATION},CN=Microsoft Exchange,CN=Services,CN=Configuration,{base_dn}"


def exchange_dn(base_dn: str, kind: str, name: str) -> str:
    """The DN of the organisation's ``kind`` object ``name``: ``list`` (address list),
    ``gal``, ``oab``, ``abp`` or ``database``."""
    org = organization_dn(base_dn)
    where = {
        "list": f"CN=All Address Lists,CN=Address Lists Container,{org}",
        "gal": f"CN=All Global Address Lists,CN=Address Lists Container,{org}",
        "oab": f"CN=Offline Address Lists,CN=Address Lists Container,{org}",
        "abp": f"CN=AddressBook Mailbox Policies,{org}",
        "database": f"CN=Databases,CN={ADMIN_GROUP},CN=Administrative Groups,{org}",
    }[kind]
    return f"CN={escape_rdn(name)},{where}"


def organization_containers(base_dn: str, databases: tuple[str, ...] = DATABASES) -> list[str]:
    """The organisation's containers and mailbox databases, parents first."""
    config, org = f"CN=Configuration,{base_dn}", organization_dn(base_dn)
    lists = f"CN=Address Lists Container,{org}"
    groups = f"CN=Administrative Groups,{org}"
    chain = [f"CN=Services,{config}", f"CN=Microsoft Exchange,CN=Services,{config}", org, lists,
             f"CN=All Address Lists,{lists}", f"CN=All Global Address Lists,{lists}", f"CN=Offline Address Lists,{lists}",
             f"CN=AddressBook Mailbox Policies,{org}", groups, f"CN={ADMIN_GROUP},{groups}",
             f"CN=Databases,CN={ADMIN_GROUP},{groups}"]
    return chain + [exchange_dn(base_dn, "database", name) for name in databases]


def address_list_dns(base_dn: str, book: AddressBook) -> list[str]:
    """The book's address lists, room list and GAL (what ``showInAddressBook`` lists)."""
    return [exchange_dn(base_dn, "list", book.address_lists[0]), exchange_dn(base_dn, "list", book.room_list),
            exchange_dn(base_dn, "gal", book.gal)]


def address_book_dns(base_dn: str, book: AddressBook) -> list[str]:
    """Every configuration object of the book: its lists, its OAB and its ABP."""
    return [*address_list_dns(base_dn, book), exchange_dn(base_dn, "oab", book.oab), exchange_dn(base_dn, "abp", book.policy)]


def pool_dn(base_dn: str, fqdn: str) -> str:
    return f"CN={escape_rdn(fqdn)},CN=Pools,CN=RTC Service,CN=Services,CN=Configuration,{base_dn}"


def topology_containers(base_dn: str, pools: tuple[str, ...]) -> list[str]:
    """The Lync topology's containers and registrar pools, parents first."""
    services = f"CN=Services,CN=Configuration,{base_dn}"
    return [services, f"CN=RTC Service,{services}", f"CN=Pools,CN=RTC Service,{services}"] + [pool_dn(base_dn, p) for p in pools]


def lync_tenant_id(code: str) -> str:
    """The demo's Lync hosting tenant id of the customer ``code`` (a GUID, stable)."""
    return str(uuid.uuid5(_TENANT_NAMESPACE, code))


def tenant_codes(seed: Any) -> list[str]:
    """The codes of the demo's tenants: every customer's, and every code a mailbox carries."""
    codes = {c.first("description") for c in seed.customers()}
    codes |= {u.first("extensionAttribute1") for u in seed.users()}
    return sorted(c for c in codes if c)


@functools.lru_cache(maxsize=None)
def mailbox_stamp(base_dn: str, code: str) -> Mapping[str, tuple[str, ...]]:
    """What Exchange leaves on a mailbox of the tenant ``code`` (besides its addresses)."""
    book = AddressBook.of(code)
    return MappingProxyType({
        "homeMDB": (exchange_dn(base_dn, "database", DEMO_DATABASE),), "msExchRecipientTypeDetails": (USER_MAILBOX,),
        "msExchAddressBookPolicyLink": (exchange_dn(base_dn, "abp", book.policy),),
        "msExchUseOAB": (exchange_dn(base_dn, "oab", book.oab),), "showInAddressBook": tuple(address_list_dns(base_dn, book)),
        "msExchPoliciesExcluded": (EAP_EXCLUDED,), "mDBUseDefaults": ("TRUE",)})


@functools.lru_cache(maxsize=None)
def lync_stamp(base_dn: str, code: str) -> Mapping[str, tuple[str, ...]]:
    """What Lync (and the hosting pack's provisioning) leave on a Lync user of the tenant ``code``."""
    tenant = (lync_tenant_id(code),)
    return MappingProxyType({
        "msRTCSIP-PrimaryHomeServer": (pool_dn(base_dn, DEMO_POOL),), "msRTCSIP-OptionFlags": (ENHANCED_PRESENCE,),
        "msRTCSIP-UserPolicies": (f"ConferencingPolicy={CONFERENCING_POLICY.format(code=code)}",),
        "msRTCSIP-TenantId": tenant, "msRTCSIP-GroupingID": tenant})


def provisioned(base_dn: str, code: str, attributes: Mapping[str, Any]) -> dict[str, Any]:
    """A user's ``attributes`` as the platform leaves them once provisioned in the tenant
    ``code``: a user with an address (``mail``) a mailbox, a user with a SIP address a
    Lync user, a user with both the ``SIP:`` proxy address too."""
    stamped = dict(attributes)
    sip = _first(attributes.get("msRTCSIP-PrimaryUserAddress"))
    if _first(attributes.get("mail")):
        stamped.update(mailbox_stamp(base_dn, code))
        if sip:
            stamped["proxyAddresses"] = (*_values(attributes.get("proxyAddresses")), f"SIP:{sip.removeprefix('sip:')}")
    if sip:
        stamped.update(lync_stamp(base_dn, code))
    return stamped


def _values(value: Any) -> tuple[str, ...]:
    return () if value is None else (value,) if isinstance(value, str) else tuple(value)


def _first(value: Any) -> str | None:
    values = _values(value)
    return values[0] if values else None


def platform_entries(seed: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """The seed's entries with the platform's stamps, then the organisation and the
    topology (see the module docstring)."""
    base = seed.base_dn
    customers = {c.dn.casefold(): c.first("description") for c in seed.customers()}
    for entry in seed.entries:
        attributes = entry.attributes
        code = None
        if attributes["objectClass"][-1] == "user" and (attributes.get("mail") or attributes.get("msRTCSIP-PrimaryUserAddress")):
            code = entry.first("extensionAttribute1") or customers.get(entry.dn.partition(",OU=Users,")[2].casefold())
        yield entry.dn, provisioned(base, code, attributes) if code else attributes
    configuration = [f"CN=Configuration,{base}", *organization_containers(base)]
    for code in tenant_codes(seed):
        configuration += address_book_dns(base, AddressBook.of(code))
    configuration += topology_containers(base, (DEMO_POOL,))[1:]  # CN=Services is the organisation's too
    for dn in configuration:
        yield dn, {"objectClass": ("top", "container")}
