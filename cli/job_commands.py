"""Headless job commands: ``move``, ``copy``, ``jobs``, ``resume``, ``rollback``, ``audit``.

Exit codes (PRODUCT §5): 0 done; 2 usage or configuration; 3 refused by preflight;
4 failed and rolled back; 5 failed and left a job to resume (needs attention).
Several users, a CSV or a batch id go to :mod:`cli.batch_commands`.

A copy's new password comes from ``--password-stdin`` (one line), a masked prompt
asked twice on a terminal, or ``--generate-password``; never from the command line.
A generated password is printed once, on stderr, when the copy is done — never in the
``--json`` output (stdout often ends up in logs), the journal or the audit log.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, AsyncIterator

from core.audit import Audit
from core.attempt import attempt
from core.batch import Batch, journaled_plan
from core.bulk_csv import parse_plans
from core.copy import CopyRequest
from core.errors import NotFound, UsageError
from core.convergence import Aftermath, aftermath
from core.execute import Event, needs_password_to_resume
from core.journal import JobRecord
from core.move import MoveRequest
from core.plan import HTTP, Plan
from core.session import Session
from core.text import listed, plain
from cli import batch_commands
from cli.operator_input import confirm, password_again, prompt_password, stdin_password
from cli.report import print_json

EXIT_FOR_STATUS = {"done": 0, "planned": 0, "refused": 3, "rolled_back": 4, "needs_attention": 5, "running": 5, "rolling_back": 5}


async def move(session: Session, args: argparse.Namespace) -> int:
    users = list(args.user or [])
    if getattr(args, "csv", None) or len(users) > 1:
        return await batch_commands.bulk_move(session, args)
    if not users:
        raise UsageError("Name the user to move, several users, or --csv FILE.")
    if getattr(args, "concurrency", None) is not None:
        raise UsageError("--concurrency is for a move of several users (USER USER … or --csv).")
    request = MoveRequest(users[0], args.to, upn=args.upn, email=args.email, plans=parse_plans(args.plan or []), with_devices=args.with_devices)
    tried = await attempt(session, request)
    plan = tried.plan
    if (ended := _before_running(args, plan)) is not None:
        return ended
    change = plan.users[0]
    if not confirm(args, f"Move {plain(change.user)} from {plain(plan.source)} to {plain(plan.destination)}? [y/N] ", "the move"):
        return 0
    job, status = await follow(tried.run(), args.json)
    return _finish(args, plan, job, status, await _replicated(session, job, status), _notes(session, job, status))


async def copy(session: Session, args: argparse.Namespace) -> int:
    if getattr(args, "csv", None):
        return await batch_commands.bulk_copy(session, args)
    missing = [option for option, value in (("USER", args.user), ("--first", args.first), ("--last", args.last)) if not value]
    if missing:
        raise UsageError(f"A copy needs USER, --first and --last (missing: {', '.join(missing)}), or --csv FILE for many.")
    if getattr(args, "concurrency", None) is not None:
        raise UsageError("--concurrency is for a copy of many users (--csv).")
    if args.password_stdin and not (args.yes or args.dry_run):
        raise UsageError("--password-stdin reads the password from stdin, which cannot also answer the confirmation: add --yes.")
    services = None
    if args.services is not None:
        services = tuple(k.strip() for k in args.services.split(",") if k.strip())
    request = CopyRequest(
        args.user, args.first, args.last, display_name=args.display_name, username=args.username,
        upn=args.upn, email=args.email, services=services, plans=parse_plans(args.plan or []),
    )
    password = stdin_password() if args.password_stdin else None
    copier = session.copier()
    tried = await attempt(session, request, password=password)
    plan = tried.plan
    if plan.ok and password is None and not args.dry_run:
        if args.generate_password:
            password = await copier.generate_password(plan)  # passes the domain's policy
        elif sys.stdin.isatty():
            async def check(candidate: str) -> list[str]:
                return [plain(x.message) for x in await copier.password_problems(plan, candidate)]

            password = await prompt_password(check, plain(plan.users[0].upn_after))
        else:
            raise UsageError("Give the new user's password with --password-stdin or --generate-password (never on the command line).")
    if (ended := _before_running(args, plan)) is not None:
        return ended
    change = plan.users[0]
    if not confirm(args, f"Create {plain(change.upn_after)} in {plain(plan.destination)} as a copy of {plain(change.user)}? [y/N] ", "the copy"):
        return 0
    tried.password = password
    job, status = await follow(tried.run(), args.json)
    code = _finish(args, plan, job, status, await _replicated(session, job, status), _notes(session, job, status))
    if status == "done" and args.generate_password:
        print(f"Password of {plain(plan.users[0].upn_after)} (shown once, kept nowhere): {password}", file=sys.stderr)
    return code


def _job_or_batch(session: Session, name: str) -> tuple[JobRecord | None, Batch | None]:
    """The job ``name`` names, else the batch (bulk job) it names."""
    try:
        return session.journal.job(name), None
    except NotFound as error:
        if not session.journal.batch_jobs(name):
            raise NotFound(f"No job or batch “{plain(name)}” in the journal.") if str(error).startswith("No job") else error
        return None, Batch.load(session.journal, name)


async def resume(session: Session, args: argparse.Namespace) -> int:
    job, batch = _job_or_batch(session, args.job)
    if batch is not None:
        return await batch_commands.resume_batch(session, args, batch)
    secrets = None
    plan = journaled_plan(job)
    if needs_password_to_resume(job):
        copier = session.copier()
        if getattr(args, "generate_password", False):
            password = await copier.generate_password(plan)
        else:
            async def check(candidate: str) -> list[str]:
                return [plain(x.message) for x in await copier.password_problems(plan, candidate)]

            password = await password_again(
                args, check, "the new user",
                f"Job {job.id} still has to set the new user's password, which is never kept: give it again with --password-stdin.")
        secrets = {"password": password}
    _job_id, status = await follow(session.executor().resume(job.id, session.operator, secrets=secrets), args.json)
    if status == "done" and getattr(args, "generate_password", False) and secrets:
        print(f"Password of {plain(plan.users[0].upn_after if plan.users else job.id)} (shown once, kept nowhere): {secrets['password']}",
              file=sys.stderr)
    return _job_end(session, args, job.id, EXIT_FOR_STATUS.get(status, 5), await _replicated(session, job.id, status))


async def rollback(session: Session, args: argparse.Namespace) -> int:
    job, batch = _job_or_batch(session, args.job)
    if batch is not None:
        return await batch_commands.rollback_batch(session, args, batch)
    _job_id, status = await follow(session.executor().rollback(job.id, session.operator), args.json)
    return _job_end(session, args, job.id, 0 if status == "rolled_back" else 5)


def _job_end(session: Session, args: argparse.Namespace, job_id: str, code: int, after: Aftermath | None = None) -> int:
    """A resumed or rolled-back job's end: its journal record in ``--json``; a resumed job
    that is done says, as a first run does, where its writes are and any duplicate."""
    if args.json:
        print_json({**_job_json(session.journal.job(job_id)), **(after.to_json() if after else {})})
    elif after:
        _say(after)
    return code


def _say(after: Aftermath) -> None:
    print(f"Done, {plain(after.replication.sentence)}.", file=sys.stderr)
    for duplicate in after.duplicates:
        print(f"tenantry: duplicate after replication: {duplicate.sentence}.", file=sys.stderr)


async def jobs(session: Session, args: argparse.Namespace) -> int:
    records = session.journal.jobs(limit=args.limit)
    if args.json:
        print_json([_job_json(j) for j in records])
        return 0
    batches: set[str] = set()  # a bulk job's rows are shown as one line: its batch
    for job in records:
        batch = job.meta.get("batch")
        if batch is not None:
            if batch not in batches:
                batches.add(batch)
                print(batch_commands.batch_line(Batch.load(session.journal, batch)))
            continue
        done = len(job.done_steps)
        dc = f"  on {plain(job.dc['url'])}" if job.dc else ""
        print(f"{job.id}  {job.status.value:<15} {job.kind:<5} {done}/{len(job.steps)} steps  "
              f"{plain(', '.join(job.names))}  {plain(' → '.join(job.customers))}  {job.created_at}{dc}")
    if not records:
        print("No jobs yet.", file=sys.stderr)
    return 0


async def audit(session: Session, args: argparse.Namespace) -> int:
    entries = session.audit.entries(search=args.search, limit=args.limit)
    if args.json:
        print_json([{**e.__dict__, "users": list(e.users), "customers": list(e.customers)} for e in entries])
        return 0
    for e in entries:
        print(f"{e.time}  {plain(e.operator)} (as {plain(e.bound_as)})  {e.action}  {e.result:<15} "
              f"{plain(', '.join(e.users))}  {plain(' → '.join(e.customers))}  {e.job or ''}  {plain(e.detail)}")
    return 0


def verify_audit(folder: Path, args: argparse.Namespace) -> int:
    """``tenantry audit --verify``: the chain and the anchor, checked without a directory."""
    with Audit(folder / "audit.sqlite3") as log:
        found = log.verify()
    if args.json:
        print_json({"intact": found.intact, "entries": found.entries, "head": found.head, "problems": list(found.problems)})
    elif found.intact:
        print(f"The audit log {folder / 'audit.sqlite3'} is intact: {found.entries} entries, chain head {found.head}.")
    else:
        for problem in found.problems:
            print(problem)
        print(f"tenantry: the audit log {folder / 'audit.sqlite3'} was tampered with ({len(found.problems)} problems found).", file=sys.stderr)
    return 0 if found.intact else 1


async def follow(events: AsyncIterator[Event], quiet: bool) -> tuple[str | None, str]:
    """Consume a job's events, showing progress on stderr; returns (job id, final status)."""
    job, status = None, "failed"
    async for event in events:
        job = event.job
        if event.kind == "job_finished":
            status = event.status or status
        if quiet:
            continue
        if event.kind == "step_done":
            print(f"  ✓ {event.index + 1}. {event.step.action} {plain(event.step.target)}"
                  + (f" — {plain(event.message)}" if event.message else ""), file=sys.stderr)
        elif event.kind == "step_failed":
            print(f"  ✗ {event.index + 1}. {event.step.action}: {plain(event.message)}", file=sys.stderr)
        elif event.kind == "rolling_back":
            print("  rolling back…", file=sys.stderr)
        elif event.kind == "step_undone":
            print(f"  ↶ {event.index + 1}. {event.step.action} undone", file=sys.stderr)
        elif event.kind == "undo_failed":
            print(f"  ! {event.index + 1}. undo failed: {plain(event.message)}", file=sys.stderr)
        elif event.kind in ("job_started", "replanned", "waiting"):
            print(f"job {event.job}: {plain(event.message)}", file=sys.stderr)
        elif event.kind == "job_finished":
            print(f"job {event.job}: {status.replace('_', ' ')}" + (f" — {plain(event.message)}" if status != "done" else ""), file=sys.stderr)
    return job, status



