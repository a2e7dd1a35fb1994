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
with any SQLite client; it does not stop someone who can rewrite the file itself (a
``DROP TRIGGER`` is enough). So the entries are also **hash-chained**: each holds the
SHA-256 of the one before it (``prev``) and its own (``hash``, over ``prev`` and the
entry's fields), and :meth:`Audit.verify` recomputes the chain. An **anchor** file
beside the log (``audit.sqlite3.anchor``) keeps the count and head hash of the chain
as last written, so a log cut short, or deleted and started afresh, is found too. What
this does and does not prove is spelled out in the README ("The audit log").

Entries written before the chain existed (schema 1) carry no hashes of their own: the
first chained entry's ``prev`` is computed over them, so they are covered from then on.

``detail`` is free text and is stored as given: callers never put a password or token
in it. :func:`redact` scrubs secrets by *dict key* only; the journal runs everything it
stores through it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from core.audit_shipping import SyslogShipper, SyslogTarget
from core.state import StateError, StateFile, private_file, string_list

log = logging.getLogger("tenantry.audit")

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


def _row_canonical(row: tuple) -> bytes:
    """:func:`_canonical` of a row of ``Audit._ROW`` (a list column that is not JSON any
    more is hashed as its text, so it fails verification instead of stopping it)."""
    def listed(text: str) -> Any:
        try:
            return json.loads(text)
        except (TypeError, ValueError):
            return text

    return _canonical(row[1], row[2], row[3], row[4], listed(row[5]), listed(row[6]), row[7], row[8], row[9])


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


_SCHEMA_VERSION = 2

GENESIS = "0" * 64  # the ``prev`` of the first entry of a chain
ANCHOR_SUFFIX = ".anchor"

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
    haystack  TEXT NOT NULL,   -- case-folded text that entries(search=...) matches
    prev      TEXT,            -- the hash of the entry before (NULL: written before the chain)
    hash      TEXT             -- sha256(prev + the entry's canonical JSON), hex
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


# Schema 1 → 2: the hash chain's two columns (old entries keep NULL; see the module doc).
_MIGRATIONS = {
    1: "ALTER TABLE audit ADD COLUMN prev TEXT;\nALTER TABLE audit ADD COLUMN hash TEXT;",
}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _canonical(time: str, operator: str, bound_as: str, action: str, users: Iterable[str], customers: Iterable[str],
               result: str, job: str | None, detail: str) -> bytes:
    """The bytes an entry's hash covers: its fields (not its id) as compact JSON."""
    fields = [time, operator, bound_as, action, list(users), list(customers), result, job, detail]
    return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def chain_hash(prev: str, canonical: bytes) -> str:
    return hashlib.sha256(prev.encode("ascii") + b"\n" + canonical).hexdigest()


@dataclass(frozen=True)
class Verification:
    """What :meth:`Audit.verify` found: ``problems`` is empty when the log is intact."""

    entries: int
    head: str
    problems: tuple[str, ...]

    @property
    def intact(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Anchor:
    """The chain as last written: how many entries, and the hash of the last."""

    count: int
    head: str


class Audit(StateFile):
    """The audit log in ``path`` (default ``<state dir>/audit.sqlite3``); every entry
    is also sent to ``shipper`` (syslog) once written, when one is given."""

    FILE = AUDIT_FILE
    LABEL = "The audit log"
    SCHEMA = _SCHEMA
    SCHEMA_VERSION = _SCHEMA_VERSION
    MIGRATIONS = _MIGRATIONS

    def __init__(self, path=None, shipper: SyslogShipper | None = None) -> None:
        super().__init__(path)
        self.shipper = shipper

    def close(self) -> None:
        super().close()
        if self.shipper is not None:
            self.shipper.close()

    @property
    def anchor_path(self) -> Path:
        return self.path.with_name(self.path.name + ANCHOR_SUFFIX)

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
        canonical = _canonical(time, operator, bound_as, action, users_t, customers_t, result, job, detail)
        with self._lock, self._errors("could not record the entry"):
            db = self._connection()
            db.execute("BEGIN IMMEDIATE")  # the head read and the insert, one writer at a time across processes
            try:
                prev, count = self._head(db)
                digest = chain_hash(prev, canonical)
                cursor = db.execute(
                    "INSERT INTO audit (time, operator, bound_as, action, users, customers, result, job, detail, haystack, prev, hash)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    prev,
                    digest,
                ),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            entry_id = cursor.lastrowid
            self._advance_anchor(db, Anchor(count + 1, digest))
        record = AuditRecord(entry_id, time, operator, bound_as, action, users_t, customers_t, result, job, detail)
        if self.shipper is not None:
            self.shipper.ship(record, prev, digest)
        return record

    # -- the hash chain --------------------------------------------------------------------

    _ROW = "SELECT id, time, operator, bound_as, action, users, customers, result, job, detail, prev, hash FROM audit"

    def _head(self, db: sqlite3.Connection) -> tuple[str, int]:
        """The hash a new entry follows, and how many entries there are."""
        count = db.execute("SELECT count(*) FROM audit").fetchone()[0]
        last = db.execute("SELECT hash FROM audit ORDER BY id DESC LIMIT 1").fetchone()
        if last is None:
            return GENESIS, 0
        if last[0] is not None:
            return last[0], count
        # The last entry is from before the chain: chain over every entry so far.
        running = GENESIS
        for row in db.execute(self._ROW + " ORDER BY id"):
            running = chain_hash(running, _row_canonical(row))
        return running, count

    def read_anchor(self) -> Anchor | None:
        try:
            data = json.loads(self.anchor_path.read_text(encoding="utf-8"))
            return Anchor(int(data["count"]), str(data["head"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StateError(f"The audit anchor {self.anchor_path} cannot be read ({type(exc).__name__}); check it, or move it away to start a new one.") from None

    def _advance_anchor(self, db: sqlite3.Connection, new: Anchor) -> None:
        """Move the anchor to ``new`` if the log still holds the chain the anchor names.

        Two processes may write one after the other: the anchor only moves forward. A log
        that no longer holds the anchored entry (cut short, deleted, replaced) leaves the
        anchor where it is, so :meth:`verify` keeps reporting it."""
        with private_file(self.anchor_path.with_name(self.anchor_path.name + ".lock")) as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            try:
                old = self.read_anchor()
            except StateError as error:  # left as found, for verify() to report; the entry itself is written
                log.warning("%s", error)
                return
            if old is not None and (new.count <= old.count or self._hash_at(db, old.count) != old.head):
                return
            temporary = self.anchor_path.with_name(self.anchor_path.name + ".new")
            with private_file(temporary, "w") as handle:
                handle.write(json.dumps({"count": new.count, "head": new.head}) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.anchor_path)

    @staticmethod
    def _hash_at(db: sqlite3.Connection, position: int) -> str | None:
        """The stored hash of the ``position``-th entry (1-based, in id order)."""
        if position <= 0:
            return GENESIS
        row = db.execute("SELECT hash FROM audit ORDER BY id LIMIT 1 OFFSET ?", (position - 1,)).fetchone()
        return None if row is None else row[0]

    def verify(self) -> Verification:
        """Recompute the hash chain and compare it with the anchor; every fault found is
        one sentence in ``problems`` (an entry changed, one missing, the log cut short or
        started afresh, an entry added without a hash)."""
        problems: list[str] = []
        with self._lock, self._errors("cannot be read"):
            db = self._connection()
            rows = db.execute(self._ROW + " ORDER BY id").fetchall()
            sequence = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'audit'").fetchone()
        running, chained, count = GENESIS, False, 0
        for row in rows:
            count += 1
            entry_id, prev, stored = row[0], row[10], row[11]
            computed_from_stored = chain_hash(prev, _row_canonical(row)) if prev is not None else None
            if stored is None or prev is None:
                if chained:
                    problems.append(f"Entry {entry_id} has no hash although entries before it do: it was added outside Tenantry.")
                running = chain_hash(running, _row_canonical(row))
                continue
            chained = True
            if prev != running:
                problems.append(f"Entry {entry_id} does not follow the entry before it: an entry before it was removed, added or changed.")
            if stored != computed_from_stored:
                problems.append(f"Entry {entry_id} was changed after it was written (its hash does not match its contents).")
            running = stored
        last_id = rows[-1][0] if rows else 0
        if sequence is not None and sequence[0] > last_id:
            problems.append(f"Entries after entry {last_id} were removed (the log had reached entry {sequence[0]}).")
        try:
            anchor = self.read_anchor()
        except StateError as error:
            return Verification(count, running, (*problems, str(error)))
        if anchor is None:
            if chained:
                problems.append(f"The anchor file {self.anchor_path} is missing: it was deleted, so a cut-short log could go unnoticed.")
        elif count < anchor.count:
            problems.append(f"The log holds {count} entries but had {anchor.count}: it was cut short, or deleted and started afresh.")
        elif self._stored_at(rows, anchor.count) != anchor.head:
            problems.append(f"The log's entry {anchor.count} is not the one written there: the log was replaced or rewritten.")
        return Verification(count, running, tuple(problems))

    @staticmethod
    def _stored_at(rows: list[tuple], position: int) -> str | None:
        return rows[position - 1][11] if 0 < position <= len(rows) else None

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




def open_audit(config: Any, folder: Path) -> Audit:
    """The audit log of the state folder ``folder``, shipping to syslog if ``[audit]`` says so."""
    settings = config.audit
    shipper = SyslogShipper(SyslogTarget(settings.syslog_address, settings.syslog_facility)) if settings.syslog else None
    return Audit(folder / AUDIT_FILE, shipper=shipper)
