"""Console tests of the jobs screen (and the help screen), driven with keys only at 80×24.

The unfinished jobs are real: a move (or copy) run by the core's executor whose
``before_step`` hook raises an exception the executor does not catch, part-way — the
journal is then left exactly as a crash leaves it (the job ``running``, the step it was
on ``running``). Resume and rollback are checked in the directory afterwards, on the demo
directory and on the real Samba AD DC (the ``directory`` fixture is parametrised).
"""

from __future__ import annotations

import pytest
from rich.text import Text

from core import journal as journal_module
from core.bulk import BulkMove
from core.copy import CopyRequest
from core.journal import JobStatus, Journal, StepState
from core.move import MoveRequest
from core.plan import SET_PASSWORD
from core.session import Session
from core.text import plain
from screens.audit import AuditScreen
from screens.batch_run import BatchRunScreen
from screens.customers import CustomersScreen
from screens.help import HelpScreen
from screens.job_detail import JobDetailScreen
from screens.job_run import ConfirmJob, JobRunScreen, PasswordDialog
from screens.jobs import JobsScreen, JobTable
from screens.users import UsersScreen
from console_keys import SIZE, Keys, QuickApp, demo, in_utc, open_user, settle, shown, snapshot_of, state  # noqa: F401
from move_fixtures import DESTINATION, make_user, remove_user, snapshot
from test_copy import bind_check, new_password, remove_copy
from widgets.progress import ProgressPane

class Crash(Exception):
    """Not a TenantryError or OSError: the executor lets it through, like a crash."""


def crash_at(index: int):
    async def hook(i, step):
        if i == index:
            raise Crash(f"killed before step {index + 1}")

    return hook


async def interrupted(directory, state, plan, at: int, secrets=None) -> str:
    """Run ``plan`` until step ``at`` starts, then crash: returns the job's id."""
    session = await Session.open(directory, state=state)
    try:
        with pytest.raises(Crash):
            async for _event in session.executor(before_step=crash_at(at)).run(plan, session.operator, secrets=secrets):
                pass
        job = session.journal.jobs(limit=1)[0]
    finally:
        session.journal.close()
        session.audit.close()
    assert job.status is JobStatus.RUNNING and job.steps[at].state is StepState.RUNNING
    assert [s.state for s in job.steps[:at]] == [StepState.DONE] * at
    return job.id


async def interrupted_move(directory, state, user, at: int) -> str:
    session = await Session.open(directory, state=state)
    try:
        plan = await session.planner().preflight(session.operator, MoveRequest(user.upn, DESTINATION))
    finally:
        session.journal.close()
        session.audit.close()
    assert plan.ok, plan.problems
    return await interrupted(directory, state, plan, at)


def journal_job(state, job_id):
    with Journal(state / "journal.sqlite3") as journal:
        return journal.job(job_id)


def footer_keys(app) -> set[str]:
    return {b.binding.key for b in app.screen.active_bindings.values() if b.binding.show}


# --- resume and roll back, on the demo and the real DC ---------------------------------------

async def test_resume_an_interrupted_move_from_the_jobs_screen(directory, state):
    user = await make_user(directory)
    try:
        job_id = await interrupted_move(directory, state, user, at=3)
        assert not await directory.exists(user.dn)  # step 2 moved it: the job is half done
        app = QuickApp(directory, directory.config)
        async with app.run_test(size=SIZE) as pilot:
            keys = Keys(pilot)
            await settle(pilot)
            assert isinstance(app.screen, CustomersScreen)
            await keys("J")
            assert isinstance(app.screen, JobsScreen)
            table = app.screen.query_one(JobTable)
            assert table.row_count == 1 and app.screen.current_job.id == job_id
            assert "running" in shown(app) and {"r", "b"} <= footer_keys(app)
            await keys("r")
            assert isinstance(app.screen, ConfirmJob)
            text = shown(app)
            assert f"Resume job {job_id}?" in text and "3 of 13 steps are done" in text
            assert "Step 4 was interrupted: it runs again" in text
            await keys("enter")
            assert isinstance(app.screen, JobRunScreen)
            pane = app.screen.query_one(ProgressPane)
            assert pane.status == "done" and set(pane.states) == {"done"}
            assert "Resumed: every step of the job is done." in shown(app)
            print(f"\nresume keystrokes from the customers screen: {keys.count} (J, r, enter)")
            assert keys.count == 3
            await keys("enter")
            assert isinstance(app.screen, JobsScreen)
            assert app.screen.current_job.status is JobStatus.DONE and "r" not in footer_keys(app)
        assert journal_job(state, job_id).status is JobStatus.DONE
        moved = await directory.user(user.sam)
        assert "Globex Corporation" in moved.customer_dn
        assert moved.upn.endswith("@" + user.destination.default_domain)
        assert set(moved.roles) == {"Customer Administrator", "Billing Contact"}
        assert set(moved.services) == {"exchange", "ocs"}
    finally:
        await remove_user(directory, user)


