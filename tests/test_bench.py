"""The benchmark (bench/) still runs: every measurement, at a tiny size, on the test DC.

No timing is asserted (speed is bench/'s business, not the tests'): only that each part
of PRODUCT §6 is measured, with a number, and its budget where it has one, and that the
bench's own seed keeps the demo seed's shape.
"""

from __future__ import annotations

import asyncio
import math

import pytest
from directory_fixtures import operator
from move_fixtures import DESTINATION, make_user, remove_user

from bench.__main__ import PARTS, run_parts
from bench.report import table
from bench.seed import build_bench_seed
from bench.target import Target, write_config
from core.config import load
from core.directory import connect
from core.directory.layout import dn_key

pytestmark = pytest.mark.dc

# Every measurement the bench reports; a budget-less one is context for its neighbours.
EXPECTED = {
    "start.console", "start.minimal", "start.ratio", "start.rows",
    "search.customers.p95", "search.customers.bare_p95", "search.customers.ratio", "search.customers.p95_shipped",
    "search.customers.core_with_services_p95", "search.customers.core_without_services_p95",
    "search.users.p95", "search.users.bare_p95", "search.users.ratio", "search.users.p95_shipped",
    "search.rss", "console.animations", "start.snapshot_rows",
    "search.customers.loading_p95", "search.users.loading_p95", "index.customers_load", "index.users_load",
    "index.refresh_unchanged", "index.refresh_delta", "index.staleness_bound",
    "index.customer_index_bytes", "index.users_index_bytes",
    "index.users_first_rows", "index.staleness_p95", "dc.cpu_idle_minute", "index.rss_customers", "index.rss_big_customer", "index.rss_huge_customer",
    "move.writes", "move.extra_writes", "move.reads", "move.tenantry", "move.script", "move.ratio", "move.run_ratio",
    "bulk.c1.tenantry", "bulk.c1.script", "bulk.c1.ratio", "bulk.c4.tenantry", "bulk.c4.script", "bulk.c4.ratio",
    "bulk.extra_writes",
    *(f"bytes.{mode}.{screen}.{kind}" for mode in ("normal", "low-bandwidth") for screen in ("customers", "users")
      for kind in ("changed", "same")),
}
WITHOUT_BUDGET = {"start.console", "start.minimal", "start.rows", "search.customers.bare_p95", "search.users.bare_p95",
                  "search.customers.core_with_services_p95", "search.customers.core_without_services_p95",
                  "move.writes", "move.reads", "move.tenantry", "move.script", "move.run_ratio",
                  "bulk.c1.tenantry", "bulk.c1.script", "bulk.c4.tenantry", "bulk.c4.script",
                  "index.customers_load", "index.users_load", "index.refresh_unchanged", "index.refresh_delta",
                  "index.staleness_bound", "index.customer_index_bytes", "index.users_index_bytes",
                  "index.users_first_rows", "index.staleness_p95", "dc.cpu_idle_minute", "index.rss_customers"}


def test_the_bench_seed_has_the_demo_seeds_shape() -> None:
    seed = build_bench_seed("tiny")
    assert seed == build_bench_seed("tiny")  # deterministic
    seen: set[tuple] = {dn_key(seed.base_dn)}
    for entry in seed.entries:  # parents first, members and managers before their referrers
        key = dn_key(entry.dn)
        assert key not in seen and key[1:] in seen, entry.dn
        for name in ("member", "manager"):
            assert all(dn_key(v) in seen for v in entry.attributes.get(name, ())), entry.dn
        seen.add(key)
    assert len(seed.customers()) == 30 and len(seed.users(f"OU=Hosting,{seed.base_dn}")) == 400
    assert {op.name for op in seed.operators} >= {"sp-admin", "readonly-op", "user-admin"}
    assert set(seed.hostile_customers) <= {c.first("ou") for c in seed.customers()}


def _display_names(samba_admin, samba_dc) -> tuple[dict, dict]:
    """The big customer's users' display names on the DC, and as the seed has them."""
    big = samba_dc.seed.customer(samba_dc.seed.big_customer)
    read = samba_admin.extend.standard.paged_search(big.dn, "(&(objectCategory=person)(objectClass=user))",
                                                    attributes=["displayName"], paged_size=500, generator=False)
    on_dc = {dn_key(r["dn"]): list(r["attributes"].get("displayName") or []) for r in read if r.get("type") == "searchResEntry"}
    seeded = {dn_key(e.dn): list(e.attributes.get("displayName", ())) for e in samba_dc.seed.users(big.dn)}
    return on_dc, seeded


def test_the_bench_produces_every_measurement(samba_dc, samba_admin, tmp_path) -> None:
    sp_admin = operator(samba_dc, "sp_admin")
    password = samba_dc.operator_passwords[sp_admin.name]
    config = write_config(tmp_path / "bench.toml", url=samba_dc.ldaps_url, base_dn=samba_dc.base_dn,
                          bind_user=sp_admin.upn, ca_file=samba_dc.ca_file, tenants=samba_dc.seed.tenants_toml(services=()))

    async def with_directory(work):
        directory = await connect(load(config), password)
        try:
            return await work(directory)
        finally:
            await directory.close()

    async def make(directory):
        return [await make_user(directory, roles=("Customer Administrator",)) for _ in range(2 + 2 * 4)]

    movers = asyncio.run(with_directory(make))
    try:
        upns = [m.upn for m in movers]
        target = Target(
            config=config, password=password, url=samba_dc.ldaps_url, ca_file=samba_dc.ca_file, bind_user=sp_admin.upn,
            base_dn=samba_dc.base_dn, big_customer=samba_dc.seed.big_customer, customer_words=["globex"], user_words=["müller"],
            movers=upns[:2], move_destination=DESTINATION, state=tmp_path / "state", dc_dir=samba_dc.targetdir,
            huge_customer=samba_dc.seed.big_customer, huge_cap=100,  # the cap below its users: searched on the DC
            bulk={run: (upns[2 + 2 * i: 4 + 2 * i], DESTINATION)
                  for i, run in enumerate(("tenantry-c1", "script-c1", "tenantry-c4", "script-c4"))},
        )
        results, raw = run_parts(target, PARTS, "tiny", log=lambda _message: None)
    finally:
        async def clean(directory):
            for mover in movers:
                await remove_user(directory, mover)

        asyncio.run(with_directory(clean))
    by_id = {r.id: r for r in results}
    errors = {part: raw[part]["error"] for part in PARTS if isinstance(raw.get(part), dict) and "error" in raw[part]}
    assert not errors
    assert set(by_id) == EXPECTED
    for result in results:
        assert isinstance(result.value, (int, float)) and not math.isnan(result.value), result.id
        assert (result.budget is None) == (result.id in WITHOUT_BUDGET), result.id
    assert by_id["move.extra_writes"].value == 0 and by_id["bulk.extra_writes"].value == 0  # counted, not timed
    assert by_id["move.writes"].value == by_id["move.writes"].detail["plan_ldap_steps"][0]
    assert by_id["console.animations"].passed
    assert by_id["dc.cpu_idle_minute"].detail["processes"] >= 1 and by_id["index.staleness_p95"].detail["refresh_kinds"] == ["delta"]
    huge = by_id["index.rss_huge_customer"].detail  # over the cap: searched on the DC, none held
    assert huge["cap"] == 100 and huge["held"] == 0 and huge["rows_shown"] > 0
    assert "bulk move, concurrency 4" in table(results)
    on_dc, seeded = _display_names(samba_admin, samba_dc)  # the staleness probe renames users: put back
    assert on_dc == seeded
