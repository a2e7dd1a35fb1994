"""The demo/test seed: deterministic, consistent, correctly escaped, the promised shape."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ldap3.utils.dn import parse_dn

from samba_dc import norm_dn, unescape_value

from core.demo.seed import (
    BLACKBERRY_PLANS,
    DISTRIBUTION_GROUPS,
    EXCHANGE_PLANS,
    GROUP_TYPE_GLOBAL_DISTRIBUTION,
    ROLE_NAMES,
    SERVICE_NAMES,
    Seed,
    _escape_rdn_value,
    build_seed,
)

@pytest.fixture(scope="module")
def seed() -> Seed:
    return build_seed()


# ------------------------------------------------------------------ escaping


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("Smith, Jones & Partners", "Smith\\, Jones & Partners"),
        ("A+B Consulting", "A\\+B Consulting"),
        ('"Quoted" Ltd', '\\"Quoted\\" Ltd'),
        ("Back\\slash BV", "Back\\\\slash BV"),
        ("#1 Hosting", "\\#1 Hosting"),
        ("No #1", "No \\#1"),
        ("  Leading Spaces GmbH", "\\  Leading Spaces GmbH"),
        ("Trailing ", "Trailing\\ "),
        (" ", "\\ "),
        ("a<b>c;d=e", "a\\<b\\>c\\;d\\=e"),
        ("nul\x00byte", "nul\\00byte"),
        ("\x1b[31mRed\x1b[0m", "\\1B[31mRed\\1B[0m"),
        ("del\x7f c1\x9b", "del\\7F c1\\C2\\9B"),
        ("Zürich 東京", "Zürich 東京"),
        ("[@click=app.quit]x[/]", "[@click\\=app.quit]x[/]"),
    ],
)
def test_escape_rdn_value(raw: str, escaped: str) -> None:
    assert _escape_rdn_value(raw) == escaped
    assert unescape_value(escaped) == raw


@given(st.text(min_size=1, max_size=40))
def test_escape_round_trips_through_ldap3(value: str) -> None:
    dn = f"CN={_escape_rdn_value(value)},OU=Users,DC=example,DC=net"
    parsed = parse_dn(dn)
    assert len(parsed) == 4
    assert parsed[0][0] == "CN"
    assert unescape_value(parsed[0][1]) == value


def test_every_seed_dn_round_trips(seed: Seed) -> None:
    for entry in seed.entries:
        parsed = parse_dn(entry.dn)
        attr, value, _ = parsed[0]
        naming = entry.attributes["ou" if attr == "OU" else "cn"]
        assert unescape_value(value) == naming[0], entry.dn
        assert [(a, v) for a, v, _ in parsed[-2:]] == [("DC", "example"), ("DC", "net")]


# ------------------------------------------------------------------ determinism, types


def test_deterministic() -> None:
    first, second = build_seed(), build_seed()
    assert first == second
    assert [e.dn for e in first.entries] == [e.dn for e in second.entries]
    assert build_seed(7) != first


def test_every_value_is_a_str(seed: Seed) -> None:
    for entry in seed.entries:
        assert isinstance(entry.dn, str)
        assert entry.attributes["objectClass"][0] == "top"
        for name, values in entry.attributes.items():
            assert isinstance(values, tuple) and values, (entry.dn, name)
            assert all(isinstance(v, str) and v for v in values), (entry.dn, name)


# ------------------------------------------------------------------ order and references


def test_dns_unique_and_parents_first(seed: Seed) -> None:
    seen: set[tuple] = {norm_dn(seed.base_dn)}
    for entry in seed.entries:
        key = norm_dn(entry.dn)
        assert key not in seen, f"duplicate DN {entry.dn!r}"
        assert key[1:] in seen, f"parent of {entry.dn!r} missing or later"
        seen.add(key)


def test_members_and_managers_exist_and_come_first(seed: Seed) -> None:
    seen: set[tuple] = set()
    checked = Counter()
    for entry in seed.entries:
        for name in ("member", "manager"):
            for target in entry.attributes.get(name, ()):
                assert norm_dn(target) in seen, f"{entry.dn!r} {name} {target!r} not added before"
                checked[name] += 1
        seen.add(norm_dn(entry.dn))
    assert checked["member"] > 2000 and checked["manager"] > 100


def test_managers_work_for_the_same_customer(seed: Seed) -> None:
    for user in seed.users():
        for manager in user.attributes.get("manager", ()):
            assert norm_dn(manager)[1:] == norm_dn(user.dn)[1:]


# ------------------------------------------------------------------ uniqueness


def _values(seed: Seed, attribute: str) -> list[str]:
    return [v for e in seed.entries for v in e.attributes.get(attribute, ())]


@pytest.mark.parametrize(
    "attribute",
    ["sAMAccountName", "userPrincipalName", "mail", "mailNickname", "legacyExchangeDN",
     "msRTCSIP-PrimaryUserAddress"],
)
def test_unique_values(seed: Seed, attribute: str) -> None:
    values = [v.casefold() for v in _values(seed, attribute)]
    assert values, attribute
    duplicates = [v for v, n in Counter(values).items() if n > 1]
    assert not duplicates, duplicates[:5]


def test_proxy_addresses_unique_forest_wide(seed: Seed) -> None:
    addresses = [p.split(":", 1)[1].casefold() for p in _values(seed, "proxyAddresses")]
    duplicates = [v for v, n in Counter(addresses).items() if n > 1]
    assert not duplicates, duplicates[:5]


def test_sam_account_names_fit(seed: Seed) -> None:
    for sam in _values(seed, "sAMAccountName"):
        assert 1 <= len(sam) <= 20 and not re.search(r'["/\\\[\]:;|=,+*?<>@ ]', sam), sam


def test_domains_and_codes_unique(seed: Seed) -> None:
    domains = [d.casefold() for c in seed.customers() for d in c.attributes["uPNSuffixes"]]
    codes = [c.first("description") for c in seed.customers()]
    assert len(domains) == len(set(domains))
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"C\d{4}", code) for code in codes)


# ------------------------------------------------------------------ sizes and layout


def test_sizes(seed: Seed) -> None:
    customers = seed.customers()
    assert 35 <= len(customers) <= 45
    assert 1900 <= len(seed.users()) <= 2100
    big = seed.customer(seed.big_customer)
    assert len(seed.users(big.dn)) > 1500
    resellers = seed.resellers()
    assert len(resellers) == 3
    under_resellers = [c for c in customers if any(c.dn.endswith("," + r.dn) for r in resellers)]
    assert 25 <= len(under_resellers) <= 35
    assert len(customers) - len(under_resellers) >= 8
    assert any(len(seed.users(c.dn)) == 0 for c in customers)
    assert sum(1 for c in customers if len(seed.users(c.dn)) <= 3) >= 3


def test_hosting_root_groups(seed: Seed) -> None:
    hosting = f"OU=Hosting,{seed.base_dn}"
    names = {g.first("cn") for g in seed.groups() if norm_dn(g.dn)[1:] == norm_dn(hosting)}
    assert names == {"Service Provider Administrators", "Tenantry Read Only"}
    for reseller in seed.resellers():
        assert seed.entry(f"CN=Reseller Administrators,{reseller.dn}")


def test_customer_layout(seed: Seed) -> None:
    for customer in seed.customers():
        assert customer.attributes["objectClass"] == ("top", "organizationalUnit")
        assert 1 <= len(customer.attributes["uPNSuffixes"]) <= 3
        for child in ("Users", "Roles", "Services"):
            seed.entry(f"OU={child},{customer.dn}")
        roles = {g.first("cn") for g in seed.groups(f"OU=Roles,{customer.dn}")}
        assert "Customer Administrator" in roles and roles <= set(ROLE_NAMES)
        services = {g.first("cn") for g in seed.groups(f"OU=Services,{customer.dn}")}
        plan_names = {f"Hosted Exchange - {p}" for p in EXCHANGE_PLANS} | {f"BlackBerry - {p}" for p in BLACKBERRY_PLANS}
        assert services <= set(SERVICE_NAMES.values()) | plan_names


def test_service_mix(seed: Seed) -> None:
    offered = Counter()
    for customer in seed.customers():
        for group in seed.groups(f"OU=Services,{customer.dn}"):
            offered[group.first("cn")] += 1
    assert offered["Hosted Exchange"] >= 30
    assert offered["Office Communications Server"] <= 35 and offered["BlackBerry"] <= 35
    assert offered["SharePoint"] >= 2 and offered["Hosted CRM"] >= 2


def test_groups_are_global_security_groups(seed: Seed) -> None:
    for group in seed.groups():
        assert group.attributes["objectClass"] == ("top", "group")
        expected = GROUP_TYPE_GLOBAL_DISTRIBUTION if group.first("cn") in DISTRIBUTION_GROUPS else "-2147483646"
        assert group.first("groupType") == expected
        assert group.first("cn") == unescape_value(parse_dn(group.dn)[0][1])
        assert "member" not in group.attributes or group.attributes["member"]


def test_plan_membership(seed: Seed) -> None:
    """Each user with a planned service is in exactly one of that customer's plan groups."""
    for customer in seed.customers():
        services_dn = f"OU=Services,{customer.dn}"
        groups = {g.first("cn"): {norm_dn(m) for m in g.attributes.get("member", ())} for g in seed.groups(services_dn)}
        for service, plans in (("Hosted Exchange", EXCHANGE_PLANS), ("BlackBerry", BLACKBERRY_PLANS)):
            if service not in groups:
                continue
            plan_groups = [groups[f"{service} - {p}"] for p in plans if f"{service} - {p}" in groups]
            assert plan_groups, (customer.dn, service)
            for member in groups[service]:
                assert sum(member in g for g in plan_groups) == 1, (customer.dn, service, member)
            assert set().union(*plan_groups) == groups[service]


