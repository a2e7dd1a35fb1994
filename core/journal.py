"""The job journal: what a job is about to do, has done and must undo, kept on disk.

A job is a list of steps run in order by the executor. Each step's spec is written
with the job, and it is its own undo data: the executor derives the inverse from it
(values before and after, compared before writing; see ``core/execute.py``). Before a
step runs, the executor calls :meth:`Journal.step_starting` (with optional extra undo
data: the executor gives none today); that is committed to disk (WAL,
``synchronous=FULL``) before the call returns. After the step,
:meth:`~Journal.step_done` or :meth:`~Journal.step_failed` records the outcome. So
whenever the process dies — SIGKILL, power loss — the journal says which steps may have
changed anything, and the job can be resumed or rolled back (PRODUCT §2, last paragraph).

One SQLite file, ``journal.sqlite3`` in the state directory unless a path is given,
with two tables, ``jobs`` and ``steps``. Every method is one short transaction under
the write lock (``BEGIN IMMEDIATE``): the check of the current state and the change
are atomic even with another process or thread writing the same file.

Step specs, undo data, results and job meta are JSON dicts the executor defines; the
journal stores them opaquely after passing them through :func:`core.audit.redact`, so
a password or token put in by mistake never reaches the file. Error strings are stored
as given: keep secrets out of them.

Step states and who may move them (anything else raises ``ValueError``)::

    pending ──step_starting──▶ running ──step_done──▶ done
                                  │  ╲──step_failed─▶ failed ──step_starting (retry)──▶ running
    {done, failed, running, undo_failed, undoing} ──undo_starting──▶ undoing
    undoing ──undo_done──▶ undone          undoing ──undo_failed──▶ undo_failed

``step_starting`` needs the job ``running`` and every earlier step ``done``;
``undo_starting`` needs the job ``rolling_back`` and no later step still in effect
(``done``/``running``/``undoing``). Job statuses: see ``_JOB_TRANSITIONS`` and
:meth:`Journal.set_status`.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sqlite3
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, Iterable, Iterator

from core.audit import redact
from core.errors import NotFound, TenantryError
from core.state import StateError, StateFile, string_list
from core.text import plain

JOURNAL_FILE = "journal.sqlite3"


class JobBusy(TenantryError):
    """Another run (another Tenantry process, or this one) is working on the job."""

    exit_code = 3


_JOB_ID = re.compile(r"[0-9A-Za-z-]{1,64}")


class CorruptJob(StateError):
    """A job's rows in the journal do not read as a job (edited or damaged on disk)."""


class JobStatus(StrEnum):
    PLANNED = "planned"
    RUNNING = "running"
    DONE = "done"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"
    NEEDS_ATTENTION = "needs_attention"
    FAILED = "failed"


class StepState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    UNDOING = "undoing"
    UNDONE = "undone"
    UNDO_FAILED = "undo_failed"


FINISHED = frozenset({JobStatus.DONE, JobStatus.ROLLED_BACK, JobStatus.FAILED})

# States in which a step's change may be present in the directory / services.
# (A FAILED step is taken to have changed nothing; an executor whose step can fail
# half-way undoes it explicitly: undo_starting accepts FAILED.)
IN_EFFECT = frozenset({StepState.DONE, StepState.RUNNING, StepState.UNDOING, StepState.UNDO_FAILED})

_JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PLANNED: frozenset({JobStatus.RUNNING, JobStatus.FAILED, JobStatus.ROLLED_BACK}),  # rolled back: before it started
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.RUNNING,  # resuming after a crash
            JobStatus.DONE,
            JobStatus.ROLLING_BACK,
            JobStatus.ROLLED_BACK,  # nothing was in effect
            JobStatus.NEEDS_ATTENTION,
            JobStatus.FAILED,  # nothing was in effect
        }
    ),
    JobStatus.ROLLING_BACK: frozenset({JobStatus.ROLLING_BACK, JobStatus.ROLLED_BACK, JobStatus.NEEDS_ATTENTION}),
    JobStatus.NEEDS_ATTENTION: frozenset({JobStatus.RUNNING, JobStatus.ROLLING_BACK, JobStatus.NEEDS_ATTENTION}),
    JobStatus.DONE: frozenset(),
    JobStatus.ROLLED_BACK: frozenset(),
    JobStatus.FAILED: frozenset(),
}

