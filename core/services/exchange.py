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
    The mailbox database of a customer's mailboxes (default ``"DB01"`` for a copy's new
    mailbox), per plan (``plan_databases = { "Premium 50 GB" = "DB02" }``). A move whose
    destination plan's database is configured (``plan_databases``, or ``database`` in the
    service's section or the customer's table) and differs from the mailbox's own adds a
    ``New-MoveRequest -TargetDatabase``.
``plan_quotas``
    The mailbox quotas of each plan (``plan_quotas = { "Basic 2 GB" = { issue_warning =
    "1.8GB", prohibit_send = "1.9GB", prohibit_send_receive = "2GB" } }``; sizes as
    Exchange reads them: a number with B, KB, MB, GB or TB, or ``Unlimited``; warning ≤
    send ≤ send-and-receive). A move or copy onto such a plan sets them with
    ``Set-Mailbox -IssueWarningQuota -ProhibitSendQuota -ProhibitSendReceiveQuota
    -UseDatabaseQuotaDefaults:$false``; a plan without them leaves the quotas alone.

Move (after the directory steps): ``Set-Mailbox -Identity <objectGUID>
-CustomAttribute1 … -EmailAddresses … -EmailAddressPolicyEnabled:$false
-AddressBookPolicy … -OfflineAddressBook …`` (and the plan's quotas); the addresses are
the whole new set (new primary, the source customer's domains removed, X500 kept:
:func:`core.mapping.proxy_addresses`). Preflight reads the mailbox (``Get-Mailbox``) and
the destination's ABP (``Get-AddressBookPolicy``); undo restores every value it changes
as read then (with the e-mail address policy switched back on in a second call when it
was on). Then, when the plan's database differs, ``New-MoveRequest -Identity
<objectGUID> -TargetDatabase …``: Exchange's Mailbox Replication Service moves the
mailbox in the background, so the job does not wait for it — the step reports the
request's status (``Queued``…) and the job is done. A mailbox that already has a move
request is refused in preflight (Exchange accepts one request per mailbox). Its undo
removes the request (``Remove-MoveRequest``: a request not yet completed is cancelled)
and, if the mailbox had already reached the new database, moves it back with another
``New-MoveRequest``.

Copy (two cmdlets after the new account exists): ``Enable-Mailbox -Identity <new DN>
-Database … -Alias … -PrimarySmtpAddress …``, then the same ``Set-Mailbox`` settings;
undone by ``Disable-Mailbox`` (before the account itself is deleted).

Each cmdlet is a service step of the plan, shown with its parameters in the review and
the dry run, journaled with the cmdlets that undo it.
"""

from __future__ import annotations

import re
from typing import Any

from core.errors import ConfigError, ServiceError
from core.mapping import proxy_addresses, split_address
from core.model import Customer
from core.plan import INVALID_VALUE, SERVICE_MISSING, Problem, Step
from core.services.base import CopyContext, MoveContext, ServiceCopy, ServiceMove
from core.services.powershell import Cmdlet, CmdletAdapter, PowerShellEndpoint
from core.tenants import TenantMap
from core.text import plain

TENANT_OPTIONS = frozenset({"address_book_policy", "offline_address_book", "custom_attribute1", "database", "plan_databases"})
DEFAULTS = {"address_book_policy": "{code} ABP", "custom_attribute1": "{code}", "database": "DB01"}
QUOTAS = {"issue_warning": "IssueWarningQuota", "prohibit_send": "ProhibitSendQuota", "prohibit_send_receive": "ProhibitSendReceiveQuota"}
CAPTURED = ("CustomAttribute1", "EmailAddresses", "EmailAddressPolicyEnabled", "AddressBookPolicy", "OfflineAddressBook",
            *QUOTAS.values(), "UseDatabaseQuotaDefaults")
SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB)?\s*$", re.IGNORECASE)  # Exchange's ByteQuantifiedSize
MAX_QUOTA = 2199023254528  # bytes: Exchange's largest mailbox quota short of Unlimited (1.999… TB)
UNITS = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40}
NO_MOVE = "None"  # Get-Mailbox's MailboxMoveStatus of a mailbox without a move request


class ExchangePowerShellAdapter(CmdletAdapter):
    """Hosted Exchange on cmdlets (see the module docstring)."""

    def __init__(self, service, options, layout, *, tenants: TenantMap | None = None, environ=None,
                 endpoint: PowerShellEndpoint | None = None, transport: Any = None):
        super().__init__(service, options, layout, tenants=tenants, environ=environ, endpoint=endpoint,
                         transport=transport)
        where = f"services.{service.key}"
        for name in TENANT_OPTIONS - {"plan_databases"}:
            value = options.get(name, DEFAULTS.get(name))
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"{where}.{name} must be a non-empty string (a template over {{code}}).")
        databases = options.get("plan_databases", {})
        if not isinstance(databases, dict) or not all(isinstance(v, str) and v.strip() for v in databases.values()):
            raise ConfigError(f"{where}.plan_databases must be a table of plan = \"database\".")
        self.quotas = _plan_quotas(options.get("plan_quotas", {}), f"{where}.plan_quotas", service.plans)

    WRITES = frozenset({"set-mailbox", "enable-mailbox", "disable-mailbox", "new-moverequest", "remove-moverequest"})

    def tenant_values(self, customer: Customer) -> dict[str, set[str]]:
        values = {"AddressBookPolicy": self._tenant("address_book_policy", customer),
                  "CustomAttribute1": self._tenant("custom_attribute1", customer),
                  "OfflineAddressBook": self._tenant("offline_address_book", customer) if self.options.get("offline_address_book") else None}
        return {name: {value} for name, value in values.items() if value}

    def foreign_call(self, step: Step, customers) -> str | None:
        """As :meth:`CmdletAdapter.foreign_call`, and a mailbox database (``-Database``,
        ``-TargetDatabase``) must be one configured for the job's customers (or, in an
        undo, the one the step recorded the mailbox on)."""
        why = super().foreign_call(step, customers)
        if why:
            return why
        allowed = {str(self._database(c, plan)).casefold() for c in customers
                   for plan in (None, *self.options.get("plan_databases", {}))}
        recorded = str((step.before if isinstance(step.before, dict) else {}).get("Database") or "").casefold()
        for requested, undoing in ((step.request, False), (step.undo_request, True)):
            for data in (requested or {}).get("cmdlets", ()):
                for name, value in Cmdlet.from_json(data).parameters:
                    folded = str(value).casefold()
                    if name.casefold() in ("database", "targetdatabase") and folded not in allowed and not (undoing and folded == recorded):
                        return f"sets -{plain(name)} to {plain(str(value))}, a database none of the customers of this job is given"
        return None

    # -- per-tenant settings ------------------------------------------------------------------

    def _tenant(self, name: str, customer: Customer) -> str | None:
        return self.setting(name, customer, DEFAULTS.get(name))

    def _database(self, customer: Customer, plan: str | None, *, configured: bool = False) -> str | None:
        """The database of ``plan``'s mailboxes for ``customer``; with ``configured``, only
        one the configuration names (not the default a new mailbox falls back on)."""
        named = self.options.get("plan_databases", {}).get(plan)
        if named or not configured:
            return str(named or self._tenant("database", customer))
        return self.setting("database", customer)

    def _quotas(self, plan: str | None) -> dict[str, Any]:
        """What Set-Mailbox sets for ``plan``'s quotas (nothing for a plan without them)."""
        quotas = self.quotas.get(plan or "")
        return {**quotas, "UseDatabaseQuotaDefaults": False} if quotas else {}

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
        plan = context.plan.name if context.plan else None
        target = self._database(context.destination, plan, configured=True)
        database = str(mailbox.get("Database") or "")
        moving = str(mailbox.get("MailboxMoveStatus") or NO_MOVE)
        if target and target.casefold() != database.casefold() and moving != NO_MOVE:
            problems.append(Problem(SERVICE_MISSING, f"{self.service.display_name}: the mailbox of {plain(who)} already has a move "
                                                     f"request ({plain(moving)}); remove it (Remove-MoveRequest) before moving it "
                                                     f"to {plain(target)}.", who))
        return {"identity": identity, "mailbox": captured, "book": book, "database": database, "target": target}, problems

    def plan_move(self, context: MoveContext) -> ServiceMove:
        remote = context.remote
        if not remote.get("book") or context.email is None:
            return ServiceMove()
        before = dict(remote["mailbox"])
        current = tuple(str(a) for a in before.get("EmailAddresses") or ())
        addresses = proxy_addresses(current, context.email, context.source.domains, None, context.sip)
        book = remote["book"]
        after = {**_tenant_settings(book), "EmailAddresses": list(addresses), **self._quotas(context.plan.name if context.plan else None)}
        before = {k: v for k, v in before.items() if k in after}
        identity = remote["identity"]
        do = _set_mailbox(identity, after)
        undo = [_set_mailbox(identity, {**before, "EmailAddressPolicyEnabled": False})]
        if before.get("EmailAddressPolicyEnabled"):
            undo.append(Cmdlet("Set-Mailbox", (("Identity", identity), ("EmailAddressPolicyEnabled", True))))
        who = context.user.upn or context.user.sam
        steps = [self.cmdlet_step(who, do, undo, before, after)]
        target, database = remote.get("target"), remote.get("database")
        if target and database and target.casefold() != database.casefold():
            steps.append(self.cmdlet_step(
                who, Cmdlet("New-MoveRequest", (("Identity", identity), ("TargetDatabase", target))),
                [Cmdlet("Remove-MoveRequest", (("Identity", identity), ("Confirm", False))),
                 Cmdlet("New-MoveRequest", (("Identity", identity), ("TargetDatabase", database)))],
                {"Database": database}, {"Database": target}))
        return ServiceMove(steps=tuple(steps))

    async def perform(self, step: Step) -> dict[str, Any] | None:
        """A move request's step reports the request's status: Exchange moves the mailbox
        in the background, and the job does not wait for it."""
        result = None
        for data in (step.request or {}).get("cmdlets", ()):
            cmdlet = Cmdlet.from_json(data)
            output = await self.endpoint.run(cmdlet)
            if cmdlet.name.casefold() == "new-moverequest":
                status = str((output[0] if output and isinstance(output[0], dict) else {}).get("Status") or "Queued")
                target = dict(cmdlet.parameters).get("TargetDatabase")
                result = {"move_request": status,
                          "note": f"the move of the mailbox to {plain(str(target))} is {plain(status)}: Exchange finishes it in "
                                  "the background (Get-MoveRequest shows its progress)"}
        return result

    async def undo(self, step: Step, result: dict[str, Any] | None) -> None:
        """As journaled, except around a move request: its removal only if the mailbox
        still has one, the move back only if the mailbox reached the other database."""
        for data in (step.undo_request or {}).get("cmdlets", ()):
            cmdlet = Cmdlet.from_json(data)
            name = cmdlet.name.casefold()
            if name in ("remove-moverequest", "new-moverequest"):
                identity = dict(cmdlet.parameters).get("Identity")
                found = await self.endpoint.run(Cmdlet("Get-Mailbox", (("Identity", identity),)))
                mailbox = found[0] if found and isinstance(found[0], dict) else {}
                if name == "remove-moverequest" and str(mailbox.get("MailboxMoveStatus") or NO_MOVE) == NO_MOVE:
                    continue
                back = str(dict(cmdlet.parameters).get("TargetDatabase") or "")
                if name == "new-moverequest" and str(mailbox.get("Database") or "").casefold() == back.casefold():
                    continue
            await self.endpoint.run(cmdlet)

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
        after = {**_tenant_settings(book), **self._quotas(plan)}
        settings = _set_mailbox(context.new_dn, after)
        return ServiceCopy(steps=(self.cmdlet_step(who, enable, [disable], {}, {"Database": enable.parameters[1][1], "PrimarySmtpAddress": context.email}),
                                  self.cmdlet_step(who, settings, [], {}, after)))


