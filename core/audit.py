"""The append-only audit log: who, bound as whom, did what to which users, when, and how it ended.

It lives in its own SQLite file, ``audit.sqlite3`` in the state directory, not in the
journal's file. The two have different lives: the journal is working state that an
operator may prune, archive or delete once its jobs are finished, while the audit
trail is kept (and shipped, and backed up) for as long as the platform's policy says.
Separate files let each be handled on its own without touching the other; nothing
needs one transaction across both (the executor writes the outcome to the journal,
then records it here).

Append-only is enforced by the database itself, not only by this module: triggers
abort every ``UPDATE`` and ``DELETE`` on the ``audit`` table, and an ``INSERT`` that
names its own ``id`` (the way ``INSERT OR REPLACE`` would overwrite an entry without
firing the delete trigger) is refused too. That stops mistakes and casual edits made
with any SQLite client; it does not stop someone who can rewrite the file itself —
protect the state directory (it is created 0700, the files 0600).

``detail`` is free text and is stored as given: callers never put a password or token
in it. :func:`redact` scrubs secrets by *dict key* only; the journal runs everything it
stores through it.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Iterator

from core.state import StateError, StateFile, string_list

AUDIT_FILE = "audit.sqlite3"

RESULTS = ("done", "refused", "denied", "rolled_back", "needs_attention", "failed", "planned")

REDACTED = "***"

# A dict key is secret if, lower-cased and with "-", "_", " " and "." removed, it contains
# one of these. The brief's list (password, passwd, secret, token, authorization,
# unicodepwd, apikey/api_key) plus a few that are just as obviously secret.
_SECRET_KEY_PARTS = (
    "password",
    "passwd",
    "secret",
    "token",
    "authorization",
    "unicodepwd",
    "apikey",
    "passphrase",
    "credential",
    "privatekey",
    "cookie",
)


def is_secret_key(key: object) -> bool:
    """True if a dict key names a value that must never be stored or shown."""
    folded = str(key).casefold()
    for char in "-_ .":
        folded = folded.replace(char, "")
    return any(part in folded for part in _SECRET_KEY_PARTS)


def redact(value: Any) -> Any:
    """A deep copy of a JSON-able value with every secret-keyed dict value replaced by ``"***"``.

    Dicts are matched by key (see :func:`is_secret_key`) at any depth, inside lists and
    tuples too; the whole value under a secret key is replaced, whatever its type.
    Strings are left alone: a secret inside free text is not found here.
    """
    if isinstance(value, dict):
        return {key: REDACTED if is_secret_key(key) else redact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item) for item in value]
    if isinstance(value, tuple):
        return tuple(redact(item) for item in value)
    return value


@dataclass(frozen=True)
class AuditRecord:
    id: int
    time: str  # ISO 8601, UTC
    operator: str
    bound_as: str
    action: str
    users: tuple[str, ...]
    customers: tuple[str, ...]
    result: str
    job: str | None
    detail: str


_SCHEMA_VERSION = 1

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT CHECK (id > 0),
    time      TEXT NOT NULL,
    operator  TEXT NOT NULL,
    bound_as  TEXT NOT NULL,
    action    TEXT NOT NULL,
    users     TEXT NOT NULL,   -- JSON list of strings
    customers TEXT NOT NULL,   -- JSON list of strings
    result    TEXT NOT NULL CHECK (result IN ({", ".join(f"'{r}'" for r in RESULTS)})),
    job       TEXT,
    detail    TEXT NOT NULL,
    haystack  TEXT NOT NULL    -- case-folded text that entries(search=...) matches
);
CREATE INDEX IF NOT EXISTS audit_job ON audit (job);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: entries cannot be changed');
END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: entries cannot be deleted');
END;
CREATE TRIGGER IF NOT EXISTS audit_no_chosen_id BEFORE INSERT ON audit
WHEN NEW.id <> -1
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only: an entry cannot choose its id');
END;
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Audit(StateFile):
    """The audit log in ``path`` (default ``<state dir>/audit.sqlite3``)."""

    FILE = AUDIT_FILE
    LABEL = "The audit log"
    SCHEMA = _SCHEMA
    SCHEMA_VERSION = _SCHEMA_VERSION

    def record(
        self,
        *,
        operator: str,
        bound_as: str,
        action: str,
        users: Iterable[str],
        customers: Iterable[str],
        result: str,
        job: str | None = None,
        detail: str = "",
    ) -> AuditRecord:
        """Append one entry, committed durably before returning, and return it."""
        result = str(result)
        if result not in RESULTS:
            raise ValueError(f"Unknown audit result {result!r}; expected one of {', '.join(RESULTS)}.")
        for name, text in (("operator", operator), ("bound_as", bound_as), ("action", action), ("detail", detail)):
            if not isinstance(text, str):
                raise TypeError(f"{name} must be a string")
        if job is not None and not isinstance(job, str):
            raise TypeError("job must be a string or None")
        users_t = string_list("users", users)
        customers_t = string_list("customers", customers)
        time = _now()
        haystack = "\n".join((operator, bound_as, action, *users_t, *customers_t, result, job or "", detail)).casefold()
        with self._lock, self._errors("could not record the entry"):
            db = self._connection()
            cursor = db.execute(
                "INSERT INTO audit (time, operator, bound_as, action, users, customers, result, job, detail, haystack)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    time,
                    operator,
                    bound_as,
                    action,
                    json.dumps(users_t, ensure_ascii=False),
                    json.dumps(customers_t, ensure_ascii=False),
                    result,
                    job,
                    detail,
                    haystack,
                ),
            )
            entry_id = cursor.lastrowid
        return AuditRecord(entry_id, time, operator, bound_as, action, users_t, customers_t, result, job, detail)

    def entries(self, search: str | None = None, limit: int = 200, before: int | None = None) -> list[AuditRecord]:
        """Newest first; ``search`` is a case-insensitive substring of the operator, the
        bound identity, action, users, customers, result, job id, detail or time (UTC,
        e.g. ``2024-05-14T09``). ``before``: only entries older than the entry with that
        id — the next page after a page whose last entry it is."""
        query = "SELECT id, time, operator, bound_as, action, users, customers, result, job, detail FROM audit"
        where: list[str] = []
        params: list[Any] = []
        if search:
            where.append("(instr(haystack, ?) > 0 OR instr(time, ?) > 0)")
            params += [search.casefold(), search]
        if before is not None:
            where.append("id < ?")
            params.append(int(before))
        if where:
            query += " WHERE " + " AND ".join(where)
        query += " ORDER BY id DESC LIMIT ?"
        params.append(int(limit))
        with self._lock, self._errors("cannot be read"):
            rows = self._connection().execute(query, params).fetchall()
        return [
            AuditRecord(row[0], row[1], row[2], row[3], row[4], tuple(json.loads(row[5])), tuple(json.loads(row[6])),
                        row[7], row[8], row[9])
            for row in rows
        ]

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn a SQLite failure (disk full, locked too long, corrupt file) into one sentence."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StateError(f"The audit log {self.path} {what}: {exc}.") from exc