async def test_roll_back_from_the_jobs_screen_restores_the_user(directory, state):
    user = await make_user(directory)
    try:
        before = await snapshot(directory, user.source, user.destination)
        job_id = await interrupted_move(directory, state, user, at=5)
        assert await snapshot(directory, user.source, user.destination) != before
        app = QuickApp(directory, directory.config)
        async with app.run_test(size=SIZE) as pilot:
            keys = Keys(pilot)
            await settle(pilot)
            await keys("J", "enter")  # the job's details first: r and b work there too
            assert isinstance(app.screen, JobDetailScreen)
            assert "Steps (5 of 13 done)" in shown(app) and "? interrupted" in shown(app)
            await keys("b")
            assert isinstance(app.screen, ConfirmJob)
            text = shown(app)
            assert "Rolling back undoes the 6 step(s) that may be in effect, last first:" in text
            assert "The 7 step(s) never run stay as they are." in text
            await keys("y")
            pane = app.screen.query_one(ProgressPane)
            assert pane.status == "rolled_back"
            assert pane.states == ["undone"] * 6 + ["pending"] * 7
            assert "Rolled back: every step the job had done is undone." in shown(app)
            await keys("enter")
            assert isinstance(app.screen, JobDetailScreen)  # read again: rolled back, no more keys
            assert "rolled back" in shown(app) and not {"r", "b"} & footer_keys(app)
        assert journal_job(state, job_id).status is JobStatus.ROLLED_BACK
        assert await snapshot(directory, user.source, user.destination) == before
    finally:
        await remove_user(directory, user)


async def recorded_batch(directory, state, users, crash_first_at: int | None = None) -> tuple[str, list[str]]:
    """A bulk move of ``users`` journaled as ``run`` does it, then the process gone before any
    row started — or, with ``crash_first_at``, after the first row ran that far."""
    session = await Session.open(directory, state=state)
    try:
        bulk = BulkMove(session.planner(), session.executor())
        plan = await bulk.preflight(session.operator, [(u.upn, MoveRequest(u.upn, DESTINATION)) for u in users])
        assert plan.ok, [r.plan.problems for r in plan.rows]
        jobs = [row.job for row in await bulk.record(plan, session.operator)]
        if crash_first_at is not None:
            with pytest.raises(Crash):
                async for _event in session.executor(before_step=crash_at(crash_first_at)).resume(jobs[0], session.operator):
                    pass
    finally:
        session.journal.close()
        session.audit.close()
    return plan.batch, jobs


async def test_resume_a_whole_batch_from_its_one_row(directory, state):
    users = [await make_user(directory) for _ in range(3)]
    try:
        batch, jobs = await recorded_batch(directory, state, users, crash_first_at=3)
        app = QuickApp(directory, directory.config)
        async with app.run_test(size=SIZE) as pilot:
            keys = Keys(pilot)
            await settle(pilot)
            await keys("J")
            screen = app.screen
            assert list(screen.jobs) == [f"batch {batch}"] and screen.current_batch.id == batch
            assert "0 of 3 done" in shown(app) and {"r", "b"} <= footer_keys(app)
            await keys("r")
            assert isinstance(app.screen, ConfirmJob)
            text = shown(app)
            assert f"Resume batch {batch}?" in text and "3 rows done (1 running, 2 planned)" in text
            assert "finishes the 3 unfinished row(s)" in text and text.count("planned   ") == 2
            await keys("enter")
            run = app.screen
            assert isinstance(run, BatchRunScreen)
            assert {r.status for r in run.results.values()} == {"done"} and len(run.results) == 3
            assert "Done: 3 of 3 users moved" in shown(app)
            print(f"\nbatch resume keystrokes from the customers screen: {keys.count} (J, r, enter)")
            assert keys.count == 3
            await keys("enter")
            assert app.screen is screen and "3 of 3 done" in shown(app) and "r" not in footer_keys(app)
        for job in jobs:
            assert journal_job(state, job).status is JobStatus.DONE
        for user in users:
            moved = await directory.user(user.sam)
            assert "Globex Corporation" in moved.customer_dn and set(moved.services) == {"exchange", "ocs"}
    finally:
        for user in users:
            await remove_user(directory, user)


