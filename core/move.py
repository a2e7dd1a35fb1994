"""Preflight and plan of a move (PRODUCT §2): every problem at once, or the exact steps.

``preflight`` reads the user and both customers fresh, asks each service adapter,
checks rights, mapping, domains and collisions, and returns a :class:`Plan` whose
``problems`` list every refusal, or whose ``steps`` are everything the job will do:
the user's one compare-and-swap modify, its move, role groups to create, membership
changes and the services' HTTP calls.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field, replace

from core import plan as p
from core.config import MAIL_ADAPTERS, SIP_ADAPTERS, Config
from core.directory import Directory
from core.escape import child_dn, rdn_value
from core.directory.layout import dn_key, is_below, same_dn
from core.mapping import Identity, address_problem, mapped_addresses, render, sam_account_name, split_address
from core.model import Customer, Operator, ServicePlan, User
from core.plan import Plan, Problem, Step, UserChange
from core.rights import move_problems, withheld_roles
from core.services.base import MoveContext, ServiceAdapter, ServiceMove
from core.tenants import problems_of
from core.text import plain


@dataclass(frozen=True)
class MoveRequest:
    user: str  # UPN, sAMAccountName or DN
    destination: str  # customer name or domain
    upn: str | None = None
    email: str | None = None
    sam: str | None = None
    plans: dict[str, str] = field(default_factory=dict)  # service key → destination plan name
    with_devices: bool = False  # move a user that has mobile devices (a service says what happens to them)


@dataclass(frozen=True)
class MoveMapping:
    upn: str
    email: str | None
    sip: str | None
    sam: str


def map_user(config: Config, user: User, destination: Customer, request: MoveRequest) -> MoveMapping:
    """The user's new UPN, email, SIP URI and username in ``destination``."""
    formats = config.mapping.formats_for(destination)
    domain = destination.default_domain or ""
    upn_prefix = split_address(user.upn)[0] if user.upn else user.sam
    identity = Identity(first=user.first or "", last=user.last or user.cn, sam=user.sam, upn_prefix=upn_prefix)
    upn = request.upn or render(formats.upn, identity, domain, destination.code)
    kinds = config.kinds(user.services)
    email = None
    if user.email or kinds & MAIL_ADAPTERS:
        email = request.email or render(formats.email, identity, domain, destination.code)
    sip = None
    if kinds & SIP_ADAPTERS or user.sip:
        prefix = split_address(email or upn)[0]
        sip = "sip:" + render(formats.sip, identity, domain, destination.code, email_prefix=prefix)
    sam = request.sam or sam_account_name(render(formats.sam, identity, domain, destination.code)) or user.sam
    return MoveMapping(upn=upn, email=email, sip=sip, sam=sam)


