"""The bulk move of marked users: what the admin chose (:class:`BulkDraft`) — the
destination, and the plan there of each service whose plan the destination lacks — and
how the run ended (:class:`BulkOutcome`). The steps are declared in :mod:`screens.wizards`.

Every check is :class:`core.bulk.BulkMove`'s preflight: all rows at once, each row's
problems its own; only the clean rows run, each user its own all-or-nothing job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.text import Text

from core import plan as p
from core.bulk import DEFAULT_CONCURRENCY, BulkMove, BulkPlan, BulkRow, RowResult
from core.directory.layout import dn_key
from core.model import Customer, User
from core.move import MoveRequest
from core.plan import Plan, Problem
from core.text import plain
from screens.move_draft import move_title
from screens.move_services import ServiceRow, service_row
from screens.wizard.engine import Preflight

if TYPE_CHECKING:
    from core.session import Session


PlanKey = tuple[str, "str | None"]  # a service, and the users' plan of it now


@dataclass
class BulkDraft:
    """The bulk move being prepared: the marked users of ``source``, and where they go."""

    session: Session
    users: list[User]  # the marked users, in the order marked
    source: Customer
    concurrency: int = DEFAULT_CONCURRENCY
    destination: Customer | None = None
    destination_search: str = ""  # what was typed on the destination step
    rows: dict[str, User] = field(default_factory=dict)  # row label → user
    plans: dict[PlanKey, str] = field(default_factory=dict)  # (service, plan now) → plan there
    with_devices: bool = False  # users with mobile devices move too (their UEM leaves them behind)
    _preflight: Preflight[list[tuple[str, MoveRequest]], BulkPlan] = field(default_factory=Preflight, repr=False)

    def __post_init__(self) -> None:
        for user in self.users:  # the label names the user to the operator and keys the row
            label = plain(user.upn or user.sam or user.dn)
            while label in self.rows:
                label += "'"
            self.rows[label] = user

    @property
    def who(self) -> str:
        return f"{len(self.users)} users"

    def title(self) -> Text:
        return move_title(self.who, self.source, self.destination)

    def name(self, label: str) -> Text:
        user = self.rows.get(label)
        return Text(plain(user.display_name or user.cn) if user else plain(label), no_wrap=True, overflow="ellipsis")

    # -- choices and checks --------------------------------------------------------------
    def choose_destination(self, customer: Customer) -> None:
        """A new destination resets the plan choices; the same one keeps them."""
        if self.destination is None or dn_key(self.destination.dn) != dn_key(customer.dn):
            self.plans = {}
        self.destination = customer

    def service_rows(self) -> list[tuple[ServiceRow, int]]:
        """Each service of the marked users on each plan, with how many users have it so."""
        assert self.destination is not None
        counts: dict[PlanKey, int] = {}
        rows: dict[PlanKey, ServiceRow] = {}
        for user in self.users:
            for key in user.services:
                row = service_row(self.session, user, self.destination, key)
                rows.setdefault((key, row.current), row)
                counts[key, row.current] = counts.get((key, row.current), 0) + 1
        order = {key: index for index, key in enumerate(dict.fromkeys(key for key, _ in rows))}  # a service's rows together
        return [(rows[plan], counts[plan]) for plan in sorted(rows, key=lambda plan: (order[plan[0]], plan[1] or ""))]

    @property
    def needs_plans(self) -> bool:
        """Whether some user's plan of a service is missing at the destination, which offers others."""
        return any(row.choosable and row.current not in row.offered for row, _ in self.service_rows())

    def set_plan(self, row: ServiceRow, plan: str) -> None:
        """The plan there for the users on ``row``'s plan now."""
        self.plans[row.key, row.current] = plan

    def wanted(self, row: ServiceRow) -> str | None:
        return self.plans.get((row.key, row.current))

    def unchosen(self, row: ServiceRow) -> bool:
        """Whether the users on ``row``'s plan have none there yet (the destination lacks theirs)."""
        return row.choosable and row.chosen(self.wanted(row)) is None

    def without_plan(self) -> int:
        """How many users have a service with no plan there yet."""
        assert self.destination is not None
        return sum(1 for user in self.users
                   if any(self.unchosen(service_row(self.session, user, self.destination, key)) for key in user.services))

    @property
    def target(self) -> str:
        """How the destination is named to the core: its default domain (unique), else its name."""
        assert self.destination is not None
        return self.destination.default_domain or self.destination.name

    def requests(self) -> list[tuple[str, MoveRequest]]:
        """Every row's request, with the plans chosen for its user's services (as ``--plan``)."""
        return [(label, MoveRequest(user.dn, self.target, plans=self._plans_of(user), with_devices=self.with_devices))
                for label, user in self.rows.items()]

    def _plans_of(self, user: User) -> dict[str, str]:
        plans = {}
        for key in user.services:
            adapter = self.session.adapters.get(key)
            current = adapter.user_plan(user) if adapter else None
            chosen = self.plans.get((key, current.name if current else None))
            if chosen:
                plans[key] = chosen
        return plans

    async def check(self, *, fresh: bool = False) -> Plan:
        """Preflight every row (cached per destination and plans unless ``fresh``); returns
        what blocks the destination itself — rights, the users' own customer — as one plan."""
        session, requests = self.session, self.requests()
        mover = BulkMove(session.planner(), session.executor())
        bulk = await self._preflight.get(requests, lambda: mover.preflight(session.operator, requests, concurrency=self.concurrency),
                                         fresh=fresh)
        return self._destination_plan(bulk)

    @property
    def bulk(self) -> BulkPlan | None:
        """The last preflight, if it is of the destination and plans chosen now."""
        return self._preflight.of(self.requests()) if self.destination is not None else None

    def _destination_plan(self, bulk: BulkPlan) -> Plan:
        problems: dict[str, Problem] = {}
        for row in bulk.rows:
            for problem in row.plan.problems:
                if problem.code == p.NOT_ALLOWED:
                    problems.setdefault(problem.message, problem)
                elif problem.code == p.SAME_CUSTOMER:
                    where = plain(self.destination.name if self.destination else "")
                    problems.setdefault(p.SAME_CUSTOMER, Problem(p.SAME_CUSTOMER, f"The marked users already belong to {where}."))
        return Plan("move", self.source.name, self.target, problems=tuple(problems.values()))


def problems_of(row: BulkRow) -> list[str]:
    return [plain(x.message) for x in row.plan.problems]


@dataclass(frozen=True)
class BulkOutcome:
    """How a bulk run ended: every row's result, in the rows' order (refused ones too)."""

    results: tuple[RowResult, ...]
    batch: str
    destination: Customer | None
    cancelled: bool = False
    error: str | None = None

    @property
    def moved(self) -> int:
        return sum(1 for r in self.results if r.status == "done")

    @property
    def ran(self) -> bool:
        """Whether any user's job started (the users screen then reads its rows again)."""
        return any(r.job for r in self.results)
