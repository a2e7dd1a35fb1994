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
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable, Iterable, Mapping

from core import plan as p
from core.audit import Audit
from core.directory import Directory
from core.directory.escape import dn_key_or_none, parent_dn, rdn_value
from core.directory.layout import dn_key, is_below
from core.errors import AlreadyExists, ChangedUnderneath, DirectoryError, NotFound, PermissionDenied, TenantryError, UsageError
from core.journal import JobRecord, JobStatus, Journal, StepState
from core.model import Customer, Operator
from core.plan import Plan, Step
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
    kind: str  # job_started | step_started | step_done | step_failed | rolling_back | step_undone | undo_failed | job_finished
    job: str
    index: int | None = None
    step: Step | None = None
    message: str = ""
    status: str | None = None  # the final status, on job_finished


StepHook = Callable[[int, Step], Awaitable[None]]

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
    ):
        self.readonly = readonly
        self.directory = directory
        self.adapters = adapters
        self.journal = journal
        self.audit = audit
        self.before_step = before_step  # tests inject faults here
        self._secrets: dict[str, dict[str, str]] = {}  # by job, in memory only: never journaled, logged or audited
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
        changed = await self._changed_user((c.user, c.dn_before, c.usn_changed) for c in plan.users)
        if changed is not None:
            self._audit(operator, plan, "refused", None, "the user changed since it was read")
            raise Refused(f"{changed} changed since the plan was made; plan again.")
        await self._check_targets(plan.steps, customers, operator)
        self._refuse_if_cancelled(operator, plan)  # cancelled while the checks above read
        job_id = await asyncio.to_thread(self.journal.create_job, *_job_row(plan, operator, self._meta(meta)))
        with self.journal.claim(job_id):
            self._secrets[job_id] = dict(secrets or {})
            await asyncio.to_thread(self.journal.set_status, job_id, JobStatus.RUNNING)
            yield Event("job_started", job_id, message=f"{plan.kind} of {len(plan.users)} user(s), {len(plan.steps)} steps")
            try:
                async for event in self._forward(job_id, operator, resuming=False):
                    yield event
            finally:
                self._secrets.pop(job_id, None)

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
        if fresh:
            users = job.meta.get("users") or []
            changed = await self._changed_user((u.get("user"), u.get("dn_before"), u.get("usn_changed")) for u in users)
            if changed is not None or not users:
                reason = f"{changed or 'the user'} changed since the plan was made; plan again."
                await asyncio.to_thread(self.journal.set_status, job.id, JobStatus.FAILED, reason)
                self._audit_job(operator, job, "refused", "the user changed since it was read")
                raise Refused(f"Job {job.id}: {reason}")
        self._secrets[job.id] = dict(secrets or {})
        if job.status != JobStatus.RUNNING:
            await asyncio.to_thread(self.journal.set_status, job.id, JobStatus.RUNNING)
        yield Event("job_started", job.id, message="starting" if job.status == JobStatus.PLANNED else "resuming")
        try:
            async for event in self._forward(job.id, operator, resuming=not fresh):
                yield event
        finally:
            self._secrets.pop(job.id, None)

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
        async for event in self._backward(job.id, operator, reason="rolled back on request"):
            yield event

    # -- running -------------------------------------------------------------------
    async def _forward(self, job_id: str, operator: Operator, *, resuming: bool) -> AsyncIterator[Event]:
        job = await asyncio.to_thread(self.journal.job, job_id)
        for record in job.steps:
            if record.state == StepState.DONE:
                continue
            if self.cancelled:  # between steps: the one before has finished, this one has not begun
                async for event in self._backward(job_id, operator, reason=CANCELLED):
                    yield event
                return
            step = Step.from_json(record.spec)
            yield Event("step_started", job_id, record.index, step)
            try:
                await asyncio.to_thread(self.journal.step_starting, job_id, record.index, {"inverse": _inverse_name(step)})
                if self.before_step is not None:
                    await self.before_step(record.index, step)
                result = await self._perform(job_id, step, resuming=resuming or record.state != StepState.PENDING)
            except (TenantryError, OSError) as error:
                message = str(error) or type(error).__name__
                await asyncio.to_thread(self.journal.step_failed, job_id, record.index, message)
                yield Event("step_failed", job_id, record.index, step, message)
                async for event in self._backward(job_id, operator, reason=message, failed_http=step if step.action == p.HTTP else None):
                    yield event
                return
            await asyncio.to_thread(self.journal.step_done, job_id, record.index, result)
            yield Event("step_done", job_id, record.index, step)
        await asyncio.to_thread(self.journal.set_status, job_id, JobStatus.DONE)
        job = await asyncio.to_thread(self.journal.job, job_id)
        self._audit_job(operator, job, "done")
        yield Event("job_finished", job_id, status=JobStatus.DONE.value, message="done")

    async def _backward(self, job_id: str, operator: Operator, *, reason: str, failed_http: Step | None = None) -> AsyncIterator[Event]:
        await asyncio.to_thread(self.journal.set_status, job_id, JobStatus.ROLLING_BACK, reason)
        yield Event("rolling_back", job_id, message=reason)
        job = await asyncio.to_thread(self.journal.job, job_id)
        # A failed HTTP call may have half-happened: undo it too (undo is idempotent).
        records = list(job.steps_to_undo)
        if failed_http is not None:
            records = [s for s in job.steps if s.state == StepState.FAILED and s.action == p.HTTP] + records
        remaining: list[str] = []
        for record in records:
            step = Step.from_json(record.spec)
            try:
                await asyncio.to_thread(self.journal.undo_starting, job_id, record.index)
                await self._undo(step, record.result)
            except (TenantryError, OSError) as error:
                message = str(error) or type(error).__name__
                await asyncio.to_thread(self.journal.undo_failed, job_id, record.index, message)
                remaining.append(f"step {record.index + 1} ({step.action} {step.target}): {message}")
                yield Event("undo_failed", job_id, record.index, step, message)
                continue
            await asyncio.to_thread(self.journal.undo_done, job_id, record.index)
            yield Event("step_undone", job_id, record.index, step)
        if remaining:
            detail = f"{reason}; undo incomplete: " + "; ".join(remaining)
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
        d = self.directory
        if step.action == p.MODIFY:
            await self._swap(step.target, step.before, step.after)
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
                if not (resuming and await self._created_by(step, None)):
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

    async def _undo(self, step: Step, result: dict[str, Any] | None) -> None:
        d = self.directory
        if step.action == p.MODIFY:
            await self._swap(step.target, step.after, step.before)
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
            if not await self._created_by(step, result):
                raise DirectoryError(f"{step.target} is not the account this job created; it was left alone.")
            try:
                await d.delete(step.target)
            except NotFound:
                pass
        elif step.action == p.SET_PASSWORD:
            pass  # undone with the account itself (the add_user step's undo deletes it)
        elif step.action == p.HTTP:
            await self.adapters[step.service].undo(step, result)

    async def _changed_user(self, users: Iterable[tuple[str | None, str | None, str | None]]) -> str | None:
        """The first of ``(name, dn, uSNChanged)`` whose entry changed (or is gone) since
        that read; ``None`` when every one is as it was."""
        for name, dn, usn in users:
            try:
                current = await self.directory.user(dn or "")
            except NotFound:
                return name or dn or "the user"
            if current.usn_changed != usn:
                return name or dn
        return None

    async def _created_by(self, step: Step, result: dict[str, Any] | None) -> bool:
        """Whether the account at ``step.target`` is the one ``step`` created: the same
        objectGUID as its result, or — the result lost in a crash — the same username
        and UPN as it was created with."""
        try:
            current = await self.directory.values(step.target, ["objectGUID", "sAMAccountName", "userPrincipalName"])
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

    async def _swap(self, dn: str, old: dict[str, list[str]], new: dict[str, list[str]]) -> None:
        """Compare-and-swap; if it finds the target state already there, that is success."""
        try:
            await self.directory.modify(dn, {a: (old.get(a, []), new.get(a, [])) for a in new})
        except ChangedUnderneath:
            current = await self.directory.values(dn, list(new))
            if any(_folded(current.get(a, [])) != _folded(v) for a, v in new.items()):
                raise

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
        for step in steps:
            if step.action == p.HTTP:
                adapter = self.adapters.get(step.service or "")
                reason = f"is a call of service {step.service!r}, which is not configured" if adapter is None else adapter.foreign_call(step, customers)
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
            users=[c.upn_before or c.user for c in plan.users], customers=_names(plan.source, plan.destination),
            result=result, job=job, detail=detail,
        )

    def _audit_job(self, operator: Operator, job: JobRecord, result: str, detail: str = "") -> None:
        self.audit.record(
            operator=operator.name, bound_as=operator.bound_as, action=job.kind, users=list(job.names),
            customers=list(job.customers), result=result, job=job.id, detail=detail,
        )


def _job_row(plan: Plan, operator: Operator, meta: Mapping[str, Any] | None) -> tuple:
    """The journal's ``create_job`` arguments for ``plan``: its users' reads go in the meta."""
    return (
        plan.kind, operator.name, operator.bound_as, [c.user for c in plan.users], _names(plan.source, plan.destination),
        [s.to_json() for s in plan.steps], {**dict(meta or {}), "users": [c.__dict__ for c in plan.users]},
    )


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


def _inverse_name(step: Step) -> str:
    return {
        p.MODIFY: "modify back", p.MOVE: "move back", p.ADD_MEMBER: "remove member",
        p.REMOVE_MEMBER: "add member", p.CREATE_GROUP: "delete group", p.HTTP: "service undo",
        p.ADD_USER: "delete user", p.SET_PASSWORD: "none (the user's deletion)",
    }[step.action]


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
        users=[c.upn_before or c.user for c in plan.users], customers=_names(plan.source, plan.destination),
        result="denied" if denied else "refused", detail="; ".join(x.message for x in plan.problems),
    )
