"""``r`` and ``b`` on the screens that show a job or a batch (the jobs list, a batch's
rows, a job's details): resume or roll back — each after a confirmation that says
exactly what will happen, the new user's password first when a copy still has to set it
(never kept) — with the live progress pane. Whether it can be is the core's answer
(:attr:`core.journal.JobRecord.can_resume` / ``can_roll_back``, a batch's unfinished
rows); read-only mode hides both keys, and the executor refuses anyway."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Awaitable, Callable

from textual import work
from textual.screen import ModalScreen, Screen

from core.batch import Batch
from core.execute import needs_password_to_resume
from core.journal import JobRecord
from screens import batch_run
from screens.job_run import RESUME, ROLLBACK, ConfirmJob, JobRunScreen, PasswordDialog, running_here

if TYPE_CHECKING:
    from core.session import Session


def can(chosen: JobRecord | Batch, action: str) -> bool:
    """Whether ``chosen`` can be resumed (``RESUME``) or rolled back, as the core says."""
    if isinstance(chosen, Batch):
        return bool(chosen.unfinished)
    return chosen.can_resume if action == RESUME else chosen.can_roll_back


class JobActions:
    """Mixin for a :class:`Screen` showing a job (:attr:`current_job`) or a batch
    (:attr:`current_batch`): ``r`` resumes it, ``b`` rolls it back."""

    session: Callable[[], Awaitable[Session]]

    @property
    def current_job(self) -> JobRecord | None:
        raise NotImplementedError

    @property
    def current_batch(self) -> Batch | None:
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in (RESUME, ROLLBACK):
            chosen = self.current_job or self.current_batch
            if chosen is None or self.app.readonly:  # type: ignore[attr-defined]
                return False
            return can(chosen, action)
        return True

    def action_resume(self) -> None:
        self.start_job(RESUME)

    def action_rollback(self) -> None:
        self.start_job(ROLLBACK)

    @work(exclusive=True, group="job-action", exit_on_error=False)
    async def start_job(self, action: str) -> None:
        app = self.app  # type: ignore[attr-defined]
        chosen = self.current_job or self.current_batch
        if chosen is None or app.readonly:
            return
        if running_here(app):
            app.notify("A job is running in this console: wait for it to finish.", severity="warning", markup=False)
            return
        try:
            session = await self.session()
            if isinstance(chosen, Batch):  # as it is now, not as listed
                chosen = await asyncio.to_thread(Batch.load, session.journal, chosen.id)
            else:
                chosen = await asyncio.to_thread(session.journal.job, chosen.id)
        except Exception as error:  # one sentence, never a traceback
            app.show_error(error)
            return
        if not can(chosen, action):
            verb = "resumed" if action == RESUME else "rolled back"
            state = chosen.state if isinstance(chosen, Batch) else chosen.status.value.replace("_", " ")
            app.notify(f"{'Batch' if isinstance(chosen, Batch) else 'Job'} {chosen.id} is {state}: it cannot be {verb}.", markup=False)
            self.refresh_bindings()  # type: ignore[attr-defined]
            return

        confirm: ModalScreen[bool]
        password: Callable[[], PasswordDialog] | None = None
        running: Callable[[str | None], Screen]
        if isinstance(chosen, Batch):
            batch = chosen
            confirm = batch_run.confirm(batch, action)
            if action == RESUME and batch.needing_password():
                password = lambda: batch_run.password_dialog(session, batch)  # noqa: E731
            running = lambda secret: batch_run.BatchRunScreen(session, batch, action, secret, concurrency=app.console_config.bulk_concurrency)  # noqa: E731
        else:
            job = chosen
            confirm = ConfirmJob.for_job(job, action)
            if action == RESUME and needs_password_to_resume(job):
                password = lambda: PasswordDialog.for_job(session, job)  # noqa: E731
            running = lambda secret: JobRunScreen(session, job, action, secret)  # noqa: E731

        def with_password(secret: str | None) -> None:
            if secret:  # None: cancelled, nothing changed
                app.push_screen(running(secret))

        def confirmed(yes: bool | None) -> None:
            if not yes:
                return
            if password is not None:
                app.push_screen(password(), with_password)
            else:
                app.push_screen(running(None))

        app.push_screen(confirm, confirmed)
