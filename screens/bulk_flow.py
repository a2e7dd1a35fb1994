"""The bulk move of marked users: what the admin chose (:class:`BulkDraft`) and the
order of the steps (:class:`BulkFlow`): destination → users (each row's new UPN and
email, and its problems) → review → run → result, one screen per step.

Every check is :class:`core.bulk.BulkMove`'s preflight: all rows at once, each row's
problems its own; only the clean rows run, each user its own all-or-nothing job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Callable

from rich.text import Text

from core import plan as p
from core.bulk import DEFAULT_CONCURRENCY, BulkMove, BulkPlan, BulkRow, RowResult
from core.model import Customer, User
from core.move import MoveRequest
from core.plan import Plan, Problem
from core.text import plain
from screens.move_flow import BACK

if TYPE_CHECKING:
    from textual.app import App

    from core.execute import Executor
    from core.session import Session


class BulkStep(IntEnum):
    DESTINATION = 0
    USERS = 1
    REVIEW = 2
    RUN = 3


BULK_STEP_NAMES = ("Destination", "Users", "Review", "Run")


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
    _checked: tuple[str, BulkPlan] | None = field(default=None, repr=False)

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
        """``Move 3 users from <source> → <destination>``, as literal text."""
        text = Text.assemble("Move ", (self.who, "bold"), " from ", plain(self.source.name))
        if self.destination is not None:
            text.append(" → ")
            text.append(plain(self.destination.name), style="bold")
        return text

    def name(self, label: str) -> Text:
        user = self.rows.get(label)
        return Text(plain(user.display_name or user.cn) if user else plain(label), no_wrap=True, overflow="ellipsis")

    # -- choices and checks --------------------------------------------------------------
    def choose_destination(self, customer: Customer) -> None:
        self.destination = customer

    @property
    def target(self) -> str:
        """How the destination is named to the core: its default domain (unique), else its name."""
        assert self.destination is not None
        return self.destination.default_domain or self.destination.name

    def requests(self) -> list[tuple[str, MoveRequest]]:
        return [(label, MoveRequest(user.dn, self.target)) for label, user in self.rows.items()]

    async def check(self, *, fresh: bool = False) -> Plan:
        """Preflight every row (cached per destination unless ``fresh``); returns what
        blocks the destination itself — rights, the users' own customer — as one plan."""
        if fresh or self.bulk is None:
            session = self.session
            mover = BulkMove(session.planner(), session.executor())
            self._checked = (self.target, await mover.preflight(session.operator, self.requests(), concurrency=self.concurrency))
        return self._destination_plan(self.bulk)

    @property
    def bulk(self) -> BulkPlan | None:
        """The last preflight, if it is of the destination chosen now."""
        if self._checked is not None and self.destination is not None and self._checked[0] == self.target:
            return self._checked[1]
        return None

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


class BulkFlow:
    """Destination → users → review → run → result."""

    def __init__(self, app: App, draft: BulkDraft, executor: Callable[[], Executor], *, debounce: float = 0.15) -> None:
        self.app = app
        self.draft = draft
        self.executor = executor
        self.debounce = debounce

    async def run(self) -> BulkOutcome | None:
        """Walk the steps; returns the run's outcome, or ``None`` if the admin backed out."""
        from screens.bulk_run import BulkResultStep, BulkRunStep
        from screens.bulk_steps import BulkDestinationStep, BulkReviewStep, BulkRowsStep

        screens = {BulkStep.DESTINATION: BulkDestinationStep, BulkStep.USERS: BulkRowsStep, BulkStep.REVIEW: BulkReviewStep}
        step = BulkStep.DESTINATION
        while True:
            if step == BulkStep.RUN:
                bulk = self.draft.bulk
                assert bulk is not None and bulk.clean
                outcome = await self.app.push_screen_wait(BulkRunStep(self.draft, bulk, self.executor))
                await self.app.push_screen_wait(BulkResultStep(self.draft, outcome))
                return outcome
            result = await self.app.push_screen_wait(screens[step](self.draft, debounce=self.debounce))
            if result is BACK:
                if step == BulkStep.DESTINATION:
                    return None
                step = BulkStep(step - 1)
            else:
                step = BulkStep(step + 1)
