"""The rows of a bulk job read from a CSV file (``tenantry move|copy --csv FILE``).

The file is UTF-8 (a byte-order mark is fine, as spreadsheets write it), comma
separated, with a header line naming its columns in any order, case and spacing
(``display name``, ``Display-Name`` and ``display_name`` are one column). Every fault
of the file itself — unreadable, not UTF-8, not CSV, empty, a missing or unknown
column, a file over 16 MB, a row longer than the header, a cell over :data:`MAX_CELL` characters or with
a control character, more than :data:`MAX_ROWS` rows, a cell a spreadsheet would run
as a formula (``=cmd|…``, ``+``, ``-``, ``@``) — stops the whole file with one sentence before anything is read
from the directory, so nothing is written. Faults of one row's values (an unknown
user, a name the directory refuses) are that row's problems, found in preflight.

Move rows: ``user`` (UPN, sAMAccountName or DN), optional ``upn``, ``email``.
Copy rows: ``template``, ``first``, ``last``, optional ``display_name``, ``username``,
``upn``, ``email``, ``services`` (service keys separated by ``;`` — empty: all the
template's; ``none``: none) and ``plans`` (``exchange=Premium 50 GB;blackberry=Standard``).
Wholly empty lines are skipped. Rows are numbered from 1 after the header.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Iterator

from core.copy import CopyRequest
from core.errors import UsageError
from core.move import MoveRequest
from core.text import plain

MAX_CELL = 1024  # characters in one cell
MAX_ROWS = 10_000
MAX_BYTES = 16_000_000
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
MOVE_COLUMNS = (("user",), ("upn", "email"))
COPY_COLUMNS = (("template", "first", "last"), ("display_name", "username", "upn", "email", "services", "plans"))
NO_SERVICES = "none"
_LIST_SEPARATORS = re.compile(r"[;,]")


def _column(name: str | None) -> str:
    return re.sub(r"[\s\-]+", "_", (name or "").strip()).casefold()


def read_rows(path: str | Path, required: tuple[str, ...], optional: tuple[str, ...]) -> list[tuple[int, dict[str, str | None]]]:
    """``(row number, {column: value or None})`` for every row of the file; every fault
    of the file raises :class:`UsageError` with one sentence."""
    name = plain(str(path))
    expected = f"columns {', '.join(required)}" + (f"; optional {', '.join(optional)}" if optional else "")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as error:
        raise UsageError(f"Cannot read {name}: {error.strerror or error}.") from None
    if len(data) > MAX_BYTES:
        raise UsageError(f"{name} is larger than {MAX_BYTES // 1_000_000} MB: split it into several files.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise UsageError(f"{name} is not UTF-8 text (line {line}, byte {error.start + 1}): save it as UTF-8 CSV.") from None
    try:
        return list(_rows(io.StringIO(text, newline=""), name, required, optional, expected))
    except csv.Error as error:
        raise UsageError(f"{name} is not a CSV file this can read ({plain(str(error))}).") from None


def _rows(handle, name: str, required: tuple[str, ...], optional: tuple[str, ...], expected: str) -> Iterator[tuple[int, dict]]:
    reader = csv.reader(handle)
    header = next(reader, None)
    if header is None or not any(cell.strip() for cell in header):
        raise UsageError(f"{name} is empty: it needs a header line ({expected}) and one row per user.")
    columns = [_column(cell) for cell in header]
    for column in columns:
        _check_cell(name, "the header", column, column)
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise UsageError(f"{name}: the column {plain(twice[0])!r} appears more than once in the header.")
    unknown = [c for c in columns if c not in required + optional]
    if unknown:
        shown = ", ".join(repr(plain(c)) for c in unknown)
        raise UsageError(f"{name}: unknown column {shown} in the header (expected {expected}).")
    missing = [c for c in required if c not in columns]
    if missing:
        raise UsageError(f"{name}: the header has no {missing[0]!r} column (expected {expected}).")
    count = 0
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue
        count += 1
        if count > MAX_ROWS:
            raise UsageError(f"{name} has more than {MAX_ROWS} rows: split it into several files.")
        if len(cells) > len(columns):
            raise UsageError(f"{name}, row {count}: {len(cells)} cells, but the header has {len(columns)} columns.")
        values: dict[str, str | None] = {}
        for column, cell in zip(columns, cells):
            value = cell.strip()
            _check_cell(name, f"row {count}", column, value)
            values[column] = value or None
        for column in required:
            if not values.get(column):
                raise UsageError(f"{name}, row {count}: the {column!r} cell is empty.")
        yield count, values
    if count == 0:
        raise UsageError(f"{name} has a header but no rows.")


def _check_cell(name: str, where: str, column: str, value: str) -> None:
    if len(value) > MAX_CELL:
        raise UsageError(f"{name}, {where}: the {plain(column)!r} cell is longer than {MAX_CELL} characters.")
    if plain(value) != value:
        raise UsageError(f"{name}, {where}: the {plain(column)!r} cell holds a control character (a line break, ESC…).")
    if value.startswith(FORMULA_START):
        raise UsageError(f"{name}, {where}: the {plain(column)!r} cell starts with {plain(value[:1])!r}, "
                         "which a spreadsheet would run as a formula; remove it.")


def move_requests(path: str | Path, destination: str, plans: dict[str, str] | None = None, *, with_devices: bool = False) -> list[tuple[str, MoveRequest]]:
    """One labelled :class:`MoveRequest` per row (``row N (user)``); ``with_devices`` for every row."""
    return [
        (f"row {n} ({v['user']})", MoveRequest(v["user"], destination, upn=v.get("upn"), email=v.get("email"), plans=dict(plans or {}),
                                                with_devices=with_devices))
        for n, v in read_rows(path, *MOVE_COLUMNS)
    ]


def copy_requests(path: str | Path, plans: dict[str, str] | None = None) -> list[tuple[str, CopyRequest]]:
    """One labelled :class:`CopyRequest` per row (``row N (first last)``); ``plans``
    apply to every row unless its ``plans`` cell names that service."""
    out = []
    for n, v in read_rows(path, *COPY_COLUMNS):
        services = None
        if v.get("services"):
            keys = [k.strip() for k in _LIST_SEPARATORS.split(v["services"]) if k.strip()]
            services = () if [k.casefold() for k in keys] == [NO_SERVICES] else tuple(keys)
        row_plans = dict(plans or {})
        row_plans.update(parse_plans((v.get("plans") or "").split(";"), f"{path}, row {n}"))
        request = CopyRequest(v["template"], v["first"], v["last"], display_name=v.get("display_name"), username=v.get("username"),
                              upn=v.get("upn"), email=v.get("email"), services=services, plans=row_plans)
        out.append((f"row {n} ({v['first']} {v['last']})", request))
    return out


def parse_plans(values: list[str], where: str = "--plan") -> dict[str, str]:
    """``["exchange=Premium 50 GB", …]`` → ``{"exchange": "Premium 50 GB"}``; blanks are skipped."""
    plans = {}
    for value in values:
        if not value.strip():
            continue
        key, sep, name = value.partition("=")
        if not sep or not key.strip() or not name.strip():
            raise UsageError(f"{plain(where)}: a plan is SERVICE=PLAN (e.g. exchange=Premium 50 GB), not {plain(value)!r}.")
        plans[key.strip()] = name.strip()
    return plans
