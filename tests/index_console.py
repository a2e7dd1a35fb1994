"""What the console tests of the local indexes share: reading the table and the count."""

from __future__ import annotations

import asyncio
import contextlib

from textual.widgets import DataTable, Static


def column(app, table: type[DataTable], index: int) -> list[str]:
    """The plain text of one column of the screen's table, top to bottom."""
    shown = app.screen.query_one(table)
    return [shown.get_cell_at((row, index)).plain for row in range(shown.row_count)]


def count(app) -> str:
    return str(app.screen.query_one("#count", Static).render())


@contextlib.contextmanager
def held_after_the_first_page(directory, rows: str = "user_rows", server: str = "users"):
    """The directory's user pages (or ``rows``: ``customer_rows``) stop after the first
    one until ``release`` is set; the server's own user searches (``server``:
    ``customers``) are counted."""
    release, first_shown = asyncio.Event(), asyncio.Event()
    searches: list[object] = []
    reader, searcher = rows, server
    rows, users = getattr(directory, reader), getattr(directory, searcher)

    async def gated(*args, **kwargs):
        pages = rows(*args, **kwargs)
        async with contextlib.aclosing(pages):
            async for page in pages:
                first = not first_shown.is_set()
                first_shown.set()  # before the page goes: a reader that stops at it says so too
                yield page
                if first:
                    await release.wait()

    async def counted(*args, **kwargs):
        searches.append(kwargs.get("search"))
        return await users(*args, **kwargs)

    setattr(directory, reader, gated)
    setattr(directory, searcher, counted)
    try:
        yield release, first_shown, searches
    finally:
        delattr(directory, reader)
        delattr(directory, searcher)
