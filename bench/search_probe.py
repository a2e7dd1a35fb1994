"""Search-as-you-type in the console, driven with Pilot at 80×24 against the bench DC.

Run in a process of its own (``python -m bench.search_probe JOB.json``) so that its
resident memory is the console's: the console opens the directory as ``tenantry``
does, then keys are pressed one at a time on the customers screen and on the big
customer's users screen. Each keystroke's latency runs from just before the key press
to the moment the screen's table holds the new rows (the end of its
``show_found``); the next key is pressed once the app is idle again.
Keys go to the app's driver as Pilot sends them, without Pilot's own waits for an idle
process (each sleeps at least 20 ms, which would be counted as latency).
The directory call inside each search is timed too (``core`` ms), to tell the core's
share from the screen's. Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import json
import os
import sys
import time
import unicodedata
from collections import Counter
from pathlib import Path

from textual import events
from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key

from core.config import load, read_password
from core.directory import connect
from tui.app import TenantryApp

SIZE = (80, 24)
TIMEOUT = 60  # seconds for one search to show its rows


def _rss_mb() -> dict[str, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return {"rss": fields.get("VmRSS", 0.0), "peak": fields.get("VmHWM", 0.0)}


class Timed:
    """Wraps the open directory's two searches to time the core's part of a keystroke."""

    def __init__(self, directory) -> None:
        self.core: list[float] = []
        for name in ("customers", "users"):
            original = getattr(directory, name)

            async def timed(*args, _original=original, **kwargs):
                start = time.perf_counter()
                try:
                    return await _original(*args, **kwargs)
                finally:
                    self.core.append((time.perf_counter() - start) * 1000)

            setattr(directory, name, timed)


class Stalls:
    """What holds the event loop while a customer's users load: each garbage collection
    (its generation and ms), and each batch handed over by the reading child — the ms
    to unpickle it, and the ms the index and the screen spent on it before asking for
    the next one. ms are since ``started``, to match a slow key with what ran then."""

    def __init__(self, directory) -> None:
        from core.directory import row_stream

        self.started = time.perf_counter()
        self.collections: list[dict] = []
        self.batches: list[dict] = []
        self._gc_start = 0.0
        self._scanned: int | None = None
        self._directory, self._module = directory, row_stream
        self._user_rows, self._pickle = directory.user_rows, row_stream.pickle
        stalls = self

        class TimedPickle:
            dumps = staticmethod(row_stream.pickle.dumps)
            HIGHEST_PROTOCOL = row_stream.pickle.HIGHEST_PROTOCOL

            @staticmethod
            def loads(data):
                start = time.perf_counter()
                try:
                    return stalls._pickle.loads(data)
                finally:
                    stalls.batches.append({"at": stalls._ms(start), "bytes": len(data), "unpickle_ms": stalls._ms(start, since=start)})

        async def user_rows(*args, **kwargs):
            async with contextlib.aclosing(self._user_rows(*args, **kwargs)) as batches:
                async for batch in batches:
                    start = time.perf_counter()
                    yield batch
                    if self.batches:
                        self.batches[-1].update(rows=len(batch.rows), handled_ms=self._ms(start, since=start))

        row_stream.pickle = TimedPickle
        directory.user_rows = user_rows
        gc.callbacks.append(self._gc)

    def _ms(self, at: float, since: float | None = None) -> float:
        return ((time.perf_counter() if since is not None else at) - (since if since is not None else self.started)) * 1000

    def _gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._scanned = len(gc.get_objects(2)) if info["generation"] == 2 else None  # what a full one scans besides the young
            self._gc_start = time.perf_counter()
        else:
            self.collections.append({"at": self._ms(self._gc_start), "generation": info["generation"],
                                     "ms": self._ms(self._gc_start, since=self._gc_start), "collected": info["collected"],
                                     "old_objects": self._scanned})

    def stop(self) -> dict:
        gc.callbacks.remove(self._gc)
        self._module.pickle, self._directory.user_rows = self._pickle, self._user_rows
        return {"collections": self.collections, "batches": self.batches}


def _send_key(app, key: str) -> None:
    """Queue one key event on the app's driver, exactly as ``Pilot.press`` builds it."""
    if len(key) == 1 and not key.isalnum():
        key = _character_to_key(key)
    try:
        char = unicodedata.lookup(_get_unicode_name_from_key(REPLACED_KEYS.get(key, key)))
    except KeyError:
        char = key if len(key) == 1 else None
    event = events.Key(key, char)
    event.set_sender(app)
    app._driver.send_message(event)


