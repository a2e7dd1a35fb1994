"""A deterministic hosting directory: the data set behind ``--demo`` and the test DC.

:func:`build_seed` lays out one Active Directory domain the way PRODUCT §1 describes it
(hosting root, resellers, customers with their Users/Roles/Services OUs, operators under
``OU=Staff``) and fills it with about 2,000 users. The same ``seed`` argument always
gives the same entries, in the same order, so tests can rely on names and counts.

Pure Python on purpose: no ldap3, no Textual. Every attribute value is a ``str``; the
entries come parents first, and every object a ``member`` or ``manager`` value points to
comes before the entry that points to it, so a loader can add them in order.

Some customer and user names are hostile on purpose (RFC 4514 specials, leading ``#`` and
spaces, markup-like text, an ANSI escape sequence, CJK): every screen and every DN builder
of the product must survive them. All of them load into Samba AD unchanged.
"""

from __future__ import annotations

import json
import random
import unicodedata
from dataclasses import dataclass
from typing import Any

__all__ = [
    "SeedEntry",
    "OperatorAccount",
    "Seed",
    "build_seed",
    "SERVICE_NAMES",
    "ROLE_NAMES",
    "EXCHANGE_PLANS",
    "BLACKBERRY_PLANS",
    "UAC_ENABLED",
    "UAC_DISABLED",
    "DISTRIBUTION_GROUPS",
    "GROUP_TYPE_GLOBAL_DISTRIBUTION",
    "PLATFORM_GROUPS",
    "PLATFORM_GROUPS_OU",
    "SECOND_PLATFORM_ADMIN",
    "SECOND_PLATFORM_OPERATORS",
    "SECOND_PLATFORM_OU",
    "SECOND_PLATFORM_TENANTS",
    "STAFF_GROUP",
    "STAFF_GROUP_CUSTOMER",
]

BASE_DN = "DC=example,DC=net"
REALM_DOMAIN = "example.net"
EXCHANGE_ORG = "/o=Example Hosting/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)"
GROUP_TYPE_GLOBAL_SECURITY = "-2147483646"
UAC_ENABLED = "512"
UAC_DISABLED = "514"

USER_CLASSES = ("top", "person", "organizationalPerson", "user")
GROUP_CLASSES = ("top", "group")
OU_CLASSES = ("top", "organizationalUnit")

# Service key -> display name (the group name under OU=Services), as in core/config.py.
SERVICE_NAMES: dict[str, str] = {
    "exchange": "Hosted Exchange",
    "ocs": "Office Communications Server",
    "blackberry": "BlackBerry",
    "sharepoint": "SharePoint",
    "crm": "Hosted CRM",
}
EXCHANGE_PLANS = ("Basic 2 GB", "Premium 50 GB")
BLACKBERRY_PLANS = ("Standard", "Enterprise")
ROLE_NAMES = (
    "Customer Administrator",
    "User Administrator",
    "Service Administrator",
    "Partial User Administrator",
)

_SERVICE_SAM = {
    "exchange": "svc-exchange",
    "ocs": "svc-ocs",
    "blackberry": "svc-blackberry",
    "sharepoint": "svc-sharepoint",
    "crm": "svc-crm",
}
_PLAN_SAM = {
    ("exchange", "Basic 2 GB"): "exch-basic",
    ("exchange", "Premium 50 GB"): "exch-premium",
    ("blackberry", "Standard"): "bb-standard",
    ("blackberry", "Enterprise"): "bb-enterprise",
}
_ROLE_SAM = {
    "Customer Administrator": "role-custadm",
    "User Administrator": "role-useradm",
    "Service Administrator": "role-svcadm",
    "Partial User Administrator": "role-partial",
}


@dataclass(frozen=True)
class SeedEntry:
    dn: str
    attributes: dict[str, tuple[str, ...]]  # every value a str; objectClass included

    def first(self, name: str, default: str | None = None) -> str | None:
        values = self.attributes.get(name)
        return values[0] if values else default


@dataclass(frozen=True)
class OperatorAccount:
    name: str  # e.g. "sp-admin"
    dn: str
    upn: str
    sam: str
    rights: str  # "sp_admin" | "reseller_admin:<reseller>" | "user_admin:<customer>" | "readonly"


