"""Who may do what (PRODUCT §1 operators, §2 rule 1), enforced here for every caller.

SP administrators may do everything; a reseller administrator only with customers
under a reseller they administer (both customers, for a move); a customer's user
administrator may copy inside their own customer and never move; a read-only
operator (or a console in read-only mode) may do nothing that writes.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from core.escape import rdn_value
from core.directory.layout import dn_key
from core.model import Customer, Operator
from core.plan import NOT_ALLOWED, Problem
from core.text import plain


def _in_reseller_scope(operator: Operator, customer: Customer) -> bool:
    return customer.reseller_dn is not None and dn_key(customer.reseller_dn) in {
        dn_key(dn) for dn in operator.rights.reseller_dns
    }


def _denied(operator: Operator, readonly_mode: bool) -> Problem | None:
    if readonly_mode:
        return Problem(NOT_ALLOWED, "Tenantry runs in read-only mode: nothing can be changed.")
    if operator.rights.readonly:
        return Problem(NOT_ALLOWED, f"{plain(operator.name)} is a read-only operator.")
    return None


def move_problems(operator: Operator, source: Customer, destination: Customer, *, readonly_mode: bool = False) -> list[Problem]:
    """Why ``operator`` may not move a user from ``source`` to ``destination`` (empty: allowed)."""
    denied = _denied(operator, readonly_mode)
    if denied:
        return [denied]
    rights = operator.rights
    if rights.sp_admin:
        return []
    if not rights.reseller_dns:
        return [Problem(NOT_ALLOWED, f"Only service provider or reseller administrators can move users; {plain(operator.name)} is a {rights.summary}.")]
    problems = []
    for role, customer in (("source", source), ("destination", destination)):
        if not _in_reseller_scope(operator, customer):
            problems.append(Problem(
                NOT_ALLOWED,
                f"The {role} customer {plain(customer.name)} is not under a reseller {plain(operator.name)} administers.",
            ))
    return problems


def copy_problems(operator: Operator, customer: Customer, *, readonly_mode: bool = False) -> list[Problem]:
    """Why ``operator`` may not create a user in ``customer`` by copying (empty: allowed)."""
    denied = _denied(operator, readonly_mode)
    if denied:
        return [denied]
    rights = operator.rights
    if rights.sp_admin or _in_reseller_scope(operator, customer):
        return []
    if dn_key(customer.dn) in {dn_key(dn) for dn in rights.user_admin_customer_dns}:
        return []
    return [Problem(NOT_ALLOWED, f"{plain(operator.name)} may not create users in {plain(customer.name)}.")]


def role_rank(role: str, role_order: Sequence[str]) -> int | None:
    """The role's place in ``role_order`` (0 is the highest); ``None`` if it is not listed."""
    folded = role.casefold()
    return next((index for index, name in enumerate(role_order) if name.casefold() == folded), None)


def grants_every_role(operator: Operator, customer: Customer) -> bool:
    """SP administrators, and reseller administrators within their resellers, grant every role."""
    return operator.rights.sp_admin or _in_reseller_scope(operator, customer)


def withheld_roles(operator: Operator, customer: Customer, roles: Iterable[str], role_order: Sequence[str]) -> dict[str, str]:
    """The roles of ``roles`` that ``operator`` may not grant in ``customer``, each with
    the reason in one sentence (empty: every one may be granted).

    SP administrators, and reseller administrators within their resellers, may grant
    every role; anyone else only the roles ranked below their own highest role in that
    customer (``[layout] role_order``, highest first); a role not in the order, only
    the former."""
    rights = operator.rights
    if grants_every_role(operator, customer):
        return {}
    key = dn_key(customer.dn)
    ranks = [role_rank(role, role_order) for dn, role in rights.customer_roles if dn_key(dn) == key]
    own = min((rank for rank in ranks if rank is not None), default=None)
    who = plain(operator.name)
    withheld: dict[str, str] = {}
    for role in roles:
        rank = role_rank(role, role_order)
        if rank is None:
            withheld[role] = f"{who} may not grant {plain(role)}: only service provider and reseller administrators grant roles outside the configured role order."
        elif own is None or rank <= own:
            held = f"their own role is {plain(role_order[own])}" if own is not None else f"they hold no ranked role in {plain(customer.name)}"
            withheld[role] = f"{who} may not grant {plain(role)}: {held}, and only roles below it can be granted."
    return withheld


async def withheld_by_joining(directory: Any, operator: Operator, customer: Customer, group_dn: str) -> str | None:
    """Why joining ``group_dn`` would give a role of ``customer`` that ``operator`` may not
    grant — the group is such a role, or reaches one through nesting (a staff group that
    is a member of Customer Administrator) — in one sentence; ``None`` if it would not.
    ``directory`` answers ``groups_holding`` (a :class:`core.directory.Directory`)."""
    if grants_every_role(operator, customer):
        return None
    roles_dn = directory.layout.roles_dn(customer.dn)
    roles_key = dn_key(roles_dn)
    reached = [group_dn, *await directory.groups_holding(group_dn, roles_dn)]
    roles = [rdn_value(dn) for dn in reached if dn_key(dn)[1:] == roles_key]
    withheld = withheld_roles(operator, customer, roles, directory.config.layout.role_order)
    if not withheld:
        return None
    role, why = next(iter(withheld.items()))
    if dn_key(group_dn)[1:] == roles_key and rdn_value(group_dn) == role:
        return why
    return f"{plain(rdn_value(group_dn))} is a member of the role {plain(role)}: {why}"
