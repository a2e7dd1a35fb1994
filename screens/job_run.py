"""Resuming or rolling back an unfinished job from the console: the confirmation that
says exactly what will happen, the new user's password when a copy still has to set it
(it is never kept), and the run itself in the wizard's progress pane.

:class:`JobActions` gives a screen that shows a job (the jobs list, a job's details)
its ``r`` and ``b`` keys. Whether a job can be resumed or rolled back is the core's
answer (:attr:`core.journal.JobRecord.can_resume` / ``can_roll_back``); read-only mode
hides both keys, and the executor refuses anyway.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Awaitable, Callable

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Header, Static

from core.copy import account_password_problems
from core.errors import TenantryError
from core.execute import needs_password_to_resume
from core.journal import JobRecord, JobStatus, StepState
from core.password import PasswordPolicy
from core.plan import Plan, Step
from core.text import plain
from screens.plan_view import step_summary
from screens.running_job import JobRun
from widgets.progress import ProgressPane
from widgets import PasswordFields, when

if TYPE_CHECKING:
    from core.session import Session

log = logging.getLogger("tenantry.console")

RESUME, ROLLBACK = "resume", "rollback"
SHOWN_STEPS = 6  # steps the confirmation lists before "… and N more"

# How the progress pane shows a journal step's state.
PANE_STATE = {
    StepState.PENDING: "pending",
    StepState.RUNNING: "interrupted",
    StepState.DONE: "done",
    StepState.FAILED: "failed",
    StepState.UNDOING: "undoing",
    StepState.UNDONE: "undone",
    StepState.UNDO_FAILED: "undo_failed",
}

FINAL = {
    RESUME: {
        "done": "Resumed: every step of the job is done.",
        "rolled_back": "The resumed job failed and was rolled back: nothing of it remains.",
        "needs_attention": "The resumed job failed and its rollback did not finish: the job still needs attention.",
    },
    ROLLBACK: {
        "rolled_back": "Rolled back: every step the job had done is undone.",
        "needs_attention": "The rollback did not finish: some steps could not be undone; the job still needs attention.",
    },
}


def job_plan(job: JobRecord) -> Plan:
    """The job's steps as a plan again (for the wizards' step summaries)."""
    customers = list(job.customers) or [""]
    return Plan(job.kind, customers[0], customers[-1], steps=tuple(Step.from_json(s.spec) for s in job.steps))


def step_lines(job: JobRecord) -> list[Text]:
    """One line per step, worded as the review and the progress pane word them."""
    plan = job_plan(job)
    return [step_summary(step, plan) for step in plan.steps]


def who_and_where(job: JobRecord) -> str:
    """``move of ana@x from A to B`` / ``copy of ana@x in A``, as plain text."""
    users = ", ".join(plain(u) for u in job.names) or "no user"
    customers = [plain(c) for c in job.customers]
    if len(customers) >= 2:
        return f"{plain(job.kind)} of {users} from {customers[0]} to {customers[-1]}"
    return f"{plain(job.kind)} of {users}" + (f" in {customers[0]}" if customers else "")


def running_here(app) -> bool:
    """Whether this console is running a job right now (its run screens' ``job`` workers)."""
    return any(worker.group == "job" and not worker.is_finished for worker in app.workers)


DIALOG_CSS = """
ModalScreen { align: center middle; }
#dialog { width: 76; max-width: 100%; height: auto; max-height: 100%; border: round $primary; background: $surface; padding: 0 1; }
#dialog-title { height: 1; }
#dialog-body { height: auto; max-height: 16; scrollbar-size-vertical: 1; }
#dialog-hint { height: 1; margin-top: 1; }
#dialog PasswordFields { margin-top: 1; }
"""


# -- the confirmation ------------------------------------------------------------------------

def _listed(job: JobRecord, indexes: list[int]) -> list[Text]:
    lines = step_lines(job)
    shown = [Text.assemble(f"  {i + 1:>2}. ", lines[i], no_wrap=True, overflow="ellipsis") for i in indexes[:SHOWN_STEPS]]
    if len(indexes) > SHOWN_STEPS:
        shown.append(Text(f"      … and {len(indexes) - SHOWN_STEPS} more", style="dim"))
    return shown


def confirm_text(job: JobRecord, action: str) -> Group:
    """Exactly what resuming or rolling back ``job`` will do."""
    what = who_and_where(job)
    lines = [Text(what[:1].upper() + what[1:] + ".")]
    if action == RESUME:
        remaining = [s.index for s in job.remaining_steps]
        lines.append(Text(f"{len(job.done_steps)} of {len(job.steps)} steps are done; resuming runs the "
                          f"{len(remaining)} left, in order:"))
        lines += _listed(job, remaining)
        for step in job.remaining_steps:
            if step.state is StepState.RUNNING:
                lines.append(Text(f"Step {step.index + 1} was interrupted: it runs again (each step checks what is there first)."))
            elif step.state is StepState.FAILED:
                lines.append(Text(f"Step {step.index + 1} failed before: it is tried again."))
        lines.append(Text("If a step fails, everything the job did is rolled back."))
        if needs_password_to_resume(job):
            lines.append(Text("The new user's password is asked next: it is never kept.", style="bold"))
    else:
        in_effect = [s.index for s in job.steps_to_undo]
        if in_effect:
            lines.append(Text(f"Rolling back undoes the {len(in_effect)} step(s) that may be in effect, last first:"))
            lines += _listed(job, in_effect)
            lines.append(Text("Afterwards the directory and the services are as they were before the job."))
        else:
            lines.append(Text("No step of it is in effect: the job is only marked rolled back."))
        never = sum(1 for s in job.steps if s.state is StepState.PENDING)
        if never:
            lines.append(Text(f"The {never} step(s) never run stay as they are.", style="dim"))
    if job.status in (JobStatus.RUNNING, JobStatus.ROLLING_BACK):
        lines.append(Text(f"Last change in the journal: {when(job.updated_at, full=True)}. Go on only if no other "
                          "Tenantry is still running this job.", style="italic"))
    return Group(*lines)


class ConfirmJob(ModalScreen[bool]):
    """``enter`` or ``y`` goes on; ``esc`` or ``n`` changes nothing."""

    CSS = DIALOG_CSS
    BINDINGS = [
        Binding("enter", "answer(True)", "Confirm", priority=True, id="confirm.yes"),
        Binding("y", "answer(True)", "Yes", show=False, id="confirm.y"),
        Binding("escape", "answer(False)", "Cancel", id="confirm.cancel"),
        Binding("n", "answer(False)", "No", show=False, id="confirm.n"),
    ]

    def __init__(self, job: JobRecord, action: str) -> None:
        super().__init__()
        self.job = job
        self.action = action

    def compose(self) -> ComposeResult:
        verb = "Resume" if self.action == RESUME else "Roll back"
        with Vertical(id="dialog"):
            yield Static(Text(f"{verb} job {plain(self.job.id)}?", style="bold"), id="dialog-title")
            with VerticalScroll(id="dialog-body"):
                yield Static(confirm_text(self.job, self.action))
            yield Static(Text(f"enter or y: {verb.lower()} · esc: cancel, nothing changes", style="dim"), id="dialog-hint")
        yield Footer()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


# -- the password a copy still has to set ------------------------------------------------------

class PasswordDialog(ModalScreen[str | None]):
    """The new user's password, masked, twice, checked as typed against the domain's
    policy and the account's names (the copy wizard's fields and the core's check)."""

    CSS = DIALOG_CSS
    AUTO_FOCUS = "#password"
    BINDINGS = [
        Binding("enter", "submit", "Resume", priority=True, id="password.resume"),
        Binding("escape", "cancel", "Cancel", id="password.cancel"),
    ]

    def __init__(self, session: Session, job: JobRecord) -> None:
        super().__init__()
        self.session = session
        self.job = job
        self.steps = [Step.from_json(s.spec) for s in job.steps]

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text("The new user's password", style="bold"), id="dialog-title")
            yield Static(Text(f"Job {plain(self.job.id)} still has to set the password of {', '.join(plain(u) for u in self.job.names)}. "
                              "It is never kept: type it again, twice."))
            yield PasswordFields(self.session.directory.password_policy, self._check)
        yield Footer()

    def _check(self, password: str, policy: PasswordPolicy) -> list[str]:
        return [x.message for x in account_password_problems(policy, self.steps, password)]

    def action_submit(self) -> None:
        fields = self.query_one(PasswordFields)
        if fields.policy is None or fields.problems():
            fields.show_state()
            self.app.bell()
            return
        self.dismiss(fields.value)

    def action_cancel(self) -> None:
        self.dismiss(None)