async def test_roll_back_a_whole_batch_from_its_one_row(directory, state):
    users = [await make_user(directory) for _ in range(2)]
    try:
        before = await snapshot(directory, users[0].source, users[0].destination)
        batch, jobs = await recorded_batch(directory, state, users, crash_first_at=4)
        assert not await directory.exists(users[0].dn)  # the first row is half done
        app = QuickApp(directory, directory.config)
        async with app.run_test(size=SIZE) as pilot:
            keys = Keys(pilot)
            await settle(pilot)
            await keys("J", "u")  # the unfinished ones: the batch is one
            assert list(app.screen.jobs) == [f"batch {batch}"]
            await keys("b")
            text = shown(app)
            assert f"Roll back batch {batch}?" in text and "undoes the 2 unfinished row(s)" in text
            await keys("enter")
            run = app.screen
            assert isinstance(run, BatchRunScreen) and "ctrl+c" not in {b.binding.key for b in app.screen.active_bindings.values() if b.binding.show}
            assert {r.status for r in run.results.values()} == {"rolled_back"}
            await keys("enter")
            assert "No unfinished job" in shown(app)
        assert {journal_job(state, job).status for job in jobs} == {JobStatus.ROLLED_BACK}
        assert await snapshot(directory, users[0].source, users[0].destination) == before
    finally:
        for user in users:
            await remove_user(directory, user)


async def test_a_copy_job_resumed_asks_for_the_password_again(directory, state, request):
    template = await make_user(directory)
    password = new_password()
    copy_dn = None
    try:
        session = await Session.open(directory, state=state)
        plan = await session.copier().preflight(session.operator, CopyRequest(template.upn, "Resumed", "Copier"), password)
        session.journal.close()
        session.audit.close()
        assert plan.ok, plan.problems
        copy_dn = plan.users[0].dn_after
        at = [s.action for s in plan.steps].index(SET_PASSWORD)
        job_id = await interrupted(directory, state, plan, at, secrets={"password": password})
        assert not (await directory.user(copy_dn)).enabled  # created disabled, no password yet
        app = QuickApp(directory, directory.config)
        async with app.run_test(size=SIZE) as pilot:
            keys = Keys(pilot)
            await settle(pilot)
            await keys("J", "r")
            assert "The new user's password is asked next: it is never kept." in shown(app)
            await keys("enter")
            assert isinstance(app.screen, PasswordDialog)
            assert "Domain policy: at least" in shown(app)
            await keys.type("short")
            await keys("tab")
            await keys.type("short")
            assert "shorter than the domain's minimum" in shown(app)
            await keys("enter")  # refused: the dialog stays
            assert isinstance(app.screen, PasswordDialog)
            await keys("shift+tab", "ctrl+u")
            await keys.type(password)
            assert "The two passwords differ." in shown(app) and password not in shown(app)
            await keys("tab", "ctrl+u")
            await keys.type(password)
            assert "✓ The password meets the domain's policy." in shown(app)
            await keys("enter")
            assert isinstance(app.screen, JobRunScreen)
            assert app.screen.query_one(ProgressPane).status == "done"
        new = await directory.user(copy_dn)
        assert new.enabled and journal_job(state, job_id).status is JobStatus.DONE
        bind_check(request, directory, new.upn, password)
        for path in state.rglob("*"):  # never written down
            assert not path.is_file() or password.encode() not in path.read_bytes(), path
    finally:
        await remove_copy(directory, copy_dn)
        await remove_user(directory, template)


# --- what must not happen ----------------------------------------------------------------------

