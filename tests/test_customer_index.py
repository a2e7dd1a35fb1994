"""The local customer index (core/customer_index.py) against the server's own answer,
on the demo directory and on the real Samba AD DC: the same customers for the same
text over the seed's hostile names, the same services column, and kept fresh from
changes made on the DC by another connection (one refresh each, triggered directly:
no sleeping)."""

from __future__ import annotations

import asyncio
import contextlib
import unicodedata

import ldap3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.customer_index import CustomerIndex
from core.local_search import fold
from core.escape import child_dn
from core.directory.layout import dn_key
from core.directory.pinned import ChangePoint
from core.index_keeper import FRESH, IndexKeeper

pytestmark = pytest.mark.asyncio(loop_scope="session")

EVERYTHING = 10**6


async def loaded(directory) -> CustomerIndex:
    index = CustomerIndex()
    await index.load(directory)
    return index


def keys(customers) -> set:
    return {dn_key(c.dn) for c in customers}


def accent_free(text: str) -> bool:
    return fold(text) == unicodedata.normalize("NFKD", text).casefold()


# --- search: the same answer as the server ---------------------------------------------------

@pytest.fixture(scope="module")
def texts(request):
    """Substrings of every seed customer's name and domains (the hostile names included)."""
    from core.demo.seed import build_seed

    seed = build_seed()
    found: list[str] = []
    for entry in seed.customers():
        for field in ("ou", "uPNSuffixes"):
            found.extend(entry.attributes.get(field, ()))
    return found


@st.composite
def _probe(draw, values: list[str]) -> str:
    value = draw(st.sampled_from(values))
    start = draw(st.integers(0, max(0, len(value) - 1)))
    end = draw(st.integers(start + 1, len(value)))
    text = value[start:end]
    return text.upper() if draw(st.booleans()) else text


async def _agree(directory, index: CustomerIndex, text: str) -> None:
    wanted = text.strip()
    server = keys(await directory.customers(search=wanted or None, with_services=False))
    local = index.search(text, EVERYTHING)
    assert local.total == len(local.rows)
    here = keys(local.rows)
    if accent_free(wanted):
        assert here == server, text
    else:  # the index also ignores accents, which the DC does not
        assert server <= here, text
        for customer in local.rows:
            if dn_key(customer.dn) not in server:
                fields = (customer.name, *customer.domains)
                assert not any(wanted.casefold() in f.casefold() for f in fields), text


@pytest.mark.parametrize("directory", ["demo", "dc"], indirect=True)
async def test_local_search_equals_the_servers_answer(directory, texts):
    index = await loaded(directory)
    assert keys(index.customers) == keys(await directory.customers(with_services=False))
    probes = []

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(_probe(texts))
    def collect(text):
        probes.append(text)

    collect()
    for text in [*probes, "", " ", "*", ")(", "\\", "[", "é", "MÜLLER", "zzzz-no-such"]:
        await _agree(directory, index, text)


@pytest.mark.parametrize("directory", ["demo", "dc"], indirect=True)
async def test_the_services_column_equals_the_per_customer_read(directory):
    index = await loaded(directory)
    by_dn = {dn_key(c.dn): c for c in await directory.customers()}
    assert len(by_dn) == len(index)
    for customer in index.customers:
        server = by_dn[dn_key(customer.dn)]
        assert (customer.name, customer.domains, customer.reseller, customer.code) == (server.name, server.domains, server.reseller, server.code)
        assert (customer.services, customer.plans) == (server.services, server.plans), customer.name
        assert customer.guid


async def test_prefix_matches_come_first_then_by_name(demo_directory):
    index = await loaded(demo_directory)
    found = index.search("co", EVERYTHING).rows
    starts = [any(fold(f).startswith("co") for f in (c.name, *c.domains)) for c in found]
    assert starts == sorted(starts, reverse=True) and any(starts) and not all(starts)
    first = [c.name.casefold() for c, s in zip(found, starts) if s]
    assert first == sorted(first)
    limited = index.search("co", 3)
    assert limited.rows == found[:3] and limited.total == len(found)


async def test_accents_and_case_are_ignored(demo_directory):
    index = await loaded(demo_directory)
    for customer in index.customers:
        plain_name = "".join(c for c in unicodedata.normalize("NFKD", customer.name) if not unicodedata.combining(c))
        assert customer in index.search(plain_name.swapcase(), EVERYTHING).rows


# --- kept fresh: changes made on the DC by another connection -----------------------------

@contextlib.contextmanager
def a_customer_ou(samba_admin, samba_dc, name: str, domain: str):
    """A customer OU made on the DC by the administrator's own connection, removed after."""
    hosting = f"OU=Hosting,{samba_dc.base_dn}"
    made: list[str] = [child_dn("OU", name, hosting)]
    ok = samba_admin.add(made[0], ["top", "organizationalUnit"], {"businessCategory": "customer", "uPNSuffixes": [domain]})
    assert ok, samba_admin.result
    try:
        yield made
    finally:
        for dn in made:
            for child in _children(samba_admin, dn):
                samba_admin.delete(child)
            samba_admin.delete(dn)