async def _idle(pilot) -> None:
    app = pilot.app
    while any(not w.is_finished for w in app.workers):
        await asyncio.wait_for(asyncio.gather(*(w.wait() for w in app.workers if not w.is_finished), return_exceptions=True), TIMEOUT)
    await pilot.pause()


async def _type(pilot, screen, method: str, keys: list[str], timer: Timed, loading=None, since: float | None = None) -> list[dict]:
    """Press ``keys``; for each, the ms until ``screen.<method>`` filled the table, and
    when it was pressed (``at``: ms after ``since``, by default the first key).
    With ``loading`` (a callable: is a load still running?), keys follow each other
    without waiting for the app's workers, and each sample says whether it ran during
    the load."""
    since = time.perf_counter() if since is None else since
    shown = asyncio.Event()
    original = getattr(screen, method)
    fill: list[float] = []
    filled_at: list[float] = []

    def hooked(found, text, **more) -> None:
        start = time.perf_counter()
        original(found, text, **more)
        filled_at.append(time.perf_counter())
        fill.append((filled_at[-1] - start) * 1000)
        shown.set()

    setattr(screen, method, hooked)
    search = screen.query_one("#search")
    samples = []
    for key in keys:
        shown.clear()
        core_before, fill_before = len(timer.core), len(fill)
        text = search.value.strip()
        start = time.perf_counter()
        _send_key(pilot.app, key)
        await pilot.pause()  # the key is handled (a search started, or none is needed)
        if search.value.strip() == text:
            continue  # e.g. a trailing space: the same search, none is made
        during = loading() if loading is not None else False
        await asyncio.wait_for(shown.wait(), TIMEOUT)
        latency = (filled_at[-1] - start) * 1000
        if loading is None:
            await _idle(pilot)
        else:
            await pilot.pause()
        samples.append({
            "key": key, "text": search.value, "ms": latency,
            "core_ms": sum(timer.core[core_before:]), "fill_ms": sum(fill[fill_before:]),
            "rows": len(screen.rows), "during_load": during, "at": (start - since) * 1000,
        })
    setattr(screen, method, original)
    return samples


