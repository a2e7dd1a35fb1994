"""How a screen says what its local index is doing: loading, refreshing, how old it is."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text

from core.index_keeper import FAILED, FRESH, LOADING

if TYPE_CHECKING:
    from core.index_keeper import IndexKeeper


def age(seconds: float) -> str:
    """``40 s``, ``12 min``, ``3 h``, ``2 d``."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{max(0, int(seconds))} s"


def index_status(keeper: IndexKeeper) -> Text:
    """`` · loading 3,000…``, `` · 3 h old, refreshing…``, `` · not refreshed`` or nothing."""
    index = keeper.index
    if keeper.state == LOADING:
        return Text(f" · loading {len(index):,}…" if len(index) else " · loading…", style="italic")
    if keeper.state == FRESH or index.read_at is None:
        return Text("")
    old = age(time.time() - index.read_at)
    if keeper.state == FAILED:
        return Text(f" · {old} old, not refreshed", style="bold")
    return Text(f" · {old} old, refreshing…", style="italic") if keeper.refreshes == 0 else Text("")
