"""The customer index on disk, so the next start shows customers at once.

One file per directory in the state folder's ``index/`` (named after a hash of the
base DN, hosting OU and DC URLs), private (0600), gzip-compressed JSON with a format
number, the directory it belongs to and the DC point it was read at. A file of another
format or directory is ignored; a corrupt one is removed with one sentence in the log
(the next save replaces it). At most :data:`KEEP` files are kept (the oldest go) and
none larger than :data:`MAX_BYTES` is written or read. A snapshot is only ever shown,
marked with its age, while a refresh runs: no plan reads it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from core.config import Config
from core.customer_index import CustomerIndex
from core.directory.pinned import ChangePoint
from core.model import Customer, ServicePlan

log = logging.getLogger("tenantry.index")

FORMAT = 2  # 2: the OU's own domains and code, the tenant map applied on restore
KEEP = 8  # snapshot files kept in the folder (one per directory), the newest
MAX_BYTES = 32 * 1024 * 1024  # compressed; about 150,000 customers


@dataclass(frozen=True)
class Snapshot:
    """Where one directory's customer index is kept."""

    path: Path
    directory: str  # what names the directory inside the file

    @classmethod
    def of(cls, config: Config, state: Path) -> Snapshot:
        d = config.directory
        directory = "\n".join((d.base_dn.casefold(), d.hosting_dn.casefold(), *sorted(u.casefold() for u in d.urls)))
        name = hashlib.sha256(directory.encode()).hexdigest()[:16]
        return cls(state / "index" / f"customers-{name}.json.gz", directory)

    # -- reading -------------------------------------------------------------------
    def restore(self, index: CustomerIndex, with_tenant: Callable[[Customer], Customer] = lambda c: c) -> bool:
        """Fill ``index`` from the file, each customer given its code and domains by
        ``with_tenant`` (the tenant map as configured now); ``False`` (index untouched)
        if there is none usable."""
        try:
            if self.path.stat().st_size > MAX_BYTES:
                raise ValueError("larger than a snapshot may be")
            with gzip.open(self.path, "rt", encoding="utf-8") as file:
                data = json.load(file)
            if not isinstance(data, dict):
                raise ValueError("not a snapshot")
            if data.get("format") != FORMAT:
                log.info("The customer snapshot %s is of another format; it is ignored.", self.path)
                return False
            if data.get("directory") != self.directory:
                log.info("The customer snapshot %s belongs to another directory; it is ignored.", self.path)
                return False
            point = ChangePoint(str(data["server"]), str(data["invocation"]), int(data["usn"]))
            customers = [with_tenant(_customer(row)) for row in data["customers"]]
            read_at = float(data["read_at"])
        except FileNotFoundError:
            return False
        except (OSError, EOFError, ValueError, KeyError, TypeError, IndexError) as error:
            log.warning("The customer snapshot %s is unreadable (%s); it is removed and will be written anew.", self.path, _reason(error))
            self._remove()
            return False
        index.replace_all(customers, point, read_at)
        return True

    # -- writing -------------------------------------------------------------------
    def capture(self, index: CustomerIndex) -> dict[str, Any] | None:
        """What :meth:`write` writes, taken from ``index`` now (``None``: nothing to keep)."""
        if index.point is None or not index.complete:
            return None
        return {
            "format": FORMAT,
            "directory": self.directory,
            "server": index.point.server,
            "invocation": index.point.invocation,
            "usn": index.point.usn,
            "read_at": index.read_at,
            "customers": index.customers,
        }

    def save(self, index: CustomerIndex) -> None:
        """Write ``index`` now."""
        self.write(self.capture(index))

    def write(self, captured: dict[str, Any] | None) -> None:
        """Write what :meth:`capture` took, atomically (a new private file renamed over
        the old one); may run in a thread."""
        if captured is None:
            return
        data = {**captured, "customers": [_row(c) for c in captured["customers"]]}
        payload = gzip.compress(json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8"), 6)
        if len(payload) > MAX_BYTES:
            log.warning("The customer snapshot would take %d bytes (more than %d); it is not written.", len(payload), MAX_BYTES)
            return
        folder = self.path.parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            partial = self.path.with_suffix(f".{os.getpid()}.tmp")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(payload)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, self.path)
        except OSError as error:
            log.warning("The customer snapshot %s cannot be written (%s).", self.path, _reason(error))
            return
        self._prune(folder)

    def _prune(self, folder: Path) -> None:
        files = sorted(folder.glob("customers-*.json.gz"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in files[KEEP:]:
            old.unlink(missing_ok=True)

    def _remove(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass


def _row(c: Customer) -> list[Any]:
    # What the OU says; the code and usable domains come from the tenant map on restore.
    return [c.name, c.dn, c.reseller, c.reseller_dn, list(c.claimed_domains), c.claimed_code, list(c.services),
            [[p.service, p.name] for p in c.plans], c.guid]


def _customer(row: list[Any]) -> Customer:
    name, dn, reseller, reseller_dn, domains, code, services, plans, guid = row
    if not isinstance(name, str) or not isinstance(dn, str):
        raise TypeError("a row without a name or DN")
    return Customer(
        name=name, dn=dn, reseller=reseller, reseller_dn=reseller_dn, claimed_domains=tuple(map(str, domains)),
        claimed_code=code, services=tuple(map(str, services)), plans=tuple(ServicePlan(str(s), str(n)) for s, n in plans), guid=guid,
    )


def _reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