def test_users(seed: Seed) -> None:
    disabled = 0
    for customer in seed.customers():
        domains = [d.casefold() for d in customer.attributes["uPNSuffixes"]]
        code = customer.first("description")
        exchange = seed.groups(f"OU=Services,{customer.dn}")
        exchange_members = {
            norm_dn(m) for g in exchange if g.first("cn") == "Hosted Exchange" for m in g.attributes.get("member", ())
        }
        ocs_members = {
            norm_dn(m)
            for g in exchange
            if g.first("cn") == "Office Communications Server"
            for m in g.attributes.get("member", ())
        }
        for user in seed.users(customer.dn):
            a = user.attributes
            assert norm_dn(user.dn)[1:] == norm_dn(f"OU=Users,{customer.dn}")
            assert a["objectClass"] == ("top", "person", "organizationalPerson", "user")
            assert a["cn"][0] == unescape_value(parse_dn(user.dn)[0][1])
            upn = a["userPrincipalName"][0]
            assert upn.split("@")[1] == domains[0]
            assert a["userAccountControl"][0] in ("512", "514")
            disabled += a["userAccountControl"][0] == "514"
            has_exchange = norm_dn(user.dn) in exchange_members
            exchange_attrs = {"mail", "proxyAddresses", "mailNickname", "legacyExchangeDN", "extensionAttribute1"}
            if has_exchange:
                assert exchange_attrs <= set(a)
                proxies = a["proxyAddresses"]
                primaries = [p for p in proxies if p.startswith("SMTP:")]
                assert primaries == [f"SMTP:{a['mail'][0]}"]
                for proxy in proxies:
                    kind, address = proxy.split(":", 1)
                    if kind.lower() == "smtp":
                        assert address.split("@")[1].casefold() in domains
                    else:
                        assert kind == "X500" and address.startswith("/o=")
                assert a["extensionAttribute1"] == (code,)
                assert a["legacyExchangeDN"][0].startswith("/o=Example Hosting/ou=Exchange Administrative Group")
            else:
                assert not exchange_attrs & set(a), user.dn
            if norm_dn(user.dn) in ocs_members:
                assert a["msRTCSIP-PrimaryUserAddress"] == (f"sip:{upn}",)
                assert a["msRTCSIP-UserEnabled"] == ("TRUE",)
            else:
                assert "msRTCSIP-PrimaryUserAddress" not in a
    assert 0.02 < disabled / len(seed.users()) < 0.09
    common = ("department", "company", "title", "physicalDeliveryOfficeName", "telephoneNumber",
              "streetAddress", "l", "postalCode", "c", "co")
    with_common = [u for u in seed.users() if all(name in u.attributes for name in common)]
    assert len(with_common) > 0.7 * len(seed.users())


