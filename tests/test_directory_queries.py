"""Read queries of the directory core, run over the demo directory and the real Samba DC.

Both are loaded from the same seed; every answer is checked against what the seed
says (tests/seed_oracle.py), so the demo is held to the DC's behaviour.
"""

from __future__ import annotations

import pytest

from core.escape import parent_dn
from core.directory.layout import dn_key
from core.errors import NotFound
from seed_oracle import customers as seed_customers
from seed_oracle import users_matching

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
def oracle(demo_seed_and_config):
    seed, config = demo_seed_and_config
    return seed_customers(seed, config)


@pytest.fixture(scope="module")
def demo_seed_and_config():
    from core.demo.directory import demo_config
    from core.demo.seed import build_seed

    return build_seed(), demo_config()


async def test_every_customer_with_reseller_domains_code_and_services(directory, oracle):
    found = await directory.customers()
    assert [c.name for c in found] == sorted(oracle, key=str.casefold)
    for customer in found:
        expected = oracle[customer.name]
        assert dn_key(customer.dn) == dn_key(expected.dn)
        assert (customer.reseller, customer.domains, customer.code) == (expected.reseller, expected.domains, expected.code)
        assert customer.services == expected.services


async def test_customer_search_is_by_name_or_domain(directory, oracle):
    some = next(c for c in oracle.values() if len(c.domains) > 1)
    by_second_domain = await directory.customers(search=some.domains[1])
    assert some.name in [c.name for c in by_second_domain]
    by_name_part = await directory.customers(search=some.name[2:8].upper())
    assert some.name in [c.name for c in by_name_part]
    assert all(
        some.name[2:8].upper().casefold() in c.name.casefold() or any(some.name[2:8].casefold() in d for d in c.domains)
        for c in by_name_part
    )
    assert await directory.customers(search="no-such-customer-anywhere") == []


async def test_customer_lookup_by_exact_name_or_domain(directory, oracle):
    for expected in oracle.values():
        assert (await directory.customer(expected.name)).name == expected.name
    some = next(iter(oracle.values()))
    assert (await directory.customer(some.domains[-1].upper())).name == some.name
    with pytest.raises(NotFound):
        await directory.customer("*")


async def test_hostile_customer_names_round_trip_with_their_users(directory, oracle, demo_seed_and_config):
    seed, _ = demo_seed_and_config
    assert len(seed.hostile_customers) >= 10
    for name in seed.hostile_customers:
        customer = await directory.customer(name)
        assert customer.name == name
        users = await directory.users(customer)
        assert {dn_key(u.dn) for u in users} == {dn_key(u["dn"]) for u in oracle[name].users}
        for user in users:
            seeded = next(u for u in oracle[name].users if dn_key(u["dn"]) == dn_key(user.dn))
            assert user.display_name == seeded["displayName"][0]
            assert user.upn == seeded["userPrincipalName"][0]


async def test_paging_returns_every_user_of_the_big_customer(directory, oracle, demo_seed_and_config):
    seed, _ = demo_seed_and_config
    expected = {dn_key(u["dn"]) for u in oracle[seed.big_customer].users}
    assert len(expected) > 1500
    customer = await directory.customer(seed.big_customer)
    pages = [page async for page in directory.user_pages(customer)]
    assert len(pages) >= 3 and all(len(p) <= directory.page_size for p in pages)
    assert {dn_key(u.dn) for page in pages for u in page} == expected
    assert sum(len(p) for p in pages) == len(expected)


@pytest.mark.parametrize("text", ["*)(objectClass=*", "*", "\\", "\x00", ")(", "müller", "ÉN", "@globex"])
async def test_user_search_returns_only_true_matches(directory, oracle, demo_seed_and_config, text):
    seed, _ = demo_seed_and_config
    customer = await directory.customer(seed.big_customer)
    found = await directory.users(customer, text)
    assert {dn_key(u.dn) for u in found} == users_matching(oracle[seed.big_customer], text)


