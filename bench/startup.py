"""Console start to first interactive screen, against a minimal Textual app with one table.

Each run is a fresh interpreter (``bench/start_probe.py``), timed from just before it is
started to its first frame; the two kinds run interleaved (ABBA) after one warm-up each
so that a noisy neighbour on the shared cores hits both alike. The console starts cold
(no customer snapshot) in those runs; then as many runs start from the snapshot a full
load leaves, to its first customer rows.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.report import Result, median
from bench.target import Target
from core.config import load
from core.customer_index import CustomerIndex
from core.directory import connect
from core.index_snapshot import Snapshot
from core.state import state_dir

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


def _no_snapshot(target: Target) -> None:
    if target.state is not None:
        shutil.rmtree(target.state / "index", ignore_errors=True)


async def _save_snapshot(target: Target) -> None:
    """The customer snapshot the console would have left (a full load, saved)."""
    config = load(target.config)
    directory = await connect(config, target.password)
    try:
        index = CustomerIndex()
        await index.load(directory)
        Snapshot.of(config, target.state or state_dir()).save(index)
    finally:
        await directory.close()


def measure(target: Target, runs: int, *, log=print) -> tuple[list[Result], dict]:
    log(f"start: {runs} runs each of the console (cold) and a one-table app, interleaved …")
    _no_snapshot(target)
    _once("minimal", target), _once("tenantry", target)  # warm the file cache
    times: dict[str, list[dict[str, float]]] = {"minimal": [], "tenantry": [], "snapshot": []}
    for i in range(runs):
        order = ("minimal", "tenantry") if i % 2 == 0 else ("tenantry", "minimal")
        for kind in order:
            _no_snapshot(target)
            times[kind].append(_once(kind, target))
    log(f"start: {runs} runs of the console from its customer snapshot …")
    asyncio.run(_save_snapshot(target))
    for _ in range(runs):
        times["snapshot"].append(_once("tenantry", target))
    console = median([t["ready"] for t in times["tenantry"]])
    minimal = median([t["ready"] for t in times["minimal"]])
    rows = median([t["rows"] for t in times["tenantry"] if "rows" in t])
    snapshot_rows = median([t["rows"] for t in times["snapshot"] if "rows" in t])
    results = [
        Result("start.console", "start: console to first interactive screen (median)", console, "ms", None,
               {"runs": runs, "all_ms": [t["ready"] for t in times["tenantry"]]}),
        Result("start.minimal", "start: minimal one-table Textual app (median)", minimal, "ms", None,
               {"runs": runs, "all_ms": [t["ready"] for t in times["minimal"]]}),
        Result("start.ratio", "start: console / minimal app", console / minimal, "×", ("<=", 1.5)),
        Result("start.rows", "start: console to first customer rows, cold (median)", rows, "ms", None,
               {"all_ms": [t.get("rows") for t in times["tenantry"]]}),
        Result("start.snapshot_rows", "start: console to first customer rows from the snapshot (median)", snapshot_rows, "ms",
               ("<=", 1000.0), {"all_ms": [t.get("rows") for t in times["snapshot"]]}),
    ]
    return results, times
