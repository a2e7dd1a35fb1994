"""The copy wizard's flow: what the admin entered so far (:class:`CopyDraft`) and the
order of the steps (:class:`CopyFlow`): details → password → services → review → run
→ result. Each step screen dismisses with :data:`~screens.move_flow.BACK` on ``esc``
(the draft keeps what was entered) or with anything else to go on.

The password lives in the draft, in memory only, and goes to the executor as a secret;
it is never logged, notified, journaled or shown (except a generated one, once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from rich.text import Text

from core import plan as p
from core.copy import CopyMapping, CopyRequest, map_copy
from core.mapping import split_address
from core.model import Customer, User
from core.plan import Plan, Problem
from core.text import plain
from screens.move_flow import BACK, Outcome

if TYPE_CHECKING:
    from textual.app import App

    from core.execute import Executor
    from core.session import Session


class CopyStep(IntEnum):
    DETAILS = 0
    PASSWORD = 1
    SERVICES = 2
    REVIEW = 3
    RUN = 4


COPY_STEP_NAMES = ("New user", "Password", "Services", "Review", "Run")

PROBLEM_STEP = {
    p.NOT_ALLOWED: CopyStep.DETAILS,
    p.COLLISION: CopyStep.DETAILS,
    p.FOREIGN_DOMAIN: CopyStep.DETAILS,
    p.INVALID_VALUE: CopyStep.DETAILS,
    p.CHANGED: CopyStep.DETAILS,
    p.TENANT: CopyStep.DETAILS,
    p.WEAK_PASSWORD: CopyStep.PASSWORD,
    p.PLAN_MISSING: CopyStep.SERVICES,
}


def copy_step_of(problem: Problem) -> CopyStep:
    if problem.code == p.INVALID_VALUE and ("service" in problem.message or "plan" in problem.message.lower()):
        return CopyStep.SERVICES
    return PROBLEM_STEP.get(problem.code, CopyStep.SERVICES)


def copy_problems_for(plan: Plan, step: CopyStep) -> list[Problem]:
    return [x for x in plan.problems if copy_step_of(x) == step]


def copy_elsewhere(plan: Plan, step: CopyStep) -> str | None:
    counts: dict[CopyStep, int] = {}
    for problem in plan.problems:
        where = copy_step_of(problem)
        if where != step:
            counts[where] = counts.get(where, 0) + 1
    if not counts:
        return None
    parts = [f"{n} on the {COPY_STEP_NAMES[s].lower()} step" for s, n in sorted(counts.items())]
    return "Also blocking: " + ", ".join(parts) + "."


FIELDS = ("first", "last", "display_name", "username", "upn_prefix", "email")


@dataclass
class CopyDraft:
    """The copy being prepared: the template, the new user's values, password, services."""

    session: Session
    template: User  # read in full (Directory.user)
    customer: Customer
    first: str = ""
    last: str = ""
    display_name: str = ""
    username: str = ""
    upn_prefix: str = ""
    upn_domain: str = ""
    email: str = ""
    edited: set[str] = field(default_factory=set)  # fields the admin typed (no longer proposed)
    services: list[str] = field(default_factory=list)  # the services copied
    plans: dict[str, str] = field(default_factory=dict)  # service key → plan
    password: str = field(default="", repr=False)
    _checked: tuple[CopyRequest, bool, Plan] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.services = list(self.template.services)
        self.plans = {pl.service: pl.name for pl in self.template.plans}
        self.propose()

    @property
    def destination(self) -> Customer:  # what the shared run step reports
        return self.customer

    @property
    def who(self) -> str:
        return plain(self.template.display_name or self.template.cn)

    def title(self) -> Text:
        text = Text.assemble("Copy ", (self.who, "bold"), " in ", plain(self.customer.name))
        name = self.display_name or f"{self.first} {self.last}".strip()
        if name:
            text.append(" → ")
            text.append(plain(name), style="bold")
        return text

    # -- proposals from the customer's formats ---------------------------------------
    def _kinds(self) -> set[str]:
        adapters = self.session.adapters
        return {adapters[k].service.adapter for k in self.services if k in adapters}

    def proposal(self) -> CopyMapping:
        kinds = self._kinds()
        request = CopyRequest(self.template.dn, self.first, self.last)
        return map_copy(self.session.config, self.template, self.customer, request,
                        exchange="exchange" in kinds, ocs="ocs" in kinds)

    def propose(self) -> None:
        """Refresh every field the admin has not typed from the customer's formats."""
        mapping = self.proposal()
        prefix, domain = split_address(mapping.upn) if "@" in (mapping.upn or "") else ("", "")
        proposed = {
            "display_name": mapping.display_name,
            "username": mapping.sam,
            "upn_prefix": prefix,
            "email": mapping.email or "",
        }
        for name, value in proposed.items():
            if name not in self.edited:
                setattr(self, name, value or "")
        if not self.upn_domain:
            self.upn_domain = domain or self.customer.default_domain or ""

    def set(self, name: str, value: str) -> None:
        if getattr(self, name) == value:
            return
        setattr(self, name, value)
        if name not in ("first", "last"):
            self.edited.add(name)
        self.propose()

    def set_domain(self, domain: str) -> None:
        old = self.upn_domain
        self.upn_domain = domain
        if "email" not in self.edited and self.email.endswith("@" + old):
            self.email = self.email[: -len(old)] + domain

    # -- what the core sees -------------------------------------------------------------
    def request(self) -> CopyRequest:
        return CopyRequest(
            template=self.template.dn,
            first=self.first.strip(),
            last=self.last.strip(),
            display_name=self.display_name.strip() or None,
            username=self.username.strip() or None,
            upn=f"{self.upn_prefix.strip()}@{self.upn_domain}" if self.upn_prefix.strip() else None,
            email=self.email.strip() or None,
            services=tuple(self.services),
            plans={k: v for k, v in self.plans.items() if k in self.services},
        )

    async def check(self, *, with_password: bool = False, fresh: bool = False) -> Plan:
        """The core's preflight (with the password against the domain's policy, if asked)."""
        request = self.request()
        if not fresh and self._checked is not None and self._checked[:2] == (request, with_password):
            return self._checked[2]
        session = self.session
        password = self.password if with_password else None
        plan = await session.copier().preflight(session.operator, request, password)
        self._checked = (request, with_password, plan)
        return plan

    @property
    def checked(self) -> Plan | None:
        if self._checked is not None and self._checked[0] == self.request():
            return self._checked[2]
        return None


