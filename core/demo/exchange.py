"""The Exchange cmdlets the Tenantry adapter uses, executed as Exchange (2010 SP2 … 2019)
executes them: a session (:class:`ExchangeRunspace`) of the PowerShell remoting server
(:mod:`core.demo.powershell`) that reads and writes the directory over ldap3 — the Samba
test DC in the tests, the in-memory demo directory for ``--demo``.

The organisation (:class:`ExchangeOrganization`) lives where Exchange keeps it, in the
configuration partition: ``CN=<org>,CN=Microsoft Exchange,CN=Services,CN=Configuration,…``
with its address lists, global address lists, offline address books, address book policies
and mailbox databases. An address list here selects the recipients whose
``CustomAttribute1`` (``extensionAttribute1``) is one value, the usual filter of a hosting
tenant's lists (``CustomAttribute1 -eq 'C0012'``).

Cmdlets and what they stamp (parameter names as in the Exchange reference; an unknown
parameter is refused with PowerShell's own message):

``Get-Mailbox -Identity``
    DN, GUID, UPN, alias, email address, sAMAccountName or name; a user that is not a
    mailbox (no ``homeMDB``/``msExchRecipientTypeDetails``) is not found.
``Enable-Mailbox -Identity [-Database] [-Alias] [-PrimarySmtpAddress] [-AddressBookPolicy]``
    makes a user a mailbox: ``homeMDB``, ``msExchRecipientTypeDetails`` = 1 (UserMailbox),
    ``mailNickname``, ``legacyExchangeDN``, ``mail`` and ``proxyAddresses`` (the primary
    address given, else the user's ``mail``, else alias@UPN domain).
``Set-Mailbox -Identity [-CustomAttribute1] [-EmailAddresses] [-EmailAddressPolicyEnabled]
[-AddressBookPolicy] [-OfflineAddressBook] [-IssueWarningQuota] [-ProhibitSendQuota]
[-ProhibitSendReceiveQuota] [-UseDatabaseQuotaDefaults]``
    one atomic change: ``extensionAttribute1``; ``proxyAddresses`` (exactly one ``SMTP:``
    primary, every address unique in the forest, else Exchange's refusal) and ``mail`` =
    the primary; ``msExchPoliciesExcluded`` (the e-mail address policy's exclusion GUID);
    ``msExchAddressBookPolicyLink``; ``msExchUseOAB``; the quotas in KB — IssueWarningQuota
    in ``mDBStorageQuota``, ProhibitSendQuota in ``mDBOverQuotaLimit``,
    ProhibitSendReceiveQuota in ``mDBOverHardQuotaLimit`` (``Unlimited`` clears it; sizes
    as ByteQuantifiedSize reads them, ``2GB``, ``100`` bytes, or Get-Mailbox's own
    ``1.8 GB (1,932,734,464 bytes)``; up to 2 TB; warning ≤ send ≤ send-and-receive, else
    refused) — and ``mDBUseDefaults``. ``showInAddressBook`` is then recomputed from the
    address lists' filters, as Exchange stamps it when a recipient changes.
``New-MoveRequest -Identity -TargetDatabase``
    queues a local move (one request per mailbox: a second one is refused, as is the
    mailbox's own database) and returns it with Status ``Queued``. The Mailbox Replication
    Service is :attr:`ExchangeOrganization.mrs`: ``"complete"`` finishes the move at once
    after the cmdlet returns (``homeMDB`` = the target, Status ``Completed``), ``"hold"``
    leaves it queued. ``Get-MoveRequest -Identity`` shows it; ``Remove-MoveRequest
    -Identity [-Confirm]`` removes it, cancelling one not completed (the mailbox stays
    where it was). Get-Mailbox shows it as ``MailboxMoveStatus``.
``Disable-Mailbox -Identity [-Confirm]``
    removes the Exchange attributes from the user (the mailbox is disconnected).
``Get-AddressBookPolicy -Identity`` / ``Get-OfflineAddressBook -Identity``
    read an ABP (its address lists, GAL, OAB, room list) or an OAB; absent → not found.

Not modelled: recipient filters other than ``CustomAttribute1 -eq``; the e-mail address
policy generating addresses (with the policy enabled, changing the primary address is
refused instead); the move request's own state on the user (``msExchMailboxMove*``: kept in
the server's memory here), moving the mailbox's content, and a move that fails or
suspends; the database's own quotas; the object classes of the configuration objects
(plain ``container`` objects here, with the real names and places); linked-attribute
back-links.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import ldap3
from ldap3.core.exceptions import (LDAPEntryAlreadyExistsResult, LDAPInvalidDnError, LDAPInvalidDNSyntaxResult,
                                   LDAPNoSuchObjectResult)
from ldap3.utils.conv import escape_filter_chars
from psrpcore.types import ErrorCategory, PSCustomObject

from core.demo.platform import (ADMIN_GROUP, DATABASES, EAP_EXCLUDED, ORGANIZATION, USER_MAILBOX, AddressBook, address_book_dns,
                                address_list_dns, exchange_dn, organization_containers, organization_dn)
from core.demo.powershell import CmdletError, Runspace

MAILBOX_ATTRIBUTES = ("cn", "displayName", "mailNickname", "userPrincipalName", "sAMAccountName", "objectGUID", "mail",
                      "proxyAddresses", "legacyExchangeDN", "extensionAttribute1", "msExchPoliciesExcluded",
                      "msExchAddressBookPolicyLink", "msExchUseOAB", "showInAddressBook", "homeMDB", "msExchRecipientTypeDetails",
                      "mDBStorageQuota", "mDBOverQuotaLimit", "mDBOverHardQuotaLimit", "mDBUseDefaults")
# Set-Mailbox's quota parameters → the attribute each is kept in (in KB)
QUOTA_ATTRIBUTES = {"IssueWarningQuota": "mDBStorageQuota", "ProhibitSendQuota": "mDBOverQuotaLimit",
                    "ProhibitSendReceiveQuota": "mDBOverHardQuotaLimit"}
MAX_QUOTA = 2199023254528  # bytes: the largest quota short of Unlimited
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB)?\s*(?:\(([\d,]+) bytes\))?\s*$", re.IGNORECASE)
UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


@dataclass
class AdBackend:
    """What a service's cmdlets read and write in the DC: an administrator's connection
    (used under ``lock``: the server runs requests in threads)."""

    conn: ldap3.Connection
    base_dn: str
    server_name: str = "dc1"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_container(self, dn: str) -> None:
        with self.lock:
            try:
                ok = self.conn.add(dn, ["top", "container"])
            except LDAPEntryAlreadyExistsResult:
                return
            if not ok and self.conn.result.get("result") != 68:  # entryAlreadyExists
                raise RuntimeError(f"cannot add {dn}: {self.conn.result}")

    def exists(self, dn: str) -> bool:
        with self.lock:
            try:
                return bool(self.conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["cn"]))
            except LDAPNoSuchObjectResult:
                return False

    @staticmethod
    def name_of(dn: str | None) -> str | None:
        return ldap3.utils.dn.parse_dn(dn)[0][1] if dn else None

    def find_users(self, identity: Any, attributes: tuple[str, ...], also: tuple[str, ...] = ()) -> list[ldap3.Entry]:
        """Users an ``-Identity`` names: a DN, a GUID, or a UPN, sAMAccountName, name or one
        of the ``also`` attributes (``"attribute"`` or ``"attribute=prefix"``; the value is
        escaped into the filter)."""
        text = str(identity)
        conn = self.conn
        with self.lock:
            if "=" in text and "," in text:
                try:
                    found = conn.search(text, "(objectClass=user)", ldap3.BASE, attributes=list(attributes))
                except (LDAPNoSuchObjectResult, LDAPInvalidDnError, LDAPInvalidDNSyntaxResult):
                    found = False
            else:
                try:
                    guid = uuid.UUID(text)
                except ValueError:
                    v = escape_filter_chars(text)
                    names = "".join(f"({a}={prefix}{v})" for a, _, prefix in
                                    (x.partition("=") for x in ("userPrincipalName", "sAMAccountName", "cn") + also))
                    flt = f"(&(objectClass=user)(|{names}))"
                else:
                    flt = "(objectGUID=" + "".join(f"\\{b:02x}" for b in guid.bytes_le) + ")"
                found = conn.search(self.base_dn, flt, ldap3.SUBTREE, attributes=list(attributes))
            return list(conn.entries) if found else []

    def one(self, identity: Any, entries: list[ldap3.Entry]) -> ldap3.Entry:
        if not entries:
            raise not_found(identity, self.server_name)
        if len(entries) > 1:
            raise CmdletError(f"The operation couldn't be performed because '{identity}' matches multiple entries.",
                              ErrorCategory.InvalidArgument, "ManagementObjectAmbiguousException")
        return entries[0]

    def write(self, dn: str, changes: dict[str, list[Any]]) -> None:
        with self.lock:
            ok = self.conn.modify(dn, {k: [(ldap3.MODIFY_REPLACE, v)] for k, v in changes.items()})
            if not ok:
                raise CmdletError(f"Active Directory operation failed on {self.server_name}: {self.conn.result['message']}",
                                  ErrorCategory.WriteError, "ADOperationException")


def accept(params: dict[str, Any], allowed: set[str]) -> dict[str, Any]:
    """The named parameters, spelled as the cmdlet spells them; PowerShell's own refusal of
    an unknown one or of a missing ``-Identity``."""
    lowered = {a.lower(): a for a in allowed}
    out = {}
    for name, value in params.items():
        if name.lower() not in lowered:
            raise CmdletError(f"A parameter cannot be found that matches parameter name '{name}'.",
                              ErrorCategory.InvalidArgument, "NamedParameterNotFound")
        out[lowered[name.lower()]] = value
    if "Identity" in allowed and "Identity" not in out:
        raise CmdletError("Cannot process command because of one or more missing mandatory parameters: Identity.",
                          ErrorCategory.InvalidArgument, "MissingMandatoryParameter")
    return out


def not_found(identity: Any, server: str) -> CmdletError:
    return CmdletError(f"The operation couldn't be performed because object '{identity}' couldn't be found on '{server}'.",
                       ErrorCategory.NotSpecified, "ManagementObjectNotFoundException")


@dataclass
class ExchangeOrganization(AdBackend):
    """The organisation's configuration objects in the Samba DC (see the module doc)."""

    books: dict[str, AddressBook] = field(default_factory=dict)  # ABP name (lower) → book
    lists: dict[str, str] = field(default_factory=dict)  # address list / GAL DN → CustomAttribute1 value
    oabs: dict[str, str] = field(default_factory=dict)  # OAB name (lower) → DN
    moves: dict[str, dict[str, str]] = field(default_factory=dict)  # mailbox objectGUID → its move request
    mrs: str = "complete"  # the Mailbox Replication Service: "complete" a move at once, or "hold" it queued

    @property
    def org_dn(self) -> str:
        return organization_dn(self.base_dn)

    def dn_of(self, kind: str, name: str) -> str:
        return exchange_dn(self.base_dn, kind, name)

    def install(self, databases: tuple[str, ...] = DATABASES) -> None:
        """The organisation's containers and mailbox databases (idempotent)."""
        for dn in organization_containers(self.base_dn, databases):
            self.add_container(dn)

    def add_tenant(self, code: str, name: str | None = None) -> AddressBook:
        """A hosting tenant's address book, created the way hosting guides do: an address
        list, a room list, a GAL and an OAB filtered on CustomAttribute1, and an ABP, all
        named after ``name`` (default: the code)."""
        book = AddressBook.of(code, name)
        for dn in address_book_dns(self.base_dn, book):
            self.add_container(dn)
        self.register(book)
        return book

    def register(self, book: AddressBook) -> None:
        """Serve ``book``, whose objects are in the directory (the filters of its lists are
        the server's to know: they are not attributes of the plain containers here)."""
        for dn in address_list_dns(self.base_dn, book):
            self.lists[dn] = book.custom_attribute1
        self.oabs[book.oab.lower()] = self.dn_of("oab", book.oab)
        self.books[book.policy.lower()] = book