# Which step states each step call accepts, and the job statuses it may happen in.
_STEP_CALLS: dict[str, tuple[frozenset[StepState], StepState, frozenset[JobStatus]]] = {
    "step_starting": (
        # running: a step interrupted by a crash is started again when the job resumes
        frozenset({StepState.PENDING, StepState.FAILED, StepState.RUNNING}),
        StepState.RUNNING,
        frozenset({JobStatus.RUNNING}),
    ),
    "step_done": (
        frozenset({StepState.RUNNING}),
        StepState.DONE,
        frozenset({JobStatus.RUNNING, JobStatus.ROLLING_BACK}),
    ),
    "step_failed": (
        frozenset({StepState.RUNNING}),
        StepState.FAILED,
        frozenset({JobStatus.RUNNING, JobStatus.ROLLING_BACK}),
    ),
    "undo_starting": (
        frozenset({StepState.DONE, StepState.FAILED, StepState.RUNNING, StepState.UNDOING, StepState.UNDO_FAILED}),
        StepState.UNDOING,
        frozenset({JobStatus.ROLLING_BACK}),
    ),
    "undo_done": (frozenset({StepState.UNDOING}), StepState.UNDONE, frozenset({JobStatus.ROLLING_BACK})),
    "undo_failed": (frozenset({StepState.UNDOING}), StepState.UNDO_FAILED, frozenset({JobStatus.ROLLING_BACK})),
}


@dataclass(frozen=True)
class StepRecord:
    index: int
    user: str
    action: str
    target: str
    spec: dict
    state: StepState
    undo: dict | None
    result: dict | None
    error: str | None
    started_at: str | None
    finished_at: str | None
    undo_started_at: str | None = None
    undo_finished_at: str | None = None
    undo_error: str | None = None


@dataclass(frozen=True)
class JobRecord:
    id: str
    kind: str
    status: JobStatus
    operator: str
    bound_as: str
    users: tuple[str, ...]
    customers: tuple[str, ...]
    created_at: str
    updated_at: str
    error: str | None
    steps: tuple[StepRecord, ...]
    meta: dict = field(default_factory=dict)

    @property
    def is_finished(self) -> bool:
        """Done, rolled back or failed: nothing left to resume or roll back."""
        return self.status in FINISHED

    @property
    def can_resume(self) -> bool:
        """Whether the executor can finish this job: it is planned, running (a crash left
        it) or needs attention, and no step has been undone (a rollback cannot be run forward)."""
        return self.status in (JobStatus.PLANNED, JobStatus.RUNNING, JobStatus.NEEDS_ATTENTION) and not any(
            s.state in (StepState.UNDOING, StepState.UNDONE, StepState.UNDO_FAILED) for s in self.steps
        )

    @property
    def notes(self) -> tuple[str, ...]:
        """What a done job's services left running, as its steps noted it (an Exchange move
        request the Mailbox Replication Service finishes later); nothing for any other job."""
        if self.status != JobStatus.DONE:
            return ()
        return tuple(str(s.result["note"]) for s in self.steps if isinstance(s.result, dict) and s.result.get("note"))

    @property
    def can_roll_back(self) -> bool:
        """Whether the executor can undo this job: it started (a planned job changed nothing
        and can only be resumed) and is not finished."""
        return self.status in (JobStatus.RUNNING, JobStatus.ROLLING_BACK, JobStatus.NEEDS_ATTENTION)

    @property
    def names(self) -> tuple[str, ...]:
        """The users as an admin reads them: each one's UPN before the job (the plan keeps
        it in ``meta["users"]``), else the identity the job was given (a DN, a username)."""
        changes = (self.meta or {}).get("users")
        if isinstance(changes, list) and len(changes) == len(self.users):
            return tuple(
                str(c.get("upn_before")) if isinstance(c, dict) and c.get("upn_before") else user
                for c, user in zip(changes, self.users)
            )
        return tuple(self.users)

    @property
    def dc(self) -> dict | None:
        """The domain controller the job is pinned to (``url``, ``service``,
        ``invocation_id``, and ``usn``: the highest it wrote for the job), if recorded."""
        value = (self.meta or {}).get("dc")
        return value if isinstance(value, dict) and value.get("url") else None

    @property
    def batch(self) -> str | None:
        """The bulk batch this job belongs to (``meta["batch"]``), if any."""
        value = (self.meta or {}).get("batch")
        return value if isinstance(value, str) and value else None

    @property
    def done_steps(self) -> tuple[StepRecord, ...]:
        """The steps that completed, in order."""
        return tuple(s for s in self.steps if s.state is StepState.DONE)

    @property
    def remaining_steps(self) -> tuple[StepRecord, ...]:
        """The steps a resume still has to run, in order (pending, running, failed)."""
        return tuple(s for s in self.steps if s.state in (StepState.PENDING, StepState.RUNNING, StepState.FAILED))

    @property
    def steps_to_undo(self) -> tuple[StepRecord, ...]:
        """The steps whose change may be in effect, last first: the order a rollback undoes them.

        A ``running`` step here was interrupted: it may or may not have happened, so its
        undo must cope with both (compare before writing). ``failed`` steps are not
        listed; see ``IN_EFFECT``.
        """
        return tuple(s for s in reversed(self.steps) if s.state in IN_EFFECT)

    def step(self, index: int) -> StepRecord:
        return self.steps[index]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _new_job_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]