def _before_running(args: argparse.Namespace, plan: Plan) -> int | None:
    """A refused plan (audited by :func:`core.attempt.attempt`) or a dry run ends here with
    its exit code; otherwise the plan is shown (unless ``--json``) and ``None`` lets the job run."""
    if not plan.ok:
        return _finish(args, plan, None, "refused")
    if args.dry_run:
        return _finish(args, plan, None, "planned")
    if not args.json:
        print_plan(plan)
    return None

async def _replicated(session: Session, job: str | None, status: str) -> Aftermath | None:
    """Where a done job's writes are, once they have replicated (a few seconds at most),
    and the duplicates of its values the DCs then show."""
    if status != "done" or job is None:
        return None
    return await aftermath(session.directory, session.journal.job(job), session.audit, session.operator)


def _notes(session: Session, job: str | None, status: str) -> list[str]:
    """What a done job's services left running (:attr:`core.journal.JobRecord.notes`)."""
    if status != "done" or job is None:
        return []
    return list(session.journal.job(job).notes)


def _finish(args: argparse.Namespace, plan: Plan, job: str | None, status: str, after: Aftermath | None = None,
            notes: list[str] | None = None) -> int:
    if args.json:
        print_json({
            "job": job,
            "status": status,
            "problems": [p.to_json() for p in plan.problems],
            "plan": [s.public() for s in plan.steps],
            "left_out": [x.to_json() for x in plan.left_out],
            "users": [u.__dict__ for u in plan.users],
            **(after.to_json() if after else {}),
            **({"notes": list(notes)} if notes else {}),
        })
    elif status == "refused":
        print(f"tenantry: the {plan.kind} is refused ({len(plan.problems)} problem{'s' if len(plan.problems) != 1 else ''}):", file=sys.stderr)
        for problem in plan.problems:
            print(f"  - {plain(problem.message)}", file=sys.stderr)
    elif status == "planned":
        print_plan(plan)
        print("Dry run: nothing was written.", file=sys.stderr)
    elif status == "done" and plan.kind == "copy":
        change = plan.users[0]
        print(f"Created {plain(change.upn_after)} in {plain(plan.destination)} as a copy of {plain(change.user)}"
              + (f", email {plain(change.email_after)}" if change.email_after else "") + ".")
    elif status == "done":
        change = plan.users[0]
        print(f"Moved {plain(change.user)} to {plain(plan.destination)}: UPN {plain(change.upn_after)}"
              + (f", email {plain(change.email_after)}" if change.email_after else "") + ".")
    if after and not args.json:
        _say(after)
    return EXIT_FOR_STATUS.get(status, 5)


