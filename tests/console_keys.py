"""Driving the console with keys in tests: settle after each key, count the keys.

No sleeping: :func:`settle` waits for the screens' workers (never a wizard's own flow
worker, which lives as long as the wizard) and for the app to be idle.
"""

from __future__ import annotations

import asyncio

import pytest
import pytest_asyncio

from core.demo.directory import open_demo
from screens.users import UsersScreen
from tui.app import TenantryApp
from widgets import ProblemList

SIZE = (80, 24)
FLOWS = {"move-flow", "copy-flow"}  # the wizards' own workers


class QuickApp(TenantryApp):
    """The app with no search or live-check debounce (tests only)."""

    search_debounce = 0


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("TENANTRY_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


@pytest_asyncio.fixture(loop_scope="session")
async def demo():
    directory = await open_demo()  # a fresh one: the tests change it
    yield directory
    await directory.close()


async def settle(pilot, rounds: int = 3) -> None:
    """Wait until no screen worker runs and the app has been idle ``rounds`` times."""
    app, quiet = pilot.app, 0
    while quiet < rounds:
        busy = [w for w in app.workers if w.group not in FLOWS and not w.is_finished]
        if busy:
            quiet = 0
            await asyncio.wait_for(asyncio.gather(*(w.wait() for w in busy), return_exceptions=True), timeout=30)
        else:
            quiet += 1
        await pilot.pause()


class Keys:
    """Presses keys one at a time (settling after each, as a person reading the screen
    would) and counts them."""

    def __init__(self, pilot) -> None:
        self.pilot = pilot
        self.count = 0

    async def __call__(self, *keys: str) -> None:
        for key in keys:
            self.count += 1
            await self.pilot.press(key)
            await settle(self.pilot)

    async def type(self, text: str) -> None:
        await self(*("space" if c == " " else c for c in text))


def problems(app) -> str:
    return app.screen.query_one(ProblemList).render().plain if app.screen.query(ProblemList) else ""


def shown(app) -> str:
    """The whole screen as the terminal shows it, as plain text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def through_the_move(keys: Keys, destination: str) -> None:
    """On the move wizard's destination step: type ``destination``, then ``enter`` through
    the user mapping, services and review steps (each as proposed) and the run; stops on
    the result step once every step is done."""
    from screens.move_result import ResultStep
    from screens.move_review import ReviewStep
    from screens.move_services import ServicesStep
    from screens.move_user import UserMappingStep

    app = keys.pilot.app
    await keys.type(destination)
    for step in (UserMappingStep, ServicesStep, ReviewStep):
        await keys("enter")
        assert isinstance(app.screen, step), problems(app)
    await keys("enter", "enter")  # run, then (done) on to the result
    assert isinstance(app.screen, ResultStep), shown(app)


async def open_user(keys: Keys, customer: str, search: str) -> None:
    """From the customers screen: open ``customer``, search ``search`` in its users."""
    await keys("slash")
    await keys.type(customer)
    await keys("enter", "enter")
    assert isinstance(keys.pilot.app.screen, UsersScreen)
    await keys("slash")
    await keys.type(search)
    await keys("enter")
