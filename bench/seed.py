"""The benchmark's directory: thousands of customers, in the shape of the demo seed.

:func:`build_bench_seed` lays out the same tree as :func:`core.demo.seed.build_seed`
(hosting root, resellers → customers with domains, services, plans and role groups →
users with Exchange/OCS attributes, operators under ``OU=Staff``) with the demo's own
builder, at any size: 5,000 customers / 100,000 users for the full benchmark. The same
arguments always give the same entries in the same order.

The order differs from the demo seed in one way that matters for loading: the
operator groups (SP administrators, each reseller's administrators) come before every
customer, then each customer comes whole (OUs, users, groups). The offline loader gives
a trustee its rights as soon as the object and the group exist, so every customer
object inherits them when it is created instead of being rewritten afterwards.

Besides a realistic spread (one big customer with a tenth of the users, at full size
one huge customer of 60,000 users — over the console's users cap, so searched on the
server — the demo's hostile names, tiny and empty tenants), it holds the customers the move measurements
use: a single-move source and destination and, per bulk run, a source full of users to
move and an empty destination, all with Exchange (both plans), OCS and every role, so
every user there can move.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from core.demo.seed import (
    BASE_DN,
    BIG_CUSTOMER,
    EXCHANGE_PLANS,
    HOSTILE_CUSTOMERS,
    HOSTILE_PEOPLE,
    NORMAL_CUSTOMERS,
    RESELLERS,
    REALM_DOMAIN,
    ROLE_NAMES,
    UAC_ENABLED,
    OperatorAccount,
    Seed,
    SeedEntry,
    _ascii_fold,
    _Builder,
    _Customer,
    _rdn,
)

HUGE_CUSTOMER = "Initech Worldwide"  # over the console's users cap (50,000): searched on the server
MOVE_SOURCE = "Bench Move Source"
MOVE_DESTINATION = "Bench Move Destination"
BULK_RUNS = ("tenantry-c1", "script-c1", "tenantry-c4", "script-c4")


def bulk_source(run: str) -> str:
    return f"Bench Bulk Source {run}"


def bulk_destination(run: str) -> str:
    return f"Bench Bulk Destination {run}"


@dataclass(frozen=True)
class Size:
    """How big a bench directory is, and how many movers it holds."""

    name: str
    customers: int
    users: int
    movers: int  # users in the single-move source (each move takes a fresh one)
    bulk: int  # users per bulk run (one source per entry of BULK_RUNS)
    huge: int = 0  # users of HUGE_CUSTOMER, over the console's users cap (0: no such customer)

    @property
    def big(self) -> int:
        return self.users // 10


SIZES = {
    "full": Size("full", 5_000, 100_000, 40, 1_000, huge=60_000),
    "small": Size("small", 200, 4_000, 30, 100),
    "tiny": Size("tiny", 30, 400, 12, 10),
}

_FIRST = (
    "Alder", "Amber", "Apex", "Arbor", "Atlas", "Aurora", "Azure", "Beacon", "Birch", "Blue",
    "Bright", "Cedar", "Cobalt", "Coral", "Crest", "Delta", "Eagle", "Ember", "Falcon", "Fern",
    "Granite", "Harbor", "Hazel", "Horizon", "Iron", "Ivy", "Juniper", "Lake", "Linden", "Maple",
    "Meadow", "Nova", "Oak", "Ocean", "Orchid", "Pine", "Polar", "Quartz", "Raven", "River",
    "Sage", "Silver", "Solar", "Spruce", "Stone", "Summit", "Tidal", "Valley", "Willow", "Zenith",
)
_SECOND = (
    "Analytics", "Bakery", "Builders", "Capital", "Clinic", "Consulting", "Design", "Dynamics",
    "Electric", "Energy", "Engineering", "Farms", "Foods", "Freight", "Gardens", "Health",
    "Hotels", "Imaging", "Insurance", "Labs", "Law", "Logistics", "Media", "Medical", "Motors",
    "Networks", "Optics", "Pharma", "Print", "Realty", "Robotics", "Security", "Shipping",
    "Software", "Studios", "Systems", "Textiles", "Travel", "Ventures", "Works",
)
_SUFFIX = ("Ltd", "GmbH", "BV", "Inc", "AG", "SA", "Group", "& Co")


def _customer_names(count: int, rng) -> list[str]:
    """``count`` distinct customer names: the demo's own first, then generated ones."""
    combos = [f"{a} {b} {s}" for a in _FIRST for b in _SECOND for s in _SUFFIX]
    if count > len(combos) + len(NORMAL_CUSTOMERS):
        raise ValueError(f"at most {len(combos) + len(NORMAL_CUSTOMERS)} customers")
    rng.shuffle(combos)
    return (list(NORMAL_CUSTOMERS) + combos)[: max(0, count)]