# -- the run ---------------------------------------------------------------------------------

class JobRunScreen(JobRun):
    """Resume or roll back ``job`` with the live progress pane (``ctrl+c`` cancels a
    resume: the core rolls the job back); ``enter`` goes back when it is over (dismissed
    with the job's final status)."""

    WHAT = "resumed job"
    CSS = "#context { text-wrap: nowrap; text-overflow: ellipsis; }"

    def __init__(self, session: Session, job: JobRecord, action: str, password: str | None = None) -> None:
        super().__init__()
        self.session = session
        self.job = job
        self.action = action
        self._password = password  # in memory until the executor has it, never kept

    @property
    def status(self) -> str | None:
        """The job's status once the run is over (``refused``, ``stopped`` or a journal status)."""
        return self.outcome

    def compose(self) -> ComposeResult:
        verb = "Resuming" if self.action == RESUME else "Rolling back"
        yield Header()
        yield Static(Text.assemble((f"{verb} job {plain(self.job.id)}: ", "bold"), who_and_where(self.job),
                                   no_wrap=True, overflow="ellipsis"), id="context")
        yield ProgressPane(step_lines(self.job), states=[PANE_STATE[s.state] for s in self.job.steps], final=FINAL[self.action])
        yield Footer()

    @work(exclusive=True, group="job", exit_on_error=False)
    async def run_job(self) -> None:
        pane = self.pane
        executor = self.executor_for_job(self.session.executor)
        operator = self.session.operator
        if self.action == RESUME:
            secrets = {"password": self._password} if self._password else None
            events = executor.resume(self.job.id, operator, secrets=secrets)
        else:
            events = executor.rollback(self.job.id, operator)
        self._password = None
        error: str | None = None
        last = None
        pane.start()
        try:
            async for event in events:
                self.received(event)
                last = event
        except TenantryError as failure:
            error = str(failure)
        except Exception as failure:  # a defect below: one sentence here, the details in the log
            log.exception("resuming or rolling back a job failed unexpectedly")
            error = f"The job stopped unexpectedly ({type(failure).__name__}); the details are in the log."
        self._flush()
        if error is None and last is not None and last.kind == "job_finished":
            status = last.status
        elif pane.job is None:  # refused before the job moved: nothing was written
            pane.fail(error or "The job did not start.")
            status = "refused"
        else:
            pane.fail(error or "The job stopped.", "The job is left unfinished in the journal: resume or roll it back.")
            status = "stopped"
        self.ended(status)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "cancel_job" and self.action == ROLLBACK:
            return False  # a rollback is the way back already: nothing to cancel
        return super().check_action(action, parameters)


