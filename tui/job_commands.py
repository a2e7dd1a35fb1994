"""Headless job commands: ``move``, ``copy``, ``jobs``, ``resume``, ``rollback``, ``audit``.

Exit codes (PRODUCT §5): 0 done; 2 usage or configuration; 3 refused by preflight;
4 failed and rolled back; 5 failed and left a job to resume (needs attention).

A copy's new password comes from ``--password-stdin`` (one line), a masked prompt
asked twice on a terminal, or ``--generate-password``; never from the command line.
A generated password is printed once, on stderr, when the copy is done — never in the
``--json`` output (stdout often ends up in logs), the journal or the audit log.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import getpass
import sys
from typing import Any, AsyncIterator

from core.bulk import DEFAULT_CONCURRENCY, BulkMove, BulkPlan, RowResult
from core.copy import CopyRequest, account_password_problems
from core.errors import UsageError
from core.execute import Event, Refused, audit_refusal, needs_password_to_resume
from core.journal import JobRecord
from core.move import MoveRequest
from core.plan import Plan, Step
from core.session import Session
from core.text import plain
from tui.report import print_json

EXIT_FOR_STATUS = {"done": 0, "planned": 0, "refused": 3, "rolled_back": 4, "needs_attention": 5, "running": 5, "rolling_back": 5}


def _parse_plans(values: list[str] | None) -> dict[str, str]:
    plans = {}
    for value in values or []:
        key, sep, name = value.partition("=")
        if not sep or not key or not name:
            raise UsageError(f"--plan takes SERVICE=PLAN (e.g. exchange=Premium 50 GB), not {value!r}.")
        plans[key.strip()] = name.strip()
    return plans


async def move(session: Session, args: argparse.Namespace) -> int:
    users = list(args.user or [])
    if getattr(args, "csv", None) or len(users) > 1:
        return await bulk_move(session, args)
    if not users:
        raise UsageError("Name the user to move, several users, or --csv FILE.")
    if getattr(args, "concurrency", None) is not None:
        raise UsageError("--concurrency is for a move of several users (USER USER … or --csv).")
    request = MoveRequest(users[0], args.to, upn=args.upn, email=args.email, plans=_parse_plans(args.plan))
    plan = await session.planner().preflight(session.operator, request)
    if not plan.ok:
        audit_refusal(session.audit, session.operator, plan)
        return _finish(args, plan, None, "refused")
    if args.dry_run:
        return _finish(args, plan, None, "planned")
    if not args.json:
        _print_plan(plan)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("Not on a terminal: pass --yes to run the move without confirmation.")
        change = plan.users[0]
        answer = input(f"Move {plain(change.user)} from {plain(plan.source)} to {plain(plan.destination)}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing was changed.", file=sys.stderr)
            return 0
    job, status = await _follow(session.executor().run(plan, session.operator), args.json)
    return _finish(args, plan, job, status)


async def copy(session: Session, args: argparse.Namespace) -> int:
    if args.password_stdin and not (args.yes or args.dry_run):
        raise UsageError("--password-stdin reads the password from stdin, which cannot also answer the confirmation: add --yes.")
    services = None
    if args.services is not None:
        services = tuple(k.strip() for k in args.services.split(",") if k.strip())
    request = CopyRequest(
        args.user, args.first, args.last, display_name=args.display_name, username=args.username,
        upn=args.upn, email=args.email, services=services, plans=_parse_plans(args.plan),
    )
    password = _read_stdin_password() if args.password_stdin else None
    copier = session.copier()
    plan = await copier.preflight(session.operator, request, password)
    if plan.ok and password is None and not args.dry_run:
        if args.generate_password:
            password = await copier.generate_password(plan)  # passes the domain's policy
        elif sys.stdin.isatty():
            password = await _prompt_password(copier, plan)  # checked against the policy
        else:
            raise UsageError("Give the new user's password with --password-stdin or --generate-password (never on the command line).")
    if not plan.ok:
        audit_refusal(session.audit, session.operator, plan)
        return _finish(args, plan, None, "refused")
    if args.dry_run:
        return _finish(args, plan, None, "planned")
    if not args.json:
        _print_plan(plan)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("Not on a terminal: pass --yes to run the copy without confirmation.")
        change = plan.users[0]
        answer = input(f"Create {plain(change.upn_after)} in {plain(plan.destination)} as a copy of {plain(change.user)}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing was changed.", file=sys.stderr)
            return 0
    job, status = await _follow(session.executor().run(plan, session.operator, secrets={"password": password}), args.json)
    code = _finish(args, plan, job, status)
    if status == "done" and args.generate_password:
        print(f"Password of {plain(plan.users[0].upn_after)} (shown once, kept nowhere): {password}", file=sys.stderr)
    return code


# -- bulk moves ------------------------------------------------------------------
# Exit codes of a bulk move: 0 every user moved; 3 rows were refused and nothing ran
# (also a dry run with refused rows); 4 not every user moved but nothing is left half
# done (refused rows skipped, failed users rolled back); 5 some user's job needs attention.


def _read_csv(path: str, destination: str) -> list[tuple[str, MoveRequest]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fields = {(f or "").strip().casefold(): f for f in reader.fieldnames or []}
            if "user" not in fields:
                raise UsageError(f"{path}: the CSV needs a header with a 'user' column (and optional 'upn', 'email').")
            unknown = set(fields) - {"user", "upn", "email"}
            if unknown:
                raise UsageError(f"{path}: unknown CSV column(s): {', '.join(sorted(unknown))} (expected user, upn, email).")
            rows = []
            for number, record in enumerate(reader, 1):
                user, upn, email = (_cell(record, fields, name) for name in ("user", "upn", "email"))
                if user is None:
                    raise UsageError(f"{path}: row {number} has no user.")
                rows.append((f"row {number} ({user})", MoveRequest(user, destination, upn=upn, email=email)))
    except OSError as error:
        raise UsageError(f"Cannot read {path}: {error.strerror or error}.") from None
    if not rows:
        raise UsageError(f"{path} has no rows.")
    return rows


def _cell(record: dict, fields: dict[str, str], name: str) -> str | None:
    value = (record.get(fields[name]) or "").strip() if name in fields else ""
    return value or None


async def bulk_move(session: Session, args: argparse.Namespace) -> int:
    if args.upn or args.email:
        raise UsageError("--upn and --email are for one user; in a bulk move give them per row in the CSV.")
    concurrency = args.concurrency if args.concurrency is not None else DEFAULT_CONCURRENCY
    if concurrency < 1:
        raise UsageError("--concurrency must be at least 1.")
    plans = _parse_plans(args.plan)
    requests = [(f"#{i} {u}", MoveRequest(u, args.to, plans=plans)) for i, u in enumerate(args.user or [], 1)]
    if args.csv:
        requests += [(label, _with_plans(r, plans)) for label, r in _read_csv(args.csv, args.to)]
    bulk = BulkMove(session.planner(), session.executor())
    plan = await bulk.preflight(session.operator, requests, concurrency=concurrency)
    for row in plan.refused:
        audit_refusal(session.audit, session.operator, row.plan)
    results: dict[str, RowResult] = {}
    if not plan.clean or args.dry_run:
        status = "refused" if plan.refused else "planned"
        return _bulk_finish(args, plan, results, status, ran=False)
    if not args.json:
        _print_bulk(plan)
    if not args.yes:
        if not sys.stdin.isatty():
            raise UsageError("Not on a terminal: pass --yes to run the clean rows without confirmation.")
        answer = input(f"Move the {len(plan.clean)} clean row(s) to {plain(args.to)}"
                       + (f", skipping {len(plan.refused)} refused" if plan.refused else "") + "? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing was changed.", file=sys.stderr)
            return 0
    if not args.json:
        print(f"batch {plan.batch}: {len(plan.clean)} user(s), {concurrency} at once", file=sys.stderr)
    async for item in bulk.run(plan, session.operator, concurrency=concurrency, results=results):
        event = item.event
        if args.json:
            continue
        if event.kind == "step_failed":
            print(f"  ✗ {plain(item.row)}: {event.step.action}: {plain(event.message)}", file=sys.stderr)
        elif event.kind == "undo_failed":
            print(f"  ! {plain(item.row)}: undo failed: {plain(event.message)}", file=sys.stderr)
        elif event.kind == "job_finished":
            status = (event.status or "failed").replace("_", " ")
            print(f"  {'✓' if event.status == 'done' else '✗'} {plain(item.row)}: {status} (job {event.job})", file=sys.stderr)
    return _bulk_finish(args, plan, results, None, ran=True)


def _with_plans(request: MoveRequest, plans: dict[str, str]) -> MoveRequest:
    return dataclasses.replace(request, plans=dict(plans)) if plans else request


def _bulk_exit(plan: BulkPlan, results: dict[str, RowResult], ran: bool) -> int:
    if not ran:
        return 3 if plan.refused else 0
    rows = [results.get(row.label) for row in plan.rows]
    if all(r is not None and r.status == "done" for r in rows):
        return 0
    unfinished = ("needs_attention", "running", "rolling_back")
    if any(r is None or r.status in unfinished or (r.status == "failed" and r.job) for r in rows):
        return 5
    return 4


def _bulk_finish(args: argparse.Namespace, plan: BulkPlan, results: dict[str, RowResult], status: str | None, *, ran: bool) -> int:
    code = _bulk_exit(plan, results, ran)
    if args.json:
        rows = []
        for row in plan.rows:
            result = results.get(row.label)
            change = row.plan.users[0] if row.plan.users else None
            rows.append({
                "row": row.label, "user": row.request.user,
                "status": result.status if result else ("refused" if not row.ok else "planned"),
                "job": result.job if result else None,
                "message": result.message if result else "",
                "upn": change.upn_after if change else None,
                "email": change.email_after if change else None,
                "problems": [x.to_json() for x in row.plan.problems],
                **({"plan": [s.public() for s in row.plan.steps]} if not ran and row.ok else {}),
            })
        print_json({"batch": plan.batch, "status": status or ("done" if code == 0 else "incomplete"), "exit": code, "rows": rows})
        return code
    if not ran:
        _print_bulk(plan)
        if status == "planned" or plan.clean:
            print("Dry run: nothing was written." if args.dry_run else "Nothing was written.", file=sys.stderr)
        else:
            print("tenantry: every row is refused; nothing was written.", file=sys.stderr)
        return code
    done = sum(1 for r in results.values() if r.status == "done")
    print(f"batch {plan.batch}: {done} of {len(plan.rows)} user(s) moved to {plain(plan.rows[0].request.destination)}.")
    for row in plan.rows:
        result = results.get(row.label)
        if result and result.status == "done":
            print(f"  ✓ {plain(row.label)}: UPN {plain(result.upn)}" + (f", email {plain(result.email)}" if result.email else ""))
        elif result:
            print(f"  ✗ {plain(row.label)}: {result.status.replace('_', ' ')}" + (f" (job {result.job})" if result.job else "")
                  + (f" — {plain(result.message)}" if result.message else ""))
    return code


def _print_bulk(plan: BulkPlan) -> None:
    """Every row: its problems, or its step count; refused rows first."""
    print(f"Bulk move of {len(plan.rows)} user(s): {len(plan.clean)} clean, {len(plan.refused)} refused", file=sys.stderr)
    for row in plan.refused:
        print(f"  ✗ {plain(row.label)}:", file=sys.stderr)
        for problem in row.plan.problems:
            print(f"      - {plain(problem.message)}", file=sys.stderr)
    for row in plan.clean:
        change = row.plan.users[0]
        print(f"  ✓ {plain(row.label)}: → {plain(change.upn_after)}, {len(row.plan.steps)} steps", file=sys.stderr)


def _read_stdin_password() -> str:
    line = sys.stdin.readline()
    password = line[:-1] if line.endswith("\n") else line
    password = password[:-1] if password.endswith("\r") else password
    if not password:
        raise UsageError("--password-stdin read an empty password.")
    return password


async def _prompt_password(copier, plan: Plan, tries: int = 3) -> str:
    """Ask twice, masked, until the two agree and the domain's policy accepts it."""
    who = plain(plan.users[0].upn_after) if plan.users else "the new user"
    for _ in range(tries):
        first = getpass.getpass(f"New password for {who}: ")
        if getpass.getpass("Again: ") != first:
            print("The two passwords differ; try again.", file=sys.stderr)
            continue
        problems = await copier.password_problems(plan, first)
        if not problems:
            return first
        for problem in problems:
            print(f"  - {plain(problem.message)}", file=sys.stderr)
    raise UsageError("No acceptable password was given; nothing was changed.")


