"""Who may do what (PRODUCT §1 operators, §2 rule 1), enforced here for every caller.

SP administrators may do everything; a reseller administrator only with customers
under a reseller they administer (both customers, for a move); a customer's user
administrator may copy inside their own customer and never move; a read-only
operator (or a console in read-only mode) may do nothing that writes.
"""

from __future__ import annotations

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
