"""The rights matrix of PRODUCT §1/§2, decided in core/ whoever calls it."""

import pytest

from core.model import Customer, Operator, Rights
from core.plan import NOT_ALLOWED
from core.rights import copy_problems, move_problems

R1, R2 = "OU=Reseller One,OU=Hosting,DC=x", "OU=Reseller Two,OU=Hosting,DC=x"
A = Customer("A", f"OU=A,{R1}", reseller="Reseller One", reseller_dn=R1)
B = Customer("B", f"OU=B,{R1}", reseller="Reseller One", reseller_dn=R1)
C = Customer("C", f"OU=C,{R2}", reseller="Reseller Two", reseller_dn=R2)
D = Customer("D", "OU=D,OU=Hosting,DC=x")  # bought from the SP directly


def op(**rights) -> Operator:
    return Operator("Jane", "CN=Jane,OU=Staff,DC=x", "jane@x", Rights(**rights))


SP = op(sp_admin=True)
RESELLER_ONE = op(reseller_dns=frozenset({R1.upper()}))  # DNs compare case-insensitively
USER_ADMIN_A = op(user_admin_customer_dns=frozenset({A.dn}))
READONLY = op(readonly=True)


@pytest.mark.parametrize(
    ("operator", "source", "destination", "allowed"),
    [
        (SP, A, C, True), (SP, D, A, True),
        (RESELLER_ONE, A, B, True), (RESELLER_ONE, A, C, False), (RESELLER_ONE, C, A, False), (RESELLER_ONE, D, A, False),
        (USER_ADMIN_A, A, B, False), (READONLY, A, B, False),
    ],
)
def test_move(operator, source, destination, allowed):
    problems = move_problems(operator, source, destination)
    assert (problems == []) is allowed
    assert all(p.code == NOT_ALLOWED for p in problems)


def test_a_reseller_admin_gets_one_reason_per_customer_outside_their_reseller():
    problems = move_problems(RESELLER_ONE, C, D)
    assert [p.message for p in problems] == [
        "The source customer C is not under a reseller Jane administers.",
        "The destination customer D is not under a reseller Jane administers.",
    ]


@pytest.mark.parametrize(
    ("operator", "customer", "allowed"),
    [(SP, C, True), (RESELLER_ONE, A, True), (RESELLER_ONE, C, False), (USER_ADMIN_A, A, True), (USER_ADMIN_A, B, False), (READONLY, A, False)],
)
def test_copy(operator, customer, allowed):
    assert (copy_problems(operator, customer) == []) is allowed


def test_read_only_mode_refuses_even_the_sp_administrator():
    assert [p.code for p in move_problems(SP, A, B, readonly_mode=True)] == [NOT_ALLOWED]
    assert [p.code for p in copy_problems(SP, A, readonly_mode=True)] == [NOT_ALLOWED]