def test_names_are_realistic_and_hostile(seed: Seed) -> None:
    names = [u.first("displayName") for u in seed.users()]
    assert any("é" in n for n in names) and any("ü" in n for n in names)
    assert any("O'Brien" in n for n in names)
    assert any(re.search(r"[\u3040-\u30ff\u4e00-\u9fff\uac00-\ud7af]", n) for n in names)
    assert any("[bold]" in n for n in names) and any("[@click=" in n for n in names)
    assert any("\x1b" in n for n in names)
    assert any("\x1b" in (u.first("description") or "") for u in seed.users())


def test_hostile_customers(seed: Seed) -> None:
    names = set(seed.hostile_customers)
    for required in ("Smith, Jones & Partners", "A+B Consulting", '"Quoted" Ltd', "Back\\slash BV",
                     "#1 Hosting", "  Leading Spaces GmbH", "Zürich Bäckerei AG", "東京商事",
                     "[bold]Markup[/bold] Inc", "[@click=app.quit]x[/]"):
        assert required in names
    assert any("[/foo]" in n for n in names)
    assert any("\x1b[" in n for n in names)
    for name in names:
        customer = seed.customer(name)
        assert seed.users(customer.dn), name


# ------------------------------------------------------------------ operators


def _members(seed: Seed, group_dn: str) -> set[tuple]:
    return {norm_dn(m) for m in seed.entry(group_dn).attributes.get("member", ())}


