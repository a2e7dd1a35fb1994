"""``python -m bench.demo_cmdlets [--runs N]``: what the demo's PowerShell remoting costs.

The demo's Hosted Exchange and OCS run their cmdlets through pypsrp against the
in-process PowerShell server (core/demo/services.py), which is imported and started only
when the first cmdlet runs. Each run is a fresh interpreter (so the imports are cold, as
in a console that has just started) that opens the demo and moves two Exchange + Lync
users of Fabrikam to Woodgrove Bank one after the other, timing each move's preflight
and run: the first move carries the lazy start (psrpcore, pypsrp and requests imported,
the server built, a runspace pool opened on each endpoint), the second does not. The
same runs with the demo on the directory-only ``exchange`` + ``ocs`` adapters give the
baseline. Prints the medians over the runs, interleaved (ABAB) so that a busy machine
hits both alike, and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time

SOURCE, DESTINATION = "Fabrikam", "Woodgrove Bank"
PARTS = ("first preflight", "first run", "second preflight", "second run")


async def once(cmdlets: bool) -> dict[str, float]:
    from core.config import DEFAULT_SERVICES, ServiceConfig
    from core.demo.directory import demo_config, open_demo
    from core.demo.seed import build_seed
    from core.move import MoveRequest
    from core.session import Session

    seed = build_seed()
    upns = [u.first("userPrincipalName") for u in seed.users(seed.customer(SOURCE).dn)
            if u.first("mail") and u.first("msRTCSIP-PrimaryUserAddress") and u.first("userAccountControl") == "512"][:2]
    config = demo_config()
    if not cmdlets:
        config = dataclasses.replace(config, services={k: ServiceConfig(s) for k, s in DEFAULT_SERVICES.items()})
    directory = await open_demo(config)
    session = await Session.open(directory)
    timings: dict[str, float] = {}
    try:
        for which, upn in zip(("first", "second"), upns):
            start = time.perf_counter()
            plan = await session.planner().preflight(session.operator, MoveRequest(upn, DESTINATION))
            timings[f"{which} preflight"] = (time.perf_counter() - start) * 1000
            assert plan.ok, plan.problems
            start = time.perf_counter()
            events = [e async for e in session.executor().run(plan, session.operator)]
            timings[f"{which} run"] = (time.perf_counter() - start) * 1000
            assert events[-1].status == "done", [e.message for e in events]
    finally:
        await session.close()
        await directory.close()
    timings["remoting imported"] = float(any(m.split(".")[0] == "pypsrp" for m in sys.modules))
    return timings


def main(runs: int) -> None:
    results: dict[str, list[dict[str, float]]] = {"cmdlets": [], "directory": []}
    for _ in range(runs):
        for kind in results:
            done = subprocess.run([sys.executable, "-m", "bench.demo_cmdlets", "--once", kind], capture_output=True, text=True,
                                  timeout=600, env={**os.environ, "TENANTRY_STATE_DIR": os.environ.get("TMPDIR", "/tmp") + "/bench-demo-state"})
            if done.returncode != 0:
                raise SystemExit(f"the {kind} run failed:\n{done.stderr[-3000:]}")
            results[kind].append(json.loads(done.stdout.strip().splitlines()[-1]))
    print(f"{runs} runs each, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'ms (median)':<20}" + "".join(f"{p:>18}" for p in PARTS))
    for kind, rows in results.items():
        print(f"{kind:<20}" + "".join(f"{statistics.median(r[p] for r in rows):>18,.0f}" for p in PARTS))
    first = [c["first preflight"] + c["first run"] - d["first preflight"] - d["first run"] for c, d in zip(results["cmdlets"], results["directory"])]
    second = [c["second preflight"] + c["second run"] - d["second preflight"] - d["second run"] for c, d in zip(results["cmdlets"], results["directory"])]
    print(f"the cmdlets' extra time per move (median): first move {statistics.median(first):,.0f} ms (with the lazy start), "
          f"second {statistics.median(second):,.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--once", choices=("cmdlets", "directory"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.once:
        print(json.dumps(asyncio.run(once(args.once == "cmdlets"))))
    else:
        main(args.runs)