@dataclass(frozen=True)
class Seed:
    base_dn: str
    entries: tuple[SeedEntry, ...]  # parents first; members and managers before their referrers
    operators: tuple[OperatorAccount, ...]
    big_customer: str  # name of the customer holding > 1,500 users
    hostile_customers: tuple[str, ...]

    def entry(self, dn: str) -> SeedEntry:
        """The entry with exactly this DN (as the seed spells it)."""
        for item in self.entries:
            if item.dn == dn:
                return item
        raise KeyError(dn)

    def customers(self) -> tuple[SeedEntry, ...]:
        return tuple(e for e in self.entries if e.attributes.get("businessCategory") == ("customer",))

    def resellers(self) -> tuple[SeedEntry, ...]:
        return tuple(e for e in self.entries if e.attributes.get("businessCategory") == ("reseller",))

    def customer(self, name: str) -> SeedEntry:
        for item in self.customers():
            if item.first("ou") == name:
                return item
        raise KeyError(name)

    def users(self, under: str | None = None) -> tuple[SeedEntry, ...]:
        """User entries, optionally only those whose DN ends with ``,<under>``."""
        suffix = None if under is None else "," + under
        return tuple(
            e
            for e in self.entries
            if e.attributes["objectClass"][-1] == "user" and (suffix is None or e.dn.endswith(suffix))
        )

    def groups(self, under: str | None = None) -> tuple[SeedEntry, ...]:
        suffix = None if under is None else "," + under
        return tuple(
            e
            for e in self.entries
            if e.attributes["objectClass"][-1] == "group" and (suffix is None or e.dn.endswith(suffix))
        )

    def operator(self, name: str) -> OperatorAccount:
        for op in self.operators:
            if op.name == name:
                return op
        raise KeyError(name)

    def tenants(self, services: tuple[str, ...] = ("blackberry",)) -> dict[str, dict[str, Any]]:
        """The ``[tenants]`` table an SP would configure for this directory: each customer
        keyed by its DN, with its code and domains, and a UEM tenant (its code lower-cased)
        for each of ``services`` (blackberry-adapter service keys)."""
        return {
            entry.dn: {
                "code": entry.first("description"),
                "domains": list(entry.attributes.get("uPNSuffixes", ())),
                **{key: {"tenant_guid": (entry.first("description") or "").lower()} for key in services},
            }
            for entry in self.customers()
        }

    def tenants_toml(self, services: tuple[str, ...] = ("blackberry",)) -> str:
        """:meth:`tenants` as TOML, for a config file (keys and strings JSON-quoted, which TOML reads)."""
        lines = []
        for dn, entry in self.tenants(services).items():
            lines.append(f"[tenants.{json.dumps(dn)}]")
            lines.append(f"code = {json.dumps(entry['code'])}")
            lines.append(f"domains = {json.dumps(entry['domains'])}")
            for key in services:
                lines.append(f"[tenants.{json.dumps(dn)}.{key}]")
                lines.append(f"tenant_guid = {json.dumps(entry[key]['tenant_guid'])}")
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- escaping

# RFC 4514 requires these escaped (``#`` only when leading); ``#`` is escaped everywhere
# because ldap3's parse_dn rejects an unescaped ``#`` anywhere in a value.
_RFC4514_SPECIALS = frozenset(',+"\\<>;=#')


def _escape_rdn_value(value: str) -> str:
    """Escape an attribute value for use in an RDN (RFC 4514 section 2.4).

    Backslash-escapes ``, + " \\ < > ; = #``, a leading space and a trailing space;
    control characters (C0, DEL, C1 — NUL and ESC included) become ``\\XX`` hex pairs of
    their UTF-8 bytes. Everything else (accents, CJK) stays as it is.
    """
    out: list[str] = []
    last = len(value) - 1
    for index, char in enumerate(value):
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            out.append("".join(f"\\{byte:02X}" for byte in char.encode("utf-8")))
        elif char in _RFC4514_SPECIALS or (char == " " and index in (0, last)):
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def _rdn(attribute: str, value: str) -> str:
    return f"{attribute}={_escape_rdn_value(value)}"


# --------------------------------------------------------------------------- name data

_FOLD = str.maketrans(
    {
        "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "ß": "ss", "æ": "ae", "Æ": "AE",
        "œ": "oe", "Œ": "OE", "đ": "d", "Đ": "D", "ı": "i", "þ": "th", "ð": "d",
    }
)