async def test_esc_on_the_confirmation_or_the_password_changes_nothing(demo, state):
    user = await make_user(demo)
    try:
        job_id = await interrupted_move(demo, state, user, at=2)
        before = await snapshot(demo, user.source, user.destination)
        journaled = journal_job(state, job_id)
        app = QuickApp(demo, demo.config)
        async with app.run_test(size=SIZE) as pilot:
            keys = Keys(pilot)
            await settle(pilot)
            await keys("J", "r")
            assert isinstance(app.screen, ConfirmJob)
            await keys("escape")
            assert isinstance(app.screen, JobsScreen)
            await keys("b")
            assert isinstance(app.screen, ConfirmJob)
            await keys("n")
            assert isinstance(app.screen, JobsScreen)
        assert journal_job(state, job_id) == journaled
        assert await snapshot(demo, user.source, user.destination) == before
    finally:
        await remove_user(demo, user)


async def test_read_only_hides_resume_and_roll_back(demo, state):
    user = await make_user(demo)
    try:
        job_id = await interrupted_move(demo, state, user, at=2)
        journaled = journal_job(state, job_id)
        app = QuickApp(demo, demo.config, readonly=True)
        async with app.run_test(size=SIZE) as pilot:
            keys = Keys(pilot)
            await settle(pilot)
            await keys("J")
            assert isinstance(app.screen, JobsScreen) and app.screen.current_job.id == job_id
            assert not {"r", "b"} & footer_keys(app) and {"enter", "u", "escape"} <= footer_keys(app)
            await keys("r", "b")
            assert isinstance(app.screen, JobsScreen)
            await keys("enter")
            assert isinstance(app.screen, JobDetailScreen) and not {"r", "b"} & footer_keys(app)
            await keys("r", "b")
            assert isinstance(app.screen, JobDetailScreen)
        assert journal_job(state, job_id) == journaled
    finally:
        await remove_user(demo, user)


def test_the_core_says_which_jobs_resume_and_which_roll_back(tmp_path):
    steps = [{"user": "u", "action": "modify", "target": f"CN=x{i}"} for i in range(3)]
    with Journal(tmp_path / "journal.sqlite3") as journal:
        def job(status_path):
            job_id = journal.create_job("move", "op", "op@x", ["u"], ["A", "B"], steps)
            for call in status_path:
                call(job_id)
            return journal.job(job_id)

        planned = job([])
        running = job([lambda j: journal.set_status(j, JobStatus.RUNNING), lambda j: journal.step_starting(j, 0, {})])
        half_undone = job([
            lambda j: journal.set_status(j, JobStatus.RUNNING),
            lambda j: journal.step_starting(j, 0, {}), lambda j: journal.step_done(j, 0),
            lambda j: journal.step_starting(j, 1, {}), lambda j: journal.step_done(j, 1),
            lambda j: journal.set_status(j, JobStatus.ROLLING_BACK),
            lambda j: journal.undo_starting(j, 1), lambda j: journal.undo_failed(j, 1, "no"),
            lambda j: journal.undo_starting(j, 0), lambda j: journal.undo_done(j, 0),
            lambda j: journal.set_status(j, JobStatus.NEEDS_ATTENTION, "undo incomplete"),
        ])
    assert (planned.can_resume, planned.can_roll_back) == (True, False)  # nothing ran: nothing to undo
    assert (running.can_resume, running.can_roll_back) == (True, True)
    assert (half_undone.can_resume, half_undone.can_roll_back) == (False, True)  # a rollback cannot run forward
    assert half_undone.batch is None


# --- the list ----------------------------------------------------------------------------------

HOSTILE = ["[@click=app.quit]x[/]", "[/foo] Closer", "\x1b[31mRoot\x1b[0m Kit"]


