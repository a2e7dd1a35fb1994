"""The two-DC bed itself: both DCs answer, replication goes both ways when forced and
stays back while held, a crashed or frozen DC comes back, /etc/hosts gets its names."""

from __future__ import annotations

import itertools

import ldap3
import pytest
from ldap3.core.exceptions import LDAPNoSuchObjectResult

from samba_pair import HOSTS_FILE

pytestmark = pytest.mark.dc
_names = itertools.count(1)


def _exists(conn: ldap3.Connection, dn: str) -> bool:
    try:
        return bool(conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["cn"]))
    except LDAPNoSuchObjectResult:
        return False


def _probe_dn(pair) -> str:
    return f"CN=pair-probe-{next(_names)},OU=Hosting,{pair.dc1.seed.base_dn}"


def test_both_dcs_answer_with_their_own_identity(samba_pair):
    seen = set()
    for dc in samba_pair.dcs:
        with dc.info().connect() as conn:
            conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["dsServiceName", "dnsHostName"])
            seen.add(conn.entries[0].dsServiceName.value)
            assert conn.entries[0].dnsHostName.value.lower() == dc.dns_name
    assert len(seen) == 2
    hosts = HOSTS_FILE.read_text()
    for dc in samba_pair.dcs:
        assert f"{dc.ntds_guid()}._msdcs.example.net" in hosts


def test_a_write_replicates_each_way_when_forced(samba_pair):
    info = samba_pair.info()
    dn = _probe_dn(samba_pair)
    with info.dc1.connect() as c1, info.dc2.connect() as c2:
        c1.add(dn, ["top", "container"])
        samba_pair.replicate(samba_pair.dc1)
        assert _exists(c2, dn)
        c2.delete(dn)
        samba_pair.replicate(samba_pair.dc2)
        assert not _exists(c1, dn)


def test_held_writes_stay_on_their_dc_until_pushed(samba_pair):
    info = samba_pair.info()
    dn = _probe_dn(samba_pair)
    samba_pair.hold(samba_pair.dc1)
    try:
        with info.dc1.connect() as c1, info.dc2.connect() as c2:
            c1.add(dn, ["top", "container"])
            # DC2 takes nothing in by itself: its inbound replication is off
            assert "DISABLE_INBOUND_REPL" in samba_pair.dc2.tool("drs", "options", samba_pair.dc2.dns_name)
            assert not _exists(c2, dn)
            samba_pair.replicate(samba_pair.dc1)
            assert _exists(c2, dn)
            c1.delete(dn)
    finally:
        samba_pair.release(samba_pair.dc1)
    samba_pair.replicate()


def test_a_crashed_dc_keeps_its_unreplicated_write_and_comes_back(samba_pair):
    info = samba_pair.info()
    dn = _probe_dn(samba_pair)
    samba_pair.hold(samba_pair.dc1)
    try:
        with info.dc1.connect() as c1:
            c1.add(dn, ["top", "container"])
        samba_pair.dc1.crash()
        with pytest.raises(ldap3.core.exceptions.LDAPException):
            info.dc1.connect()
        with info.dc2.connect() as c2:
            assert not _exists(c2, dn)
        samba_pair.dc1.restart()
        with info.dc1.connect() as c1:
            assert _exists(c1, dn)  # the crash lost nothing committed
        samba_pair.replicate(samba_pair.dc1)
        with info.dc2.connect() as c2:
            assert _exists(c2, dn)
            c2.delete(dn)
    finally:
        samba_pair.dc1.restart()
        samba_pair.release(samba_pair.dc1)
    samba_pair.replicate()


def test_a_frozen_dc_answers_again_when_thawed(samba_pair):
    info = samba_pair.info()
    samba_pair.dc2.freeze()
    try:
        conn = ldap3.Connection(
            ldap3.Server(info.dc2.ldaps_url, use_ssl=True, tls=info.dc2.tls(), connect_timeout=2),
            user=info.dc2.admin_upn, password=info.dc2.admin_password, receive_timeout=2,
        )
        with pytest.raises(ldap3.core.exceptions.LDAPException):
            conn.bind()  # connects (the kernel accepts), then no answer
    finally:
        samba_pair.dc2.thaw()
    with info.dc2.connect() as c2:
        assert c2.search(info.dc2.base_dn, "(objectClass=domain)", ldap3.BASE)
