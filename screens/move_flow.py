"""The move wizard's flow: what the admin entered so far (:class:`MoveDraft`) and the
order of the steps (:class:`MoveFlow`), one screen per step.

Each step screen returns its result with ``dismiss()``: :data:`BACK` for ``esc`` (the
draft keeps what was entered), anything else to go on. The flow runs in a worker and
waits for each screen with ``push_screen_wait``. Every check is the core's preflight:
its problems are routed to the step they belong to (:func:`step_of`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Callable

from rich.text import Text

from core import plan as p
from core.directory.layout import dn_key
from core.execute import CANCELLED
from core.mapping import split_address
from core.model import Customer, User
from core.move import Mapping, MoveRequest, map_user
from core.plan import Plan, Problem, UserChange
from core.text import plain

if TYPE_CHECKING:
    from core.execute import Executor
    from core.session import Session
    from textual.app import App


class WizardStep(IntEnum):
    DESTINATION = 0
    USER = 1
    SERVICES = 2
    REVIEW = 3
    RUN = 4


STEP_NAMES = ("Destination", "User mapping", "Services", "Review", "Run")

# Which step each preflight problem belongs to (an adapter's own codes: the services step).
PROBLEM_STEP = {
    p.NOT_ALLOWED: WizardStep.DESTINATION,
    p.SAME_CUSTOMER: WizardStep.DESTINATION,
    p.CHANGED: WizardStep.DESTINATION,
    p.TENANT: WizardStep.DESTINATION,  # a customer the tenant map lacks, or one claiming another's
    p.COLLISION: WizardStep.USER,
    p.FOREIGN_DOMAIN: WizardStep.USER,
    p.INVALID_VALUE: WizardStep.USER,
    p.UNMOVABLE_SERVICE: WizardStep.SERVICES,
    p.SERVICE_MISSING: WizardStep.SERVICES,
    p.PLAN_MISSING: WizardStep.SERVICES,
}


def step_of(problem: Problem) -> WizardStep:
    return PROBLEM_STEP.get(problem.code, WizardStep.SERVICES)


class _Back:
    def __repr__(self) -> str:
        return "BACK"


BACK: Any = _Back()
"""What a step screen dismisses with on ``esc``."""


@dataclass
class MoveDraft:
    """The move being prepared: the user, the destination, the mapping and plan choices."""

    session: Session
    user: User  # read in full (Directory.user)
    source: Customer
    destination: Customer | None = None
    upn_prefix: str = ""
    upn_domain: str = ""
    email: str | None = None  # None: the user has no mailbox and gets no address
    email_auto: bool = True  # the email follows the UPN's domain until the admin edits it
    plans: dict[str, str] = field(default_factory=dict)  # service key → destination plan
    destination_search: str = ""  # what was typed on the destination step
    _email_local: str = ""
    _checked: tuple[MoveRequest, Plan] | None = None

    @property
    def who(self) -> str:
        return plain(self.user.display_name or self.user.cn)

    def title(self) -> Text:
        """``Move <user> from <source> → <destination>``, as literal text."""
        text = Text.assemble("Move ", (self.who, "bold"), " from ", plain(self.source.name))
        if self.destination is not None:
            text.append(" → ")
            text.append(plain(self.destination.name), style="bold")
        return text

    # -- choices ---------------------------------------------------------------
    def choose_destination(self, customer: Customer) -> None:
        """A new destination resets the mapping and plan choices; the same one keeps them."""
        if self.destination is not None and dn_key(self.destination.dn) == dn_key(customer.dn):
            self.destination = customer
            return
        self.destination = customer
        self.plans = {}
        default = map_user(self.session.config, self.user, customer, MoveRequest(self.user.dn, self.target))
        self.upn_prefix, self.upn_domain = split_address(default.upn)
        self._email_local = split_address(default.email)[0] if default.email else ""
        self.email = default.email
        self.email_auto = True

    def set_upn(self, prefix: str, domain: str) -> None:
        self.upn_prefix, self.upn_domain = prefix.strip(), domain
        if self.email is not None and self.email_auto:
            self.email = f"{self._email_local}@{domain}"

    def set_email(self, value: str) -> None:
        self.email = value.strip()
        self.email_auto = False

    def set_plan(self, service: str, plan: str) -> None:
        self.plans[service] = plan

    # -- what the core sees ---------------------------------------------------------
    @property
    def target(self) -> str:
        """How the destination is named to the core: its default domain (unique), else its name."""
        assert self.destination is not None
        return self.destination.default_domain or self.destination.name

    def request(self) -> MoveRequest:
        return MoveRequest(
            user=self.user.dn,
            destination=self.target,
            upn=f"{self.upn_prefix}@{self.upn_domain}",
            email=self.email,
            plans=dict(self.plans),
        )

    def mapping(self) -> Mapping:
        assert self.destination is not None
        return map_user(self.session.config, self.user, self.destination, self.request())

    async def check(self, *, fresh: bool = False) -> Plan:
        """The core's preflight of the move as entered (cached while nothing changes)."""
        request = self.request()
        if not fresh and self._checked is not None and self._checked[0] == request:
            return self._checked[1]
        session = self.session
        plan = await session.planner().preflight(session.operator, request)
        self._checked = (request, plan)
        return plan

    @property
    def checked(self) -> Plan | None:
        """The last preflight, if it is of the move as entered now."""
        if self._checked is not None and self._checked[0] == self.request():
            return self._checked[1]
        return None


