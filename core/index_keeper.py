"""Keeps a local index fresh (the customers', the open customer's users'): a cheap
check every interval, a delta when needed.

:meth:`IndexKeeper.run` is the console's background task (cancelled on exit): it
loads the index (or refreshes the snapshot it started from), then every
``refresh_seconds`` — or at once when :meth:`poke`d (Tenantry changed something) —
asks the DC whether anything changed and reads only what did. The interval grows with
what the last refresh cost the DC (:data:`COST_FACTOR` × its time), so a slow DC is
asked less often; every :data:`RECONCILE_SECONDS` a reconcile by objectGUID drops the
customers a delta cannot see gone. Every refresh reads from one DC
(:meth:`Directory.pinned <core.directory.Directory.pinned>`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from core.config import Config, ConsoleConfig
from core.customer_index import CustomerIndex, Refreshed
from core.directory.layout import Layout
from core.errors import TenantryError
from core.index_snapshot import Snapshot
from core.state import state_dir

if TYPE_CHECKING:
    from core.directory import Directory
    from core.directory.pinned import PinnedReads

log = logging.getLogger("tenantry.index")

COST_FACTOR = 50  # the DC spends at most ~2% of its time on one console's refreshes
RECONCILE_SECONDS = 600.0

LOADING = "loading"
REFRESHING = "refreshing"
FRESH = "fresh"
FAILED = "failed"


class Refreshable(Protocol):
    """What a keeper keeps fresh: :class:`CustomerIndex`, :class:`~core.user_index.UserIndex`."""

    complete: bool

    async def refresh(self, reads: PinnedReads) -> Refreshed: ...

    async def reconcile(self, reads: PinnedReads) -> Refreshed: ...


class IndexKeeper:
    """Loads and refreshes ``index`` from a directory; saves it to ``snapshot``."""

    def __init__(
        self, index: Refreshable, *, interval: float, snapshot: Snapshot | None = None, reconcile_every: float = RECONCILE_SECONDS,
        name: str = "customer index",
    ) -> None:
        self.index = index
        self.name = name
        self.interval = interval
        self.reconcile_every = reconcile_every  # seconds between two reconciles by objectGUID
        self.snapshot = snapshot
        self.state = LOADING if not index.complete else REFRESHING
        self.error: str | None = None  # the last refresh's failure, one sentence
        self.last: Refreshed | None = None
        self.refreshes = 0  # refreshes finished (tests and the bench wait on it)
        self._poked = asyncio.Event()
        self._reconciled = time.monotonic()
        self._listeners: list[Callable[[], None]] = []
        self._task: asyncio.Task | None = None

    def watch(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` after each refresh (and when its state changes)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _tell(self) -> None:
        for listener in list(self._listeners):
            listener()

    def poke(self) -> None:
        """Refresh now (Tenantry itself just changed the directory)."""
        self._poked.set()

    def start(self, directory: Directory) -> None:
        """Keep refreshing from ``directory`` in a task of its own until :meth:`stop`."""
        self.stop()
        self._task = asyncio.get_running_loop().create_task(self.run(directory), name=f"{self.name} refresh")

    @property
    def running(self) -> bool:
        return self._task is not None

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def run(self, directory: Directory) -> None:
        """Refresh from ``directory`` until cancelled (the first refresh after one interval,
        or at once if the index was never loaded)."""
        result = self.last
        while True:
            if self.index.complete:
                wait = max(self.interval, COST_FACTOR * result.seconds) if result else self.interval
                try:
                    await asyncio.wait_for(self._poked.wait(), wait)
                except asyncio.TimeoutError:
                    pass
                self._poked.clear()
            result = await self.refresh(directory)
            if result is None and directory.connection.lost:
                await directory.connection.wait_available()  # the app's banner says why

    async def refresh(self, directory: Directory) -> Refreshed | None:
        """One refresh (a reconcile first when one is due); ``None`` if it failed."""
        if self.index.complete:
            self.state = REFRESHING
        self._tell()
        try:
            async with directory.pinned() as reads:
                dropped = 0
                if self.index.complete and time.monotonic() - self._reconciled >= self.reconcile_every:
                    dropped = (await self.index.reconcile(reads)).changed
                    self._reconciled = time.monotonic()
                result = await self.index.refresh(reads)
                if dropped:  # what the reconcile changed is this refresh's change too
                    result = dataclasses.replace(result, changed=result.changed + dropped)
        except TenantryError as error:
            self._failed(str(error))
            return None
        self.last, self.state, self.error = result, FRESH, None
        self.refreshes += 1
        if self.snapshot is not None and (result.changed or result.kind == "reload"):
            await asyncio.to_thread(self.snapshot.write, self.snapshot.capture(self.index))
        self._tell()
        return result

    def _failed(self, sentence: str) -> None:
        log.warning("The %s was not refreshed: %s", self.name, sentence)
        self.state, self.error = FAILED, sentence
        self.refreshes += 1
        self._tell()


def customer_index_keeper(config: Config | None, console: ConsoleConfig, state: Path | None) -> IndexKeeper:
    """The console's customer index, restored from its snapshot when there is one.

    Without a configuration at start (the demo directory brings its own) nothing is
    kept on disk."""
    snapshot = None
    index = CustomerIndex()
    if config is not None:
        try:
            snapshot = Snapshot.of(config, state or state_dir())
        except TenantryError as error:
            log.warning("The customer snapshot cannot be kept: %s", error)
        else:
            snapshot.restore(index, Layout(config).with_tenant)
    return IndexKeeper(index, interval=console.refresh_seconds, snapshot=snapshot)
