"""Driving the console with keys in tests: settle after each key, count the keys.

No sleeping, and no counting on the machine being fast: :func:`settle` waits for the
screens' workers (never a wizard's own flow worker, which lives as long as the wizard)
and for every message already posted to the app and the screen to be handled (Textual's
barrier in ``pilot.pause()``); :func:`until` waits for a state the test names. Both give
up only after a generous :data:`PATIENCE`, with a sentence saying what never happened and
the screen as it was — on a loaded machine they wait longer, they do not fail.
"""

from __future__ import annotations

import asyncio
import time
from typing import Callable

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


@pytest.fixture
def in_utc(monkeypatch):
    """Times shown in UTC whatever the machine's zone (snapshots); the zone back after.
    Yields ``monkeypatch`` (undone at the end, before the zone is read again)."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield monkeypatch
    monkeypatch.undo()
    time.tzset()


def snapshot_of(snap_compare, *keys: str, size: tuple[int, int] = SIZE, readonly: bool = False) -> bool:
    """The console on a fresh demo directory, ``size`` cells, after ``keys`` (each one
    settled), compared with its stored snapshot."""

    async def run_before(pilot) -> None:
        await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)

    return snap_compare(QuickApp(open_demo, None, readonly=readonly or None), terminal_size=size, run_before=run_before)


PATIENCE = 120.0  # seconds before a wait gives up (a loaded CI machine is slow, not stuck)


def _give_up(app, what: str) -> None:
    pytest.fail(f"the console never {what} ({PATIENCE:.0f} s); the screen:\n{shown(app)}", pytrace=False)


def _queued(app) -> int:
    """Messages posted to the app, the screen or its widgets and not handled yet."""
    return sum(node.message_queue_size for node in (app, *app.screen.walk_children(with_self=True)))


async def handled(pilot) -> None:
    """Every message posted so far handled, and those their handlers posted in turn: what a
    test waits for before asserting that a key did nothing."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    await pilot.pause()
    while _queued(pilot.app):
        if loop.time() > deadline:
            _give_up(pilot.app, "handled its messages")
        await pilot.pause()


async def settle(pilot, rounds: int = 3) -> None:
    """Wait until no screen worker runs and no message waits, ``rounds`` barriers in a row
    (a worker or message that a handler starts resets the count)."""
    app, quiet = pilot.app, 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    while quiet < rounds:
        busy = [w for w in app.workers if w.group not in FLOWS and not w.is_finished]
        if busy:
            quiet = 0
            left = deadline - loop.time()
            done, pending = await asyncio.wait([asyncio.ensure_future(w.wait()) for w in busy], timeout=max(left, 0))
            for task in done:
                task.exception()  # a worker's failure is the test's to judge, not settle's
            if pending:
                for task in pending:
                    task.cancel()
                _give_up(app, "finished " + ", ".join(sorted({w.name or str(w.group) for w in busy})))
        elif _queued(app):
            quiet = 0
        else:
            quiet += 1
        await pilot.pause()


async def until(pilot, condition: Callable[[], object], what: str = "reached the state the test waits for") -> None:
    """Let the app run until ``condition()`` holds; ``what`` names it if it never does."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + PATIENCE
    while not condition():
        if loop.time() > deadline:
            _give_up(pilot.app, what)
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