def fill_journal(state, *, fixed_times: bool = False, monkeypatch=None) -> list[str]:
    """Five jobs: two done (one of them a batch's), one rolled back, one running with a
    hostile user, one copy planned; with ``fixed_times`` their ids and times are fixed."""
    if fixed_times:
        clock = iter(f"2025-03-{day:02d}T{hour:02d}:{minute:02d}:00.000000+00:00"
                     for day in range(10, 20) for hour in (8, 14) for minute in (5, 47))
        ids = iter(f"202503{n:02d}-0900{n:02d}-{tail}" for n, tail in enumerate(["a1f3", "b7c2", "c0d9", "d4e8", "e5f6"], 10))
        monkeypatch.setattr(journal_module, "_now", lambda: next(clock))
        monkeypatch.setattr(journal_module, "_new_job_id", lambda: next(ids))
    step = [
        {"user": "u", "action": "modify", "target": "CN=U,OU=Users,OU=A", "before": {"title": ["Clerk"]}, "after": {"title": ["Lead"]}},
        {"user": "u", "action": "move", "target": "CN=U,OU=Users,OU=A", "after": "CN=U,OU=Users,OU=B"},
    ]
    made = []
    with Journal(state / "journal.sqlite3") as journal:
        def add(kind, users, customers, meta=None):
            made.append(journal.create_job(kind, "Service Provider Admin", "sp-admin@example.net", users, customers, step, meta))
            return made[-1]

        for batch_row, upn in enumerate(["ana.hall@fabrikam.example", "jan.green@fabrikam.example"], 1):
            job = add("move", [upn], ["Fabrikam", "Woodgrove Bank"], {"batch": "3fa9c2e1d0b4", "row": f"#{batch_row} {upn}"})
            journal.set_status(job, JobStatus.RUNNING)
            for index in range(2):
                journal.step_starting(job, index, {})
                journal.step_done(job, index)
            journal.set_status(job, JobStatus.DONE)
        job = add("move", ["bo.lind@contoso.example"], ["Contoso Pharmaceuticals", "Fabrikam"])
        journal.set_status(job, JobStatus.RUNNING)
        journal.step_starting(job, 0, {})
        journal.step_failed(job, 0, "The domain controller refused the change.")
        journal.set_status(job, JobStatus.ROLLED_BACK, "The domain controller refused the change.")
        job = add("move", HOSTILE, ["[@click=app.quit]x[/]", "[/foo] Holdings"])
        journal.set_status(job, JobStatus.RUNNING)
        journal.step_starting(job, 0, {})
        journal.step_done(job, 0)
        journal.step_starting(job, 1, {})
        add("copy", ["zoe.quinn@fabrikam.example"], ["Fabrikam"])
    return made


async def test_the_list_newest_first_filtered_with_batches_and_hostile_names(demo, state):
    made = fill_journal(state)
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        await keys("J")
        screen = app.screen
        batch = "batch 3fa9c2e1d0b4"  # the two rows of the bulk job: one row, where its newest was
        assert list(screen.jobs) == [made[4], made[3], made[2], batch] and "4 jobs" in shown(app)
        table = screen.query_one(JobTable)
        users = table.get_cell(made[3], "users")
        assert isinstance(users, Text) and users.plain == plain(", ".join(HOSTILE)) and not users.spans
        assert "\x1b" not in shown(app)
        await keys("down")  # the running job with the hostile names: its summary, its keys
        assert screen.current_job.id == made[3] and {"r", "b"} <= footer_keys(app)
        await keys("down", "down")  # the batch
        assert screen.current_job is None and screen.current_batch.id == "3fa9c2e1d0b4"
        assert table.get_cell(batch, "status").plain == "2 of 2 done"
        assert "Batch 3fa9c2e1d0b4  ·  done: 2 done" in shown(app)
        assert not {"r", "b"} & footer_keys(app)  # done: nothing to resume or roll back
        await keys("enter")  # its rows, each a job
        rows = app.screen
        assert isinstance(rows, JobsScreen) and rows.batch == "3fa9c2e1d0b4" and list(rows.jobs) == made[:2]
        assert "Rows of batch 3fa9c2e1d0b4" in shown(app) and "2 rows" in shown(app)
        assert "2/2 steps done  ·  batch 3fa9c2e1d0b4, row #1" in shown(app)
        await keys("enter")
        assert isinstance(app.screen, JobDetailScreen) and app.screen.job.id == made[0]
        await keys("escape", "escape")
        assert app.screen is screen
        await keys("u")
        assert list(screen.jobs) == [made[4], made[3]] and "2 unfinished jobs" in shown(app)
        await keys("enter")  # the planned copy: resume only (nothing ran, nothing to undo)
        assert isinstance(app.screen, JobDetailScreen) and "r" in footer_keys(app) and "b" not in footer_keys(app)
        await keys("escape", "down", "enter")
        text = shown(app)
        assert "[@click=app.quit]x[/]" in text and "[/foo] Closer" in text and "Root" in text
        assert app.is_running


# --- keys: the footer at 80 columns, and help -------------------------------------------------

