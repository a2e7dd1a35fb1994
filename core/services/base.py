"""The one protocol every service adapter implements.

An adapter answers, without I/O, whether its service is provisioned for a customer
and for a user (and on which plan), whether it is movable, and which changes a move
(``plan_move``) or a copy into a new user (``plan_copy``) needs: directory attributes (merged by the planner into the user's single
compare-and-swap modify) and extra steps (HTTP calls), each with its undo. Adapters
that talk to an API also ``inspect`` (``inspect_copy``) the remote side during
preflight (read-only) and ``perform``/``undo`` their own steps when the job runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from core.config import LayoutConfig
from core.model import Customer, Service, ServicePlan, User
from core.plan import Problem, Step

Changes = dict[str, tuple[tuple[str, ...], tuple[str, ...]]]  # attribute → (old values, new values)


def changed(old: tuple[str, ...], new: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """An attribute's (old, new) values for a plan, or ``None`` when they are the same."""
    return (tuple(old), tuple(new)) if tuple(old) != tuple(new) else None


@dataclass(frozen=True)
class MoveContext:
    """Everything an adapter may use to plan its part of moving one user."""

    user: User  # freshly read
    source: Customer
    destination: Customer
    new_dn: str
    upn: str
    email: str | None
    sip: str | None
    sam: str
    plan: ServicePlan | None  # the destination plan for this service, if it has plans
    remote: dict[str, Any] = field(default_factory=dict)  # what ``inspect`` found
    with_devices: bool = False  # the operator agreed that the user's devices are left behind (UEM)


@dataclass(frozen=True)
class CopyContext:
    """Everything an adapter may use to plan its part of copying a template user into a
    new user of the same customer (PRODUCT §3)."""

    template: User  # freshly read
    customer: Customer
    new_dn: str
    first: str
    last: str
    display_name: str
    upn: str
    email: str | None
    sip: str | None
    sam: str
    plan: ServicePlan | None  # the plan chosen for this service, if it has plans
    unique: str = ""  # a random token fixed at plan time (e.g. for legacyExchangeDN)
    remote: dict[str, Any] = field(default_factory=dict)  # what ``inspect_copy`` found


@dataclass(frozen=True)
class ServiceMove:
    """An adapter's part of a move or a copy: directory attributes (for a copy, the old
    values are empty: they go into the new user's creation) and its own steps."""

    attributes: Changes = field(default_factory=dict)
    steps: tuple[Step, ...] = ()
    problems: tuple[Problem, ...] = ()


ServiceCopy = ServiceMove


class ServiceAdapter:
    """Base adapter: directory group membership only (the planner swaps the groups)."""

    def __init__(self, service: Service, options: dict[str, Any], layout: LayoutConfig):
        self.service = service
        self.options = options
        self.layout = layout

    @property
    def key(self) -> str:
        return self.service.key

    @property
    def movable(self) -> bool:
        return self.service.movable

    def customer_has(self, customer: Customer) -> bool:
        return self.key in customer.services

    def user_plan(self, user: User) -> ServicePlan | None:
        return next((p for p in user.plans if p.service == self.key), None)

    async def inspect(self, context: MoveContext) -> tuple[dict[str, Any], list[Problem]]:
        """Read the remote side (no writes); returns what the plan needs and any problems."""
        return {}, []

    def plan_move(self, context: MoveContext) -> ServiceMove:
        return ServiceMove()

    async def inspect_copy(self, context: CopyContext) -> tuple[dict[str, Any], list[Problem]]:
        """Read the remote side before a copy (no writes): what the plan needs, and any problems."""
        return {}, []

    def plan_copy(self, context: CopyContext) -> ServiceCopy:
        """A copy of a directory-only service is its group membership, which the planner adds."""
        return ServiceCopy()

    def foreign_call(self, step: Step, customers: Sequence[Customer]) -> str | None:
        """Why the service call ``step`` (as read back from the journal, which may have been
        edited) reaches outside ``customers``, the job's customers: ``None`` if it does not.
        The executor asks before every run, resume and rollback. This adapter makes no calls."""
        return f"is a call of {self.service.display_name}, which makes none"

    def identities(self, step: Step) -> tuple[str, ...]:
        """The directory objects (DN or objectGUID) the service call ``step`` acts on; the
        executor checks each is a user of the job. This adapter makes no calls."""
        return ()

    async def perform(self, step: Step) -> dict[str, Any] | None:
        raise NotImplementedError(f"{self.key} has no steps of its own")

    async def undo(self, step: Step, result: dict[str, Any] | None) -> None:
        raise NotImplementedError(f"{self.key} has no steps of its own")

    async def aclose(self) -> None:
        """Release clients (HTTP adapters)."""
