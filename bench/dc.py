"""The benchmark's Samba AD DC: provisioned and seeded offline once per size, then cached.

The DC is the test suite's own :class:`tests.samba_dc.SambaDC` (same schema extension,
TLS, loopback-only daemon, and the same lock file, so a bench run and a test run wait
for each other). Provisioning and seeding happen offline, before the daemon starts and
without the lock, so test runs of other checkouts go on meanwhile; the seed is built
while ``samba-tool domain provision`` runs.

The DC lives in ``bench/.cache/<size>/dc`` (gitignored); right after seeding, a copy
is kept in ``bench/.cache/<size>/pristine`` with its passwords, and each later run
copies it back into ``dc`` (Samba's files name their own directory, and the moves change
the directory), so only the first run of a size pays the seeding.
The cache is rebuilt when the seed generator or the loader changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # tests/samba_dc.py is the suite's DC, reused here

from samba_dc import LOOPBACK, DCInfo, SambaDC, throwaway_password, write_certificates  # noqa: E402

from bench.seed import Size, build_bench_seed  # noqa: E402
from core.demo.seed import BASE_DN, RESELLERS, Seed  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
OPERATORS = ("sp-admin", *(f"reseller-admin-{i}" for i in range(1, len(RESELLERS) + 1)), "readonly-op", "user-admin")


def _fingerprint(size: Size) -> str:
    """Changes when the size, the seed generator or the DC's loader changes."""
    digest = hashlib.sha256(repr(size).encode())
    for path in (ROOT / "bench" / "seed.py", ROOT / "core" / "demo" / "seed.py", ROOT / "tests" / "samba_dc.py"):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def delegations(seed: Seed) -> list[tuple[str, str]]:
    """SP administrators on the hosting OU, reseller administrators on their reseller.

    The benchmark works as the SP administrator; the customers' own User Administrator
    delegations (thousands of them, one subtree rewrite each) are left out.
    """
    hosting = f"OU=Hosting,{seed.base_dn}"
    pairs = [(hosting, f"CN=Service Provider Administrators,{hosting}")]
    pairs += [(e.dn, f"CN=Reseller Administrators,{e.dn}") for e in seed.resellers()]
    return pairs


@dataclass
class BenchDC:
    """A running bench DC: stop it with :meth:`stop` (the lock goes with it)."""

    dc: SambaDC
    info: DCInfo
    timings: dict[str, float]
    cached: bool
    seeded: dict[str, float]  # how long seeding this DC took (when it was cached, earlier)

    def stop(self) -> None:
        self.dc.stop()


def _copy_tree(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    # cp keeps sparse files sparse (the .ldb files are mostly holes) and is much faster
    subprocess.run(["cp", "-a", "--sparse=always", "--reflink=auto", str(source), str(target)], check=True)


def _on_address(folder: Path, address: str) -> None:
    """Make the DC copied into ``folder`` listen on ``address`` (TENANTRY_TEST_DC_ADDRESS):
    the cache keeps the address it was seeded on in smb.conf, krb5.conf and the server
    certificate, and a run on another address would find it taken or its name wrong."""
    smb, krb5 = folder / "etc" / "smb.conf", folder / "krb5.conf"
    conf = smb.read_text()
    wanted = f"interfaces = {address}/8"
    if wanted in conf:
        return
    smb.write_text(re.sub(r"interfaces = \S+", wanted, conf))
    krb5.write_text(re.sub(r"kdc = \S+", f"kdc = {address}", krb5.read_text()))
    write_certificates(folder / "tls", address)


def _seed_into(size: Size, target: Path, passwords: dict, log) -> dict[str, float]:
    """Provision a DC in ``target`` and load the bench seed into it, offline."""
    timings: dict[str, float] = {}
    empty = Seed(base_dn=BASE_DN, entries=(), operators=(), big_customer="", hostile_customers=())
    dc = SambaDC(target, admin_password=passwords["admin"], operator_passwords=passwords["operators"], seed=empty)
    with ThreadPoolExecutor(1) as pool:
        start = time.monotonic()
        built = pool.submit(build_bench_seed, size)
        log(f"provisioning a DC in {target} while building the {size.name} seed …")
        dc.provision()  # a subprocess: the seed is built meanwhile
        seed = built.result()
        timings["build_seed"] = time.monotonic() - start
    dc.seed = seed
    dc.delegate = delegations(seed)
    dc.operator_passwords = {op.name: passwords["operators"][op.name] for op in seed.operators}
    log(f"loading {len(seed.entries):,} entries into sam.ldb (offline; 5,000 customers take ~9 min) …")
    dc.load()
    timings.update(dc.timings)
    return timings


def prepare(size: Size, *, fresh: bool = False, log=print) -> tuple[dict, dict[str, float], bool]:
    """Seed the ``size`` DC into the cache unless a fitting one is there (no lock needed:
    nothing listens yet). Returns its metadata, the timings of this call, and whether
    the cache was used."""
    folder = CACHE / size.name
    pristine, work, meta_path = folder / "pristine", folder / "dc", folder / "meta.json"
    fingerprint = _fingerprint(size)
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    if not fresh and meta.get("fingerprint") == fingerprint and pristine.is_dir():
        log(f"using the cached {size.name} DC ({folder}; seeded in {sum(meta['timings'].values()):.0f} s)")
        return meta, {}, True
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    passwords = {"admin": throwaway_password(), "operators": {name: throwaway_password() for name in OPERATORS}}
    timings = _seed_into(size, work, passwords, log)
    start_time = time.monotonic()
    _copy_tree(work, pristine)
    timings["snapshot"] = time.monotonic() - start_time
    meta = {"fingerprint": fingerprint, "passwords": passwords, "timings": timings}
    fd = os.open(meta_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # throwaway passwords
    with os.fdopen(fd, "w") as fh:
        json.dump(meta, fh)
    log(f"seeded in {sum(timings.values()):.0f} s: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))
    return meta, timings, False


def start(size: Size, *, fresh: bool = False, log=print) -> BenchDC:
    """A running DC holding the ``size`` bench seed, from the cache when it is there."""
    meta, timings, cached = prepare(size, fresh=fresh, log=log)
    folder = CACHE / size.name
    pristine, work = folder / "pristine", folder / "dc"
    if cached:
        # Samba's files name their own directory: the pristine copy goes back into ``dc``.
        start_time = time.monotonic()
        _copy_tree(pristine, work)
        timings["copy"] = time.monotonic() - start_time
    _on_address(work, LOOPBACK)
    seed = build_bench_seed(size)
    passwords = meta["passwords"]
    dc = SambaDC(
        work, admin_password=passwords["admin"],
        operator_passwords={op.name: passwords["operators"][op.name] for op in seed.operators}, seed=seed,
    )
    dc.tls_paths = {name: work / "tls" / file for name, file in
                    (("ca", "ca.pem"), ("wrong_ca", "wrong-ca.pem"), ("cert", "server.pem"), ("key", "server-key.pem"))}
    log("starting the DC (waiting for the DC lock if a test run holds it) …")
    dc.start(timeout=300)
    timings["start"] = dc.timings["start"]
    return BenchDC(dc, dc.info(), timings, cached, meta["timings"])
