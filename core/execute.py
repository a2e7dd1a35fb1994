"""Run a plan as a journaled, all-or-nothing job, as a stream of progress events.

Before each step the journal records it with its undo (the step itself: every action
has a defined inverse); after it, the outcome. A failing step stops the job and the
done steps are undone in reverse order; if an undo fails too, the job is left
``needs_attention`` with exactly what remains. Every step is idempotent and checks its
precondition (compare-and-swap), so a job interrupted by a crash can be resumed or
rolled back by another process (``resume`` / ``rollback``). Rights are checked again
here, on the job and on every step's target, whoever the caller is.

:meth:`Executor.cancel` asks the running jobs to stop: each finishes the step in flight
(an LDAP write or an HTTP call is never cut half-way), then undoes what it did, with
the reason :data:`CANCELLED`; a job of the same executor not started yet refuses to.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Mapping

from core import plan as p
from core.audit import Audit
from core.directory import Directory
from core.escape import dn_key_or_none, parent_dn, rdn_value
from core.directory.layout import dn_key, is_below
from core.directory.replication import DomainController
from core.errors import (
    AlreadyExists, ChangedUnderneath, DirectoryError, DirectoryUnavailable, NotFound, PermissionDenied, TenantryError, UsageError,
    WriteUnknown,
)
from core.journal import JobRecord, JobStatus, Journal, StepState
from core.model import Customer, Operator
from core.plan import Plan, Step
from core.replan import changes_sentence, journaled_request, plan_changes
from core.rights import copy_problems, move_problems, withheld_by_joining
from core.services.base import ServiceAdapter
from core.tenants import problems_of
from core.text import plain


CANCELLED = "cancelled by the operator"
# Directory values that tie a user to a tenant's domains (checked on every step's writes).
ADDRESS_ATTRIBUTES = frozenset({"userprincipalname", "mail"})
TYPED_ADDRESS_ATTRIBUTES = frozenset({"proxyaddresses", "msrtcsip-primaryuseraddress"})  # "smtp:…", "sip:…"
ADDRESS_KINDS = frozenset({"smtp", "sip"})


class Refused(TenantryError):
    """The job was refused before anything was written."""

    exit_code = 3


class PasswordRequired(UsageError):
    """A copy's job sets the new user's password and was given none (passwords are never
    journaled: a resumed copy needs it again)."""


def _needs_password(steps: Iterable[Step]) -> bool:
    return any(step.action == p.SET_PASSWORD for step in steps)


@dataclass(frozen=True)
class Event:
    kind: str  # replanned | job_started | waiting | step_started | step_done | step_failed | rolling_back | step_undone | undo_failed | job_finished
    job: str
    index: int | None = None
    step: Step | None = None
    message: str = ""
    status: str | None = None  # the final status, on job_finished


StepHook = Callable[[int, Step], Awaitable[None]]
Replanner = Callable[[JobRecord, Operator], Awaitable[Plan]]
"""Plans a journaled job again on a fresh read, from the request it kept (core/replan.py)."""

REPLICATION_POLL = 1.0  # seconds between two looks at the other DCs while waiting for replication
MEMORY_INSTANCE = "memory_directory"  # job meta: the in-memory (demo) directory the job ran on


class Executor:
    def __init__(
        self,
        directory: Directory,
        adapters: dict[str, ServiceAdapter],
        journal: Journal,
        audit: Audit,
        *,
        before_step: StepHook | None = None,
        readonly: bool = False,
        replanner: Replanner | None = None,
    ):
        self.readonly = readonly
        self.replanner = replanner  # a planned job whose user changed is planned again with it
        self.directory = directory
        self.adapters = adapters
        self.journal = journal
        self.audit = audit
        self.before_step = before_step  # tests inject faults here
        self._secrets: dict[str, dict[str, str]] = {}  # by job, in memory only: never journaled, logged or audited
        self._dcs: dict[str, Directory] = {}  # by job: the directory pinned to the job's one DC
        self.cancelled = False

    def cancel(self) -> None:
        """Stop every job of this executor before its next step and roll back what it did;
        jobs not started yet refuse to start. The step in flight finishes first."""
        self.cancelled = True

    # -- public ------------------------------------------------------------------
    async def run(
        self, plan: Plan, operator: Operator, *, secrets: Mapping[str, str] | None = None, meta: Mapping[str, Any] | None = None
    ) -> AsyncIterator[Event]:
        """Start a job for ``plan`` and run it to the end (done or rolled back).

        ``secrets``: ``{"password": …}``, the new user's password of a copy, kept in
        memory for the ``set_password`` step and nowhere else. ``meta``: extra job meta
        (e.g. ``{"batch": id}`` of a bulk move), kept in the journal.
        """
        if not plan.ok or not plan.steps:
            raise Refused("The plan has problems; nothing was written.")
        if _needs_password(plan.steps) and not (secrets or {}).get("password"):
            raise PasswordRequired("The copy needs the new user's password; nothing was written.")
        self._refuse_if_cancelled(operator, plan)
        customers = await self._authorize(plan.kind, plan.source, plan.destination, operator)
        d = await self.directory.pin()  # every decision read and write of the job: on this DC
        changed = await self._changed_user(d, ((c.user, c.dn_before, c.version) for c in plan.users))
        if changed is None:
            changed = await self._changing_elsewhere(d, plan)
        if changed is not None:
            self._audit(operator, plan, "refused", None, "the user changed since it was read")
            raise Refused(f"{changed} changed since the plan was made; plan again.")
        await self._check_targets(plan.steps, customers, operator)
        self._refuse_if_cancelled(operator, plan)  # cancelled while the checks above read
        job_id = await asyncio.to_thread(self.journal.create_job, *_job_row(plan, operator, self._meta({**dict(meta or {}), "dc": d.dc.to_json()})))
        with self.journal.claim(job_id):
            self._secrets[job_id] = dict(secrets or {})
            self._dcs[job_id] = d
            await asyncio.to_thread(self.journal.set_status, job_id, JobStatus.RUNNING)
            yield Event("job_started", job_id, message=f"{plan.kind} of {len(plan.users)} user(s), {len(plan.steps)} steps on {d.dc.name}")
            try:
                async for event in self._forward(job_id, operator, resuming=False):
                    yield event
            finally:
                self._secrets.pop(job_id, None)
                self._dcs.pop(job_id, None)

    async def record(self, plans: list[tuple[Plan, Mapping[str, Any]]], operator: Operator) -> list[str]:
        """Journal every plan as a ``planned`` job (all or none, one transaction) without
        running it; ``start`` (or ``resume``) runs one later. A bulk job records its rows
        this way before its first write. Returns the job ids, in order."""
        for plan, _meta in plans:
            if not plan.ok or not plan.steps:
                raise Refused("A plan has problems; nothing was written.")
        return await asyncio.to_thread(self.journal.create_jobs, [_job_row(plan, operator, self._meta(meta)) for plan, meta in plans])

    async def resume(self, job_id: str, operator: Operator, *, secrets: Mapping[str, str] | None = None) -> AsyncIterator[Event]:
        """Finish an interrupted job, or start a ``planned`` one; a copy whose password is
        not set yet needs ``secrets["password"]`` again.

        A job none of whose steps has started is checked like a fresh plan first: a user
        changed (or gone) since the plan was read refuses it, and the job ends ``failed``
        with nothing written. A job another run is working on is refused (JobBusy)."""
        job_id = (await asyncio.to_thread(self.journal.job, job_id)).id  # a unique prefix names it too
        with self.journal.claim(job_id):
            async for event in self._resume(job_id, operator, secrets):
                yield event

    async def rollback(self, job_id: str, operator: Operator) -> AsyncIterator[Event]:
        """Undo what an unfinished job did (refused while another run works on it)."""
        job_id = (await asyncio.to_thread(self.journal.job, job_id)).id
        with self.journal.claim(job_id):
            async for event in self._rollback(job_id, operator):
                yield event

    def _meta(self, meta: Mapping[str, Any] | None) -> dict[str, Any]:
        """A new job's meta: the caller's, plus the in-memory directory it runs on, if any."""
        instance = self.directory.memory_instance
        return {**dict(meta or {}), **({MEMORY_INSTANCE: instance} if instance else {})}

    def _refuse_other_directory(self, job: JobRecord) -> None:
        """A job is resumed or rolled back only on the kind of directory it ran on: a demo
        job only in the demo process that ran it (the demo directory lives in memory, so
        after a restart what it wrote is gone), a real job never on the demo."""
        ran_on = (job.meta or {}).get(MEMORY_INSTANCE)
        if ran_on == self.directory.memory_instance:
            return
        if ran_on:
            raise Refused(f"Job {job.id} ran on an earlier demo directory, which lived in memory and is gone: "
                          "it can be neither resumed nor rolled back; nothing was done.")
        raise Refused(f"Job {job.id} ran on a real directory, not on this demo one; nothing was done.")

    async def _resume(self, job_id: str, operator: Operator, secrets: Mapping[str, str] | None) -> AsyncIterator[Event]:
        job = await asyncio.to_thread(self.journal.job, job_id)
        self._refuse_other_directory(job)
        if not job.is_finished and not job.can_resume:  # stopped mid-rollback: it can only go on backwards
            raise Refused(f"Job {job.id} cannot be resumed: part of it has been undone already; roll it back to finish it.")
        if job.status not in (JobStatus.RUNNING, JobStatus.NEEDS_ATTENTION, JobStatus.PLANNED):
            raise Refused(f"Job {job.id} is {job.status.value}; only an unfinished job can be resumed.")
        if self.cancelled:
            if job.status == JobStatus.PLANNED:  # a batch row never started: it ends here, nothing written
                await asyncio.to_thread(self.journal.set_status, job.id, JobStatus.ROLLED_BACK, CANCELLED)
                raise Refused(f"Job {job.id} was not started: {CANCELLED}.")
            raise Refused(f"Job {job.id} was not resumed: {CANCELLED}.")
        if needs_password_to_resume(job) and not (secrets or {}).get("password"):
            raise PasswordRequired(f"Job {job.id} still has to set the new user's password, which is never kept: give it again (--password-stdin).")
        customers = await self._authorize(job.kind, *_customers(job), operator)
        await self._check_targets([Step.from_json(s.spec) for s in job.steps], customers, operator)
        fresh = job.status in (JobStatus.PLANNED, JobStatus.RUNNING) and all(s.state == StepState.PENDING for s in job.steps)
        try:
            async for event in self._pin_job(job, operator):
                yield event
            d = self._dcs.get(job.id)
            if d is None:
                return
            replanned = ""
            if fresh:
                await self._refuse_without_dependencies(job, d)
                changed = await self._changed_user(d, _journaled_users(job))
                if changed is not None:
                    job, replanned = await self._replan(job, operator, changed, d)
            self._secrets[job.id] = dict(secrets or {})
            if job.status != JobStatus.RUNNING:
                await asyncio.to_thread(self.journal.set_status, job.id, JobStatus.RUNNING)
            if replanned:
                yield Event("replanned", job.id, message=replanned)
            yield Event("job_started", job.id, message=("starting" if job.status == JobStatus.PLANNED else "resuming") + f" on {d.dc.name}")
            async for event in self._forward(job.id, operator, resuming=not fresh):
                yield event
        finally:
            self._secrets.pop(job.id, None)
            self._dcs.pop(job.id, None)

    async def _rollback(self, job_id: str, operator: Operator) -> AsyncIterator[Event]:
        job = await asyncio.to_thread(self.journal.job, job_id)
        self._refuse_other_directory(job)
        if job.is_finished:
            raise Refused(f"Job {job.id} is {job.status.value}; only an unfinished job can be rolled back.")
        customers = await self._authorize(job.kind, *_customers(job), operator)
        await self._check_targets([Step.from_json(s.spec) for s in job.steps], customers, operator)
        yield Event("job_started", job.id, message="rolling back")
        if job.status == JobStatus.PLANNED:  # never started: nothing to undo
            reason = "rolled back on request before it started"
            await asyncio.to_thread(self.journal.set_status, job.id, JobStatus.ROLLED_BACK, reason)
            self._audit_job(operator, job, JobStatus.ROLLED_BACK.value, reason)
            yield Event("job_finished", job.id, status=JobStatus.ROLLED_BACK.value, message=reason)
            return
        try:
            async for event in self._pin_job(job, operator):
                yield event
            if job.id in self._dcs:
                async for event in self._backward(job.id, operator, reason="rolled back on request"):
                    yield event
        finally:
            self._dcs.pop(job.id, None)

    # -- the job's domain controller --------------------------------------------------
    async def _pin_job(self, job: JobRecord, operator: Operator) -> AsyncIterator[Event]:
        """Find the DC a resume or rollback of ``job`` works on and keep it in ``_dcs``: the
        DC the job is pinned to; if it does not answer, another DC that provably holds
        every write of the job (its up-to-dateness vector for the job DC's invocation id
        has reached the highest USN the job journaled). When none does yet, the DCs that
        answer are asked to pull the job's objects from the job's DC and are waited for,
        ``[directory] replication_wait`` seconds at most. Else the job needs attention,
        with one sentence naming the job's DC, and ``_dcs`` has no entry for it."""
        recorded = DomainController.from_json(job.dc)
        if recorded is None or not _wrote(job):
            d = await self.directory.pin()  # nothing written yet (or a job journaled before pinning): the first DC that answers
            await asyncio.to_thread(self.journal.record_dc, job.id, d.dc.to_json())
            self._dcs[job.id] = d
            return
        try:
            self._dcs[job.id] = await self.directory.pin(recorded.url)
            return
        except DirectoryUnavailable as error:
            down = str(error).rstrip(".")
        needed = highest_usn(job)
        if recorded.invocation_id and needed is not None:
            holder, answering = await self._holding(recorded, needed)
            wait = self.directory.config.directory.replication_wait
            if holder is None and answering and wait > 0:
                dns, guids = _written_objects(job)
                asked = [other.dc.name for other in answering if await other.ask_to_replicate(recorded, dns, guids) is None]
                yield Event("waiting", job.id, message=(
                    f"{recorded.name} does not answer and no other domain controller holds all the job's writes yet: "
                    f"waiting up to {wait:g} s for replication" + (f" (asked {', '.join(asked)} to pull them now)" if asked else "")
                ))
                clock = asyncio.get_running_loop()
                deadline = clock.time() + wait
                while holder is None and clock.time() < deadline:
                    await asyncio.sleep(min(REPLICATION_POLL, max(0.0, deadline - clock.time())))
                    holder, _answering = await self._holding(recorded, needed)
            if holder is not None:
                await asyncio.to_thread(self.journal.record_dc, job.id, holder.dc.to_json())
                self._dcs[job.id] = holder
                return
        reason = (
            f"{recorded.name}, the domain controller job {job.id} wrote to, does not answer ({down}), and no other "
            "domain controller is known to hold all its writes: start it again (or let it replicate), then try again."
        )
        async for event in self._needs_attention(job, operator, reason):
            yield event

    async def _holding(self, recorded: DomainController, needed: int) -> tuple[Directory | None, list[Directory]]:
        """The first other configured DC that holds every write a job made on ``recorded``
        (``needed``: the highest USN it journaled there), and the other DCs that answer."""
        answering: list[Directory] = []
        for url in self.directory.config.directory.urls:
            if url == recorded.url:
                continue
            try:
                other = await self.directory.pin(url)
                seen = await other.received()
            except DirectoryError:
                continue
            if other.dc.invocation_id == recorded.invocation_id or (seen or {}).get(recorded.invocation_id, -1) >= needed:
                return other, answering
            answering.append(other)
        return None, answering

    async def _changing_elsewhere(self, d: Directory, plan: Plan) -> str | None:
        """The first user of ``plan`` that another configured DC (one that answers) has in
        another state than the job's DC: a change there (another job, say) has not
        replicated yet, and running now would build on a state about to be overwritten.
        Worded like a change since the plan; ``None`` when every DC that answers agrees."""
        for url in self.directory.config.directory.urls:
            if url == d.dc.url:
                continue
            try:
                other = await self.directory.pin(url)
            except DirectoryUnavailable:
                continue  # cannot tell: the job's own DC decides
            changed = await self._changed_user(other, ((c.user, c.dn_before, c.version) for c in plan.users))
            if changed is not None:
                return f"{changed} (on {other.dc.name}, not yet replicated to {d.dc.name})"
        return None

    async def _refuse_without_dependencies(self, job: JobRecord, d: Directory) -> None:
        """A batch row that waits for other rows (a role group one of them creates) starts
        only once they are done, and on a DC that holds their writes: theirs, or one whose
        up-to-dateness vector covers them. Else it is refused and stays planned (nothing written)."""
        after = set(job.meta.get("after") or ())
        if not after or not job.batch:
            return
        for other in await asyncio.to_thread(self.journal.batch_jobs, job.batch):
            if other.meta.get("row") not in after:
                continue
            dc = DomainController.from_json(other.dc)
            if other.status != JobStatus.DONE:  # what this row needs is not (or no longer) there
                then = ("resume it once that row is done" if not other.is_finished
                        else "roll it back, and move or copy its user again")
                where = f" on {dc.name}" if dc is not None and _wrote(other) else ""
                raise Refused(f"Job {job.id} waits for job {other.id} ({plain(str(other.meta.get('row')))}), which is "
                              f"{other.status.value.replace('_', ' ')}{where}; nothing was written: {then}.")
            if dc is None or dc.url == d.dc.url:
                continue
            needed = highest_usn(other)
            seen = await d.received()
            if needed is None or (seen or {}).get(dc.invocation_id, -1) < needed:
                raise Refused(
                    f"Job {job.id} waits for job {other.id}, whose writes on {dc.name} have not reached {d.dc.name}; "
                    f"nothing was written: resume it once {dc.name} answers or has replicated."
                )

    async def _replan(self, job: JobRecord, operator: Operator, changed: str, d: Directory) -> tuple[JobRecord, str]:
        """A job that has written nothing, whose user ``changed`` since its plan: planned
        again on a fresh read (nothing written either way). The same steps: the job and
        the sentence to start it with; other steps (or no fresh plan): :class:`Refused`
        naming what changed, the job left ``planned`` to resume on its new plan or roll back."""
        reason = f"{changed} changed since the plan was made; nothing was written"
        if self.replanner is None or journaled_request(job) is None:  # a job journaled before requests were kept
            self._audit_job(operator, job, "refused", "the user changed since it was read")
            raise Refused(f"Job {job.id}: {reason}; plan it again, or roll it back.")
        try:
            fresh = await self.replanner(job, operator)
        except UsageError as error:  # the user (or a customer) is gone: no plan can be made
            fresh = Plan(job.kind, None, None, problems=(p.Problem(p.CHANGED, str(error)),))
        if not fresh.ok:
            problems = " ".join(x.message for x in fresh.problems)
            self._audit_job(operator, job, "refused", f"the user changed since it was read; a fresh plan is refused: {problems}")
            raise Refused(f"Job {job.id}: {reason}, and a fresh plan of it is refused: {problems} Roll it back.")
        changes = plan_changes([Step.from_json(s.spec) for s in job.steps], fresh.steps)
        await asyncio.to_thread(self.journal.replan, job.id, [s.to_json() for s in fresh.steps], [c.__dict__ for c in fresh.users])
        job = await asyncio.to_thread(self.journal.job, job.id)
        if changes:
            what = changes_sentence(changes)
            self._audit_job(operator, job, "planned", f"the user changed since it was read; planned again: {what}")
            raise Refused(f"Job {job.id}: {reason}; it is planned again on a fresh read ({what}): resume it to run the new plan, or roll it back.")
        still = await self._changed_user(d, _journaled_users(job))
        if still is not None:  # the fresh read came from another DC, which has a change d has not yet
            self._audit_job(operator, job, "refused", "the user changed since it was read")
            raise Refused(f"Job {job.id}: {still} changed on another domain controller, not yet replicated to {d.dc.name}; "
                          "nothing was written: resume it once it has.")
        return job, f"{changed} changed since the plan was made, in nothing this job writes: planned again, the same steps"

    async def _needs_attention(self, job: JobRecord, operator: Operator, reason: str) -> AsyncIterator[Event]:
        """End a resume or rollback that cannot work anywhere now: the job needs attention."""
        yield Event("job_started", job.id, message="checking where its writes are")
        if job.status != JobStatus.NEEDS_ATTENTION or job.error != reason:
            await asyncio.to_thread(self.journal.set_status, job.id, JobStatus.NEEDS_ATTENTION, reason)
        self._audit_job(operator, job, JobStatus.NEEDS_ATTENTION.value, reason)
        yield Event("job_finished", job.id, status=JobStatus.NEEDS_ATTENTION.value, message=reason)

    # -- running -------------------------------------------------------------------
    async def _forward(self, job_id: str, operator: Operator, *, resuming: bool) -> AsyncIterator[Event]:
        job = await asyncio.to_thread(self.journal.job, job_id)
        d = self._dcs[job_id]
        renames = _renames(job)
        for record in job.steps:
            if record.state == StepState.DONE:
                if resuming:  # journaled done: its effect must be there before it is skipped
                    problem = await self._unverified(d, Step.from_json(record.spec), record.result, renames)
                    if problem:
                        async for event in self._backward(job_id, operator, reason=problem):
                            yield event
                        return
                continue
            if self.cancelled:  # between steps: the one before has finished, this one has not begun
                async for event in self._backward(job_id, operator, reason=CANCELLED):
                    yield event
                return
            step = Step.from_json(record.spec)
            yield Event("step_started", job_id, record.index, step)
            try:
                await asyncio.to_thread(self.journal.step_starting, job_id, record.index, None)  # the step is its own undo data
                if self.before_step is not None:
                    await self.before_step(record.index, step)
                result = await self._perform(job_id, step, resuming=resuming or record.state != StepState.PENDING)
            except (TenantryError, OSError) as error:
                message = str(error) or type(error).__name__
                if isinstance(error, DirectoryUnavailable) and step.action != p.HTTP:
                    async for event in self._dc_lost(job_id, operator, record.index, step, sent=isinstance(error, WriteUnknown)):
                        yield event
                    return
                await asyncio.to_thread(self.journal.step_failed, job_id, record.index, message)
                yield Event("step_failed", job_id, record.index, step, message)
                async for event in self._backward(job_id, operator, reason=message, failed_http=step if step.action == p.HTTP else None):
                    yield event
                return
            if step.action != p.HTTP:
                result = {**(result or {}), **await _written_at(d)}
            await asyncio.to_thread(self.journal.step_done, job_id, record.index, result)
            # a service may say what it left running (an Exchange move request) in its result's note
            yield Event("step_done", job_id, record.index, step, str((result or {}).get("note") or ""))
        await asyncio.to_thread(self.journal.set_status, job_id, JobStatus.DONE)
        job = await asyncio.to_thread(self.journal.job, job_id)
        self._audit_job(operator, job, "done")
        yield Event("job_finished", job_id, status=JobStatus.DONE.value, message="done")

    async def _dc_lost(self, job_id: str, operator: Operator, index: int, step: Step, *, sent: bool) -> AsyncIterator[Event]:
        """The job's DC stopped answering at step ``index``: nothing can be undone there now
        and no other DC may take over (it may lack the job's writes), so the job is left
        as it is to be resumed or rolled back once its DC answers. A write sent before the
        DC went silent stays ``running``: unknown, re-read by whatever comes next."""
        name = self._dcs[job_id].dc.name
        if sent:
            message = f"{name} stopped answering during step {index + 1}, which it may still apply"
        else:
            message = f"{name} stopped answering before step {index + 1}"
            await asyncio.to_thread(self.journal.step_failed, job_id, index, message)
        yield Event("step_failed", job_id, index, step, message)
        reason = f"{message}; nothing else was written: resume or roll back the job once {name} answers."
        await asyncio.to_thread(self.journal.set_status, job_id, JobStatus.NEEDS_ATTENTION, reason)
        job = await asyncio.to_thread(self.journal.job, job_id)
        self._audit_job(operator, job, JobStatus.NEEDS_ATTENTION.value, reason)
        yield Event("job_finished", job_id, status=JobStatus.NEEDS_ATTENTION.value, message=reason)

    async def _backward(self, job_id: str, operator: Operator, *, reason: str, failed_http: Step | None = None) -> AsyncIterator[Event]:
        await asyncio.to_thread(self.journal.set_status, job_id, JobStatus.ROLLING_BACK, reason)
        yield Event("rolling_back", job_id, message=reason)
        job = await asyncio.to_thread(self.journal.job, job_id)
        d = self._dcs[job_id]
        # A failed HTTP call may have half-happened: undo it too (undo is idempotent).
        records = list(job.steps_to_undo)
        if failed_http is not None:
            records = [s for s in job.steps if s.state == StepState.FAILED and s.action == p.HTTP] + records
        remaining: list[str] = []
        for record in records:
            step = Step.from_json(record.spec)
            try:
                await asyncio.to_thread(self.journal.undo_starting, job_id, record.index)
                await self._undo(d, step, record.result)
                if step.action != p.HTTP:
                    usn = (await _written_at(d)).get("usn")
                    if usn is not None:
                        await asyncio.to_thread(self.journal.record_usn, job_id, usn)
            except (TenantryError, OSError) as error:
                message = str(error) or type(error).__name__
                await asyncio.to_thread(self.journal.undo_failed, job_id, record.index, message)
                remaining.append(f"step {record.index + 1} ({step.action} {step.target}): {message}")
                yield Event("undo_failed", job_id, record.index, step, message)
                continue
            await asyncio.to_thread(self.journal.undo_done, job_id, record.index)
            yield Event("step_undone", job_id, record.index, step)
        if remaining:
            detail = f"{reason}; undo incomplete on {d.dc.name}: " + "; ".join(remaining)
            await asyncio.to_thread(self.journal.set_status, job_id, JobStatus.NEEDS_ATTENTION, detail)
            status = JobStatus.NEEDS_ATTENTION
        else:
            await asyncio.to_thread(self.journal.set_status, job_id, JobStatus.ROLLED_BACK, reason)
            status = JobStatus.ROLLED_BACK
        job = await asyncio.to_thread(self.journal.job, job_id)
        self._audit_job(operator, job, status.value, reason)
        yield Event("job_finished", job_id, status=status.value, message=job.error or reason)

    # -- steps and their inverses --------------------------------------------------------
    async def _perform(self, job_id: str, step: Step, *, resuming: bool) -> dict[str, Any] | None:
        d = self._dcs[job_id]
        if step.action == p.MODIFY:
            await _swap(d, step.target, step.before, step.after)
        elif step.action == p.MOVE:
            if not (resuming and not await d.exists(step.target) and await d.exists(step.after)):
                await d.move(step.target, parent_dn(step.after), rdn_value(step.after))
        elif step.action == p.ADD_MEMBER:
            await d.add_member(step.target, step.after)
        elif step.action == p.REMOVE_MEMBER:
            await d.remove_member(step.target, step.before)
        elif step.action == p.CREATE_GROUP:
            try:
                await d.create_group(step.target, step.after["sam"], step.after.get("description"))
            except AlreadyExists:
                if not resuming:
                    raise
        elif step.action == p.ADD_USER:
            try:
                await d.add_user(step.target, step.after)
            except AlreadyExists:
                # After a crash the account may be there already: only this job's counts.
                if not (resuming and await _created_by(d, step, None)):
                    raise
            guid = (await d.values(step.target, ["objectGUID"])).get("objectGUID") or [None]
            return {"guid": guid[0]}
        elif step.action == p.SET_PASSWORD:
            password = self._secrets.get(job_id, {}).get("password")
            if not password:
                raise PasswordRequired("The new user's password is needed again to set it; nothing more was written.")
            await d.set_password(step.target, password)
        elif step.action == p.HTTP:
            return await self.adapters[step.service].perform(step)
        else:
            raise ValueError(f"unknown step action {step.action!r}")
        return None

    async def _undo(self, d: Directory, step: Step, result: dict[str, Any] | None) -> None:
        """Undo ``step`` on the job's DC ``d`` (one that holds every write of the job, so
        "not found" and "not a member" there mean the step's effect is not in effect)."""
        if step.action == p.MODIFY:
            await _swap(d, step.target, step.after, step.before)
        elif step.action == p.MOVE:
            if await d.exists(step.after):
                await d.move(step.after, parent_dn(step.target), rdn_value(step.target))
        elif step.action == p.ADD_MEMBER:
            await d.remove_member(step.target, step.after)
        elif step.action == p.REMOVE_MEMBER:
            await d.add_member(step.target, step.before)
        elif step.action == p.CREATE_GROUP:
            try:
                await d.delete(step.target)
            except NotFound:
                pass
        elif step.action == p.ADD_USER:
            if not await d.exists(step.target):
                return
            if not await _created_by(d, step, result):
                raise DirectoryError(f"{step.target} is not the account this job created; it was left alone.")
            try:
                await d.delete(step.target)
            except NotFound:
                pass
        elif step.action == p.SET_PASSWORD:
            pass  # undone with the account itself (the add_user step's undo deletes it)
        elif step.action == p.HTTP:
            await self.adapters[step.service].undo(step, result)

    @staticmethod
    async def _unverified(d: Directory, step: Step, result: dict[str, Any] | None, renames: dict) -> str | None:
        """Why ``step``, journaled done, does not show on the job's DC ``d``; ``None`` when it
        does. DNs are followed through the job's moves that may have run."""
        def now(dn: str) -> str:
            return renames.get(dn_key(dn), dn)

        if step.action == p.MODIFY:
            current: dict[str, list[str]] = {}
            for target in dict.fromkeys([step.target, now(step.target)]):  # a move after it may have run
                with contextlib.suppress(NotFound):
                    current = await d.values(target, list(step.after))
                    break
            shown = all(_folded(current.get(a, [])) == _folded(v) for a, v in step.after.items())
        elif step.action == p.MOVE:
            shown = await d.exists(step.after)
        elif step.action == p.ADD_MEMBER:
            shown = await d.is_member(now(step.target), now(step.after))
        elif step.action == p.REMOVE_MEMBER:
            shown = not await d.is_member(now(step.target), now(step.before))
        elif step.action == p.CREATE_GROUP:
            shown = await d.exists(step.target)
        elif step.action == p.ADD_USER:
            shown = await _created_by(d, step, result)
        else:
            return None  # a password or a service call: the directory cannot show it
        if shown:
            return None
        return f"step {step.action} {step.target} is journaled done but {d.dc.name} does not show it; the job is rolled back"

    @staticmethod
    async def _changed_user(d: Directory, users: Iterable[tuple[str | None, str | None, str | None]]) -> str | None:
        """The first of ``(name, dn, version)`` whose entry changed (or is gone) on ``d``
        since that read (the replicated values, the same on every DC); ``None`` when every
        one is as it was."""
        for name, dn, version in users:
            if not dn:
                return name or "the user"
            try:
                current = await d.user(dn)
            except NotFound:
                return name or dn or "the user"
            if current.version != version:
                return name or dn
        return None

    # -- rights and audit --------------------------------------------------------------
    def _refuse_if_cancelled(self, operator: Operator, plan: Plan) -> None:
        if self.cancelled:
            self._audit(operator, plan, "refused", None, f"{CANCELLED} before the job started; nothing was written")
            raise Refused(f"Not started: {CANCELLED}; nothing was written.")

    async def _authorize(self, kind: str, source: str | None, destination: str | None, operator: Operator) -> list[Customer]:
        """The job's customers, read fresh, once the operator's rights over them and the
        tenant map (an entry each, no claim on another tenant's code or domain) allow it."""
        # Rights need only where the customers are, not their services.
        customers = [await self.directory.customer(name, with_services=False) for name in _names(source, destination)]
        if kind == "copy" or len(customers) == 1:
            problems = copy_problems(operator, customers[0], readonly_mode=self.readonly)
        else:
            problems = move_problems(operator, customers[0], customers[1], readonly_mode=self.readonly)
        if problems:
            raise PermissionDenied(" ".join(x.message for x in problems))
        tenants = [x for c in customers for x in problems_of(c, self.directory.config.tenants)]
        if tenants:
            raise PermissionDenied(" ".join(x.message for x in tenants) + " Nothing was written.")
        return customers

    async def _check_targets(self, steps: Iterable[Step], customers: list[Customer], operator: Operator) -> None:
        """Every step must stay inside the job's customers: each DN it writes or names as a
        member — but for leaving a group outside every customer when ``[layout]
        outside_groups = "leave"`` — and each service call (its tenant, path and body, as
        its adapter judges); it joins no role group the operator may not grant
        (``[layout] role_order``). A step edited in the journal to reach elsewhere fails the
        whole job closed."""
        scope = [dn_key(c.dn) for c in customers]
        steps = list(steps)
        users, looked_up = _user_dns(steps), {}  # the job's users; objectGUID → DN, read once
        for step in steps:
            if step.action == p.HTTP:
                adapter = self.adapters.get(step.service or "")
                reason = f"is a call of service {step.service!r}, which is not configured" if adapter is None else adapter.foreign_call(step, customers)
                if reason is None and adapter is not None:
                    reason = await self._foreign_identity(adapter.identities(step), users, looked_up)
                if reason:
                    raise PermissionDenied(f"A step ({plain(step.target)}) {reason}; nothing was written.")
                continue
            for dn in _named_dns(step):
                key = dn_key_or_none(dn)
                if key is None or not any(key[-len(s):] == s for s in scope):
                    if step.action == p.REMOVE_MEMBER and dn is step.target and key is not None and await self._platform_group(dn):
                        continue
                    raise PermissionDenied(f"A step touches {plain(str(dn))}, outside the customers of this job; nothing was written.")
            value = self._foreign_value(step, customers)
            if value is not None:
                raise PermissionDenied(f"A step writes {plain(value)} to {plain(step.target)}, a value of none of the customers of this job; nothing was written.")
            customer = next((c for c in customers if is_below(step.target, c.dn)), None) if step.action == p.ADD_MEMBER else None
            why = await withheld_by_joining(self.directory, operator, customer, step.target) if customer else None
            if why:
                raise PermissionDenied(f"{why} Nothing was written.")

    async def _foreign_identity(self, identities: Iterable[str], users: set, looked_up: dict) -> str | None:
        """Why a service call's object is not a user of this job: an objectGUID is looked up
        (a value edited into the journal may name any object of any tenant), a DN compared."""
        for identity in identities:
            if "=" not in identity and identity not in looked_up:
                looked_up[identity] = await self.directory.dn_of_guid(identity)
            dn = identity if "=" in identity else looked_up[identity]
            key = dn_key_or_none(dn) if dn else None
            if key is None or key not in users:
                return f"acts on {plain(identity)}, which is not the user of this job"
        return None

    async def _platform_group(self, dn: str) -> bool:
        """A group outside every customer, which a moved user may leave (``outside_groups = "leave"``)."""
        return self.directory.config.layout.outside_groups == "leave" and not await self.directory.inside_a_customer(dn)

    def _foreign_value(self, step: Step, customers: list[Customer]) -> str | None:
        """The first tenant-bound value a directory step writes that belongs to none of the
        job's customers: an address-book value other than their codes (tenant map), or a
        UPN, mail, SMTP or SIP address outside their domains."""
        if step.action not in (p.MODIFY, p.ADD_USER) or not isinstance(step.after, dict):
            return None
        codes = {c.code.casefold() for c in customers if c.code}
        domains = {d.casefold() for c in customers for d in (*c.domains, *c.claimed_domains)}
        book = self.directory.config.layout.address_book_attribute.casefold()
        for attribute, values in step.after.items():
            name = str(attribute).casefold()
            for value in values if isinstance(values, list) else [values]:
                text = str(value)
                if name == book and text.casefold() not in codes:
                    return f"{attribute} = {text}"
                kind, colon, address = text.partition(":")
                if name in ADDRESS_ATTRIBUTES or (colon and kind.casefold() in ADDRESS_KINDS and name in TYPED_ADDRESS_ATTRIBUTES):
                    address = address if colon and kind.casefold() in ADDRESS_KINDS else text
                    if address.rpartition("@")[2].casefold() not in domains:
                        return f"{attribute} = {text}"
        return None

    def _audit(self, operator: Operator, plan: Plan, result: str, job: str | None, detail: str) -> None:
        self.audit.record(
            operator=operator.name, bound_as=operator.bound_as, action=plan.kind,
            users=_plan_users(plan), customers=_names(plan.source, plan.destination),
            result=result, job=job, detail=detail,
        )

    def _audit_job(self, operator: Operator, job: JobRecord, result: str, detail: str = "") -> None:
        self.audit.record(
            operator=operator.name, bound_as=operator.bound_as, action=job.kind,
            users=_audited_users(job.kind, job.names, (job.meta or {}).get("users")),
            customers=list(job.customers), result=result, job=job.id, detail=detail,
        )


