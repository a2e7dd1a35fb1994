"""A bulk job as the journal holds it: one job per clean row, tagged ``{"batch", "row"}``.

A batch the process left unfinished (killed, host lost) is found again by its id:
:meth:`Batch.load`, then :meth:`Batch.resume` finishes every unfinished row — planned
rows start, each checked against a fresh read of its user; interrupted ones resume —
and :meth:`Batch.rollback` undoes them, with the same bounded concurrency and per-row
results as the first run (:func:`core.bulk.run_rows`). Rows already finished are
reported as they ended; a done row is not undone by a batch rollback (like a done
job, it is finished). A copy whose password step has not run needs the password
again: it is never kept.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import AsyncIterator, Iterable, Mapping

from core.audit import Audit

from core.bulk import DEFAULT_CONCURRENCY, BatchRow, RowEvent, RowResult, job_starter, run_rows
from core.convergence import Aftermath, aftermaths
from core.copy import CopyPlanner, account_password_problems
from core.directory import Directory
from core.errors import NotFound
from core.execute import Executor, Refused, needs_password_to_resume
from core.journal import JobRecord, JobStatus, Journal
from core.model import Operator
from core.password import PasswordPolicy
from core.plan import Plan, Problem, Step, UserChange


@dataclass(frozen=True)
class Batch:
    """A bulk job as the journal holds it: one job per clean row, tagged with the batch id."""

    id: str
    kind: str
    jobs: tuple[JobRecord, ...]

    @classmethod
    def load(cls, journal: Journal, batch: str) -> Batch:
        """The batch ``batch`` names (its id or a unique prefix); ``NotFound`` if none."""
        jobs = journal.batch_jobs(batch)
        if not jobs:
            raise NotFound(f"No batch “{batch}” in the journal.")
        return cls(jobs[0].meta["batch"], jobs[0].kind, tuple(jobs))

    @property
    def unfinished(self) -> tuple[JobRecord, ...]:
        return tuple(j for j in self.jobs if not j.is_finished)

    @property
    def done(self) -> int:
        """How many rows are done."""
        return sum(1 for j in self.jobs if j.status is JobStatus.DONE)

    @property
    def state(self) -> str:
        """``unfinished`` (a row left to resume or roll back), ``done`` (every row) or ``finished``."""
        return "unfinished" if self.unfinished else ("done" if self.done == len(self.jobs) else "finished")

    def tally(self) -> str:
        """The rows by status, in the order first met: ``2 done, 1 running``."""
        counts = Counter(j.status.value.replace("_", " ") for j in self.jobs)
        return ", ".join(f"{n} {status}" for status, n in counts.items())

    def needing_password(self) -> tuple[JobRecord, ...]:
        """The unfinished copies that still have to set their new user's password (never kept)."""
        return tuple(j for j in self.unfinished if needs_password_to_resume(j))

    async def password_problems(self, copier: CopyPlanner, password: str) -> dict[str, list[Problem]]:
        """Row → why ``password`` cannot be its new user's, for every row that needs one."""
        return self.password_problems_under(await copier.directory.password_policy(), password)

    def password_problems_under(self, policy: PasswordPolicy, password: str) -> dict[str, list[Problem]]:
        """:meth:`password_problems` under ``policy``, already read (the console checks as it is typed)."""
        found = {batch_row(j).label: account_password_problems(policy, journaled_plan(j).steps, password)
                 for j in self.needing_password()}
        return {label: problems for label, problems in found.items() if problems}

    async def generate_passwords(self, copier: CopyPlanner) -> dict[str, str]:
        """Row → a new password of its own, for every row that needs one."""
        return {batch_row(j).label: await copier.generate_password(journaled_plan(j)) for j in self.needing_password()}

    def results(self) -> dict[str, RowResult]:
        """Every row as the journal has it now (a job refused when it started shows ``refused``)."""
        out: dict[str, RowResult] = {}
        for job in self.jobs:
            row = batch_row(job)
            status = "refused" if job.status == JobStatus.FAILED else job.status.value
            out[row.label] = RowResult(row.label, row.user, status, job.id, job.error or "", row.upn, row.email)
        return out

    def finished_results(self) -> dict[str, RowResult]:
        """The rows that ended (done, rolled back or refused), as :meth:`results` has them."""
        return {label: r for label, r in self.results().items() if r.status in ("done", "rolled_back", "refused")}

    async def resume(
        self, executor: Executor, operator: Operator, *, concurrency: int = DEFAULT_CONCURRENCY,
        results: dict[str, RowResult] | None = None, passwords: Mapping[str, str] | None = None,
    ) -> AsyncIterator[RowEvent]:
        """Finish every unfinished row (planned rows start, interrupted ones resume);
        ``results`` gets every row, finished ones as they ended. ``passwords``: row → the
        new user's password, for the copies in :meth:`needing_password`."""
        results = self._start(results, "resumed")
        rows = [batch_row(j) for j in self.unfinished]
        async for item in run_rows(rows, job_starter(executor, operator, passwords), concurrency, results):
            yield item

    async def rollback(
        self, executor: Executor, operator: Operator, *, concurrency: int = DEFAULT_CONCURRENCY,
        results: dict[str, RowResult] | None = None,
    ) -> AsyncIterator[RowEvent]:
        """Undo every unfinished row (planned rows are only marked rolled back); done rows stay done."""
        results = self._start(results, "rolled back")
        rows = [batch_row(j) for j in self.unfinished]
        async for item in run_rows(rows, lambda row: executor.rollback(row.job, operator), concurrency, results, backward=True):
            yield item

    def require_unfinished(self, verb: str) -> None:
        """Refuse (exit 3) a batch with nothing left to be ``verb`` ("resumed", "rolled back")."""
        if not self.unfinished:
            raise Refused(f"Batch {self.id} is finished (every row done, rolled back or refused); nothing to be {verb}.")

    def _start(self, results: dict[str, RowResult] | None, verb: str) -> dict[str, RowResult]:
        self.require_unfinished(verb)
        results = results if results is not None else {}
        results.update(self.finished_results())
        return results