def print_plan(plan: Plan) -> None:
    if plan.kind == "copy":
        change = plan.users[0]
        print(f"Plan: copy {plain(change.user)} into {plain(change.upn_after)} in {plain(plan.destination)}, {len(plan.steps)} steps")
    else:
        print(f"Plan: {plan.kind} from {plain(plan.source)} to {plain(plan.destination)}, {len(plan.steps)} steps")
    for index, step in enumerate(plan.steps, 1):
        action = step.call_kind.lower() if step.action == HTTP else step.action
        print(f"{index:>3}. {action} {plain(step.target)}")
        if isinstance(step.before, dict) or isinstance(step.after, dict):
            before, after = step.before or {}, step.after or {}
            for attribute in after:
                print(f"       {attribute}: {listed(before.get(attribute))} → {listed(after.get(attribute))}")
        elif step.after is not None or step.before is not None:
            print(f"       {plain(step.before) or '—'} → {plain(step.after) or '—'}")
    for item in plan.left_out:
        print(f"  left out: {plain(item.action)} {plain(item.target)} — {plain(item.reason)}")


def _job_json(job: JobRecord) -> dict[str, Any]:
    return {
        "job": job.id, "kind": job.kind, "status": job.status.value, "operator": job.operator,
        "bound_as": job.bound_as, "users": list(job.users), "customers": list(job.customers),
        "created_at": job.created_at, "updated_at": job.updated_at, "error": job.error,
        "batch": job.meta.get("batch"), "row": job.meta.get("row"),
        "dc": {k: job.dc.get(k) for k in ("url", "service", "invocation_id")} if job.dc else None,
        "steps": [{"index": s.index, "action": s.action, "target": s.target, "state": s.state.value, "error": s.error} for s in job.steps],
    }