def _audited_users(kind: str, names: Iterable[str], changes: Any) -> list[str]:
    """The users an audit row names: each by its UPN before the job; a copy also names the
    account it creates, so searching the audit for the new user finds its creation."""
    users = list(names)
    if kind == "copy" and isinstance(changes, list):
        users += [str(c["upn_after"]) for c in changes if isinstance(c, dict) and c.get("upn_after")]
    return users


def _plan_users(plan: Plan) -> list[str]:
    return _audited_users(plan.kind, [c.upn_before or c.user for c in plan.users], [c.__dict__ for c in plan.users])


def _job_row(plan: Plan, operator: Operator, meta: Mapping[str, Any] | None) -> tuple:
    """The journal's ``create_job`` arguments for ``plan``: its users' reads go in the meta."""
    return (
        plan.kind, operator.name, operator.bound_as, [c.user for c in plan.users], _names(plan.source, plan.destination),
        [s.to_json() for s in plan.steps], {**dict(meta or {}), "users": [c.__dict__ for c in plan.users]},
    )


async def _created_by(d: Directory, step: Step, result: dict[str, Any] | None) -> bool:
    """Whether the account at ``step.target`` is the one ``step`` created: the same
    objectGUID as its result, or — the result lost in a crash — the same username
    and UPN as it was created with."""
    try:
        current = await d.values(step.target, ["objectGUID", "sAMAccountName", "userPrincipalName"])
    except NotFound:
        return False
    guid = (result or {}).get("guid")
    if guid:
        return _folded(current.get("objectGUID", [])) == {str(guid).casefold()}
    wanted = step.after or {}
    return all(
        _folded(current.get(attribute, [])) == _folded(wanted.get(attribute, []))
        for attribute in ("sAMAccountName", "userPrincipalName")
    )