def _children(conn, dn: str) -> list[str]:
    conn.search(dn, "(objectClass=*)", ldap3.SUBTREE, attributes=["1.1"])
    found = [e["dn"] for e in conn.response if e.get("type") == "searchResEntry" and dn_key(e["dn"]) != dn_key(dn)]
    return sorted(found, key=lambda d: -len(dn_key(d)))


def keeper_of(index: CustomerIndex) -> IndexKeeper:
    return IndexKeeper(index, interval=3600)


@pytest.mark.dc
async def test_a_customer_added_renamed_and_deleted_on_the_dc_shows_after_one_refresh(dc_directory, samba_admin, samba_dc):
    index = await loaded(dc_directory)
    keeper = keeper_of(index)
    before = len(index)
    with a_customer_ou(samba_admin, samba_dc, "Zephyr Index Probe", "zephyr-probe.example") as made:
        result = await keeper.refresh(dc_directory)
        assert result is not None and result.kind == "delta" and keeper.state == FRESH
        [added] = index.search("zephyr", EVERYTHING).rows
        # found by the domain its OU claims; usable domains come only from the SP's [tenants] map
        assert added.claimed_domains == ("zephyr-probe.example",) and added.domains == () and len(index) == before + 1

        renamed = child_dn("OU", "Quokka Index Probe", f"OU=Hosting,{samba_dc.base_dn}")
        assert samba_admin.modify_dn(made[0], "OU=Quokka Index Probe"), samba_admin.result
        made[0] = renamed
        await keeper.refresh(dc_directory)
        assert not index.search("zephyr index", EVERYTHING).rows
        [moved] = index.search("quokka", EVERYTHING).rows
        assert moved.guid == added.guid and len(index) == before + 1

        services = child_dn("OU", "Services", renamed)
        assert samba_admin.add(services, ["top", "organizationalUnit"]), samba_admin.result
        group = child_dn("CN", "Hosted Exchange", services)
        assert samba_admin.add(group, ["top", "group"], {"sAMAccountName": "probe-quokka-exch"}), samba_admin.result
        await keeper.refresh(dc_directory)
        [served] = index.search("quokka", EVERYTHING).rows
        assert served.services == ("exchange",)
    keeper.reconcile_every = 0  # an operator sees no tombstones: the reconcile finds deletions
    result = await keeper.refresh(dc_directory)  # the context deleted it
    assert not index.search("quokka", EVERYTHING).rows and len(index) == before
    assert keys(index.customers) == keys(await dc_directory.customers(with_services=False))


@pytest.mark.dc
async def test_a_refresh_with_nothing_changed_reads_nothing_more(dc_directory):
    index = await loaded(dc_directory)
    keeper = keeper_of(index)
    first = await keeper.refresh(dc_directory)
    second = await keeper.refresh(dc_directory)
    assert first is not None and second is not None
    assert second.kind == "unchanged" and second.changed == 0


@pytest.mark.dc
async def test_another_dc_means_a_full_reload(dc_directory):
    index = await loaded(dc_directory)
    assert index.point is not None and index.point.invocation  # Samba publishes its invocationId
    index.point = ChangePoint(index.point.server, "00000000-0000-0000-0000-000000000000", index.point.usn)
    result = await IndexKeeper(index, interval=3600).refresh(dc_directory)
    assert result is not None and result.kind == "reload"
    assert index.point.invocation != "00000000-0000-0000-0000-000000000000"


@pytest.mark.dc
async def test_a_reconcile_drops_what_the_dc_no_longer_has(dc_directory):
    index = await loaded(dc_directory)
    real = len(index)
    ghost = index.customers[0].__class__(name="Ghost", dn=f"OU=Ghost,{dc_directory.layout.hosting_dn}", guid="11111111-2222-3333-4444-555555555555")
    index.update(ghost)
    async with dc_directory.pinned() as reads:
        result = await index.reconcile(reads)
    assert result.changed == 1 and len(index) == real and not index.search("ghost", EVERYTHING).rows


async def test_a_failed_refresh_is_one_sentence_and_keeps_the_rows(demo_directory, caplog):
    index = await loaded(demo_directory)
    keeper = keeper_of(index)

    class Refusing:
        connection = demo_directory.connection

        @contextlib.asynccontextmanager
        async def pinned(self):
            from core.errors import DirectoryError

            raise DirectoryError("The domain controller refused the search.")
            yield

    rows = index.customers
    assert await keeper.refresh(Refusing()) is None
    assert keeper.error == "The domain controller refused the search." and index.customers == rows
    assert [r.getMessage() for r in caplog.records if r.name == "tenantry.index"] == [
        "The customer index was not refreshed: The domain controller refused the search."
    ]
    await asyncio.sleep(0)