async def main(job: dict) -> dict:
    config = load(job["config"])
    password = read_password(config.directory, prompt=None)

    class App(TenantryApp):
        users_cap: int | None = None  # the huge customer's (None: the configuration's)

        @property
        def console_config(self):
            console = super().console_config
            return console if self.users_cap is None else dataclasses.replace(console, users_cap=self.users_cap)

    if job["debounce"] is not None:
        App.search_debounce = job["debounce"]  # a class attribute overrides the property

    app = App(lambda: connect(config, password), config)
    out: dict = {"debounce": app.search_debounce}
    async with app.run_test(size=SIZE) as pilot:
        directory = await app.wait_for_directory()
        timer = Timed(directory)
        await _idle(pilot)
        customers = app.screen
        await pilot.press("slash")
        out["customers"] = await _type(pilot, customers, "show_found", job["customer_keys"], timer)
        out["memory_customers_only_mb"] = _rss_mb()  # the customer index loaded, no customer opened yet
        big = await directory.customer(job["big_customer"])
        opened = time.perf_counter()
        users = app.open_customer(big)
        while not users.is_mounted or not users.rows:  # the first window on screen (cold: no snapshot of users)
            await asyncio.sleep(0.005)
        out["users_first_rows_ms"] = (time.perf_counter() - opened) * 1000
        await _idle(pilot)
        out["users_first_load_rows"] = len(users.users)
        await pilot.press("slash")
        out["users"] = await _type(pilot, users, "show_found", job["user_keys"], timer)
        out["users_index"] = {"rows": len(users.index), "load_s": users.index.seconds,
                              "bytes_per_row": _bytes_per_row(users.index.users)}
        out["customer_index"] = {"rows": len(app.index_keeper.index), "bytes_per_row": _bytes_per_row(app.index_keeper.index.customers)}
        out["refresh"] = await _refresh_costs(app, directory)
        out["memory_mb"] = _rss_mb()  # the customers indexed and the big customer's users held
        out["dc_cpu_idle"] = await _dc_cpu_idle(job["dc_dir"], job["idle_seconds"])
        out["staleness"] = await _staleness(pilot, users, config, password, job["staleness_samples"])
        # while loads run: the big customer opened again, typed at once; the customers
        # typed while the whole customer index is read again behind them
        users = None  # the console lets the screen it closes go: so does the probe
        await app.pop_screen()
        await pilot.pause()
        stalls = Stalls(directory)
        again = app.open_customer(big)
        while not again.is_mounted or not again.rows:  # the first window on screen: keys then filter rows
            await asyncio.sleep(0.005)                 # that arrived, while the rest stream in
        await pilot.press("slash")
        out["users_loading"] = await _type(pilot, again, "show_found", job["user_keys"], timer, lambda: again.index.loading, stalls.started)
        out["users_loading_stalls"] = stalls.stop()
        out["users_loading_heap"] = _census()
        await _idle(pilot)
        await app.pop_screen()
        await _idle(pilot)
        reload = asyncio.create_task(_reload(app, directory))
        out["customers_loading"] = await _type(pilot, app.screen, "show_found", job["customer_keys"], timer, lambda: not reload.done())
        out["customer_load_s"] = await reload
        out["memory_after_loads_mb"] = _rss_mb()
        out["held_after_loads"] = _held()
        out["huge"] = await _huge_customer(pilot, app, directory, job)
        out["animation_level"] = app.animation_level
    return out


async def _huge_customer(pilot, app, directory, job: dict) -> dict:
    """RSS with a customer over the users cap open: its first window read, then its
    users searched on the DC (none held)."""
    app.users_cap = job["huge_cap"]
    huge = await directory.customer(job["huge_customer"])
    opened = time.perf_counter()
    screen = app.open_customer(huge)
    while not (screen.is_mounted and screen.index.over_cap and screen.rows):  # the DC's first page on screen
        if time.perf_counter() - opened > TIMEOUT * 10:
            raise RuntimeError(f"{job['huge_customer']}'s users were not on screen after {TIMEOUT * 10} s")
        await asyncio.sleep(0.01)
    shown_ms = (time.perf_counter() - opened) * 1000
    await _idle(pilot)
    return {"memory_mb": _rss_mb(), "first_rows_ms": shown_ms, "rows_shown": len(screen.rows), "held": len(screen.index),
            "cap": app.console_config.users_cap}


def _census(top: int = 15) -> dict:
    """The objects a full collection would scan now (every generation; not the frozen),
    by type: what the console keeps tracked beside the rows."""
    kinds = Counter(type(o).__qualname__ for generation in range(3) for o in gc.get_objects(generation))
    return {"objects": sum(kinds.values()), "frozen": gc.get_freeze_count(), "types": dict(kinds.most_common(top))}


def _held() -> dict:
    """How many users screens and indexes are still alive, and their rows: what the
    resident memory after the loads holds twice, if anything."""
    from core.customer_index import CustomerIndex
    from core.local_search import LocalRows
    from core.user_index import UserIndex
    from screens.users import UsersScreen

    gc.collect()
    alive = gc.get_objects()
    return {"tracked_objects": len(alive), "frozen": gc.get_freeze_count()} | {name: [len(o) if hasattr(o, "__len__") else 1 for o in alive if type(o) is kind]
            for name, kind in (("users_screens", UsersScreen), ("user_indexes", UserIndex),
                               ("customer_indexes", CustomerIndex), ("local_rows", LocalRows))}


