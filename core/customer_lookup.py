"""Finding customers across the directory by what an admin types (the palette's "go to").

Cheapest first, and never a medial-substring scan of the domain: the customer named
exactly so or owning exactly that domain (indexed equality), then the local customer
index (every substring, in memory), and only while that is not loaded, a bounded
prefix search of the names on the DC.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.customer_index import CustomerIndex
from core.directory.layout import dn_key
from core.errors import NotFound, UsageError
from core.model import Customer

if TYPE_CHECKING:
    from core.directory import Directory


async def find_customers(directory: Directory, index: CustomerIndex | None, text: str, limit: int) -> list[Customer]:
    """At most ``limit`` customers for ``text``: an exact match first, then the others."""
    wanted = text.strip()
    if not wanted:
        return []
    found: list[Customer] = []
    try:
        found.append(await directory.customer(wanted, with_services=False))
    except (NotFound, UsageError):
        pass  # none, or several owning it: the next sources list them
    if index is not None and index.complete:
        more = index.search(wanted, limit).rows
    else:
        more = await directory.customers_starting(wanted, limit)
    seen = {dn_key(c.dn) for c in found}
    found += [c for c in more if dn_key(c.dn) not in seen]
    return found[:limit]