def problems_for(plan: Plan, step: WizardStep) -> list[Problem]:
    return [x for x in plan.problems if step_of(x) == step]


def elsewhere(plan: Plan, step: WizardStep) -> str | None:
    """A note on the problems that belong to other steps (shown there)."""
    counts: dict[WizardStep, int] = {}
    for problem in plan.problems:
        where = step_of(problem)
        if where != step:
            counts[where] = counts.get(where, 0) + 1
    if not counts:
        return None
    parts = [f"{n} on the {STEP_NAMES[s].lower()} step" for s, n in sorted(counts.items())]
    return "Also blocking: " + ", ".join(parts) + "."


@dataclass(frozen=True)
class Outcome:
    """How a run ended: ``done``, ``rolled_back``, ``needs_attention`` or ``refused``."""

    status: str
    message: str
    job: str | None
    change: UserChange | None
    destination: Customer | None

    @property
    def ending(self) -> str:
        """The status, or ``cancelled`` for a job the operator cancelled (rolled back)."""
        return "cancelled" if self.status == "rolled_back" and self.message == CANCELLED else self.status


class MoveFlow:
    """Destination → user mapping → services → review → run → result."""

    def __init__(self, app: App, draft: MoveDraft, executor: Callable[[], Executor], *, debounce: float = 0.15) -> None:
        self.app = app
        self.draft = draft
        self.executor = executor
        self.debounce = debounce  # of searches and live checks as the admin types

    def screen(self, step: WizardStep):
        from screens.move_destination import DestinationStep
        from screens.move_review import ReviewStep
        from screens.move_services import ServicesStep
        from screens.move_user import UserMappingStep

        screens = {
            WizardStep.DESTINATION: DestinationStep,
            WizardStep.USER: UserMappingStep,
            WizardStep.SERVICES: ServicesStep,
            WizardStep.REVIEW: ReviewStep,
        }
        return screens[step](self.draft, debounce=self.debounce)

    async def run(self) -> tuple[str | None, Outcome | None]:
        """Walk the steps; returns what the admin chose on the result screen, and the outcome."""
        from screens.move_result import ResultStep
        from screens.move_run import RunStep

        step = WizardStep.DESTINATION
        while True:
            if step == WizardStep.RUN:
                plan = self.draft.checked
                assert plan is not None and plan.ok
                outcome = await self.app.push_screen_wait(RunStep(self.draft, plan, self.executor))
                action = await self.app.push_screen_wait(ResultStep(self.draft, outcome))
                return action, outcome
            result = await self.app.push_screen_wait(self.screen(step))
            if result is BACK:
                if step == WizardStep.DESTINATION:
                    return None, None
                step = WizardStep(step - 1)
            else:
                step = WizardStep(step + 1)
