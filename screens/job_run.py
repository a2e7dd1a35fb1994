"""Resuming or rolling back an unfinished job from the console: the confirmation that
says exactly what will happen, the new user's password when a copy still has to set it
(it is never kept), and the run itself in the wizard's progress pane.

:mod:`screens.job_actions` gives the screens that show a job its ``r`` and ``b`` keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from rich.console import Group
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Header, Static

from core.copy import account_password_problems
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
    """``Resume job X?`` / ``Roll back batch Y?`` with ``body``, exactly what will happen:
    ``enter`` or ``y`` goes on; ``esc`` or ``n`` changes nothing."""

    CSS = DIALOG_CSS
    BINDINGS = [
        Binding("enter", "answer(True)", "Confirm", priority=True, id="confirm.yes"),
        Binding("y", "answer(True)", "Yes", show=False, id="confirm.y"),
        Binding("escape", "answer(False)", "Cancel", id="confirm.cancel"),
        Binding("n", "answer(False)", "No", show=False, id="confirm.n"),
    ]

    def __init__(self, what: str, body: Group, action: str) -> None:
        super().__init__()
        self.what = what  # "job 20240514-093211-ab12", "batch 3fa9c2e1d0b4"
        self.body = body
        self.action = action

    @classmethod
    def for_job(cls, job: JobRecord, action: str) -> ConfirmJob:
        return cls(f"job {job.id}", confirm_text(job, action), action)

    def compose(self) -> ComposeResult:
        verb = "Resume" if self.action == RESUME else "Roll back"
        with Vertical(id="dialog"):
            yield Static(Text(f"{verb} {plain(self.what)}?", style="bold"), id="dialog-title")
            with VerticalScroll(id="dialog-body"):
                yield Static(self.body)
            yield Static(Text(f"enter or y: {verb.lower()} · esc: cancel, nothing changes", style="dim"), id="dialog-hint")
        yield Footer()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


# -- the password a copy still has to set ------------------------------------------------------

PasswordCheck = Callable[[str, PasswordPolicy], list[str]]


class PasswordDialog(ModalScreen[str | None]):
    """The new user's password, masked, twice, checked as typed against the domain's
    policy and the account's names (the copy wizard's fields and the core's check):
    ``intro`` says whose, ``check`` is the core's check for them."""

    CSS = DIALOG_CSS
    AUTO_FOCUS = "#password"
    BINDINGS = [
        Binding("enter", "submit", "Resume", priority=True, id="password.resume"),
        Binding("escape", "cancel", "Cancel", id="password.cancel"),
    ]

    def __init__(self, session: Session, intro: Text, check: PasswordCheck) -> None:
        super().__init__()
        self.session = session
        self.intro = intro
        self.check = check

    @classmethod
    def for_job(cls, session: Session, job: JobRecord) -> PasswordDialog:
        steps = [Step.from_json(s.spec) for s in job.steps]
        intro = Text(f"Job {plain(job.id)} still has to set the password of {', '.join(plain(u) for u in job.names)}. "
                     "It is never kept: type it again, twice.")
        return cls(session, intro, lambda password, policy: [x.message for x in account_password_problems(policy, steps, password)])

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Text("The new user's password", style="bold"), id="dialog-title")
            yield Static(self.intro)
            yield PasswordFields(self.session.directory.password_policy, self.check)
        yield Footer()

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
        pane.start()
        error = await self.follow(events, "job")
        last = self.last_event
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