async def resume(session: Session, args: argparse.Namespace) -> int:
    secrets = None
    job = session.journal.job(args.job)
    if needs_password_to_resume(job):
        if getattr(args, "password_stdin", False):
            password = _read_stdin_password()
        elif sys.stdin.isatty():
            password = getpass.getpass("The new user's password (it was never kept): ")
            if getpass.getpass("Again: ") != password:
                raise UsageError("The two passwords differ; nothing was changed.")
        else:
            raise UsageError(f"Job {job.id} still has to set the new user's password, which is never kept: give it again with --password-stdin.")
        problems = account_password_problems(
            await session.directory.password_policy(), [Step.from_json(s.spec) for s in job.steps], password
        )
        if problems:
            raise Refused(" ".join(x.message for x in problems) + " Nothing was changed.")
        secrets = {"password": password}
    job_id, status = await _follow(session.executor().resume(job.id, session.operator, secrets=secrets), False)
    return EXIT_FOR_STATUS.get(status, 5)


async def rollback(session: Session, args: argparse.Namespace) -> int:
    job, status = await _follow(session.executor().rollback(args.job, session.operator), False)
    return 0 if status == "rolled_back" else 5


async def jobs(session: Session, args: argparse.Namespace) -> int:
    records = session.journal.jobs(limit=args.limit)
    if args.json:
        print_json([_job_json(j) for j in records])
        return 0
    for job in records:
        done = len(job.done_steps)
        print(f"{job.id}  {job.status.value:<15} {job.kind:<5} {done}/{len(job.steps)} steps  "
              f"{plain(', '.join(job.users))}  {plain(' → '.join(job.customers))}  {job.created_at}")
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


