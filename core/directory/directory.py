"""The async directory API the rest of the project uses (no ldap3 above this layer)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import dataclasses
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

import ldap3

from core.config import Config, DirectoryConfig
from core.directory import ops, replication
from core.directory.dialect import ActiveDirectory
from core.escape import child_dn, dn_key_or_none, filter_value, parent_dn, rdn, rdn_value
from core.directory.layout import FOLLOWING_LINKS, Layout, dn_key, is_below, same_dn
from core.directory.pinned import PinnedReads
from core.directory.pool import ConnectionPool, ConnectionStatus
from core.directory.replication import DomainController
from core.directory.user_stream import Job, UserBatch, stream_users
from core.errors import (
    AuthenticationFailed, CertificateError, DirectoryError, DirectoryUnavailable, NotFound, PasswordRefused, PermissionDenied, UsageError,
)
from core.model import Customer, Operator, Reseller, Rights, User
from core.password import PasswordPolicy
from core.text import plain

GROUP_GLOBAL_SECURITY = "-2147483646"
IN_CHAIN = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN

log = logging.getLogger("tenantry.directory")


@dataclass(frozen=True)
class Conflict:
    """A value that is already taken by another object."""

    kind: str  # "upn" | "address" | "sip" | "sam" | "cn"
    value: str
    dn: str


class Directory:
    """Async access to the hosting directory.

    ``pool`` runs blocking ldap3 calls in threads; ``dialect`` covers the few places
    where a directory differs from Active Directory (the embedded demo directory).
    """

    def __init__(
        self,
        config: Config,
        pool: ConnectionPool,
        dialect: Any = None,
        bound_as: str | None = None,
        server: Callable[[], str | None] = lambda: None,
        services: Any = None,
        account: str | None = None,
        operator: str | None = None,
        memory_instance: str | None = None,
        pinner: Callable[[str], ConnectionPool] | None = None,
        cataloger: Callable[[], ConnectionPool] | None = None,
        credentials: Callable[[], tuple[DirectoryConfig, str | None]] | None = None,
    ):
        self.config = config
        # pinner(url): a pool on that DC only. Without one (the demo) there is one DC.
        self._pinner = pinner
        # cataloger(): a pool on the Global Catalog (directory.gc_urls), opened when first needed.
        self._cataloger = cataloger if config.directory.gc_urls else None
        self._catalog: ConnectionPool | None = None
        self._pinned: dict[str, Directory] = {}
        self._pdc: list[str] | None = None  # the PDC emulator's URL among urls, once looked up
        # credentials(): the settings (the bound DC first) and password a child process
        # binds with; None for a directory that lives in this process (the demo).
        self._credentials = credentials
        self._pinning = asyncio.Lock()
        self.dc: DomainController | None = None  # on a pinned directory: its DC, as last read
        self.refuses_replication: str | None = None  # on a pinned directory: why its DC does not take replication requests
        self.services = services  # an in-process service side (the demo's), else None
        self._server = server
        self.layout = Layout(config)
        self.pool = pool
        self.dialect = dialect or ActiveDirectory()
        self.bound_as = bound_as or config.directory.bind_user
        # The account that bound, to look it up by (a Kerberos principal's sAMAccountName) …
        self.account = account or self.bound_as
        # … and the operator a shared service account acts for, once they proved who they are.
        self.proven_operator = operator
        # A directory that lives in this process's memory (the demo): an id of this one
        # instance, which its jobs carry; None for a real directory.
        self.memory_instance = memory_instance
        self.page_size = config.directory.page_size

    @property
    def server(self) -> str | None:
        """The URL of the domain controller currently bound (after fail-over)."""
        return self._server()

    # -- the connection ----------------------------------------------------------------
    @property
    def connection(self) -> ConnectionStatus:
        """``available`` or ``lost``: whether the domain controller answered the last call."""
        return self.pool.status

    async def probe(self) -> bool:
        """One cheap read (the domain root's object class): did the domain controller answer?"""
        try:
            await self.pool.run(lambda c: ops.read(c, self.config.directory.base_dn, ["objectClass"]))
        except DirectoryUnavailable:
            return False
        return True

    async def reconnect(self, *, first: float = 0.5, longest: float = 5.0) -> None:
        """While the connection is lost, probe with back-off (``first`` seconds, doubling,
        at most ``longest`` apart); returns once the domain controller answers again."""
        delay = first
        while self.connection.lost:
            await asyncio.sleep(delay)
            with contextlib.suppress(DirectoryError):  # a refusal is an answer: the status says so
                await self.probe()
            delay = min(delay * 2, longest)

    async def close(self) -> None:
        for pinned in self._pinned.values():
            if pinned.pool is not self.pool:
                await pinned.pool.close()
        self._pinned.clear()
        if self._catalog is not None:
            await self._catalog.close()
            self._catalog = None
        await self.pool.close()

    # -- one DC for a job -------------------------------------------------------------
    async def pin(self, url: str | None = None) -> Directory:
        """This directory on one domain controller only, never failing over: a job's reads
        and writes all go there. ``url``: that DC (a job's journaled one); else
        ``directory.write_url`` while it answers; without one, the PDC emulator while it
        answers (when one of ``urls`` reaches it); else the first of ``urls`` that does.
        Its :attr:`dc` is read again on each call. :class:`DirectoryUnavailable` when no
        candidate answers."""
        d = self.config.directory
        if url:
            candidates = [url]
        else:
            preferred = [d.write_url] if d.write_url else await self._pdc_urls()
            candidates = list(dict.fromkeys([*preferred, *d.urls]))
        failures: list[str] = []
        for candidate in candidates:
            try:
                return await self._pin_one(candidate)
            except DirectoryUnavailable as error:
                failures.append(str(error).rstrip("."))
        raise DirectoryUnavailable(f"No domain controller can take the job ({'; '.join(failures)}).")

    async def _pdc_urls(self) -> list[str]:
        """The URL of ``urls`` that reaches the PDC emulator (by its ``dNSHostName``, or an
        address that name resolves to), as a one-item list; empty when none does or it
        cannot be read. Looked up once per directory: the role seldom moves, and a job on
        another DC is still on one DC."""
        if self._pdc is None:
            try:
                host = await self.pool.run(lambda c: replication.pdc_emulator(c, self.config.directory.base_dn))
            except DirectoryError:
                return []  # asked again for the next job
            self._pdc = await asyncio.to_thread(_urls_reaching, host, self.config.directory.urls) if host else []
        return self._pdc

    async def _pin_one(self, url: str) -> Directory:
        async with self._pinning:
            pinned = self._pinned.get(url)
            if pinned is None:
                if self._pinner is None:
                    pool = self.pool
                else:
                    pool = self._pinner(url)
                    await pool.start()
                pinned = Directory(self.config, pool, self.dialect, self.bound_as, server=lambda: url, services=self.services)
                self._pinned[url] = pinned
        pinned.dc = await pinned.pool.run(lambda c: replication.identity(c, url))
        return pinned

    async def committed_usn(self) -> int | None:
        """The DC's ``highestCommittedUSN`` now (read after a write: the write is at or below it)."""
        return await self.pool.run(replication.highest_usn)

    async def received(self) -> dict[str, int] | None:
        """How far this DC has received each DC's writes to the domain (invocation id → USN);
        ``None`` when it cannot tell (see :func:`core.directory.replication.received`)."""
        return await self.pool.run(lambda c: replication.received(c, self.config.directory.base_dn))

    async def ask_to_replicate(self, source: DomainController, dns: Iterable[str], guids: Iterable[str]) -> str | None:
        """Ask this (pinned) DC to pull the objects at ``dns`` and of objectGUID ``guids``
        from ``source`` now (:func:`core.directory.replication.ask_to_replicate`). ``None``
        when it took the requests; else why not, in one sentence. A DC that refuses the
        request itself (Samba answers unwillingToPerform; a bind without the
        DS-Replication-Synchronize right, insufficientAccessRights) is not an error: it
        is logged once, remembered, and not asked again by this directory."""
        if self.refuses_replication is not None:
            return self.refuses_replication
        name = self.dc.name if self.dc else "the domain controller"
        try:
            asked = await self.pool.run(lambda c: replication.ask_to_replicate(c, source.service, list(dns), list(guids)))
        except DirectoryUnavailable as error:
            return str(error)
        except (DirectoryError, PermissionDenied) as error:
            said = getattr(error, "server_message", "") or str(error)
            self.refuses_replication = f"{name} does not take requests to replicate ({plain(said).rstrip('.')})"
            log.info("%s; Tenantry waits for replication instead.", self.refuses_replication)
            return self.refuses_replication
        return None if asked else f"{name} does not know {source.name}'s NTDS Settings object, or any object of the job"

    async def __aenter__(self) -> Directory:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- reading: resellers and customers --------------------------------------
    async def resellers(self) -> list[Reseller]:
        entries = await self.pool.run(
            lambda c: ops.search(c, self.layout.hosting_dn, self.layout.marked(self.config.layout.reseller_marker), "sub", ["ou"])
        )
        return sorted((self.layout.reseller_from(e) for e in entries), key=lambda r: r.name.casefold())

    async def customers(self, search: str | None = None, *, limit: int | None = None, with_services: bool = True) -> list[Customer]:
        """Customers whose name or a domain contains ``search``, sorted by name.

        With ``limit``, the server is asked for no more than that and the services of
        only those customers are read (one small search each, in parallel).
        """
        attributes = self.layout.customer_attributes
        entries = await self._collect(self.layout.hosting_dn, self.layout.customer_filter(search), "sub", attributes, limit)
        if with_services:
            found = list(await asyncio.gather(*(self._customer_with_groups(e) for e in entries)))
        else:
            found = [self.layout.customer_from(e) for e in entries]
        return sorted(found, key=lambda c: c.name.casefold())

    async def _suggest(self, text: str, most: int = 5) -> str:
        """``; did you mean: Fabrikam (fabrikam.example), …`` — customers whose name or a
        domain contains ``text`` — or nothing."""
        try:
            near = await self.customers(text, limit=most + 1, with_services=False)
        except Exception:  # a suggestion must never hide the error it completes
            return ""
        if not near:
            return ""
        names = [plain(f"{c.name} ({c.default_domain})" if c.default_domain else c.name) for c in near[:most]]
        more = ", …" if len(near) > most else ""
        return "; did you mean: " + ", ".join(names) + more

    async def _customer_with_groups(self, entry: ops.Entry) -> Customer:
        # One level below the services and roles OUs, where classify_groups looks: a
        # subtree search below the customer costs the DC a pass over every group of the
        # domain (its objectClass index), ~1,000× the customer's own ten groups.
        found = await asyncio.gather(*(
            self.pool.run(lambda c, b=base: ops.search(c, b, "(objectClass=group)", "one", ["cn"]))
            for base in (self.layout.services_dn(entry.dn), self.layout.roles_dn(entry.dn))
        ))
        return self.layout.customer_from(entry, [g.dn for groups in found for g in groups])

    async def customer(self, name_or_domain: str, *, with_services: bool = True) -> Customer:
        """The customer named so, or owning that domain; :class:`NotFound` otherwise.

        Without ``with_services`` its services, plans and roles are left empty (two
        searches fewer, for callers that need only where it is, e.g. rights checks)."""
        attributes = self.layout.customer_attributes
        # Two searches, not one (ou=…)|(uPNSuffixes=…): ``ou`` is indexed (in AD and
        # Samba) and uPNSuffixes is not, so the OR made the DC read every OU of the
        # domain. The domain search still does; only a value that can be a domain
        # (a dot, no space) makes it.
        entries = await self.pool.run(
            lambda c: ops.search(c, self.layout.hosting_dn, self.layout.customer_name_filter(name_or_domain), "sub", attributes)
        )
        owners: list[ops.Entry] = []
        tenant = self.config.tenants.owner_of_domain(name_or_domain)
        if tenant is not None:
            # A domain the SP assigned names its customer, whatever other OUs claim it.
            base, search, scope = self.layout.customer_tenant_filter(tenant)
            try:
                owners = await self.pool.run(lambda c: ops.search(c, base, search, scope, attributes))
            except NotFound:  # its OU is gone (a tenant keyed by a DN that no longer exists)
                pass
        elif "." in name_or_domain and not any(c.isspace() for c in name_or_domain):
            owners = await self.pool.run(
                lambda c: ops.search(c, self.layout.hosting_dn, self.layout.customer_domain_filter(name_or_domain), "sub", attributes)
            )
        entries += [e for e in owners if not any(same_dn(e.dn, x.dn) for x in entries)]
        if not entries:
            raise NotFound(f"No customer is named {name_or_domain!r} or owns that domain{await self._suggest(name_or_domain)}.")
        if len(entries) > 1:
            raise UsageError(f"{name_or_domain!r} matches {len(entries)} customers; use the customer's domain instead.")
        if not with_services:
            return self.layout.customer_from(entries[0])
        return await self._customer_with_groups(entries[0])

    async def customers_starting(self, text: str, limit: int) -> list[Customer]:
        """At most ``limit`` customers whose name starts with ``text`` (no services read)."""
        entries = await self._collect(self.layout.hosting_dn, self.layout.customer_prefix_filter(text), "sub", self.layout.customer_attributes, limit)
        return sorted((self.layout.customer_from(e) for e in entries), key=lambda c: c.name.casefold())

    async def customer_at(self, dn: str) -> Customer:
        names = self.config.layout
        attributes = [*self.layout.customer_attributes, names.marker_attribute]
        entry = await self.pool.run(lambda c: ops.read(c, dn, attributes))
        if entry is None:
            raise NotFound(f"The customer {dn} no longer exists.")
        names = self.config.layout
        marked = any(v.casefold() == names.customer_marker.casefold() for v in entry.get(names.marker_attribute))
        if not marked or not is_below(dn, self.layout.hosting_dn):
            raise UsageError(f"{dn} is not a customer ({names.marker_attribute}={names.customer_marker} below the hosting OU).")
        return await self._customer_with_groups(entry)

    async def dn_of_guid(self, guid: str) -> str | None:
        """The DN of the object below the hosting OU whose objectGUID is ``guid`` (``None``
        if there is none, or ``guid`` is not a GUID)."""
        try:
            search_filter = self.layout.guid_filter(guid)
        except ValueError:
            return None
        entries = await self.pool.run(lambda c: ops.search(c, self.layout.hosting_dn, search_filter, "sub", ["objectGUID"]))
        return entries[0].dn if len(entries) == 1 else None

    async def inside_a_customer(self, dn: str) -> bool:
        """Whether ``dn`` lies inside some customer's OU (one base read per OU between it
        and the hosting OU; nothing to read for an entry outside the hosting OU)."""
        names = self.config.layout
        ancestors: list[str] = []
        parent = parent_dn(dn)
        while is_below(parent, self.layout.hosting_dn):
            ancestors.append(parent)
            parent = parent_dn(parent)
        entries = await asyncio.gather(*(self.pool.run(lambda c, a=a: ops.read(c, a, [names.marker_attribute])) for a in ancestors))
        marker = names.customer_marker.casefold()
        return any(e is not None and any(v.casefold() == marker for v in e.get(names.marker_attribute)) for e in entries)

    # -- reading: users ------------------------------------------------------
    async def user_pages(self, customer: Customer, search: str | None = None) -> AsyncIterator[list[User]]:
        """The customer's users matching ``search``, one server page at a time."""
        base = self.layout.users_dn(customer.dn)
        async for page in self._pages(base, self.layout.user_filter(search), "one", self.layout.user_list_attributes):
            yield [self.layout.user_from(e) for e in page]

    async def user_rows(self, customer: Customer, first_page: int = 200) -> AsyncIterator[UserBatch]:
        """Every user of ``customer`` in compact rows (what the users table shows and
        searches: no attribute list, no group DNs), a batch at a time — the first one
        small, so it shows at once. A real directory is read in a child process
        (:mod:`core.directory.user_stream`: sorted VLV windows where the DC offers them);
        the demo's, which lives in this process, page by page in a worker thread."""
        base = self.layout.users_dn(customer.dn)
        if self._credentials is not None:
            directory, password = self._credentials()
            job = Job(dataclasses.replace(self.config, directory=directory), password, base, first_page, self.page_size)
            try:
                async with contextlib.aclosing(stream_users(job)) as batches:
                    async for batch in batches:
                        yield batch
            except DirectoryUnavailable:
                await self.probe()  # the connection's status says so (and the screen waits for it)
                raise
            return
        search_filter = self.layout.user_filter(None)
        attributes = [*self.layout.user_list_attributes, "objectGUID"]

        def page(conn: Any, size: int, cookie: bytes | None) -> tuple[list[User], bytes | None]:
            entries, cookie = ops.search_page(conn, base, search_filter, "one", attributes, size, cookie)
            return [self.layout.user_row(e) for e in entries], cookie

        async with self.pool.slot() as slot:
            point = await PinnedReads(self, slot).change_point()
            cookie: bytes | None = None
            size = min(first_page, self.page_size)
            while True:
                rows, cookie = await self.pool.run_on(slot, lambda c, s=size, k=cookie: page(c, s, k))
                yield UserBatch(rows, point=point)
                point = None
                if not cookie:
                    return
                size = self.page_size

    async def users(self, customer: Customer, search: str | None = None, *, limit: int | None = None) -> list[User]:
        """The customer's users matching ``search`` (at most ``limit``), sorted by name."""
        base = self.layout.users_dn(customer.dn)
        entries = await self._collect(base, self.layout.user_filter(search), "one", self.layout.user_list_attributes, limit)
        return sorted((self.layout.user_from(e) for e in entries), key=lambda u: (u.display_name or u.cn).casefold())

    async def user(self, identity: str) -> User:
        """One user with every attribute the core needs, by UPN, sAMAccountName, email
        address (mail or an SMTP proxy address, when no UPN is that) or DN."""
        attributes = self.layout.user_detail_attributes
        if "=" in identity and "," in identity:
            entry = await self.pool.run(lambda c: ops.read(c, identity, attributes))
            entries = [entry] if entry else []
        else:
            entries = await self.pool.run(
                lambda c: ops.search(c, self.layout.hosting_dn, self.layout.user_identity_filter(identity), "sub", attributes)
            )
        if not entries and "@" in identity and "=" not in identity:  # an email address, not a UPN
            entries = await self.pool.run(
                lambda c: ops.search(c, self.layout.hosting_dn, self.layout.user_address_filter(identity), "sub", attributes)
            )
            if len(entries) > 1:
                raise UsageError(f"{identity!r} is an address of {len(entries)} users; name the user by UPN or username.")
        if not entries:
            raise NotFound(f"No user {identity!r} exists below the hosting OU.")
        refusal = self.layout.not_a_customer_user(entries[0])
        if refusal:
            raise UsageError(refusal)
        return self.layout.user_from(entries[0], await self._linked_guids(entries[0]))

    async def _linked_guids(self, entry: ops.Entry) -> dict[tuple, str]:
        """The objectGUID of each object ``entry``'s following links (``manager``) point
        to, by DN key — one base read each — so a user's version sees its manager, not
        the manager's name. A link whose object cannot be read is left out (read by name)."""
        found: dict[tuple, str] = {}
        for name in FOLLOWING_LINKS:
            for dn in entry.get(name):
                key = dn_key_or_none(dn)
                if key is None:
                    continue
                try:
                    target = await self.pool.run(lambda c, dn=dn: ops.read(c, dn, ["objectGUID"]))
                except DirectoryUnavailable:
                    raise
                except DirectoryError:  # a value that is no DN the DC takes: read by name
                    continue
                guid = target.first("objectGUID") if target else None
                if guid:
                    found[key] = guid
        return found

    async def _pages(
        self, base: str, search_filter: str, scope: str, attributes: list[str], page_size: int | None = None
    ) -> AsyncIterator[list[ops.Entry]]:
        # A paged search's cookie belongs to the connection: keep one for all pages.
        # Callers that stop early close the generator (contextlib.aclosing) to free it.
        async with self.pool.slot() as slot:
            async for page in self.pages_on(slot, base, search_filter, scope, attributes, page_size):
                yield page

    async def pages_on(
        self, slot: Any, base: str, search_filter: str, scope: str, attributes: list[str], page_size: int | None = None
    ) -> AsyncIterator[list[ops.Entry]]:
        """A paged search on one checked-out connection (``pool.slot()``), a page at a time."""
        size = page_size or self.page_size
        cookie: bytes | None = None
        while True:
            page, cookie = await self.pool.run_on(
                slot,
                lambda c, k=cookie: ops.search_page(c, base, search_filter, scope, attributes, size, k),
            )
            yield page
            if not cookie:
                return

    @contextlib.asynccontextmanager
    async def pinned(self) -> AsyncIterator[PinnedReads]:
        """Reads that all go to one domain controller (a refresh of a local index)."""
        async with self.pool.slot() as slot:
            yield PinnedReads(self, slot)

    async def _collect(self, base: str, search_filter: str, scope: str, attributes: list[str], limit: int | None) -> list[ops.Entry]:
        entries: list[ops.Entry] = []
        page_size = min(self.page_size, limit) if limit else None
        async with contextlib.aclosing(self._pages(base, search_filter, scope, attributes, page_size)) as pages:
            async for page in pages:
                entries.extend(page)
                if limit is not None and len(entries) >= limit:
                    return entries[:limit]
        return entries

    # -- the operator -----------------------------------------------------------
    async def operator(self, identity: str | None = None) -> Operator:
        """The operator with rights from nested groups: the bound account, or the operator a
        service account acts for once they proved who they are (see :func:`connect`) —
        never merely the one the configuration names."""
        who = identity or self.proven_operator or self.account
        if "=" in who and "," in who:
            entry = await self.pool.run(lambda c: ops.read(c, who, ["displayName", "cn"]))
        else:
            found = await self.pool.run(
                lambda c: ops.search(c, self.config.directory.base_dn, self.layout.user_identity_filter(who), "sub", ["displayName", "cn"])
            )
            entry = found[0] if found else None
        if entry is None:
            raise NotFound(f"The operator account {who!r} does not exist in the directory.")
        groups = await self.nested_groups(entry.dn)
        name = entry.first("displayName") or entry.first("cn") or who
        return Operator(name=name, dn=entry.dn, bound_as=self.bound_as, rights=self._rights(groups))

    async def nested_groups(self, dn: str) -> list[str]:
        """The DNs of every security group ``dn`` (a user or a group) is in, nested included."""
        return await self.pool.run(lambda c: self.dialect.nested_groups(c, dn, self.config.directory.base_dn))

    async def groups_holding(self, dn: str, base: str) -> list[str]:
        """The groups directly below ``base`` that hold ``dn`` as a member, through nested
        groups too (AD's in-chain matching rule; ``tokenGroups`` is a user's, not a group's)."""
        search_filter = f"(&(objectClass=group)(member:{IN_CHAIN}:={filter_value(dn)}))"
        return [e.dn for e in await self.pool.run(lambda c: ops.search(c, base, search_filter, "one", ["cn"]))]

    def _rights(self, groups: Iterable[str]) -> Rights:
        names = self.config.layout
        sp_admin = readonly = False
        resellers: set[str] = set()
        customers: set[str] = set()
        roles: set[tuple[str, str]] = set()
        for group in groups:
            if same_dn(group, self.layout.sp_admins_dn):
                sp_admin = True
            elif same_dn(group, self.layout.readonly_dn):
                readonly = True
            elif dn_key(group)[0] == dn_key(names.reseller_admins_group)[0]:
                resellers.add(parent_dn(group))
            elif (customer := self.layout.customer_of_role(group)) is not None:
                role = rdn_value(group)
                roles.add((customer, role))
                if role.casefold() == names.user_admin_role.casefold():
                    customers.add(customer)
        return Rights(sp_admin, frozenset(resellers), frozenset(customers), readonly, frozenset(roles))

    # -- the domain ------------------------------------------------------------------
    async def password_policy(self) -> PasswordPolicy:
        """The domain's password policy, from the domain root (``minPwdLength``, the
        complexity bit of ``pwdProperties``, ``pwdHistoryLength``)."""
        base = self.config.directory.base_dn
        entry = await self.pool.run(lambda c: ops.read(c, base, ["minPwdLength", "pwdProperties", "pwdHistoryLength"]))
        if entry is None:
            raise NotFound(f"The domain root {base} (directory.base_dn) does not exist.")

        def number(name: str, default: int) -> int:
            value = entry.first(name)
            return int(value) if value and value.lstrip("-").isdigit() else default

        return PasswordPolicy(
            min_length=max(0, number("minPwdLength", 0)),
            complex=bool(number("pwdProperties", 0) & 1),  # DOMAIN_PASSWORD_COMPLEX
            history_length=max(0, number("pwdHistoryLength", 0)),
        )

    # -- uniqueness ---------------------------------------------------------------
    async def conflicts(
        self,
        *,
        upn: str | None = None,
        addresses: Sequence[str] = (),
        sip: str | None = None,
        sam: str | None = None,
        cn: tuple[str, str] | None = None,
        exclude_dn: str | None = None,
    ) -> list[Conflict]:
        """Objects other than ``exclude_dn`` already holding any of these values: on this
        DC and, where ``directory.gc_urls`` names one, in the Global Catalog (the forest)."""
        found = [c for c in await self.holders(unique_values(upn, addresses, sip, sam), catalog=True) if not same_dn(c.dn, exclude_dn)]
        if cn:
            name, parent = cn
            target = child_dn("CN", name, parent)
            entry = await self.pool.run(lambda c: ops.read(c, target, ["cn"]))
            if entry is not None and not same_dn(entry.dn, exclude_dn):
                found.append(Conflict("cn", name, entry.dn))
        return found

    async def holders(self, wanted: Sequence[tuple[str, str]], *, catalog: bool = False) -> list[Conflict]:
        """Every object holding one of ``wanted`` (``(kind, value)``, kinds as
        :func:`unique_values` gives them), one :class:`Conflict` per object and value: on
        this DC (and in the Global Catalog with ``catalog``), :data:`VALUES_PER_SEARCH`
        values a search — a batch's values cost a search per that many, not one per row."""
        found: list[Conflict] = []
        for start in range(0, len(wanted), VALUES_PER_SEARCH):
            chunk = wanted[start:start + VALUES_PER_SEARCH]
            search_filter = _holders_filter(chunk)
            entries = await self.pool.run(lambda c, f=search_filter: ops.search(c, self.config.directory.base_dn, f, "sub", HOLDER_ATTRIBUTES))
            if catalog:
                entries += await self._in_catalog(search_filter)
            seen: set[tuple] = set()
            for entry in entries:
                if dn_key(entry.dn) not in seen:
                    seen.add(dn_key(entry.dn))
                    found.extend(_classify_conflict(entry, chunk))
        return found

    async def _in_catalog(self, search_filter: str) -> list[ops.Entry]:
        """The objects of the whole forest matching ``search_filter``, from the Global
        Catalog (searched from the root: every domain); none without ``gc_urls``.
        :class:`DirectoryUnavailable` when no Global Catalog answers."""
        if self._cataloger is None:
            return []
        try:
            async with self._pinning:
                if self._catalog is None:
                    pool = self._cataloger()
                    await pool.start()
                    self._catalog = pool
            return await self._catalog.run(lambda c: ops.search(c, "", search_filter, "sub", HOLDER_ATTRIBUTES))
        except DirectoryUnavailable as error:
            raise DirectoryUnavailable(
                f"No Global Catalog of directory.gc_urls answers ({str(error).rstrip('.')}), so the uniqueness of the "
                "UPN, addresses, SIP URI and username across the forest cannot be checked; nothing was written."
            ) from None
        except (AuthenticationFailed, CertificateError) as error:  # a bind refused (a Kerberos ticket not taken, say)
            raise type(error)(
                f"The Global Catalog of directory.gc_urls refused the bind ({str(error).rstrip('.')}), so the uniqueness of "
                "the UPN, addresses, SIP URI and username across the forest cannot be checked; nothing was written."
            ) from None

    async def name_conflicts(self, cn: str, parent: str) -> list[str]:
        """The DNs of the objects below ``parent`` that replication renamed after a name
        collision with ``cn`` (``CN=<cn>\\0ACNF:<objectGUID>``: two objects were given
        the same name on two DCs before either had replicated)."""
        return (await self.renamed_below(parent, [cn])).get(cn, [])

    async def renamed_below(self, parent: str, names: Sequence[str]) -> dict[str, list[str]]:
        """:meth:`name_conflicts` of several names below one ``parent``: name → the DNs
        of its conflict objects (names without any left out), :data:`VALUES_PER_SEARCH`
        names a one-level search."""
        found: dict[str, list[str]] = {}
        by_fold = {name.casefold(): name for name in names}
        folded = list(by_fold)
        for start in range(0, len(folded), VALUES_PER_SEARCH):
            clauses = "".join(f"(cn={filter_value(by_fold[n])}\\0aCNF:*)" for n in folded[start:start + VALUES_PER_SEARCH])
            try:
                entries = await self.pool.run(lambda c, f=f"(|{clauses})": ops.search(c, parent, f, "one", ["cn"]))
            except NotFound:
                return found
            for entry in entries:
                name = by_fold.get((entry.first("cn") or "").split("\nCNF:", 1)[0].casefold())
                if name is not None:
                    found.setdefault(name, []).append(entry.dn)
        return found

    # -- writes ------------------------------------------------------------------
    async def add_user(self, dn: str, attributes: Mapping[str, Any]) -> None:
        values = {"objectClass": ["top", "person", "organizationalPerson", "user"], **attributes}
        await self.pool.run(lambda c: self.dialect.add(c, dn, values), retry=False)

    async def set_password(self, dn: str, password: str) -> None:
        """Set (reset) an account's password over TLS; :class:`PasswordRefused` when the
        domain controller's policy refuses it. The password is in no message."""
        encoded = f'"{password}"'.encode("utf-16-le")
        try:
            await self.pool.run(lambda c: self.dialect.set_password(c, dn, encoded), retry=False)
        except DirectoryError as error:
            code, detail = getattr(error, "ldap_code", None), getattr(error, "server_message", "")
            # Samba answers constraintViolation (19); Windows unwillingToPerform (53) with 0000052D.
            if not (code == 19 or (code == 53 and "0000052d" in detail.lower())):
                raise
            raise PasswordRefused(
                f"The domain controller refused the password of {dn}: it breaks the domain's password policy"
                + (f" ({detail})" if detail else "") + "."
            ) from None

    async def modify(self, dn: str, changes: Mapping[str, tuple[Sequence[str], Sequence[str]]]) -> None:
        """Compare-and-swap: for each attribute, ``(expected old values, new values)``.

        The old values are deleted and the new ones added in one operation, so the
        write fails with :class:`ChangedUnderneath` if a value changed in between.
        """
        request: dict[str, list[tuple[Any, list[Any]]]] = {}
        for attribute, (old, new) in changes.items():
            old_set = {v.casefold(): v for v in old}
            new_set = {v.casefold(): v for v in new}
            removed = [v for k, v in old_set.items() if k not in new_set or old_set[k] != new_set[k]]
            added = [v for k, v in new_set.items() if k not in old_set or old_set[k] != new_set[k]]
            steps: list[tuple[Any, list[Any]]] = []
            if removed:
                steps.append((ldap3.MODIFY_DELETE, removed))
            if added:
                steps.append((ldap3.MODIFY_ADD, added))
            if steps:
                request[attribute] = steps
        if request:
            await self.pool.run(lambda c: ops.modify(c, dn, request, compare_and_swap=True), retry=False)

    async def move(self, dn: str, new_parent: str, new_cn: str | None = None) -> str:
        """Move (and optionally rename) an object; returns its new DN."""
        cn = new_cn or rdn_value(dn)
        return await self.pool.run(lambda c: self.dialect.move(c, dn, rdn("CN", cn), new_parent), retry=False)

    async def add_member(self, group_dn: str, member_dn: str) -> bool:
        """Add ``member_dn`` to the group; ``False`` if it was a member already."""
        return await self.pool.run(lambda c: self.dialect.change_member(c, group_dn, member_dn, True), retry=False)

    async def remove_member(self, group_dn: str, member_dn: str) -> bool:
        """Remove ``member_dn`` from the group; ``False`` if it was not a member."""
        return await self.pool.run(lambda c: self.dialect.change_member(c, group_dn, member_dn, False), retry=False)

    async def create_group(self, dn: str, sam: str, description: str | None = None) -> None:
        values: dict[str, Any] = {"objectClass": ["top", "group"], "sAMAccountName": sam, "groupType": GROUP_GLOBAL_SECURITY}
        if description:
            values["description"] = description
        await self.pool.run(lambda c: self.dialect.add(c, dn, values), retry=False)

    async def delete(self, dn: str) -> None:
        await self.pool.run(lambda c: ops.delete(c, dn), retry=False)

    async def values(self, dn: str, attributes: list[str]) -> dict[str, list[str]]:
        """The current values of ``attributes`` of ``dn`` (an empty list when unset)."""
        entry = await self.pool.run(lambda c: ops.read(c, dn, attributes))
        if entry is None:
            raise NotFound(f"{dn} does not exist.")
        return {a: entry.get(a) for a in attributes}

    async def exists(self, dn: str) -> bool:
        return await self.pool.run(lambda c: ops.read(c, dn, ["objectClass"])) is not None

    async def is_member(self, group_dn: str, member_dn: str) -> bool:
        """Whether ``member_dn`` is a direct member of the group (one base-scope search)."""
        search_filter = f"(member={filter_value(member_dn)})"
        return bool(await self.pool.run(lambda c: ops.search(c, group_dn, search_filter, "base", ["cn"])))


def _urls_reaching(host: str, urls: Sequence[str]) -> list[str]:
    """The first of ``urls`` whose host is ``host`` (a DC's DNS name), or resolves to one of
    its addresses (URLs given by address); as a list of at most one. Blocking (DNS)."""
    def addresses(name: str) -> set[str]:
        try:
            return {info[4][0] for info in socket.getaddrinfo(name, None)}
        except (OSError, UnicodeError):
            return set()

    wanted = host.rstrip(".").casefold()
    hosts = [(url, (urlsplit(url).hostname or "").casefold()) for url in urls]
    by_name = [url for url, name in hosts if name == wanted]
    if by_name:
        return by_name[:1]
    known = addresses(wanted)
    return [url for url, name in hosts if known & addresses(name)][:1]


VALUES_PER_SEARCH = 100  # unique values (or names) OR-ed into one search filter
HOLDER_ATTRIBUTES = ["userPrincipalName", "proxyAddresses", "mail", "msRTCSIP-PrimaryUserAddress", "sAMAccountName"]


def unique_values(upn: str | None, addresses: Sequence[str] = (), sip: str | None = None, sam: str | None = None) -> list[tuple[str, str]]:
    """The values that must be unique, as ``(kind, value)``: kinds "upn", "address",
    "sip", "sam" (empty values left out)."""
    wanted = [("upn", upn)] + [("address", a) for a in addresses] + [("sip", sip), ("sam", sam)]
    return [(kind, value) for kind, value in wanted if value]


# How each kind of unique value is searched for ({v}: the value, filter-escaped), and read back.
HOLDER_CLAUSES = {
    "upn": "(userPrincipalName={v})",
    "address": "(proxyAddresses=smtp:{v})(mail={v})",
    "sip": "(msRTCSIP-PrimaryUserAddress={v})",
    "sam": "(sAMAccountName={v})",
}


def _holders_filter(wanted: Sequence[tuple[str, str]]) -> str | None:
    """The filter matching every object holding one of ``wanted`` (``None``: no value)."""
    clauses = "".join(HOLDER_CLAUSES[kind].format(v=filter_value(value)) for kind, value in wanted)
    return f"(|{clauses})" if clauses else None


def _classify_conflict(entry: ops.Entry, wanted: Sequence[tuple[str, str]]) -> list[Conflict]:
    held = {
        "upn": entry.get("userPrincipalName"),
        "address": [v.split(":", 1)[1] for v in entry.get("proxyAddresses") if v.lower().startswith("smtp:")] + entry.get("mail"),
        "sip": entry.get("msRTCSIP-PrimaryUserAddress"),
        "sam": entry.get("sAMAccountName"),
    }
    folded = {kind: {v.casefold() for v in values} for kind, values in held.items()}
    return [Conflict(kind, value, entry.dn) for kind, value in wanted if value.casefold() in folded[kind]]


__all__ = ["Conflict", "Directory", "DirectoryError"]