class ExchangeRunspace(Runspace):
    """The ``Microsoft.Exchange`` session configuration (see the module docstring)."""

    configuration = "Microsoft.Exchange"

    def __init__(self, org: ExchangeOrganization) -> None:
        self.org = org

    def cmdlets(self):
        return {
            "Get-Mailbox": self.get_mailbox,
            "Enable-Mailbox": self.enable_mailbox,
            "Set-Mailbox": self.set_mailbox,
            "Disable-Mailbox": self.disable_mailbox,
            "Get-AddressBookPolicy": self.get_address_book_policy,
            "Get-OfflineAddressBook": self.get_offline_address_book,
            "New-MoveRequest": self.new_move_request,
            "Get-MoveRequest": self.get_move_request,
            "Remove-MoveRequest": self.remove_move_request,
        }

    # -- helpers --------------------------------------------------------------------------

    def _find(self, identity: Any, *, mailbox: bool) -> ldap3.Entry:
        entries = self.org.find_users(identity, MAILBOX_ATTRIBUTES, also=("mailNickname", "proxyAddresses=smtp:"))
        if mailbox:
            entries = [e for e in entries if e.homeMDB.value and str(e.msExchRecipientTypeDetails.value or "") == USER_MAILBOX]
        return self.org.one(identity, entries)

    def _mailbox(self, dn: str) -> PSCustomObject:
        e = self._find(dn, mailbox=True)
        proxies = [str(p) for p in e.proxyAddresses.values]
        primary = next((p[5:] for p in proxies if p.startswith("SMTP:")), None)
        excluded = {str(v).lower() for v in e.msExchPoliciesExcluded.values}
        return PSCustomObject(
            Identity=e.entry_dn,
            DistinguishedName=e.entry_dn,
            Name=e.cn.value,
            DisplayName=e.displayName.value,
            Alias=e.mailNickname.value,
            Guid=_guid(e),
            UserPrincipalName=e.userPrincipalName.value,
            PrimarySmtpAddress=primary,
            EmailAddresses=proxies,
            EmailAddressPolicyEnabled=EAP_EXCLUDED not in excluded,
            LegacyExchangeDN=e.legacyExchangeDN.value,
            CustomAttribute1=e.extensionAttribute1.value,
            AddressBookPolicy=self.org.name_of(e.msExchAddressBookPolicyLink.value),
            OfflineAddressBook=self.org.name_of(e.msExchUseOAB.value),
            AddressListMembership=sorted(self.org.name_of(str(v)) for v in e.showInAddressBook.values),
            Database=self.org.name_of(e.homeMDB.value),
            RecipientTypeDetails="UserMailbox",
            UseDatabaseQuotaDefaults=str(e.mDBUseDefaults.value).upper() != "FALSE",
            MailboxMoveStatus=self.org.moves.get(_guid(e), {}).get("Status", "None"),
            **{name: _size(e[attribute].value) for name, attribute in QUOTA_ATTRIBUTES.items()},
        )

    def _book(self, identity: Any) -> AddressBook:
        book = self.org.books.get(str(identity).lower())
        if book is None or not self.org.exists(self.org.dn_of("abp", book.policy)):
            raise not_found(identity, self.org.server_name)
        return book

    def _oab_dn(self, identity: Any) -> str:
        dn = self.org.oabs.get(str(identity).lower())
        if dn is None or not self.org.exists(dn):
            raise not_found(identity, self.org.server_name)
        return dn

    def _in_use(self, address: str, own_dn: str) -> None:
        v, legacy = escape_filter_chars(address), escape_filter_chars(address.partition(":")[2])
        with self.org.lock:
            self.org.conn.search(self.org.base_dn, f"(|(proxyAddresses={v})(legacyExchangeDN={legacy}))",
                                 ldap3.SUBTREE, attributes=["cn"])
            others = [e for e in self.org.conn.entries if e.entry_dn.lower() != own_dn.lower()]
        if others:
            raise CmdletError(f'The proxy address "{address}" is already being used by the proxy addresses or LegacyExchangeDN '
                              f'of "{others[0].cn.value}". Please choose another proxy address.',
                              ErrorCategory.InvalidArgument, "ProxyAddressExists")

    def _address_lists(self, custom_attribute1: str | None) -> list[str]:
        return sorted((dn for dn, value in self.org.lists.items() if custom_attribute1 and value == custom_attribute1), key=str.lower)

    # -- cmdlets ----------------------------------------------------------------------------

    def get_mailbox(self, params: dict[str, Any]) -> list[Any]:
        params = accept(params, {"Identity"})
        return [self._mailbox(self._find(params["Identity"], mailbox=True).entry_dn)]

    def get_address_book_policy(self, params: dict[str, Any]) -> list[Any]:
        params = accept(params, {"Identity"})
        book = self._book(params["Identity"])
        return [PSCustomObject(Name=book.policy, Identity=book.policy, DistinguishedName=self.org.dn_of("abp", book.policy),
                               AddressLists=list(book.address_lists), GlobalAddressList=book.gal,
                               OfflineAddressBook=book.oab, RoomList=book.room_list)]

    def get_offline_address_book(self, params: dict[str, Any]) -> list[Any]:
        params = accept(params, {"Identity"})
        dn = self._oab_dn(params["Identity"])
        return [PSCustomObject(Name=self.org.name_of(dn), Identity=self.org.name_of(dn), DistinguishedName=dn)]

    def enable_mailbox(self, params: dict[str, Any]) -> list[Any]:
        params = accept(params, {"Identity", "Database", "Alias", "PrimarySmtpAddress", "AddressBookPolicy"})
        user = self._find(params["Identity"], mailbox=False)
        if user.homeMDB.value:
            raise CmdletError(f"The user {user.cn.value} is already mailbox-enabled.", ErrorCategory.InvalidArgument,
                              "RecipientTaskException")
        database = self.org.dn_of("database", str(params.get("Database") or "DB01"))
        if not self.org.exists(database):
            raise not_found(params.get("Database"), self.org.server_name)
        alias = str(params.get("Alias") or user.mailNickname.value or user.sAMAccountName.value)
        upn_domain = str(user.userPrincipalName.value).rpartition("@")[2]
        primary = str(params.get("PrimarySmtpAddress") or user.mail.value or f"{alias}@{upn_domain}")
        others = [str(p) for p in user.proxyAddresses.values if not p.lower() == f"smtp:{primary.lower()}"]
        proxies = [f"SMTP:{primary}"] + [("smtp:" + p[5:]) if p.startswith("SMTP:") else p for p in others]
        for address in proxies:
            self._in_use(address, user.entry_dn)
        guid = _guid(user).replace("-", "")
        changes: dict[str, list[Any]] = {
            "homeMDB": [database], "msExchRecipientTypeDetails": [USER_MAILBOX], "mailNickname": [alias],
            "mail": [primary], "proxyAddresses": proxies,
            "legacyExchangeDN": [user.legacyExchangeDN.value or f"/o={ORGANIZATION}/ou={ADMIN_GROUP}/cn=Recipients/cn={guid[:8]}-{alias}"],
            "showInAddressBook": self._address_lists(user.extensionAttribute1.value), "mDBUseDefaults": ["TRUE"],
        }
        if params.get("AddressBookPolicy") is not None:
            changes["msExchAddressBookPolicyLink"] = [self.org.dn_of("abp", self._book(params["AddressBookPolicy"]).policy)]
        self.org.write(user.entry_dn, {k: v for k, v in changes.items() if v})
        return [self._mailbox(user.entry_dn)]

    def set_mailbox(self, params: dict[str, Any]) -> list[Any]:
        params = accept(params, {"Identity", "CustomAttribute1", "EmailAddresses", "EmailAddressPolicyEnabled",
                                       "AddressBookPolicy", "OfflineAddressBook", *QUOTA_ATTRIBUTES, "UseDatabaseQuotaDefaults"})
        box = self._find(params["Identity"], mailbox=True)
        changes: dict[str, list[Any]] = {}
        custom = box.extensionAttribute1.value
        if "CustomAttribute1" in params:
            custom = params["CustomAttribute1"] or None
            changes["extensionAttribute1"] = [str(custom)] if custom else []
        excluded = [str(v) for v in box.msExchPoliciesExcluded.values]
        eap = EAP_EXCLUDED.lower() not in {v.lower() for v in excluded}
        if "EmailAddressPolicyEnabled" in params:
            eap = bool(params["EmailAddressPolicyEnabled"])
            kept = [v for v in excluded if v.lower() != EAP_EXCLUDED]
            changes["msExchPoliciesExcluded"] = kept if eap else kept + [EAP_EXCLUDED]
        if "EmailAddresses" in params:
            addresses = [str(a) for a in (params["EmailAddresses"] or [])]
            for address in addresses:
                kind, sep, value = address.partition(":")
                if not sep or not kind or not value:
                    raise CmdletError(f'The address "{address}" is invalid: a proxy address is prefix:address.',
                                      ErrorCategory.InvalidArgument, "InvalidProxyAddress")
                if kind.lower() == "smtp" and (value.count("@") != 1 or value.startswith("@") or value.endswith("@")):
                    raise CmdletError(f'The SMTP address "{value}" is invalid.', ErrorCategory.InvalidArgument,
                                      "InvalidSmtpAddress")
            primaries = [a for a in addresses if a.startswith("SMTP:")]
            if len(primaries) != 1:
                raise CmdletError("The EmailAddresses must contain exactly one primary SMTP address (SMTP:).",
                                  ErrorCategory.InvalidArgument, "PrimarySmtpAddressCount")
            old_primary = next((str(p) for p in box.proxyAddresses.values if str(p).startswith("SMTP:")), None)
            if eap and (old_primary or "").lower() != primaries[0].lower():
                raise CmdletError("The primary SMTP address can't be changed because EmailAddressPolicyEnabled is $true.",
                                  ErrorCategory.InvalidOperation, "EmailAddressPolicyEnabled")
            lowered = [a.lower() for a in addresses]
            if len(set(lowered)) != len(lowered):
                raise CmdletError("The EmailAddresses contain the same address twice.", ErrorCategory.InvalidArgument,
                                  "DuplicateProxyAddress")
            for address in addresses:
                self._in_use(address, box.entry_dn)
            changes["proxyAddresses"] = addresses
            changes["mail"] = [primaries[0][5:]]
        if "AddressBookPolicy" in params:
            value = params["AddressBookPolicy"]
            changes["msExchAddressBookPolicyLink"] = [self.org.dn_of("abp", self._book(value).policy)] if value else []
        if "OfflineAddressBook" in params:
            value = params["OfflineAddressBook"]
            changes["msExchUseOAB"] = [self._oab_dn(value)] if value else []
        changes.update(self._quotas(box, params))
        changes["showInAddressBook"] = self._address_lists(custom)
        self.org.write(box.entry_dn, changes)
        return []

    def disable_mailbox(self, params: dict[str, Any]) -> list[Any]:
        params = accept(params, {"Identity", "Confirm"})
        box = self._find(params["Identity"], mailbox=True)
        self.org.write(box.entry_dn, {name: [] for name in ("homeMDB", "msExchRecipientTypeDetails", "mailNickname", "mail",
                                                         "proxyAddresses", "legacyExchangeDN", "showInAddressBook",
                                                         "msExchAddressBookPolicyLink", "msExchUseOAB",
                                                         "msExchPoliciesExcluded", "mDBUseDefaults",
                                                         *QUOTA_ATTRIBUTES.values())})
        return []

    def _quotas(self, box: ldap3.Entry, params: dict[str, Any]) -> dict[str, list[Any]]:
        """The quota attributes Set-Mailbox writes; the three limits must stay in order."""
        changes: dict[str, list[Any]] = {}
        limits = {}
        for name, attribute in QUOTA_ATTRIBUTES.items():
            if name in params:
                kb = _kilobytes(name, params[name])
                changes[attribute] = [] if kb is None else [str(kb)]
            else:
                value = box[attribute].value
                kb = None if value in (None, "") else int(value)
            limits[name] = float("inf") if kb is None else kb
        names = list(QUOTA_ATTRIBUTES)
        for low, high in zip(names, names[1:]):
            if any(n in params for n in (low, high)) and limits[low] > limits[high]:
                raise CmdletError(f"The value of property '{low}' must be less than or equal to that of property '{high}'.",
                                  ErrorCategory.InvalidArgument, "QuotaOrder")
        if "UseDatabaseQuotaDefaults" in params:
            changes["mDBUseDefaults"] = ["TRUE" if params["UseDatabaseQuotaDefaults"] else "FALSE"]
        return changes

    def _request(self, identity: Any) -> tuple[ldap3.Entry, dict[str, str]]:
        box = self._find(identity, mailbox=True)
        request = self.org.moves.get(_guid(box))
        if request is None:
            raise not_found(identity, self.org.server_name)
        return box, request

    def _move_request(self, box: ldap3.Entry, request: dict[str, str]) -> PSCustomObject:
        return PSCustomObject(DisplayName=box.displayName.value, Alias=box.mailNickname.value, Identity=box.entry_dn,
                              Status=request["Status"], SourceDatabase=self.org.name_of(request["SourceDatabase"]),
                              TargetDatabase=self.org.name_of(request["TargetDatabase"]))

    def new_move_request(self, params: dict[str, Any]) -> list[Any]:
        params = accept(params, {"Identity", "TargetDatabase"})
        box = self._find(params["Identity"], mailbox=True)
        guid = _guid(box)
        if guid in self.org.moves:
            raise CmdletError(f"User '{box.cn.value}' already has a move request associated with it.",
                              ErrorCategory.InvalidArgument, "ManagementObjectAlreadyExistsException")
        target = self.org.dn_of("database", str(params.get("TargetDatabase") or ""))
        if not params.get("TargetDatabase") or not self.org.exists(target):
            raise not_found(params.get("TargetDatabase"), self.org.server_name)
        source = str(box.homeMDB.value)
        if source.lower() == target.lower():
            raise CmdletError(f"The mailbox '{box.cn.value}' is already in the target database "
                              f"'{self.org.name_of(target)}'.", ErrorCategory.InvalidArgument, "RecipientTaskException")
        request = {"Status": "Queued", "SourceDatabase": source, "TargetDatabase": target}
        self.org.moves[guid] = request
        shown = self._move_request(box, request)
        if self.org.mrs == "complete":  # the Mailbox Replication Service picks it up and finishes it
            self.org.write(box.entry_dn, {"homeMDB": [target]})
            request["Status"] = "Completed"
        return [shown]

    def get_move_request(self, params: dict[str, Any]) -> list[Any]:
        params = accept(params, {"Identity"})
        return [self._move_request(*self._request(params["Identity"]))]

    def remove_move_request(self, params: dict[str, Any]) -> list[Any]:
        params = accept(params, {"Identity", "Confirm"})
        box, _ = self._request(params["Identity"])
        del self.org.moves[_guid(box)]  # one not completed is cancelled: homeMDB was never changed
        return []