def _tenant_settings(book: dict[str, str]) -> dict[str, Any]:
    """What Set-Mailbox sets for the customer: its address-list value, its ABP and OAB, and
    the e-mail address policy off (a hosted mailbox's addresses are Tenantry's to set)."""
    return {"CustomAttribute1": book["custom_attribute1"] or None, "EmailAddressPolicyEnabled": False,
            "AddressBookPolicy": book["policy"], "OfflineAddressBook": book["oab"] or None}


def _plan_quotas(raw: Any, where: str, plans: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """``plan_quotas`` checked as Exchange would check the sizes: plan → parameter → size."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table of plan = {{ issue_warning, prohibit_send, prohibit_send_receive }}.")
    out: dict[str, dict[str, str]] = {}
    for plan, sizes in raw.items():
        if plans and plan not in plans:
            raise ConfigError(f"{where}: {plain(plan)!r} is not one of the service's plans ({', '.join(plans)}).")
        if not isinstance(sizes, dict) or set(sizes) != set(QUOTAS):
            raise ConfigError(f"{where}.{plain(plan)!r} must give issue_warning, prohibit_send and prohibit_send_receive.")
        limits = []
        for key in QUOTAS:
            value = sizes[key]
            size = _quota_bytes(value) if isinstance(value, str) else -1
            if size == -1 or size is not None and size > MAX_QUOTA:
                raise ConfigError(f"{where}.{plain(plan)!r}.{key} must be a size up to 2TB such as \"2GB\", or \"Unlimited\", "
                                  f"not {plain(repr(value))}.")
            limits.append(size)
        ranked = [float("inf") if x is None else x for x in limits]  # Unlimited is above every size
        if ranked != sorted(ranked):
            raise ConfigError(f"{where}.{plain(plan)!r}: issue_warning ≤ prohibit_send ≤ prohibit_send_receive, as Exchange requires.")
        out[plan] = {QUOTAS[k]: sizes[k].strip() for k in QUOTAS}
    return out


def _quota_bytes(text: str) -> int | None:
    """A size as Exchange parses it (``2GB``, ``1.5 MB``, ``100`` bytes), in bytes; ``None``
    for ``Unlimited``; -1 if it is not a size."""
    if text.strip().casefold() == "unlimited":
        return None
    match = SIZE.match(text)
    if not match:
        return -1
    return int(float(match.group(1)) * UNITS[(match.group(2) or "b").casefold()])


def _set_mailbox(identity: str, values: dict[str, Any]) -> Cmdlet:
    parameters: list[tuple[str, Any]] = [("Identity", identity)]
    for name in CAPTURED:
        if name in values:
            value = values[name]
            parameters.append((name, tuple(value) if isinstance(value, list) else value))
    return Cmdlet("Set-Mailbox", tuple(parameters))
