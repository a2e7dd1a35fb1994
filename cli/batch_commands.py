"""Headless bulk jobs: ``move`` of several users or a CSV, ``copy --csv``, and ``resume`` /
``rollback`` of a whole batch.

Every row is preflighted first and every problem printed per row before anything
runs; ``--yes`` then runs only the clean rows, each its own all-or-nothing job, all
journaled under one batch id before the first write, at most ``--concurrency`` at once.

Exit codes: 0 every row done (a rollback: every unfinished row rolled back); 3 rows
were refused and nothing ran (a dry run with refused rows too); 4 not every row done,
but nothing is left unfinished (refused rows skipped, failed rows rolled back); 5 some
row's job is unfinished — ``resume`` or ``rollback`` the batch.

Passwords of a bulk copy: ``--generate-password`` gives every new user a password of
its own, shown once in the final results (text or ``--json``, on stdout) and kept
nowhere; one password from ``--password-stdin`` (or the prompt, twice) is every new
user's, checked first against each row — the domain's policy and that user's names —
so a row it does not fit is refused before anything runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import AsyncIterator, Awaitable, Callable

from core import plan as p
from core.batch import Batch, batch_row, journaled_plan, row_aftermaths
from core.bulk import DEFAULT_CONCURRENCY, BulkCopy, BulkJob, BulkMove, BulkPlan, RowEvent, RowResult
from core.convergence import Aftermath, rows_sentence
from core.bulk_csv import COPY_COLUMNS, copy_requests, move_requests, parse_plans
from core.errors import UsageError
from core.execute import audit_refusal
from core.journal import JobStatus, StepState
from core.move import MoveRequest
from core.plan import Plan, Problem
from core.session import Session
from core.text import plain
from cli.operator_input import confirm, password_again, prompt_password, stdin_password
from cli.report import print_json

COPY_CSV_HELP = (f"a CSV with a header: {', '.join(COPY_COLUMNS[0])}, and optional {', '.join(COPY_COLUMNS[1])} "
                 "(services: keys separated by ';', empty for all the template's, 'none' for none; "
                 "plans: SERVICE=PLAN separated by ';')")
_SINGLE_COPY_OPTIONS = (("USER", "user"), ("--first", "first"), ("--last", "last"), ("--display-name", "display_name"),
                        ("--username", "username"), ("--upn", "upn"), ("--email", "email"), ("--services", "services"))
_NO_PASSWORD = "Give the new users' password with --password-stdin or --generate-password (never on the command line)."


def _concurrency(args: argparse.Namespace) -> int:
    concurrency = getattr(args, "concurrency", None)
    concurrency = DEFAULT_CONCURRENCY if concurrency is None else concurrency
    if concurrency < 1:
        raise UsageError("--concurrency must be at least 1.")
    return concurrency


async def bulk_move(session: Session, args: argparse.Namespace) -> int:
    if args.upn or args.email:
        raise UsageError("--upn and --email are for one user; in a bulk move give them per row in the CSV.")
    concurrency = _concurrency(args)
    plans = parse_plans(args.plan or [])
    requests = [(f"#{i} {u}", MoveRequest(u, args.to, plans=plans, with_devices=args.with_devices)) for i, u in enumerate(args.user or [], 1)]
    if args.csv:
        requests += move_requests(args.csv, args.to, plans, with_devices=args.with_devices)
    bulk = BulkMove(session.planner(), session.executor())
    plan = await bulk.preflight(session.operator, requests, concurrency=concurrency)
    return await _run(session, args, bulk, plan, concurrency, f"Move the {len(plan.clean)} clean row(s) to {plain(args.to)}")


async def bulk_copy(session: Session, args: argparse.Namespace) -> int:
    given = [option for option, name in _SINGLE_COPY_OPTIONS if getattr(args, name, None) is not None]
    if given:
        raise UsageError(f"{given[0]} is for a copy of one user; with --csv give it per row ({COPY_CSV_HELP}).")
    if args.password_stdin and not (args.yes or args.dry_run):
        raise UsageError("--password-stdin reads the password from stdin, which cannot also answer the confirmation: add --yes.")
    if not (args.dry_run or args.password_stdin or args.generate_password or sys.stdin.isatty()):
        raise UsageError(_NO_PASSWORD)
    concurrency = _concurrency(args)
    requests = copy_requests(args.csv, parse_plans(args.plan or []))
    password = stdin_password() if args.password_stdin else None
    copier = session.copier()
    bulk = BulkCopy(copier, session.executor())
    plan = await bulk.preflight(session.operator, requests, concurrency=concurrency, password=password)

    async def passwords() -> dict[str, str]:
        if args.generate_password:
            return await bulk.generate_passwords(plan)
        chosen = password
        if chosen is None:  # on a terminal: asked twice, checked against every clean row
            async def check(candidate: str) -> list[str]:
                found = [(row.label, x) for row in plan.clean for x in await copier.password_problems(row.plan, candidate)]
                return [f"{plain(label)}: {plain(x.message)}" for label, x in found]

            chosen = await prompt_password(check, "every new user")
        return {row.label: chosen for row in plan.clean}

    return await _run(session, args, bulk, plan, concurrency, f"Create the {len(plan.clean)} clean row(s)' new users",
                      passwords=passwords, show_passwords=args.generate_password)


async def resume_batch(session: Session, args: argparse.Namespace, batch: Batch) -> int:
    concurrency = _concurrency(args)
    batch.require_unfinished("resumed")
    generate = getattr(args, "generate_password", False)
    needing = batch.needing_password()
    passwords = None
    if needing:
        copier = session.copier()
        if generate:
            passwords = await batch.generate_passwords(copier)
        else:
            async def check(candidate: str) -> list[str]:
                found = await batch.password_problems(copier, candidate)
                return [f"{plain(label)}: {plain(x.message)}" for label, problems in found.items() for x in problems]

            password = await password_again(
                args, check, f"the {len(needing)} new user(s)",
                f"Batch {batch.id} still has to set the password of {len(needing)} new user(s), which is never kept: "
                "give it again with --password-stdin, or --generate-password.")
            passwords = {batch_row(j).label: password for j in needing}
    if not args.json:
        print(f"batch {batch.id}: resuming {len(batch.unfinished)} of {len(batch.jobs)} row(s), {concurrency} at once", file=sys.stderr)
    results: dict[str, RowResult] = {}
    await _follow_rows(batch.resume(session.executor(), session.operator, concurrency=concurrency, results=results, passwords=passwords), args.json)
    after = await row_aftermaths(session.directory, session.journal, session.audit, session.operator, results,
                                 earlier=batch.finished_results())
    return _report(session, args, batch.id, batch.kind, [batch_row(j).label for j in batch.jobs], results,
                   passwords=passwords if generate else None, after=after)


async def rollback_batch(session: Session, args: argparse.Namespace, batch: Batch) -> int:
    concurrency = _concurrency(args)
    batch.require_unfinished("rolled back")
    if not args.json:
        print(f"batch {batch.id}: rolling back {len(batch.unfinished)} unfinished row(s) of {len(batch.jobs)}, {concurrency} at once",
              file=sys.stderr)
    results: dict[str, RowResult] = {}
    await _follow_rows(batch.rollback(session.executor(), session.operator, concurrency=concurrency, results=results), args.json)
    return _report(session, args, batch.id, batch.kind, [batch_row(j).label for j in batch.jobs], results, rollback=True)


def batch_line(batch: Batch) -> str:
    """One line of ``tenantry jobs`` for a whole batch: its rows by status."""
    first = batch.jobs[0]
    hint = f"  (tenantry resume|rollback {batch.id})" if batch.unfinished else ""
    return (f"batch {batch.id}  {batch.state:<15} {batch.kind:<5} {len(batch.jobs)} rows: {batch.tally()}  "
            f"{plain(' → '.join(first.customers))}  {first.created_at}{hint}")


# -- running and reporting -------------------------------------------------------------


async def _run(session: Session, args: argparse.Namespace, bulk: BulkJob, plan: BulkPlan, concurrency: int, question: str, *,
               passwords: Callable[[], Awaitable[dict[str, str]]] | None = None, show_passwords: bool = False) -> int:
    for row in plan.refused:
        audit_refusal(session.audit, session.operator, row.plan)
    problems = {row.label: row.plan.problems for row in plan.rows}
    if not plan.clean or args.dry_run:
        return _preflight_report(args, plan)
    if not args.json:
        _print_rows(plan)
    secrets = await passwords() if passwords else None
    skipping = f", skipping {len(plan.refused)} refused" if plan.refused else ""
    if not confirm(args, f"{question}{skipping}? [y/N] ", "the clean rows"):
        return 0
    if not args.json:
        print(f"batch {plan.batch}: {len(plan.clean)} user(s), {concurrency} at once", file=sys.stderr)
    results: dict[str, RowResult] = {}
    await _follow_rows(bulk.run(plan, session.operator, concurrency=concurrency, results=results, passwords=secrets), args.json)
    after = await row_aftermaths(session.directory, session.journal, session.audit, session.operator, results)
    return _report(session, args, plan.batch, plan.kind, [row.label for row in plan.rows], results, problems=problems,
                   plans={row.label: row.plan for row in plan.rows},
                   passwords=secrets if show_passwords else None, after=after)


async def _follow_rows(events: AsyncIterator[RowEvent], quiet: bool) -> None:
    """Consume a batch's events, showing each row's failures and end on stderr."""
    async for item in events:
        event = item.event
        if quiet:
            continue
        if event.kind == "step_failed":
            print(f"  ✗ {plain(item.row)}: {event.step.action}: {plain(event.message)}", file=sys.stderr)
        elif event.kind == "undo_failed":
            print(f"  ! {plain(item.row)}: undo failed: {plain(event.message)}", file=sys.stderr)
        elif event.kind in ("replanned", "waiting"):
            print(f"  ↻ {plain(item.row)}: {plain(event.message)}", file=sys.stderr)
        elif event.kind == "job_finished":
            status = (event.status or "failed").replace("_", " ")
            print(f"  {'✓' if event.status == 'done' else '✗'} {plain(item.row)}: {status} (job {event.job})", file=sys.stderr)


def _report(session: Session, args: argparse.Namespace, batch_id: str, kind: str, labels: list[str], results: dict[str, RowResult], *,
            problems: dict[str, tuple[Problem, ...]] | None = None, passwords: dict[str, str] | None = None,
            rollback: bool = False, plans: dict[str, Plan] | None = None, after: dict[str, Aftermath] | None = None) -> int:
    """Every row's end, and the exit code, from the results and the journal (a row whose
    job is unfinished makes it 5). A generated password is shown for every row whose
    new user holds it (its password step done, not rolled back). ``after``: the rows
    done in this run, where their writes are and their values' duplicates."""
    after = after or {}
    batch = Batch.load(session.journal, batch_id)
    jobs = {batch_row(j).label: j for j in batch.jobs}
    unfinished = [label for label in labels if label in jobs and not jobs[label].is_finished]
    statuses = [results[label].status if label in results else "refused" for label in labels]
    if unfinished:
        code = 5
    elif rollback or all(s == "done" for s in statuses):
        code = 0
    else:
        code = 4
    shown = {label: password for label, password in (passwords or {}).items() if label in jobs and _holds_password(jobs[label])}
    if args.json:
        rows = []
        for label in labels:
            result = results.get(label) or RowResult(label, "", "refused")
            notes = jobs[label].notes if label in jobs and result.status == "done" else ()
            rows.append({**result.to_json(), "problems": [x.to_json() for x in (problems or {}).get(label, ())],
                         **({"password": shown[label]} if label in shown else {}), **({"notes": list(notes)} if notes else {}),
                         **(after[label].to_json() if label in after else {})})
        status = {0: "rolled_back" if rollback else "done", 4: "rolled_back"}.get(code, "needs_attention")
        row_plans = [(plans or {}).get(label) or journaled_plan(jobs[label]) for label in labels if label in jobs or label in (plans or {})]
        print_json({**_one_user_shape(batch_id, status, row_plans, [x for label in labels for x in (problems or {}).get(label, ())]),
                    "batch": batch_id, "kind": kind, "exit": code, "rows": rows,
                    "duplicates": [{**d.to_json(), "row": label} for label, a in after.items() for d in a.duplicates]})
    else:
        ended = sum(1 for s in statuses if s == ("rolled_back" if rollback else "done"))
        verb = "rolled back" if rollback else {"move": "moved", "copy": "created"}.get(kind, "done")
        print(f"batch {batch_id}: {ended} of {len(labels)} row(s) {verb}.")
        for label in labels:
            result = results.get(label)
            if result is None:
                continue
            if result.status == "done":
                print(f"  ✓ {plain(label)}: UPN {plain(result.upn)}" + (f", email {plain(result.email)}" if result.email else "")
                      + (f", password {shown[label]}" if label in shown else ""))
            else:
                print(f"  {'↶' if result.status == 'rolled_back' else '✗'} {plain(label)}: {result.status.replace('_', ' ')}"
                      + (f" (job {result.job})" if result.job else "") + (f" — {plain(result.message)}" if result.message else "")
                      + (f"; its password: {shown[label]}" if label in shown else ""))
        if shown:
            print("The passwords above are shown once and kept nowhere.", file=sys.stderr)
        if after:
            print(f"Done rows, {plain(rows_sentence(after.values()))}.", file=sys.stderr)
        for label, a in after.items():
            for duplicate in a.duplicates:
                print(f"tenantry: {plain(label)}: duplicate after replication: {duplicate.sentence}.", file=sys.stderr)
    if unfinished:
        print(f"tenantry: {len(unfinished)} row(s) of batch {batch_id} are unfinished: finish them with "
              f"`tenantry resume {batch_id}` or undo them with `tenantry rollback {batch_id}`.", file=sys.stderr)
    return code


