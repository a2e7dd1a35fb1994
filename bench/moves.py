"""Moves: Tenantry's core against a hand-written ldap3 script making the same writes.

Tenantry: ``MovePlanner.preflight`` then ``Executor.run`` (journal, audit, rights and
change checks, compare-and-swap writes), as ``tenantry move --yes`` does, timed from
the preflight to the job's end. Every LDAP operation the core issues is counted.

The script is what an administrator would write by hand with ldap3 for the same move:
one bound LDAPS connection, find the user, then the writes, one LDAP operation each
(a ``modify`` replacing the attributes, the ``modify_dn``, the member adds and removes),
no journal and no checks. Its writes are taken from Tenantry's plan for the same kind
of user, made beforehand and not timed (the script's author did that work by hand).

Single moves alternate Tenantry and the script on fresh users of the same source
customer (medians). A bulk move runs :class:`core.bulk.BulkMove` (preflight every row,
then the clean rows at the given concurrency) against the script running the same
number of users on as many threads, each with its own connection.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

import ldap3
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import to_dn

from bench.report import Result, median
from bench.search import bare_connection
from bench.target import Target
from core import plan as p
from core.bulk import BulkMove
from core.config import load
from core.directory import connect, ops
from core.move import MoveRequest
from core.plan import Plan
from core.session import Session

WRITES = ("add", "modify", "modify_dn", "delete")
READS = ("search_page", "read")


class Counter:
    """Counts the LDAP operations the core issues (``core.directory.ops``), thread-safe."""

    def __init__(self) -> None:
        self.writes = 0
        self.reads = 0
        self._lock = threading.Lock()

    @contextmanager
    def counting(self) -> Iterator[Counter]:
        originals = {name: getattr(ops, name) for name in WRITES + READS}

        def wrap(name: str, original):
            def counted(*args, **kwargs):
                with self._lock:
                    if name in WRITES:
                        self.writes += 1
                    else:
                        self.reads += 1
                return original(*args, **kwargs)
            return counted

        for name, original in originals.items():
            setattr(ops, name, wrap(name, original))
        try:
            yield self
        finally:
            for name, original in originals.items():
                setattr(ops, name, original)


def ldap_steps(plan: Plan) -> int:
    return sum(1 for step in plan.steps if step.action != p.HTTP)


# -- the hand-written script ---------------------------------------------------------------

def script_writes(plan: Plan) -> list[tuple]:
    """The plan's LDAP writes as plain ldap3 calls: (method, args...)."""
    writes: list[tuple] = []
    for step in plan.steps:
        if step.action == p.MODIFY:
            writes.append(("modify", step.target, {a: [(ldap3.MODIFY_REPLACE, list(v))] for a, v in step.after.items()}))
        elif step.action == p.MOVE:
            rdn, *parent = to_dn(step.after)
            writes.append(("modify_dn", step.target, rdn, ",".join(parent)))
        elif step.action == p.ADD_MEMBER:
            writes.append(("modify", step.target, {"member": [(ldap3.MODIFY_ADD, [step.after])]}))
        elif step.action == p.REMOVE_MEMBER:
            writes.append(("modify", step.target, {"member": [(ldap3.MODIFY_DELETE, [step.before])]}))
        elif step.action == p.CREATE_GROUP:
            writes.append(("add", step.target, {"objectClass": ["top", "group"], "sAMAccountName": step.after["sam"],
                                                "groupType": "-2147483646"}))
        elif step.action != p.HTTP:
            raise ValueError(f"the script does not do {step.action}")
    return writes


def script_move(conn: ldap3.Connection, base_dn: str, upn: str, writes: list[tuple]) -> None:
    """Find the user, then make the writes (an exception stops at the first failure)."""
    conn.search(base_dn, f"(&(objectClass=user)(userPrincipalName={escape_filter_chars(upn)}))", ldap3.SUBTREE,
                attributes=["memberOf", "proxyAddresses"])
    if not conn.entries:
        raise RuntimeError(f"the script found no {upn}")
    for method, target, *args in writes:
        if method == "modify_dn":
            conn.modify_dn(target, args[0], new_superior=args[1])
        elif method == "add":
            attributes = dict(args[0])
            conn.add(target, attributes.pop("objectClass"), attributes)
        else:
            conn.modify(target, args[0])


