"""Hole 6 of issue 13: the audit is hash-chained, ``tenantry audit --verify`` finds a
rewritten, dropped, truncated or deleted log, and every entry can be shipped to syslog
(RFC 5424) as it is written — received here by real loopback listeners (UDP and a unix
datagram socket, the way /dev/log is).

Tampering is done the way an attacker with the file would: a plain SQLite client,
``DROP TRIGGER`` first, then UPDATE/DELETE — and the chain recomputed where that is the
point of the test.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
from pathlib import Path

import pytest

from core.audit import GENESIS, Audit, chain_hash, open_audit, _row_canonical
from core.config import parse
from core.errors import ConfigError
from test_cli import tenantry


def fill(audit: Audit, n: int = 4) -> None:
    for i in range(n):
        audit.record(operator=f"olivia{i}", bound_as="CN=svc", action="move", users=[f"u{i}@contoso.example"],
                     customers=["Contoso", "Fabrikam"], result="done", job=f"job-{i}", detail=f"entry {i}")


@pytest.fixture
def state(tmp_path) -> Path:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    return folder


@pytest.fixture
def audit(state):
    log = Audit(state / "audit.sqlite3")
    fill(log)
    yield log
    log.close()


def sql(state: Path, *statements: str, params: tuple = ()) -> None:
    """Edit the file as an attacker would: triggers dropped, any SQL."""
    db = sqlite3.connect(state / "audit.sqlite3")
    for trigger in ("audit_no_update", "audit_no_delete", "audit_no_chosen_id"):
        db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    with db:
        for statement in statements:
            db.execute(statement, params if "?" in statement else ())
    db.close()


def rechain(state: Path) -> None:
    """Recompute every hash after an edit, as an attacker who read the code would."""
    db = sqlite3.connect(state / "audit.sqlite3")
    db.execute("DROP TRIGGER IF EXISTS audit_no_update")
    running = GENESIS
    rows = db.execute("SELECT id, time, operator, bound_as, action, users, customers, result, job, detail, prev, hash FROM audit ORDER BY id").fetchall()
    with db:
        for row in rows:
            digest = chain_hash(running, _row_canonical(row))
            db.execute("UPDATE audit SET prev = ?, hash = ? WHERE id = ?", (running, digest, row[0]))
            running = digest
    db.close()


def verify(state: Path) -> tuple[int, str, str]:
    """``tenantry audit --verify`` on the state dir ``state`` (a real process; no directory needed)."""
    result = tenantry("audit", "--verify", env={"TENANTRY_STATE_DIR": str(state)})
    assert "Traceback" not in result.stderr
    return result.returncode, result.stdout, result.stderr


def test_an_untouched_log_verifies(audit, state):
    found = audit.verify()
    assert found.intact and found.entries == 4
    code, out, _ = verify(state)
    assert code == 0 and "is intact: 4 entries" in out and found.head in out


def test_every_entry_holds_the_hash_of_the_one_before(audit, state):
    rows = sqlite3.connect(state / "audit.sqlite3").execute("SELECT prev, hash FROM audit ORDER BY id").fetchall()
    assert rows[0][0] == GENESIS
    assert all(rows[i][0] == rows[i - 1][1] for i in range(1, len(rows)))
    assert len({h for _, h in rows}) == 4 and all(re.fullmatch(r"[0-9a-f]{64}", h) for _, h in rows)


def test_a_rewritten_entry_is_found(audit, state):
    sql(state, "UPDATE audit SET operator = 'someone-else' WHERE id = 2")
    code, out, err = verify(state)
    assert code == 1 and "Entry 2 was changed after it was written" in out and "tampered with" in err


def test_a_rewritten_entry_with_the_chain_recomputed_is_found_by_the_anchor(audit, state):
    sql(state, "UPDATE audit SET detail = 'nothing happened' WHERE id = 4")
    rechain(state)
    code, out, _ = verify(state)
    assert code == 1 and "entry 4 is not the one written there" in out


def test_a_dropped_entry_is_found(audit, state):
    sql(state, "DELETE FROM audit WHERE id = 2")
    code, out, _ = verify(state)
    assert code == 1 and "Entry 3 does not follow the entry before it" in out


@pytest.mark.parametrize("hide_the_sequence", [False, True])
def test_a_truncated_log_is_found(audit, state, hide_the_sequence):
    statements = ["DELETE FROM audit WHERE id >= 3"]
    if hide_the_sequence:
        statements.append("UPDATE sqlite_sequence SET seq = 2 WHERE name = 'audit'")
    sql(state, *statements)
    code, out, _ = verify(state)
    assert code == 1 and "The log holds 2 entries but had 4" in out
    assert ("Entries after entry 2 were removed" in out) != hide_the_sequence


def test_a_deleted_log_is_found_even_after_tenantry_wrote_to_a_new_one(audit, state):
    audit.close()
    for name in ("audit.sqlite3", "audit.sqlite3-wal", "audit.sqlite3-shm"):
        (state / name).unlink(missing_ok=True)
    code, out, _ = verify(state)
    assert code == 1 and "The log holds 0 entries but had 4" in out
    with Audit(state / "audit.sqlite3") as fresh:  # the next run records into a new file …
        fill(fresh, 5)
    code, out, _ = verify(state)  # … which neither hides the loss nor moves the anchor
    assert code == 1 and "entry 4 is not the one written there" in out
    assert json.loads((state / "audit.sqlite3.anchor").read_text())["count"] == 4


def test_a_deleted_anchor_is_found(audit, state):
    (state / "audit.sqlite3.anchor").unlink()
    code, out, _ = verify(state)
    assert code == 1 and "anchor file" in out and "is missing" in out


def test_an_entry_added_without_a_hash_is_found(audit, state):
    sql(state, "INSERT INTO audit (time, operator, bound_as, action, users, customers, result, job, detail, haystack)"
               " VALUES ('2026-01-01T00:00:00.000+00:00', 'x', 'x', 'move', '[]', '[]', 'done', NULL, '', '')")
    code, out, _ = verify(state)
    assert code == 1 and "Entry 5 has no hash although entries before it do" in out


def test_verify_json(audit, state):
    sql(state, "UPDATE audit SET result = 'refused' WHERE id = 1")
    result = tenantry("audit", "--verify", "--json", env={"TENANTRY_STATE_DIR": str(state)})
    found = json.loads(result.stdout)
    assert result.returncode == 1 and found["intact"] is False and found["entries"] == 4
    assert any("Entry 1 was changed" in p for p in found["problems"])


def test_a_log_from_before_the_chain_is_upgraded_and_covered(state):
    """A schema-1 file (no hash columns): it opens, its entries are covered by the first
    chained entry, and an edit of an old entry is found afterwards."""
    db = sqlite3.connect(state / "audit.sqlite3")
    db.executescript("""
        CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT CHECK (id > 0), time TEXT NOT NULL,
            operator TEXT NOT NULL, bound_as TEXT NOT NULL, action TEXT NOT NULL, users TEXT NOT NULL,
            customers TEXT NOT NULL, result TEXT NOT NULL, job TEXT, detail TEXT NOT NULL, haystack TEXT NOT NULL);
        INSERT INTO audit (time, operator, bound_as, action, users, customers, result, job, detail, haystack)
            VALUES ('2025-01-01T00:00:00.000+00:00', 'old', 'svc', 'move', '["a"]', '["C"]', 'done', NULL, 'legacy', '');
        PRAGMA user_version = 1;
    """)
    db.close()
    with Audit(state / "audit.sqlite3") as log:
        fill(log, 2)
        assert log.verify().intact and log.verify().entries == 3
    sql(state, "UPDATE audit SET operator = 'forged' WHERE id = 1")
    code, out, _ = verify(state)
    assert code == 1 and "Entry 2 does not follow the entry before it" in out


# -- syslog ---------------------------------------------------------------------------------------

RFC5424 = re.compile(
    rb'^<(?P<pri>\d{1,3})>1 (?P<time>\S+) (?P<host>\S+) tenantry (?P<pid>\d+) audit '
    rb'\[tenantry@32473 id="(?P<id>\d+)" hash="(?P<hash>[0-9a-f]{64})" prev="(?P<prev>[0-9a-f]{64})"\] '
    rb'\xef\xbb\xbf(?P<msg>.*)$', re.S)


def config_with(**audit) -> object:
    raw = {"directory": {"urls": ["ldaps://dc1.example.net"], "base_dn": "DC=example,DC=net", "bind_user": "svc"},
           "audit": audit}
    return parse(raw)


def receive_all(listener: socket.socket, count: int) -> list[bytes]:
    listener.settimeout(30)  # a bound on a broken test, not a measurement
    return [listener.recv(65536) for _ in range(count)]


def check_shipped(messages: list[bytes], audit: Audit) -> None:
    entries = list(reversed(audit.entries()))
    rows = sqlite3.connect(audit.path).execute("SELECT id, prev, hash FROM audit ORDER BY id").fetchall()
    assert len(messages) == len(entries) == len(rows)
    for message, entry, (entry_id, prev, digest) in zip(messages, entries, rows):
        match = RFC5424.match(message)
        assert match, message
        assert int(match["pri"]) == 10 * 8 + 5  # authpriv.notice
        assert int(match["id"]) == entry.id == entry_id
        assert match["hash"].decode() == digest and match["prev"].decode() == prev
        assert match["time"].decode() == entry.time
        body = json.loads(match["msg"].decode("utf-8"))
        assert body["operator"] == entry.operator and body["users"] == list(entry.users) and body["detail"] == entry.detail
        assert not any(0x7F <= ord(c) <= 0x9F for c in match["msg"].decode("utf-8"))  # C1 escaped in the message


def test_every_entry_reaches_a_udp_syslog_listener_as_it_is_written(state):
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    try:
        log = open_audit(config_with(syslog=True, syslog_address=f"127.0.0.1:{port}"), state)
        try:
            log.record(operator="Eve\x9b31m", bound_as="CN=svc", action="move", users=["a@x"], customers=["C"], result="done")
            messages = receive_all(listener, 1)  # sent as it was written, not at close
            fill(log, 3)
            messages += receive_all(listener, 3)
            log.record(operator="x", bound_as="y", action="copy", users=[], customers=[], result="refused", detail="é" * 10)
            messages += receive_all(listener, 1)
        finally:
            log.close()
        with Audit(state / "audit.sqlite3") as reread:
            check_shipped(messages, reread)
    finally:
        listener.close()


def test_every_entry_reaches_a_local_datagram_socket(state, tmp_path):
    path = tmp_path / "log.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    try:
        log = open_audit(config_with(syslog=True, syslog_address=str(path), syslog_facility="local3"), state)
        try:
            fill(log, 3)
            messages = receive_all(listener, 3)
        finally:
            log.close()
        assert all(m.startswith(b"<157>1 ") for m in messages)  # local3.notice
    finally:
        listener.close()


def test_a_dead_syslog_target_never_stops_the_audit(state, tmp_path):
    log = open_audit(config_with(syslog=True, syslog_address=str(tmp_path / "nobody-listens")), state)
    try:
        fill(log, 2)
        assert log.verify().intact and log.verify().entries == 2
    finally:
        log.close()


@pytest.mark.parametrize(("audit", "message"), [
    ({"syslog_address": "no-port"}, "audit.syslog_address must be a socket path"),
    ({"syslog_address": "host:99999"}, "audit.syslog_address must be a socket path"),
    ({"syslog_facility": "nope"}, "audit.syslog_facility must be one of"),
    ({"syslog": "yes"}, "audit.syslog must be a boolean"),
    ({"unknown": 1}, "unknown key audit.unknown"),
])
def test_audit_configuration_errors_are_one_sentence(audit, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_with(**audit)


@pytest.mark.dc
def test_the_command_line_ships_its_audit_entries_as_configured(samba_dc, sp_password, tmp_path):
    """End to end on the Samba DC: ``[audit] syslog`` in the config file, a refused move
    (to the user's own customer) — the entry reaches the listener with the chain's hash."""
    import subprocess
    import sys

    from directory_fixtures import PASSWORD_ENV, write_dc_config

    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    try:
        config = write_dc_config(samba_dc, tmp_path / "dc.toml", extra=(
            '\n[services.exchange]\ndisplay_name = "Hosted Exchange"\nadapter = "exchange"\n'
            f'\n[audit]\nsyslog = true\nsyslog_address = "127.0.0.1:{listener.getsockname()[1]}"\nsyslog_facility = "local5"\n'),
            tenants=samba_dc.seed.tenants_toml(services=()))  # only exchange is configured: no UEM tenants
        customer = samba_dc.seed.customers()[0]
        user = samba_dc.seed.users(under=f"OU=Users,{customer.dn}")[0]
        env = {**os.environ, PASSWORD_ENV: sp_password, "TENANTRY_STATE_DIR": str(tmp_path / "state")}
        result = subprocess.run([sys.executable, "-m", "cli", "move", user.first("userPrincipalName"), "--to",
                                 customer.first("ou"), "--yes", "--config", str(config)],
                                capture_output=True, text=True, cwd=Path(__file__).resolve().parent.parent, env=env, timeout=180)
        assert result.returncode == 3, result.stderr
        (message,) = receive_all(listener, 1)
    finally:
        listener.close()
    match = RFC5424.match(message)
    assert match and int(match["pri"]) == 21 * 8 + 5  # local5.notice
    with Audit(tmp_path / "state" / "audit.sqlite3") as log:
        (entry,) = log.entries()
        assert log.verify().head == match["hash"].decode()
    body = json.loads(match["msg"].decode("utf-8"))
    assert body["result"] == "refused" == entry.result and body["users"] == list(entry.users)


def test_a_damaged_anchor_is_reported_and_never_blocks_the_audit(audit, state):
    (state / "audit.sqlite3.anchor").write_text("{not json")
    fill(audit, 1)  # written all the same: the audit of a job never fails on the anchor
    assert audit.verify().entries == 5
    code, out, _ = verify(state)
    assert code == 1 and "The audit anchor" in out and "cannot be read" in out
    assert (state / "audit.sqlite3.anchor").read_text() == "{not json"  # left as found
