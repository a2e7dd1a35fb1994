"""The wizard engine: a wizard is data — its steps in order, each with the screen that
shows it, the problem topics it owns and a skip rule — and one loop walks them.

Each step screen dismisses with :class:`Go` (``BACK`` on ``esc``, the draft keeping what
was entered; ``NEXT`` once nothing blocks it). After the last step the wizard's run
screen runs the job and its result screen says how it ended; the wizard then posts
:class:`Finished` to the screen below it.

A preflight problem is shown on the first step that owns one of its topics
(:attr:`core.plan.Problem.topic`, set by the core); the message text is never read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from rich.text import Text
from textual.message import Message
from textual.screen import Screen

from core.plan import Plan, Problem
from widgets import StepTrail

if TYPE_CHECKING:
    from textual.app import App

    from core.execute import Executor
    from core.session import Session


class Go(Enum):
    """What a step screen dismisses with."""

    BACK = "back"
    NEXT = "next"


class Draft(Protocol):
    """What the admin entered so far; the core's preflight of it, cached while it is the same."""

    session: Session

    def title(self) -> Text: ...

    async def check(self, *, fresh: bool = False) -> Plan: ...


K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D", bound=Draft)
ExecutorFactory = Callable[[], "Executor"]


class Preflight(Generic[K, V]):
    """The last preflight and what it was of (a request, a set of them): asked again for
    the same, it is not made again unless ``fresh``."""

    def __init__(self) -> None:
        self._last: tuple[K, V] | None = None

    def of(self, key: K) -> V | None:
        """The last preflight, if it is of ``key``."""
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        return None

    async def get(self, key: K, make: Callable[[], Awaitable[V]], *, fresh: bool = False) -> V:
        cached = None if fresh else self.of(key)
        if cached is not None:
            return cached
        value = await make()
        self._last = (key, value)
        return value


@dataclass(frozen=True)
class WizardStep(Generic[D]):
    """One step: its name in the trail, the screen that shows it (called with the draft,
    ``place=`` and ``debounce=``), the problem topics it shows, and when it is skipped."""

    name: str
    screen: Callable[..., Screen[Go]]
    topics: frozenset[str] = frozenset()
    skip: Callable[[D], bool] | None = None


@dataclass(frozen=True)
class Place:
    """Where a screen is in its wizard: the trail it shows and the problems it owns."""

    wizard: Wizard[Any]
    index: int

    def trail(self, title: Text) -> StepTrail:
        return StepTrail(title, self.wizard.names, self.index)

    def mine(self, plan: Plan) -> list[Problem]:
        return [x for x in plan.problems if self.wizard.step_of(x) == self.index]

    def elsewhere(self, plan: Plan) -> str | None:
        """A note on the problems that belong to other steps (shown there)."""
        counts: dict[int, int] = {}
        for problem in plan.problems:
            where = self.wizard.step_of(problem)
            if where != self.index:
                counts[where] = counts.get(where, 0) + 1
        if not counts:
            return None
        parts = [f"{n} on the {self.wizard.names[s].lower()} step" for s, n in sorted(counts.items())]
        return "Also blocking: " + ", ".join(parts) + "."

    def labelled(self, plan: Plan) -> list[str]:
        """Every problem, each naming the step that shows it (the review's list)."""
        return [f"{x.message} ({self.wizard.names[self.wizard.step_of(x)].lower()} step)" for x in plan.problems]


class Finished(Message, namespace="wizard"):
    """A wizard ended (its job ran): posted to the screen below it, ``on_wizard_finished``."""

    def __init__(self, what: str, draft: Any, outcome: Any, action: str | None) -> None:
        super().__init__()
        self.what = what  # the wizard's noun: "move", "copy", "bulk move"
        self.draft = draft
        self.outcome = outcome  # what the run screen dismissed with
        self.action = action  # what the result screen dismissed with


@dataclass(frozen=True)
class Wizard(Generic[D]):
    """A wizard declared: its steps, then ``run`` (a screen that runs the job and dismisses
    with its outcome) and ``result`` (a screen that shows it and dismisses with what next)."""

    what: str
    steps: tuple[WizardStep[D], ...]
    run: Callable[[D, Place, ExecutorFactory], Screen[Any]]
    result: Callable[[D, Place, Any], Screen[Any]]

    @property
    def names(self) -> tuple[str, ...]:
        return (*(step.name for step in self.steps), "Run")

    def step_of(self, problem: Problem) -> int:
        """The first step that owns one of the problem's topics, else the last step (the review)."""
        for index, step in enumerate(self.steps):
            if step.topics & problem.topic:
                return index
        return len(self.steps) - 1

    def place(self, index: int) -> Place:
        return Place(self, index)

    async def walk(self, app: App[Any], draft: D, executor: ExecutorFactory, *, debounce: float = 0.15) -> Finished | None:
        """Walk the steps, run, show the result; ``None`` if the admin backed out of the first step."""
        index, go = 0, Go.NEXT
        while 0 <= index < len(self.steps):
            step = self.steps[index]
            if step.skip is None or not step.skip(draft):
                go = await app.push_screen_wait(step.screen(draft, place=self.place(index), debounce=debounce))
            index += 1 if go is Go.NEXT else -1
        if index < 0:
            return None
        place = self.place(len(self.steps))
        outcome = await app.push_screen_wait(self.run(draft, place, executor))
        action = await app.push_screen_wait(self.result(draft, place, outcome))
        finished = Finished(self.what, draft, outcome, action)
        app.screen.post_message(finished)
        return finished
