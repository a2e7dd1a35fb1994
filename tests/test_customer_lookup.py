"""Cross-customer lookups (core/customer_lookup.py, Directory.user): indexed equality
first, then the local index, then a bounded prefix search on the DC — never a
medial-substring scan — on the demo directory and the real Samba AD DC."""

from __future__ import annotations

import contextlib

import pytest

from core.customer_index import CustomerIndex
from core.customer_lookup import find_customers
from core.errors import NotFound

pytestmark = pytest.mark.asyncio(loop_scope="session")


@contextlib.contextmanager
def no_substring_search(directory):
    """Fails the test if the server is asked for a substring search of the customers."""
    original = directory.customers

    async def refused(*args, **kwargs):
        raise AssertionError(f"a substring search of the customers was made: {kwargs}")

    directory.customers = refused
    try:
        yield
    finally:
        directory.customers = original


async def loaded(directory) -> CustomerIndex:
    index = CustomerIndex()
    await index.load(directory)
    return index


@pytest.mark.parametrize("directory", ["demo", "dc"], indirect=True)
async def test_an_exact_name_or_domain_comes_first(directory):
    index = await loaded(directory)
    globex = next(c for c in index.customers if c.name == "Globex Corporation")
    with no_substring_search(directory):
        for text in ("Globex Corporation", "globex corporation", globex.domains[1]):
            found = await find_customers(directory, index, text, 10)
            assert found[0].dn.casefold() == globex.dn.casefold(), text
        found = await find_customers(directory, None, globex.domains[0].upper(), 10)
        assert [c.name for c in found] == ["Globex Corporation"]


@pytest.mark.parametrize("directory", ["demo", "dc"], indirect=True)
async def test_the_index_answers_inside_names_and_the_dc_only_prefixes(directory):
    index = await loaded(directory)
    with no_substring_search(directory):
        inside = await find_customers(directory, index, "lobex", 10)
        assert [c.name for c in inside] == [c.name for c in index.search("lobex", 10).rows] and inside
        assert await find_customers(directory, None, "lobex", 10) == []  # no medial scan without the index
        starting = await find_customers(directory, None, "Glob", 10)
        assert [c.name for c in starting] == ["Globex Corporation"]
        bounded = await find_customers(directory, None, "A", 3)
        assert len(bounded) == 3 and all(c.name.casefold().startswith("a") for c in bounded)


@pytest.mark.parametrize("directory", ["demo", "dc"], indirect=True)
async def test_a_user_is_found_by_an_address_as_well_as_by_upn(directory):
    customer = await directory.customer("Globex Corporation")
    users = [await directory.user(u.dn) for u in (await directory.users(customer))[:40]]
    with_alias = next(
        u for u in users
        if any(a.startswith("smtp:") and a[5:].casefold() not in ((u.upn or "").casefold(), (u.email or "").casefold()) for a in u.proxy_addresses)
    )
    alias = next(a[5:] for a in with_alias.proxy_addresses if a.startswith("smtp:") and a[5:].casefold() != (with_alias.email or "").casefold())
    assert (await directory.user(alias)).dn == with_alias.dn
    assert (await directory.user(alias.upper())).dn == with_alias.dn
    with pytest.raises(NotFound):
        await directory.user("nobody-" + alias)