def _slug(name: str) -> str:
    return HOSTILE_CUSTOMERS.get(name) or "-".join(
        part for part in (_ascii_fold(w) for w in name.replace("&", " ").split()) if part
    )


def _user_counts(total: int, count: int, rng) -> list[int]:
    """``count`` tenant sizes adding up to ``total``: 0–3 for every seventh, else 2–2×mean."""
    if count <= 0:
        return []
    mean = total / count
    sizes = [rng.randint(0, 3) if i % 7 == 3 else rng.randint(2, max(2, round(2 * mean) - 2)) for i in range(count)]
    # Nudge towards the exact total, one user at a time on random tenants.
    diff = total - sum(sizes)
    while diff:
        i = rng.randrange(count)
        if diff > 0:
            sizes[i] += 1
            diff -= 1
        elif sizes[i] > 0:
            sizes[i] -= 1
            diff += 1
    return sizes


def build_bench_seed(size: Size | str = "full", seed: int = 2026) -> Seed:
    """The benchmark directory for ``size`` (a :class:`Size` or a key of :data:`SIZES`)."""
    size = SIZES[size] if isinstance(size, str) else size
    b = _Builder(seed)
    rng = b.rng
    hosting_dn = f"OU=Hosting,{BASE_DN}"
    staff_dn = f"OU=Staff,{BASE_DN}"
    b.ou(hosting_dn, "Hosting", description=("Hosting root",))
    b.ou(staff_dn, "Staff", description=("Service provider staff",))

    resellers = list(RESELLERS) + [f"{_FIRST[i % len(_FIRST)]} Partners {i:02d}" for i in range(3, max(3, size.customers // 100))]
    reseller_dns = []
    for name in resellers:
        dn = f"{_rdn('OU', name)},{hosting_dn}"
        reseller_dns.append(dn)
        b.ou(dn, name, businessCategory=("reseller",))

    # Operators and their groups first (see the module docstring).
    sp_admin_dn = b.staff_user(staff_dn, "sp-admin", "Service Provider Admin", "Sam", "Provider")
    readonly_dn = b.staff_user(staff_dn, "readonly-op", "Read Only Operator", "Rita", "Reader")
    reseller_admin_dns = [
        b.staff_user(staff_dn, f"reseller-admin-{i}", f"{name} Admin", "Ray", f"Seller {i}")
        for i, name in enumerate(RESELLERS, start=1)
    ]
    tier2_dn = b.group(staff_dn, "Tier 2 Support", "tier2-support", [sp_admin_dn], "Nested into SP administrators")
    b.group(hosting_dn, "Service Provider Administrators", "sp-admins", [tier2_dn])
    b.group(hosting_dn, "Tenantry Read Only", "tenantry-readonly", [readonly_dn])
    for index, dn in enumerate(reseller_dns, start=1):
        members = [reseller_admin_dns[index - 1]] if index <= len(reseller_admin_dns) else []
        b.group(dn, "Reseller Administrators", f"reseller-admins-r{index}", members)
    head = b.ous + b.users + b.groups
    b.ous, b.users, b.groups = [], [], []

    # The customers: fixed ones first (big, hostile, the movers'), then generated ones.
    bench_pairs = [(MOVE_SOURCE, size.movers), (MOVE_DESTINATION, 0)]
    for run in BULK_RUNS:
        bench_pairs += [(bulk_source(run), size.bulk), (bulk_destination(run), 0)]
    bench_names = {name for name, _ in bench_pairs}
    fixed = [(BIG_CUSTOMER, size.big)] + ([(HUGE_CUSTOMER, size.huge)] if size.huge else []) + bench_pairs
    rest_users = size.users - sum(n for _, n in fixed)
    names = list(HOSTILE_CUSTOMERS) + _customer_names(size.customers - len(fixed) - len(HOSTILE_CUSTOMERS), rng)
    if rest_users < 0 or len(names) + len(fixed) != size.customers:
        raise ValueError(f"size {size.name} is too small for the fixed customers")
    plan = fixed + list(zip(names, _user_counts(rest_users, len(names), rng)))

    customers: list[_Customer] = []
    for index, (name, count) in enumerate(plan):
        if name in bench_names or name in (BIG_CUSTOMER, HUGE_CUSTOMER):
            parent, reseller = reseller_dns[0], resellers[0]
        elif index % 5 == 4:
            parent, reseller = hosting_dn, None  # bought directly from the SP
        else:
            r = rng.randrange(len(resellers))
            parent, reseller = reseller_dns[r], resellers[r]
        customers.append(_Customer(name, f"C{index + 1:04d}", _slug(name), parent, reseller, count))

    roomy = [c for c in customers[len(fixed):] if c.user_count >= 4]
    step = max(1, len(roomy) // len(HOSTILE_PEOPLE))
    hostile_home = {c.name: p for c, p in zip(roomy[::step], HOSTILE_PEOPLE)}

    body: list[SeedEntry] = []
    user_admin: OperatorAccount | None = None
    for cust in customers:
        b.build_customer(cust)
        if cust.name in bench_names:
            # Everything a user there has, the destination has too: every user can move.
            cust.services = ("exchange", "ocs")
            cust.plans = {"exchange": EXCHANGE_PLANS}
            cust.roles = ROLE_NAMES
        users = b.build_users(cust, hostile_home.get(cust.name))
        b.build_customer_groups(cust, users)
        if cust.name == MOVE_SOURCE:
            _everyone_in_role(b, cust, users, "Customer Administrator")
        if user_admin is None and cust.reseller and cust.name in NORMAL_CUSTOMERS and "User Administrator" in cust.roles:
            user_admin = _make_user_admin(b, cust, users)
        body += b.ous + b.users + b.groups
        b.ous, b.users, b.groups = [], [], []

    operators = [
        OperatorAccount("sp-admin", sp_admin_dn, f"sp-admin@{REALM_DOMAIN}", "sp-admin", "sp_admin"),
        *(
            OperatorAccount(f"reseller-admin-{i}", dn, f"reseller-admin-{i}@{REALM_DOMAIN}", f"reseller-admin-{i}",
                            f"reseller_admin:{name}")
            for i, (dn, name) in enumerate(zip(reseller_admin_dns, RESELLERS), start=1)
        ),
        OperatorAccount("readonly-op", readonly_dn, f"readonly-op@{REALM_DOMAIN}", "readonly-op", "readonly"),
    ]
    if user_admin is not None:
        operators.append(user_admin)
    return Seed(
        base_dn=BASE_DN,
        entries=tuple(head + body),
        operators=tuple(operators),
        big_customer=BIG_CUSTOMER,
        hostile_customers=tuple(HOSTILE_CUSTOMERS),
    )


def _role_group_index(b: _Builder, cust: _Customer, role: str) -> int:
    dn = f"{_rdn('CN', role)},OU=Roles,{cust.dn}"
    return next(i for i, g in enumerate(b.groups) if g.dn == dn)


def _everyone_in_role(b: _Builder, cust: _Customer, users, role: str) -> None:
    """Every user of ``cust`` in its ``role`` group: each single move carries a role."""
    i = _role_group_index(b, cust, role)
    attrs = dict(b.groups[i].attributes)
    attrs["member"] = tuple(u.dn for u in users)
    b.groups[i] = replace(b.groups[i], attributes=attrs)


def _make_user_admin(b: _Builder, cust: _Customer, users) -> OperatorAccount | None:
    """An enabled, plainly named user of ``cust`` put into its User Administrator role."""
    entries = {e.dn: e for e in b.users}
    for user in users:
        entry = entries[user.dn]
        if entry.first("userAccountControl") == UAC_ENABLED and entry.dn.isascii():
            i = _role_group_index(b, cust, "User Administrator")
            attrs = dict(b.groups[i].attributes)
            if user.dn not in attrs.get("member", ()):
                attrs["member"] = (*attrs.get("member", ()), user.dn)
                b.groups[i] = replace(b.groups[i], attributes=attrs)
            return OperatorAccount("user-admin", user.dn, user.upn, user.sam, f"user_admin:{cust.name}")
    return None
