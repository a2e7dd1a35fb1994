"""``python -m bench.cmdlets [--users N]``: what Exchange and Lync on their cmdlets add to a
move and a copy, per user.

On the test suite's one-DC Samba bed (tests/samba_dc.py, its address from
``TENANTRY_TEST_DC_ADDRESS``) with the loopback PSRP server serving the Exchange and Lync
sessions (tests/cmdlet_bed.py), it moves N users and copies N users twice: with the
``exchange_powershell`` + ``lync_powershell`` adapters, and with the directory-only
``exchange`` + ``ocs`` adapters (the same users, attributes written by LDAP). For each it
prints the median time of the preflight and of the run per user, the cmdlets issued and
the WS-Management requests (round trips) per user. Loopback: the server answers at once,
so the times are Tenantry's and pypsrp's own cost plus the DC's writes the cmdlets make;
a real Exchange adds its own cmdlet time (typically 0.2–2 s each) to every round trip
that carries a cmdlet.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the suite's DC and PSRP bed, reused here

from cmdlet_bed import PASSWORD_ENV, add_tenants, mailbox_user, start_platform, write_platform_config  # noqa: E402
from directory_fixtures import operator, write_dc_config  # noqa: E402
from move_fixtures import DESTINATION, make_user, remove_user  # noqa: E402
from samba_dc import SambaDC, throwaway_credentials  # noqa: E402
from test_copy import copy_names, new_password, remove_copy  # noqa: E402

from core.config import load  # noqa: E402
from core.copy import CopyRequest  # noqa: E402
from core.demo.seed import build_seed  # noqa: E402
from core.directory import connect  # noqa: E402
from core.move import MoveRequest  # noqa: E402
from core.session import Session  # noqa: E402

DIRECTORY_SERVICES = ('\n[services.exchange]\ndisplay_name = "Hosted Exchange"\nadapter = "exchange"\n'
                      'plans = ["Basic 2 GB", "Premium 50 GB"]\n'
                      '\n[services.ocs]\ndisplay_name = "Office Communications Server"\nadapter = "ocs"\n')


async def measure(session: Session, platform, users: int, cmdlets: bool) -> dict:
    server = platform.server
    rows: dict[str, list] = {"move preflight": [], "move run": [], "copy preflight": [], "copy run": []}
    calls: dict[str, Counter] = {"move": Counter(), "copy": Counter()}
    trips = {"move": 0, "copy": 0}
    for _ in range(users):
        user = await (mailbox_user(session, platform) if cmdlets else make_user(session.directory, services=("exchange", "ocs")))
        copy_dn = None
        try:
            for kind in ("move", "copy"):
                server.reset()
                password = new_password()
                started = time.perf_counter()
                if kind == "move":
                    plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
                else:
                    plan = await session.copier().preflight(session.operator, CopyRequest(plan_user, *copy_names()), password)
                planned = time.perf_counter()
                assert plan.ok, plan.problems
                events = [e async for e in session.executor().run(plan, session.operator, secrets={"password": password})]
                done = time.perf_counter()
                assert events[-1].status == "done", [e.message for e in events]
                rows[f"{kind} preflight"].append(planned - started)
                rows[f"{kind} run"].append(done - planned)
                calls[kind].update(c.command for c in server.calls)
                trips[kind] += server.requests
                if kind == "move":
                    plan_user = plan.users[0].upn_after  # the moved user is the copy's template
                else:
                    copy_dn = plan.users[0].dn_after
        finally:
            await remove_copy(session.directory, copy_dn)
            await remove_user(session.directory, user)
    out = {name: statistics.median(values) * 1000 for name, values in rows.items()}
    for kind in ("move", "copy"):
        out[f"{kind} cmdlets"] = {name: count / users for name, count in sorted(calls[kind].items())}
        out[f"{kind} round trips"] = trips[kind] / users
    return out


async def main(users: int) -> None:
    seed = build_seed()
    with tempfile.TemporaryDirectory(prefix="bench-cmdlets-") as tmp:
        dc = SambaDC(Path(tmp) / "dc", seed=seed, **throwaway_credentials(seed))
        info = dc.run()
        platform = start_platform(info, Path(tmp) / "tls")
        os.environ[PASSWORD_ENV] = platform.password
        password = info.operator_passwords[operator(info, "sp_admin").name]
        try:
            results = {}
            for label, cmdlets in (("cmdlets", True), ("directory", False)):
                path = Path(tmp) / f"{label}.toml"
                config = (write_platform_config(info, platform, path) if cmdlets
                          else write_dc_config(info, path, extra=DIRECTORY_SERVICES, tenants=info.seed.tenants_toml(services=())))
                directory = await connect(load(config), password)
                await add_tenants(directory, platform)
                session = await Session.open(directory, state=Path(tmp) / f"state-{label}")
                try:
                    await measure(session, platform, 1, cmdlets)  # warm-up: connections, runspace pools
                    results[label] = await measure(session, platform, users, cmdlets)
                finally:
                    await session.close()
        finally:
            platform.stop()
            dc.stop()
    for label, result in results.items():
        print(f"== {label} adapters, median of {users} users")
        for name, value in result.items():
            print(f"  {name}: {value:.1f} ms" if isinstance(value, float) and "trips" not in name else f"  {name}: {value}")
    for kind in ("move", "copy"):
        extra = sum(results["cmdlets"][f"{kind} {p}"] - results["directory"][f"{kind} {p}"] for p in ("preflight", "run"))
        print(f"{kind}: the cmdlets add {extra:.0f} ms per user on loopback "
              f"({results['cmdlets'][f'{kind} round trips']:.0f} WS-Management requests)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10)
    asyncio.run(main(parser.parse_args().users))
