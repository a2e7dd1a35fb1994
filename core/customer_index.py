"""The local index of every customer: searched on every key, kept fresh from one DC.

Substring search on the domain controller is the wall at hosting scale (Samba and AD
index equality only: every ``*x*`` reads every OU), so the console loads the customers
once — one paged search of the customer OUs and one search of the configured service
groups for the services column — and filters them locally: a substring of the name or
of a domain, case- and accent-insensitive (:func:`fold`), names or domains that *start*
with the text first, then by name.

It is kept fresh against one domain controller (:mod:`core.directory.pinned`): a
rootDSE ``highestCommittedUSN`` read per check, a ``uSNChanged`` delta (customer OUs,
service groups, tombstones) only when it moved, a full reload when the DC is another
one (``dsServiceName``/``invocationId``), and a periodic reconcile by objectGUID. The
index is for finding; a plan always reads fresh from the DC.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Iterable

from core import heap
from core.directory.layout import Layout, dn_key
from core.directory.pinned import ChangePoint, PinnedReads
from core.local_search import Found, LocalRows
from core.model import Customer

if TYPE_CHECKING:
    from core.directory import Directory

DELTA_FALLBACK = 200  # more changed customers than this in one delta: reload them all


@dataclass(frozen=True)
class Refreshed:
    """What one refresh did (for the status line and the bench)."""

    kind: str  # "unchanged" | "delta" | "reload" | "reconcile"
    changed: int  # customers added, changed or removed
    seconds: float  # the refresh's wall time


def _identity(customer: Customer) -> str:
    return customer.guid or repr(dn_key(customer.dn))


class CustomerIndex:
    """Every customer of the directory, by objectGUID, searchable locally."""

    def __init__(self) -> None:
        self._rows: LocalRows[Customer] = LocalRows(
            _identity, Layout.customer_searched, lambda c: (c.name.casefold(), c.dn)
        )
        self.point: ChangePoint | None = None  # where the DC stood when the rows were read
        self.read_at: float | None = None  # when the rows were last known current (epoch s)
        self.complete = False  # every customer is in (a load finished, or a snapshot)
        self.version = 0  # raised on every change, so screens know to filter again
        self._listeners: list[Callable[[], None]] = []

    # -- watching ------------------------------------------------------------------
    def watch(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` after every change; returns what stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _changed(self) -> None:
        self.version += 1
        for listener in list(self._listeners):
            listener()

    # -- what it holds ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._rows)

    @property
    def customers(self) -> list[Customer]:
        """Every customer, sorted by name."""
        return self._rows.rows

    def replace_all(
        self, customers: Iterable[Customer], point: ChangePoint | None, read_at: float | None = None, keys: list[str] | None = None,
    ) -> None:
        """Hold exactly ``customers``, read at ``point`` (a load, a snapshot); ``keys``:
        their search keys, when computed already (the reader)."""
        self._rows.clear()
        for i, customer in enumerate(customers):
            self._rows.put(customer, keys[i] if keys else None)
        self.point = point
        self.read_at = time.time() if read_at is None else read_at
        self.complete = True
        self._changed()

    def update(self, customer: Customer) -> None:
        """Put one customer in (or replace it, found by objectGUID): a change Tenantry made."""
        self._rows.put(customer)
        self._changed()

    # -- searching -----------------------------------------------------------------------
    def search(self, text: str | None, limit: int) -> Found[Customer]:
        """The customers whose name or a domain contains ``text`` (case and accents
        ignored): those where it starts the name or a domain first, then by name."""
        return self._rows.search(text, limit)

    def find(self, name_or_domain: str) -> list[Customer]:
        """The customers named exactly so, or owning exactly that domain (case-insensitive)."""
        wanted = name_or_domain.strip().casefold()
        return [
            c for c in self.customers
            if c.name.casefold() == wanted or any(d.casefold() == wanted for d in c.domains)
        ]

    # -- reading from the DC --------------------------------------------------------------
    async def load(self, directory: Directory, on_page: Callable[[int], None] | None = None) -> Refreshed:
        """Read every customer and its services (:meth:`Directory.customer_rows`: in a
        child process, so that the console never holds ldap3's answers), with no full
        garbage collection meanwhile (:func:`core.heap.loading`).

        An empty index shows the customers page by page as they come; one that holds
        rows (a snapshot) keeps them until the whole read is in, then swaps."""
        started = time.perf_counter()
        fresh: list[Customer] = []
        keys: list[str] = []
        point = None
        progressive = not self._rows
        with heap.loading():
            async with contextlib.aclosing(directory.customer_rows()) as batches:
                async for batch in batches:
                    point = batch.point or point
                    fresh.extend(batch.rows)
                    keys.extend(batch.keys or ())
                    if progressive:
                        for i, customer in enumerate(batch.rows):
                            self._rows.put(customer, batch.keys[i] if batch.keys else None)
                        self._changed()
                    if on_page is not None:
                        on_page(len(fresh))
        self.replace_all(fresh, point, keys=keys or None)
        if not progressive:
            heap.give_back()  # the rows the reload replaced
        return Refreshed("reload", len(fresh), time.perf_counter() - started)

    async def refresh(self, reads: PinnedReads) -> Refreshed:
        """Bring the index up to the DC's state: nothing when its USN has not moved, a
        delta when it has, a full reload when the DC is another one (or much changed)."""
        started = time.perf_counter()
        point = await reads.change_point()
        if not point.same_dc(self.point) or not self.complete:
            return await self.load(reads.directory)
        assert self.point is not None
        if point.usn <= self.point.usn:
            self.read_at = time.time()
            return Refreshed("unchanged", 0, time.perf_counter() - started)
        since = self.point.usn + 1
        entries = [entry async for page in reads.customer_pages(since) for entry in page]
        groups = await reads.service_groups(since)
        deleted = await reads.deleted_since(since)
        touched = {dn_key(e.dn): e for e in entries}
        for group in groups:
            touched.setdefault(Layout.group_customer(group), None)
        if len(touched) > DELTA_FALLBACK:
            return await self.load(reads.directory)
        by_key = {dn_key(c.dn): c for c in self._rows.rows}
        changed = 0
        for key, entry in touched.items():
            known = by_key.get(key)
            dn = entry.dn if entry is not None else known.dn if known is not None else None
            if dn is None:
                continue  # a group changed below something that is not a customer
            services = await reads.services_below(dn)
            if entry is not None:
                fresh = reads.layout.customer_from(entry, services)
            else:
                assert known is not None
                offered, plans, _roles = reads.layout.classify_groups(known.dn, services)
                fresh = replace(known, services=offered, plans=plans)
            if fresh != self._rows.get(_identity(fresh)):
                self._rows.put(fresh)
                changed += 1
        for guid in deleted:
            changed += self._rows.drop(guid)
        after = await reads.change_point()
        if not after.same_dc(point):  # the connection failed over mid-delta: start again there
            return await self.load(reads.directory)
        self.point = point
        self.read_at = time.time()
        if changed:
            self._changed()
        return Refreshed("delta", changed, time.perf_counter() - started)

    async def reconcile(self, reads: PinnedReads) -> Refreshed:
        """Drop the customers the DC no longer has, re-read those it has elsewhere (by
        objectGUID): what a delta cannot see (tombstones gone, a restore)."""
        started = time.perf_counter()
        present = await reads.customer_guids()
        changed = moved = 0
        for identity, customer in list(self._rows):
            dn = present.get(identity)
            if dn is None:
                changed += self._rows.drop(identity)
            elif dn_key(dn) != dn_key(customer.dn):
                moved += 1
        if moved:
            self.point = None  # a move the deltas missed: the next refresh reloads everything
        if changed:
            self._changed()
        return Refreshed("reconcile", changed + moved, time.perf_counter() - started)
