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
from typing import Any, Iterable, Mapping, Sequence

from core import plan as p
from core.audit import Audit
from core.directory import Directory
from core.directory.directory import unique_values
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


def rows_sentence(afters: Iterable[Aftermath]) -> str:
    """Where the writes of several done jobs (a batch's rows) are, in one clause: the
    sentence they share, else how many reached every DC and the DCs some have not."""
    afters = list(afters)
    shared = {a.replication.sentence for a in afters}
    if len(shared) == 1:
        return shared.pop()
    complete = sum(1 for a in afters if not a.replication.missing)
    missing = sorted({u for a in afters for u in a.replication.missing})
    return f"{complete} of {len(afters)} rows replicated to every domain controller (not yet: {', '.join(missing)})"


async def replication_of(directory: Directory, job: JobRecord, *, wait: float = WAIT, every: float = 0.5) -> Replication:
    """Where ``job``'s writes are now: the other configured DCs whose up-to-dateness
    vector for the job DC has reached the job's highest USN, asked again every ``every``
    seconds until all hold them or ``wait`` seconds have passed."""
    return (await replications_of(directory, [job], wait=wait, every=every))[job.id]


async def replications_of(
    directory: Directory, jobs: Sequence[JobRecord], *, wait: float = WAIT, every: float = 0.5,
) -> dict[str, Replication]:
    """:func:`replication_of` for several jobs (a batch's rows) at once: each other DC's
    up-to-dateness vector is read once a round for all of them. By job id."""
    urls = list(directory.config.directory.urls)
    pinned = {job.id: DomainController.from_json(job.dc) for job in jobs}
    needed = {job.id: highest_usn(job) for job in jobs}
    clock = asyncio.get_running_loop()
    deadline = clock.time() + wait
    while True:
        wanted = {u for dc in pinned.values() if dc is not None for u in urls if u != dc.url}
        seen: dict[str, dict[str, int]] = {}
        for url in urls:
            if url in wanted:
                with contextlib.suppress(DirectoryError):
                    seen[url] = (await (await directory.pin(url)).received()) or {}
        out: dict[str, Replication] = {}
        for job in jobs:
            dc, usn = pinned[job.id], needed[job.id]
            if dc is None:
                out[job.id] = Replication((), tuple(urls))
                continue
            others = [u for u in urls if u != dc.url]
            holding = [u for u in others if usn is not None and seen.get(u, {}).get(dc.invocation_id, -1) >= usn]
            out[job.id] = Replication((dc.url, *holding), tuple(u for u in others if u not in holding))
        if all(not r.missing for r in out.values()) or clock.time() >= deadline:
            return out
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


def _wanted(job: JobRecord) -> list[tuple[str, str]]:
    """The job's written values that must be unique, as ``(kind, value)``."""
    values = written_values(job)
    addresses = [a.split(":", 1)[1] for a in values.get("proxyaddresses", []) if a.lower().startswith("smtp:")]
    addresses += [a for a in values.get("mail", []) if a.casefold() not in {x.casefold() for x in addresses}]
    return unique_values((values.get("userprincipalname") or [None])[0], addresses,
                         (values.get("msrtcsip-primaryuseraddress") or [None])[0], (values.get("samaccountname") or [None])[0])


def _names(job: JobRecord) -> list[tuple[str, str]]:
    """The job's users' names where the job put them: ``(cn, parent DN)``."""
    return [(rdn_value(u["dn_after"]), parent_dn(u["dn_after"])) for u in (job.meta or {}).get("users") or []
            if isinstance(u, dict) and u.get("dn_after")]


async def duplicates_of(directory: Directory, job: JobRecord, dcs: Iterable[str]) -> list[Duplicate]:
    """The duplicates of ``job``'s written values and of its users' names that the DCs
    ``dcs`` (URLs: those holding the job's writes) show; a DC that does not answer is
    left out (it holds nothing to compare yet)."""
    return (await duplicates_among(directory, {job.id: (job, tuple(dcs))}))[job.id]


async def duplicates_among(
    directory: Directory, checks: Mapping[str, tuple[JobRecord, Sequence[str]]],
) -> dict[str, list[Duplicate]]:
    """:func:`duplicates_of` for several jobs (by id: the job and the DCs holding its
    writes), with one pass per DC over all their values and names: a search per
    :data:`~core.directory.directory.VALUES_PER_SEARCH` values, and per that many names
    of one parent OU — not a search per job."""
    found: dict[str, list[Duplicate]] = {job_id: [] for job_id in checks}
    for url in dict.fromkeys(u for _job, dcs in checks.values() for u in dcs):
        here = [(job_id, job) for job_id, (job, dcs) in checks.items() if url in dcs]
        wanted = {job_id: _wanted(job) for job_id, job in here}
        names = {job_id: _names(job) for job_id, job in here}
        try:
            d = await directory.pin(url)
            every = list({(kind, value.casefold()): (kind, value) for pairs in wanted.values() for kind, value in pairs}.values())
            holders: dict[tuple[str, str], dict[tuple, str]] = {}
            for conflict in await d.holders(every):
                holders.setdefault((conflict.kind, conflict.value.casefold()), {})[dn_key(conflict.dn)] = conflict.dn
            parents: dict[tuple, tuple[str, list[str]]] = {}
            for pairs in names.values():
                for cn, parent in pairs:
                    parents.setdefault(dn_key(parent), (parent, []))[1].append(cn)
            renamed: dict[tuple[tuple, str], list[str]] = {}
            for key, (parent, cns) in parents.items():
                for cn, dns in (await d.renamed_below(parent, cns)).items():
                    renamed[(key, cn.casefold())] = dns
        except DirectoryError:
            continue
        for job_id, _job in here:
            for kind, value in wanted[job_id]:
                dns = holders.get((kind, value.casefold()), {})
                if len(dns) > 1:
                    found[job_id].append(Duplicate(kind, value, tuple(dns.values()), url))
            for cn, parent in names[job_id]:
                dns = renamed.get((dn_key(parent), cn.casefold()))
                if dns:
                    found[job_id].append(Duplicate("name", cn, tuple(dns), url))
    return found


async def aftermath(directory: Directory, job: JobRecord, audit: Audit, operator: Operator, *, wait: float = WAIT) -> Aftermath:
    """Where a done ``job``'s writes are (waiting up to ``wait`` seconds for the other
    DCs), and the duplicates the DCs holding them show; duplicates are audited (the job
    is done, its values need attention)."""
    return (await aftermaths(directory, [job], audit, operator, wait=wait))[job.id]


async def aftermaths(directory: Directory, jobs: Sequence[JobRecord], audit: Audit, operator: Operator, *,
                     wait: float = WAIT) -> dict[str, Aftermath]:
    """:func:`aftermath` of several done jobs (a batch's rows) at once, by job id: one
    wait for all of them, one pass per DC over all their values (see
    :func:`replications_of`, :func:`duplicates_among`)."""
    replications = await replications_of(directory, jobs, wait=wait)
    duplicates = await duplicates_among(directory, {job.id: (job, replications[job.id].holding) for job in jobs})
    out: dict[str, Aftermath] = {}
    for job in jobs:
        found = tuple(duplicates[job.id])
        if found:
            audit.record(
                operator=operator.name, bound_as=operator.bound_as, action=job.kind, users=list(job.names),
                customers=list(job.customers), result="needs_attention", job=job.id,
                detail=DUPLICATES + "; ".join(d.sentence for d in found),
            )
        out[job.id] = Aftermath(replications[job.id], found)
    return out
