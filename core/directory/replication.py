"""What one domain controller says about replication: who it is (its NTDS Settings
object and invocation id), how far it has written (``highestCommittedUSN``) and how far
it has received the writes of each other DC (the domain's ``replUpToDateVector``).

A job is pinned to one DC (PRODUCT §4). Its journal keeps that DC's identity and, per
written step, the DC's ``highestCommittedUSN`` after the write: another DC holds every
write of the job once its up-to-dateness vector for the job DC's invocation id has
reached the last of those numbers. A DC that does not yet can be asked to pull the job's
objects from the job's DC (:func:`ask_to_replicate`). Blocking functions, run in a pool
thread.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from typing import Any, Iterable

import ldap3

from core.directory import ops
from core.escape import parent_dn

ROOT_DSE = ""
_CURSOR_V2 = struct.Struct("<16sQQ")  # invocation id, highest USN, last sync (FILETIME)
_CURSOR_V1 = struct.Struct("<16sQ")
# MS-ADTS 3.1.1.3.3.18: a rootDSE modify of this attribute makes the DC pull one object now.
REPLICATE_SINGLE_OBJECT = "replicateSingleObject"
DSA_CLASS = "ntdsdsa"  # the class of a DC's NTDS Settings object (its "DSA object")


@dataclass(frozen=True)
class DomainController:
    """One DC as a job records it: where it was reached and who it is."""

    url: str
    service: str = ""  # dsServiceName: the DN of its NTDS Settings object
    invocation_id: str = ""  # the id its writes carry when they replicate

    def to_json(self) -> dict[str, str]:
        return {"url": self.url, "service": self.service, "invocation_id": self.invocation_id}

    @classmethod
    def from_json(cls, data: Any) -> DomainController | None:
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return None
        return cls(data["url"], str(data.get("service") or ""), str(data.get("invocation_id") or ""))

    @property
    def name(self) -> str:
        """How a sentence names it: the host of its URL."""
        return self.url.split("://", 1)[-1].split("/", 1)[0]


def identity(conn: Any, url: str) -> DomainController:
    """The DC behind ``conn`` (a directory without a root DSE, the demo's, is only its URL)."""
    root = ops.read(conn, ROOT_DSE, ["dsServiceName"])
    service = root.first("dsServiceName") if root else None
    if not service:
        return DomainController(url)
    settings = ops.read(conn, service, ["invocationId"])
    invocation = settings.first("invocationId") if settings else None
    return DomainController(url, service, invocation or "")


def pdc_emulator(conn: Any, naming_context: str) -> str | None:
    """The ``dNSHostName`` of the domain's PDC emulator: the server whose NTDS Settings
    object the NC head's ``fSMORoleOwner`` names (``None`` where there is none: the demo)."""
    head = ops.read(conn, naming_context, ["fSMORoleOwner"])
    owner = head.first("fSMORoleOwner") if head else None
    if not owner:
        return None
    server = ops.read(conn, parent_dn(owner), ["dNSHostName"])
    return server.first("dNSHostName") if server else None


def highest_usn(conn: Any) -> int | None:
    """The DC's ``highestCommittedUSN`` now (``None`` where there is none: the demo)."""
    root = ops.read(conn, ROOT_DSE, ["highestCommittedUSN"])
    value = root.first("highestCommittedUSN") if root else None
    return int(value) if value and value.isdigit() else None


def received(conn: Any, naming_context: str) -> dict[str, int] | None:
    """How far this DC has received each DC's writes to ``naming_context``: invocation id →
    highest USN, from the NC head's ``replUpToDateVector``. ``None`` when it cannot be read
    (no right to read it, or no such attribute): then nothing is proven."""
    entry = ops.read(conn, naming_context, ["replUpToDateVector"])
    blob = entry.first("replUpToDateVector") if entry else None
    if not blob:
        return None
    return parse_up_to_date_vector(bytes.fromhex(blob))


def parse_up_to_date_vector(blob: bytes) -> dict[str, int] | None:
    """A ``replUpToDateVectorBlob`` (MS-DRSR 5.166): version, reserved, count, reserved, then
    the cursors (version 2: invocation id, USN, time; version 1: without the time)."""
    if len(blob) < 16:
        return None
    version, _reserved, count, _reserved2 = struct.unpack_from("<IIII", blob, 0)
    cursor = {1: _CURSOR_V1, 2: _CURSOR_V2}.get(version)
    if cursor is None or len(blob) < 16 + count * cursor.size:
        return None
    out: dict[str, int] = {}
    for i in range(count):
        fields = cursor.unpack_from(blob, 16 + i * cursor.size)
        out[str(uuid.UUID(bytes_le=fields[0]))] = fields[1]
    return out


def ask_to_replicate(conn: Any, source: str, dns: Iterable[str], guids: Iterable[str]) -> int:
    """Ask the DC behind ``conn`` to pull each object now from the DC whose NTDS Settings
    object is ``source`` (a rootDSE modify ``replicateSingleObject``, MS-ADTS
    3.1.1.3.3.18), one request per object: those at ``dns`` on this DC and those of
    objectGUID ``guids`` (which it may not have yet). Returns how many were asked.

    The value names both objects by objectGUID only (``<GUID=…>:<GUID=…>``, each
    re-formatted from a parsed UUID), so no name — a tenant's user or group name may hold
    a colon, a comma or anything else — is ever part of it: ``source`` and ``dns`` are
    only read (a base read of an exact DN), and ``source`` must be a DC's NTDS Settings
    object. A refusal raises the DC's error (``ldap_code`` 53 where the DC does not take
    the request, 50 where the bind lacks DS-Replication-Synchronize)."""
    dsa = ops.read(conn, source, ["objectClass", "objectGUID"]) if source else None
    if dsa is None or DSA_CLASS not in {c.casefold() for c in dsa.get("objectClass")} or not dsa.first("objectGUID"):
        return 0
    wanted = dict.fromkeys(_guid(g) for g in guids)
    for dn in dns:
        entry = ops.read(conn, dn, ["objectGUID"])
        if entry is not None and entry.first("objectGUID"):
            wanted[_guid(entry.first("objectGUID"))] = None
    wanted.pop(None, None)
    source_guid = _guid(dsa.first("objectGUID"))
    for guid in wanted:
        value = f"<GUID={source_guid}>:<GUID={guid}>"
        checking = getattr(conn, "check_names", False)
        conn.check_names = False  # ldap3 takes the rootDSE's empty DN for a malformed one when it checks names
        try:
            ops.modify(conn, ROOT_DSE, {REPLICATE_SINGLE_OBJECT: [(ldap3.MODIFY_REPLACE, [value])]})
        finally:
            conn.check_names = checking
    return len(wanted)


def _guid(text: Any) -> str | None:
    try:
        return str(uuid.UUID(str(text)))
    except ValueError:
        return None
