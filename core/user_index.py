"""The users of the open customer, held locally while its screen is open.

Loaded once when the customer opens — one one-level read of its users OU, the
table's attributes only, each user a compact row (no attribute list, no group DNs)
built in a child process (:mod:`core.directory.row_stream`) — the first window shown
at once, the rest streamed in behind it. Kept fresh like the customer index, against
one DC (:mod:`core.index_keeper` runs :meth:`UserIndex.refresh`): the rootDSE's
``highestCommittedUSN`` each interval, and only when it moved a ``uSNChanged`` delta of
this customer's users OU (and of its service and role groups: a membership changes the
group, not the user; a changed group reloads the users), tombstones for deletions, and
a periodic reconcile by objectGUID for the users moved away. Searched like the customer index (:mod:`core.local_search`):
display name, UPN, email or username, case- and accent-insensitive, prefixes first.
A customer with more users than the configured cap is not held: its screen searches
on the domain controller instead. Only the open customer's users are ever held (all
of a hosting domain's users would not fit the memory budget).
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Callable

from core import heap
from core.customer_index import Refreshed
from core.directory.layout import Layout, dn_key
from core.directory.pinned import ChangePoint, PinnedReads
from core.local_search import Found, LocalRows
from core.model import Customer, User

if TYPE_CHECKING:
    from core.directory import Directory


def _rows() -> LocalRows[User]:
    return LocalRows(
        lambda u: u.guid or repr(dn_key(u.dn)),
        Layout.user_searched,
        lambda u: ((u.display_name or u.cn).casefold(), u.dn),
    )


class UserIndex:
    """The users of ``customer``; ``cap`` users at most (more: :attr:`over_cap`)."""

    def __init__(self, customer: Customer, cap: int) -> None:
        self.customer = customer
        self.cap = cap
        self._rows = _rows()
        self.loading = False
        self.complete = False  # every user is in
        self.over_cap = cap <= 0  # too many users to hold: search on the DC
        self.expected: int | None = None  # how many users the load will bring, when the DC said
        self.point: ChangePoint | None = None  # where the DC stood when the users were read
        self.read_at: float | None = None
        self.seconds: float | None = None  # how long the last load took

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def usable(self) -> bool:
        """Whether searches go to this index: it is not over the cap, and holds rows or
        is loading them (a key then filters what has arrived — nothing, before the first
        window — instead of making the DC scan every user while it serves the load)."""
        return not self.over_cap and (self.complete or self.loading or len(self._rows) > 0)

    @property
    def users(self) -> list[User]:
        return self._rows.rows

    def search(self, text: str | None, limit: int) -> Found[User]:
        return self._rows.search(text, limit)

    async def load(self, directory: Directory, on_rows: Callable[[], None]) -> None:
        """Read every user (again), calling ``on_rows()`` as rows arrive. A first load
        shows them batch by batch; a reload keeps the old rows until the new are all in.
        No full garbage collection runs meanwhile (:func:`core.heap.loading`)."""
        if self.cap <= 0:
            return
        started = time.perf_counter()
        first = not self.complete
        rows = self._rows if first else _rows()
        point = None
        self.loading, self.expected = True, None
        try:
            with heap.loading():
                async with contextlib.aclosing(directory.user_rows(self.customer)) as batches:
                    async for batch in batches:
                        point = batch.point or point
                        if batch.total is not None:
                            self.expected = batch.total
                        for i, user in enumerate(batch.rows):
                            rows.put(user, batch.keys[i] if batch.keys else None)
                        if max(len(rows), self.expected or 0) > self.cap:
                            self.over_cap, self._rows = True, _rows()  # the memory goes at once
                            return
                        if first:
                            on_rows()
        finally:
            self.loading = False
            on_rows()
        self._rows, self.complete, self.point = rows, True, point
        self.read_at, self.seconds = time.time(), time.perf_counter() - started
        if not first:
            heap.give_back()  # the rows the reload replaced
        on_rows()

    def close(self) -> None:
        """Let the users go (their screen closed). Dropped here, their memory is given
        back at once: left to the screen's reference cycles, it would wait for a full
        garbage collection — one that scans the whole heap on the event loop, often
        while the next customer's users load and keys are typed (~0.4 s at 10,000)."""
        self._rows = _rows()
        self.complete = False
        heap.give_back()

    # -- kept fresh (core.index_keeper) ----------------------------------------------------
    async def refresh(self, reads: PinnedReads) -> Refreshed:
        """Bring the users up to the DC's state: nothing when its USN has not moved, a
        delta of this customer's users when it has, a reload when the DC is another one
        or a group of the customer changed."""
        started = time.perf_counter()
        point = await reads.change_point()
        if not self.complete or not point.same_dc(self.point):
            return await self._reload(reads, started)
        assert self.point is not None
        if point.usn <= self.point.usn:
            self.read_at = time.time()
            return Refreshed("unchanged", 0, time.perf_counter() - started)
        layout, dn = reads.layout, self.customer.dn
        since = self.point.usn + 1
        for base in (layout.services_dn(dn), layout.roles_dn(dn)):
            async for page in reads.pages(base, layout.changed_since("(objectClass=group)", since), "one", ["1.1"]):
                if page:
                    return await self._reload(reads, started)
        attributes = [*layout.user_list_attributes, "objectGUID"]
        changed = 0
        async for page in reads.pages(layout.users_dn(dn), layout.changed_since(layout.user_filter(None), since), "one", attributes):
            for entry in page:
                user = layout.user_row(entry)
                if user != self._rows.get(self._rows.identity(user)):
                    self._rows.put(user)
                    changed += 1
        for guid in await reads.deleted_since(since):
            changed += self._rows.drop(guid)
        if not (await reads.change_point()).same_dc(point):  # failed over mid-delta: read all there
            return await self._reload(reads, started)
        self.point, self.read_at = point, time.time()
        return Refreshed("delta", changed, time.perf_counter() - started)

    async def reconcile(self, reads: PinnedReads) -> Refreshed:
        """Drop the users no longer in the customer's users OU (moved away, or deleted
        without a tombstone the operator may read): what a delta of the OU cannot see."""
        started = time.perf_counter()
        present: set[str] = set()
        async for page in reads.pages(reads.layout.users_dn(self.customer.dn), reads.layout.user_filter(None), "one", ["objectGUID"]):
            present.update(guid for entry in page if (guid := entry.first("objectGUID")))
        changed = sum(self._rows.drop(identity) for identity, _user in list(self._rows) if identity not in present)
        return Refreshed("reconcile", changed, time.perf_counter() - started)

    async def _reload(self, reads: PinnedReads, started: float) -> Refreshed:
        await self.load(reads.directory, lambda: None)
        return Refreshed("reload", len(self), time.perf_counter() - started)

