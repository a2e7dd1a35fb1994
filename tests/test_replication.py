"""Reading replication state (no server): the up-to-dateness vector blob, hostile ones
included, and the replicated version of a user that ignores per-DC counters."""

from __future__ import annotations

import struct
import uuid

from core.directory.layout import dn_key, replicated_version
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


# --------------------------------------------------------------------------- after a job, and re-planning


def _job(steps, meta=None):
    from core.journal import JobRecord, JobStatus, StepRecord, StepState

    records = tuple(StepRecord(i, "u", s.action, s.target, s.to_json(), StepState.DONE, None, None, None, None, None)
                    for i, s in enumerate(steps))
    return JobRecord("20260101-000000-abcd", "copy", JobStatus.DONE, "op", "op", ("u",), ("C",), "", "", None, records, meta or {})


def test_the_pdc_emulator_is_found_among_the_urls_by_name_or_address():
    from core.directory.directory import _urls_reaching

    urls = ["ldaps://10.0.0.9", "ldaps://DC2.Example.NET:636", "ldaps://127.0.0.1:636"]
    assert _urls_reaching("dc2.example.net", urls) == ["ldaps://DC2.Example.NET:636"]  # by name, no DNS asked
    assert _urls_reaching("localhost", urls) == ["ldaps://127.0.0.1:636"]  # by the address the name resolves to
    assert _urls_reaching("no-such-host.invalid", urls) == []


def test_the_values_a_job_wrote_are_the_ones_checked_for_duplicates():
    from core import plan as p
    from core.convergence import Duplicate, written_values
    from core.plan import Step

    add = Step("u", p.ADD_USER, "CN=New,OU=Users,OU=C", None,
               {"userPrincipalName": "new@c.example", "proxyAddresses": ["SMTP:new@c.example", "X500:/o=x"], "title": "T"})
    modify = Step("u", p.MODIFY, "CN=New,OU=Users,OU=C", {"msRTCSIP-PrimaryUserAddress": []}, {"msRTCSIP-PrimaryUserAddress": ["sip:new@c.example"]})
    assert written_values(_job([add, modify])) == {
        "userprincipalname": ["new@c.example"], "proxyaddresses": ["SMTP:new@c.example", "X500:/o=x"],
        "msrtcsip-primaryuseraddress": ["sip:new@c.example"]}
    hostile = Duplicate("upn", "a\x1b[2J@c.example", ("CN=x\x9b31m,OU=C", "CN=y,OU=C"), "ldaps://dc2.example.net")
    assert hostile.sentence == "the UPN a[2J@c.example is held by 2 objects on dc2.example.net: CN=x31m,OU=C; CN=y,OU=C"


def test_a_journaled_request_is_read_back_and_a_damaged_one_is_none():
    from core.copy import CopyRequest
    from core.move import MoveRequest
    from core.replan import journaled_request, request_meta

    move = MoveRequest("ana@f.example", "Woodgrove", upn="ana@w.example", plans={"exchange": "Basic 2 GB"})
    copy = CopyRequest("tpl@f.example", "Ana", "Hall", services=("exchange", "ocs"))
    for request in (move, copy):
        assert journaled_request(_job([], {"request": request_meta(request)})) == request
    for damaged in ({"move": {"user": "x"}}, {"delete": {}}, "move", {"move": {}, "copy": {}}):
        assert journaled_request(_job([], {"request": damaged})) is None


def test_what_a_fresh_plan_does_differently_is_named():
    from core import plan as p
    from core.plan import Step
    from core.replan import changes_sentence, plan_changes

    old = [Step("u", p.MODIFY, "CN=A", {"mail": ["a@s.example"], "title": ["T"]}, {"mail": ["a@d.example"], "title": ["T"]}),
           Step("u", p.ADD_MEMBER, "CN=G1", None, "CN=A")]
    new = [Step("u", p.MODIFY, "CN=A", {"mail": ["a2@s.example"], "title": ["T"]}, {"mail": ["a@d.example"], "title": ["T"]}),
           Step("u", p.ADD_MEMBER, "CN=G2", None, "CN=A")]
    assert plan_changes(old, old) == []
    assert plan_changes(old, new) == [
        "new step add_member CN=G2", "step add_member CN=G1 dropped", "mail of CN=A was a@s.example, now a2@s.example"]
    assert changes_sentence([f"c{i}" for i in range(10)]) == "c0; c1; c2; c3; c4; c5; c6; c7; and 2 more"


def test_the_version_reads_the_manager_by_the_name_it_points_to():
    """The DC shows ``manager`` at the manager's current DN: the manager moving to another
    OU is no change of this user; another manager (another name) is; a value that is no
    DN (hostile or corrupt) is read as it is."""
    user = Entry("CN=Ana,OU=Users,OU=A,DC=x", {"cn": ["Ana"], "manager": ["CN=Bo\\, Lee,OU=Users,OU=A,DC=x"]})
    moved = Entry(user.dn, {"cn": ["Ana"], "manager": ["cn=bo\\2C lee,ou=Users,OU=B,DC=x"]})
    assert replicated_version(moved) == replicated_version(user)
    for other in (["CN=Cy,OU=Users,OU=A,DC=x"], [], ["not a dn"], ["CN=Bo\\, Lee,OU=Users,OU=A,DC=x", "CN=Cy,DC=x"]):
        assert replicated_version(Entry(user.dn, {"cn": ["Ana"], "manager": other})) != replicated_version(user)
    assert replicated_version(Entry(user.dn, {"cn": ["Ana"], "manager": ["CN=Bo\\, Lee"]})) == replicated_version(user)
    assert replicated_version(Entry(user.dn, {"cn": ["Ana"], "manager": ["=,=\\"]})) != replicated_version(user)


def test_the_version_reads_the_manager_by_its_guid_where_it_was_read():
    """With the manager's objectGUID read: renamed (another name, the same GUID) is no
    change of the user; another manager (another GUID, even under the same name) is."""
    guid, other = "0f5c6a9e-1d2b-4c3d-8e9f-000000000001", "0f5c6a9e-1d2b-4c3d-8e9f-000000000002"
    user = Entry("CN=Ana,OU=Users,OU=A,DC=x", {"cn": ["Ana"], "manager": ["CN=Bo Lee,OU=Users,OU=A,DC=x"]})
    renamed = Entry(user.dn, {"cn": ["Ana"], "manager": ["CN=Bo Lee-Smith,OU=Users,OU=B,DC=x"]})
    before = replicated_version(user, {dn_key("CN=Bo Lee,OU=Users,OU=A,DC=x"): guid})
    assert replicated_version(renamed, {dn_key("cn=bo lee-smith,ou=users,ou=b,dc=x"): guid}) == before
    assert replicated_version(user, {dn_key("CN=Bo Lee,OU=Users,OU=A,DC=x"): other}) != before
    assert replicated_version(user) != before  # the GUID not read: by name, as before
