"""Lync / Skype for Business moved and copied through its own cmdlets (``adapter = "lync_powershell"``).

Over PowerShell remoting to the front end's ``https://<pool>/OcsPowershell`` endpoint
(session configuration ``Microsoft.PowerShell``; the endpoint options are those of
:mod:`core.services.powershell`), so the server itself re-homes the user (SIP URI,
registrar pool) rather than a raw directory write.

``registrar_pool``
    The pool (FQDN) a customer's users are homed on: its ``[tenants."…".<key>]`` table,
    else this template over ``{code}``. Needed for a copy (``Enable-CsUser
    -RegistrarPool``: a user with a SIP address but no pool cannot sign in); on a move, a
    destination on another pool adds a ``Move-CsUser`` (none when it is not set).

``policies``
    The per-user policies a customer's users get, type → name template over ``{code}``
    (``policies = { ConferencingPolicy = "{code} Conferencing", ExternalAccessPolicy =
    "{code} External" }``); each is granted with ``Grant-Cs<type>`` and must exist
    (``Get-Cs<type>`` in preflight: a missing one is a problem).

``tenant_id`` / ``grouping_id`` (hosting: ``[tenants."…".<key>]`` only)
    The customer's tenant in a multi-tenant (hosting pack) deployment and its address-book
    grouping (default: the tenant id), GUIDs kept on each user in ``msRTCSIP-TenantId``
    and ``msRTCSIP-GroupingID``. No Lync cmdlet sets them: the hosting pack's provisioning
    writes them to the user object after ``Enable-CsUser`` (and Microsoft's guidance for
    ``msRTCSIP-GroupingID`` is to populate it with a script), so this adapter writes them
    with the user's other directory attributes — in the same compare-and-swap modify of a
    move, in the new account of a copy — and the executor undoes them exactly like them. A
    user carrying a tenant id whose destination has none configured is refused in preflight
    (it would stay in its old tenant).

Move: preflight reads the user (``Get-CsUser``: it must be enabled for Lync); then
``Set-CsUser -Identity <objectGUID> -SipAddress <new SIP URI>`` (and ``Move-CsUser
-Target <pool>`` when the destination's pool differs) and ``Grant-Cs<type> -PolicyName``
for each policy that differs, each undone with the values read. Copy: ``Enable-CsUser
-Identity <new DN> -RegistrarPool <pool> -SipAddress <SIP URI>``, undone by
``Disable-CsUser``, then a grant per policy.
"""

from __future__ import annotations

from typing import Any

from core.errors import ConfigError, ServiceError
from core.model import Customer
from core.plan import INVALID_VALUE, SERVICE_MISSING, Problem, Step
from core.services.base import CopyContext, MoveContext, ServiceCopy, ServiceMove, changed
from core.services.powershell import Cmdlet, CmdletAdapter, PowerShellEndpoint
from core.tenants import GUID, TenantMap
from core.text import plain

LYNC_CONFIGURATION = "Microsoft.PowerShell"
HOSTING = {"tenant_id": "msRTCSIP-TenantId", "grouping_id": "msRTCSIP-GroupingID"}  # setting → user attribute
POLICY_TYPES = frozenset({"ConferencingPolicy", "ExternalAccessPolicy", "ClientPolicy", "VoicePolicy", "MobilityPolicy",
                          "PresencePolicy", "ArchivingPolicy", "PinPolicy", "LocationPolicy", "DialPlan"})


