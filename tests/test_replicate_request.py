"""Asking a DC to pull objects now (MS-ADTS 3.1.1.3.3.18 ``replicateSingleObject``), on
the real Samba DC: the request names both objects by objectGUID only, whatever the
names hold; Samba 4.17 refuses it (unwillingToPerform), which is "this DC does not take
the request" — logged once, remembered, never an error; a refusal for rights likewise."""

from __future__ import annotations

import logging
import re

import pytest

from core.directory import ops, replication
from core.errors import DirectoryError
from move_fixtures import make_user, remove_user

pytestmark = pytest.mark.asyncio(loop_scope="session")
GUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, dict]]:
    """Every modify the code sends (then sent on to the DC as it is)."""
    found: list[tuple[str, dict]] = []
    original = ops.modify

    def spy(conn, dn, changes, **kwargs):
        found.append((dn, changes))
        return original(conn, dn, changes, **kwargs)

    monkeypatch.setattr(ops, "modify", spy)
    return found


async def test_the_request_names_objects_by_guid_only_and_samba_refuses_it(dc_directory, sent):
    """A user whose name holds a colon, a DN and a GUID form: the value is still
    ``<GUID=DSA>:<GUID=user>`` (its objectGUID as the DC has it); Samba answers 53."""
    hostile = "Evil:<GUID=1>:CN=Administrator,CN=Users"  # within cn's 64 characters
    user = await make_user(dc_directory, cn=hostile, services=(), roles=())
    try:
        d = await dc_directory.pin()
        guid = (await d.values(user.dn, ["objectGUID"]))["objectGUID"][0]
        with pytest.raises(DirectoryError) as refused:
            await d.pool.run(lambda c: replication.ask_to_replicate(c, d.dc.service, [user.dn], []))
        assert refused.value.ldap_code == 53 and "unknown attribute to change" in refused.value.server_message
        assert len(sent) == 1
        dn, changes = sent[0]
        assert dn == "" and list(changes) == ["replicateSingleObject"]
        (value,) = changes["replicateSingleObject"][0][1]
        assert re.fullmatch(f"<GUID={GUID}>:<GUID={GUID}>", value) and value.endswith(f"<GUID={guid}>")
        assert "Evil" not in value and "CN=" not in value
    finally:
        await remove_user(dc_directory, user)


async def test_a_source_that_is_no_dc_or_an_unknown_object_is_not_asked_for(dc_directory, sent):
    """The source must be a DC's NTDS Settings object (here: the domain head, nothing, an
    object that does not exist); objects the DC does not have, and a malformed GUID, are
    left out: nothing is sent."""
    d = await dc_directory.pin()
    for source in (d.config.directory.base_dn, "", f"CN=Nothing,{d.config.directory.base_dn}"):
        asked = await d.pool.run(lambda c, s=source: replication.ask_to_replicate(c, s, [d.config.directory.base_dn], []))
        assert asked == 0
    asked_nothing = await d.pool.run(lambda c: replication.ask_to_replicate(
        c, d.dc.service, [f"CN=Nobody,{d.config.directory.base_dn}"], ["not a guid"]))
    assert asked_nothing == 0 and sent == []


async def test_a_dc_that_refuses_is_logged_once_and_not_asked_again(dc_config_file, sp_password, sent, caplog):
    from core.config import load
    from core.directory import connect

    caplog.set_level(logging.INFO, logger="tenantry.directory")
    directory = await connect(load(dc_config_file), sp_password)
    try:
        d = await directory.pin()
        base = d.config.directory.base_dn
        first = await d.ask_to_replicate(d.dc, [base], [])
        again = await d.ask_to_replicate(d.dc, [base], [])
        assert first == again and "does not take requests to replicate" in first and "unknown attribute to change" in first
        assert len(sent) == 1  # the second time it is not asked
        logged = [r.getMessage() for r in caplog.records if "does not take requests to replicate" in r.getMessage()]
        assert len(logged) == 1 and "Tenantry waits for replication instead" in logged[0]
    finally:
        await directory.close()


async def test_a_refusal_for_rights_is_taken_the_same_way(dc_config_file, sp_password, monkeypatch, caplog):
    """insufficientAccessRights (the bind lacks DS-Replication-Synchronize on the NC)."""
    from core.config import load
    from core.directory import connect

    def refused_for_rights(conn, source, dns, guids):
        raise ops.result_error({"result": 50, "description": "insufficientAccessRights",
                                "message": "00002098: SecErr: DSID-03150F94, problem 4003 (INSUFF_ACCESS_RIGHTS)"}, "replicating")

    monkeypatch.setattr(replication, "ask_to_replicate", refused_for_rights)
    caplog.set_level(logging.INFO, logger="tenantry.directory")
    directory = await connect(load(dc_config_file), sp_password)
    try:
        d = await directory.pin()
        why = await d.ask_to_replicate(d.dc, [d.config.directory.base_dn], [])
        assert why is not None and "does not take requests to replicate" in why and "INSUFF_ACCESS_RIGHTS" in why
        assert d.refuses_replication == why
    finally:
        await directory.close()