def _ascii_fold(text: str) -> str:
    """Lower-case ASCII letters and digits only: 'Renée O'Brien' -> 'reneeobrien'."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(c for c in decomposed.lower() if c.isascii() and c.isalnum())


FIRST_NAMES = (
    "Renée", "José", "Zoë", "François", "Björn", "Søren", "Łukasz", "Chloé", "Noël",
    "Maëlle", "Jürgen", "Siobhán", "Seán", "Aoife", "Ana", "Mikael", "Ólafur", "Inés",
    "Élodie", "Hélène", "Jörg", "Agnieszka", "Zdeněk", "Çağla", "Emma", "Liam", "Olivia",
    "Noah", "Sophie", "Lucas", "Mia", "Daniel", "Sarah", "Thomas", "Laura", "David",
    "Julia", "Peter", "Anna", "Michael", "Eva", "Jan", "Katarzyna", "Marco", "Giulia",
    "Pieter", "Femke", "Lars", "Ingrid", "Mehmet", "Ayşe", "Priya", "Arjun", "Fatima",
    "Omar", "Grace", "Henry", "Isabel", "Jack", "Kate", "Leo", "Nina", "Oscar", "Ruth",
)
LAST_NAMES = (
    "Müller", "García", "O'Brien", "Núñez", "Öztürk", "Dvořák", "Nowak", "Johansson",
    "Ødegaard", "Smith", "Jones", "Martin", "Kowalski", "Fernández", "Lefèvre",
    "van der Berg", "D'Angelo", "Schäfer", "Þórsson", "Ångström", "Brontë", "Čapek",
    "Weiß", "Jørgensen", "Papadopoulos", "Rossi", "Bianchi", "de Vries", "Jansen",
    "Bakker", "Dubois", "Moreau", "Laurent", "Schmidt", "Schneider", "Fischer", "Wagner",
    "Becker", "Hoffmann", "Taylor", "Brown", "Wilson", "Evans", "Thomas", "Roberts",
    "Walker", "Wright", "Clarke", "Hughes", "Edwards", "Green", "Hall", "Wood", "Young",
    "King", "Patel", "Khan", "Singh", "Murphy", "Kelly", "Byrne", "Ryan", "O'Neill",
)
# (given name, surname, ascii given, ascii surname)
CJK_NAMES = (
    ("太郎", "山田", "taro", "yamada"),
    ("花子", "佐藤", "hanako", "sato"),
    ("伟", "王", "wei", "wang"),
    ("娜", "李", "na", "li"),
    ("민준", "김", "minjun", "kim"),
)
# (given name, surname, ascii given, ascii surname, description) - read back verbatim,
# shown only through the sanitiser.
HOSTILE_PEOPLE = (
    ("[bold]Eve[/bold]", "Hacker", "eve", "hacker", None),
    ("[@click=app.quit]Mallory[/]", "Clicker", "mallory", "clicker", None),
    ("Trudy", "[/foo] Closer", "trudy", "closer", None),
    ("\x1b[31mRoot\x1b[0m", "Kit", "root", "kit", "Contractor \x1b[2J\x1b[31m(expired)\x1b[0m"),
    ("Oscar", "Escape", "oscar", "escape", "Bell\x07 and \x1b]0;pwned\x07 title"),
)

NORMAL_CUSTOMERS = (
    "Fabrikam", "Contoso Pharmaceuticals", "Northwind Traders", "Adventure Works Cycles",
    "Tailspin Toys", "Wide World Importers", "Woodgrove Bank", "Litware Inc",
    "Lucerne Publishing", "Margie's Travel", "Alpine Ski House", "Coho Winery",
    "Fourth Coffee", "Humongous Insurance", "Graphic Design Institute", "City Power & Light",
    "Consolidated Messenger", "Trey Research", "Wingtip Toys", "Southridge Video",
    "VanArsdel Ltd", "Relecloud", "Nod Publishers", "Bellows College", "A. Datum Corporation",
    "Munson's Pickles and Preserves Farm",
)
BIG_CUSTOMER = "Globex Corporation"
# name -> ascii slug used for its DNS domains
HOSTILE_CUSTOMERS: dict[str, str] = {
    "Smith, Jones & Partners": "smith-jones",
    "A+B Consulting": "a-plus-b",
    '"Quoted" Ltd': "quoted",
    "Back\\slash BV": "backslash",
    "#1 Hosting": "number-one",
    "  Leading Spaces GmbH": "leading-spaces",
    "Zürich Bäckerei AG": "zuerich-baeckerei",
    "東京商事": "tokyo-shoji",
    "[bold]Markup[/bold] Inc": "markup",
    "[@click=app.quit]x[/]": "click-quit",
    "[/foo] Holdings": "slash-foo",
    "\x1b[31mRed Alert\x1b[0m Ltd": "red-alert",
    "Angle <Brackets>; Semi=Colon Co": "angle-brackets",
}
RESELLERS = ("Blue Yonder Reseller", "Proseware Partners", "Woodgrove Cloud Services")

DEPARTMENTS = ("Sales", "Finance", "IT", "Human Resources", "Marketing", "Operations",
               "Legal", "Support", "Research & Development", "Logistics")
TITLES = ("Manager", "Engineer", "Consultant", "Accountant", "Assistant", "Director",
          "Analyst", "Administrator", "Sales Representative", "Team Lead", "Intern")
OFFICES = ("Head Office", "Branch North", "Branch South", "Home Office", "Tower B, 3rd floor")
# (c, co, city, postal code format, phone prefix, street names)
LOCATIONS = (
    ("NL", "Netherlands", "Amsterdam", "10{:02d} AB", "+31 20 555", ("Keizersgracht", "Herengracht")),
    ("DE", "Germany", "München", "80{:03d}", "+49 89 555", ("Leopoldstraße", "Maximilianstraße")),
    ("CH", "Switzerland", "Zürich", "80{:02d}", "+41 44 555", ("Bahnhofstrasse", "Löwenstrasse")),
    ("GB", "United Kingdom", "London", "EC{:d}A 1BB", "+44 20 7946", ("Baker Street", "Fleet Street")),
    ("FR", "France", "Paris", "750{:02d}", "+33 1 5555", ("Rue de Rivoli", "Avenue des Champs-Élysées")),
    ("ES", "Spain", "Málaga", "290{:02d}", "+34 952 555", ("Calle Larios", "Paseo del Parque")),
    ("US", "United States", "Seattle", "981{:02d}", "+1 206 555", ("Pine Street", "1st Avenue")),
    ("JP", "Japan", "東京", "100-{:04d}", "+81 3 5555", ("丸の内", "銀座")),
)


# --------------------------------------------------------------------------- builder


@dataclass
class _Customer:
    name: str
    code: str  # C0001
    slug: str
    parent_dn: str
    reseller: str | None
    user_count: int
    dn: str = ""
    domains: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    plans: dict[str, tuple[str, ...]] | None = None
    roles: tuple[str, ...] = ()


@dataclass
class _User:
    dn: str
    sam: str
    upn: str
    services: tuple[str, ...]
    plan: dict[str, str]


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.ous: list[SeedEntry] = []
        self.users: list[SeedEntry] = []
        self.groups: list[SeedEntry] = []
        self.sams: set[str] = set()
        self.upn_prefixes: set[str] = set()
        self.addresses: set[str] = set()  # every proxy address, lower-cased
        self.domains: set[str] = set()

    # -- helpers ----------------------------------------------------------------
    def unique_sam(self, base: str, suffix: str = "") -> str:
        base = base[: 20 - len(suffix)] or "user"
        candidate, n = base + suffix, 1
        while candidate in self.sams:
            n += 1
            tag = str(n)
            candidate = base[: 20 - len(suffix) - len(tag)] + tag + suffix
        self.sams.add(candidate)
        return candidate

    def unique_prefix(self, base: str) -> str:
        candidate, n = base, 1
        while candidate in self.upn_prefixes:
            n += 1
            candidate = f"{base}{n}"
        self.upn_prefixes.add(candidate)
        return candidate

    def claim_address(self, address: str) -> bool:
        key = address.lower()
        if key in self.addresses:
            return False
        self.addresses.add(key)
        return True

    def ou(self, dn: str, name: str, **extra: tuple[str, ...]) -> None:
        attrs: dict[str, tuple[str, ...]] = {"objectClass": OU_CLASSES, "ou": (name,)}
        attrs.update(extra)
        self.ous.append(SeedEntry(dn, attrs))

    def group(self, parent_dn: str, name: str, sam: str, members: list[str], description: str | None = None) -> str:
        dn = f"{_rdn('CN', name)},{parent_dn}"
        if sam in self.sams:
            raise ValueError(f"duplicate sAMAccountName {sam}")
        self.sams.add(sam)
        attrs: dict[str, tuple[str, ...]] = {
            "objectClass": GROUP_CLASSES,
            "cn": (name,),
            "sAMAccountName": (sam,),
            "groupType": (GROUP_TYPE_GLOBAL_SECURITY,),
        }
        if description:
            attrs["description"] = (description,)
        if members:
            attrs["member"] = tuple(members)
        self.groups.append(SeedEntry(dn, attrs))
        return dn

    def staff_user(self, parent_dn: str, name: str, display: str, given: str, sn: str) -> str:
        dn = f"{_rdn('CN', name)},{parent_dn}"
        self.sams.add(name)
        self.users.append(
            SeedEntry(
                dn,
                {
                    "objectClass": USER_CLASSES,
                    "cn": (name,),
                    "givenName": (given,),
                    "sn": (sn,),
                    "displayName": (display,),
                    "sAMAccountName": (name,),
                    "userPrincipalName": (f"{name}@{REALM_DOMAIN}",),
                    "userAccountControl": (UAC_ENABLED,),
                    "company": ("Example Hosting",),
                    "department": ("Operations",),
                },
            )
        )
        return dn

    # -- customers ----------------------------------------------------------------
    def plan_customers(self, hosting_dn: str, reseller_dns: list[str]) -> list[_Customer]:
        rng = self.rng
        names = list(NORMAL_CUSTOMERS)
        hostile = list(HOSTILE_CUSTOMERS)
        # 30 customers under resellers (10 each), 10 directly under the hosting root.
        slots: list[tuple[str, str | None]] = []
        for index, reseller in enumerate(RESELLERS):
            slots += [(reseller_dns[index], reseller)] * 10
        slots += [(hosting_dn, None)] * 10
        # Interleave: hostile names go to every third slot, the big one to reseller 1.
        ordered: list[str] = []
        normal_iter, hostile_iter = iter(names), iter(hostile)
        for position in range(len(slots)):
            if position == 0:
                ordered.append(BIG_CUSTOMER)
            elif position % 3 == 1 and (name := next(hostile_iter, None)) is not None:
                ordered.append(name)
            else:
                ordered.append(next(normal_iter, None) or next(hostile_iter))
        customers: list[_Customer] = []
        for index, ((parent_dn, reseller), name) in enumerate(zip(slots, ordered, strict=True)):
            code = f"C{index + 1:04d}"
            if name == BIG_CUSTOMER:
                count = 1550
            elif name in HOSTILE_CUSTOMERS:
                count = rng.randint(3, 8)
            elif index % 7 == 3:
                count = rng.randint(0, 3)  # tiny tenants, some empty
            else:
                count = rng.randint(8, 26)
            slug = HOSTILE_CUSTOMERS.get(name) or "-".join(
                part for part in (_ascii_fold(w) for w in name.replace("&", " ").split()) if part
            )
            customers.append(_Customer(name, code, slug, parent_dn, reseller, count))
        return customers

    def build_customer(self, cust: _Customer) -> None:
        rng = self.rng
        cust.dn = f"{_rdn('OU', cust.name)},{cust.parent_dn}"
        extra = rng.choice((0, 0, 1, 1, 2)) if cust.name != BIG_CUSTOMER else 2
        domains = [f"{cust.slug}.example", f"{cust.slug}-mail.example", f"{cust.slug}.example.org"][: 1 + extra]
        for domain in domains:
            if domain in self.domains:
                raise ValueError(f"duplicate domain {domain}")
            self.domains.add(domain)
        cust.domains = tuple(domains)

        if cust.name == BIG_CUSTOMER:
            services = list(SERVICE_NAMES)
        else:
            services = []
            if rng.random() < 0.9:
                services.append("exchange")
            if rng.random() < 0.6:
                services.append("ocs")
            if rng.random() < 0.45:
                services.append("blackberry")
            if rng.random() < 0.2:
                services.append("sharepoint")
            if rng.random() < 0.15:
                services.append("crm")
        cust.services = tuple(services)
        plans: dict[str, tuple[str, ...]] = {}
        for key, offered in (("exchange", EXCHANGE_PLANS), ("blackberry", BLACKBERRY_PLANS)):
            if key in services:
                if cust.name == BIG_CUSTOMER or rng.random() < 0.5:
                    plans[key] = offered
                else:
                    plans[key] = (rng.choice(offered),)
        cust.plans = plans
        roles = ["Customer Administrator"]
        if cust.name == BIG_CUSTOMER or rng.random() < 0.8:
            roles.append("User Administrator")
        if cust.name == BIG_CUSTOMER or rng.random() < 0.5:
            roles.append("Service Administrator")
        if cust.name == BIG_CUSTOMER or rng.random() < 0.3:
            roles.append("Partial User Administrator")
        cust.roles = tuple(roles)

        self.ou(
            cust.dn,
            cust.name,
            businessCategory=("customer",),
            uPNSuffixes=cust.domains,
            description=(cust.code,),
        )
        for child in ("Users", "Roles", "Services"):
            self.ou(f"OU={child},{cust.dn}", child)

    def build_users(self, cust: _Customer, hostile_person: tuple | None) -> list[_User]:
        rng = self.rng
        users_dn = f"OU=Users,{cust.dn}"
        code = cust.code.lower()
        default_domain = cust.domains[0]
        cns: set[str] = set()
        made: list[_User] = []
        location = rng.choice(LOCATIONS)
        for index in range(cust.user_count):
            description = None
            if hostile_person is not None and index == 1:
                given, sn, given_a, sn_a, description = hostile_person
            elif rng.random() < 0.02:
                given, sn, given_a, sn_a = rng.choice(CJK_NAMES)
            else:
                given, sn = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
                given_a, sn_a = _ascii_fold(given), _ascii_fold(sn)
            cjk = any(given == g for g, *_ in CJK_NAMES)
            display = f"{sn}{given}" if cjk else f"{given} {sn}"
            cn, n = display, 1
            while cn.casefold() in cns:
                n += 1
                cn = f"{display} {n}"
            cns.add(cn.casefold())
            dn = f"{_rdn('CN', cn)},{users_dn}"

            sam = self.unique_sam(f"{given_a[:1]}{sn_a}"[:12] or "user", f".{code}")
            prefix = self.unique_prefix(f"{given_a}.{sn_a}" if given_a and sn_a else f"user{index}")
            upn = f"{prefix}@{default_domain}"
            enabled = rng.random() >= 0.05
            attrs: dict[str, tuple[str, ...]] = {
                "objectClass": USER_CLASSES,
                "cn": (cn,),
                "givenName": (given,),
                "sn": (sn,),
                "displayName": (display,),
                "sAMAccountName": (sam,),
                "userPrincipalName": (upn,),
                "userAccountControl": (UAC_ENABLED if enabled else UAC_DISABLED,),
            }
            if description:
                attrs["description"] = (description,)
            if rng.random() < 0.85:
                c, co, city, postal, phone, streets = location if rng.random() < 0.8 else rng.choice(LOCATIONS)
                attrs.update(
                    department=(rng.choice(DEPARTMENTS),),
                    company=(cust.name,),
                    title=(rng.choice(TITLES),),
                    physicalDeliveryOfficeName=(rng.choice(OFFICES),),
                    telephoneNumber=(f"{phone} {rng.randint(0, 9999):04d}",),
                    streetAddress=(f"{rng.choice(streets)} {rng.randint(1, 250)}",),
                    l=(city,),
                    postalCode=(postal.format(rng.randint(1, 99)),),
                    c=(c,),
                    co=(co,),
                )
            if made and rng.random() < 0.3:
                attrs["manager"] = (rng.choice(made[: max(1, min(len(made), 12))]).dn,)

            services: list[str] = []
            chance = {"exchange": 0.88, "ocs": 0.6, "blackberry": 0.35, "sharepoint": 0.5, "crm": 0.4}
            for key in cust.services:
                if rng.random() < chance[key]:
                    services.append(key)
            plan: dict[str, str] = {}
            for key, offered in (cust.plans or {}).items():
                if key in services:
                    plan[key] = rng.choice(offered)

            if "exchange" in services:
                primary = upn
                if not self.claim_address(primary):
                    raise ValueError(f"duplicate address {primary}")
                proxies = [f"SMTP:{primary}"]
                for domain in cust.domains[1:]:
                    if rng.random() < 0.6 and self.claim_address(f"{prefix}@{domain}"):
                        proxies.append(f"smtp:{prefix}@{domain}")
                short = f"{given_a[:1]}{sn_a}" or prefix
                if rng.random() < 0.3 and self.claim_address(f"{short}@{default_domain}"):
                    proxies.append(f"smtp:{short}@{default_domain}")
                if rng.random() < 0.15:
                    x500 = f"X500:/o=Legacy Hosting/ou=First Administrative Group/cn=Recipients/cn={prefix}"
                    if self.claim_address(x500):
                        proxies.append(x500)
                attrs.update(
                    mail=(primary,),
                    proxyAddresses=tuple(proxies),
                    mailNickname=(prefix,),
                    legacyExchangeDN=(f"{EXCHANGE_ORG}/cn=Recipients/cn={rng.getrandbits(32):08x}-{prefix}",),
                    extensionAttribute1=(cust.code,),
                )
            if "ocs" in services:
                attrs["msRTCSIP-PrimaryUserAddress"] = (f"sip:{upn}",)
                attrs["msRTCSIP-UserEnabled"] = ("TRUE",)

            self.users.append(SeedEntry(dn, attrs))
            made.append(_User(dn, sam, upn, tuple(services), plan))
        return made

    def build_customer_groups(self, cust: _Customer, users: list[_User]) -> dict[str, str]:
        rng = self.rng
        code = cust.code.lower()
        services_dn, roles_dn = f"OU=Services,{cust.dn}", f"OU=Roles,{cust.dn}"
        for key in cust.services:
            display = SERVICE_NAMES[key]
            members = [u.dn for u in users if key in u.services]
            self.group(services_dn, display, f"{code}-{_SERVICE_SAM[key]}", members)
            for plan in (cust.plans or {}).get(key, ()):
                plan_members = [u.dn for u in users if u.plan.get(key) == plan]
                self.group(services_dn, f"{display} - {plan}", f"{code}-{_PLAN_SAM[(key, plan)]}", plan_members)
        role_dns: dict[str, str] = {}
        for role in cust.roles:
            count = min(len(users), rng.randint(1, 3))
            members = [u.dn for u in rng.sample(users, count)] if count else []
            role_dns[role] = self.group(roles_dn, role, f"{code}-{_ROLE_SAM[role]}", members)
        return role_dns


# Groups that are not in any customer's Roles or Services OU, and a second hosting tree
# laid out differently; added after everything random, so the rest of the seed is as it was.
STAFF_GROUP = "Staff"  # a distribution group directly below a customer's OU (STAFF_GROUP_CUSTOMER)
STAFF_GROUP_CUSTOMER = "Adventure Works Cycles"
PLATFORM_GROUPS = ("Platform Newsletter", "Blue Yonder Partner News")  # in PLATFORM_GROUPS_OU, in the first reseller's OU
PLATFORM_GROUPS_OU = "OU=Platform Groups"  # below OU=Hosting, not a customer
GROUP_TYPE_GLOBAL_DISTRIBUTION = "2"
DISTRIBUTION_GROUPS = (STAFF_GROUP, *PLATFORM_GROUPS)
# "OU=Second Platform" (below OU=Hosting): customers marked businessCategory=tenant, their
# users two levels down (OU=Mailboxes,OU=People), its SP administrators a group in OU=Staff.
SECOND_PLATFORM_OU = "OU=Second Platform"
SECOND_PLATFORM_TENANTS = (("Tenant One", "tenant-one.example", "T0001"), ("Tenant Two", "tenant-two.example", "T0002"))
SECOND_PLATFORM_OPERATORS = "Platform Operators"  # a group in OU=Staff, outside the hosting OU
SECOND_PLATFORM_ADMIN = "platform-admin"  # its one member (sAMAccountName; UPN platform-admin@example.net)


def _add_layout_variants(b: _Builder, hosting_dn: str, staff_dn: str, reseller_dn: str) -> None:
    """The groups and the second hosting tree above, and the second tree's SP administrator
    (SECOND_PLATFORM_ADMIN, in Platform Operators only: not one of the seed's operators)."""
    customer_dn = next(e.dn for e in b.ous if e.first("ou") == STAFF_GROUP_CUSTOMER and e.first("businessCategory") == "customer")
    platform_groups_dn = f"{PLATFORM_GROUPS_OU},{hosting_dn}"
    b.ou(platform_groups_dn, "Platform Groups", description=("Groups of every tenant's users",))
    for parent, name, sam in ((customer_dn, STAFF_GROUP, "awc-staff"), (platform_groups_dn, PLATFORM_GROUPS[0], "platform-news"),
                              (reseller_dn, PLATFORM_GROUPS[1], "r1-partner-news")):
        dn = b.group(parent, name, sam, [], f"{name} (distribution)")
        index = next(i for i, g in enumerate(b.groups) if g.dn == dn)
        b.groups[index] = SeedEntry(dn, {**b.groups[index].attributes, "groupType": (GROUP_TYPE_GLOBAL_DISTRIBUTION,)})

    platform_dn = f"{SECOND_PLATFORM_OU},{hosting_dn}"
    b.ou(platform_dn, "Second Platform", description=("A hosting tree with another layout",))
    for index, (name, domain, code) in enumerate(SECOND_PLATFORM_TENANTS, start=1):
        tenant_dn = f"{_rdn('OU', name)},{platform_dn}"
        b.ou(tenant_dn, name, businessCategory=("tenant",), uPNSuffixes=(domain,), description=(code,))
        for child in ("OU=People", "OU=Mailboxes,OU=People", "OU=Roles", "OU=Services"):
            b.ou(f"{child},{tenant_dn}", child.split(",")[0][3:])
        users: list[str] = []
        if index == 1:  # one user with Hosted Exchange, two levels below the tenant
            prefix = "anna.people"
            users.append(f"CN=Anna People,OU=Mailboxes,OU=People,{tenant_dn}")
            b.sams.add("anna.people.t1")
            b.users.append(SeedEntry(users[0], {
                "objectClass": USER_CLASSES, "cn": ("Anna People",), "givenName": ("Anna",), "sn": ("People",),
                "displayName": ("Anna People",), "sAMAccountName": ("anna.people.t1",),
                "userPrincipalName": (f"{prefix}@{domain}",), "userAccountControl": (UAC_ENABLED,),
                "mail": (f"{prefix}@{domain}",), "proxyAddresses": (f"SMTP:{prefix}@{domain}",), "mailNickname": (prefix,),
                "legacyExchangeDN": (f"{EXCHANGE_ORG}/cn=Recipients/cn={prefix}",), "extensionAttribute1": (code,),
            }))
        b.group(f"OU=Services,{tenant_dn}", SERVICE_NAMES["exchange"], f"t{index}-svc-exchange", users)
        for role in ROLE_NAMES[:2]:
            b.group(f"OU=Roles,{tenant_dn}", role, f"t{index}-{_ROLE_SAM[role]}", [])
    admin_dn = b.staff_user(staff_dn, SECOND_PLATFORM_ADMIN, "Second Platform Admin", "Pat", "Platform")
    b.group(staff_dn, SECOND_PLATFORM_OPERATORS, "platform-operators", [admin_dn], "SP administrators of the second platform")


def build_seed(seed: int = 2026) -> Seed:
    """Build the demo/test directory. Same ``seed`` → same entries, in the same order."""
    b = _Builder(seed)
    hosting_dn = f"OU=Hosting,{BASE_DN}"
    staff_dn = f"OU=Staff,{BASE_DN}"
    b.ou(hosting_dn, "Hosting", description=("Hosting root",))
    b.ou(staff_dn, "Staff", description=("Service provider staff",))

    reseller_dns: list[str] = []
    for reseller in RESELLERS:
        dn = f"{_rdn('OU', reseller)},{hosting_dn}"
        reseller_dns.append(dn)
        b.ou(dn, reseller, businessCategory=("reseller",))

    customers = b.plan_customers(hosting_dn, reseller_dns)
    for cust in customers:
        b.build_customer(cust)

    # Operators under OU=Staff.
    sp_admin_dn = b.staff_user(staff_dn, "sp-admin", "Service Provider Admin", "Sam", "Provider")
    readonly_dn = b.staff_user(staff_dn, "readonly-op", "Read Only Operator", "Rita", "Reader")
    reseller_admin_dns = [
        b.staff_user(staff_dn, f"reseller-admin-{i}", f"{name} Admin", "Ray", f"Seller {i}")
        for i, name in enumerate(RESELLERS, start=1)
    ]

    # One hostile person each in a handful of customers spread over the layout.
    roomy = [c for c in customers if c.user_count >= 4]
    step = len(roomy) // len(HOSTILE_PEOPLE)
    hostile_home = {c.name: p for c, p in zip(roomy[::step], HOSTILE_PEOPLE)}
    users_by_customer: dict[str, list[_User]] = {}
    for cust in customers:
        users_by_customer[cust.name] = b.build_users(cust, hostile_home.get(cust.name))

    # Groups: the nested operator chain first (member before group), then tenants.
    tier2_dn = b.group(staff_dn, "Tier 2 Support", "tier2-support", [sp_admin_dn], "Nested into SP administrators")
    b.group(hosting_dn, "Service Provider Administrators", "sp-admins", [tier2_dn])
    b.group(hosting_dn, "Tenantry Read Only", "tenantry-readonly", [readonly_dn])
    for index, (dn, admin_dn) in enumerate(zip(reseller_dns, reseller_admin_dns, strict=True), start=1):
        b.group(dn, "Reseller Administrators", f"reseller-admins-r{index}", [admin_dn])

    operators = [
        OperatorAccount("sp-admin", sp_admin_dn, f"sp-admin@{REALM_DOMAIN}", "sp-admin", "sp_admin"),
        *(
            OperatorAccount(f"reseller-admin-{i}", dn, f"reseller-admin-{i}@{REALM_DOMAIN}", f"reseller-admin-{i}",
                            f"reseller_admin:{name}")
            for i, (dn, name) in enumerate(zip(reseller_admin_dns, RESELLERS, strict=True), start=1)
        ),
        OperatorAccount("readonly-op", readonly_dn, f"readonly-op@{REALM_DOMAIN}", "readonly-op", "readonly"),
    ]

    # The customer user administrator: an enabled, plainly named user of a normal
    # customer under a reseller, put into that customer's User Administrator role.
    chosen: tuple[_Customer, _User] | None = None
    for cust in customers:
        if cust.name in NORMAL_CUSTOMERS and cust.reseller and "User Administrator" in cust.roles:
            for user in users_by_customer[cust.name]:
                entry = next(e for e in b.users if e.dn == user.dn)
                if entry.first("userAccountControl") == UAC_ENABLED and entry.dn.isascii():
                    chosen = (cust, user)
                    break
        if chosen:
            break
    assert chosen is not None
    admin_customer, admin_user = chosen

    for cust in customers:
        role_dns = b.build_customer_groups(cust, users_by_customer[cust.name])
        if cust is admin_customer:
            role_dn = role_dns["User Administrator"]
            for i, group in enumerate(b.groups):
                if group.dn == role_dn:
                    members = group.attributes.get("member", ())
                    if admin_user.dn not in members:
                        attrs = dict(group.attributes)
                        attrs["member"] = (*members, admin_user.dn)
                        b.groups[i] = SeedEntry(group.dn, attrs)
    operators.append(
        OperatorAccount("user-admin", admin_user.dn, admin_user.upn, admin_user.sam,
                        f"user_admin:{admin_customer.name}")
    )
    _add_layout_variants(b, hosting_dn, staff_dn, reseller_dns[0])

    return Seed(
        base_dn=BASE_DN,
        entries=tuple(b.ous + b.users + b.groups),
        operators=tuple(operators),
        big_customer=BIG_CUSTOMER,
        hostile_customers=tuple(HOSTILE_CUSTOMERS),
    )