async def _follow(events: AsyncIterator[Event], quiet: bool) -> tuple[str | None, str]:
    """Consume a job's events, showing progress on stderr; returns (job id, final status)."""
    job, status = None, "failed"
    async for event in events:
        job = event.job
        if event.kind == "job_finished":
            status = event.status or status
        if quiet:
            continue
        if event.kind == "step_done":
            print(f"  ✓ {event.index + 1}. {event.step.action} {plain(event.step.target)}", file=sys.stderr)
        elif event.kind == "step_failed":
            print(f"  ✗ {event.index + 1}. {event.step.action}: {plain(event.message)}", file=sys.stderr)
        elif event.kind == "rolling_back":
            print("  rolling back…", file=sys.stderr)
        elif event.kind == "step_undone":
            print(f"  ↶ {event.index + 1}. {event.step.action} undone", file=sys.stderr)
        elif event.kind == "undo_failed":
            print(f"  ! {event.index + 1}. undo failed: {plain(event.message)}", file=sys.stderr)
        elif event.kind == "job_started":
            print(f"job {event.job}: {plain(event.message)}", file=sys.stderr)
        elif event.kind == "job_finished":
            print(f"job {event.job}: {status.replace('_', ' ')}" + (f" — {plain(event.message)}" if status != "done" else ""), file=sys.stderr)
    return job, status