async def _swap(d: Directory, dn: str, old: dict[str, list[str]], new: dict[str, list[str]]) -> None:
    """Compare-and-swap; if it finds the target state already there, that is success."""
    try:
        await d.modify(dn, {a: (old.get(a, []), new.get(a, [])) for a in new})
    except ChangedUnderneath:
        current = await d.values(dn, list(new))
        if any(_folded(current.get(a, [])) != _folded(v) for a, v in new.items()):
            raise


async def _written_at(d: Directory) -> dict[str, int]:
    """``{"usn": n}``: the DC's highestCommittedUSN after a write (empty where it has none,
    or when it stopped answering right after: then the write's place is unknown)."""
    try:
        usn = await d.committed_usn()
    except DirectoryError:
        return {}
    return {} if usn is None else {"usn": usn}


def _renames(job: JobRecord) -> dict[tuple, str]:
    """Where the job's moves that may have run (done, or interrupted) took each object:
    old DN key → new DN."""
    return {dn_key(s.target): s.spec.get("after") for s in job.steps if s.action == p.MOVE and s.state in (StepState.DONE, StepState.RUNNING)}


def _wrote(job: JobRecord) -> bool:
    """Whether a directory step of the job may have written (anything but pending or failed)."""
    return any(s.action != p.HTTP and s.state not in (StepState.PENDING, StepState.FAILED) for s in job.steps)