def _dump(value: dict | None, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError(f"{what} must be a dict or None, not {type(value).__name__}")
    try:
        return json.dumps(redact(value), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} is not JSON-able: {exc}") from None


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _job_rows(kind, operator, bound_as, users, customers, steps, meta=None) -> tuple[tuple, list[tuple]]:
    """A job's row and its steps' rows, checked, before any transaction starts."""
    for name, text in (("kind", kind), ("operator", operator), ("bound_as", bound_as)):
        if not isinstance(text, str):
            raise TypeError(f"{name} must be a string")
    if not kind:
        raise ValueError("A job needs a kind.")
    users_t = string_list("users", users)
    customers_t = string_list("customers", customers)
    if not steps:
        raise ValueError("A job needs at least one step.")
    rows = []
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            raise TypeError(f"step {index} must be a dict")
        for key in ("user", "action", "target"):
            if not isinstance(step.get(key), str):
                raise ValueError(f"Step {index} needs a string {key!r}.")
        rows.append((index, step["user"], step["action"], step["target"], _dump(step, f"step {index}")))
    job = (kind, operator, bound_as, json.dumps(users_t, ensure_ascii=False), json.dumps(customers_t, ensure_ascii=False),
           _dump(meta or {}, "meta"))
    return job, rows


_SCHEMA_VERSION = 1


def _in(values: Iterable[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,   -- creation order, for newest-first listing
    id         TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ({_in(JobStatus)})),
    operator   TEXT NOT NULL,
    bound_as   TEXT NOT NULL,
    users      TEXT NOT NULL,                       -- JSON list of strings
    customers  TEXT NOT NULL,                       -- JSON list of strings
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    error      TEXT,
    meta       TEXT NOT NULL                        -- JSON object (redacted)
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
CREATE TABLE IF NOT EXISTS steps (
    job_id           TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    idx              INTEGER NOT NULL CHECK (idx >= 0),
    user             TEXT NOT NULL,
    action           TEXT NOT NULL,
    target           TEXT NOT NULL,
    spec             TEXT NOT NULL,                 -- JSON object (redacted)
    state            TEXT NOT NULL CHECK (state IN ({_in(StepState)})),
    undo             TEXT,                          -- JSON object (redacted), written before the step runs
    result           TEXT,                          -- JSON object (redacted)
    error            TEXT,
    started_at       TEXT,
    finished_at      TEXT,
    undo_started_at  TEXT,
    undo_finished_at TEXT,
    undo_error       TEXT,
    PRIMARY KEY (job_id, idx)
) WITHOUT ROWID;
"""

_JOB_COLUMNS = "id, kind, status, operator, bound_as, users, customers, created_at, updated_at, error, meta"
_BATCH = "json_extract(meta, '$.batch')"  # the bulk job a job belongs to (core/bulk.py)
_STEP_COLUMNS = (
    "job_id, idx, user, action, target, spec, state, undo, result, error, started_at, finished_at,"
    " undo_started_at, undo_finished_at, undo_error"
)


class Journal(StateFile):
    """The job journal in ``path`` (default ``<state dir>/journal.sqlite3``).

    Synchronous and thread-safe; every write is committed durably before it returns.
    Several ``Journal`` objects, in one process or several, may use the same file.
    """

    FILE = JOURNAL_FILE
    LABEL = "The journal"
    SCHEMA = _SCHEMA
    SCHEMA_VERSION = _SCHEMA_VERSION

    # ------------------------------------------------------------------ transactions

    def _transaction(self, write: bool):
        return _Transaction(self, write)

    # ------------------------------------------------------------------ writing

    def create_job(
        self,
        kind: str,
        operator: str,
        bound_as: str,
        users: Iterable[str],
        customers: Iterable[str],
        steps: list[dict],
        meta: dict | None = None,
    ) -> str:
        """Record a new ``planned`` job with its steps (all ``pending``); return its id."""
        return self.create_jobs([(kind, operator, bound_as, users, customers, steps, meta)])[0]

    def create_jobs(self, jobs: list[tuple]) -> list[str]:
        """Record several ``planned`` jobs in one transaction (all or none); return their ids.

        Each item holds :meth:`create_job`'s arguments in its order. A bulk job records
        every row's job this way before its first write, so a crash leaves no row nowhere.
        """
        prepared = [_job_rows(*job) for job in jobs]
        now = _now()
        ids: list[str] = []
        with self._transaction(write=True) as db:
            for job_row, step_rows in prepared:
                for _attempt in range(20):
                    job_id = _new_job_id()
                    if job_id not in ids and db.execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is None:
                        break
                else:  # pragma: no cover - 20 collisions of 16 random bits in one second
                    raise StateError("Could not choose a free job id; try again.")
                ids.append(job_id)
                kind, operator, bound_as, users_json, customers_json, meta_json = job_row
                db.execute(
                    f"INSERT INTO jobs ({_JOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                    (job_id, kind, JobStatus.PLANNED.value, operator, bound_as, users_json, customers_json, now, now, meta_json),
                )
                db.executemany(
                    "INSERT INTO steps (job_id, idx, user, action, target, spec, state) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(job_id, *row, StepState.PENDING.value) for row in step_rows],
                )
        return ids

    def step_starting(self, job_id: str, index: int, undo: dict | None) -> None:
        """Mark step ``index`` running and store its undo data — call this *before* the step runs.

        Accepted on a ``pending`` step, on a ``failed`` one to retry it (the executor
        asserts the failure changed nothing; the new undo data replaces the old), or on a
        ``running`` one that a crash interrupted (its action is idempotent).
        """
        undo_json = _dump(undo, f"undo data of step {index}")
        now = _now()
        with self._transaction(write=True) as db:
            job_id, steps = self._check_step(db, job_id, index, "step_starting")
            blocking = [s for s in steps[:index] if s != StepState.DONE]
            if blocking:
                raise ValueError(f"Step {index} of job {job_id} cannot start before every earlier step is done.")
            if steps[index] == StepState.RUNNING:
                # Restarted after a crash: keep the undo data recorded before the first try.
                db.execute("UPDATE steps SET started_at = ? WHERE job_id = ? AND idx = ?", (now, job_id, index))
            else:
                db.execute(
                    "UPDATE steps SET state = ?, undo = ?, result = NULL, error = NULL, started_at = ?, finished_at = NULL"
                    " WHERE job_id = ? AND idx = ?",
                    (StepState.RUNNING.value, undo_json, now, job_id, index),
                )
            self._touch(db, job_id, now)

    def step_done(self, job_id: str, index: int, result: dict | None = None) -> None:
        """Mark a running step done, with what it returned (e.g. the new DN)."""
        result_json = _dump(result, f"result of step {index}")
        now = _now()
        with self._transaction(write=True) as db:
            job_id, _ = self._check_step(db, job_id, index, "step_done")
            db.execute(
                "UPDATE steps SET state = ?, result = ?, finished_at = ? WHERE job_id = ? AND idx = ?",
                (StepState.DONE.value, result_json, now, job_id, index),
            )
            self._touch(db, job_id, now)

    def step_failed(self, job_id: str, index: int, error: str) -> None:
        """Mark a running step failed, with one sentence saying why."""
        now = _now()
        with self._transaction(write=True) as db:
            job_id, _ = self._check_step(db, job_id, index, "step_failed")
            db.execute(
                "UPDATE steps SET state = ?, error = ?, finished_at = ? WHERE job_id = ? AND idx = ?",
                (StepState.FAILED.value, str(error), now, job_id, index),
            )
            self._touch(db, job_id, now)

    def undo_starting(self, job_id: str, index: int) -> None:
        """Mark a step's undo as running — before the undo runs. Re-entrant after a crash
        (an ``undoing`` step may be started again), so undo actions must be idempotent."""
        now = _now()
        with self._transaction(write=True) as db:
            job_id, steps = self._check_step(db, job_id, index, "undo_starting")
            still_live = (StepState.DONE, StepState.RUNNING, StepState.UNDOING)
            later = [i for i, s in enumerate(steps) if i > index and s in still_live]
            if later:
                raise ValueError(
                    f"Step {index} of job {job_id} cannot be undone while step {later[-1]} after it is still in effect."
                )
            db.execute(
                "UPDATE steps SET state = ?, undo_started_at = ?, undo_finished_at = NULL, undo_error = NULL"
                " WHERE job_id = ? AND idx = ?",
                (StepState.UNDOING.value, now, job_id, index),
            )
            self._touch(db, job_id, now)

    def undo_done(self, job_id: str, index: int) -> None:
        now = _now()
        with self._transaction(write=True) as db:
            job_id, _ = self._check_step(db, job_id, index, "undo_done")
            db.execute(
                "UPDATE steps SET state = ?, undo_finished_at = ? WHERE job_id = ? AND idx = ?",
                (StepState.UNDONE.value, now, job_id, index),
            )
            self._touch(db, job_id, now)

    def undo_failed(self, job_id: str, index: int, error: str) -> None:
        now = _now()
        with self._transaction(write=True) as db:
            job_id, _ = self._check_step(db, job_id, index, "undo_failed")
            db.execute(
                "UPDATE steps SET state = ?, undo_error = ?, undo_finished_at = ? WHERE job_id = ? AND idx = ?",
                (StepState.UNDO_FAILED.value, str(error), now, job_id, index),
            )
            self._touch(db, job_id, now)

    def set_status(self, job_id: str, status: JobStatus, error: str | None = None) -> None:
        """Move the job to ``status``; ``error`` replaces the job's error (``None`` clears it).

        ``done`` needs every step done; ``rolled_back`` and ``failed`` need no step in
        effect (none ``done``, ``running``, ``undoing`` or ``undo_failed``). Finished jobs
        (done, rolled back, failed) never change again.
        """
        status = JobStatus(status)
        now = _now()
        with self._transaction(write=True) as db:
            job_id, current = self._resolve(db, job_id)
            if status not in _JOB_TRANSITIONS[current]:
                raise ValueError(f"Job {job_id} is {current}; it cannot become {status}.")
            states = self._step_states(db, job_id)
            if status is JobStatus.DONE:
                pending = [i for i, s in enumerate(states) if s != StepState.DONE]
                if pending:
                    raise ValueError(f"Job {job_id} cannot be done: step {pending[0]} is {states[pending[0]]}.")
            if status in (JobStatus.ROLLED_BACK, JobStatus.FAILED):
                live = [i for i, s in enumerate(states) if s in IN_EFFECT]
                if live:
                    raise ValueError(
                        f"Job {job_id} cannot be {status}: step {live[-1]} is {states[live[-1]]}"
                        " and may still be in effect."
                    )
            db.execute(
                "UPDATE jobs SET status = ?, error = ?, updated_at = ? WHERE id = ?",
                (status.value, None if error is None else str(error), now, job_id),
            )

    def replan(self, job_id: str, steps: list[dict], users: list[dict]) -> None:
        """Give a job that has written nothing (``planned``, or ``running`` with every step
        pending) a fresh plan: its steps replaced by ``steps`` (all pending) and its users'
        reads (``meta["users"]``) by ``users``. Any other job keeps its plan: ``ValueError``."""
        _job, step_rows = _job_rows("replan", "", "", [], [], steps, {})
        now = _now()
        with self._transaction(write=True) as db:
            job_id, status = self._resolve(db, job_id)
            states = self._step_states(db, job_id)
            if status not in (JobStatus.PLANNED, JobStatus.RUNNING) or any(s != StepState.PENDING for s in states):
                raise ValueError(f"Job {job_id} is {status} with steps under way; only a job that has written nothing can be planned again.")
            meta = _load(db.execute("SELECT meta FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]) or {}
            meta["users"] = users
            db.execute("DELETE FROM steps WHERE job_id = ?", (job_id,))
            db.executemany(
                "INSERT INTO steps (job_id, idx, user, action, target, spec, state) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(job_id, *row, StepState.PENDING.value) for row in step_rows],
            )
            db.execute("UPDATE jobs SET meta = ?, updated_at = ? WHERE id = ?", (_dump(meta, "meta"), now, job_id))

    def record_dc(self, job_id: str, dc: dict) -> None:
        """Record the domain controller the job is pinned to (``meta["dc"]``: url, service,
        invocation id), replacing the one before (whose URL is kept as ``previous``: the
        USNs journaled so far count on that DC, not on this one)."""
        def change(meta: dict) -> None:
            before = meta.get("dc") or {}
            moved = before.get("url") and before.get("url") != dc.get("url")
            meta["dc"] = {**dc, **({"previous": before["url"]} if moved else {})}
        self._change_meta(job_id, change)

    def record_usn(self, job_id: str, usn: int) -> None:
        """Record that the job's DC had written up to ``usn`` after one of the job's writes
        (forward or undo): another DC holds all of them once it has received that far."""
        def change(meta: dict) -> None:
            dc = meta.setdefault("dc", {})
            dc["usn"] = max(int(usn), int(dc.get("usn") or 0))
        self._change_meta(job_id, change)

    def _change_meta(self, job_id: str, change) -> None:
        now = _now()
        with self._transaction(write=True) as db:
            job_id, _ = self._resolve(db, job_id)
            meta = _load(db.execute("SELECT meta FROM jobs WHERE id = ?", (job_id,)).fetchone()[0]) or {}
            change(meta)
            db.execute("UPDATE jobs SET meta = ?, updated_at = ? WHERE id = ?", (_dump(meta, "meta"), now, job_id))

    @contextmanager
    def claim(self, job_id: str) -> Iterator[None]:
        """Hold ``job_id`` while this run works on it: a second run of the same job — from
        another process on this host or from this one — is refused instead of racing it.
        An OS file lock beside the journal, so a killed process releases it at once."""
        if not _JOB_ID.fullmatch(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        locks = self.path.with_name(self.path.name + ".locks")
        locks.mkdir(mode=0o700, exist_ok=True)
        # Lock files are never deleted: unlinking one while another run opens it would
        # let two runs hold two different files for the same job.
        handle = os.fdopen(os.open(locks / job_id, os.O_RDWR | os.O_CREAT, 0o600), "r+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise JobBusy(f"Job {job_id} is being run right now by another Tenantry session; "
                          "nothing was done: wait for it to finish, then look at the job again.") from None
        try:
            yield
        finally:
            handle.close()  # closing releases the lock

    # ------------------------------------------------------------------ reading

    def job(self, job_id: str) -> JobRecord:
        """The job with this id, or the only job whose id starts with it; else ``NotFound``."""
        with self._transaction(write=False) as db:
            job_id, _ = self._resolve(db, job_id)
            row = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
            step_rows = db.execute(
                f"SELECT {_STEP_COLUMNS} FROM steps WHERE job_id = ? ORDER BY idx", (job_id,)
            ).fetchall()
        return _job_record(row, step_rows)

    def jobs(self, limit: int = 50, unfinished_only: bool = False) -> list[JobRecord]:
        """Newest first; ``unfinished_only`` keeps planned, running, rolling back and needs-attention jobs."""
        where = f"status NOT IN ({_in(FINISHED)})" if unfinished_only else "1"
        with self._transaction(write=False) as db:
            return self._records(db, f"WHERE {where} ORDER BY seq DESC LIMIT ?", [int(limit)])

    def batch_jobs(self, batch: str) -> list[JobRecord]:
        """The jobs of the bulk job ``batch`` (the id in their meta, or a unique prefix of
        it) in the order they were recorded; empty when no job carries it."""
        wanted = str(batch).strip()
        if not wanted:
            return []
        with self._transaction(write=False) as db:
            ids = [r[0] for r in db.execute(
                f"SELECT DISTINCT {_BATCH} FROM jobs WHERE substr({_BATCH}, 1, ?) = ? LIMIT 6", (len(wanted), wanted))]
            if wanted in ids:
                ids = [wanted]
            if len(ids) > 1:
                shown = ", ".join(sorted(ids)[:5]) + (", …" if len(ids) > 5 else "")
                raise NotFound(f"More than one batch starts with “{wanted}” ({shown}); give more of the id.")
            if not ids:
                return []
            return self._records(db, f"WHERE {_BATCH} = ? ORDER BY seq", [ids[0]])

    @staticmethod
    def _records(db: sqlite3.Connection, selection: str, params: list[Any]) -> list[JobRecord]:
        """The jobs ``selection`` (a WHERE … ORDER BY … clause of ``jobs``) picks, each with its steps."""
        rows = db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs {selection}", params).fetchall()
        by_job: dict[str, list[tuple]] = {row[0]: [] for row in rows}
        if rows:
            for step_row in db.execute(
                f"SELECT {_STEP_COLUMNS} FROM steps WHERE job_id IN (SELECT id FROM jobs {selection}) ORDER BY job_id, idx",
                params,
            ):
                by_job[step_row[0]].append(step_row)
        return [_job_record(row, by_job[row[0]]) for row in rows]

    # ------------------------------------------------------------------ checks

    @staticmethod
    def _resolve(db: sqlite3.Connection, job_id: str) -> tuple[str, JobStatus]:
        """The full id and status of the job ``job_id`` names (exactly, or as a unique prefix)."""
        wanted = str(job_id).strip()
        if wanted:
            row = db.execute("SELECT id, status FROM jobs WHERE id = ?", (wanted,)).fetchone()
            if row is not None:
                return row[0], _status(row[0], row[1])
            rows = db.execute(
                "SELECT id, status FROM jobs WHERE substr(id, 1, ?) = ? ORDER BY seq LIMIT 6", (len(wanted), wanted)
            ).fetchall()
            if len(rows) == 1:
                return rows[0][0], _status(*rows[0])
            if len(rows) > 1:
                shown = ", ".join(r[0] for r in rows[:5]) + (", …" if len(rows) > 5 else "")
                raise NotFound(f"More than one job starts with “{wanted}” ({shown}); give more of the id.")
        raise NotFound(f"No job “{wanted}” in the journal.")

    @staticmethod
    def _step_states(db: sqlite3.Connection, job_id: str) -> list[StepState]:
        return [StepState(r[0]) for r in db.execute("SELECT state FROM steps WHERE job_id = ? ORDER BY idx", (job_id,))]

    def _check_step(self, db: sqlite3.Connection, job_id: str, index: int, call: str) -> tuple[str, list[StepState]]:
        accepted, target, statuses = _STEP_CALLS[call]
        job_id, status = self._resolve(db, job_id)
        if status not in statuses:
            raise ValueError(f"Job {job_id} is {status}: {call} needs it {' or '.join(sorted(statuses))}.")
        states = self._step_states(db, job_id)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(states):
            raise ValueError(f"Job {job_id} has no step {index!r} (it has {len(states)}).")
        state = states[index]
        if state not in accepted:
            raise ValueError(f"Step {index} of job {job_id} is {state}; {call} cannot make it {target}.")
        return job_id, states

    @staticmethod
    def _touch(db: sqlite3.Connection, job_id: str, now: str) -> None:
        db.execute("UPDATE jobs SET updated_at = ? WHERE id = ?", (now, job_id))


class _Transaction:
    """``with`` block: the Journal's lock, then ``BEGIN IMMEDIATE`` (write) or ``BEGIN``
    (a consistent read snapshot), committed on success, rolled back on any error."""

    def __init__(self, journal: Journal, write: bool) -> None:
        self.journal = journal
        self.write = write

    def __enter__(self) -> sqlite3.Connection:
        self.journal._lock.acquire()
        try:
            db = self.journal._connection()
            db.execute("BEGIN IMMEDIATE" if self.write else "BEGIN")
        except sqlite3.Error as exc:
            self.journal._lock.release()
            raise StateError(f"The journal {self.journal.path} cannot be used: {exc}.") from None
        except BaseException:
            self.journal._lock.release()
            raise
        self.db = db
        return db

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                try:
                    self.db.execute("COMMIT")
                except sqlite3.Error as error:
                    self._rollback()
                    raise StateError(f"The journal {self.journal.path} could not record the change: {error}.") from None
            else:
                self._rollback()
                if isinstance(exc, sqlite3.Error):
                    raise StateError(f"The journal {self.journal.path} could not record the change: {exc}.") from exc
            return False
        finally:
            self.journal._lock.release()

    def _rollback(self) -> None:
        try:
            self.db.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def _step_record(row: tuple) -> StepRecord:
    return StepRecord(
        index=_integer(row[1]),
        user=_text(row[2]),
        action=_text(row[3]),
        target=_text(row[4]),
        spec=_object(row[5]),
        state=StepState(row[6]),
        undo=_object(row[7]),
        result=_object(row[8]),
        error=_text(row[9], optional=True),
        started_at=_text(row[10], optional=True),
        finished_at=_text(row[11], optional=True),
        undo_started_at=_text(row[12], optional=True),
        undo_finished_at=_text(row[13], optional=True),
        undo_error=_text(row[14], optional=True),
    )


def _job_record(row: tuple, step_rows: Iterable[tuple]) -> JobRecord:
    """The job of a row and its steps' rows; a row that does not read as one (edited or
    damaged on disk) is a :class:`StateError` naming the job, never a half-read job."""
    try:
        return JobRecord(
            id=row[0],
            kind=_text(row[1]),
            status=JobStatus(row[2]),
            operator=_text(row[3]),
            bound_as=_text(row[4]),
            users=_strings(row[5]),
            customers=_strings(row[6]),
            created_at=_text(row[7]),
            updated_at=_text(row[8]),
            error=_text(row[9], optional=True),
            meta=_object(row[10]),
            steps=tuple(_step_record(r) for r in step_rows),
        )
    except (ValueError, TypeError) as exc:  # json.JSONDecodeError is a ValueError
        raise _damaged(row[0], exc) from None


def _status(job_id: str, value: Any) -> JobStatus:
    try:
        return JobStatus(value)
    except ValueError as exc:
        raise _damaged(job_id, exc) from None


def _damaged(job_id: Any, exc: Exception) -> CorruptJob:
    return CorruptJob(
        f"The journal's record of job {plain(str(job_id))} is damaged ({type(exc).__name__}) and cannot be read; "
        "nothing was done: restore the journal from a backup, or roll the job back by hand."
    )


def _text(value: Any, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise TypeError("a text column holds something else")
    return value


def _integer(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError("a number column holds something else")
    return value


def _object(text: Any) -> dict | None:
    value = _load(_text(text, optional=True))
    if value is not None and not isinstance(value, dict):
        raise TypeError("a JSON column holds something other than an object")
    return value


def _strings(text: Any) -> tuple[str, ...]:
    value = _load(_text(text))
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("a list column holds something other than a list of strings")
    return tuple(value)
