"""Reading replication state (no server): the up-to-dateness vector blob, hostile ones
included, and the replicated version of a user that ignores per-DC counters."""

from __future__ import annotations

import struct
import uuid

from core.directory.layout import replicated_version
from core.directory.ops import Entry
from core.directory.replication import DomainController, parse_up_to_date_vector

DC1 = uuid.UUID("ecfbccd6-0cc1-4aaa-b41e-696b01c29140")
DC2 = uuid.UUID("4baef545-1ee6-48ca-b93a-2254285d78ce")


def _vector(version: int, cursors: list[tuple[uuid.UUID, int]], count: int | None = None) -> bytes:
    head = struct.pack("<IIII", version, 0, len(cursors) if count is None else count, 0)
    if version == 2:
        return head + b"".join(struct.pack("<16sQQ", inv.bytes_le, usn, 133_000_000_000_000_000) for inv, usn in cursors)
    return head + b"".join(struct.pack("<16sQ", inv.bytes_le, usn) for inv, usn in cursors)


def test_both_versions_of_the_vector_are_read():
    assert parse_up_to_date_vector(_vector(2, [(DC1, 6482), (DC2, 14160)])) == {str(DC1): 6482, str(DC2): 14160}
    assert parse_up_to_date_vector(_vector(1, [(DC1, 7)])) == {str(DC1): 7}
    assert parse_up_to_date_vector(_vector(2, [])) == {}


def test_a_malformed_vector_proves_nothing():
    whole = _vector(2, [(DC1, 6482)])
    for blob in (b"", whole[:15], whole[:-1], _vector(3, [(DC1, 1)]), _vector(2, [(DC1, 1)], count=2)):
        assert parse_up_to_date_vector(blob) is None


def test_the_version_ignores_per_dc_counters_and_sees_every_replicated_change():
    attributes = {"cn": ["Ana"], "title": ["Tester"], "memberof": ["CN=B,DC=x", "CN=A,DC=x"]}
    on_dc1 = Entry("CN=Ana,OU=Users,DC=x", {**attributes, "usnchanged": ["4040"], "whenchanged": ["20261202065455.0Z"]})
    on_dc2 = Entry("cn=ana,ou=users,dc=x", {**attributes, "memberof": ["CN=A,DC=x", "CN=B,DC=x"], "usnchanged": ["3887"]})
    assert replicated_version(on_dc1) == replicated_version(on_dc2)
    for changed in ({"title": ["Boss"]}, {"title": ["tester"]}, {"memberof": ["CN=A,DC=x"]}, {"mail": ["a@x"]}):
        assert replicated_version(Entry(on_dc1.dn, {**on_dc1.attributes, **changed})) != replicated_version(on_dc1)
    assert replicated_version(Entry("CN=Ana,OU=Other,DC=x", on_dc1.attributes)) != replicated_version(on_dc1)


def test_a_dc_round_trips_through_the_journal_and_refuses_junk():
    dc = DomainController("ldaps://dc1.example.net:636", "CN=NTDS Settings,CN=DC1", str(DC1))
    assert DomainController.from_json(dc.to_json()) == dc and dc.name == "dc1.example.net:636"
    assert DomainController.from_json(None) is None and DomainController.from_json({"url": 5}) is None
