"""After a job: whether its writes have reached the other domain controllers, and whether
the values it wrote are still unique once they have (PRODUCT §4, issue 9).

A job writes on one DC. Another DC may meanwhile have accepted a write that collides with
it — the same UPN, address, SIP URI or username given to another user, or another object
given the same name in the same OU — which no check made before the job could see: it
was not there yet. Replication then keeps both values (AD enforces their uniqueness on
the originating DC only) and renames one of two same-named objects ``<name>\\0ACNF:<guid>``.
So once a DC holds the job's writes, the values are read back there: a value held by two
objects, or a conflict object next to the user, is a duplicate the admin is told of (the
job's result, ``--json`` and the audit log).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, Iterable

from core import plan as p
from core.audit import Audit
from core.directory import Directory
from core.directory.layout import dn_key
from core.directory.replication import DomainController
from core.errors import DirectoryError
from core.escape import parent_dn, rdn_value
from core.execute import highest_usn
from core.journal import JobRecord, StepState
from core.model import Operator
from core.text import plain

DUPLICATES = "duplicates after replication: "  # how an audit entry of duplicates begins
WAIT = 5.0  # seconds a finished job waits for its writes to reach the other DCs
UNIQUE_ATTRIBUTES = frozenset({"userprincipalname", "mail", "proxyaddresses", "msrtcsip-primaryuseraddress", "samaccountname"})
LABELS = {"upn": "UPN", "address": "email address", "sip": "SIP URI", "sam": "username", "name": "name"}


@dataclass(frozen=True)
class Replication:
    """Which configured DCs hold every write of a job: ``holding`` (the job's DC first)
    and ``missing`` (not yet, or not answering), each by URL."""

    holding: tuple[str, ...]
    missing: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"holding": len(self.holding), "dcs": len(self.holding) + len(self.missing), "missing": list(self.missing)}

    @property
    def sentence(self) -> str:
        total = len(self.holding) + len(self.missing)
        text = f"replicated to {len(self.holding)} of {total} domain controller{'s' if total != 1 else ''}"
        return text + (f" (not yet: {', '.join(self.missing)})" if self.missing else "")


@dataclass(frozen=True)
class Duplicate:
    """A value the job wrote that ``dc`` shows on more than one object (``dns``), or —
    ``kind`` "name" — conflict objects replication made of the user's name."""

    kind: str  # "upn" | "address" | "sip" | "sam" | "name"
    value: str
    dns: tuple[str, ...]
    dc: str  # the URL of the DC that shows it

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "value": self.value, "dns": list(self.dns), "dc": self.dc}

    @property
    def sentence(self) -> str:
        where = DomainController(self.dc).name
        if self.kind == "name":
            return (f"replication renamed an object named {plain(self.value)} after a name collision on {where}: "
                    + "; ".join(plain(dn) for dn in self.dns))
        return f"the {LABELS[self.kind]} {plain(self.value)} is held by {len(self.dns)} objects on {where}: " + "; ".join(plain(dn) for dn in self.dns)


@dataclass(frozen=True)
class Aftermath:
    """How a done job looks from the other DCs: where its writes are, and the duplicates."""

    replication: Replication
    duplicates: tuple[Duplicate, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` fields it adds to a job's result."""
        return {"replicated": self.replication.to_json(), "duplicates": [d.to_json() for d in self.duplicates]}


async def replication_of(directory: Directory, job: JobRecord, *, wait: float = WAIT, every: float = 0.5) -> Replication:
    """Where ``job``'s writes are now: the other configured DCs whose up-to-dateness
    vector for the job DC has reached the job's highest USN, asked again every ``every``
    seconds until all hold them or ``wait`` seconds have passed."""
    dc = DomainController.from_json(job.dc)
    urls = list(directory.config.directory.urls)
    if dc is None:
        return Replication((), tuple(urls))
    needed = highest_usn(job)
    others = [u for u in urls if u != dc.url]
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        holding: list[str] = []
        for url in others:
            with contextlib.suppress(DirectoryError):
                seen = await (await directory.pin(url)).received()
                if needed is not None and (seen or {}).get(dc.invocation_id, -1) >= needed:
                    holding.append(url)
        missing = tuple(u for u in others if u not in holding)
        if not missing or asyncio.get_running_loop().time() >= deadline:
            return Replication((dc.url, *holding), missing)
        await asyncio.sleep(every)


def written_values(job: JobRecord) -> dict[str, list[str]]:
    """The unique values the job's done directory steps gave its users, by attribute
    (lower case): the last value each step wrote."""
    values: dict[str, list[str]] = {}
    for step in job.steps:
        if step.action in (p.MODIFY, p.ADD_USER) and step.state == StepState.DONE and isinstance(step.spec.get("after"), dict):
            for attribute, value in step.spec["after"].items():
                name = str(attribute).casefold()
                if name in UNIQUE_ATTRIBUTES:
                    values[name] = [str(v) for v in (value if isinstance(value, list) else [value])]
    return values


async def duplicates_of(directory: Directory, job: JobRecord, dcs: Iterable[str]) -> list[Duplicate]:
    """The duplicates of ``job``'s written values and of its users' names that the DCs
    ``dcs`` (URLs: those holding the job's writes) show; a DC that does not answer is
    left out (it holds nothing to compare yet)."""
    values = written_values(job)
    addresses = [a.split(":", 1)[1] for a in values.get("proxyaddresses", []) if a.lower().startswith("smtp:")]
    addresses += [a for a in values.get("mail", []) if a.casefold() not in {x.casefold() for x in addresses}]
    wanted = {
        "upn": (values.get("userprincipalname") or [None])[0],
        "addresses": addresses,
        "sip": (values.get("msrtcsip-primaryuseraddress") or [None])[0],
        "sam": (values.get("samaccountname") or [None])[0],
    }
    names = [(rdn_value(u["dn_after"]), parent_dn(u["dn_after"])) for u in (job.meta or {}).get("users") or [] if isinstance(u, dict) and u.get("dn_after")]
    found: list[Duplicate] = []
    for url in dcs:
        try:
            d = await directory.pin(url)
            holders: dict[tuple[str, str], dict[tuple, str]] = {}
            for conflict in await d.conflicts(**wanted):
                holders.setdefault((conflict.kind, conflict.value), {})[dn_key(conflict.dn)] = conflict.dn
            found += [Duplicate(kind, value, tuple(dns.values()), url) for (kind, value), dns in holders.items() if len(dns) > 1]
            for cn, parent in names:
                renamed = await d.name_conflicts(cn, parent)
                if renamed:
                    found.append(Duplicate("name", cn, tuple(renamed), url))
        except DirectoryError:
            continue
    return found


async def aftermath(directory: Directory, job: JobRecord, audit: Audit, operator: Operator, *, wait: float = WAIT) -> Aftermath:
    """Where a done ``job``'s writes are (waiting up to ``wait`` seconds for the other
    DCs), and the duplicates the DCs holding them show; duplicates are audited (the job
    is done, its values need attention)."""
    replication = await replication_of(directory, job, wait=wait)
    duplicates = tuple(await duplicates_of(directory, job, replication.holding))
    if duplicates:
        audit.record(
            operator=operator.name, bound_as=operator.bound_as, action=job.kind, users=list(job.names),
            customers=list(job.customers), result="needs_attention", job=job.id,
            detail=DUPLICATES + "; ".join(d.sentence for d in duplicates),
        )
    return Aftermath(replication, duplicates)
