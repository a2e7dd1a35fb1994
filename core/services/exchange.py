"""Hosted Exchange moved and copied through Exchange's own cmdlets (``adapter = "exchange_powershell"``).

The mailbox is re-homed the way hosting control panels do it, over PowerShell remoting
(:mod:`core.services.powershell`; the endpoint options are documented there), so that
Exchange itself stamps the recipient: address book policy, offline address book, address
list membership (``showInAddressBook``), addresses.

Per customer: its table in the tenant map (``[tenants."<OU>".<key>]``, any of the keys
below), else these ``[services.<key>]`` templates over ``{code}``, the customer's code
from the same map (never over what the tenant's own admins can edit):

``address_book_policy``
    The tenant's ABP (default ``"{code} ABP"``). It must exist: a missing one is a
    preflight problem.
``offline_address_book``
    The tenant's OAB (default: the ABP's own).
``custom_attribute1``
    The value the tenant's address lists select on (default ``"{code}"``).
``database`` / ``plan_databases``
    The mailbox database of a copied user's new mailbox (default ``"DB01"``), per plan
    (``plan_databases = { "Premium 50 GB" = "DB02" }``).

Move (one cmdlet after the directory steps): ``Set-Mailbox -Identity <objectGUID>
-CustomAttribute1 … -EmailAddresses … -EmailAddressPolicyEnabled:$false
-AddressBookPolicy … -OfflineAddressBook …``; the addresses are the whole new set (new
primary, the source customer's domains removed, X500 kept: :func:`core.mapping.proxy_addresses`).
Preflight reads the mailbox (``Get-Mailbox``) and the destination's ABP
(``Get-AddressBookPolicy``); undo restores every value read then (with the e-mail
address policy switched back on in a second call when it was on).

Copy (two cmdlets after the new account exists): ``Enable-Mailbox -Identity <new DN>
-Database … -Alias … -PrimarySmtpAddress …``, then the same ``Set-Mailbox`` settings;
undone by ``Disable-Mailbox`` (before the account itself is deleted).

Each cmdlet is a service step of the plan, shown with its parameters in the review and
the dry run, journaled with the cmdlets that undo it.
"""

from __future__ import annotations

from typing import Any

from core.errors import ConfigError, ServiceError
from core.mapping import proxy_addresses, split_address
from core.model import Customer
from core.plan import INVALID_VALUE, SERVICE_MISSING, Problem
from core.services.base import CopyContext, MoveContext, ServiceCopy, ServiceMove
from core.services.powershell import Cmdlet, CmdletAdapter, PowerShellEndpoint
from core.tenants import TenantMap
from core.text import plain

TENANT_OPTIONS = frozenset({"address_book_policy", "offline_address_book", "custom_attribute1", "database", "plan_databases"})
DEFAULTS = {"address_book_policy": "{code} ABP", "custom_attribute1": "{code}", "database": "DB01"}
CAPTURED = ("CustomAttribute1", "EmailAddresses", "EmailAddressPolicyEnabled", "AddressBookPolicy", "OfflineAddressBook")


