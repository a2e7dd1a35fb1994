"""Console start to first interactive screen, against a minimal Textual app with one table.

Each run is a fresh interpreter (``bench/start_probe.py``), timed from just before it is
started to its first frame; the two kinds run interleaved (ABBA) after one warm-up each
so that a noisy neighbour on the shared cores hits both alike.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from bench.report import Result, median
from bench.target import Target

PROBE = Path(__file__).with_name("start_probe.py")


def _once(kind: str, target: Target) -> dict[str, float]:
    argv = [sys.executable, str(PROBE), kind]
    if kind == "tenantry":
        argv += ["--config", str(target.config)]
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, env=target.env(), timeout=120)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"the {kind} start probe failed:\n{done.stderr[-3000:]}")
    readings = json.loads(done.stdout.strip().splitlines()[-1])
    return {name: (value - start) * 1000 for name, value in readings.items() if value is not None}


def measure(target: Target, runs: int, *, log=print) -> tuple[list[Result], dict]:
    log(f"start: {runs} runs each of the console and a one-table app, interleaved …")
    _once("minimal", target), _once("tenantry", target)  # warm the file cache
    times: dict[str, list[dict[str, float]]] = {"minimal": [], "tenantry": []}
    for i in range(runs):
        order = ("minimal", "tenantry") if i % 2 == 0 else ("tenantry", "minimal")
        for kind in order:
            times[kind].append(_once(kind, target))
    console = median([t["ready"] for t in times["tenantry"]])
    minimal = median([t["ready"] for t in times["minimal"]])
    rows = median([t["rows"] for t in times["tenantry"] if "rows" in t])
    results = [
        Result("start.console", "start: console to first interactive screen (median)", console, "ms", None,
               {"runs": runs, "all_ms": [t["ready"] for t in times["tenantry"]]}),
        Result("start.minimal", "start: minimal one-table Textual app (median)", minimal, "ms", None,
               {"runs": runs, "all_ms": [t["ready"] for t in times["minimal"]]}),
        Result("start.ratio", "start: console / minimal app", console / minimal, "×", ("<=", 1.5)),
        Result("start.rows", "start: console to first customer rows from the DC (median)", rows, "ms", None,
               {"all_ms": [t.get("rows") for t in times["tenantry"]]}),
    ]
    return results, times