def _finish(args: argparse.Namespace, plan: Plan, job: str | None, status: str) -> int:
    if args.json:
        print_json({
            "job": job,
            "status": status,
            "problems": [p.to_json() for p in plan.problems],
            "plan": [s.public() for s in plan.steps],
            "users": [u.__dict__ for u in plan.users],
        })
    elif status == "refused":
        print(f"tenantry: the {plan.kind} is refused ({len(plan.problems)} problem{'s' if len(plan.problems) != 1 else ''}):", file=sys.stderr)
        for problem in plan.problems:
            print(f"  - {plain(problem.message)}", file=sys.stderr)
    elif status == "planned":
        _print_plan(plan)
        print("Dry run: nothing was written.", file=sys.stderr)
    elif status == "done" and plan.kind == "copy":
        change = plan.users[0]
        print(f"Created {plain(change.upn_after)} in {plain(plan.destination)} as a copy of {plain(change.user)}"
              + (f", email {plain(change.email_after)}" if change.email_after else "") + ".")
    elif status == "done":
        change = plan.users[0]
        print(f"Moved {plain(change.user)} to {plain(plan.destination)}: UPN {plain(change.upn_after)}"
              + (f", email {plain(change.email_after)}" if change.email_after else "") + ".")
    return EXIT_FOR_STATUS.get(status, 5)


def _print_plan(plan: Plan) -> None:
    if plan.kind == "copy":
        change = plan.users[0]
        print(f"Plan: copy {plain(change.user)} into {plain(change.upn_after)} in {plain(plan.destination)}, {len(plan.steps)} steps")
    else:
        print(f"Plan: {plan.kind} from {plain(plan.source)} to {plain(plan.destination)}, {len(plan.steps)} steps")
    for index, step in enumerate(plan.steps, 1):
        print(f"{index:>3}. {step.action} {plain(step.target)}")
        if isinstance(step.before, dict) or isinstance(step.after, dict):
            before, after = step.before or {}, step.after or {}
            for attribute in after:
                print(f"       {attribute}: {_value(before.get(attribute))} → {_value(after.get(attribute))}")
        elif step.after is not None or step.before is not None:
            print(f"       {plain(step.before) or '—'} → {plain(step.after) or '—'}")


def _value(value: Any) -> str:
    """One attribute's values (a list) or one field of a service record, as plain text."""
    if value is None or value == []:
        return "—"
    return plain("; ".join(map(str, value)) if isinstance(value, list) else str(value))


def _job_json(job: JobRecord) -> dict[str, Any]:
    return {
        "job": job.id, "kind": job.kind, "status": job.status.value, "operator": job.operator,
        "bound_as": job.bound_as, "users": list(job.users), "customers": list(job.customers),
        "created_at": job.created_at, "updated_at": job.updated_at, "error": job.error,
        "steps": [{"index": s.index, "action": s.action, "target": s.target, "state": s.state.value, "error": s.error} for s in job.steps],
    }

