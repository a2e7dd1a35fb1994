"""Test users to move: created through the Directory API, removed again afterwards."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from core.demo.platform import provisioned
from core.demo.services import is_demo
from core.directory import Directory
from core.directory import ops
from core.escape import child_dn, rdn_value
from core.directory.layout import dn_key
from core.model import Customer

SOURCE = "Adventure Works Cycles"  # Blue Yonder Reseller: exchange, ocs, blackberry
DESTINATION = "Globex Corporation"  # Blue Yonder Reseller: every service
OTHER_RESELLER = "  Leading Spaces GmbH"  # Proseware Partners
EXTRA_ROLE = "Billing Contact"  # exists in the source only: the move creates it

VOLATILE = {"usnchanged", "whenchanged", "dscorepropagationdata", "replpropertymetadata", "objectguid"}
_counter = itertools.count(1)


@dataclass
class TestUser:
    dn: str
    upn: str
    sam: str
    source: Customer
    destination: Customer
    number: int

    @property
    def cn(self) -> str:
        return rdn_value(self.dn)


async def make_user(directory: Directory, source_name: str = SOURCE, *, cn: str | None = None,
                    services: tuple[str, ...] = ("exchange", "ocs"), roles: tuple[str, ...] = ("Customer Administrator", EXTRA_ROLE),
                    exchange_plan: str = "Premium 50 GB", blackberry_plan: str = "Standard",
                    destination_name: str = DESTINATION) -> TestUser:
    """A user of ``source_name`` with the given services (groups and attributes) and roles."""
    source = await directory.customer(source_name)
    destination = await directory.customer(destination_name)
    layout = directory.layout
    n = next(_counter)
    cn = cn or f"Mover, Test {n}"
    sam = f"mover{n}.{(source.code or 'x').lower()}"[:20]
    domain = source.default_domain
    upn = f"test.mover{n}@{domain}"
    dn = child_dn("CN", cn, layout.users_dn(source.dn))
    attributes = {
        "cn": cn, "sAMAccountName": sam, "userPrincipalName": upn, "givenName": "Test",
        "sn": f"Mover{n}", "displayName": f"Test Mover {n}", "title": "Tester", "userAccountControl": "514",
    }
    if "exchange" in services:
        legacy = f"/o=Example Hosting/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=mover{n}"
        attributes.update({
            "mail": upn, "mailNickname": f"test.mover{n}", "legacyExchangeDN": legacy,
            "proxyAddresses": [f"SMTP:{upn}", f"smtp:t.mover{n}@{source.domains[-1]}", f"X500:/o=Old/cn=Recipients/cn=oldmover{n}"],
            "extensionAttribute1": source.code,
        })
    if "ocs" in services:
        attributes.update({"msRTCSIP-PrimaryUserAddress": f"sip:{upn}", "msRTCSIP-UserEnabled": "TRUE"})
    if is_demo(directory):  # the demo's Exchange and Lync would have provisioned it (a mailbox, a Lync user)
        stamped = provisioned(directory.config.directory.base_dn, source.code, attributes)
        attributes = {k: list(v) if isinstance(v, tuple) else v for k, v in stamped.items()}
    await directory.add_user(dn, attributes)
    display = {k: directory.config.services[k].service.display_name for k in services}
    for key in services:
        await directory.add_member(child_dn("CN", display[key], layout.services_dn(source.dn)), dn)
    if "exchange" in services:
        await directory.add_member(child_dn("CN", f"Hosted Exchange - {exchange_plan}", layout.services_dn(source.dn)), dn)
    if "blackberry" in services:
        await directory.add_member(child_dn("CN", f"BlackBerry - {blackberry_plan}", layout.services_dn(source.dn)), dn)
    for role in roles:
        group = child_dn("CN", role, layout.roles_dn(source.dn))
        if not await directory.exists(group):
            await directory.create_group(group, f"{source.code}-test-{role[:10]}".replace(" ", "").lower())
        await directory.add_member(group, dn)
    return TestUser(dn, upn, sam, source, destination, n)


async def remove_user(directory: Directory, user: TestUser) -> None:
    """Delete the test user wherever it ended up, and the role groups tests created."""
    for candidate in (user.dn, child_dn("CN", rdn_value(user.dn), directory.layout.users_dn(user.destination.dn))):
        if await directory.exists(candidate):
            await directory.delete(candidate)
    for customer in (user.source, user.destination):
        group = child_dn("CN", EXTRA_ROLE, directory.layout.roles_dn(customer.dn))
        if await directory.exists(group):
            await directory.delete(group)


async def snapshot(directory: Directory, *customers: Customer) -> dict:
    """The state a move may touch: every attribute of the objects below the customers'
    Roles and Services OUs and of the test users (the ``Mover`` ones) below their Users
    OUs, and the names of everything else there (a big customer has 1,550 users) —
    without the replication metadata AD updates on any write."""
    state: dict = {}
    layout = directory.layout
    for customer in customers:
        for base in (layout.users_dn(customer.dn), layout.roles_dn(customer.dn), layout.services_dn(customer.dn)):
            full = base != layout.users_dn(customer.dn)
            entries = await directory.pool.run(
                lambda c, b=base, f=full: ops.search(c, b, "(objectClass=*)" if f else "(!(cn=Mover*))", "one", ["*"] if f else ["cn"])
            )
            if not full:
                entries += await directory.pool.run(lambda c, b=base: ops.search(c, b, "(cn=Mover*)", "one", ["*"]))
            for entry in entries:
                state[dn_key(entry.dn)] = {k: sorted(v) for k, v in entry.attributes.items() if k not in VOLATILE}
    return state