def _written_objects(job: JobRecord) -> tuple[list[str], list[str]]:
    """The objects a job's directory steps may have written, for another DC to pull: by DN
    (each step's target; a move's new DN too) and, for those it created, by the
    objectGUID its result journaled (the other DC may not have them at all)."""
    dns: dict[str, None] = {}
    guids: dict[str, None] = {}
    for s in job.steps:
        if s.action == p.HTTP or s.state in (StepState.PENDING, StepState.FAILED):
            continue
        dns[str(s.target)] = None
        if s.action == p.MOVE and isinstance(s.spec.get("after"), str):
            dns[s.spec["after"]] = None
        if (s.result or {}).get("guid"):
            guids[str(s.result["guid"])] = None
    return list(dns), list(guids)


def highest_usn(job: JobRecord) -> int | None:
    """The highest USN the job's DC reached with the job's writes (its undos' included);
    ``None`` when a forward write's place is unknown: in flight when the DC stopped
    answering, or its USN not read. (An undo in flight is harmless elsewhere: undoing
    again on another DC converges to the same state.)"""
    if (job.dc or {}).get("previous"):
        return None  # the job moved to this DC once: its USNs are spread over two DCs
    usns = [int((job.dc or {}).get("usn") or 0)]
    for s in job.steps:
        if s.action == p.HTTP or s.state in (StepState.PENDING, StepState.FAILED):
            continue
        usn = (s.result or {}).get("usn")
        if usn is None and s.state != StepState.UNDONE:
            return None
        usns.append(int(usn or 0))
    return max(usns)


