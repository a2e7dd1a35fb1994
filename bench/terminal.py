"""Bytes per keystroke: what the terminal receives from the real console at 80×24.

The ``tenantry`` command runs in a pseudo-terminal of 80×24 (``TERM=xterm-256color``,
no ``COLORTERM``: what an SSH session to a jump host usually has), normal and
``--low-bandwidth``. Keys are written to it one at a time, and every byte it writes
until it has been quiet for a while (and at least as long as the search takes) is
counted against that key. On the customers screen a name is typed and erased; then
the big customer's users screen is opened and a user's name typed and erased there.

A keystroke *changes rows* when the rows the table shows (the first ones that fit on
the screen) differ from the previous search's, as a bare ldap3 search of the same
filter tells; the others change only the search box (and perhaps the count).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path

import ldap3

from bench.report import Result, median
from bench.search import LIMIT, bare_connection, keys_for, users_dn
from bench.target import Target
from core.config import load
from core.directory import connect
from core.directory.layout import Layout

ROWS, COLUMNS = 24, 80
VISIBLE = {"customers": 20, "users": 19}  # table rows on screen at 80×24
KEYS = {"backspace": b"\x7f", "enter": b"\r", "escape": b"\x1b", "slash": b"/"}


class Console:
    """``tenantry --config …`` in a pseudo-terminal; counts what it writes."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: size the terminal, then become the console
            try:
                fcntl.ioctl(pty.STDOUT_FILENO, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
                os.execvpe(argv[0], argv, env)
            finally:  # never go on as a copy of the parent (its exit handlers would run twice)
                os._exit(127)
        self.pid, self.fd = pid, fd

    def read(self, at_least: float, quiet: float, limit: float = 60) -> int:
        """Bytes written from now until ``quiet`` s of silence, waiting ``at_least`` s."""
        start = time.monotonic()
        last = start
        count = 0
        while True:
            now = time.monotonic()
            if now - start > limit or (now - start >= at_least and now - last >= quiet):
                return count
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if ready:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:  # the console exited
                    return count
                count += len(data)
                last = time.monotonic()

    def press(self, key: str) -> None:
        os.write(self.fd, KEYS.get(key, key.encode("utf-8")))

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


def _first(entry: dict, *names: str) -> str:
    raw = {k.lower(): v for k, v in entry["raw_attributes"].items()}
    for name in names:
        if raw.get(name.lower()):
            return raw[name.lower()][0].decode("utf-8", "replace")
    return ""


def _shown(conn: ldap3.Connection, layout: Layout, kind: str, base: str, text: str | None) -> list[str]:
    """The DNs of the rows the screen shows for ``text``: the first LIMIT+1 the server
    returns, sorted as the screen sorts them, as many as fit."""
    if kind == "customers":
        conn.search(layout.hosting_dn, layout.customer_filter(text), ldap3.SUBTREE, attributes=["ou"], paged_size=LIMIT + 1)
        names = ("ou",)
    else:
        conn.search(base, layout.user_filter(text), ldap3.LEVEL, attributes=["displayName", "cn"], paged_size=LIMIT + 1)
        names = ("displayName", "cn")
    entries = [e for e in conn.response if e["type"] == "searchResEntry"]
    entries.sort(key=lambda e: _first(e, *names).casefold())
    return [e["dn"] for e in entries[: VISIBLE[kind]]]


def _changes(target: Target, kind: str, keys: list[str], base: str = "") -> list[bool | None]:
    """Per key: whether the shown rows change (``None``: the search text does not)."""
    layout = Layout(load(target.config))
    conn = bare_connection(target)
    try:
        out, text, rows = [], "", _shown(conn, layout, kind, base, None)
        for key in keys:
            new = text[:-1] if key == "backspace" else text + key
            if new.strip() == text.strip():
                out.append(None)
            else:
                shown = _shown(conn, layout, kind, base, new.strip() or None)
                out.append(shown != rows)
                rows = shown
            text = new
        return out
    finally:
        conn.unbind()


def _texts(keys: list[str]) -> list[str | None]:
    """The search text after each key (``None``: empty)."""
    out, text = [], ""
    for key in keys:
        text = text[:-1] if key == "backspace" else text + key
        out.append(text.strip() or None)
    return out


async def _search_seconds(target: Target, customer_texts, user_texts) -> dict[tuple[str, str | None], float]:
    """How long the core takes for each search the keys make: a key's bytes are awaited
    at least that long (×1.5, plus the debounce), so a slow search is not cut off."""
    directory = await connect(load(target.config), target.password)
    try:
        big = await directory.customer(target.big_customer)
        out: dict[tuple[str, str | None], float] = {}
        for kind, texts in (("customers", customer_texts), ("users", user_texts)):
            for text in [None, *texts]:
                if (kind, text) not in out:
                    start = time.perf_counter()
                    if kind == "customers":
                        await directory.customers(search=text, limit=LIMIT + 1)
                    else:
                        await directory.users(big, search=text, limit=LIMIT + 1)
                    out[(kind, text)] = time.perf_counter() - start
        return out
    finally:
        await directory.close()


def _wait(seconds: float) -> float:
    return 0.35 + 1.5 * seconds + 0.2  # the low-bandwidth debounce, the search, the repaint


def _type(console: Console, kind: str, keys: list[str], search: dict) -> list[int]:
    counts = []
    for key, text in zip(keys, _texts(keys)):
        console.press(key)
        counts.append(console.read(at_least=_wait(search[(kind, text)]), quiet=0.3))
    return counts


def session(target: Target, low_bandwidth: bool, search: dict) -> dict:
    """One console: the customers screen, then the big customer's users screen."""
    env = target.env()
    for name in ("COLORTERM", "NO_COLOR", "TEXTUAL_DRIVER"):
        env.pop(name, None)
    env.update(TERM="xterm-256color", LANG="C.UTF-8", COLUMNS=str(COLUMNS), LINES=str(ROWS))
    argv = [str(Path(sys.executable).with_name("tenantry")), "--config", str(target.config)]
    if low_bandwidth:
        argv.append("--low-bandwidth")
    console = Console(argv, env)
    try:
        first = console.read(at_least=1.0 + _wait(search[("customers", None)]), quiet=1.0)
        console.press("slash")
        console.read(at_least=0.3, quiet=0.2)
        customers = _type(console, "customers", keys_for(target.customer_words[:1]), search)
        # open the big customer: search it, leave the box (enter), open it (enter)
        for key in target.big_customer:
            console.press(key)
            console.read(at_least=0.05, quiet=0.1)
        console.press("enter")
        console.read(at_least=_wait(search[("customers", target.big_customer)]), quiet=0.3)
        console.press("enter")
        console.read(at_least=_wait(search[("users", None)]), quiet=0.5)
        console.press("slash")
        console.read(at_least=0.3, quiet=0.2)
        users = _type(console, "users", keys_for(target.user_words[:1]), search)
    finally:
        console.close()
    return {"first_screen": first, "customers": customers, "users": users}


def measure(target: Target, *, log=print) -> tuple[list[Result], dict]:
    conn = bare_connection(target)
    try:
        users_base = users_dn(conn, Layout(load(target.config)), target.big_customer)
    finally:
        conn.unbind()
    customer_keys, user_keys = keys_for(target.customer_words[:1]), keys_for(target.user_words[:1])
    changes = {"customers": _changes(target, "customers", customer_keys), "users": _changes(target, "users", user_keys, users_base)}
    search = asyncio.run(_search_seconds(target, [*_texts(customer_keys), target.big_customer], _texts(user_keys)))
    results: list[Result] = []
    raw: dict = {"changes": changes, "search_s": {f"{k}:{t}": v for (k, t), v in search.items()}}
    for low in (False, True):
        mode = "low-bandwidth" if low else "normal"
        log(f"bytes: the console in a pty at 80×24, {mode} …")
        counts = session(target, low, search)
        raw[mode] = counts
        for screen in ("customers", "users"):
            pairs = [(n, c) for n, c in zip(counts[screen], changes[screen]) if c is not None]
            changed = [n for n, c in pairs if c]
            same = [n for n, c in pairs if not c]
            label = f"bytes/key, {screen} screen, {mode}"
            # "Only what changed": a key that changes rows sends less than a whole new
            # screen (the first frame with its rows), one that does not sends a little.
            results.append(Result(f"bytes.{mode}.{screen}.changed", f"{label}: rows change (median)", median(changed), "B",
                                  ("<=", float(counts["first_screen"])), {"max": max(changed, default=None), "keys": len(changed),
                                                                          "first_screen": counts["first_screen"]}))
            results.append(Result(f"bytes.{mode}.{screen}.same", f"{label}: rows stay (median)", median(same), "B", ("<=", 1024.0),
                                  {"max": max(same, default=None), "keys": len(same)}))
    return results, raw
