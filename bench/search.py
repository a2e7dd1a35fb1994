"""Search-as-you-type: the console (Pilot, in its own process) against bare ldap3.

The console's latency per keystroke comes from :mod:`bench.search_probe`, run twice:
with the search debounce off (the search path itself) and as shipped (the debounce the
console waits for the next key, 0.15 s). The bare ldap3 search is the same filter
(built by the same layout), base, scope, attributes and page size (one page of
``limit + 1`` entries), on one bound LDAPS connection, for every text the keystrokes
produced, ``repeat`` times each, interleaved.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import ldap3

from bench.report import Result, median, percentile
from bench.target import Target
from core.config import load
from core.directory import connect
from core.directory.layout import USER_LIST_ATTRIBUTES, Layout

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 200  # rows the screens show; they ask for one more to know there are more
SHIPPED = "shipped"
LOADED_BUDGET = 50.0  # ms, p95 key → table once the screen's rows are loaded (PRODUCT §6)
LOADING_BUDGET = 100.0  # ms, p95 key → table while a load or refresh runs


def keys_for(words: list[str]) -> list[str]:
    """Type each word one character at a time, then erase it one backspace at a time."""
    keys: list[str] = []
    for word in words:
        keys += list(word) + ["backspace"] * len(word)
    return keys


def texts_for(words: list[str]) -> list[str | None]:
    """The distinct search texts those keys make (``None``: the empty search)."""
    out: list[str | None] = [None]
    for word in words:
        for n in list(range(1, len(word) + 1)) + list(range(len(word) - 1, -1, -1)):
            text = word[:n].strip() or None
            if text not in out:
                out.append(text)
    return out


def bare_connection(target: Target) -> ldap3.Connection:
    parts = urlsplit(target.url)
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=target.ca_file, version=ssl.PROTOCOL_TLS_CLIENT)
    server = ldap3.Server(parts.hostname, port=parts.port or 636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
    return ldap3.Connection(server, target.bind_user, target.password, auto_bind=True, raise_exceptions=True)


def users_dn(conn: ldap3.Connection, layout: Layout, customer: str) -> str:
    """The DN of the users OU of the customer named ``customer``."""
    conn.search(layout.hosting_dn, layout.customer_name_filter(customer), ldap3.SUBTREE, attributes=["ou"])
    return layout.users_dn(next(e["dn"] for e in conn.response if e["type"] == "searchResEntry"))


def bare_searches(target: Target, repeat: int) -> dict[str, list[float]]:
    """ms per bare ldap3 search, for the customers' and the big customer's users' texts."""
    config = load(target.config)
    layout = Layout(config)
    conn = bare_connection(target)
    try:
        users_base = users_dn(conn, layout, target.big_customer)
        customer_attributes = ["ou", config.layout.domains_attribute, config.layout.code_attribute]
        jobs = [("customers", layout.hosting_dn, layout.customer_filter(t), ldap3.SUBTREE, customer_attributes)
                for t in texts_for(target.customer_words)]
        jobs += [("users", users_base, layout.user_filter(t), ldap3.LEVEL, list(USER_LIST_ATTRIBUTES))
                 for t in texts_for(target.user_words)]
        times: dict[str, list[float]] = {"customers": [], "users": []}
        for _ in range(repeat):
            for kind, base, search_filter, scope, attributes in jobs:
                start = time.perf_counter()
                conn.search(base, search_filter, scope, attributes=attributes, paged_size=LIMIT + 1)
                times[kind].append((time.perf_counter() - start) * 1000)
        return times
    finally:
        conn.unbind()


async def core_customer_searches(target: Target, repeat: int) -> dict[str, list[float]]:
    """ms per ``Directory.customers`` call for the customers' texts, with the services
    column (what the screen asks for) and without (name, reseller, domains only)."""
    directory = await connect(load(target.config), target.password)
    try:
        times: dict[str, list[float]] = {"with_services": [], "without_services": []}
        for _ in range(repeat):
            for text in texts_for(target.customer_words):
                for kind, services in (("with_services", True), ("without_services", False)):
                    start = time.perf_counter()
                    await directory.customers(search=text, limit=LIMIT + 1, with_services=services)
                    times[kind].append((time.perf_counter() - start) * 1000)
        return times
    finally:
        await directory.close()


