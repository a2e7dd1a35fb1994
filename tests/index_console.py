"""What the console tests of the local indexes share: reading the table and the count."""

from __future__ import annotations

from textual.widgets import DataTable, Static


def column(app, table: type[DataTable], index: int) -> list[str]:
    """The plain text of one column of the screen's table, top to bottom."""
    shown = app.screen.query_one(table)
    return [shown.get_cell_at((row, index)).plain for row in range(shown.row_count)]


def count(app) -> str:
    return str(app.screen.query_one("#count", Static).render())
