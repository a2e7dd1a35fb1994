"""What the seed says the directory holds: the independent answer directory tests check against."""

from __future__ import annotations

from dataclasses import dataclass

from core.config import Config
from core.demo.seed import Seed
from core.escape import parent_dn
from core.directory.layout import dn_key


@dataclass(frozen=True)
class SeedCustomer:
    name: str
    dn: str
    reseller: str | None
    domains: tuple[str, ...]
    code: str | None
    services: tuple[str, ...]
    users: tuple[dict, ...]  # the users' seed attributes, with "dn"


def _one(attributes: dict, name: str) -> str | None:
    values = attributes.get(name) or ()
    return values[0] if values else None


def customers(seed: Seed, config: Config) -> dict[str, SeedCustomer]:
    by_key = {dn_key(e.dn): e for e in seed.entries}
    children: dict[tuple, list] = {}
    for entry in seed.entries:
        children.setdefault(dn_key(parent_dn(entry.dn)), []).append(entry)
    layout = config.layout
    out: dict[str, SeedCustomer] = {}
    for entry in seed.entries:
        if entry.attributes.get(layout.marker_attribute) != (layout.customer_marker,):
            continue
        parent = by_key[dn_key(parent_dn(entry.dn))]
        is_reseller = parent.attributes.get(layout.marker_attribute) == (layout.reseller_marker,)
        services_dn = f"{layout.services_ou},{entry.dn}"
        services = set()
        for group in children.get(dn_key(services_dn), []):
            service = config.service_by_name(group.attributes["cn"][0])
            if service is not None:
                services.add(service.key)
        users_dn = f"{layout.users_ou},{entry.dn}"
        users = tuple({"dn": u.dn, **u.attributes} for u in children.get(dn_key(users_dn), []))
        name = entry.attributes["ou"][0]
        out[name] = SeedCustomer(
            name=name,
            dn=entry.dn,
            reseller=parent.attributes["ou"][0] if is_reseller else None,
            domains=tuple(entry.attributes.get(layout.domains_attribute, ())),
            code=_one(entry.attributes, layout.code_attribute),
            services=tuple(sorted(services, key=list(config.services).index)),
            users=users,
        )
    return out


def users_matching(customer: SeedCustomer, text: str) -> set[str]:
    """DN keys of the customer's users whose display name, UPN, mail or username contains ``text``."""
    folded = text.casefold()
    found = set()
    for user in customer.users:
        values = [_one(user, a) or "" for a in ("displayName", "userPrincipalName", "mail", "sAMAccountName")]
        if any(folded in v.casefold() for v in values):
            found.add(dn_key(user["dn"]))
    return found
