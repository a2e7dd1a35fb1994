"""The users of the open customer, held locally while its screen is open.

Loaded once when the customer opens — one one-level paged search of its users OU,
the table's attributes only, each user a compact row (no attribute list, no group
DNs) built in the worker thread — the first small page shown at once, the rest
streamed in behind it. Searched like the customer index (:mod:`core.local_search`):
display name, UPN, email or username, case- and accent-insensitive, prefixes first.
A customer with more users than the configured cap is not held: its screen searches
on the domain controller instead. Only the open customer's users are ever held (all
of a hosting domain's users would not fit the memory budget).
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Callable

from core.directory.layout import Layout, dn_key
from core.directory.pinned import ChangePoint
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
        """Whether searches go to this index (it holds rows and is not over the cap)."""
        return not self.over_cap and (self.complete or len(self._rows) > 0)

    @property
    def users(self) -> list[User]:
        return self._rows.rows

    def search(self, text: str | None, limit: int) -> Found[User]:
        return self._rows.search(text, limit)

    async def load(self, directory: Directory, on_rows: Callable[[], None]) -> None:
        """Read every user (again), calling ``on_rows()`` as rows arrive. A first load
        shows them batch by batch; a reload keeps the old rows until the new are all in."""
        if self.cap <= 0:
            return
        started = time.perf_counter()
        first = not self.complete
        rows = self._rows if first else _rows()
        point = None
        self.loading, self.expected = True, None
        try:
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
        on_rows()
