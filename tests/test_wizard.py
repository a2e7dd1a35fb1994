"""The wizard engine (screens/wizard/): a step is one declaration, problems are routed by
the topic the core gives them (never by their text), and a finished wizard tells the
screen below."""

from __future__ import annotations

import dataclasses

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, Header, Static

from core import plan as p
from core.copy import CopyRequest
from core.demo.directory import open_demo
from core.escape import child_dn
from core.plan import Problem
from core.session import Session
from screens.move_review import ReviewStep
from screens.move_services import ServicesStep
from screens.move_user import UserMappingStep
from screens.wizard.engine import Finished, Go, WizardStep
from screens.wizard.step import StepScreen
from screens.wizards import BULK_MOVE, COPY, MOVE
from console_keys import SIZE, Keys, QuickApp, demo, open_user, settle, shown, state  # noqa: F401
from widgets import ProblemList



# -- routing by topic -----------------------------------------------------------------------

def test_a_problem_goes_to_the_step_that_owns_its_topic_whatever_its_text():
    # The old copy wizard searched the message for "plan" or "service".
    username = Problem(p.INVALID_VALUE, "The username 'planservice' is not a valid sAMAccountName.")
    assert username.topic == {p.IDENTITY}
    assert COPY.names[COPY.step_of(username)] == "New user"
    service = Problem(p.INVALID_VALUE, "Ana has no service xyz to copy.", topic=frozenset({p.SERVICES}))
    assert COPY.names[COPY.step_of(service)] == "Services"
    weak = Problem(p.WEAK_PASSWORD, "The password is too short.")
    assert COPY.names[COPY.step_of(weak)] == "Password"
    # the move: rights and the destination on the first step, identity on the mapping
    assert [MOVE.names[MOVE.step_of(Problem(code, "x"))] for code in (p.NOT_ALLOWED, p.SAME_CUSTOMER, p.CHANGED, p.COLLISION, p.PLAN_MISSING)] \
        == ["Destination", "Destination", "Destination", "User mapping", "Services"]
    # an adapter's own code is about its service
    assert MOVE.names[MOVE.step_of(Problem("uem_refused", "x"))] == "Services"


def test_the_step_names_come_from_the_declarations():
    assert MOVE.names == ("Destination", "User mapping", "Services", "Review", "Run")
    assert COPY.names == ("New user", "Password", "Services", "Review", "Run")
    assert BULK_MOVE.names == ("Destination", "Services", "Users", "Review", "Run")


async def test_the_copy_planner_gives_its_service_problems_the_services_topic(tmp_path):
    directory = await open_demo()
    session = await Session.open(directory, state=tmp_path)
    try:
        customer = await directory.customer("Fabrikam")
        template = next(u for u in await directory.users(customer) if u.display_name == "Ana Hall")
        plan = await session.copier().preflight(
            session.operator, CopyRequest(template.dn, "Plan", "Service", username="planservice", services=("nosuch",)))
        topics = {x.message: x.topic for x in plan.problems}
        assert any("nosuch" in m and t == {p.SERVICES} for m, t in topics.items()), topics
        assert all(COPY.names[COPY.step_of(x)] == "Services" for x in plan.problems if "nosuch" in x.message)
    finally:
        session.journal.close()
        session.audit.close()
        await directory.close()


async def at_ana_hall(pilot) -> Keys:
    """From the start screen to Ana Hall in Fabrikam's users (exchange and OCS): the keys."""
    keys = Keys(pilot)
    await settle(pilot)
    await open_user(keys, "Fabrikam", "Ana Hall")
    return keys


# -- a new step is one declaration -------------------------------------------------------------

