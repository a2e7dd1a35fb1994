"""The audit log is append-only in the database itself, searchable, and redact() scrubs secrets."""

from __future__ import annotations

import sqlite3
import stat
from datetime import datetime, timedelta, timezone

import pytest

from core.audit import RESULTS, Audit, is_secret_key, redact


@pytest.fixture
def audit(tmp_path):
    with Audit(tmp_path / "audit.sqlite3") as log:
        yield log


def fill(audit: Audit) -> None:
    audit.record(operator="olivia", bound_as="CN=svc", action="move", users=["anna@contoso.example"],
                 customers=["Contoso", "Fabrikam"], result="done", job="20261124-145501-3f9a",
                 detail="Moved with Hosted Exchange and OCS.")
    audit.record(operator="rick", bound_as="CN=Rick Reseller", action="move", users=["bob@contoso.example"],
                 customers=["Contoso", "Northwind"], result="denied", detail="Northwind is outside reseller Acme.")
    audit.record(operator="olivia", bound_as="CN=svc", action="copy", users=["Zoë.Müller@fabrikam.example"],
                 customers=["Fabrikam"], result="refused", detail="UPN collides.")


def test_record_returns_the_stored_entry_and_entries_are_newest_first(audit, tmp_path):
    before = datetime.now(timezone.utc)
    entry = audit.record(operator="olivia", bound_as="CN=svc", action="move", users=["anna@contoso.example"],
                         customers=["Contoso", "Fabrikam"], result="done", job="20261124-145501-3f9a")
    assert entry.operator == "olivia" and entry.users == ("anna@contoso.example",)
    assert entry.customers == ("Contoso", "Fabrikam") and entry.job == "20261124-145501-3f9a" and entry.detail == ""
    stamp = datetime.fromisoformat(entry.time)
    assert stamp.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(timezone.utc) + timedelta(seconds=1)

    fill(audit)
    entries = audit.entries()
    assert entries[-1] == entry
    assert [e.action for e in entries] == ["copy", "move", "move", "move"]
    assert [e.id for e in entries] == sorted((e.id for e in entries), reverse=True)
    assert len(audit.entries(limit=2)) == 2

    # Durable and readable by another object.
    with Audit(tmp_path / "audit.sqlite3") as other:
        assert other.entries() == entries


def test_search_is_a_case_insensitive_substring_of_every_field(audit):
    fill(audit)

    def ops(search):
        return [(e.operator, e.action, e.result) for e in audit.entries(search)]

    assert ops("OLIVIA") == [("olivia", "copy", "refused"), ("olivia", "move", "done")]  # operator
    assert ops("Copy") == [("olivia", "copy", "refused")]  # action
    assert ops("BOB@contoso") == [("rick", "move", "denied")]  # users
    assert ops("northWIND") == [("rick", "move", "denied")]  # customers (and detail)
    assert ops("denied") == [("rick", "move", "denied")]  # result
    assert ops("hosted exchange") == [("olivia", "move", "done")]  # detail
    assert ops("ZOË.MÜLLER") == [("olivia", "copy", "refused")]  # not only ASCII
    assert ops("3f9a") == [("olivia", "move", "done")]  # job id
    assert ops("rick reseller") == [("rick", "move", "denied")]  # bound as
    assert ops("nobody") == []
    assert ops("%") == [] and ops("_") == []  # literal, no wildcards
    assert len(audit.entries("")) == 3 and len(audit.entries(None)) == 3


def test_update_and_delete_are_refused_by_the_database_itself(audit):
    fill(audit)
    before = audit.entries()
    raw = sqlite3.connect(audit.path, isolation_level=None)
    for statement in (
        "UPDATE audit SET result = 'done' WHERE operator = 'rick'",
        "UPDATE audit SET detail = ''",
        "DELETE FROM audit WHERE operator = 'rick'",
        "DELETE FROM audit",
        # REPLACE deletes the old row without firing delete triggers; an insert that picks its id is refused.
        "INSERT OR REPLACE INTO audit (id, time, operator, bound_as, action, users, customers, result, job, detail, haystack)"
        " VALUES (1, 't', 'mallory', 'x', 'move', '[]', '[]', 'done', NULL, '', '')",
        "INSERT INTO audit (id, time, operator, bound_as, action, users, customers, result, job, detail, haystack)"
        " VALUES (-1, 't', 'mallory', 'x', 'move', '[]', '[]', 'done', NULL, '', '')",
    ):
        with pytest.raises(sqlite3.IntegrityError):
            raw.execute(statement)
    raw.close()
    assert audit.entries() == before


def test_bad_entries_are_refused(audit):
    with pytest.raises(ValueError, match="Unknown audit result"):
        audit.record(operator="o", bound_as="b", action="move", users=[], customers=[], result="ok")
    with pytest.raises(TypeError):
        audit.record(operator="o", bound_as="b", action="move", users="anna", customers=[], result="done")
    assert audit.entries() == []
    for result in RESULTS:
        audit.record(operator="o", bound_as="b", action="move", users=[], customers=[], result=result)
    assert [e.result for e in audit.entries()] == list(reversed(RESULTS))


def test_the_audit_log_has_its_own_private_file_in_the_state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TENANTRY_STATE_DIR", str(tmp_path / "state"))
    with Audit() as audit:
        audit.record(operator="o", bound_as="b", action="move", users=["u"], customers=["c"], result="done")
        assert audit.path == tmp_path / "state" / "audit.sqlite3"
    for file in (tmp_path / "state").iterdir():
        assert stat.S_IMODE(file.stat().st_mode) & 0o077 == 0, file


# ------------------------------------------------------------------------------ redact


def test_redact_replaces_secret_keys_at_any_depth_and_leaves_the_input_alone():
    value = {
        "user": "anna",
        "Password": "p1",
        "newPasswd": "p2",
        "client_secret": "s",
        "refreshToken": "t",
        "headers": {"Authorization": "Bearer x", "Accept": "application/json", "X-API-Key": "k"},
        "changes": [{"unicodePwd": b"\x00", "mail": ["a@b"]}, ("tuple", {"api_key": "k2", "apikey": "k3"})],
        "nested": {"deeper": {"secret": {"whole": "subtree"}}},
        "note": "my password is in this string",
        "count": 3,
        "flag": None,
    }
    original = repr(value)
    clean = redact(value)
    assert repr(value) == original  # a copy, not an edit
    assert clean == {
        "user": "anna",
        "Password": "***",
        "newPasswd": "***",
        "client_secret": "***",
        "refreshToken": "***",
        "headers": {"Authorization": "***", "Accept": "application/json", "X-API-Key": "***"},
        "changes": [{"unicodePwd": "***", "mail": ["a@b"]}, ("tuple", {"api_key": "***", "apikey": "***"})],
        "nested": {"deeper": {"secret": "***"}},
        "note": "my password is in this string",
        "count": 3,
        "flag": None,
    }
    assert clean["changes"][0]["mail"] is not value["changes"][0]["mail"]
    assert redact("password") == "password" and redact(5) == 5 and redact(None) is None
    assert redact([{"TOKEN": 1}]) == [{"TOKEN": "***"}]


def test_is_secret_key_covers_the_usual_spellings_and_not_ordinary_attributes():
    for key in ("password", "userPassword", "PASSWD", "secret", "access_token", "Authorization", "unicodePwd",
                "apiKey", "api_key", "api-key", "passphrase", "credentials", "private_key", "Cookie"):
        assert is_secret_key(key), key
    for key in ("user", "mail", "proxyAddresses", "pwdLastSet", "sAMAccountName", "dn", "target", "authority"):
        assert not is_secret_key(key), key
