"""Reads pinned to one domain controller, for keeping a local index fresh.

A change check (the rootDSE's ``highestCommittedUSN``) and the ``uSNChanged`` delta
that follows it only mean something on the same domain controller: USNs are per DC.
:meth:`Directory.pinned <core.directory.Directory.pinned>` checks one pooled
connection out for the whole refresh, and :class:`ChangePoint` names the DC it
answered from (its NTDS Settings DN and invocation id), so a fail-over to another DC
is seen as a new DC — and the index is reloaded, never patched with a foreign delta.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, AsyncIterator

from core.directory import ops
from core.errors import DirectoryError

SHOW_DELETED = "1.2.840.113556.1.4.417"  # LDAP_SERVER_SHOW_DELETED_OID: tombstones are returned

if TYPE_CHECKING:
    from core.directory.directory import Directory
    from core.directory.pool import _Slot


@dataclass(frozen=True)
class ChangePoint:
    """Where one domain controller's copy of the directory stands."""

    server: str  # the DC's dsServiceName (its NTDS Settings object)
    invocation: str  # the DC's invocationId (changes when its database is restored)
    usn: int  # highestCommittedUSN

    def same_dc(self, other: ChangePoint | None) -> bool:
        return other is not None and (self.server, self.invocation) == (other.server, other.invocation)


class PinnedReads:
    """The reads of one refresh, all on one connection (hence one domain controller)."""

    def __init__(self, directory: Directory, slot: _Slot) -> None:
        self._directory = directory
        self._slot = slot
        self.layout = directory.layout

    @property
    def directory(self) -> Directory:
        """The directory these reads come from (a full reload reads through it)."""
        return self._directory

    async def _run(self, operation):
        return await self._directory.pool.run_on(self._slot, operation)

    async def change_point(self) -> ChangePoint:
        """The DC's identity and highest committed USN (two base reads, a few ms)."""
        root = await self._run(lambda c: ops.read(c, "", ["dsServiceName", "highestCommittedUSN"]))
        usn = root.first("highestCommittedUSN") if root else None
        server = root.first("dsServiceName") if root else None
        if not usn or not usn.isdigit() or not server:
            raise DirectoryError("The domain controller does not publish its highestCommittedUSN in its rootDSE.")
        settings = await self._run(lambda c: ops.read(c, server, ["invocationId"]))
        invocation = (settings.first("invocationId") if settings else None) or ""
        return ChangePoint(server, invocation, int(usn))

    def pages(self, base: str, search_filter: str, scope: str, attributes: list[str]) -> AsyncIterator[list[ops.Entry]]:
        return self._directory.pages_on(self._slot, base, search_filter, scope, attributes)

    def customer_pages(self, since_usn: int | None = None) -> AsyncIterator[list[ops.Entry]]:
        """Every customer OU (or those changed since ``since_usn``), a page at a time."""
        layout = self.layout
        wanted = layout.marked(layout.names.customer_marker) if since_usn is None else layout.changed_customers_filter(since_usn)
        return self.pages(layout.hosting_dn, wanted, "sub", layout.customer_attributes)

    async def service_groups(self, since_usn: int | None = None) -> list[str]:
        """The DNs of the configured service and plan groups below the hosting OU (one search)."""
        found: list[str] = []
        async for page in self.pages(self.layout.hosting_dn, self.layout.service_groups_filter(since_usn), "sub", ["1.1"]):
            found.extend(entry.dn for entry in page)
        return found

    async def deleted_since(self, since_usn: int) -> list[str]:
        """The objectGUIDs of objects deleted since ``since_usn`` (their tombstones, read
        with the show-deleted control from the domain's Deleted Objects container).

        Only an account with rights on that container sees them (an operator usually
        has none: the answer is then empty, and the reconcile finds the deletion)."""
        base = f"CN=Deleted Objects,{self.layout.base_dn}"
        wanted = f"(&(isDeleted=TRUE)(uSNChanged>={int(since_usn)}))"
        guids: list[str] = []
        cookie: bytes | None = None
        while True:
            page, cookie = await self._run(
                lambda c, k=cookie: ops.search_page(c, base, wanted, "one", ["objectGUID"], 1000, k, [(SHOW_DELETED, False, None)])
            )
            guids.extend(guid for entry in page if (guid := entry.first("objectGUID")))
            if not cookie:
                return guids

    async def customer_guids(self) -> dict[str, str]:
        """Every customer's objectGUID → DN (the reconcile: deletions and moves)."""
        layout = self.layout
        found: dict[str, str] = {}
        async for page in self.pages(layout.hosting_dn, layout.marked(layout.names.customer_marker), "sub", ["objectGUID"]):
            found.update((guid, entry.dn) for entry in page if (guid := entry.first("objectGUID")))
        return found

    async def services_below(self, customer_dn: str) -> list[str]:
        """The group DNs of one customer's services OU (one-level, indexed by parent)."""
        base = self.layout.services_dn(customer_dn)
        entries = await self._run(lambda c: ops.search(c, base, "(objectClass=group)", "one", ["1.1"]))
        return [entry.dn for entry in entries]
