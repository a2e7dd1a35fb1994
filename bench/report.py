"""Results with their budgets: statistics, pass/fail, the table on stdout and the JSON file."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank: a value that was measured)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Result:
    """One measurement. ``budget`` is ``("<=", x)``, ``(">=", x)``, ``("==", x)`` or
    ``None`` (reported for context, no budget of its own)."""

    id: str
    what: str
    value: float
    unit: str
    budget: tuple[str, float] | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        if self.budget is None:
            return None
        if isinstance(self.value, float) and math.isnan(self.value):
            return False
        op, limit = self.budget
        return {"<=": self.value <= limit, ">=": self.value >= limit, "==": self.value == limit}[op]

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["budget"] = None if self.budget is None else {"op": self.budget[0], "limit": self.budget[1]}
        out["pass"] = self.passed
        return out


def _number(value: float, unit: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if unit == "×":
        return f"{value:.2f}×"
    if unit in ("ms", "MB", "users/s") or isinstance(value, float):
        return f"{value:,.1f} {unit}".rstrip()
    return f"{value:,} {unit}".rstrip()


def table(results: Sequence[Result]) -> str:
    """The results as a plain-text table (one line each)."""
    rows = [("measurement", "value", "budget", "")]
    for r in results:
        budget = "" if r.budget is None else f"{r.budget[0]} {_number(r.budget[1], r.unit)}"
        verdict = {True: "pass", False: "FAIL", None: ""}[r.passed]
        rows.append((r.what, _number(r.value, r.unit), budget, verdict))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for index, row in enumerate(rows):
        lines.append(f"{row[0]:<{widths[0]}}  {row[1]:>{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}".rstrip())
        if index == 0:
            lines.append("-" * len(lines[0]))
    return "\n".join(lines)


def write_json(path: Path, meta: dict[str, Any], results: Sequence[Result]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"meta": meta, "results": [r.to_json() for r in results]}
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
