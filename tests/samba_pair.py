"""Two replicating Samba AD DCs on loopback: the bed of the multi-DC tests.

DC1 is provisioned, given the schema and the seed exactly as the one-DC fixture does it
(:class:`samba_dc.SambaDC`); DC2 joins it (``samba-tool domain join … DC``) and receives
everything by replication. Both run ``samba -i -M prefork`` with the replication services
(``drepl``, ``kcc``) and what they need (``rpc``, ``kdc``, ``cldap``), each on its own
address: ``TENANTRY_TEST_DC1_ADDRESS`` and ``TENANTRY_TEST_DC2_ADDRESS`` (defaults
127.0.0.3 and 127.0.0.4, which no other fixture uses).

Replication between Samba DCs goes by name — the DC's host name and
``<NTDS Settings objectGUID>._msdcs.<realm>`` — so the bed adds those names to
/etc/hosts, each line tagged with this run, and removes exactly those lines when it
stops. Kerberos uses a krb5.conf naming both KDCs (``KRB5_CONFIG``).

:class:`ReplicatingDC` adds the faults the tests need: :meth:`~ReplicatingDC.crash`
(SIGKILL of the DC's process group), :meth:`~ReplicatingDC.freeze` /
:meth:`~ReplicatingDC.thaw` (SIGSTOP / SIGCONT), :meth:`~ReplicatingDC.restart`, and
:meth:`SambaPair.hold` / :meth:`SambaPair.release` / :meth:`SambaPair.replicate` to keep a
DC's writes from its partner and to push them across on demand.

See ../shared/multi-dc.md for the measured recipe and its pitfalls.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import ldap3

from samba_dc import (
    LDAP_PORT, LDAPS_PORT, NETBIOS_DOMAIN, REALM, DCInfo, SambaDC, SambaDCError, _clean_env, _port_free,
    throwaway_credentials, write_certificates,
)

DC1_ADDRESS = os.environ.get("TENANTRY_TEST_DC1_ADDRESS", "127.0.0.3")
DC2_ADDRESS = os.environ.get("TENANTRY_TEST_DC2_ADDRESS", "127.0.0.4")
HOSTS_FILE = Path("/etc/hosts")
# The first replication after a restart fails on a stale DRS connection, and a DC's KCC
# answers "cannot be performed" until its services are all up: such calls are retried.
TRIES = 8


def host_name(address: str) -> str:
    """A DC's host name from its address (``tdc0-0-3`` for 127.0.0.3): two pairs running at
    once (two suites side by side) then never share a name in /etc/hosts."""
    return "tdc" + "-".join(address.split(".")[1:])


class ReplicatingDC(SambaDC):
    """One DC of the pair: prefork, replication services on, its faults at hand."""

    def __init__(self, targetdir: Path, *, host_name: str, address: str, krb5_conf: Path, **kwargs) -> None:
        super().__init__(targetdir, **kwargs)
        self.host_name = host_name
        self.address = address
        self.krb5_conf = krb5_conf
        self.frozen = False

    def write_krb5_conf(self) -> None:
        """Nothing: the pair's krb5.conf, naming both KDCs, is written by :class:`SambaPair`."""

    @property
    def dns_name(self) -> str:
        return f"{self.host_name}.{REALM.lower()}"

    def extra_settings(self) -> dict[str, str]:
        return {
            "server services": "ldap, cldap, rpc, kdc, drepl, kcc",
            "prefork children": "2",
            "name resolve order": "host",
        }

    def command(self) -> list[str]:
        return ["samba", "-i", "-M", "prefork", "-s", str(self.smbconf)]

    def env(self) -> dict[str, str]:
        return {**_clean_env(), "KRB5_CONFIG": str(self.krb5_conf)}

    def tool(self, *args: str, what: str | None = None, timeout: float = 120) -> str:
        """Run ``samba-tool ARGS`` against this DC's configuration as Administrator."""
        return self._run(
            ["samba-tool", *args, "-s", str(self.smbconf), "-U", f"Administrator%{self.admin_password}"],
            what or f"samba-tool {' '.join(args[:2])} on {self.host_name}",
            timeout=timeout,
        )

    def join(self, partner: ReplicatingDC) -> None:
        """Join the domain of ``partner`` as a second DC (replaces provision and load)."""
        start = time.monotonic()
        self.prepare_targetdir()
        self._run(
            [
                "samba-tool", "domain", "join", REALM, "DC",
                "-s", str(self.smbconf),
                f"--targetdir={self.targetdir}",
                f"--server={partner.dns_name}",
                "-W", NETBIOS_DOMAIN,
                f"--realm={REALM}",
                "--dns-backend=NONE",
                f"--option=netbios name={self.host_name.upper()}",
                f"--option=interfaces={self.address}/8",
                "--option=bind interfaces only=yes",
                "--option=name resolve order=host",
                "-U", f"Administrator%{self.admin_password}",
            ],
            "samba-tool domain join",
        )
        self.tls_paths = write_certificates(self.targetdir / "tls", self.address)
        self._configure()
        self.timings["join"] = time.monotonic() - start

    def ntds_guid(self) -> str:
        """The objectGUID of this DC's NTDS Settings object (the name DRS binds to)."""
        with self.info().connect() as conn:
            conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["dsServiceName"])
            service = conn.entries[0].dsServiceName.value
            conn.search(service, "(objectClass=*)", ldap3.BASE, attributes=["objectGUID"])
            return str(uuid.UUID(bytes_le=conn.entries[0].objectGUID.raw_values[0]))

    def update_spns(self) -> None:
        """The SPNs the (disabled) dnsupdate service would register; replication needs them."""
        self._run(["samba_spnupdate", "-s", str(self.smbconf)], f"samba_spnupdate on {self.host_name}")

    # -- faults ------------------------------------------------------------------------
    def _signal(self, signum: int) -> None:
        if self.process is None:
            raise SambaDCError(f"{self.host_name} is not running")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)

    def crash(self) -> None:
        """SIGKILL every process of the DC at once (a crash: nothing is flushed or said)."""
        self.thaw()
        self._signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._reap()

    def freeze(self) -> None:
        """SIGSTOP the DC: connections stay open, requests are buffered, nothing answers."""
        self._signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen:
            self._signal(signal.SIGCONT)
            self.frozen = False

    def restart(self) -> None:
        """Start the DC again on its database (after :meth:`crash` or :meth:`halt`)."""
        if self.process is None:
            # the killed group's sockets close as its last processes die: wait for that
            deadline = time.monotonic() + 60
            while not all(_port_free(port, self.address) for port in (LDAP_PORT, LDAPS_PORT)):
                if time.monotonic() > deadline:
                    raise SambaDCError(f"the ports of {self.host_name} stayed in use after it stopped")
                time.sleep(0.2)
            self.start()

    def halt(self) -> None:
        """Stop the DC in order, keeping its address (it comes back with :meth:`restart`)."""
        self.thaw()
        if self.process is not None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(timeout=20)
        self._reap()

    def _reap(self) -> None:
        """Forget the dead process (its children with it), keeping the address lock."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # prefork children left behind
        lock, self._address_lock = self._address_lock, None
        try:
            super().stop()
        finally:
            self._address_lock = lock

    def stop(self) -> None:
        self.thaw()
        pgid = self.process.pid if self.process is not None else None
        super().stop()
        if pgid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)


def _retried(call) -> None:
    for attempt in range(TRIES):
        try:
            call()
            return
        except SambaDCError:
            if attempt == TRIES - 1:
                raise
            time.sleep(1 + attempt)


@dataclass
class PairInfo:
    """What a two-DC test needs: each DC's :class:`DCInfo` and one CA file for both."""

    dc1: DCInfo
    dc2: DCInfo
    ca_file: str
    timings: dict[str, float]

    @property
    def urls(self) -> list[str]:
        return [self.dc1.ldaps_url, self.dc2.ldaps_url]