# -- r and b on a screen that shows a job --------------------------------------------------------

class JobActions:
    """Mixin for a :class:`Screen` showing a job (:attr:`current_job`): ``r`` resumes it,
    ``b`` rolls it back — each after :class:`ConfirmJob`, a copy's password first when
    it still has to be set — in :class:`JobRunScreen`."""

    session: Callable[[], Awaitable[Session]]

    @property
    def current_job(self) -> JobRecord | None:
        raise NotImplementedError

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in (RESUME, ROLLBACK):
            job = self.current_job
            if job is None or self.app.readonly:  # type: ignore[attr-defined]
                return False
            return job.can_resume if action == RESUME else job.can_roll_back
        return True

    def action_resume(self) -> None:
        self.start_job(RESUME)

    def action_rollback(self) -> None:
        self.start_job(ROLLBACK)

    @work(exclusive=True, group="job-action", exit_on_error=False)
    async def start_job(self, action: str) -> None:
        app = self.app  # type: ignore[attr-defined]
        job = self.current_job
        if job is None or app.readonly:
            return
        if running_here(app):
            app.notify("A job is running in this console: wait for it to finish.", severity="warning", markup=False)
            return
        try:
            session = await self.session()
            job = await asyncio.to_thread(session.journal.job, job.id)  # as it is now, not as listed
        except Exception as error:  # one sentence, never a traceback
            app.show_error(error)
            return
        if not (job.can_resume if action == RESUME else job.can_roll_back):
            verb = "resumed" if action == RESUME else "rolled back"
            app.notify(f"Job {job.id} is {job.status.value.replace('_', ' ')}: it cannot be {verb}.", markup=False)
            self.refresh_bindings()  # type: ignore[attr-defined]
            return

        def run(password: str | None = None) -> None:
            app.push_screen(JobRunScreen(session, job, action, password))

        def with_password(password: str | None) -> None:
            if password:  # None: cancelled, nothing changed
                run(password)

        def confirmed(yes: bool | None) -> None:
            if not yes:
                return
            if action == RESUME and needs_password_to_resume(job):
                app.push_screen(PasswordDialog(session, job), with_password)
            else:
                run()

        app.push_screen(ConfirmJob(job, action), confirmed)