def test_operators(seed: Seed) -> None:
    base = seed.base_dn
    ops = {op.name: op for op in seed.operators}
    assert {"sp-admin", "readonly-op", "user-admin"} <= set(ops)
    assert len([op for op in seed.operators if op.rights.startswith("reseller_admin:")]) == 3

    tier2 = f"CN=Tier 2 Support,OU=Staff,{base}"
    sp_admins = f"CN=Service Provider Administrators,OU=Hosting,{base}"
    assert norm_dn(ops["sp-admin"].dn) in _members(seed, tier2)
    assert _members(seed, sp_admins) == {norm_dn(tier2)}  # nested on purpose
    assert ops["sp-admin"].rights == "sp_admin"
    assert norm_dn(ops["readonly-op"].dn) in _members(seed, f"CN=Tenantry Read Only,OU=Hosting,{base}")

    for op in seed.operators:
        entry = seed.entry(op.dn)
        assert entry.first("userPrincipalName") == op.upn
        assert entry.first("sAMAccountName") == op.sam
        assert entry.first("userAccountControl") == "512"
        if op.rights.startswith("reseller_admin:"):
            reseller = next(r for r in seed.resellers() if r.first("ou") == op.rights.split(":", 1)[1])
            assert norm_dn(op.dn) in _members(seed, f"CN=Reseller Administrators,{reseller.dn}")
        if op.rights.startswith("user_admin:"):
            customer = seed.customer(op.rights.split(":", 1)[1])
            assert customer.first("ou") not in seed.hostile_customers
            assert norm_dn(op.dn)[2:] == norm_dn(customer.dn)
            assert norm_dn(op.dn) in _members(seed, f"CN=User Administrator,OU=Roles,{customer.dn}")
