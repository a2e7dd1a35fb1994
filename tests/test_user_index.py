"""The open customer's users held locally (core/user_index.py): the same users as the
server's search for the same text (demo and DC, the seed's hostile names included), the
first page shown while the rest streams in, keys filtering during the load, and a
customer over the cap searched on the server instead. Waits on workers and events only."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import unicodedata
import weakref

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from textual.widgets import Input

from core.directory.layout import dn_key
from core.local_search import fold
from core.user_index import UserIndex
from index_console import column, count, held_after_the_first_page
from console_keys import SIZE, QuickApp, demo, settle, state  # noqa: F401
from screens.users import UsersScreen, UserTable

pytestmark = pytest.mark.asyncio(loop_scope="session")

EVERYTHING = 10**6


def keys(users) -> set:
    return {dn_key(u.dn) for u in users}


async def held(directory, customer) -> UserIndex:
    index = UserIndex(customer, cap=50_000)
    await index.load(directory, lambda: None)
    assert index.complete
    return index


@st.composite
def _probe(draw, values: list[str]) -> str:
    value = draw(st.sampled_from(values))
    start = draw(st.integers(0, max(0, len(value) - 1)))
    text = value[start:draw(st.integers(start + 1, len(value)))]
    return text.upper() if draw(st.booleans()) else text


@pytest.mark.parametrize("directory", ["demo", "dc"], indirect=True)
async def test_local_user_search_equals_the_servers_answer(directory):
    from core.demo.seed import build_seed

    seed = build_seed()
    customers = await directory.customers(with_services=False)
    big = next(c for c in customers if c.name == seed.big_customer)
    hostile = [c for c in customers if c.name in seed.hostile_customers]
    for customer in [big, *hostile[:3]]:
        index = await held(directory, customer)
        everyone = await directory.users(customer)
        assert keys(index.users) == keys(everyone) and len(index) == len(everyone)
        values = [v for u in everyone[:300] for v in (u.display_name, u.upn, u.email, u.sam) if v] or ["x"]
        probes: list[str] = []

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(_probe(values))
        def collect(text):
            probes.append(text)

        collect()
        for text in [*probes, "", "*", ")(", "müller", "zzzz-none"]:
            wanted = text.strip()
            server = keys(await directory.users(customer, search=wanted or None))
            local = index.search(text, EVERYTHING)
            here = keys(local.rows)
            if fold(wanted) == unicodedata.normalize("NFKD", wanted).casefold():
                assert here == server, (customer.name, text)
            else:
                assert server <= here, (customer.name, text)
            assert local.total == len(local.rows)


async def test_rows_are_compact_but_show_what_the_table_needs(demo_directory):
    customers = await demo_directory.customers()
    customer = max(customers, key=lambda c: len(c.services))
    index = await held(demo_directory, customer)
    full = {dn_key(u.dn): u for u in await demo_directory.users(customer)}
    for user in index.users:
        same = full[dn_key(user.dn)]
        assert user.attributes == () and user.groups == () and user.guid
        assert (user.display_name, user.upn, user.email, user.sam, user.services, user.roles, user.enabled) == (
            same.display_name, same.upn, same.email, same.sam, same.services, same.roles, same.enabled
        )


# --- the users screen -------------------------------------------------------------------

def names(app) -> list[str]:
    return column(app, UserTable, 1)



async def open_big_customer(app, pilot, demo) -> None:
    from core.demo.seed import build_seed

    customer = await demo.customer(build_seed().big_customer)
    app.open_customer(customer)
    await pilot.pause()
    assert isinstance(app.screen, UsersScreen)


async def test_the_first_page_shows_at_once_and_keys_filter_while_the_rest_loads(demo):
    app = QuickApp(demo, None)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        with held_after_the_first_page(demo) as (release, first_shown, searches):
            await open_big_customer(app, pilot, demo)
            await asyncio.wait_for(first_shown.wait(), 60)  # bounds a hung test only
            await pilot.pause()
            screen = app.screen
            held_now = len(screen.index)
            assert 0 < held_now < 1500 and screen.index.loading
            assert names(app) == [u.display_name or u.cn for u in screen.index.users][: len(names(app))]
            assert f"· loading {held_now:,}…" in count(app)
            await pilot.press("slash")
            for key in "ma":
                await pilot.press(key)
            typed = screen.query_one("#search", Input).value
            assert names(app) == [u.display_name or u.cn for u in screen.index.search(typed, EVERYTHING).rows][:200]
            assert screen.index.loading  # still loading: the keys did not wait for it
            release.set()
            await settle(pilot)
            assert screen.index.complete and len(screen.index) > 1500 and "loading" not in count(app)
            assert names(app) == [u.display_name or u.cn for u in screen.index.search(typed, 200).rows]
        assert searches == []  # the server was never searched


async def test_a_customer_over_the_cap_is_searched_on_the_server(demo):
    config = dataclasses.replace(demo.config, console=dataclasses.replace(demo.config.console, users_cap=100))
    app = QuickApp(demo, config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        with held_after_the_first_page(demo) as (release, _first, searches):
            release.set()
            await open_big_customer(app, pilot, demo)
            await settle(pilot)
            screen = app.screen
            assert screen.index.over_cap and len(screen.index) == 0  # the rows read were let go
            assert count(app).endswith("· over 100 users: searched on the DC")
            await pilot.press("slash", "m", "a")
            await settle(pilot)
            assert searches[-1] == "ma"
            assert names(app) == [u.display_name or u.cn for u in await demo.users(screen.customer, search="ma", limit=201)][:200]


async def test_a_closed_users_screen_lets_its_users_go_at_once(demo):
    app = QuickApp(demo, None)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await open_big_customer(app, pilot, demo)
        await settle(pilot)
        screen = app.screen
        assert screen.index.complete and len(screen.index) > 1500 and screen.rows
        hidden = weakref.ref(screen.index.users[-1])  # not on screen: held by the index only
        gc_was = gc.isenabled()
        gc.disable()  # freed by reference counts, not by a garbage collection
        try:
            await pilot.press("escape")
            await settle(pilot)
            assert app.screen is not screen
            assert len(screen.index) == 0 and not screen.index.complete and screen.rows == {}
            assert hidden() is None
        finally:
            if gc_was:
                gc.enable()


# --- kept fresh on the DC ------------------------------------------------------------------

async def until_refreshed(pilot, keeper, after: int) -> None:
    """Let the app run until ``keeper`` finished a refresh after its ``after``-th."""
    from console_keys import until

    await until(pilot, lambda: keeper.refreshes > after, "refreshed the open customer's users")
    await settle(pilot)


@pytest.mark.dc
async def test_a_change_made_on_the_dc_by_another_connection_appears_within_one_refresh(dc_directory, dc_config_file, sp_password):
    import time

    from core.config import load
    from core.demo.seed import build_seed
    from core.directory import connect, ops

    seed = build_seed()
    candidates = [c for c in await dc_directory.customers(with_services=False) if c.name not in (seed.big_customer, *seed.hostile_customers)]
    customer = next(c for c in candidates if 2 <= len(seed.users(f"OU=Users,{c.dn}")) <= 50)
    other = await connect(load(dc_config_file), sp_password)  # someone else's connection
    app = QuickApp(dc_directory, dc_directory.config)
    tag = f"zebulon{time.time_ns()}"
    victim = None
    added = f"CN={tag},{other.layout.users_dn(customer.dn)}"
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = app.open_customer(customer)
            await settle(pilot)
            keeper = screen.keeper
            assert screen.index.complete and keeper.running and screen.index.point is not None
            victim = screen.index.users[0]
            await other.modify(victim.dn, {"displayName": ([victim.display_name], [f"Zebulon {tag}"])})
            await other.pool.run(lambda c: ops.add(c, added, {
                "objectClass": ["top", "person", "organizationalPerson", "user"], "sAMAccountName": tag[-18:],
                "displayName": f"{tag} Added", "userPrincipalName": f"{tag}@{customer.domains[0]}"}))
            done = keeper.refreshes
            keeper.poke()
            await until_refreshed(pilot, keeper, done)
            assert keeper.last.kind == "delta" and keeper.last.changed == 2
            await pilot.press("slash", *"zebulon")
            assert sorted(names(app)) == sorted([f"Zebulon {tag}", f"{tag} Added"])
            # deleted by someone else: gone after the refresh (a tombstone, or the reconcile by objectGUID)
            await other.pool.run(lambda c: ops.delete(c, added))
            keeper.reconcile_every = 0
            done = keeper.refreshes
            keeper.poke()
            await until_refreshed(pilot, keeper, done)
            assert names(app) == [f"Zebulon {tag}"] and not keeper.error
            await pilot.press("escape", "escape", "escape")
            await settle(pilot)
            assert not isinstance(app.screen, UsersScreen) and not keeper.running  # no refresh outlives the screen
    finally:
        if victim is not None:
            await other.modify(victim.dn, {"displayName": ([f"Zebulon {tag}"], [victim.display_name])})
        with contextlib.suppress(Exception):
            await other.pool.run(lambda c: ops.delete(c, added))
        await other.close()