def _guid(entry: ldap3.Entry) -> str:
    """The entry's objectGUID as text (ldap3 formats it with the server's schema; the
    demo's directory has none and gives its 16 bytes, AD's little-endian layout)."""
    value = entry.objectGUID.value
    return str(uuid.UUID(bytes_le=value) if isinstance(value, bytes) else value).strip("{}").lower()


def _kilobytes(name: str, value: Any) -> int | None:
    """A quota parameter as ByteQuantifiedSize parses it, in KB (``None``: Unlimited)."""
    text = str(value if value is not None else "")
    if text.strip().lower() == "unlimited":
        return None
    match = SIZE.match(text)
    if not match:
        raise CmdletError(f"Cannot process argument transformation on parameter '{name}'. Cannot convert value \"{text}\" "
                          "to type \"Microsoft.Exchange.Data.Unlimited`1[Microsoft.Exchange.Data.ByteQuantifiedSize]\".",
                          ErrorCategory.InvalidData, "ParameterArgumentTransformationError")
    number, unit, exact = match.groups()
    size = int(exact.replace(",", "")) if exact else int(float(number) * UNITS[(unit or "B").upper()])
    if size > MAX_QUOTA:
        raise CmdletError(f"The value of '{name}' is out of range: it must be at most 2 TB or Unlimited.",
                          ErrorCategory.InvalidArgument, "ArgumentOutOfRange")
    return size // 1024


def _size(kb: Any) -> str:
    """A quota attribute (KB) as Get-Mailbox shows it: ``Unlimited`` or ``1.8 GB (1,932,734,464 bytes)``."""
    if kb in (None, ""):
        return "Unlimited"
    size = int(kb) * 1024
    unit = next(u for u in ("TB", "GB", "MB", "KB", "B") if size >= UNITS[u] or u == "B")
    return f"{round(size / UNITS[unit], 3):g} {unit} ({size:,} bytes)"