async def test_users_carry_services_roles_and_state(directory, oracle, demo_seed_and_config):
    seed, config = demo_seed_and_config
    name = next(n for n, c in oracle.items() if 5 <= len(c.users) < 200)
    customer = await directory.customer(name)
    users = {dn_key(u.dn): u for u in await directory.users(customer)}
    for seeded in oracle[name].users:
        user = users[dn_key(seeded["dn"])]
        assert user.sam == seeded["sAMAccountName"][0]
        assert user.enabled == (seeded["userAccountControl"][0] == "512")
        assert user.email == (seeded.get("mail") or (None,))[0]
    member_of = {}
    for entry in seed.entries:
        for member in entry.attributes.get("member", ()):
            member_of.setdefault(dn_key(member), set()).add(entry.dn)
    for key, user in users.items():
        services, _plans, roles = directory.layout.classify_groups(customer.dn, member_of.get(key, ()))
        assert (user.services, user.roles) == (services, roles)


async def test_read_one_user_by_upn_sam_and_dn(directory, oracle, demo_seed_and_config):
    seed, _ = demo_seed_and_config
    # a mailbox without Lync: the demo's Exchange keeps a SIP: address for a Lync user (core.demo.platform)
    seeded = next(u for u in oracle[seed.big_customer].users if u.get("proxyAddresses") and not u.get("msRTCSIP-PrimaryUserAddress"))
    by_upn = await directory.user(seeded["userPrincipalName"][0])
    by_sam = await directory.user(seeded["sAMAccountName"][0])
    by_dn = await directory.user(by_upn.dn)
    assert by_upn.dn == by_sam.dn == by_dn.dn
    assert set(by_upn.proxy_addresses) == set(seeded["proxyAddresses"])
    assert by_upn.guid and by_upn.usn_changed
    with pytest.raises(NotFound):
        await directory.user("nobody*@example.net")


async def test_operator_rights_from_nested_groups(directory, demo_seed_and_config):
    seed, _ = demo_seed_and_config
    customers = {c.name: c for c in await directory.customers(with_services=False)}
    resellers = {r.name: r.dn for r in await directory.resellers()}
    for account in seed.operators:
        rights = (await directory.operator(account.upn)).rights
        kind, _, scope = account.rights.partition(":")
        assert rights.sp_admin == (kind == "sp_admin"), account.name
        assert rights.readonly == (kind == "readonly"), account.name
        assert {dn_key(d) for d in rights.reseller_dns} == ({dn_key(resellers[scope])} if kind == "reseller_admin" else set())
        assert {dn_key(d) for d in rights.user_admin_customer_dns} == (
            {dn_key(customers[scope].dn)} if kind == "user_admin" else set()
        )


async def test_conflicts_name_each_kind(directory, oracle, demo_seed_and_config):
    seed, _ = demo_seed_and_config
    holder = next(u for u in oracle[seed.big_customer].users if len(u.get("proxyAddresses", ())) > 1 and u.get("msRTCSIP-PrimaryUserAddress"))
    alias = next(a.split(":", 1)[1] for a in holder["proxyAddresses"] if a.startswith("smtp:"))
    found = await directory.conflicts(
        upn=holder["userPrincipalName"][0].upper(),
        addresses=[alias, "free.address@nowhere.example"],
        sip=holder["msRTCSIP-PrimaryUserAddress"][0],
        sam=holder["sAMAccountName"][0],
        cn=(holder["cn"][0], parent_dn(holder["dn"])),
    )
    kinds = {(c.kind, dn_key(c.dn)) for c in found}
    key = dn_key(holder["dn"])
    assert {("upn", key), ("address", key), ("sip", key), ("sam", key), ("cn", key)} <= kinds
    assert not [c for c in found if c.value == "free.address@nowhere.example"]
    assert await directory.conflicts(upn=holder["userPrincipalName"][0], exclude_dn=holder["dn"]) == []