def run_probe(target: Target, debounce: float | None, timeout: float = 1800) -> dict:
    job = {
        "config": str(target.config), "debounce": debounce, "big_customer": target.big_customer,
        "customer_keys": keys_for(target.customer_words), "user_keys": keys_for(target.user_words),
        "dc_dir": target.dc_dir, "idle_seconds": target.idle_seconds, "staleness_samples": target.staleness_samples,
        "huge_customer": target.huge_customer, "huge_cap": target.huge_cap,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(job, fh)
    try:
        env = target.env()
        env["PYTHONPATH"] = str(ROOT)
        done = subprocess.run([sys.executable, "-m", "bench.search_probe", fh.name], capture_output=True, text=True,
                              env=env, cwd=ROOT, timeout=timeout)
    finally:
        Path(fh.name).unlink()
    if done.returncode != 0:
        raise RuntimeError(f"the search probe failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(target: Target, *, repeat: int = 3, log=print) -> tuple[list[Result], dict]:
    log("search: console with the debounce off …")
    quick = run_probe(target, 0)
    log("search: console as shipped …")
    shipped = run_probe(target, None)
    log("search: bare ldap3 …")
    bare = bare_searches(target, repeat)
    core_customers = asyncio.run(core_customer_searches(target, 1))
    results: list[Result] = []
    for screen, label in (("customers", "customers screen"), ("users", f"users screen ({target.big_customer})")):
        ms = [s["ms"] for s in quick[screen]]
        core = [s["core_ms"] for s in quick[screen]]
        fill = [s["fill_ms"] for s in quick[screen]]
        p95, bare95 = percentile(ms, 95), percentile(bare[screen], 95)
        detail = {
            "keystrokes": len(ms), "p50_ms": median(ms), "max_ms": max(ms),
            "core_p50_ms": median(core), "core_p95_ms": percentile(core, 95),
            "table_fill_p50_ms": median(fill), "table_fill_p95_ms": percentile(fill, 95),
            "bare_p50_ms": median(bare[screen]), "bare_p95_ms": bare95, "bare_searches": len(bare[screen]),
        }
        results.append(Result(f"search.{screen}.p95", f"search {label}: p95 key → table (debounce off)", p95, "ms", ("<=", LOADED_BUDGET), detail))
        results.append(Result(f"search.{screen}.bare_p95", f"search {label}: p95 bare ldap3, same filter", bare95, "ms"))
        results.append(Result(f"search.{screen}.ratio", f"search {label}: p95 console / p95 bare ldap3", p95 / bare95, "×", ("<=", 2.0)))
        if screen == "customers":
            for kind, label2 in (("with_services", "with"), ("without_services", "without")):
                results.append(Result(f"search.customers.core_{kind}_p95", f"search customers: p95 of the core's search {label2} the services column",
                                      percentile(core_customers[kind], 95), "ms", None,
                                      {"p50_ms": median(core_customers[kind]), "searches": len(core_customers[kind])}))
        shipped_ms = [s["ms"] for s in shipped[screen]]
        results.append(Result(
            f"search.{screen}.p95_shipped", f"search {label}: p95 key → table (as shipped, {shipped['debounce'] * 1000:.0f} ms debounce)",
            percentile(shipped_ms, 95), "ms", ("<=", LOADED_BUDGET), {"p50_ms": median(shipped_ms), "keystrokes": len(shipped_ms)},
        ))
    for screen, label in (("customers", "customers screen"), ("users", f"users screen ({target.big_customer})")):
        samples = quick[f"{screen}_loading"]
        ms = [s["ms"] for s in samples]
        during = [s["ms"] for s in samples if s["during_load"]]
        detail = {"keystrokes": len(ms), "during_load": len(during), "p95_during_load_ms": percentile(during, 95) if during else None}
        if screen == "users":  # what held the event loop meanwhile (every event: raw quick.users_loading_stalls)
            stalls = quick["users_loading_stalls"]
            detail |= {"longest_gc_ms": max((c["ms"] for c in stalls["collections"]), default=0.0),
                       "longest_unpickle_ms": max((b["unpickle_ms"] for b in stalls["batches"]), default=0.0),
                       "longest_batch_handled_ms": max((b.get("handled_ms", 0.0) for b in stalls["batches"]), default=0.0)}
        results.append(Result(
            f"search.{screen}.loading_p95", f"search {label}: p95 key → table while its index loads", percentile(ms, 95), "ms",
            ("<=", LOADING_BUDGET), detail,
        ))
    refresh = quick["refresh"]
    results.append(Result("index.customers_load", "index: a full load of the customer index", quick["customer_load_s"] * 1000, "ms"))
    results.append(Result("index.users_load", f"index: loading the users of {target.big_customer}", (quick["users_index"]["load_s"] or 0) * 1000, "ms",
                          None, {"rows": quick["users_index"]["rows"]}))
    for kind in ("customer_index", "users_index"):
        results.append(Result(f"index.{kind}_bytes", f"index: bytes per entry, {kind.replace('_', ' ')}", quick[kind]["bytes_per_row"], "B",
                              None, {"rows": quick[kind]["rows"]}))
    results.append(Result("index.refresh_unchanged", "index: a refresh when nothing changed (median)", median(refresh["unchanged_ms"]), "ms",
                          None, {"all_ms": refresh["unchanged_ms"]}))
    results.append(Result("index.refresh_delta", "index: a refresh after one change on the DC (the delta)", refresh["delta_ms"], "ms",
                          None, {"kind": refresh["delta_kind"], "changed": refresh["delta_changed"]}))
    results.append(Result("index.staleness_bound", "index: staleness at worst (refresh interval + delta)",
                          refresh["interval_s"] * 1000 + refresh["delta_ms"], "ms"))
    results.append(Result("index.users_first_rows", f"index: first rows of {target.big_customer}'s users, cold (no snapshot)",
                          quick["users_first_rows_ms"], "ms"))
    stale = quick["staleness"]
    results.append(Result("index.staleness_p95", "index: staleness p95 (a user renamed on another connection → on screen)",
                          percentile(stale["ms"], 95), "ms", None,
                          {"all_ms": stale["ms"], "refresh_kinds": stale["kinds"], "interval_s": stale["interval_s"]}))
    idle = quick["dc_cpu_idle"]
    results.append(Result("dc.cpu_idle_minute", "DC CPU per idle console-minute (both indexes kept fresh)", idle["per_minute_ms"], "ms",
                          None, idle))
    results.append(Result("index.rss_customers", "console RSS with the customers indexed, no customer opened yet",
                          quick["memory_customers_only_mb"]["rss"], "MB"))
    results.append(Result("index.rss_big_customer", f"console RSS with the customers indexed and {target.big_customer} open",
                          quick["memory_mb"]["rss"], "MB", ("<=", 150.0), {"users_held": quick["users_index"]["rows"]}))
    huge = quick["huge"]
    results.append(Result("index.rss_huge_customer", f"console RSS with the customers indexed and {target.huge_customer} open (over the users cap)",
                          huge["memory_mb"]["rss"], "MB", ("<=", 150.0), huge))
    memory = max(quick["memory_mb"]["rss"], shipped["memory_mb"]["rss"], quick["memory_after_loads_mb"]["rss"], huge["memory_mb"]["rss"])
    results.append(Result("search.rss", "console resident memory after the searches", memory, "MB", ("<=", 150.0),
                          {"quick": quick["memory_mb"], "shipped": shipped["memory_mb"], "after_loads": quick["memory_after_loads_mb"],
                           "held_after_loads": quick["held_after_loads"]}))
    results.append(Result("console.animations", "console animations off by default (1 = off)",
                          1.0 if shipped["animation_level"] == "none" else 0.0, "", ("==", 1.0), {"level": shipped["animation_level"]}))
    raw = {"quick": quick, "shipped": shipped, "bare_ms": bare, "core_customers_ms": core_customers}
    return results, raw