def _journaled_users(job: JobRecord) -> list[tuple[str | None, str | None, str | None]]:
    """``(name, dn, version)`` of each user the job's plan read (a job without users: one
    unnamed entry, so it counts as changed and is never run blind)."""
    users = [u for u in (job.meta.get("users") or []) if isinstance(u, dict)]
    return [(u.get("user"), u.get("dn_before"), u.get("version")) for u in users] or [(None, None, None)]


def _customers(job: JobRecord) -> tuple[str | None, str | None]:
    names = list(job.customers) + [None, None]
    return names[0], names[1]


def _names(*names: str | None) -> list[str]:
    """The customers' names, each once (a copy's source and destination are the same)."""
    out: list[str] = []
    for name in names:
        if name and name not in out:
            out.append(name)
    return out


def needs_password_to_resume(job: JobRecord) -> bool:
    """Whether resuming ``job`` has to set a password (its ``set_password`` step is not done)."""
    return any(s.action == p.SET_PASSWORD and s.state != StepState.DONE for s in job.steps)


def _user_dns(steps: Iterable[Step]) -> set:
    """The DN keys of the job's users: where its directory steps create, move, modify and set
    the password of a user (before and after a move)."""
    keys = set()
    for step in steps:
        dns = [step.target, step.after] if step.action == p.MOVE else [step.target] if step.action in (p.ADD_USER, p.MODIFY, p.SET_PASSWORD) else []
        keys.update(key for dn in dns if isinstance(dn, str) and (key := dn_key_or_none(dn)) is not None)
    return keys


def _named_dns(step: Step) -> list[Any]:
    """The DNs a directory step writes or names: its target, a move's new DN, a
    membership's member."""
    named: list[Any] = [step.target]
    if step.action in (p.MOVE, p.ADD_MEMBER):
        named.append(step.after)
    elif step.action == p.REMOVE_MEMBER:
        named.append(step.before)
    return named


def _folded(values) -> set[str]:
    return {str(v).casefold() for v in values}


def audit_refusal(audit: Audit, operator: Operator, plan: Plan) -> None:
    """Record a refused plan; one refused for rights is a denied attempt."""
    denied = any(x.code == p.NOT_ALLOWED for x in plan.problems)
    audit.record(
        operator=operator.name, bound_as=operator.bound_as, action=plan.kind,
        users=_plan_users(plan), customers=_names(plan.source, plan.destination),
        result="denied" if denied else "refused", detail="; ".join(x.message for x in plan.problems),
    )