class LyncPowerShellAdapter(CmdletAdapter):
    """Lync/Skype for Business on cmdlets (see the module docstring)."""

    def __init__(self, service, options, layout, *, tenants: TenantMap | None = None, environ=None,
                 endpoint: PowerShellEndpoint | None = None, transport: Any = None):
        options = {"configuration_name": LYNC_CONFIGURATION, **options}
        super().__init__(service, options, layout, tenants=tenants, environ=environ, endpoint=endpoint,
                         transport=transport)
        pool = options.get("registrar_pool")
        if pool is not None and (not isinstance(pool, str) or not pool.strip()):
            raise ConfigError(f"services.{service.key}.registrar_pool must be a pool's FQDN (a template over {{code}}).")
        policies = options.get("policies", {})
        if not isinstance(policies, dict) or not all(isinstance(v, str) and v.strip() for v in policies.values()):
            raise ConfigError(f"services.{service.key}.policies must be a table of policy type = \"name template\".")
        unknown = sorted(set(policies) - POLICY_TYPES)
        if unknown:
            raise ConfigError(f"services.{service.key}.policies: {plain(unknown[0])} is not a policy type "
                              f"(known: {', '.join(sorted(POLICY_TYPES))}).")
        self.policies: dict[str, str] = dict(policies)
        for tenant in self.tenants:
            for name in HOSTING:
                value = (tenant.service(service.key) or {}).get(name)
                if value is not None and not GUID.match(value):
                    raise ConfigError(f'tenants."{tenant.key}".{service.key}.{name} must be a GUID, not {plain(value)!r}.')

    WRITES = frozenset({"set-csuser", "move-csuser", "enable-csuser", "disable-csuser", "grant-cs*"})

    def tenant_values(self, customer: Customer) -> dict[str, set[str]]:
        pool = self.setting("registrar_pool", customer)
        values = {"PolicyName": set(self._policies(customer).values())}
        return {**values, "Target": {pool}, "RegistrarPool": {pool}} if pool else values

    def _hosting(self, customer: Customer) -> dict[str, str]:
        """The hosting attributes a user of ``customer`` carries (none if it has no tenant id)."""
        tenant = self.tenants.for_customer(customer)
        table = (tenant.service(self.key) if tenant else None) or {}
        if not table.get("tenant_id"):
            return {}
        ids = {"tenant_id": table["tenant_id"], "grouping_id": table.get("grouping_id") or table["tenant_id"]}
        return {HOSTING[name]: value.strip("{}").lower() for name, value in ids.items()}

    def _policies(self, customer: Customer) -> dict[str, str]:
        return {kind: str(template).format(code=customer.code or "") for kind, template in self.policies.items()}

    async def _missing_policies(self, customer: Customer, who: str) -> list[Problem]:
        problems = []
        for kind, name in self._policies(customer).items():
            try:
                await self.endpoint.run(Cmdlet(f"Get-Cs{kind}", (("Identity", name),)))
            except ServiceError as error:
                problems.append(Problem(SERVICE_MISSING, f"{self.service.display_name}: the {kind} {name!r} of "
                                                         f"{plain(customer.name)} cannot be used ({error}).", who))
        return problems

    def _grants(self, who: str, identity: str, customer: Customer, current: dict[str, Any]) -> list[Step]:
        steps = []
        for kind, name in self._policies(customer).items():
            old = current.get(kind)
            if (old or "").casefold() != name.casefold():
                steps.append(self.cmdlet_step(
                    who, Cmdlet(f"Grant-Cs{kind}", (("Identity", identity), ("PolicyName", name))),
                    [Cmdlet(f"Grant-Cs{kind}", (("Identity", identity), ("PolicyName", old)))] if current else [],
                    {kind: old}, {kind: name}))
        return steps

    async def inspect(self, context: MoveContext) -> tuple[dict[str, Any], list[Problem]]:
        who = context.user.upn or context.user.sam
        identity = context.user.guid or context.user.dn
        name = self.service.display_name
        try:
            found = await self.endpoint.run(Cmdlet("Get-CsUser", (("Identity", identity),)))
        except ServiceError as error:
            return {}, [Problem(SERVICE_MISSING, f"{name}: the user {plain(who)} cannot be read ({error}).", who)]
        user = found[0] if found else {}
        if not user.get("Enabled"):
            return {}, [Problem(SERVICE_MISSING, f"{name}: {plain(who)} is not enabled for {name}; enable it or remove the service first.", who)]
        policies = {kind: user.get(kind) for kind in self.policies}
        problems = await self._missing_policies(context.destination, who)
        return {"identity": identity, "sip": user.get("SipAddress"), "pool": user.get("RegistrarPool"), "policies": policies}, problems

    async def inspect_copy(self, context: CopyContext) -> tuple[dict[str, Any], list[Problem]]:
        return {}, await self._missing_policies(context.customer, context.upn)

    def plan_move(self, context: MoveContext) -> ServiceMove:
        remote = context.remote
        if not remote or context.sip is None:
            return ServiceMove()
        who = context.user.upn or context.user.sam
        identity = remote["identity"]
        steps = []
        if (remote.get("sip") or "").casefold() != context.sip.casefold():
            steps.append(self.cmdlet_step(
                who, Cmdlet("Set-CsUser", (("Identity", identity), ("SipAddress", context.sip))),
                [Cmdlet("Set-CsUser", (("Identity", identity), ("SipAddress", remote["sip"])))],
                {"SipAddress": remote["sip"]}, {"SipAddress": context.sip}))
        pool = self.setting("registrar_pool", context.destination)
        if pool and remote.get("pool") and pool.casefold() != str(remote["pool"]).casefold():
            steps.append(self.cmdlet_step(
                who, Cmdlet("Move-CsUser", (("Identity", identity), ("Target", pool), ("Confirm", False))),
                [Cmdlet("Move-CsUser", (("Identity", identity), ("Target", remote["pool"]), ("Confirm", False)))],
                {"RegistrarPool": remote["pool"]}, {"RegistrarPool": pool}))
        steps += self._grants(who, identity, context.destination, remote["policies"])
        hosting = self._hosting(context.destination)
        if not hosting and any(context.user.attribute(a) for a in HOSTING.values()):
            problem = Problem(INVALID_VALUE, f"{self.service.display_name}: {plain(who)} belongs to a hosting tenant, and no tenant_id "
                                             f"is configured for {plain(context.destination.name)} ([tenants.\"…\".{self.key}]).", who)
            return ServiceMove(problems=(problem,))
        attributes = {a: change for a, value in hosting.items() if (change := changed(context.user.attribute(a), (value,)))}
        return ServiceMove(attributes=attributes, steps=tuple(steps))

    def plan_copy(self, context: CopyContext) -> ServiceCopy:
        who = context.upn
        name = self.service.display_name
        pool = self.setting("registrar_pool", context.customer)
        if context.sip is None:
            return ServiceCopy(problems=(Problem(INVALID_VALUE, f"{name} needs a SIP URI for {who}.", who),))
        if not pool:
            return ServiceCopy(problems=(Problem(INVALID_VALUE, f"{name}: no registrar pool is configured for {plain(context.customer.name)} "
                                                                f"(services.{self.key}.registrar_pool or its tenant table).", who),))
        enable = Cmdlet("Enable-CsUser", (("Identity", context.new_dn), ("RegistrarPool", pool), ("SipAddress", context.sip)))
        disable = Cmdlet("Disable-CsUser", (("Identity", context.new_dn), ("Confirm", False)))
        steps = [self.cmdlet_step(who, enable, [disable], {}, {"RegistrarPool": pool, "SipAddress": context.sip})]
        steps += self._grants(who, context.new_dn, context.customer, {})  # undone with Disable-CsUser
        attributes = {a: ((), (value,)) for a, value in self._hosting(context.customer).items()}
        return ServiceCopy(attributes=attributes, steps=tuple(steps))
