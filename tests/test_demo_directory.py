"""The embedded demo directory behaves like Active Directory in every flow of Directory.

Everything runs through the real :class:`Directory` API (or ldap3 calls on one of its
pooled connections where a flow needs a raw result code) against ``open_demo()``.
Expectations are computed from the seed itself, so they hold as the seed grows.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid

import ldap3
import pytest

from core.demo.directory import (
    DEMO_URL,
    build_demo_server,
    canonical_dn,
    demo_config,
    demo_connection,
    open_demo,
)
from core.demo.seed import build_seed
from core.directory import ops
from core.escape import child_dn, filter_value, parent_dn, rdn, rdn_value
from core.directory.layout import same_dn
from core.errors import (
    AlreadyExists,
    AuthenticationFailed,
    ChangedUnderneath,
    DirectoryError,
    NotFound,
)

SEED = build_seed()
HOSTING = "OU=Hosting,DC=example,DC=net"


def _customer_entry(name: str):
    return SEED.customer(name)


def _users_ou(name: str) -> str:
    return f"OU=Users,{_customer_entry(name).dn}"


def _group_dn(customer: str, ou: str, group: str) -> str:
    return child_dn("CN", group, f"OU={ou},{_customer_entry(customer).dn}")


def _first_user_with(customer: str, *attributes: str):
    for entry in SEED.users(_users_ou(customer)):
        if all(entry.attributes.get(a) for a in attributes):
            return entry
    raise LookupError(f"no user of {customer} has {attributes}")


async def _raw(directory, operation):
    """Run an ldap3 call on a pooled connection; return (status, result code, message)."""

    def run(conn):
        status = operation(conn)
        return status, conn.result.get("result"), conn.result.get("message")

    return await directory.pool.run(run)


async def _read(directory, dn: str, *attributes: str) -> ops.Entry | None:
    return await directory.pool.run(lambda c: ops.read(c, dn, list(attributes)))


@pytest.fixture(scope="module")
async def demo():
    """One demo for the tests that only read."""
    directory = await open_demo()
    yield directory
    await directory.close()


@pytest.fixture
async def fresh():
    """A demo of its own for a test that writes."""
    directory = await open_demo()
    yield directory
    await directory.close()


# -- opening -------------------------------------------------------------------------
def test_demo_config_names_the_seed_domain_and_the_sp_admin():
    config = demo_config()
    sp_admin = SEED.operator("sp-admin")
    assert config.directory.base_dn == SEED.base_dn
    assert config.directory.hosting_dn == HOSTING
    assert config.directory.bind_user == sp_admin.upn
    assert config.directory.urls == (DEMO_URL,)
    assert config.directory.password_env is None and config.directory.password_file is None
    assert set(config.services) == {"exchange", "ocs", "blackberry", "sharepoint", "crm"}


async def test_open_demo_binds_as_sp_admin_and_honours_the_page_size():
    config = demo_config()
    config = dataclasses.replace(config, directory=dataclasses.replace(config.directory, page_size=123, pool_size=2))
    directory = await open_demo(config)
    try:
        assert directory.bound_as == SEED.operator("sp-admin").upn
        assert directory.page_size == 123
        operator = await directory.operator()
        assert same_dn(operator.dn, SEED.operator("sp-admin").dn)
        assert operator.rights.sp_admin
    finally:
        await directory.close()


async def test_open_demo_binds_as_the_operator_the_config_names():
    config = demo_config()
    reseller_admin = SEED.operator("reseller-admin-2")
    config = dataclasses.replace(config, directory=dataclasses.replace(config.directory, bind_user=reseller_admin.upn))
    directory = await open_demo(config)
    try:
        operator = await directory.operator()
        assert same_dn(operator.dn, reseller_admin.dn)
        assert not operator.rights.sp_admin and len(operator.rights.reseller_dns) == 1
    finally:
        await directory.close()


def test_binding_needs_the_password_and_accepts_dn_upn_and_netbios_names():
    server = build_demo_server()
    account = SEED.operator("readonly-op")
    password = server.passwords[account.name]
    for name in (account.dn, account.upn.upper(), f"EXAMPLE\\{account.sam}"):
        assert demo_connection(server.server, name, password).bound
    with pytest.raises(AuthenticationFailed):
        demo_connection(server.server, account.upn, password + "x")
    with pytest.raises(AuthenticationFailed):
        demo_connection(server.server, "nobody@example.net", password)
    # Each demo server draws new passwords: one demo's password opens no other.
    with pytest.raises(AuthenticationFailed):
        demo_connection(build_demo_server().server, account.upn, password)


async def test_every_seed_entry_is_loaded_with_ad_operational_attributes(demo):
    entries = await demo.pool.run(
        lambda c: ops.search(c, SEED.base_dn, "(objectClass=*)", "sub", ["objectGUID", "uSNChanged", "whenChanged", "distinguishedName", "name"])
    )
    by_key = {canonical_dn(e.dn).lower(): e for e in entries}
    assert len(entries) == len(SEED.entries) + 1  # plus the domain root
    guids = set()
    for seed_entry in SEED.entries:
        entry = by_key[canonical_dn(seed_entry.dn).lower()]
        assert same_dn(entry.dn, seed_entry.dn)
        assert entry.first("distinguishedName") == entry.dn
        assert entry.first("name") == rdn_value(seed_entry.dn)
        assert int(entry.first("uSNChanged")) > 0 and entry.first("whenChanged").endswith(".0Z")
        guids.add(str(uuid.UUID(entry.first("objectGUID"))))
    assert len(guids) == len(SEED.entries)


async def test_member_of_is_computed_from_the_seed_groups(demo):
    expected: dict[str, set[str]] = {}
    for group in SEED.groups():
        for member in group.attributes.get("member", ()):
            expected.setdefault(canonical_dn(member).lower(), set()).add(canonical_dn(group.dn).lower())
    users = await demo.pool.run(lambda c: ops.search(c, SEED.base_dn, "(objectClass=user)", "sub", ["memberOf"]))
    assert len(users) == len(SEED.users())
    for user in users:
        got = {canonical_dn(g).lower() for g in user.get("memberOf")}
        assert got == expected.get(canonical_dn(user.dn).lower(), set()), user.dn


# -- customers -----------------------------------------------------------------------
async def test_customers_are_listed_with_reseller_domains_and_services(demo):
    customers = await demo.customers()
    assert sorted(c.name for c in customers) == sorted(e.first("ou") for e in SEED.customers())
    for customer in customers:
        seed_entry = _customer_entry(customer.name)
        assert same_dn(customer.dn, seed_entry.dn)
        assert customer.domains == seed_entry.attributes["uPNSuffixes"]
        assert customer.code == seed_entry.first("description")
        reseller = parent_dn(seed_entry.dn)
        assert (customer.reseller_dn is None) == same_dn(reseller, HOSTING)
        services = {rdn_value(g.dn) for g in SEED.groups(f"OU=Services,{seed_entry.dn}")}
        assert {demo.config.service(key).display_name for key in customer.services} <= services
    big = next(c for c in customers if c.name == SEED.big_customer)
    assert set(big.services) == {"exchange", "ocs", "blackberry", "sharepoint", "crm"}


@pytest.mark.parametrize("text", ["globex", "GLOBEX", "corporation", "smith-jones-mail", "example.org", "東京", "zürich", "Bäcker"])
async def test_customer_search_by_name_or_domain_finds_exactly_the_matches(demo, text):
    folded = text.casefold()
    expected = sorted(
        e.first("ou") for e in SEED.customers()
        if folded in e.first("ou").casefold() or any(folded in d.casefold() for d in e.attributes["uPNSuffixes"])
    )
    assert expected, "the oracle must expect something"
    assert sorted(c.name for c in await demo.customers(text)) == expected


async def test_customer_by_exact_name_or_domain(demo):
    tokyo = await demo.customer("tokyo-shoji-mail.example")
    assert tokyo.name == "東京商事"
    assert (await demo.customer("TOKYO-SHOJI.EXAMPLE")).dn == tokyo.dn
    for name in SEED.hostile_customers:
        customer = await demo.customer(name)
        assert customer.name == name
        assert same_dn(customer.dn, _customer_entry(name).dn)
    with pytest.raises(NotFound):
        await demo.customer("no-such-customer.example")


async def test_exact_lookup_of_a_name_with_outer_spaces(demo):
    names = [n for n in SEED.hostile_customers if n != n.strip()]
    assert names
    for name in names:
        assert (await demo.customer(name)).name == name


# -- users ---------------------------------------------------------------------------
async def test_users_of_the_big_customer_come_in_pages_of_the_configured_size():
    config = demo_config()
    config = dataclasses.replace(config, directory=dataclasses.replace(config.directory, page_size=400))
    directory = await open_demo(config)
    try:
        big = await directory.customer(SEED.big_customer)
        pages = [page async for page in directory.user_pages(big)]
        expected = SEED.users(_users_ou(SEED.big_customer))
        assert len(expected) > 1500
        assert [len(p) for p in pages] == [400] * (len(expected) // 400) + ([len(expected) % 400] if len(expected) % 400 else [])
        dns = {u.dn.lower() for page in pages for u in page}
        assert dns == {canonical_dn(e.dn).lower() for e in expected}
    finally:
        await directory.close()


async def test_ad_max_page_size_caps_pages_and_unpaged_searches(demo):
    base = _users_ou(SEED.big_customer)
    page, cookie = await demo.pool.run(lambda c: ops.search_page(c, base, "(objectClass=user)", "one", ["cn"], 5000, None))
    assert len(page) == 1000 and cookie
    status, code, _ = await _raw(demo, lambda c: c.search(base, "(objectClass=user)", ldap3.LEVEL, attributes=["cn"]))
    assert code == 4  # sizeLimitExceeded, with AD's first 1,000 entries


async def test_a_paged_search_cookie_belongs_to_its_connection(demo):
    server = build_demo_server()
    first, second = server.connect(), server.connect()
    base = _users_ou(SEED.big_customer)
    first.search(base, "(objectClass=user)", ldap3.LEVEL, attributes=["cn"], paged_size=100)
    cookie = first.result["controls"][ops.PAGED_RESULTS]["value"]["cookie"]
    assert len(first.response) == 100 and cookie
    second.search(base, "(objectClass=user)", ldap3.LEVEL, attributes=["cn"], paged_size=100, paged_cookie=cookie)
    assert second.result["result"] != 0
    first.search(base, "(objectClass=user)", ldap3.LEVEL, attributes=["cn"], paged_size=100, paged_cookie=cookie)
    assert first.result["result"] == 0 and len(first.response) == 100


@pytest.mark.parametrize("needle", ["*)(objectClass=*", "*", "\\", "\x00", ")", "[/foo]", "[@click=app.quit]", "\x1b[31m", "佐藤", "O'Brien", "ZOË"])
async def test_user_search_returns_only_true_matches(demo, needle):
    folded = needle.casefold()
    fields = ("displayName", "userPrincipalName", "mail", "sAMAccountName")
    for customer_entry in SEED.customers():
        customer = await demo.customer_at(customer_entry.dn)
        expected = sorted(
            canonical_dn(e.dn).lower() for e in SEED.users(f"OU=Users,{customer_entry.dn}")
            if any(folded in v.casefold() for f in fields for v in e.attributes.get(f, ()))
        )
        found = sorted(u.dn.lower() for u in await demo.users(customer, needle))
        assert found == expected, (needle, customer.name)


@pytest.mark.parametrize("needle", ["*)(objectClass=*", "\\", "\x00", "*", "(", "&", "'"])
async def test_customer_search_with_filter_syntax_returns_only_true_matches(demo, needle):
    expected = sorted(e.first("ou") for e in SEED.customers() if needle in e.first("ou") or any(needle in d for d in e.attributes["uPNSuffixes"]))
    assert sorted(c.name for c in await demo.customers(needle)) == expected
    if needle == "\\":
        assert expected == ["Back\\slash BV"]


async def test_hostile_names_read_back_exactly(demo):
    def is_hostile(cn: str) -> bool:
        return any(ch in '[]\x1b,+"\\#<>;=' or ord(ch) >= 0x2E80 for ch in cn) or cn != cn.strip()

    hostile = [e for e in SEED.users() if is_hostile(e.first("cn"))]
    assert any("\x1b" in e.first("cn") for e in hostile) and any("[" in e.first("cn") for e in hostile)
    for seed_entry in hostile:
        user = await demo.user(seed_entry.dn)
        assert user.cn == seed_entry.first("cn")
        assert user.display_name == seed_entry.first("displayName")
        assert user.first == seed_entry.first("givenName") and user.last == seed_entry.first("sn")
        assert same_dn(user.dn, seed_entry.dn)
        assert user.attribute("description") == seed_entry.attributes.get("description", ())
        by_upn = await demo.user(seed_entry.first("userPrincipalName"))
        assert by_upn.dn == user.dn
    for name in SEED.hostile_customers:
        customer = await demo.customer_at(_customer_entry(name).dn)
        assert customer.name == name
        for user in await demo.users(customer):
            seed_entry = next(e for e in SEED.users(f"OU=Users,{_customer_entry(name).dn}") if same_dn(e.dn, user.dn))
            assert user.display_name == seed_entry.first("displayName")
            assert same_dn(user.customer_dn, customer.dn)


async def test_a_dn_in_any_escaping_finds_the_same_object(demo):
    seed_entry = _customer_entry("Smith, Jones & Partners")
    hex_spelling = seed_entry.dn.replace("\\,", "\\2c").replace("OU=", "ou=")
    assert (await demo.customer_at(hex_spelling)).dn == canonical_dn(seed_entry.dn)


async def test_a_user_reads_with_member_of_guid_and_usn(demo):
    seed_entry = _first_user_with(SEED.big_customer, "proxyAddresses", "msRTCSIP-PrimaryUserAddress")
    user = await demo.user(seed_entry.first("sAMAccountName"))
    assert same_dn(user.dn, seed_entry.dn)
    groups = {canonical_dn(g.dn).lower() for g in SEED.groups() if any(same_dn(m, seed_entry.dn) for m in g.attributes.get("member", ()))}
    assert {g.lower() for g in user.groups} == groups
    assert "exchange" in user.services and "ocs" in user.services
    assert uuid.UUID(user.guid) and int(user.usn_changed) > 0
    # with the SIP: address Exchange keeps for a Lync user (core.demo.platform stamps the demo's mailboxes)
    sip = seed_entry.first("msRTCSIP-PrimaryUserAddress").removeprefix("sip:")
    assert user.proxy_addresses == (*seed_entry.attributes["proxyAddresses"], f"SIP:{sip}")


# -- operators -----------------------------------------------------------------------
async def test_operator_rights_come_from_nested_groups(demo):
    sp_admin = await demo.operator(SEED.operator("sp-admin").upn)
    assert sp_admin.rights.sp_admin  # through Tier 2 Support, nested in SP Administrators
    for account in SEED.operators:
        operator = await demo.operator(account.upn)
        kind, _, target = account.rights.partition(":")
        if kind == "reseller_admin":
            reseller = next(e for e in SEED.resellers() if e.first("ou") == target)
            assert not operator.rights.sp_admin
            assert {canonical_dn(d).lower() for d in operator.rights.reseller_dns} == {canonical_dn(reseller.dn).lower()}
        elif kind == "readonly":
            assert operator.rights.readonly and not operator.rights.sp_admin and not operator.rights.reseller_dns
        elif kind == "user_admin":
            customer = _customer_entry(target)
            assert {canonical_dn(d).lower() for d in operator.rights.user_admin_customer_dns} == {canonical_dn(customer.dn).lower()}
            assert not operator.rights.sp_admin
        else:
            assert kind == "sp_admin" and operator.rights.sp_admin


async def test_nested_groups_survive_a_cycle(fresh):
    staff = "OU=Staff,DC=example,DC=net"
    first, second = child_dn("CN", "Cycle A", staff), child_dn("CN", "Cycle B", staff)
    await fresh.create_group(first, "cycle-a")
    await fresh.create_group(second, "cycle-b")
    assert await fresh.add_member(first, second)
    assert await fresh.add_member(second, first)
    member = SEED.operator("readonly-op").dn
    assert await fresh.add_member(first, member)
    groups = await fresh.pool.run(lambda c: fresh.dialect.nested_groups(c, member, SEED.base_dn))
    expected = sorted(canonical_dn(d).lower() for d in (first, second, f"CN=Tenantry Read Only,{HOSTING}"))
    assert sorted(g.lower() for g in groups) == expected
    search = f"(member:1.2.840.113556.1.4.1941:={filter_value(first)})"  # A is in B is in A
    in_chain = await fresh.pool.run(lambda c: ops.search(c, SEED.base_dn, search, "sub", ["cn"]))
    assert sorted(e.dn.lower() for e in in_chain) == sorted(canonical_dn(d).lower() for d in (first, second))


async def test_token_groups_and_the_in_chain_rule_agree_on_nested_groups(demo):
    """tokenGroups (what the AD dialect reads) is constructed by the demo as AD does."""
    for account in SEED.operators:
        by_tokens = await demo.pool.run(lambda c: demo.dialect.nested_groups(c, account.dn, SEED.base_dn))
        search = f"(&(objectClass=group)(member:1.2.840.113556.1.4.1941:={filter_value(account.dn)}))"
        by_search = [e.dn for e in await demo.pool.run(lambda c: ops.search(c, SEED.base_dn, search, "sub", ["cn"]))]
        assert sorted(by_tokens) == sorted(by_search) and by_search, account.name
    subtree = lambda c: c.search(SEED.base_dn, "(objectClass=user)", ldap3.SUBTREE, attributes=["tokenGroups"])  # noqa: E731
    assert (await _raw(demo, subtree))[1] == 1  # AD: tokenGroups only on a base-scope read


async def test_in_chain_matching_walks_the_links_like_ad(demo):
    for account in SEED.operators:
        search = f"(&(objectClass=group)(member:1.2.840.113556.1.4.1941:={filter_value(account.dn)}))"
        by_rule = await demo.pool.run(lambda c: ops.search(c, SEED.base_dn, search, "sub", ["cn"]))
        by_search = await demo.pool.run(lambda c: demo.dialect.nested_groups(c, account.dn, SEED.base_dn))
        assert sorted(e.dn for e in by_rule) == sorted(by_search), account.name
    sp_admins = f"CN=Service Provider Administrators,{HOSTING}"
    search = f"(memberOf:1.2.840.113556.1.4.1941:={sp_admins})"
    members = await demo.pool.run(lambda c: ops.search(c, SEED.base_dn, search, "sub", ["cn"]))
    assert sorted(canonical_dn(e.dn) for e in members) == sorted(
        canonical_dn(dn) for dn in (f"CN=Tier 2 Support,OU=Staff,{SEED.base_dn}", SEED.operator("sp-admin").dn))


# -- uniqueness ----------------------------------------------------------------------
async def test_conflicts_finds_each_kind_case_insensitively(demo):
    seed_entry = _first_user_with(SEED.big_customer, "proxyAddresses", "msRTCSIP-PrimaryUserAddress")
    dn = seed_entry.dn
    alias = next((p.split(":", 1)[1] for p in seed_entry.attributes["proxyAddresses"] if p.startswith("smtp:")), None)
    upn = seed_entry.first("userPrincipalName")
    found = await demo.conflicts(upn=upn.upper())
    assert [(c.kind, same_dn(c.dn, dn)) for c in found] == [("upn", True)]
    found = await demo.conflicts(addresses=[seed_entry.first("mail").upper()])
    assert [(c.kind, same_dn(c.dn, dn)) for c in found] == [("address", True)]
    if alias:
        assert [c.kind for c in await demo.conflicts(addresses=[alias])] == ["address"]
    sip = seed_entry.first("msRTCSIP-PrimaryUserAddress")
    assert [c.kind for c in await demo.conflicts(sip=sip.upper())] == ["sip"]
    assert [c.kind for c in await demo.conflicts(sam=seed_entry.first("sAMAccountName").upper())] == ["sam"]
    cn = seed_entry.first("cn")
    assert [c.kind for c in await demo.conflicts(cn=(cn.upper(), parent_dn(dn)))] == ["cn"]
    everything = await demo.conflicts(upn=upn, sam=seed_entry.first("sAMAccountName"), sip=sip, cn=(cn, parent_dn(dn)))
    assert sorted(c.kind for c in everything) == ["cn", "sam", "sip", "upn"]
    assert await demo.conflicts(upn=upn, sip=sip, cn=(cn, parent_dn(dn)), exclude_dn=dn.lower()) == []
    assert await demo.conflicts(upn="nobody@example.net", addresses=["x*@y"], sip="sip:*", sam="*", cn=("*", parent_dn(dn))) == []


# -- writes --------------------------------------------------------------------------
NEW_USER = {
    "givenName": "John",
    "sn": "Smith",
    "displayName": "Smith, John",
    "sAMAccountName": "jsmith.demo",
    "userPrincipalName": "john.smith@fabrikam.example",
    "mail": "john.smith@fabrikam.example",
    "proxyAddresses": ["SMTP:john.smith@fabrikam.example"],
    "userAccountControl": "514",
}


async def _new_user(directory, customer: str = "Fabrikam", cn: str = "Smith, John", **overrides) -> str:
    dn = child_dn("CN", cn, _users_ou(customer))
    await directory.add_user(dn, {**NEW_USER, **overrides})
    return dn


async def test_move_of_a_user_with_a_comma_keeps_groups_and_references(fresh):
    dn = await _new_user(fresh)
    source = await fresh.customer("Fabrikam")
    exchange = _group_dn("Fabrikam", "Services", "Hosted Exchange")
    role = _group_dn("Fabrikam", "Roles", "Customer Administrator")
    assert await fresh.add_member(exchange, dn) and await fresh.add_member(role, dn)
    colleague = SEED.users(_users_ou("Fabrikam"))[0]
    report = await fresh.user(colleague.dn)
    await fresh.modify(report.dn, {"manager": (report.attribute("manager"), [dn])})
    await fresh.modify(dn, {"manager": ((), [colleague.dn])})
    before = await fresh.user(dn)
    assert any(u.dn == before.dn for u in await fresh.users(source))  # one-level finds "Smith\, John"
    assert {g.lower() for g in before.groups} == {canonical_dn(exchange).lower(), canonical_dn(role).lower()}

    destination = await fresh.customer("Smith, Jones & Partners")
    moved = await fresh.move(dn, fresh.layout.users_dn(destination.dn), "Smith, John (moved)")

    assert not await fresh.exists(dn)
    after = await fresh.user(moved)
    assert same_dn(after.dn, child_dn("CN", "Smith, John (moved)", _users_ou("Smith, Jones & Partners")))
    assert after.cn == "Smith, John (moved)" and after.attribute("name") == ()  # name is not a detail attribute
    assert (await _read(fresh, moved, "name")).first("name") == "Smith, John (moved)"
    assert after.guid == before.guid and int(after.usn_changed) > int(before.usn_changed)
    assert after.groups == before.groups  # the groups did not move; memberOf still lists them
    for group in (exchange, role):
        members = {canonical_dn(m).lower() for m in (await _read(fresh, group, "member")).get("member")}
        assert canonical_dn(moved).lower() in members and canonical_dn(dn).lower() not in members
    assert same_dn((await fresh.user(colleague.dn)).attribute("manager")[0], moved)
    assert same_dn(after.attribute("manager")[0], colleague.dn)
    assert {canonical_dn(r).lower() for r in (await _read(fresh, colleague.dn, "directReports")).get("directReports")} == {moved.lower()}
    assert not any(same_dn(u.dn, moved) for u in await fresh.users(source))
    assert [u.dn for u in await fresh.users(destination, "smith, john")] == [after.dn]
    assert same_dn(after.customer_dn, destination.dn)


async def test_moving_an_ou_moves_its_subtree_and_rewrites_links(fresh):
    customer = _customer_entry("A+B Consulting")
    reseller = next(e for e in SEED.resellers() if e.first("ou") == "Proseware Partners")
    user = SEED.users(f"OU=Users,{customer.dn}")[0]
    before = await fresh.user(user.dn)
    new_dn = await fresh.pool.run(lambda c: fresh.dialect.move(c, customer.dn, rdn("OU", "A+B Consulting"), reseller.dn))
    assert same_dn(new_dn, child_dn("OU", "A+B Consulting", reseller.dn))
    moved = await fresh.customer("A+B Consulting")
    assert moved.reseller == "Proseware Partners" and same_dn(moved.dn, new_dn)
    users = await fresh.users(moved)
    assert len(users) == len(SEED.users(f"OU=Users,{customer.dn}"))
    moved_user = next(u for u in users if u.cn == user.first("cn"))
    assert len(moved_user.groups) == len(before.groups) > 0
    assert all(g.lower().endswith("," + new_dn.lower()) for g in moved_user.groups)
    # memberOf now names the groups below the new customer DN, so they classify again.
    assert (moved_user.services, moved_user.roles) == (before.services, before.roles)
    assert not await fresh.exists(user.dn)


async def test_move_refuses_what_ad_refuses(fresh):
    dn = await _new_user(fresh)
    taken = SEED.users(_users_ou("Fabrikam"))[0]
    with pytest.raises(AlreadyExists):
        await fresh.move(dn, _users_ou("Fabrikam"), rdn_value(taken.dn))
    with pytest.raises(NotFound):
        await fresh.move(dn, f"OU=Nowhere,{HOSTING}")
    with pytest.raises(NotFound):
        await fresh.move(child_dn("CN", "Nobody", _users_ou("Fabrikam")), _users_ou("Relecloud"))
    with pytest.raises(DirectoryError):  # a user cannot live below a group
        await fresh.move(dn, _group_dn("Fabrikam", "Roles", "Customer Administrator"))
    assert await fresh.exists(dn)


async def test_compare_and_swap_fails_after_a_concurrent_change(fresh):
    seed_entry = _first_user_with("Fabrikam", "title")
    read = await fresh.user(seed_entry.dn)
    title = read.attribute("title")
    await fresh.modify(read.dn, {"title": (title, ["Changed elsewhere"])})  # another operator
    with pytest.raises(ChangedUnderneath):
        await fresh.modify(read.dn, {"title": (title, ["Mine"])})
    assert (await fresh.user(read.dn)).attribute("title") == ("Changed elsewhere",)
    # Single-valued: the value was empty when read, someone set it since.
    assert read.attribute("mobile") == ()
    await fresh.modify(read.dn, {"mobile": ((), ["+1 555 0100"])})
    with pytest.raises(ChangedUnderneath):
        await fresh.modify(read.dn, {"mobile": ((), ["+1 555 0199"])})
    # A case-only change of the expected value still matches, as AD compares ignoring case.
    now = await fresh.user(read.dn)
    await fresh.modify(read.dn, {"title": (("CHANGED ELSEWHERE",), ["Final"])})
    final = await fresh.user(read.dn)
    assert final.attribute("title") == ("Final",)
    assert int(final.usn_changed) > int(now.usn_changed) > int(read.usn_changed)
    assert final.attribute("whenchanged")


async def test_member_add_and_remove_are_idempotent(fresh):
    group = _group_dn("Fabrikam", "Roles", "Customer Administrator")
    user = next(e for e in SEED.users(_users_ou("Fabrikam")) if not any(
        same_dn(m, e.dn) for m in SEED.entry(group).attributes.get("member", ())))
    group_usn = (await _read(fresh, group, "uSNChanged")).first("uSNChanged")
    assert await fresh.add_member(group, user.dn) is True
    assert await fresh.add_member(group, user.dn.upper()) is False
    assert any(same_dn(g, group) for g in (await fresh.user(user.dn)).groups)
    assert int((await _read(fresh, group, "uSNChanged")).first("uSNChanged")) > int(group_usn)
    assert await fresh.remove_member(group, user.dn) is True
    assert await fresh.remove_member(group, user.dn) is False
    assert not any(same_dn(g, group) for g in (await fresh.user(user.dn)).groups)
    # The raw answers are AD's: 68 for an existing member, 53 for a non-member, 32 for a missing one.
    await fresh.add_member(group, user.dn)
    add = lambda c: c.modify(group, {"member": [(ldap3.MODIFY_ADD, [user.dn])]})  # noqa: E731
    remove = lambda c: c.modify(group, {"member": [(ldap3.MODIFY_DELETE, [SEED.operator("sp-admin").dn])]})  # noqa: E731
    ghost = lambda c: c.modify(group, {"member": [(ldap3.MODIFY_ADD, [f"CN=Ghost,{_users_ou('Fabrikam')}"])]})  # noqa: E731
    assert (await _raw(fresh, add))[1] == 68
    assert (await _raw(fresh, remove))[1] == 53
    assert (await _raw(fresh, ghost))[1] == 32


async def test_create_group_with_members_and_delete_keep_member_of(fresh):
    dn = await _new_user(fresh)
    group = _group_dn("Fabrikam", "Roles", "Partial User Administrator")
    if await fresh.exists(group):
        group = _group_dn("Fabrikam", "Roles", "Demo Role")
    await fresh.pool.run(lambda c: fresh.dialect.add(c, group, {
        "objectClass": ["top", "group"], "sAMAccountName": "demo-role-x", "member": [dn]}))
    assert any(same_dn(g, group) for g in (await fresh.user(dn)).groups)
    guid = (await _read(fresh, group, "objectGUID")).first("objectGUID")
    assert uuid.UUID(guid)
    other = SEED.users(_users_ou("Fabrikam"))[0].dn
    await fresh.pool.run(lambda c: ops.modify(c, group, {"member": [(ldap3.MODIFY_REPLACE, [other])]}))
    assert not any(same_dn(g, group) for g in (await fresh.user(dn)).groups)
    assert any(same_dn(g, group) for g in (await fresh.user(other)).groups)
    await fresh.pool.run(lambda c: ops.modify(c, group, {"member": [(ldap3.MODIFY_REPLACE, [dn])]}))
    await fresh.delete(group)
    assert not any(same_dn(g, group) for g in (await fresh.user(other)).groups)
    assert not any(same_dn(g, group) for g in (await fresh.user(dn)).groups)
    exchange = _group_dn("Fabrikam", "Services", "Hosted Exchange")
    await fresh.add_member(exchange, dn)
    await fresh.delete(dn)
    members = (await _read(fresh, exchange, "member")).get("member")
    assert not any(same_dn(m, dn) for m in members)


async def test_writes_fail_with_ad_result_codes(fresh):
    dn = await _new_user(fresh)
    with pytest.raises(AlreadyExists):
        await _new_user(fresh)
    with pytest.raises(AlreadyExists):  # sAMAccountName is unique in the domain
        await _new_user(fresh, cn="Another", userPrincipalName="other@fabrikam.example", sAMAccountName="JSMITH.DEMO")
    with pytest.raises(DirectoryError, match="constraint"):  # UPN is unique in the forest
        await _new_user(fresh, cn="Third", sAMAccountName="third.demo")
    with pytest.raises(NotFound):
        await fresh.add_user(child_dn("CN", "Orphan", f"OU=Users,OU=Nowhere,{HOSTING}"), {"sAMAccountName": "orphan"})
    with pytest.raises(NotFound):
        await fresh.delete(child_dn("CN", "Nobody", _users_ou("Fabrikam")))
    with pytest.raises(DirectoryError, match="notAllowedOnNonLeaf"):
        await fresh.delete(_users_ou("Fabrikam"))
    with pytest.raises(DirectoryError, match="notAllowedOnRDN"):
        await fresh.modify(dn, {"cn": (("Smith, John",), ["Renamed"])})
    with pytest.raises(DirectoryError, match="unwillingToPerform"):  # memberOf is a back-link
        await fresh.modify(dn, {"memberOf": ((), [_group_dn("Fabrikam", "Services", "Hosted Exchange")])})
    with pytest.raises(DirectoryError, match="unwillingToPerform"):  # enabling without a password
        await fresh.modify(dn, {"userAccountControl": (("514",), ["512"])})
    user = await fresh.user(dn)
    assert user.enabled is False and same_dn(user.dn, dn)
    # A user created without userAccountControl is disabled with PASSWD_NOTREQD, as in AD.
    plain = child_dn("CN", "Plain", _users_ou("Fabrikam"))
    await fresh.add_user(plain, {"sAMAccountName": "plain.demo"})
    assert (await fresh.user(plain)).attribute("userAccountControl") == ("546",)


async def test_passwords_follow_ad_rules(fresh):
    dn = await _new_user(fresh)
    with pytest.raises(DirectoryError, match="password policy"):
        await fresh.set_password(dn, "short")
    with pytest.raises(DirectoryError, match="password policy"):
        await fresh.set_password(dn, "alllowercaseletters")
    with pytest.raises(DirectoryError, match="password policy"):
        await fresh.set_password(dn, "Jsmith.Demo-2026")  # holds the account name
    bad = lambda c: c.modify(dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, ["Plain-Text-1"])]})  # noqa: E731
    assert (await _raw(fresh, bad))[1] == 19
    await fresh.set_password(dn, "Corr3ct-Horse!")
    await fresh.modify(dn, {"userAccountControl": (("514",), ["512"])})
    entry = await _read(fresh, dn, "*")
    assert "unicodepwd" not in entry.attributes and "userpassword" not in entry.attributes
    assert entry.first("pwdLastSet")
    server = await fresh.pool.run(lambda c: c.server)
    conn = demo_connection(server, NEW_USER["userPrincipalName"], "Corr3ct-Horse!")
    assert conn.bound
    with pytest.raises(AuthenticationFailed):
        demo_connection(server, NEW_USER["userPrincipalName"], "corr3ct-horse!")


async def test_one_level_search_returns_children_only(demo):
    users_ou = _users_ou("Smith, Jones & Partners")
    entries = await demo.pool.run(lambda c: ops.search(c, users_ou, "(objectClass=*)", "one", ["cn"]))
    assert sorted(e.dn.lower() for e in entries) == sorted(canonical_dn(e.dn).lower() for e in SEED.users(users_ou))
    customers = await demo.pool.run(lambda c: ops.search(c, HOSTING, "(objectClass=organizationalUnit)", "one", ["ou"]))
    assert not any(same_dn(e.dn, HOSTING) for e in customers)
    assert await demo.pool.run(lambda c: ops.search(c, f"OU=Nowhere,{HOSTING}", "(objectClass=*)", "one", ["cn"])) == []


async def test_concurrent_reads_and_writes_share_one_directory(fresh):
    big = await fresh.customer(SEED.big_customer)
    group = _group_dn("Fabrikam", "Services", "Hosted Exchange")
    users = [e.dn for e in SEED.users(_users_ou("Fabrikam"))][:10]
    results = await asyncio.gather(
        *(fresh.users(big, "ana") for _ in range(3)),
        *(fresh.add_member(group, u) for u in users),
    )
    assert all(len(r) == len(results[0]) for r in results[:3])
    members = {canonical_dn(m).lower() for m in (await _read(fresh, group, "member")).get("member")}
    assert {canonical_dn(u).lower() for u in users} <= members
