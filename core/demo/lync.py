"""The Lync / Skype for Business cmdlets the Tenantry adapter uses, executed as Lync
Server 2010 … Skype for Business Server 2015 does: a session (:class:`LyncRunspace`,
configuration ``Microsoft.PowerShell``, the front end's ``/OcsPowershell`` endpoint) of
the PowerShell remoting server (:mod:`core.demo.powershell`), against a directory over
ldap3 (the Samba test DC in the tests, the in-memory demo directory for ``--demo``).

Registrar pools live where Lync keeps its topology's services, in the configuration
partition (``CN=<pool FQDN>,CN=Pools,CN=RTC Service,CN=Services,CN=Configuration,…``);
a user's home is ``msRTCSIP-PrimaryHomeServer``, a DN of one of them.

``Get-CsUser -Identity``
    DN, GUID, UPN, sAMAccountName, name or SIP address (``sip:…``); only users enabled for
    Lync (a SIP address) are found. Returns SipAddress, Enabled, RegistrarPool.
``Enable-CsUser -Identity -RegistrarPool -SipAddress``
    ``msRTCSIP-PrimaryUserAddress``, ``msRTCSIP-UserEnabled`` TRUE,
    ``msRTCSIP-PrimaryHomeServer`` the pool, ``msRTCSIP-OptionFlags`` 256 (enhanced
    presence, on for every user enabled since Lync 2010).
``Set-CsUser -Identity -SipAddress``
    a new SIP address: ``sip:`` + an address, unique in the forest.
``Move-CsUser -Identity -Target [-Confirm]``
    another registrar pool (the pool must exist).
``Grant-Cs<type> -Identity -PolicyName`` / ``Get-Cs<type> -Identity``
    assigns a per-user policy (``$null``: the global one again) kept in
    ``msRTCSIP-UserPolicies`` as ``<type>=<name>`` (the real values are the policies'
    anchors in the central store); the policy must exist (:attr:`LyncDeployment.policies`).
``Disable-CsUser -Identity [-Confirm]``
    removes every ``msRTCSIP-`` attribute the cmdlets above set, and the hosting pack's
    ``msRTCSIP-TenantId`` / ``msRTCSIP-GroupingID`` (Disable-CsUser removes all of a
    user's Lync attributes).

No cmdlet here sets ``msRTCSIP-TenantId`` or ``msRTCSIP-GroupingID``: in a hosting
deployment the provisioning writes them to the user object after ``Enable-CsUser`` (the
hosting pack's control panels do it with a directory write; Microsoft's guidance for
``msRTCSIP-GroupingID`` is a script populating it), so Tenantry writes them with the
user's directory attributes.

Not modelled: SIP domains the topology
supports, LineURI, the user's data moved with Move-CsUser, policies in the central store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ldap3
from ldap3.utils.conv import escape_filter_chars
from psrpcore.types import ErrorCategory, PSCustomObject

from core.demo.exchange import AdBackend, accept
from core.demo.platform import ENHANCED_PRESENCE, pool_dn, topology_containers
from core.demo.powershell import CmdletError, Runspace

LYNC_ATTRIBUTES = ("cn", "userPrincipalName", "sAMAccountName", "msRTCSIP-PrimaryUserAddress", "msRTCSIP-UserEnabled",
                   "msRTCSIP-PrimaryHomeServer", "msRTCSIP-OptionFlags", "msRTCSIP-UserPolicies")
LYNC_WRITES = ("msRTCSIP-PrimaryUserAddress", "msRTCSIP-UserEnabled", "msRTCSIP-PrimaryHomeServer", "msRTCSIP-OptionFlags",
               "msRTCSIP-UserPolicies", "msRTCSIP-TenantId", "msRTCSIP-GroupingID")
POLICY_TYPES = ("ConferencingPolicy", "ExternalAccessPolicy", "ClientPolicy", "VoicePolicy", "MobilityPolicy", "PresencePolicy",
                "ArchivingPolicy", "PinPolicy", "LocationPolicy", "DialPlan")


@dataclass
class LyncDeployment(AdBackend):
    """The topology's registrar pools in the Samba DC, and the per-user policies defined
    (type → names; the central store is not the directory)."""

    policies: dict[str, set[str]] = field(default_factory=dict)

    def pool_dn(self, fqdn: str) -> str:
        return pool_dn(self.base_dn, fqdn)

    def install(self, pools: tuple[str, ...]) -> None:
        for dn in topology_containers(self.base_dn, pools):
            self.add_container(dn)


class LyncRunspace(Runspace):
    """The front end's ``Microsoft.PowerShell`` session with the Lync module (see the module doc)."""

    configuration = "Microsoft.PowerShell"

    def __init__(self, deployment: LyncDeployment) -> None:
        self.lync = deployment

    def cmdlets(self):
        cmdlets = {"Get-CsUser": self.get_user, "Enable-CsUser": self.enable_user, "Set-CsUser": self.set_user,
                   "Move-CsUser": self.move_user, "Disable-CsUser": self.disable_user}
        for kind in POLICY_TYPES:
            cmdlets[f"Grant-Cs{kind}"] = lambda params, kind=kind: self.grant(kind, params)
            cmdlets[f"Get-Cs{kind}"] = lambda params, kind=kind: self.get_policy(kind, params)
        return cmdlets

    def _policy(self, kind: str, name: Any) -> str:
        known = {n.casefold(): n for n in self.lync.policies.get(kind, ())}
        if str(name).casefold() not in known:
            raise CmdletError(f"Cannot get the {kind} \"{name}\": no such policy exists.", ErrorCategory.ObjectNotFound,
                              "PolicyNotFound")
        return known[str(name).casefold()]

    def get_policy(self, kind: str, params: dict[str, Any]) -> list[Any]:
        params = accept(params, {"Identity"})
        return [PSCustomObject(Identity=f"Tag:{self._policy(kind, params['Identity'])}")]

    def grant(self, kind: str, params: dict[str, Any]) -> list[Any]:
        params = accept(params, {"Identity", "PolicyName"})
        user = self._find(params["Identity"], enabled=True)
        kept = [v for v in user["msRTCSIP-UserPolicies"].values if not str(v).startswith(f"{kind}=")]
        name = params.get("PolicyName")
        self.lync.write(user.entry_dn, {"msRTCSIP-UserPolicies": kept + ([f"{kind}={self._policy(kind, name)}"] if name else [])})
        return []

    def _find(self, identity: Any, *, enabled: bool) -> ldap3.Entry:
        entries = self.lync.find_users(identity, LYNC_ATTRIBUTES, also=("msRTCSIP-PrimaryUserAddress",))
        if enabled:
            entries = [e for e in entries if e["msRTCSIP-PrimaryUserAddress"].value]
        return self.lync.one(identity, entries)

    def _pool(self, fqdn: Any) -> str:
        dn = self.lync.pool_dn(str(fqdn))
        if not fqdn or not self.lync.exists(dn):
            raise CmdletError(f"Cannot find registrar pool \"{fqdn}\" in the topology.", ErrorCategory.ObjectNotFound,
                              "RegistrarPoolNotFound")
        return dn

    def _sip(self, value: Any, own_dn: str) -> str:
        sip = str(value or "")
        scheme, _, address = sip.partition(":")
        if scheme.lower() != "sip" or address.count("@") != 1 or address.startswith("@") or address.endswith("@"):
            raise CmdletError(f"SipAddress \"{sip}\" is not valid: it must be sip:user@domain.", ErrorCategory.InvalidArgument,
                              "InvalidSipAddress")
        with self.lync.lock:
            self.lync.conn.search(self.lync.base_dn, f"(msRTCSIP-PrimaryUserAddress={escape_filter_chars(sip)})", ldap3.SUBTREE,
                                  attributes=["cn"])
            others = [e for e in self.lync.conn.entries if e.entry_dn.lower() != own_dn.lower()]
        if others:
            raise CmdletError(f"SIP address \"{sip}\" is already in use by \"{others[0].cn.value}\".", ErrorCategory.InvalidArgument,
                              "DuplicateSipAddress")
        return sip

    def _user(self, e: ldap3.Entry) -> PSCustomObject:
        home = e["msRTCSIP-PrimaryHomeServer"].value
        granted = dict(str(v).split("=", 1) for v in e["msRTCSIP-UserPolicies"].values)
        return PSCustomObject(Identity=e.entry_dn, DistinguishedName=e.entry_dn, SipAddress=e["msRTCSIP-PrimaryUserAddress"].value,
                              Enabled=str(e["msRTCSIP-UserEnabled"].value).upper() == "TRUE",
                              RegistrarPool=self.lync.name_of(home), UserPrincipalName=e.userPrincipalName.value,
                              **{kind: granted.get(kind) for kind in POLICY_TYPES})

    def get_user(self, params: dict[str, Any]) -> list[Any]:
        params = accept(params, {"Identity"})
        return [self._user(self._find(params["Identity"], enabled=True))]

    def enable_user(self, params: dict[str, Any]) -> list[Any]:
        params = accept(params, {"Identity", "RegistrarPool", "SipAddress"})
        user = self._find(params["Identity"], enabled=False)
        if user["msRTCSIP-PrimaryHomeServer"].value:
            raise CmdletError(f"The user \"{user.cn.value}\" is already enabled for Lync Server.", ErrorCategory.InvalidOperation,
                              "UserAlreadyEnabled")
        pool = self._pool(params.get("RegistrarPool"))
        sip = self._sip(params.get("SipAddress"), user.entry_dn)
        self.lync.write(user.entry_dn, {"msRTCSIP-PrimaryUserAddress": [sip], "msRTCSIP-UserEnabled": ["TRUE"],
                                        "msRTCSIP-PrimaryHomeServer": [pool], "msRTCSIP-OptionFlags": [ENHANCED_PRESENCE]})
        return []

    def set_user(self, params: dict[str, Any]) -> list[Any]:
        params = accept(params, {"Identity", "SipAddress", "Enabled"})
        user = self._find(params["Identity"], enabled=True)
        changes: dict[str, list[Any]] = {}
        if "SipAddress" in params:
            changes["msRTCSIP-PrimaryUserAddress"] = [self._sip(params["SipAddress"], user.entry_dn)]
        if "Enabled" in params:
            changes["msRTCSIP-UserEnabled"] = ["TRUE" if params["Enabled"] else "FALSE"]
        if changes:
            self.lync.write(user.entry_dn, changes)
        return []

    def move_user(self, params: dict[str, Any]) -> list[Any]:
        params = accept(params, {"Identity", "Target", "Confirm"})
        user = self._find(params["Identity"], enabled=True)
        self.lync.write(user.entry_dn, {"msRTCSIP-PrimaryHomeServer": [self._pool(params.get("Target"))]})
        return []

    def disable_user(self, params: dict[str, Any]) -> list[Any]:
        params = accept(params, {"Identity", "Confirm"})
        user = self._find(params["Identity"], enabled=True)
        self.lync.write(user.entry_dn, {name: [] for name in LYNC_WRITES})
        return []