# -- Tenantry ------------------------------------------------------------------------------

async def open_session(target: Target) -> Session:
    directory = await connect(load(target.config), target.password)
    return await Session.open(directory, state=target.state)


async def _tenantry_move(session: Session, upn: str, destination: str) -> dict:
    counter = Counter()
    with counter.counting():
        start = time.perf_counter()
        plan = await session.planner().preflight(session.operator, MoveRequest(upn, destination))
        planned = time.perf_counter()
        if not plan.ok:
            raise RuntimeError(f"the move of {upn} was refused: {[x.message for x in plan.problems]}")
        events = [e async for e in session.executor().run(plan, session.operator)]
        end = time.perf_counter()
    if events[-1].status != "done":
        raise RuntimeError(f"the move of {upn} ended {events[-1].status}: {events[-1].message}")
    return {"ms": (end - start) * 1000, "plan_ms": (planned - start) * 1000, "run_ms": (end - planned) * 1000,
            "writes": counter.writes, "reads": counter.reads, "ldap_steps": ldap_steps(plan), "steps": len(plan.steps)}


async def _script_move(session: Session, conn: ldap3.Connection, upn: str, destination: str) -> dict:
    plan = await session.planner().preflight(session.operator, MoveRequest(upn, destination))
    if not plan.ok:
        raise RuntimeError(f"the move of {upn} was refused: {[x.message for x in plan.problems]}")
    writes = script_writes(plan)
    start = time.perf_counter()
    script_move(conn, session.config.directory.base_dn, upn, writes)
    return {"ms": (time.perf_counter() - start) * 1000, "writes": len(writes)}


async def measure_single(target: Target, pairs: int, *, log=print) -> tuple[list[Result], dict]:
    log(f"move: {pairs} single moves each, Tenantry and the script, alternating …")
    if len(target.movers) < 2 * pairs:
        raise ValueError(f"{2 * pairs} movers are needed, {len(target.movers)} given")
    session = await open_session(target)
    conn = bare_connection(target)
    tenantry, script = [], []
    try:
        for i in range(pairs):
            a, b = target.movers[2 * i], target.movers[2 * i + 1]
            if i % 2:
                script.append(await _script_move(session, conn, b, target.move_destination))
                tenantry.append(await _tenantry_move(session, a, target.move_destination))
            else:
                tenantry.append(await _tenantry_move(session, a, target.move_destination))
                script.append(await _script_move(session, conn, b, target.move_destination))
    finally:
        conn.unbind()
        await session.close()
    t_ms, s_ms = median([t["ms"] for t in tenantry]), median([s["ms"] for s in script])
    run_ms = median([t["run_ms"] for t in tenantry])
    extra = max(t["writes"] - t["ldap_steps"] for t in tenantry)
    results = [
        Result("move.writes", "move: LDAP writes issued (median)", median([t["writes"] for t in tenantry]), "", None,
               {"plan_ldap_steps": [t["ldap_steps"] for t in tenantry], "writes": [t["writes"] for t in tenantry],
                "reads": [t["reads"] for t in tenantry]}),
        Result("move.extra_writes", "move: writes beyond the plan's LDAP steps (max)", extra, "", ("==", 0)),
        Result("move.reads", "move: LDAP reads, preflight and run (median)", median([t["reads"] for t in tenantry]), ""),
        Result("move.tenantry", "move: Tenantry preflight + run (median)", t_ms, "ms", None,
               {"plan_ms": median([t["plan_ms"] for t in tenantry]), "run_ms": run_ms, "all_ms": [t["ms"] for t in tenantry]}),
        Result("move.script", "move: hand-written ldap3 script (median)", s_ms, "ms", None, {"all_ms": [s["ms"] for s in script]}),
        Result("move.ratio", "move: Tenantry / script", t_ms / s_ms, "×", ("<=", 1.5)),
        Result("move.run_ratio", "move: Tenantry's run alone (no preflight) / script", run_ms / s_ms, "×"),
    ]
    return results, {"tenantry": tenantry, "script": script}