def journaled_plan(job: JobRecord) -> Plan:
    """The plan a journaled job runs: its customers, users (as read) and steps."""
    customers = list(job.customers) or [None]
    users = tuple(UserChange(**u) for u in job.meta.get("users") or [])
    return Plan(job.kind, customers[0], customers[-1], users, tuple(Step.from_json(s.spec) for s in job.steps))


def batch_row(job: JobRecord) -> BatchRow:
    """A journaled row: its label, job, user and new identity, and the rows it waits for."""
    users = job.meta.get("users") or [{}]
    label = str(job.meta.get("row") or job.id)
    return BatchRow(label, job.id, users[0].get("user") or ", ".join(job.users), users[0].get("upn_after"),
                    users[0].get("email_after"), tuple(job.meta.get("after") or ()))


async def row_aftermaths(
    directory: Directory, journal: Journal, audit: Audit, operator: Operator, results: Mapping[str, RowResult], *,
    earlier: Iterable[str] = (),
) -> dict[str, Aftermath]:
    """Row label → where the writes of each row done in this run are and the duplicates of
    its values (rows in ``earlier`` finished before this run: left out), as a done job's
    :func:`core.convergence.aftermath` — one bounded wait and one pass per DC for all the
    rows together, each duplicate audited on its row's job."""
    before = set(earlier)
    done = {label: r.job for label, r in results.items() if r.status == "done" and r.job and label not in before}
    if not done:
        return {}
    jobs = {label: await asyncio.to_thread(journal.job, job) for label, job in done.items()}
    found = await aftermaths(directory, list(jobs.values()), audit, operator)
    return {label: found[job.id] for label, job in jobs.items()}