class ConfirmStep(StepScreen):
    """A step made up for the test: a sentence, ``enter`` on, ``esc`` back."""

    BINDINGS = [
        Binding("enter", "next", "Next", priority=True, id="test.next"),
        Binding("escape", "back", "Back", id="test.back"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.trail()
        yield Static(Text("Are you sure?"), id="confirm")
        yield ProblemList(id="problems")
        yield Footer()


class Recorder(QuickApp):
    """Keeps every wizard's Finished message that bubbles up from the screen below."""

    finished: list[Finished]

    async def on_wizard_finished(self, message: Finished) -> None:
        self.finished = [*getattr(self, "finished", []), message]
        await super().on_wizard_finished(message)


async def test_a_step_added_by_one_declaration_is_walked_both_ways(demo, monkeypatch):
    steps = list(MOVE.steps)
    steps.insert(3, WizardStep("Confirm", ConfirmStep))  # the one declaration
    monkeypatch.setattr("screens.wizards.MOVE", dataclasses.replace(MOVE, steps=tuple(steps)))
    app = Recorder(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = await at_ana_hall(pilot)
        await keys("m")
        await keys.type("Woodgrove Bank")
        for step in (UserMappingStep, ServicesStep, ConfirmStep):
            await keys("enter")
            assert isinstance(app.screen, step), shown(app)
        assert "4 Confirm" in shown(app) and "Are you sure?" in shown(app)
        await keys("enter")
        assert isinstance(app.screen, ReviewStep)
        await keys("escape")  # back lands on the new step
        assert isinstance(app.screen, ConfirmStep)
        await keys("enter", "enter")  # the review, then run
        await keys("enter")  # done: on to the result
        footer = shown(app).splitlines()[-1]
        assert all(item in footer for item in ("⏎ Move another", "o Open user", "esc Back", "q Quit", "? Help")), footer
        await keys("escape")  # back to the users
        await settle(pilot)
        assert [m.what for m in app.finished] == ["move"] and app.finished[0].outcome.status == "done"
        moved = [u for u in await demo.users(await demo.customer("Woodgrove Bank")) if u.display_name == "Ana Hall"]
        assert moved  # the directory says the move happened


async def test_a_skipped_step_is_skipped_both_ways():
    """A step whose skip rule holds is passed over going on and going back (the bulk move's
    services step when no plan must be chosen); backing out of the first step ends the walk."""
    visited: list[str] = []

    class Shown:  # what a step screen is to the loop: something dismissed with a Go
        def __init__(self, name: str, go: Go) -> None:
            self.name, self.go = name, go

    class Host:  # the app's push_screen_wait, answered at once
        async def push_screen_wait(self, screen: Shown) -> Go:
            visited.append(screen.name)
            return screen.go

    def step(name: str, *answers: Go, skip=None) -> WizardStep:
        given = iter(answers)
        return WizardStep(name, lambda draft, *, place, debounce: Shown(name, next(given)), skip=skip)

    class Draft:
        needs_plans = False

    wizard = dataclasses.replace(BULK_MOVE, steps=(
        step("Destination", Go.NEXT, Go.BACK),
        step("Services", skip=BULK_MOVE.steps[1].skip),  # never shown: nothing to choose
        step("Users", Go.BACK),
    ))
    assert await wizard.walk(Host(), Draft(), lambda: None) is None
    assert visited == ["Destination", "Users", "Destination"]


async def test_a_move_the_console_refuses_at_the_review_leaves_an_audit_row(demo):
    """The review's final check is the core's attempt: a refusal there is audited, as on the
    command line. (The UPN is taken by someone else after the mapping step passed.)"""
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = await at_ana_hall(pilot)
        await keys("m")
        await keys.type("Woodgrove Bank")
        await keys("enter")
        assert isinstance(app.screen, UserMappingStep)
        upn = app.screen.draft.request().upn
        upn_before = app.screen.draft.user.upn
        await keys("enter")
        assert isinstance(app.screen, ServicesStep)
        woodgrove = await demo.customer("Woodgrove Bank")
        await demo.add_user(child_dn("CN", "Squatter", demo.layout.users_dn(woodgrove.dn)),
                            {"cn": "Squatter", "sAMAccountName": "squatter.x", "userPrincipalName": upn})
        await keys("enter")  # this step's check is of the same request: it goes on
        assert isinstance(app.screen, ReviewStep)
        assert "refuses" in shown(app) and "Squatter" in shown(app)
        rows = app.session.audit.entries(search=upn_before)
        assert [(r.action, r.result) for r in rows] == [("move", "refused")]
        assert upn in rows[0].detail
        await keys("enter")  # on a refused review enter says why (it did nothing, silently)
        assert isinstance(app.screen, ReviewStep)
        assert any("The core refuses this move" in n.message for n in app._notifications)
