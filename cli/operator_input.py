"""What the headless commands ask the operator: confirmation, and new users' passwords.

A password comes from the first line of stdin (``--password-stdin``) or a masked
prompt asked twice on a terminal — never from the command line — and is checked
(by the caller's ``check``) before anything is written. It is only ever held in memory.
"""

from __future__ import annotations

import argparse
import getpass
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Awaitable, Callable

from core.errors import UsageError
from core.execute import Refused

PasswordCheck = Callable[[str], Awaitable[list[str]]]  # the problems, as sentences; empty: fine


@contextmanager
def interruptible() -> Iterator[None]:
    """``ctrl+c`` stops a prompt at once. (Under ``asyncio.run`` the loop's own SIGINT
    handler only schedules a cancel, which waits for the blocked read to return: the
    key was ignored until another one was typed.)"""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def confirm(args: argparse.Namespace, question: str, what: str) -> bool:
    """``--yes``, or a ``y`` on a terminal; without a terminal ``--yes`` is required."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise UsageError(f"Not on a terminal: pass --yes to run {what} without confirmation.")
    try:
        with interruptible():
            answer = input(question)
    except KeyboardInterrupt:
        print("\nNothing was changed.", file=sys.stderr)
        raise
    if answer.strip().lower() in ("y", "yes"):
        return True
    print("Nothing was changed.", file=sys.stderr)
    return False


def stdin_password() -> str:
    """The first line of stdin, without its line break."""
    line = sys.stdin.readline()
    password = line[:-1] if line.endswith("\n") else line
    password = password[:-1] if password.endswith("\r") else password
    if not password:
        raise UsageError("--password-stdin read an empty password.")
    return password


async def prompt_password(check: PasswordCheck, who: str, tries: int = 3) -> str:
    """Ask twice, masked, until the two agree and ``check`` finds no problem."""
    for _ in range(tries):
        with interruptible():
            first = getpass.getpass(f"New password for {who}: ")
            again = getpass.getpass("Again: ")
        if again != first:
            print("The two passwords differ; try again.", file=sys.stderr)
            continue
        problems = await check(first)
        if not problems:
            return first
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
    raise UsageError("No acceptable password was given; nothing was changed.")


async def password_again(args: argparse.Namespace, check: PasswordCheck, who: str, missing: str) -> str:
    """A password a resumed copy needs again (it was never kept): from ``--password-stdin``
    or the prompt, checked; ``missing`` is the sentence when neither is possible."""
    if getattr(args, "password_stdin", False):
        password = stdin_password()
        problems = await check(password)
        if problems:
            raise Refused(" ".join(problems) + " Nothing was changed.")
        return password
    if sys.stdin.isatty():
        return await prompt_password(check, who)
    raise UsageError(missing)
