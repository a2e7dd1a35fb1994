"""``bench/run [--size full|small|tiny]``: the PRODUCT §6 performance budget, measured.

Starts (or seeds, the first time) the bench DC of that size, runs every measurement
against it, prints a table and writes the results as JSON (``bench/results/<size>.json``
unless ``--json PATH``). Exit status 0 when every budget holds, 1 when one fails.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench import dc as bench_dc
from bench import moves, search, startup, terminal
from bench.report import Result, table, write_json
from bench.seed import BULK_RUNS, HUGE_CUSTOMER, MOVE_DESTINATION, MOVE_SOURCE, SIZES, bulk_destination, bulk_source
from bench.target import Target, write_config
from core.demo.seed import Seed

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("start", "search", "move", "bulk", "bytes")
# (start runs, single move pairs, words typed into the customers and the users searches) per size
RUNS = {
    "full": (15, 7, ["globex", "cedar lab", "gmbh", "exa"], ["müller", "@glob", "smith"]),
    "small": (5, 5, ["globex", "gmbh"], ["müller", "@glob"]),
    "tiny": (2, 1, ["globex"], ["müller"]),
}

# (seconds the console sits idle for the DC's CPU, changes timed for the staleness) per size
WATCH = {"full": (65.0, 4), "small": (65.0, 3), "tiny": (2.0, 1)}


def _upns(seed: Seed, customer: str, *, services: tuple[str, ...] = ()) -> list[str]:
    """The UPNs of the users of ``customer`` (only those with every one of ``services``)."""
    dn = seed.customer(customer).dn
    members = [set(g.attributes.get("member", ())) for g in seed.groups(f"OU=Services,{dn}") if g.first("cn") in services]
    return [u.first("userPrincipalName") for u in seed.users(f"OU=Users,{dn}") if all(u.dn in m for m in members)]


def bench_target(info, seed: Seed, folder: Path, size: str) -> Target:
    sp_admin = seed.operator("sp-admin")
    config = write_config(folder / "bench.toml", url=info.ldaps_url, base_dn=info.base_dn, bind_user=sp_admin.upn,
                          ca_file=info.ca_file, tenants=seed.tenants_toml(services=()))
    bulk = {run: (_upns(seed, bulk_source(run)), bulk_destination(run)) for run in BULK_RUNS}
    return Target(
        config=config, password=info.operator_passwords["sp-admin"], url=info.ldaps_url, ca_file=info.ca_file,
        bind_user=sp_admin.upn, base_dn=info.base_dn, big_customer=seed.big_customer,
        customer_words=RUNS[size][2], user_words=RUNS[size][3],
        # every single move the same kind: Exchange (and its plan), OCS and a role
        movers=_upns(seed, MOVE_SOURCE, services=("Hosted Exchange", "Office Communications Server")),
        move_destination=MOVE_DESTINATION, bulk=bulk, state=folder / "state",
        dc_dir=info.targetdir, idle_seconds=WATCH[size][0], staleness_samples=WATCH[size][1],
        # at full size a customer of 60,000 users, over the shipped cap; smaller seeds have
        # none: the big customer is opened with a cap below its users instead
        huge_customer=HUGE_CUSTOMER if SIZES[size].huge else seed.big_customer,
        huge_cap=None if SIZES[size].huge else SIZES[size].big - 1,
    )


def run_parts(target: Target, parts: tuple[str, ...], size: str, log=print) -> tuple[list[Result], dict]:
    """Every measurement of ``parts`` against ``target``; results and the raw samples.

    A part that fails is reported as one failed result with its error, and the others
    still run."""
    start_runs, pairs = RUNS[size][:2]
    steps = {
        "start": lambda: startup.measure(target, start_runs, log=log),
        "search": lambda: search.measure(target, repeat=3, log=log),
        "move": lambda: asyncio.run(moves.measure_single(target, pairs, log=log)),
        "bulk": lambda: asyncio.run(moves.measure_bulk(target, log=log)),
        "bytes": lambda: terminal.measure(target, log=log),
    }
    results: list[Result] = []
    raw: dict = {}
    for part in parts:
        try:
            found, raw[part] = steps[part]()
        except Exception as error:  # noqa: BLE001 -- one broken part must not hide the others
            log(f"{part} failed: {type(error).__name__}: {error}")
            raw[part] = {"error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
            found = [Result(f"{part}.error", f"{part}: the measurement failed ({type(error).__name__})", math.nan, "", ("==", 0.0),
                            {"error": str(error)})]
        results += found
    return results, raw


def _machine() -> dict:
    def out(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip()
        except OSError:
            return ""

    return {
        "cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
        "samba": out("samba", "--version"), "commit": out("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
        "load_average_at_start": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--only", metavar="PARTS", help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--json", metavar="PATH", help="where to write the results (default bench/results/<size>.json)")
    parser.add_argument("--reseed", action="store_true", help="seed the DC again even if a cached one fits")
    parser.add_argument("--seed-only", action="store_true", help="only seed the DC into the cache (no DC runs, no lock taken)")
    args = parser.parse_args(argv)
    parts = tuple(args.only.split(",")) if args.only else PARTS
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown part(s): {', '.join(sorted(unknown))}")
    size = SIZES[args.size]

    def log(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    if args.seed_only:
        bench_dc.prepare(size, fresh=args.reseed, log=log)
        return 0
    started = time.monotonic()
    meta = {"size": args.size, "customers": size.customers, "users": size.users, "date": _dt.datetime.now().isoformat(timespec="seconds"),
            "machine": _machine()}
    running = bench_dc.start(size, fresh=args.reseed, log=log)
    try:
        meta["dc"] = {"cached": running.cached, "timings_s": running.timings, "seeded_s": running.seeded}
        with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as folder:
            target = bench_target(running.info, running.info.seed, Path(folder), args.size)
            results, raw = run_parts(target, parts, args.size, log=log)
    finally:
        running.stop()
    meta["seconds"] = round(time.monotonic() - started, 1)
    meta["raw"] = raw
    path = Path(args.json) if args.json else ROOT / "bench" / "results" / f"{args.size}.json"
    write_json(path, meta, results)
    print(table(results))
    print(f"\n{args.size}: {size.customers:,} customers / {size.users:,} users; {meta['seconds']:.0f} s; results in {path}")
    return 0 if all(r.passed is not False for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