def _bytes_per_row(rows: list) -> float:
    """The memory of the rows (objects, their attribute dicts, tuples and strings;
    each object counted once) divided by their number. Rows from the reading child
    have their ``__dict__`` already (unpickling fills it), so ``vars()`` adds none."""
    seen: set[int] = set()
    total, stack = 0, list(rows)
    while stack:
        item = stack.pop()
        if id(item) in seen or item is None or isinstance(item, (bool, int, float)):
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, (tuple, list)):
            stack.extend(item)
        elif hasattr(item, "__dict__"):
            stack.append(vars(item))
            stack.extend(vars(item).values())
    return total / max(1, len(rows))


def _dc_cpu_ms(dc_dir: str) -> tuple[float, int]:
    """The CPU time (user + system, ms) of the DC's samba processes so far, and how many
    there are: those running in the DC's directory (samba rewrites its command line)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = found = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not (entry / "comm").read_text().startswith("samba") or os.readlink(entry / "cwd") != dc_dir:
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        found += 1
    return total * 1000 / ticks, found


async def _dc_cpu_idle(dc_dir: str, seconds: float) -> dict:
    """The DC's CPU per minute while the console sits idle with both indexes kept fresh."""
    (before, processes), started = _dc_cpu_ms(dc_dir), time.perf_counter()
    await asyncio.sleep(seconds)  # idle: only the keepers' checks reach the DC
    used, wall = _dc_cpu_ms(dc_dir)[0] - before, time.perf_counter() - started
    return {"cpu_ms": used, "wall_s": wall, "per_minute_ms": used * 60 / wall, "processes": processes}


async def _staleness(pilot, screen, config, password, samples: int) -> dict:
    """ms from a change written on another connection to the row on the users screen:
    a user of the open customer renamed, the screen searching for the new name."""
    other = await connect(config, password)
    search = screen.query_one("#search")
    ms, kinds, renamed = [], [], []
    try:
        named = [u for u in screen.index.users if u.display_name and u.display_name.isascii()]
        victims = named[len(named) // 2::7][:samples]
        for n, victim in enumerate(victims):
            name = f"Staleness {n} {time.time_ns()}"
            search.value = name
            await pilot.pause()
            await other.modify(victim.dn, {"displayName": ([victim.display_name], [name])})
            renamed.append((victim, name))
            written = time.perf_counter()
            while victim.dn not in screen.rows:
                if time.perf_counter() - written > TIMEOUT * 10:
                    raise RuntimeError(f"a change made on another connection was not on screen after {TIMEOUT * 10} s")
                await asyncio.sleep(0.01)
            ms.append((time.perf_counter() - written) * 1000)
            kinds.append(screen.keeper.last.kind if screen.keeper.last else None)
        search.value = ""
        await pilot.pause()
    finally:
        try:  # the DC as it was: the test suite's DC is shared by the tests after the bench's
            for victim, name in renamed:
                await other.modify(victim.dn, {"displayName": ([name], [victim.display_name])})
        finally:
            await other.close()
    return {"ms": ms, "kinds": kinds, "interval_s": screen.keeper.interval}


async def _reload(app, directory) -> float:
    """Read the whole customer index again (as after a fail-over); its seconds."""
    return (await app.index_keeper.index.load(directory)).seconds


async def _refresh_costs(app, directory) -> dict:
    """ms of a refresh when nothing changed (the idle cost), and of a delta after one
    customer's code was changed on another connection (the staleness once checked)."""
    keeper = app.index_keeper
    unchanged = []
    for _ in range(5):
        unchanged.append((await keeper.refresh(directory)).seconds * 1000)
    customer = keeper.index.customers[len(keeper.index) // 2]
    code = directory.config.layout.code_attribute
    old = (await directory.values(customer.dn, [code]))[code]
    await directory.modify(customer.dn, {code: (old, [f"bench-{time.time_ns()}"])})
    delta = await keeper.refresh(directory)
    await directory.modify(customer.dn, {code: ((await directory.values(customer.dn, [code]))[code], old)})
    await keeper.refresh(directory)
    return {"unchanged_ms": unchanged, "delta_ms": delta.seconds * 1000, "delta_kind": delta.kind,
            "delta_changed": delta.changed, "interval_s": keeper.interval}


if __name__ == "__main__":
    result = asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
    print(json.dumps(result))