class WithPassword:
    """An executor whose ``run`` passes the new user's password as a secret (in memory)."""

    def __init__(self, executor: Executor, password: str) -> None:
        self._executor = executor
        self._password = password

    def run(self, plan: Plan, operator: Any):
        return self._executor.run(plan, operator, secrets={"password": self._password})

    def cancel(self) -> None:
        self._executor.cancel()


class CopyFlow:
    """New user → password → services → review → run → result."""

    def __init__(self, app: App, draft: CopyDraft, executor: Callable[[], Executor], *, debounce: float = 0.15) -> None:
        self.app = app
        self.draft = draft
        self.executor = executor
        self.debounce = debounce

    async def run(self) -> tuple[str | None, Outcome | None]:
        from screens.copy_steps import (
            CopyResultStep,
            CopyReviewStep,
            CopyRunStep,
            CopyServicesStep,
            DetailsStep,
            PasswordStep,
        )

        screens = {
            CopyStep.DETAILS: DetailsStep,
            CopyStep.PASSWORD: PasswordStep,
            CopyStep.SERVICES: CopyServicesStep,
            CopyStep.REVIEW: CopyReviewStep,
        }
        step = CopyStep.DETAILS
        while True:
            if step == CopyStep.RUN:
                plan = self.draft.checked
                assert plan is not None and plan.ok
                password = self.draft.password
                outcome = await self.app.push_screen_wait(
                    CopyRunStep(self.draft, plan, lambda password=password: WithPassword(self.executor(), password))  # type: ignore[arg-type]
                )
                self.draft.password = ""  # written (or rolled back): not kept any longer
                action = await self.app.push_screen_wait(CopyResultStep(self.draft, outcome))
                return action, outcome
            result = await self.app.push_screen_wait(screens[step](self.draft, debounce=self.debounce))
            if result is BACK:
                if step == CopyStep.DETAILS:
                    return None, None
                step = CopyStep(step - 1)
            else:
                step = CopyStep(step + 1)
