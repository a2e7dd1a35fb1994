"""ctrl+c on a running job in the console, driven with keys at 80×24 over a fresh demo
directory: it asks, then the core cancels — the step in flight finishes, the done steps
are undone live in the progress pane — or, answered with esc, the job goes on. Nothing
quits the console mid-job; outside a job ctrl+c quits it (as in a shell, k9s or htop).

The job is held on one step by a ``before_step`` hook waiting on an ``asyncio.Event``
(the app's ``move_executor`` is where tests inject it), so the keys land mid-job.
"""

from __future__ import annotations

import asyncio

from core.demo.directory import open_demo
from core.directory.layout import dn_key
from core.execute import CANCELLED
from move_fixtures import make_user, snapshot
from screens.copy_steps import CopyReviewStep
from screens.move_result import ResultStep
from screens.move_review import ReviewStep
from screens.wizard.run import RunStep
from screens.running_job import CancelJob
from console_keys import SIZE, Keys, QuickApp, demo, handled, open_user, settle, shown, state, until  # noqa: F401
from test_execute_cancel import Hold
from widgets.progress import ProgressPane

HELD = 3  # the step the job is held on: after the attribute swap, the move and a membership


class HeldApp(QuickApp):
    """The console whose jobs stop on ``hold``'s step until the test releases them."""

    def __init__(self, *args, hold: Hold, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.hold = hold

    def move_executor(self, session):
        return session.executor(before_step=self.hold)


async def answer_ctrl_c(pilot, question: str, key: str = "enter") -> None:
    """ctrl+c on the held job's pane; ``question`` asked; answered with ``key``; back on the pane."""
    app, run = pilot.app, pilot.app.screen
    await pilot.press("ctrl+c")
    await until(pilot, lambda: isinstance(app.screen, CancelJob), "asked whether to cancel")
    assert question in shown(app)
    await pilot.press(key)
    await until(pilot, lambda: app.screen is run, "came back to the progress pane")


async def cancel_held(pilot, question: str) -> None:
    """Cancel the held job, then let its step in flight finish and the rollback run."""
    await answer_ctrl_c(pilot, question)
    pilot.app.hold.release.set()
    await settle(pilot)


def footer(app) -> set[tuple[str, str]]:
    return {(b.binding.key, b.binding.description) for b in app.screen.active_bindings.values() if b.binding.show}


def notified(app, text: str) -> bool:
    return any(text in n.message for n in app._notifications)


def log_text(app) -> str:
    return "\n".join(str(line) for line in app.screen.query_one("#progress-log").lines)


async def start_held_move(app, pilot, user) -> Keys:
    """Keys from the start screen to the run of ``user``'s move, held on step HELD."""
    keys = Keys(pilot)
    await settle(pilot)
    await open_user(keys, user.source.name.split()[0].lower(), user.sam)
    await keys("m")
    await keys.type("globex")
    await keys("enter", "enter", "enter")
    assert isinstance(app.screen, ReviewStep)
    await pilot.press("enter")  # run: the job holds on its step, so no settling now
    await asyncio.wait_for(app.hold.reached.wait(), timeout=60)
    assert isinstance(app.screen, RunStep)
    await until(pilot, lambda: app.screen.pane.states[HELD] == "running")
    return keys


async def test_ctrl_c_mid_move_asks_then_rolls_back_live_and_the_directory_is_as_before(demo):
    user = await make_user(demo)
    before = await snapshot(demo, user.source, user.destination)
    app = HeldApp(demo, demo.config, hold=Hold(HELD))
    async with app.run_test(size=SIZE) as pilot:
        keys = await start_held_move(app, pilot, user)
        run = app.screen
        assert ("ctrl+c", "Cancel") in footer(app)  # shown while the job runs

        await answer_ctrl_c(pilot, "Cancel the move and roll back what is done?")
        assert run.pane.cancelled and "Cancelling" in shown(app)
        assert run.pane.states[HELD] == "running"  # the step in flight is not cut

        app.hold.release.set()
        await settle(pilot)
        pane = run.query_one(ProgressPane)
        assert pane.status == "rolled_back"
        assert pane.states == ["undone"] * (HELD + 1) + ["pending"] * (len(pane.states) - HELD - 1)
        text = shown(app)
        assert "Cancelled and rolled back" in text and "↺ undone" in text
        log = log_text(app)
        assert f"rolling back: {CANCELLED}" in log and f"step {HELD + 1} undone" in log and "step 1 undone" in log
        assert ("ctrl+c", "Cancel") not in footer(app)  # the job is over
        await keys("enter")
        assert isinstance(app.screen, ResultStep)
        assert "was cancelled and rolled back: nothing changed" in shown(app)
    assert await snapshot(demo, user.source, user.destination) == before


async def test_ctrl_c_then_esc_keeps_the_job_running_to_the_end_and_nothing_quits_mid_job(demo):
    user = await make_user(demo)
    app = HeldApp(demo, demo.config, hold=Hold(HELD))
    async with app.run_test(size=SIZE) as pilot:
        await start_held_move(app, pilot, user)
        run = app.screen
        await answer_ctrl_c(pilot, "Cancel the move and roll back what is done?", "escape")
        assert not run.pane.cancelled

        for key in ("ctrl+q", "q"):  # quit, quit: refused mid-job, saying why
            app._notifications.clear()
            await pilot.press(key)
            await until(pilot, lambda: notified(app, "running: wait for it to finish"), f"said a job is running after {key}")
            assert app.is_running and app.screen is run, key
        await pilot.press("escape")  # leave: nothing happens mid-job
        await handled(pilot)
        assert app.is_running and app.screen is run

        app.hold.release.set()
        await settle(pilot)
        assert run.pane.status == "done" and set(run.pane.states) == {"done"}
        assert "cancel" not in log_text(app).lower()
        await pilot.press("ctrl+c")  # over: ctrl+c quits (no question: nothing runs)
        await until(pilot, lambda: not app.is_running, "quit on ctrl+c once the job was over")
        assert not isinstance(app.screen, CancelJob)
    moved = await demo.user(f"test.mover{user.number}@{user.destination.default_domain}")
    assert dn_key(moved.dn)[1:] == dn_key(demo.layout.users_dn(user.destination.dn))


async def test_ctrl_c_outside_a_job_quits_the_console_even_from_the_search_box(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, "fabrikam", "")
        await keys("slash")
        await keys.type("an")  # the search box has the focus and text (nothing selected to copy)
        await pilot.press("ctrl+c")
        await until(pilot, lambda: not app.is_running, "quit on ctrl+c")
        assert not notified(app, "to quit the app")  # not Textual 8's hint: it quits


async def test_ctrl_c_mid_copy_rolls_back_to_no_account(demo):
    customer = await demo.customer("Fabrikam")
    app = HeldApp(demo, demo.config, hold=Hold(2))  # the account exists, its password is set
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, "Fabrikam", "Ana Hall")
        await keys("c")
        await keys.type("Ida")
        await keys("tab")
        await keys.type("Moss")
        await keys("enter", "ctrl+g", "enter", "enter")  # a generated password; the template's services
        assert isinstance(app.screen, CopyReviewStep)
        await pilot.press("enter")
        await asyncio.wait_for(app.hold.reached.wait(), timeout=60)
        run = app.screen
        assert [u.display_name for u in await demo.users(customer, search="Ida Moss")] == ["Ida Moss"]  # half made
        await cancel_held(pilot, "Cancel the copy and roll back what is done?")
        assert run.pane.status == "rolled_back" and run.pane.states[:3] == ["undone"] * 3
        await keys("enter")
        assert "was cancelled and rolled back: no account was created" in shown(app)
    assert not await demo.users(customer, search="Ida Moss")


# --- the look: the progress pane after a cancel, the clock and job ids frozen ------------------

def frozen(monkeypatch) -> None:
    """The pane's clock stands still and job ids count from 1: the screen is the same each run."""
    numbers = iter(range(1, 1000))
    monkeypatch.setattr(ProgressPane, "clock", staticmethod(lambda: 0.0))
    monkeypatch.setattr("core.journal._new_job_id", lambda: f"job-{next(numbers)}")


def test_snapshot_of_a_move_cancelled_mid_run(snap_compare, monkeypatch):
    frozen(monkeypatch)
    app = HeldApp(open_demo, None, hold=Hold(HELD))

    async def run_before(pilot) -> None:
        keys = Keys(pilot)
        await settle(pilot)
        await open_user(keys, "Fabrikam", "Ana Hall")
        await keys("m")
        await keys.type("woodgrove b")
        await keys("enter", "enter", "enter")
        await pilot.press("enter")
        await asyncio.wait_for(app.hold.reached.wait(), timeout=60)
        await until(pilot, lambda: isinstance(app.screen, RunStep))
        await cancel_held(pilot, "Cancel the move and roll back what is done?")

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
