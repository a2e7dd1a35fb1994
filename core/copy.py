"""Preflight and plan of a copy (PRODUCT §3): a new user made from a template user of
the same customer, every problem at once, or the exact steps.

The new account is created safely, in this order, so that a failure anywhere rolls
back to no account at all (the rollback deletes it, and each service's undo removes
what that service created):

1. ``add_user`` — the account, **disabled** (``userAccountControl`` 514), with its
   names, UPN, username, the attributes copied from the template and the services'
   directory attributes (Exchange's mailbox attributes, OCS's SIP URI);
2. ``set_password`` — the password, given to the executor in memory only (the step
   holds no password: a job resumed after a crash needs it again);
3. ``add_member`` — the template's role groups, the service and plan groups of the
   services copied, and the template's other groups inside the customer;
4. the services' own calls (the mail platform's mailbox, a new BlackBerry UEM user);
5. ``modify`` ``userAccountControl`` 514 → 512 — enabled last, compare-and-swap.

What is copied from the template is the configured list ``[mapping] copy_attributes``
(the common attributes of the organisation: department, company, title, office,
address, manager, …) and ``copy_phone_prefixes`` (a phone number without its last
group of digits); identity attributes — names, UPN, mail, proxy addresses, SID, GUID,
password, home directory — never are (the configuration refuses them). Groups outside
the customer are never copied.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass, field, replace
from typing import Iterable

from core import plan as p
from core.config import MAIL_ADAPTERS, SIP_ADAPTERS, Config
from core.directory import Directory
from core.escape import child_dn, rdn_value
from core.directory.layout import dn_key
from core.mapping import Identity, address_problem, local_part, mapped_addresses, render, sam_account_name, split_address, SAM_MAX
from core.model import Customer, Operator, ServicePlan, User
from core.password import PasswordPolicy, generate_password, password_problems
from core.plan import LeftOut, Plan, Problem, Step, UserChange
from core.rights import copy_problems, withheld_by_joining
from core.services.base import CopyContext, ServiceAdapter, ServiceCopy
from core.tenants import problems_of
from core.text import plain

UAC_NORMAL = "512"
UAC_NORMAL_DISABLED = "514"
CN_MAX = 64
NAME_MAX = 64
DISPLAY_NAME_MAX = 256
_PHONE_PREFIX = re.compile(r"^(.*?\S)[\s./-]+\d+$")


@dataclass(frozen=True)
class CopyRequest:
    template: str  # the template user: UPN, sAMAccountName or DN
    first: str
    last: str
    display_name: str | None = None  # default: "first last"; also the new CN
    username: str | None = None  # the sAMAccountName; default: from the customer's format
    upn: str | None = None  # default: from the customer's format
    email: str | None = None  # default: from the customer's format, when Exchange is copied
    services: tuple[str, ...] | None = None  # service keys to copy; default: all the template's
    plans: dict[str, str] = field(default_factory=dict)  # service key → plan; default: the template's


@dataclass(frozen=True)
class CopyMapping:
    cn: str
    display_name: str
    first: str
    last: str
    upn: str
    email: str | None
    sip: str | None
    sam: str


def phone_prefix(number: str) -> str | None:
    """``"+44 20 7946 0123"`` → ``"+44 20 7946"``: the number without its last group of digits."""
    match = _PHONE_PREFIX.match(number.strip())
    return match[1] if match else None


def _domain(address: str | None, customer: Customer) -> str | None:
    domain = split_address(address)[1] if address and "@" in address else None
    return domain if domain and customer.owns_domain(domain) else None


def map_copy(config: Config, template: User, customer: Customer, request: CopyRequest, services: Iterable[str]) -> CopyMapping:
    """The new user's names, UPN, email, SIP URI and username in ``customer``, with the
    ``services`` (keys) it gets: an email with one of the mail adapters' (any Exchange), a
    SIP URI with one of the SIP adapters' (any OCS/Lync).

    Domains: the template's UPN (email) domain when the customer owns it, else the
    customer's default domain. The username's ``{sam}`` is ``{f}{last}``, with the
    customer-code suffix the template's username carries (``.c0012``), if any.
    """
    kinds = config.kinds(services)
    exchange, ocs = bool(kinds & MAIL_ADAPTERS), bool(kinds & SIP_ADAPTERS)
    formats = config.mapping.formats_for(customer)
    first, last = request.first.strip(), request.last.strip()
    display_name = (request.display_name or f"{first} {last}").strip()
    upn_domain = _domain(template.upn, customer) or customer.default_domain or ""
    mail_domain = _domain(template.email, customer) or upn_domain
    suffix = ""
    code = (customer.code or "").lower()
    if code and template.sam.lower().endswith(f".{code}"):
        suffix = f".{code}"
    base = sam_account_name(local_part(first)[:1] + local_part(last))[: SAM_MAX - len(suffix)]
    base_sam = base + suffix if base else ""  # e.g. a name in a non-Latin script: give a username
    identity = Identity(first=first, last=last, sam=base_sam, upn_prefix=f"{first}.{last}")
    upn = request.upn or render(formats.upn, identity, upn_domain, customer.code)
    email = request.email
    if email is None and exchange:
        email = render(formats.email, identity, mail_domain, customer.code)
    sip = None
    if ocs:
        prefix = split_address(email or upn)[0]
        sip = "sip:" + render(formats.sip, identity, split_address(email or upn)[1] or upn_domain, customer.code, email_prefix=prefix)
    sam = request.username or sam_account_name(render(formats.sam, identity, upn_domain, customer.code)) or base_sam
    return CopyMapping(cn=display_name, display_name=display_name, first=first, last=last, upn=upn, email=email, sip=sip, sam=sam)


def new_account(steps: Iterable[Step]) -> dict[str, list[str]] | None:
    """The attributes the ``add_user`` step of a copy's steps creates the account with."""
    for step in steps:
        if step.action == p.ADD_USER:
            return step.after
    return None