async def _tenantry_bulk(session: Session, upns: list[str], destination: str, concurrency: int) -> dict:
    bulk = BulkMove(session.planner(), session.executor())
    requests = [(upn, MoveRequest(upn, destination)) for upn in upns]
    counter = Counter()
    with counter.counting():
        start = time.perf_counter()
        plan = await bulk.preflight(session.operator, requests, concurrency=concurrency)
        planned = time.perf_counter()
        if not plan.ok:
            raise RuntimeError(f"bulk rows refused: {[(r.label, [x.message for x in r.plan.problems]) for r in plan.refused][:5]}")
        results: dict = {}
        async for _ in bulk.run(plan, session.operator, concurrency=concurrency, results=results):
            pass
        end = time.perf_counter()
    bad = [r for r in results.values() if r.status != "done"]
    if bad:
        raise RuntimeError(f"{len(bad)} bulk rows did not finish: {bad[0].status} {bad[0].message}")
    steps = sum(ldap_steps(row.plan) for row in plan.rows)
    seconds = end - start
    return {"users": len(upns), "seconds": seconds, "users_per_s": len(upns) / seconds, "preflight_s": planned - start,
            "run_s": end - planned, "writes": counter.writes, "reads": counter.reads, "ldap_steps": steps}


async def _script_bulk(session: Session, target: Target, upns: list[str], destination: str, concurrency: int) -> dict:
    bulk = BulkMove(session.planner(), session.executor())
    plan = await bulk.preflight(session.operator, [(u, MoveRequest(u, destination)) for u in upns], concurrency=4)
    if not plan.ok:
        raise RuntimeError("bulk rows refused for the script")
    jobs = [(row.request.user, script_writes(row.plan)) for row in plan.rows]
    connections = [bare_connection(target) for _ in range(concurrency)]
    free = list(connections)
    lock = threading.Lock()
    base = session.config.directory.base_dn

    def one(job) -> None:
        with lock:
            conn = free.pop()
        try:
            script_move(conn, base, *job)
        finally:
            with lock:
                free.append(conn)

    try:
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, jobs))
        seconds = time.perf_counter() - start
    finally:
        for conn in connections:
            conn.unbind()
    return {"users": len(upns), "seconds": seconds, "users_per_s": len(upns) / seconds,
            "writes": sum(len(w) for _, w in jobs)}


async def measure_bulk(target: Target, *, log=print) -> tuple[list[Result], dict]:
    session = await open_session(target)
    raw: dict[str, dict] = {}
    try:
        for run, (upns, destination) in target.bulk.items():
            kind, concurrency = run.split("-c")
            log(f"bulk: {kind}, {len(upns)} users at concurrency {concurrency} …")
            if kind == "tenantry":
                raw[run] = await _tenantry_bulk(session, upns, destination, int(concurrency))
            else:
                raw[run] = await _script_bulk(session, target, upns, destination, int(concurrency))
    finally:
        await session.close()
    results: list[Result] = []
    for concurrency in sorted({run.split("-c")[1] for run in raw}):
        t, s = raw.get(f"tenantry-c{concurrency}"), raw.get(f"script-c{concurrency}")
        if not (t and s):
            continue
        results += [
            Result(f"bulk.c{concurrency}.tenantry", f"bulk move of {t['users']:,}, concurrency {concurrency}: Tenantry",
                   t["users_per_s"], "users/s", None, t),
            Result(f"bulk.c{concurrency}.script", f"bulk move of {s['users']:,}, concurrency {concurrency}: script",
                   s["users_per_s"], "users/s", None, s),
            Result(f"bulk.c{concurrency}.ratio", f"bulk move, concurrency {concurrency}: Tenantry / script throughput",
                   t["users_per_s"] / s["users_per_s"], "×", (">=", 0.8)),
        ]
    extra = [r["writes"] - r["ldap_steps"] for run, r in raw.items() if run.startswith("tenantry")]
    if extra:
        results.append(Result("bulk.extra_writes", "bulk: writes beyond the plans' LDAP steps (max)", max(extra), "", ("==", 0)))
    return results, raw
