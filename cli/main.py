"""The ``tenantry`` command: the console, and headless subcommands for scripts.

Exit codes (PRODUCT §5): 0 done; 2 usage, configuration or connection error
(unknown customer or user included). Errors are one sentence on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import Any, Awaitable, Callable

from core.config import Config, load, read_operator_password, read_password
from core.errors import TenantryError, UsageError
from core.state import demo_state_dir, private_file, state_dir

log = logging.getLogger("tenantry")


def _common(parser: argparse.ArgumentParser) -> None:
    default = argparse.SUPPRESS if parser.prog != "tenantry" else None
    parser.add_argument("--config", metavar="PATH", default=default, help="configuration file (default: $TENANTRY_CONFIG or ~/.config/tenantry/config.toml)")
    parser.add_argument("--demo", action="store_true", default=default or False, help="use the embedded demo directory instead of a domain controller")
    parser.add_argument("--readonly", action="store_true", default=default or False, help="refuse every write action")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tenantry", description="Console for multi-tenant Active Directory hosting.")
    _common(parser)
    parser.add_argument("--low-bandwidth", action="store_true", help="for slow links: no animations, fewer refreshes, the terminal's own colours")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    customers = commands.add_parser("customers", help="list customers")
    _common(customers)
    customers.add_argument("--search", metavar="TEXT", help="only customers whose name or a domain contains TEXT")
    customers.add_argument("--json", action="store_true", help="print JSON")

    users = commands.add_parser("users", help="list the users of a customer")
    _common(users)
    users.add_argument("customer", metavar="CUSTOMER", help="the customer's name or one of its domains")
    users.add_argument("--search", metavar="TEXT", help="only users whose display name, UPN, email or username contains TEXT")
    users.add_argument("--json", action="store_true", help="print JSON")

    move = commands.add_parser(
        "move", help="move a user (or many) to another customer",
        description="Move one user, several (USER USER …) or a CSV of users (--csv) to another customer. "
        "With more than one user every row is preflighted first and every problem is printed per row "
        "before anything runs; --yes then runs only the clean rows (refused rows are listed and skipped). "
        "Each user is its own all-or-nothing job (one batch id), at most --concurrency at once. "
        "Exit codes of a bulk move: 0 every user moved; 3 rows were refused and nothing ran; "
        "4 some user failed (or was refused) and everything that failed was rolled back; "
        "5 some user's job needs attention (resume or roll it back).",
    )
    _common(move)
    move.add_argument("user", metavar="USER", nargs="*", help="the users' UPNs, sAMAccountNames or DNs")
    move.add_argument("--csv", metavar="FILE", help="a CSV with a header: user, and optional upn, email (bulk move)")
    move.add_argument("--concurrency", type=int, metavar="N", default=None, help="bulk: users moved at once (default 4)")
    move.add_argument("--to", required=True, metavar="CUSTOMER", help="the destination customer's name or one of its domains")
    move.add_argument("--upn", metavar="VALUE", help="the new UPN (default: from the destination's format)")
    move.add_argument("--email", metavar="VALUE", help="the new primary email address (default: from the destination's format)")
    move.add_argument("--plan", action="append", metavar="SERVICE=PLAN", help="the destination plan of a service (default: the same name)")
    move.add_argument("--with-devices", action="store_true",
                      help="move users that have mobile devices (BlackBerry UEM stops managing them; the plan says so)")
    move.add_argument("--dry-run", action="store_true", help="print the plan and write nothing")
    move.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    move.add_argument("--json", action="store_true", help="print JSON")

    copy = commands.add_parser(
        "copy", help="copy a user into a new user of the same customer (or many, from a CSV)",
        description="Copy a template user into a new user of its customer (USER --first F --last L), or many "
        "(--csv FILE, one row per new user). CSV columns: template, first, last, and optional display_name, "
        "username, upn, email, services (service keys separated by ';'; empty: all the template's; 'none': none), "
        "plans (SERVICE=PLAN separated by ';'). With --csv every row is preflighted first (unknown templates, "
        "duplicate rows, two rows giving the same username, UPN, email address, SIP URI or name) and every problem "
        "is printed per row before anything runs; --yes then runs only the clean rows, at most --concurrency at once, "
        "each its own all-or-nothing job, all journaled under one batch id before the first write (resume or roll "
        "back the batch with `tenantry resume|rollback BATCH`). Passwords: --generate-password gives every new user "
        "its own, shown once in the final results (text or --json); one password from --password-stdin (or asked "
        "twice on a terminal) is every new user's, checked against each row first. "
        "Exit codes of a bulk copy: 0 every user created; 3 rows were refused and nothing ran; 4 some row was "
        "refused or rolled back, nothing is left unfinished; 5 some row's job is unfinished.",
    )
    _common(copy)
    copy.add_argument("user", metavar="USER", nargs="?", help="the template user's UPN, sAMAccountName or DN")
    copy.add_argument("--csv", metavar="FILE", help="bulk copy: a CSV with one row per new user (columns above)")
    copy.add_argument("--concurrency", type=int, metavar="N", default=None, help="bulk: users created at once (default 4)")
    copy.add_argument("--first", metavar="F", help="the new user's first name")
    copy.add_argument("--last", metavar="L", help="the new user's last name")
    copy.add_argument("--display-name", metavar="NAME", help="the display name, also the account's name (default: \"F L\")")
    copy.add_argument("--username", metavar="U", help="the new sAMAccountName (default: from the customer's format)")
    copy.add_argument("--upn", metavar="VALUE", help="the new UPN, in a domain of the customer (default: from the customer's format)")
    copy.add_argument("--email", metavar="VALUE", help="the new primary email address (default: from the customer's format)")
    copy.add_argument("--services", metavar="LIST", help="comma-separated service keys to copy (default: all the template's; \"\" for none)")
    copy.add_argument("--plan", action="append", metavar="SERVICE=PLAN", help="the plan of a copied service (default: the template's)")
    secret = copy.add_mutually_exclusive_group()
    secret.add_argument("--password-stdin", action="store_true", help="read the new user's password from the first line of stdin (needs --yes); with --csv, every new user's")
    secret.add_argument("--generate-password", action="store_true", help="generate a password; it is shown once on stderr when the copy is done (with --csv: one per user, in the results)")
    copy.add_argument("--dry-run", action="store_true", help="print the plan and write nothing")
    copy.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    copy.add_argument("--json", action="store_true", help="print JSON (never the password)")

    jobs = commands.add_parser("jobs", help="list jobs and their status")
    _common(jobs)
    jobs.add_argument("--limit", type=int, default=50, help="at most this many jobs (newest first)")
    jobs.add_argument("--json", action="store_true", help="print JSON")
    for name, text in (("resume", "finish an interrupted job, or every unfinished row of a batch"),
                       ("rollback", "undo an unfinished job, or every unfinished row of a batch (done rows stay done)")):
        command = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        _common(command)
        command.add_argument("job", metavar="JOB", help="the job id or a bulk job's batch id (or a unique prefix)")
        command.add_argument("--concurrency", type=int, metavar="N", default=None, help="batch: rows at once (default 4)")
        command.add_argument("--json", action="store_true", help="batch: print every row's result as JSON")
        if name == "resume":
            again = command.add_mutually_exclusive_group()
            again.add_argument("--password-stdin", action="store_true",
                               help="an interrupted copy's new password (never kept), from the first line of stdin; "
                               "for a batch, every new user's still without one")
            again.add_argument("--generate-password", action="store_true",
                               help="generate the password(s) instead, shown once when done")
    audit = commands.add_parser("audit", help="show the audit log")
    _common(audit)
    audit.add_argument("--search", metavar="TEXT", help="only entries mentioning TEXT")
    audit.add_argument("--limit", type=int, default=200, help="at most this many entries (newest first)")
    audit.add_argument("--json", action="store_true", help="print JSON")
    audit.add_argument("--verify", action="store_true",
                       help="check the log's hash chain and anchor: exit 0 if intact, 1 naming every entry changed, "
                       "removed or added, or the log cut short or deleted (needs no domain controller)")
    return parser


class ReaderMayLeave:
    """Standard output whose reader may leave early (``tenantry move … --json | head -1``):
    what follows is dropped and the command still ends with its own exit code."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._gone()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._gone()

    def _gone(self) -> None:
        os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            return _console(args)
        sys.stdout = ReaderMayLeave(sys.stdout)
        return asyncio.run(_run(args))
    except TenantryError as error:
        print(f"tenantry: {error}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:  # e.g. `tenantry customers --json | head -1`: the reader took what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("tenantry: interrupted.", file=sys.stderr)
        return 130
    except Exception as error:  # the last line of defence: one sentence, details in a file
        where = _write_crash_report()
        print(f"tenantry: unexpected internal error ({type(error).__name__}); details are in {where}.", file=sys.stderr)
        return 1


def directory_opener(args: argparse.Namespace) -> tuple[Config | None, Callable[[], Awaitable[Any]]]:
    """The configuration and an opener for the directory the command works on.

    The configuration is read and the password asked for *now*, before any console
    takes over the terminal; the opener binds later.
    """
    if args.demo:
        from core.demo.directory import open_demo

        return None, open_demo
    config = load(args.config)
    for label in config.directory.insecure:
        print(f"tenantry: warning: insecure setting in force: {label} (see directory.tls_verify, directory.allow_cleartext_bind).", file=sys.stderr)
    password = None if config.directory.auth == "kerberos" else read_password(config.directory, prompt=getpass.getpass)
    operator_password = read_operator_password(config.directory, prompt=getpass.getpass)

    async def open_configured():
        from core.directory import connect

        return await connect(config, password, operator_password=operator_password)

    return config, open_configured


async def _run(args: argparse.Namespace) -> int:
    from cli import job_commands, report

    reads: dict[str, Callable[[Any, argparse.Namespace], Awaitable[int]]] = {
        "customers": report.customers,
        "users": report.users,
    }
    jobs: dict[str, Callable[[Any, argparse.Namespace], Awaitable[int]]] = {
        "move": job_commands.move,
        "copy": job_commands.copy,
        "jobs": job_commands.jobs,
        "resume": job_commands.resume,
        "rollback": job_commands.rollback,
        "audit": job_commands.audit,
    }
    if args.command == "audit" and args.verify:
        from cli.job_commands import verify_audit

        return verify_audit(_state(args), args)
    _config, opener = directory_opener(args)
    directory = await opener()
    if args.command in reads:
        try:
            return await reads[args.command](directory, args)
        finally:
            await directory.close()
    from core.session import Session  # not at the top: the console opens its session on the first write

    session = await Session.open(directory, readonly=args.readonly, state=_state(args))
    try:
        return await jobs[args.command](session, args)
    finally:
        await session.close()


def _state(args: argparse.Namespace) -> Path:
    """Demo jobs are kept apart from real ones: the demo directory lives in memory."""
    return demo_state_dir() if args.demo else state_dir()


def _console(args: argparse.Namespace) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("The console needs a terminal; for scripts use a subcommand (tenantry --help lists them).")
    from tui.app import TenantryApp

    config, opener = directory_opener(args)
    app = TenantryApp.for_command_line(args, config, opener, state=_state(args))
    app.run()
    return app.return_code or 0


def _write_crash_report() -> Path:
    path = state_dir() / "crash.log"
    with private_file(path, "a") as handle:
        handle.write(traceback.format_exc() + "\n")
    return path