def needs_password(steps: Iterable[Step]) -> bool:
    return any(step.action == p.SET_PASSWORD for step in steps)


def account_password_problems(policy: PasswordPolicy, steps: Iterable[Step], password: str) -> list[Problem]:
    """Why ``password`` cannot be the password of the account the steps create."""
    account = new_account(steps) or {}

    def first(name: str) -> str | None:
        values = account.get(name) or []
        return values[0] if values else None

    upn = first("userPrincipalName")
    return [
        Problem(p.WEAK_PASSWORD, message, upn)
        for message in password_problems(
            password, policy, sam=first("sAMAccountName"), display_name=first("displayName"),
            first=first("givenName"), last=first("sn"),
        )
    ]


class CopyPlanner:
    def __init__(self, config: Config, directory: Directory, adapters: dict[str, ServiceAdapter], *, readonly: bool = False):
        self.config = config
        self.readonly = readonly
        self.directory = directory
        self.adapters = adapters
        self.layout = directory.layout

    # -- passwords ---------------------------------------------------------------------
    async def password_problems(self, plan: Plan, password: str) -> list[Problem]:
        """The domain's policy (read now) applied to ``password`` for the plan's new account."""
        return account_password_problems(await self.directory.password_policy(), plan.steps, password)

    async def generate_password(self, plan: Plan) -> str:
        """A random password the domain's policy accepts for the plan's new account."""
        policy = await self.directory.password_policy()
        account = new_account(plan.steps) or {}
        first = {k: (v[0] if v else None) for k, v in account.items()}
        return generate_password(
            policy, sam=first.get("sAMAccountName"), display_name=first.get("displayName"),
            first=first.get("givenName"), last=first.get("sn"),
        )

    # -- preflight -----------------------------------------------------------------------
    async def preflight(self, operator: Operator, request: CopyRequest, password: str | None = None) -> Plan:
        """Every problem at once, or the steps; ``password`` (if given) is checked against
        the domain's policy here, before anything is written. It is not kept."""
        template = await self.directory.user(request.template)
        customer = await self.directory.customer_at(template.customer_dn)
        who = request.template
        problems: list[Problem] = [*copy_problems(operator, customer, readonly_mode=self.readonly), *problems_of(customer, self.config.tenants)]
        chosen = self._chosen_services(template, request, problems)
        plans = self._plans(template, customer, chosen, request, problems)
        mapping = map_copy(self.config, template, customer, request, chosen)
        problems += self._mapping_problems(customer, mapping)
        users_dn = self.layout.users_dn(customer.dn)
        new_dn = child_dn("CN", mapping.cn, users_dn) if mapping.cn and len(mapping.cn) <= CN_MAX else users_dn
        problems += await self._collisions(mapping, users_dn)
        unique = secrets.token_hex(4)
        copies: dict[str, ServiceCopy] = {}
        for key in chosen:
            adapter = self.adapters.get(key)
            if adapter is None:
                continue  # a service the configuration does not know: its group membership only
            context = CopyContext(
                template, customer, new_dn, mapping.first, mapping.last, mapping.display_name,
                mapping.upn, mapping.email, mapping.sip, mapping.sam, plans.get(key), unique,
            )
            remote, found = await adapter.inspect_copy(context)
            problems += found
            if not found:
                copies[key] = adapter.plan_copy(replace(context, remote=remote))
                problems += copies[key].problems
        change = UserChange(
            user=who, dn_before=template.dn, dn_after=new_dn, upn_before=template.upn, upn_after=mapping.upn,
            email_before=template.email, email_after=mapping.email, version=template.version,
        )
        if not problems:
            groups, left_out = await self._grantable(operator, customer, self._groups(template, customer, chosen, plans))
            steps = await self._steps(template, mapping, new_dn, groups, copies)
            plan = Plan("copy", customer.name, customer.name, (change,), tuple(steps),
                        left_out=tuple(LeftOut(mapping.upn, p.NOT_GRANTED, dn, why) for dn, why in left_out))
            if password is not None:
                problems += await self.password_problems(plan, password)
            if not problems:
                return plan
        return Plan("copy", customer.name, customer.name, (change,), (), tuple(replace(x, user=who) for x in problems))

    # -- problems --------------------------------------------------------------------------
    def _display(self, key: str) -> str:
        adapter = self.adapters.get(key)
        return adapter.service.display_name if adapter else key

    def _chosen_services(self, template: User, request: CopyRequest, problems: list[Problem]) -> tuple[str, ...]:
        if request.services is None:
            return tuple(template.services)
        chosen: list[str] = []
        for key in request.services:
            if key not in template.services:
                has = ", ".join(template.services) or "none"
                problems.append(Problem(p.INVALID_VALUE, f"{plain(template.upn or template.sam)} has no service {plain(key)} to copy (it has: {plain(has)}).",
                                        topic=frozenset({p.SERVICES})))
            elif key not in chosen:
                chosen.append(key)
        return tuple(chosen)

    def _plans(self, template: User, customer: Customer, chosen: tuple[str, ...], request: CopyRequest,
               problems: list[Problem]) -> dict[str, ServicePlan | None]:
        plans: dict[str, ServicePlan | None] = {}
        for key in request.plans:
            if key not in chosen:
                problems.append(Problem(p.INVALID_VALUE, f"A plan is given for {plain(key)}, which is not among the services copied.",
                                        topic=frozenset({p.SERVICES})))
        for key in chosen:
            current = next((pl for pl in template.plans if pl.service == key), None)
            wanted = request.plans.get(key) or (current.name if current else None)
            offered = [pl for pl in customer.plans if pl.service == key]
            if wanted is None:
                plans[key] = None
            elif any(pl.name == wanted for pl in offered):
                plans[key] = ServicePlan(key, wanted)
            else:
                names = ", ".join(plain(pl.name) for pl in offered) or "none"
                problems.append(Problem(p.PLAN_MISSING, f"{plain(customer.name)} has no {plain(self._display(key))} plan {plain(wanted)}; choose one of: {names}."))
        return plans

    def _mapping_problems(self, customer: Customer, mapping: CopyMapping) -> list[Problem]:
        problems: list[Problem] = []
        for what, value, limit in (("first name", mapping.first, NAME_MAX), ("last name", mapping.last, NAME_MAX),
                                   ("display name", mapping.display_name, CN_MAX)):
            if not value:
                problems.append(Problem(p.INVALID_VALUE, f"The {what} is empty."))
            elif plain(value) != value:
                problems.append(Problem(p.INVALID_VALUE, f"The {what} {plain(value)!r} holds control characters."))
            elif len(value) > limit:
                problems.append(Problem(p.INVALID_VALUE, f"The {what} is longer than {limit} characters."))
        for what, value in mapped_addresses(mapping):
            problem = address_problem(value, what)
            if problem:
                problems.append(Problem(p.INVALID_VALUE, plain(problem)))
            elif not customer.owns_domain(split_address(value)[1]):
                problems.append(Problem(p.FOREIGN_DOMAIN, f"The {what} {plain(value)} is in a domain {plain(customer.name)} does not own."))
        sam = mapping.sam
        if not sam:
            problems.append(Problem(p.INVALID_VALUE, "No username can be made from the name: give one (sAMAccountName)."))
        elif sam_account_name(sam) != sam or len(sam) > SAM_MAX:
            problems.append(Problem(p.INVALID_VALUE, f"The username {plain(sam)!r} is not a valid sAMAccountName (at most {SAM_MAX} characters, none of \" / \\ [ ] : ; | = , + * ? < > @ ' or spaces)."))
        return problems

    async def _collisions(self, mapping: CopyMapping, users_dn: str) -> list[Problem]:
        conflicts = await self.directory.conflicts(
            upn=mapping.upn,
            addresses=[mapping.email] if mapping.email else [],
            sip=mapping.sip,
            sam=mapping.sam or None,
            cn=(mapping.cn, users_dn) if mapping.cn and len(mapping.cn) <= CN_MAX else None,
        )
        labels = {"upn": "UPN", "address": "email address", "sip": "SIP URI", "sam": "username", "cn": "name"}
        return [Problem(p.COLLISION, f"The {labels[c.kind]} {plain(c.value)} is already used by {plain(c.dn)}.") for c in conflicts]

    # -- steps -----------------------------------------------------------------------------
    async def copied_attributes(self, template: User) -> dict[str, list[str]]:
        """The template's values of the configured copy lists (phone numbers as prefixes)."""
        settings = self.config.mapping
        names = [*settings.copy_attributes, *settings.copy_phone_prefixes]
        if not names:
            return {}
        current = await self.directory.values(template.dn, names)
        out: dict[str, list[str]] = {}
        for name in settings.copy_attributes:
            if current.get(name):
                out[name] = list(current[name])
        for name in settings.copy_phone_prefixes:
            prefixes = [x for x in (phone_prefix(v) for v in current.get(name) or []) if x]
            if prefixes:
                out[name] = prefixes[:1]
        return out

    async def _steps(
        self,
        template: User,
        mapping: CopyMapping,
        new_dn: str,
        groups: list[str],
        copies: dict[str, ServiceCopy],
    ) -> list[Step]:
        who = mapping.upn
        attributes: dict[str, list[str]] = {
            "cn": [mapping.cn],
            "sAMAccountName": [mapping.sam],
            "userPrincipalName": [mapping.upn],
            "givenName": [mapping.first],
            "sn": [mapping.last],
            "displayName": [mapping.display_name],
            "userAccountControl": [UAC_NORMAL_DISABLED],
        }
        if mapping.email:
            attributes["mail"] = [mapping.email]
        for attribute, values in (await self.copied_attributes(template)).items():
            attributes.setdefault(attribute, values)  # the configuration refuses identity attributes anyway
        http_steps: list[Step] = []
        for service_copy in copies.values():
            for attribute, (_old, new) in service_copy.attributes.items():
                attributes[attribute] = list(new)
            http_steps.extend(service_copy.steps)
        steps = [
            Step(who, p.ADD_USER, new_dn, None, attributes),
            Step(who, p.SET_PASSWORD, new_dn),
        ]
        steps += [Step(who, p.ADD_MEMBER, group, None, new_dn) for group in groups]
        steps += http_steps
        steps.append(Step(who, p.MODIFY, new_dn, {"userAccountControl": [UAC_NORMAL_DISABLED]}, {"userAccountControl": [UAC_NORMAL]}))
        return steps

    async def _grantable(self, operator: Operator, customer: Customer, groups: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
        """The groups the operator may let the new user join, and those left out with why:
        a role above the operator's own, or a group reaching one through nesting (a staff
        group that is a member of Customer Administrator, say)."""
        reasons = await asyncio.gather(*(withheld_by_joining(self.directory, operator, customer, g) for g in groups))
        return [g for g, why in zip(groups, reasons) if why is None], [(g, why) for g, why in zip(groups, reasons) if why is not None]

    def _groups(self, template: User, customer: Customer, chosen: tuple[str, ...], plans: dict[str, ServicePlan | None]) -> list[str]:
        """The groups the new user joins: the template's roles, the service (and chosen
        plan) groups of the services copied, and the template's other groups inside the
        customer. Groups outside the customer are never copied."""
        layout = self.layout
        customer_key = dn_key(customer.dn)
        services_key, roles_key = dn_key(layout.services_dn(customer.dn)), dn_key(layout.roles_dn(customer.dn))
        services_dn = layout.services_dn(customer.dn)
        groups: list[str] = []
        for group_dn in template.groups:
            key = dn_key(group_dn)
            name = rdn_value(group_dn)
            if key[1:] == services_key:
                service = self.config.service_by_name(name)
                if service is not None:
                    if service.key in chosen:
                        groups.append(group_dn)
                elif layout.plan_of_group(name) is None and name in chosen:
                    groups.append(group_dn)  # a service the configuration does not know
                continue  # plan groups: from the chosen plans below
            if key[1:] == roles_key or key[-len(customer_key):] == customer_key:
                groups.append(group_dn)
        for key in chosen:
            chosen_plan = plans.get(key)
            if chosen_plan is not None:
                name = self.config.layout.plan_group_format.format(service=self._display(key), plan=chosen_plan.name)
                groups.append(child_dn("CN", name, services_dn))
        unique: dict[tuple, str] = {}
        for group in groups:
            unique.setdefault(dn_key(group), group)
        return list(unique.values())


__all__ = [
    "CopyMapping", "CopyPlanner", "CopyRequest", "account_password_problems", "map_copy", "needs_password",
    "new_account", "phone_prefix",
]