class HostsLines:
    """Lines this run adds to /etc/hosts, each tagged, removed exactly at :meth:`remove`."""

    def __init__(self, tag: str, path: Path = HOSTS_FILE) -> None:
        self.path = path
        self.tag = f"# {tag}"
        self.added: list[str] = []

    def add(self, address: str, *names: str) -> None:
        line = f"{address}\t{' '.join(names)}\t{self.tag}"
        self._edit(lambda lines: lines + [line])
        self.added.append(line)

    def remove(self) -> None:
        mine = set(self.added)
        self._edit(lambda lines: [x for x in lines if x not in mine])
        self.added.clear()

    def _edit(self, change) -> None:
        # In place (a container's /etc/hosts is a bind mount: no rename over it), under a
        # lock so two runs editing it at once do not lose each other's lines.
        with open(self.path, "r+", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            lines = fh.read().splitlines()
            fh.seek(0)
            fh.write("".join(f"{x}\n" for x in change(lines)))
            fh.truncate()


class SambaPair:
    """DC1 provisioned and seeded, DC2 joined, replication working both ways."""

    def __init__(self, root: Path, seed, *, addresses: tuple[str, str] = (DC1_ADDRESS, DC2_ADDRESS)) -> None:
        self.root = Path(root).resolve()
        self.krb5_conf = self.root / "krb5.conf"
        common = dict(seed=seed, krb5_conf=self.krb5_conf, **throwaway_credentials(seed))
        self.dc1 = ReplicatingDC(self.root / "dc1", host_name=host_name(addresses[0]), address=addresses[0], **common)
        self.dc2 = ReplicatingDC(self.root / "dc2", host_name=host_name(addresses[1]), address=addresses[1], **common)
        self.hosts = HostsLines(f"tenantry-test-pair {os.getpid()} {self.root}")
        self.timings: dict[str, float] = {}
        self.ca_file = self.root / "ca-bundle.pem"

    @property
    def dcs(self) -> tuple[ReplicatingDC, ReplicatingDC]:
        return self.dc1, self.dc2

    def run(self) -> PairInfo:
        started = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        self.krb5_conf.write_text(
            "[libdefaults]\n"
            f"\tdefault_realm = {REALM}\n\tdns_lookup_realm = false\n\tdns_lookup_kdc = false\n"
            "[realms]\n"
            f"\t{REALM} = {{\n\t\tkdc = {self.dc1.address}\n\t\tkdc = {self.dc2.address}\n\t}}\n"
        )
        try:
            for dc in self.dcs:
                dc.check_prerequisites()
            self.dc1.provision()
            self.dc1.load()
            self.hosts.add(self.dc1.address, self.dc1.dns_name, self.dc1.host_name)
            self.dc1.start()
            self.hosts.add(self.dc1.address, f"{self.dc1.ntds_guid()}._msdcs.{REALM.lower()}")
            self.dc1.update_spns()
            self.timings["dc1"] = time.monotonic() - started
            self.hosts.add(self.dc2.address, self.dc2.dns_name, self.dc2.host_name)
            self.dc2.join(self.dc1)
            self.dc2.start()
            self.hosts.add(self.dc2.address, f"{self.dc2.ntds_guid()}._msdcs.{REALM.lower()}")
            self.dc2.update_spns()
            # Each DC's KCC builds its inbound connections from what it knows of the other;
            # DC1 learns DC2's NTDS Settings in full only by replication: KCC, pull, KCC.
            for dc in self.dcs:
                _retried(lambda dc=dc: dc.tool("drs", "kcc", dc.dns_name))
            self.replicate(contexts=("", "CN=Configuration,"))
            for dc in self.dcs:
                _retried(lambda dc=dc: dc.tool("drs", "kcc", dc.dns_name))
            self.timings["dc2"] = time.monotonic() - started - self.timings["dc1"]
        except BaseException:
            self.stop()
            raise
        self.ca_file.write_bytes(b"".join(Path(dc.tls_paths["ca"]).read_bytes() for dc in self.dcs))
        self.timings["total"] = time.monotonic() - started
        return self.info()

    def info(self) -> PairInfo:
        return PairInfo(self.dc1.info(), self.dc2.info(), str(self.ca_file), self.timings)

    def stop(self) -> None:
        try:
            for dc in reversed(self.dcs):
                dc.stop()
        finally:
            self.hosts.remove()

    def partner(self, dc: ReplicatingDC) -> ReplicatingDC:
        return self.dc2 if dc is self.dc1 else self.dc1

    # -- replication ------------------------------------------------------------------
    def replicate(self, source: ReplicatingDC | None = None, *, contexts: tuple[str, ...] = ("",)) -> None:
        """Pull now: the partner of ``source`` from ``source``, or both ways (the domain
        partition). ``--local``: samba-tool pulls itself into the DC's database, so it works
        while replication is held (the DsReplicaSync route answers WERR_FILE_NOT_FOUND on
        this Samba in prefork mode). Retries the stale-connection failure after a restart."""
        pairs = [(source, self.partner(source))] if source else [(self.dc1, self.dc2), (self.dc2, self.dc1)]
        for src, dst in pairs:
            for context in contexts:
                _retried(lambda src=src, dst=dst, context=context: dst.tool(
                    "drs", "replicate", dst.dns_name, src.dns_name, context + src.seed.base_dn, "--local",
                    what=f"replication {src.host_name} → {dst.host_name}"))

    def hold(self, source: ReplicatingDC) -> None:
        """Keep ``source``'s writes from its partner: inbound replication off on the partner
        (:meth:`replicate` still pushes them across; outbound off on ``source`` would refuse it)."""
        partner = self.partner(source)
        partner.tool("drs", "options", partner.dns_name, "--dsa-option=+DISABLE_INBOUND_REPL")

    def release(self, source: ReplicatingDC) -> None:
        """Undo :meth:`hold`."""
        partner = self.partner(source)
        partner.tool("drs", "options", partner.dns_name, "--dsa-option=-DISABLE_INBOUND_REPL")
