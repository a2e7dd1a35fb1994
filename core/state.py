"""Where Tenantry keeps its state (the job journal and the audit log), and how it opens it.

The directory is ``$TENANTRY_STATE_DIR`` if set, else ``$XDG_STATE_HOME/tenantry``,
else ``~/.local/state/tenantry`` (the XDG Base Directory rules: an empty or relative
``XDG_STATE_HOME`` is ignored). It is created on first use with mode 0700, since the
journal names users and customers; a directory that exists already keeps the
permissions its owner gave it. Its SQLite files are created 0600.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from core.errors import ConfigError, TenantryError

APP = "tenantry"
DEMO = "demo"

BUSY_TIMEOUT_MS = 15_000


class StateError(TenantryError):
    """A state file (journal or audit log) is unreadable, corrupt or of a newer version."""

    exit_code = 1


def state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Return the state directory, creating it (mode 0700) if it does not exist."""
    env = os.environ if environ is None else environ
    return private_dir(_locate(env))


def demo_state_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where ``--demo`` keeps its jobs and audit: the ``demo`` folder of the state
    directory, so they never mix with the real ones (the console and the subcommands
    alike)."""
    return private_dir(state_dir(environ) / DEMO)


def private_dir(path: Path) -> Path:
    """``path``, created (mode 0700, whatever the umask) if it does not exist."""
    if not path.is_dir():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir(mode=0o700)
            os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
        except FileExistsError:
            if not path.is_dir():
                raise ConfigError(f"The state directory {path} exists but is not a directory.") from None
        except OSError as exc:
            raise ConfigError(f"The state directory {path} cannot be created: {exc.strerror or exc}.") from None
    return path


def private_file(path: Path, mode: str = "a"):
    """Open a text file of the state directory that only its owner can read: created
    0600, and made 0600 if an older Tenantry left it readable to others."""
    handle = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC), 0o600), mode, encoding="utf-8")
    os.fchmod(handle.fileno(), 0o600)
    return handle


def _locate(env: Mapping[str, str]) -> Path:
    explicit = env.get("TENANTRY_STATE_DIR", "")
    if explicit:
        return Path(explicit).expanduser()
    xdg = env.get("XDG_STATE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / APP
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "state" / APP


def open_database(path: Path) -> sqlite3.Connection:
    """Open (creating if needed, mode 0600) a SQLite file for durable, shared use.

    WAL mode so readers never block the writer, ``synchronous=FULL`` so a commit is on
    disk (WAL fsynced) before it returns, and a busy timeout so a second process or
    thread waits for the write lock instead of failing. The connection is in autocommit
    mode (callers wrap each unit in ``BEGIN IMMEDIATE`` … ``COMMIT``) and may be used
    from several threads, one at a time: callers hold their own lock around it.
    """
    path = Path(path)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Create the file ourselves so it is private from the first byte; SQLite gives its
        # -wal and -shm companions the permissions of the main file.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        connection = sqlite3.connect(
            path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StateError(f"The state file {path} cannot be opened: {reason}.") from None
    try:
        connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StateError(f"The state file {path} cannot be put in WAL mode (it is in {mode} mode).")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as exc:
        connection.close()
        raise StateError(f"The state file {path} is not a usable SQLite database: {exc}.") from None
    except StateError:
        connection.close()
        raise
    return connection


def ensure_schema(connection: sqlite3.Connection, script: str, version: int, what: str,
                  migrations: Mapping[int, str] | None = None) -> None:
    """Create the tables of ``script`` unless ``PRAGMA user_version`` says they exist.

    A file of an older schema ``n`` is first brought up by ``migrations[n]``,
    ``migrations[n + 1]`` … (scripts run in the same transaction).

    ``what`` names the file in messages ("The journal /path"). A file written by a newer
    schema is refused rather than misread. Safe when two processes open a new file at
    once: the script is idempotent and runs under the write lock.
    """
    try:
        current = connection.execute("PRAGMA user_version").fetchone()[0]
        if current == version:
            return
        if current > version:
            raise StateError(f"{what} was written by a newer Tenantry (schema {current}); upgrade Tenantry to use it.")
        connection.execute("BEGIN IMMEDIATE")
        try:
            current = connection.execute("PRAGMA user_version").fetchone()[0]  # another process may have done it
            upgrades = [(migrations or {})[n] for n in range(current, version) if current > 0]
            for statement in [s for upgrade in upgrades for s in _statements(upgrade)] + _statements(script):
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {version}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    except sqlite3.DatabaseError as exc:
        raise StateError(f"{what} is not a usable SQLite database: {exc}.") from None


def _statements(script: str) -> list[str]:
    """Split a schema script into statements (``sqlite3.complete_statement`` knows triggers)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements


def string_list(name: str, values: Iterable[str]) -> tuple[str, ...]:
    """``values`` as a tuple of strings (users, customers of a job or audit record)."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a list of strings, not a single string")
    result = tuple(values)
    if not all(isinstance(v, str) for v in result):
        raise TypeError(f"{name} must be a list of strings")
    return result


class StateFile:
    """One SQLite file of the state directory (the journal, the audit log), opened with
    its schema checked; usable from several threads (``_lock``) and as a context manager."""

    FILE = ""  # the file name in the state directory
    LABEL = ""  # how sentences name it, e.g. "The journal"
    SCHEMA = ""  # the CREATE statements
    SCHEMA_VERSION = 1
    MIGRATIONS: Mapping[int, str] = {}  # older schema version → the script that brings it one up

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path is not None else state_dir() / self.FILE
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = open_database(self.path)
        try:
            ensure_schema(self._db, self.SCHEMA, self.SCHEMA_VERSION, f"{self.LABEL} {self.path}", self.MIGRATIONS)
        except BaseException:
            self.close()
            raise

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise ValueError(f"{self.LABEL} is closed.")
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