class ExchangePowerShellAdapter(CmdletAdapter):
    """Hosted Exchange on cmdlets (see the module docstring)."""

    def __init__(self, service, options, layout, *, tenants: TenantMap | None = None, environ=None,
                 endpoint: PowerShellEndpoint | None = None):
        super().__init__(service, options, layout, tenants=tenants, environ=environ, endpoint=endpoint)
        where = f"services.{service.key}"
        for name in TENANT_OPTIONS - {"plan_databases"}:
            value = options.get(name, DEFAULTS.get(name))
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{where}.{name} must be a non-empty string (a template over {{code}}).")
        databases = options.get("plan_databases", {})
        if not isinstance(databases, dict) or not all(isinstance(v, str) and v.strip() for v in databases.values()):
            raise ConfigError(f"{where}.plan_databases must be a table of plan = \"database\".")

    WRITES = frozenset({"set-mailbox", "enable-mailbox", "disable-mailbox"})

    def tenant_values(self, customer: Customer) -> dict[str, set[str]]:
        values = {"AddressBookPolicy": self._tenant("address_book_policy", customer),
                  "CustomAttribute1": self._tenant("custom_attribute1", customer),
                  "OfflineAddressBook": self._tenant("offline_address_book", customer) if self.options.get("offline_address_book") else None}
        return {name: {value} for name, value in values.items() if value}

    # -- per-tenant settings ------------------------------------------------------------------

    def _tenant(self, name: str, customer: Customer) -> str | None:
        return self.setting(name, customer, DEFAULTS.get(name))

    def _database(self, customer: Customer, plan: str | None) -> str:
        return str(self.options.get("plan_databases", {}).get(plan) or self._tenant("database", customer))

    async def _address_book(self, customer: Customer, who: str) -> tuple[dict[str, str], list[Problem]]:
        """The customer's ABP and OAB, read from Exchange; a missing one is a problem."""
        policy = self._tenant("address_book_policy", customer) or ""
        name = self.service.display_name
        try:
            found = await self.endpoint.run(Cmdlet("Get-AddressBookPolicy", (("Identity", policy),)))
        except ServiceError as error:
            return {}, [Problem(SERVICE_MISSING, f"{name}: the address book policy {policy!r} of {plain(customer.name)} "
                                                 f"cannot be used ({error}).", who)]
        oab = self._tenant("offline_address_book", customer) or str((found[0] if found else {}).get("OfflineAddressBook") or "")
        if self.options.get("offline_address_book"):
            try:
                await self.endpoint.run(Cmdlet("Get-OfflineAddressBook", (("Identity", oab),)))
            except ServiceError as error:
                return {}, [Problem(SERVICE_MISSING, f"{name}: the offline address book {oab!r} of {plain(customer.name)} "
                                                     f"cannot be used ({error}).", who)]
        return {"policy": policy, "oab": oab, "custom_attribute1": self._tenant("custom_attribute1", customer) or ""}, []

    # -- move ----------------------------------------------------------------------------

    async def inspect(self, context: MoveContext) -> tuple[dict[str, Any], list[Problem]]:
        who = context.user.upn or context.user.sam
        identity = context.user.guid or context.user.dn
        try:
            found = await self.endpoint.run(Cmdlet("Get-Mailbox", (("Identity", identity),)))
        except ServiceError as error:
            return {}, [Problem(SERVICE_MISSING, f"{self.service.display_name}: the mailbox of {plain(who)} cannot be read ({error}).", who)]
        book, problems = await self._address_book(context.destination, who)
        mailbox = found[0] if found else {}
        captured = {k: mailbox.get(k) for k in CAPTURED}
        return {"identity": identity, "mailbox": captured, "book": book}, problems

    def plan_move(self, context: MoveContext) -> ServiceMove:
        remote = context.remote
        if not remote.get("book") or context.email is None:
            return ServiceMove()
        before = dict(remote["mailbox"])
        current = tuple(str(a) for a in before.get("EmailAddresses") or ())
        addresses = proxy_addresses(current, context.email, context.source.domains, None, context.sip)
        book = remote["book"]
        after = {**_tenant_settings(book), "EmailAddresses": list(addresses)}
        identity = remote["identity"]
        do = _set_mailbox(identity, after)
        undo = [_set_mailbox(identity, {**before, "EmailAddressPolicyEnabled": False})]
        if before.get("EmailAddressPolicyEnabled"):
            undo.append(Cmdlet("Set-Mailbox", (("Identity", identity), ("EmailAddressPolicyEnabled", True))))
        who = context.user.upn or context.user.sam
        return ServiceMove(steps=(self.cmdlet_step(who, do, undo, before, after),))

    # -- copy ----------------------------------------------------------------------------

    async def inspect_copy(self, context: CopyContext) -> tuple[dict[str, Any], list[Problem]]:
        book, problems = await self._address_book(context.customer, context.upn)
        return {"book": book}, problems

    def plan_copy(self, context: CopyContext) -> ServiceCopy:
        who = context.upn
        if context.email is None:
            return ServiceCopy(problems=(Problem(INVALID_VALUE, f"{self.service.display_name} needs an email address for {who}.", who),))
        book = context.remote.get("book")
        if not book:
            return ServiceCopy()
        plan = context.plan.name if context.plan else None
        enable = Cmdlet("Enable-Mailbox", (("Identity", context.new_dn), ("Database", self._database(context.customer, plan)),
                                           ("Alias", split_address(context.email)[0]), ("PrimarySmtpAddress", context.email)))
        disable = Cmdlet("Disable-Mailbox", (("Identity", context.new_dn), ("Confirm", False)))
        after = _tenant_settings(book)
        settings = _set_mailbox(context.new_dn, after)
        return ServiceCopy(steps=(self.cmdlet_step(who, enable, [disable], {}, {"Database": enable.parameters[1][1], "PrimarySmtpAddress": context.email}),
                                  self.cmdlet_step(who, settings, [], {}, after)))


def _tenant_settings(book: dict[str, str]) -> dict[str, Any]:
    """What Set-Mailbox sets for the customer: its address-list value, its ABP and OAB, and
    the e-mail address policy off (a hosted mailbox's addresses are Tenantry's to set)."""
    return {"CustomAttribute1": book["custom_attribute1"] or None, "EmailAddressPolicyEnabled": False,
            "AddressBookPolicy": book["policy"], "OfflineAddressBook": book["oab"] or None}


def _set_mailbox(identity: str, values: dict[str, Any]) -> Cmdlet:
    parameters: list[tuple[str, Any]] = [("Identity", identity)]
    for name in CAPTURED:
        if name in values:
            value = values[name]
            parameters.append((name, tuple(value) if isinstance(value, list) else value))
    return Cmdlet("Set-Mailbox", tuple(parameters))
