"""The console's heap while a local index loads: no full garbage collection meanwhile,
and the memory the load freed given back to the system after it.

A full collection scans every tracked object of the process on the event loop; one
that falls while 10,000 users arrive (their batches unpickled, the table refilled at
every key) held a key for 100–400 ms. During a load the rows only grow — there is
nothing for a full collection to free that could not wait a few seconds — so while at
least one load runs, :func:`loading` raises the third generation's threshold out of
reach (the young generations are still collected, a few ms each) and puts it back
after; the full collection the load postponed then comes at the next threshold, as it
would have.

glibc keeps the pages that freed objects lived on; :func:`give_back` returns them
(``malloc_trim``) once a load has dropped what it replaced.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from typing import Callable, Iterator

_POSTPONED = 1 << 30  # a third-generation threshold never reached
_loads = 0  # loads running now
_threshold: int | None = None  # the third generation's threshold before the first of them


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """No full garbage collection while the block runs (nor while another load does)."""
    global _loads, _threshold
    if _loads == 0:
        first, second, third = gc.get_threshold()
        _threshold = third
        gc.set_threshold(first, second, _POSTPONED)
    _loads += 1
    try:
        yield
    finally:
        _loads -= 1
        if _loads == 0 and _threshold is not None:
            first, second, _third = gc.get_threshold()
            gc.set_threshold(first, second, _threshold)
            _threshold = None


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    import ctypes  # here: the console's start does not pay for it

    try:
        return getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc's, in the process already
    except OSError:
        return None


def give_back() -> None:
    """Return the heap's free pages to the system (glibc only: elsewhere nothing)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