async def test_J_and_A_fit_the_footers_that_have_room_and_help_lists_them_everywhere(demo):
    app = QuickApp(demo, demo.config)
    async with app.run_test(size=SIZE) as pilot:
        keys = Keys(pilot)
        await settle(pilot)
        assert "J Jobs  A Audit" in shown(app).splitlines()[-1]
        await open_user(keys, "Fabrikam", "Ana Hall")
        footer = shown(app).splitlines()[-1]
        for item in ("⏎ Open", "space Mark", "/ Search", "m Move", "c Copy", "esc Back", "q Quit", "? Help", "^p palette"):
            assert item in footer  # the users screen's keys, none cut off
        assert not {"J", "A"} & footer_keys(app)  # no room: listed by ? instead ...
        await keys("question_mark")
        assert isinstance(app.screen, HelpScreen)
        text = shown(app)
        assert "Keys — Users" in text
        assert text.index("On this screen") < text.index("Everywhere")
        await keys("end")  # scrollable
        text += shown(app)
        for line in ("⏎  Open", "space  Mark", "/  Search", "m  Move", "c  Copy", "esc  Back",
                     "q  Quit", "?  Help", "J  Jobs", "A  Audit", "↓  Cursor down", "j  Down", "k  Up", "g  First row", "G  Last row"):
            assert line in text, line
        await keys("q")  # closes help, does not quit
        assert app.is_running and isinstance(app.screen, UsersScreen)
        await keys("J")  # ... and the key works there all the same
        assert isinstance(app.screen, JobsScreen)
        await keys("question_mark")
        assert "u  Unfinished" in shown(app) and "A  Audit" in shown(app)
        await keys("escape")
        assert isinstance(app.screen, JobsScreen)
        await keys("J")  # already there: nothing
        assert isinstance(app.screen, JobsScreen) and len(app.screen_stack) == 3
        await keys("escape", "escape", "escape")
        assert isinstance(app.screen, CustomersScreen)
        await keys("colon")  # the command palette's entries
        await keys.type("jobs")
        await keys("enter")
        assert isinstance(app.screen, JobsScreen)
        await keys("colon")
        await keys.type("audit")
        await keys("enter")
        assert isinstance(app.screen, AuditScreen)


def test_jobs_screen_snapshot(snap_compare, state, in_utc):
    fill_journal(state, fixed_times=True, monkeypatch=in_utc)
    assert snapshot_of(snap_compare, "J", "down")


async def test_a_planned_row_whose_user_changed_is_planned_again_and_says_what_changed(demo, state):
    """Issue 9 item 6 in the console: a batch row journaled, then its user given a new
    alias in the source's domain; `r` on it: nothing is written, the screen names what
    changed (the alias) and the row stays planned; `r` again runs the new plan."""
    from core.bulk import BulkMove

    user = await make_user(demo)
    session = await Session.open(demo, state=state)
    try:
        bulk = BulkMove(session.planner(), session.executor())
        plan = await bulk.preflight(session.operator, [(user.upn, MoveRequest(user.upn, DESTINATION))])
        (row,) = await bulk.record(plan, session.operator)
        batch = plan.batch
    finally:
        session.journal.close()
        session.audit.close()
    alias = f"smtp:late.alias{user.number}@{user.source.default_domain}"
    proxies = (await demo.values(user.dn, ["proxyAddresses"]))["proxyAddresses"]
    await demo.modify(user.dn, {"proxyAddresses": (proxies, proxies + [alias])})
    try:
        app = QuickApp(demo, demo.config)
        async with app.run_test(size=SIZE) as pilot:
            keys = Keys(pilot)
            await settle(pilot)
            await keys("J")
            assert isinstance(app.screen, JobsScreen) and app.screen.current_batch.id == batch
            await keys("enter")
            assert isinstance(app.screen, JobsScreen) and app.screen.current_job.id == row.job
            await keys("r", "enter")
            assert isinstance(app.screen, JobRunScreen)
            said = " ".join(shown(app).split())
            assert "changed since the plan was made; nothing was written; it is planned again on a fresh read" in said, said
            assert "(EmailAddresses of Set-Mailbox -Identity" in said  # the demo's Exchange reads them with Get-Mailbox
            assert journal_job(state, row.job).status is JobStatus.PLANNED
            assert alias in (await demo.values(user.dn, ["proxyAddresses"]))["proxyAddresses"]
            await keys("enter")
            assert isinstance(app.screen, JobsScreen)
            await keys("r", "enter")
            assert app.screen.query_one(ProgressPane).status == "done", shown(app)
        assert journal_job(state, row.job).status is JobStatus.DONE
    finally:
        await remove_user(demo, user)
