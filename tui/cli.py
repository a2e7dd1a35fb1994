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

from core.config import Config, load, read_password
from core.errors import TenantryError

log = logging.getLogger("tenantry")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="PATH", help="configuration file (default: $TENANTRY_CONFIG or ~/.config/tenantry/config.toml)")
    parser.add_argument("--demo", action="store_true", help="use the embedded demo directory instead of a domain controller")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tenantry", description="Console for multi-tenant Active Directory hosting.")
    _common(parser)
    parser.add_argument("--readonly", action="store_true", help="hide and refuse every write action")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command is None:
            return _console(args)
        return asyncio.run(_run(args))
    except TenantryError as error:
        print(f"tenantry: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("tenantry: interrupted.", file=sys.stderr)
        return 130
    except Exception as error:  # the last line of defence: one sentence, details in a file
        where = _write_crash_report()
        print(f"tenantry: unexpected internal error ({type(error).__name__}); details are in {where}.", file=sys.stderr)
        return 1


async def open_directory(args: argparse.Namespace):
    """The directory the command works on: the demo one, or the configured DCs."""
    if args.demo:
        from core.demo.directory import open_demo

        return await open_demo()
    config = load(args.config)
    if not config.directory.tls_verify:
        print("tenantry: warning: TLS certificate verification is off (directory.tls_verify = false).", file=sys.stderr)
    password = read_password(config.directory, prompt=getpass.getpass)
    from core.directory import connect

    return await connect(config, password)


async def _run(args: argparse.Namespace) -> int:
    from tui import report

    commands: dict[str, Callable[[Any, argparse.Namespace], Awaitable[int]]] = {
        "customers": report.customers,
        "users": report.users,
    }
    directory = await open_directory(args)
    try:
        return await commands[args.command](directory, args)
    finally:
        await directory.close()


def _console(args: argparse.Namespace) -> int:
    from tui.app import TenantryApp

    config: Config | None = None if args.demo else load(args.config)
    app = TenantryApp.for_command_line(args, config, lambda: open_directory(args))
    app.run()
    return app.return_code or 0


def _write_crash_report() -> Path:
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "tenantry"
    state.mkdir(parents=True, exist_ok=True)
    path = state / "crash.log"
    with path.open("a", encoding="utf-8") as handle:
        handle.write(traceback.format_exc() + "\n")
    return path


if __name__ == "__main__":
    sys.exit(main())