def _holds_password(job) -> bool:
    """Whether the job's new user exists with the password it set."""
    return job.status not in (JobStatus.ROLLED_BACK, JobStatus.FAILED) and any(
        s.action == p.SET_PASSWORD and s.state == StepState.DONE for s in job.steps)


def _one_user_shape(batch_id: str, status: str, plans: list[Plan], problems: list[Problem]) -> dict:
    """PRODUCT §5: a bulk job prints the names a one-user move or copy prints — ``job`` (the
    batch), ``status``, ``problems``, ``plan``, ``users`` — over every row, so scripts written
    for one user keep working."""
    return {
        "job": batch_id,
        "status": status,
        "problems": [x.to_json() for x in problems],
        "plan": [step.public() for plan in plans for step in plan.steps],
        "users": [change.__dict__ for plan in plans for change in plan.users],
    }


def _preflight_report(args: argparse.Namespace, plan: BulkPlan) -> int:
    """Nothing ran (a dry run, or every row refused): every row's problems or plan."""
    code = 3 if plan.refused else 0
    if args.json:
        rows = []
        for row in plan.rows:
            change = row.plan.users[0] if row.plan.users else None
            rows.append({
                "row": row.label, "user": row.who, "status": "planned" if row.ok else "refused", "job": None, "message": "",
                "upn": change.upn_after if change else None, "email": change.email_after if change else None,
                "problems": [x.to_json() for x in row.plan.problems],
                **({"plan": [s.public() for s in row.plan.steps], "left_out": [x.to_json() for x in row.plan.left_out]} if row.ok else {}),
            })
        status = "refused" if plan.refused else "planned"
        print_json({**_one_user_shape(plan.batch, status, [row.plan for row in plan.rows], [x for row in plan.rows for x in row.plan.problems]),
                    "batch": plan.batch, "kind": plan.kind, "exit": code, "rows": rows})
        return code
    _print_rows(plan)
    if plan.clean:
        print("Dry run: nothing was written." if args.dry_run else "Nothing was written.", file=sys.stderr)
    else:
        print("tenantry: every row is refused; nothing was written.", file=sys.stderr)
    return code


def _print_rows(plan: BulkPlan) -> None:
    """Every row: its problems, or where it goes and its step count; refused rows first."""
    print(f"Bulk {plan.kind} of {len(plan.rows)} user(s): {len(plan.clean)} clean, {len(plan.refused)} refused", file=sys.stderr)
    for row in plan.refused:
        print(f"  ✗ {plain(row.label)}:", file=sys.stderr)
        for problem in row.plan.problems:
            print(f"      - {plain(problem.message)}", file=sys.stderr)
    for row in plan.clean:
        change = row.plan.users[0]
        print(f"  ✓ {plain(row.label)}: → {plain(change.upn_after)}, {len(row.plan.steps)} steps", file=sys.stderr)
        for item in row.plan.left_out:
            print(f"      left out: {plain(item.action)} {plain(item.target)} — {plain(item.reason)}", file=sys.stderr)
