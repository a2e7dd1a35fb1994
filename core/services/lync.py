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

Move: preflight reads the user (``Get-CsUser``: it must be enabled for Lync); then
``Set-CsUser -Identity <objectGUID> -SipAddress <new SIP URI>`` (and ``Move-CsUser
-Target <pool>`` when the destination's pool differs), each undone with the values read.
Copy: ``Enable-CsUser -Identity <new DN> -RegistrarPool <pool> -SipAddress <SIP URI>``,
undone by ``Disable-CsUser``.
"""

from __future__ import annotations

from typing import Any

from core.errors import ConfigError, ServiceError
from core.plan import INVALID_VALUE, SERVICE_MISSING, Problem
from core.services.base import CopyContext, MoveContext, ServiceCopy, ServiceMove
from core.services.powershell import Cmdlet, CmdletAdapter, PowerShellEndpoint
from core.tenants import TenantMap
from core.text import plain

LYNC_CONFIGURATION = "Microsoft.PowerShell"


class LyncPowerShellAdapter(CmdletAdapter):
    """Lync/Skype for Business on cmdlets (see the module docstring)."""

    def __init__(self, service, options, layout, *, tenants: TenantMap | None = None, environ=None,
                 endpoint: PowerShellEndpoint | None = None):
        options = {"configuration_name": LYNC_CONFIGURATION, **options}
        super().__init__(service, options, layout, tenants=tenants, environ=environ, endpoint=endpoint)
        pool = options.get("registrar_pool")
        if pool is not None and (not isinstance(pool, str) or not pool.strip()):
            raise ConfigError(f"services.{service.key}.registrar_pool must be a pool's FQDN (a template over {{code}}).")

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
        return {"identity": identity, "sip": user.get("SipAddress"), "pool": user.get("RegistrarPool")}, []

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
        return ServiceMove(steps=tuple(steps))

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
        return ServiceCopy(steps=(self.cmdlet_step(who, enable, [disable], {}, {"RegistrarPool": pool, "SipAddress": context.sip}),))
