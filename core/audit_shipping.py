"""Shipping audit entries to syslog as they are written (RFC 5424 messages).

A local copy of the audit can be rewritten by whoever owns the state directory; a copy
on a log host they cannot write to cannot. ``[audit] syslog = true`` sends every entry,
once it is committed, to ``syslog_address``: a local socket path (``/dev/log``, where
journald and rsyslog listen; the default) or ``host:port`` (UDP, RFC 5426). Each
message is one RFC 5424 line::

    <PRI>1 TIMESTAMP HOSTNAME tenantry PROCID audit [tenantry@32473 id="7" hash="…" prev="…"] BOM{json}

PRI is the configured facility (default ``authpriv``) at severity ``notice``; the
structured data carries the entry's id and its place in the hash chain; the message is
the entry as JSON (control characters escaped). 32473 is the private enterprise number
RFC 5612 sets aside for documentation; give the collector its own rule for it.

Sending is best effort: UDP and a local datagram socket give no acknowledgement, and a
log host that is down must not stop an operator's job. A send that fails is logged
(``tenantry.audit``) and the entry stays in the local, hash-chained log.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import ConfigError
from core.text import json_text

if TYPE_CHECKING:
    from core.audit import AuditRecord

log = logging.getLogger("tenantry.audit")

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
    **{f"local{n}": 16 + n for n in range(8)},
}
NOTICE = 5
ENTERPRISE = 32473  # RFC 5612: the private enterprise number for documentation
MAX_MESSAGE = 60_000  # below the 64 KiB of a UDP datagram; longer entries are cut


@dataclass(frozen=True)
class SyslogTarget:
    """Where entries go: a socket path, or a UDP host and port."""

    address: str = "/dev/log"
    facility: str = "authpriv"

    @classmethod
    def parse(cls, address: str, facility: str, where: str) -> SyslogTarget:
        if facility not in FACILITIES:
            raise ConfigError(f"{where}: audit.syslog_facility must be one of {', '.join(FACILITIES)}, not {facility!r}.")
        if not address.startswith("/"):
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(f"{where}: audit.syslog_address must be a socket path such as /dev/log or host:port, not {address!r}.")
        return cls(address, facility)


class SyslogShipper:
    """Sends each audit entry to one syslog target as an RFC 5424 message."""

    def __init__(self, target: SyslogTarget):
        self.target = target
        self._hostname = socket.gethostname() or "-"
        self._socket: socket.socket | None = None

    def message(self, entry: AuditRecord, prev: str, digest: str) -> bytes:
        pri = FACILITIES[self.target.facility] * 8 + NOTICE
        header = f"<{pri}>1 {entry.time} {_field(self._hostname, 255)} tenantry {os.getpid()} audit"
        data = f'[tenantry@{ENTERPRISE} id="{entry.id}" hash="{digest}" prev="{prev}"]'
        body = json_text({
            "id": entry.id, "time": entry.time, "operator": entry.operator, "bound_as": entry.bound_as,
            "action": entry.action, "users": list(entry.users), "customers": list(entry.customers),
            "result": entry.result, "job": entry.job, "detail": entry.detail,
        }, indent=None)
        raw = f"{header} {data} ".encode() + b"\xef\xbb\xbf" + body.encode("utf-8")
        return raw[:MAX_MESSAGE]

    def ship(self, entry: AuditRecord, prev: str, digest: str) -> None:
        message = self.message(entry, prev, digest)
        try:
            self._send(message)
        except OSError as error:
            self.close()
            log.warning("audit entry %s could not be sent to syslog at %s: %s", entry.id, self.target.address, error)

    def _send(self, message: bytes) -> None:
        address = self.target.address
        if address.startswith("/"):
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.connect(address)
            self._socket.send(message)
            return
        host, _, port = address.rpartition(":")
        if self._socket is None:
            family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
            self._socket = socket.socket(family, socket.SOCK_DGRAM)
        self._socket.sendto(message, (host.strip("[]"), int(port)))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _field(value: str, limit: int) -> str:
    """A header field of RFC 5424: printable US-ASCII without spaces, or ``-``."""
    cleaned = "".join(c for c in value if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"