def _role_group_sam(customer: Customer, role: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", role.lower()).strip("-")
    return f"{(customer.code or 'c').lower()}-role-{slug}"[:64]


class MovePlanner:
    def __init__(self, config: Config, directory: Directory, adapters: dict[str, ServiceAdapter], *, readonly: bool = False):
        self.config = config
        self.readonly = readonly
        self.directory = directory
        self.adapters = adapters
        self.layout = directory.layout

    async def preflight(self, operator: Operator, request: MoveRequest) -> Plan:
        user = await self.directory.user(request.user)
        source = await self.directory.customer_at(user.customer_dn)
        destination = await self.directory.customer(request.destination)
        problems: list[Problem] = []
        problems += move_problems(operator, source, destination, readonly_mode=self.readonly)
        problems += problems_of(source, self.config.tenants)
        if dn_key(source.dn) != dn_key(destination.dn):
            problems += problems_of(destination, self.config.tenants)
        if dn_key(source.dn) == dn_key(destination.dn):
            problems.append(Problem(p.SAME_CUSTOMER, f"{plain(user.upn or user.sam)} already belongs to {plain(destination.name)}."))
        plans = self._service_problems(user, destination, request, problems)
        mapping = map_user(self.config, user, destination, request)
        problems += self._mapping_problems(user, source, destination, mapping)
        new_dn = child_dn("CN", user.cn, self.layout.users_dn(destination.dn))
        problems += await self._collisions(user, source, mapping, destination.dn)
        service_moves: dict[str, ServiceMove] = {}
        for key in user.services:
            adapter = self.adapters.get(key)
            if adapter is None or not adapter.movable or not adapter.customer_has(destination):
                continue
            context = MoveContext(user, source, destination, new_dn, mapping.upn, mapping.email, mapping.sip, mapping.sam, plans.get(key),
                                  with_devices=request.with_devices)
            remote, found = await adapter.inspect(context)
            problems += found
            if not found:
                service_moves[key] = adapter.plan_move(replace(context, remote=remote))
                problems += service_moves[key].problems
        change = UserChange(
            user=request.user, dn_before=user.dn, dn_after=new_dn, upn_before=user.upn, upn_after=mapping.upn,
            email_before=user.email, email_after=mapping.email, version=user.version,
        )
        if problems:
            return Plan("move", source.name, destination.name, (change,), (), tuple(replace(x, user=request.user) for x in problems))
        withheld = withheld_roles(operator, destination, user.roles, self.config.layout.role_order)
        leaving = await self._platform_groups_left(user, source, destination)
        steps = self._steps(user, source, destination, mapping, new_dn, service_moves, plans, withheld, leaving)
        left_out = tuple(
            p.LeftOut(request.user, p.NOT_GRANTED, child_dn("CN", role, self.layout.roles_dn(destination.dn)), why)
            for role, why in withheld.items()
        )
        return Plan("move", source.name, destination.name, (change,), tuple(steps), left_out=left_out)

    # -- problems ------------------------------------------------------------
    def _service_problems(self, user: User, destination: Customer, request: MoveRequest, problems: list[Problem]) -> dict[str, ServicePlan | None]:
        chosen: dict[str, ServicePlan | None] = {}
        for key in user.services:
            adapter = self.adapters.get(key)
            name = adapter.service.display_name if adapter else key
            if adapter is None or not adapter.movable:
                problems.append(Problem(p.UNMOVABLE_SERVICE, f"{plain(name)} cannot be moved: deprovision it from {plain(user.upn or user.sam)} first."))
                continue
            if not adapter.customer_has(destination):
                problems.append(Problem(p.SERVICE_MISSING, f"{plain(destination.name)} has no {plain(name)}: provision it there first."))
                continue
            current = adapter.user_plan(user)
            offered = [pl for pl in destination.plans if pl.service == key]
            wanted = request.plans.get(key) or (current.name if current else None)
            if not offered:
                chosen[key] = None
            elif wanted and any(pl.name == wanted for pl in offered):
                chosen[key] = ServicePlan(key, wanted)
            else:
                names = ", ".join(plain(pl.name) for pl in offered)
                problems.append(Problem(p.PLAN_MISSING, f"{plain(destination.name)} has no {plain(name)} plan {plain(wanted or '(none)')!s}; choose one of: {names}."))
        return chosen

    def _mapping_problems(self, user: User, source: Customer, destination: Customer, mapping: MoveMapping) -> list[Problem]:
        problems = []
        for what, value in mapped_addresses(mapping):
            problem = address_problem(value, what)
            if problem:
                problems.append(Problem(p.INVALID_VALUE, problem))
            elif not destination.owns_domain(split_address(value)[1]):
                problems.append(Problem(p.FOREIGN_DOMAIN, f"The {what} {plain(value)} is in a domain {plain(destination.name)} does not own."))
        leaving = self._leaving(source)
        for value in user.proxy_addresses:
            kind, _, address = value.partition(":")
            domain = split_address(address)[1]
            if kind.lower() == "smtp" and domain.casefold() not in leaving and not destination.owns_domain(domain):
                problems.append(Problem(p.FOREIGN_DOMAIN, f"The alias {plain(address)} would stay with the user but {plain(destination.name)} does not own its domain."))
        return problems

    @staticmethod
    def _leaving(source: Customer) -> set[str]:
        """The domains whose addresses leave with the user: the source's, as the tenant map
        assigns them and as its directory entry claims them (stripping more is safe)."""
        return {d.casefold() for d in (*source.domains, *source.claimed_domains)}

    async def _collisions(self, user: User, source: Customer, mapping: MoveMapping, destination_dn: str) -> list[Problem]:
        # the new primary, and every alias that stays with the user (not in the source's domains)
        addresses = [mapping.email] if mapping.email else []
        leaving = self._leaving(source)
        for value in user.proxy_addresses:
            kind, _, address = value.partition(":")
            if kind.lower() == "smtp" and split_address(address)[1].casefold() not in leaving:
                addresses.append(address)
        conflicts = await self.directory.conflicts(
            upn=mapping.upn,
            addresses=addresses,
            sip=mapping.sip,
            sam=mapping.sam if mapping.sam.casefold() != user.sam.casefold() else None,
            cn=(user.cn, self.layout.users_dn(destination_dn)),
            exclude_dn=user.dn,
        )
        labels = {"upn": "UPN", "address": "email address", "sip": "SIP URI", "sam": "username", "cn": "name"}
        return [
            Problem(p.COLLISION, f"The {labels[c.kind]} {plain(c.value)} is already used by {plain(c.dn)}.")
            for c in conflicts
        ]

    # -- steps ---------------------------------------------------------------
    def _steps(
        self,
        user: User,
        source: Customer,
        destination: Customer,
        mapping: MoveMapping,
        new_dn: str,
        service_moves: dict[str, ServiceMove],
        plans: dict[str, ServicePlan | None],
        withheld: dict[str, str],
        leaving: list[str],
    ) -> list[Step]:
        who = user.upn or user.sam
        changes: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        if mapping.upn != user.upn:
            changes["userPrincipalName"] = ((user.upn,) if user.upn else (), (mapping.upn,))
        if mapping.sam != user.sam:
            changes["sAMAccountName"] = ((user.sam,), (mapping.sam,))
        http_steps: list[Step] = []
        for service_move in service_moves.values():
            changes.update(service_move.attributes)
            http_steps.extend(service_move.steps)
        steps: list[Step] = []
        if changes:
            steps.append(Step(who, p.MODIFY, user.dn, {a: list(o) for a, (o, _n) in changes.items()}, {a: list(n) for a, (_o, n) in changes.items()}))
        steps.append(Step(who, p.MOVE, user.dn, user.dn, new_dn))
        steps += self._membership_steps(who, user, source, destination, new_dn, plans, withheld, leaving)
        steps += http_steps
        return steps

    async def _platform_groups_left(self, user: User, source: Customer, destination: Customer) -> list[str]:
        """The user's groups outside every customer that it leaves: none with ``[layout]
        outside_groups = "keep"``, all of them with ``"leave"``."""
        if self.config.layout.outside_groups != "leave":
            return []
        candidates = [g for g in user.groups if not is_below(g, source.dn) and not is_below(g, destination.dn)]
        inside = await asyncio.gather(*(self.directory.inside_a_customer(g) for g in candidates))
        return [g for g, within in zip(candidates, inside) if not within]

    def _membership_steps(
        self, who: str, user: User, source: Customer, destination: Customer, new_dn: str,
        plans: dict[str, ServicePlan | None], withheld: dict[str, str], leaving: list[str],
    ) -> list[Step]:
        """The user joins the destination's service, plan and role groups matching the
        source's (roles only those the operator may grant, created where missing) and
        leaves every group inside the source customer, and the platform-wide ones in
        ``leaving``; groups of other customers stay."""
        layout = self.layout
        add: list[Step] = []
        remove: list[Step] = []
        source_services, source_roles = dn_key(layout.services_dn(source.dn)), dn_key(layout.roles_dn(source.dn))
        # What the destination has was read with it: no lookup per group.
        roles_there = {r.casefold() for r in destination.roles}
        services_there = self._service_groups(destination)
        for group_dn in user.groups:
            parent = dn_key(group_dn)[1:]
            name = rdn_value(group_dn)
            if parent == source_services:
                target_parent = layout.services_dn(destination.dn)
                name = self._destination_group_name(name, plans)
            elif parent == source_roles and name not in withheld:
                target_parent = layout.roles_dn(destination.dn)
            else:
                if is_below(group_dn, source.dn) or any(same_dn(group_dn, g) for g in leaving):
                    remove.append(Step(who, p.REMOVE_MEMBER, group_dn, new_dn, None))
                continue  # a withheld role, another group of the source, a platform-wide one: no counterpart
            remove.append(Step(who, p.REMOVE_MEMBER, group_dn, new_dn, None))
            target = child_dn("CN", name, target_parent)
            if parent == source_roles and name.casefold() not in roles_there:
                add.append(Step(who, p.CREATE_GROUP, target, None, {"sam": _role_group_sam(destination, name), "description": name}))
            elif parent == source_services and name.casefold() not in services_there:
                continue  # a plan group the destination lacks was reported in preflight
            add.append(Step(who, p.ADD_MEMBER, target, None, new_dn))
        return add + remove

    def _service_groups(self, customer: Customer) -> set[str]:
        """The (case-folded) names of the customer's service and plan groups."""
        def display(key: str) -> str:
            adapter = self.adapters.get(key)
            return adapter.service.display_name if adapter else key

        names = {display(key).casefold() for key in customer.services}
        names |= {self.config.layout.plan_group_format.format(service=display(pl.service), plan=pl.name).casefold() for pl in customer.plans}
        return names

    def _destination_group_name(self, group_name: str, plans: dict[str, ServicePlan | None]) -> str:
        """A plan group maps to the chosen destination plan's group; others keep their name."""
        current = self.layout.plan_of_group(group_name)
        chosen = plans.get(current.service) if current else None
        if current is None or chosen is None:
            return group_name
        service = self.adapters[current.service].service
        return self.config.layout.plan_group_format.format(service=service.display_name, plan=chosen.name)
