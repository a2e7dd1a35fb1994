"""The customers screen on the local customer index, driven by keys at 80×24: each key
filters in its own frame (no search on the server, no worker), the first rows come from
the snapshot marked with its age, and a refresh stuck on a frozen DC (its samba process
stopped with SIGSTOP) never holds a key back. Tests wait on the keeper's events and the
app's workers, never on time."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import time

import pytest
from textual.widgets import Input

from core.index_keeper import REFRESHING
from core.index_snapshot import Snapshot
from index_console import column, count
from console_keys import SIZE, QuickApp, demo, settle, state  # noqa: F401
from screens.customers import CustomersScreen, CustomerTable

pytestmark = pytest.mark.asyncio(loop_scope="session")

EVERYTHING = 10**6


def names(app) -> list[str]:
    return column(app, CustomerTable, 0)



@contextlib.contextmanager
def counting_searches(directory):
    """Counts the server searches for customers while the test runs."""
    calls: list[object] = []
    original = directory.customers

    async def counted(*args, **kwargs):
        calls.append(kwargs.get("search"))
        return await original(*args, **kwargs)

    directory.customers = counted
    try:
        yield calls
    finally:
        del directory.customers


async def until_keeper(keeper, condition) -> None:
    """Wait for the keeper's next events until ``condition()`` holds."""
    changed = asyncio.Event()
    stop = keeper.watch(changed.set)
    try:
        while not condition():
            await asyncio.wait_for(changed.wait(), 60)  # bounds a hung test only
            changed.clear()
    finally:
        stop()


async def test_each_key_filters_the_index_in_its_own_frame(demo):
    app = QuickApp(demo, None)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        index = app.index_keeper.index
        assert index.complete and isinstance(app.screen, CustomersScreen)
        assert names(app) == [c.name.replace("\x1b", "") for c in index.customers][: len(names(app))]
        with counting_searches(demo) as searches:
            await pilot.press("slash")
            typed = ""
            for key in "glob":
                await pilot.press(key)
                typed += key
                assert app.screen.query_one("#search", Input).value == typed
                assert names(app) == [c.name for c in index.search(typed, EVERYTHING).rows]
                assert not [w for w in app.workers if w.group == "search" and not w.is_finished]
            await pilot.press("backspace", "backspace", "backspace", "backspace")
            assert len(names(app)) == len(index)
        assert searches == []  # the server was never asked
        assert names(app)[:1] and count(app) == f"{len(index)} customers"


async def test_what_lasts_is_frozen_once_the_index_is_loaded_and_let_go_when_the_console_closes(demo):
    app = QuickApp(demo, None)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        index = app.index_keeper.index
        assert index.complete and gc.get_freeze_count() > 0
        collected = {id(o) for o in gc.get_objects()}  # the generations a full collection scans
        assert not any(id(c) in collected for c in index.customers)
        assert id(app) not in collected
    assert gc.get_freeze_count() == 0


async def test_the_first_rows_come_from_the_snapshot_marked_with_their_age(demo, state):
    from core.customer_index import CustomerIndex

    index = CustomerIndex()
    await index.load(demo)
    index.read_at = time.time() - 2 * 3600
    Snapshot.of(demo.config, state).save(index)
    release = asyncio.Event()

    async def opener():
        await release.wait()
        return demo

    app = QuickApp(opener, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert len(names(app)) == len(index)  # before the directory even opened
        assert count(app).endswith("· 2 h old, refreshing…")
        release.set()
        await settle(pilot)
        await until_keeper(app.index_keeper, lambda: app.index_keeper.refreshes > 0)
        await pilot.pause()
        assert count(app) == f"{len(index)} customers"
    app.index_keeper.stop()


@pytest.mark.dc
async def test_a_refresh_stuck_on_a_frozen_dc_never_holds_a_key(dc_directory, samba_dc_server):
    dc = samba_dc_server
    app = QuickApp(dc_directory, dc_directory.config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        keeper = app.index_keeper
        index = keeper.index
        assert index.complete
        done = keeper.refreshes
        os.kill(dc.process.pid, signal.SIGSTOP)
        try:
            keeper.poke()
            await until_keeper(keeper, lambda: keeper.state == REFRESHING)
            await pilot.press("slash")
            typed = ""
            for key in "globex":
                await pilot.press(key)
                typed += key
                assert keeper.state == REFRESHING and keeper.refreshes == done  # still stuck on the DC
                assert names(app) == [c.name for c in index.search(typed, EVERYTHING).rows]
            assert names(app) == ["Globex Corporation"]
        finally:
            os.kill(dc.process.pid, signal.SIGCONT)
        await until_keeper(keeper, lambda: keeper.refreshes > done)
        assert keeper.error is None
