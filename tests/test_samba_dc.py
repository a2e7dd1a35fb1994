"""The throwaway Samba AD DC: TLS, schema extension, seed fidelity, AD semantics we rely on."""

from __future__ import annotations

import ssl
import uuid

import ldap3
import pytest
from ldap3.core.exceptions import LDAPException, LDAPStrongerAuthRequiredResult
from ldap3.utils.dn import parse_dn

from samba_dc import LOOPBACK, norm_dn

from core.demo.seed import _escape_rdn_value

pytestmark = pytest.mark.dc

IN_CHAIN = "1.2.840.113556.1.4.1941"  # LDAP_MATCHING_RULE_IN_CHAIN


def paged(conn: ldap3.Connection, base: str, search_filter: str, attributes, page: int = 500) -> list[dict]:
    return [
        r
        for r in conn.extend.standard.paged_search(
            base, search_filter, ldap3.SUBTREE, attributes=attributes, paged_size=page, generator=True
        )
        if r["type"] == "searchResEntry"
    ]


def entries(conn: ldap3.Connection) -> list[dict]:
    """The entries of the last search (Samba adds searchResRef referrals at the base DN)."""
    return [r for r in conn.response if r["type"] == "searchResEntry"]


def raw_values(result: dict, name: str) -> list[str]:
    for key, values in result["raw_attributes"].items():
        if key.lower() == name.lower():
            return [v.decode("utf-8") for v in values]
    return []


# ------------------------------------------------------------------ TLS and binds


def test_ldaps_bind_with_verified_certificate(samba_dc) -> None:
    conn = samba_dc.connect()
    try:
        assert conn.bound and conn.server.ssl
        peer = conn.socket.getpeercert()
        assert ("DNS", "localhost") in peer["subjectAltName"]
        assert ("IP Address", LOOPBACK) in peer["subjectAltName"]
        conn.search(samba_dc.admin_dn, "(objectClass=user)", ldap3.BASE, attributes=["sAMAccountName"])
        assert raw_values(entries(conn)[0], "sAMAccountName") == ["Administrator"]
    finally:
        conn.unbind()


def test_starttls_bind(samba_dc) -> None:
    conn = ldap3.Connection(
        samba_dc.server(ldaps=False), samba_dc.admin_upn, samba_dc.admin_password, raise_exceptions=True
    )
    conn.open()
    try:
        assert conn.start_tls()
        assert conn.bind()
        assert isinstance(conn.socket, ssl.SSLSocket)
    finally:
        conn.unbind()


def test_simple_bind_without_tls_is_refused(samba_dc) -> None:
    conn = ldap3.Connection(
        samba_dc.server(ldaps=False), samba_dc.admin_upn, samba_dc.admin_password, raise_exceptions=True
    )
    with pytest.raises(LDAPStrongerAuthRequiredResult):
        conn.bind()
    conn.unbind()


@pytest.mark.parametrize("starttls", [False, True])
def test_wrong_ca_fails_verification(samba_dc, starttls: bool) -> None:
    conn = ldap3.Connection(
        samba_dc.server(ldaps=not starttls, ca_file=samba_dc.wrong_ca_file),
        samba_dc.admin_upn,
        samba_dc.admin_password,
        raise_exceptions=True,
    )
    with pytest.raises(LDAPException, match="CERTIFICATE_VERIFY_FAILED"):
        if starttls:
            conn.open()
            conn.start_tls()
        conn.bind()
    assert not conn.bound


def test_every_operator_binds_with_its_password(samba_dc) -> None:
    for op in samba_dc.seed.operators:
        for user in (op.upn, op.dn):
            conn = samba_dc.connect(user, samba_dc.operator_passwords[op.name])
            assert conn.bound
            conn.unbind()
    with pytest.raises(LDAPException):
        samba_dc.connect(samba_dc.seed.operator("sp-admin").upn, "not-the-password-1A!")


# ------------------------------------------------------------------ schema extension


def test_schema_attributes_defined(samba_admin, samba_dc) -> None:
    schema = f"CN=Schema,CN=Configuration,{samba_dc.base_dn}"
    expected = {
        "mailNickname": ("1.2.840.113556.1.2.447", "2.5.5.12"),
        "extensionAttribute1": ("1.2.840.113556.1.2.423", "2.5.5.12"),
        "msRTCSIP-PrimaryUserAddress": ("1.2.840.113556.1.6.24.1.1", "2.5.5.12"),
        "msRTCSIP-UserEnabled": ("1.2.840.113556.1.6.24.1.6", "2.5.5.8"),
    }
    for name, (oid, syntax) in expected.items():
        samba_admin.search(
            schema, f"(lDAPDisplayName={name})", ldap3.LEVEL,
            attributes=["attributeID", "attributeSyntax", "isSingleValued"],
        )
        assert len(entries(samba_admin)) == 1, name
        result = entries(samba_admin)[0]
        assert raw_values(result, "attributeID") == [oid]
        assert raw_values(result, "attributeSyntax") == [syntax]
        assert raw_values(result, "isSingleValued") == ["TRUE"]


def test_schema_attributes_write_and_read_on_a_user(samba_admin, samba_dc) -> None:
    customer = samba_dc.seed.customer("Fabrikam")
    tag = uuid.uuid4().hex[:8]
    dn = f"CN=Schema Probe {tag},OU=Users,{customer.dn}"
    values = {
        "mailNickname": f"probe.{tag}",
        "extensionAttribute1": customer.first("description"),
        "msRTCSIP-PrimaryUserAddress": f"sip:probe.{tag}@fabrikam.example",
        "msRTCSIP-UserEnabled": "TRUE",
        "legacyExchangeDN": f"/o=Example Hosting/cn=Recipients/cn=probe.{tag}",
        "proxyAddresses": [f"SMTP:probe.{tag}@fabrikam.example", f"smtp:p.{tag}@fabrikam.example"],
    }
    samba_admin.add(dn, ["top", "person", "organizationalPerson", "user"],
                    {"sAMAccountName": f"probe.{tag}", "userAccountControl": "514", **values})
    try:
        samba_admin.search(dn, "(objectClass=*)", ldap3.BASE, attributes=list(values))
        result = entries(samba_admin)[0]
        for name, value in values.items():
            expected = value if isinstance(value, list) else [value]
            assert sorted(raw_values(result, name)) == sorted(expected), name
        samba_admin.search(
            f"OU=Users,{customer.dn}", f"(mailNickname=probe.{tag})", ldap3.LEVEL, attributes=["cn"]
        )
        assert len(entries(samba_admin)) == 1
        # single-valued as in AD
        with pytest.raises(LDAPException):
            samba_admin.modify(dn, {"mailNickname": [(ldap3.MODIFY_ADD, ["second"])]})
        samba_admin.modify(dn, {"msRTCSIP-UserEnabled": [(ldap3.MODIFY_REPLACE, ["FALSE"])]})
        samba_admin.search(dn, "(msRTCSIP-UserEnabled=FALSE)", ldap3.BASE, attributes=["cn"])
        assert len(entries(samba_admin)) == 1
    finally:
        samba_admin.delete(dn)


# ------------------------------------------------------------------ seed fidelity


def test_seed_counts(samba_admin, samba_dc) -> None:
    seed = samba_dc.seed
    customers = paged(samba_admin, samba_dc.base_dn, "(&(objectClass=organizationalUnit)(businessCategory=customer))", ["ou"])
    assert len(customers) == len(seed.customers()) == 40
    resellers = paged(samba_admin, samba_dc.base_dn, "(businessCategory=reseller)", ["ou"])
    assert len(resellers) == 3
    big = seed.customer(seed.big_customer)
    users = paged(samba_admin, big.dn, "(&(objectCategory=person)(objectClass=user))", ["sAMAccountName"])
    assert len(users) == len(seed.users(big.dn)) > 1500
    hosting = paged(samba_admin, f"OU=Hosting,{samba_dc.base_dn}", "(objectClass=user)", ["cn"], page=1000)
    assert len(hosting) == len(seed.users(f"OU=Hosting,{samba_dc.base_dn}"))


def _compare(seed_values: tuple[str, ...], read: list[str], name: str) -> None:
    if name.lower() in ("member", "manager"):
        assert sorted(map(norm_dn, read)) == sorted(map(norm_dn, seed_values)), name
    else:
        assert sorted(read) == sorted(seed_values), name


def test_every_seed_entry_reads_back_unchanged(samba_admin, samba_dc) -> None:
    seed = samba_dc.seed
    names = sorted({name for e in seed.entries for name in e.attributes})
    found: dict[tuple, dict] = {}
    for base in (f"OU=Hosting,{seed.base_dn}", f"OU=Staff,{seed.base_dn}"):
        for result in paged(samba_admin, base, "(objectClass=*)", names, page=1000):
            found[norm_dn(result["dn"])] = result
    assert len(found) == len(seed.entries)
    for entry in seed.entries:
        result = found[norm_dn(entry.dn)]
        for name, values in entry.attributes.items():
            _compare(values, raw_values(result, name), name)


def test_account_enabled_state_matches_seed(samba_admin, samba_dc) -> None:
    results = paged(samba_admin, samba_dc.base_dn, "(&(objectCategory=person)(objectClass=user))", ["userAccountControl"])
    state = {norm_dn(r["dn"]): int(raw_values(r, "userAccountControl")[0]) & 2 for r in results}
    users = samba_dc.seed.users()
    assert sum(int(u.first("userAccountControl")) & 2 == 2 for u in users) > 50
    for user in users:
        assert state[norm_dn(user.dn)] == int(user.first("userAccountControl")) & 2, user.dn


def test_nested_group_membership_in_chain(samba_admin, samba_dc) -> None:
    sp_admin = samba_dc.seed.operator("sp-admin")
    samba_admin.search(samba_dc.base_dn, f"(member:{IN_CHAIN}:={sp_admin.dn})", attributes=["cn"])
    names = {raw_values(r, "cn")[0] for r in entries(samba_admin)}
    assert names == {"Tier 2 Support", "Service Provider Administrators"}
    # the direct membership alone does not reach the SP group
    samba_admin.search(samba_dc.base_dn, f"(member={sp_admin.dn})", attributes=["cn"])
    assert {raw_values(r, "cn")[0] for r in entries(samba_admin)} == {"Tier 2 Support"}


def test_member_of_is_maintained(samba_admin, samba_dc) -> None:
    seed = samba_dc.seed
    expected: dict[tuple, set[tuple]] = {}
    for group in seed.groups():
        for member in group.attributes.get("member", ()):
            expected.setdefault(norm_dn(member), set()).add(norm_dn(group.dn))
    results = paged(samba_admin, f"OU=Hosting,{seed.base_dn}", "(objectClass=user)", ["memberOf"], page=1000)
    assert len(results) > 1900
    for result in results:
        member_of = {norm_dn(dn) for dn in raw_values(result, "memberOf")}
        assert member_of == expected.get(norm_dn(result["dn"]), set()), result["dn"]
    # and it follows changes
    probe_group = next(g for g in seed.groups() if g.first("cn") == "Tenantry Read Only")
    user = seed.operator("user-admin")
    samba_admin.modify(probe_group.dn, {"member": [(ldap3.MODIFY_ADD, [user.dn])]})
    try:
        samba_admin.search(user.dn, "(objectClass=*)", ldap3.BASE, attributes=["memberOf"])
        assert norm_dn(probe_group.dn) in {norm_dn(d) for d in raw_values(entries(samba_admin)[0], "memberOf")}
    finally:
        samba_admin.modify(probe_group.dn, {"member": [(ldap3.MODIFY_DELETE, [user.dn])]})


# ------------------------------------------------------------------ hostile names


def test_hostile_customer_names_read_back_unchanged(samba_admin, samba_dc) -> None:
    seed = samba_dc.seed
    for name in seed.hostile_customers:
        customer = seed.customer(name)
        samba_admin.search(customer.dn, "(objectClass=organizationalUnit)", ldap3.BASE, attributes=["ou", "name"])
        assert len(entries(samba_admin)) == 1, name
        result = entries(samba_admin)[0]
        assert raw_values(result, "ou") == [name]
        assert raw_values(result, "name") == [name]
        assert norm_dn(result["dn"]) == norm_dn(customer.dn)
        users = paged(samba_admin, f"OU=Users,{customer.dn}", "(objectClass=user)", ["cn"])
        assert len(users) == len(seed.users(customer.dn)) > 0


def test_escape_sequences_read_back_unchanged(samba_admin, samba_dc) -> None:
    esc_customer = next(n for n in samba_dc.seed.hostile_customers if "\x1b" in n)
    samba_admin.search(samba_dc.base_dn, "(businessCategory=customer)", attributes=["ou"])
    assert esc_customer in {raw_values(r, "ou")[0] for r in entries(samba_admin)}
    # Samba hands the DN back with the raw ESC byte (it does not hex-escape controls).
    assert any("\x1b" in r["dn"] for r in entries(samba_admin))

    user = next(u for u in samba_dc.seed.users() if "\x1b" in (u.first("description") or ""))
    samba_admin.search(user.dn, "(objectClass=*)", ldap3.BASE, attributes=["displayName", "description", "cn"])
    result = entries(samba_admin)[0]
    assert raw_values(result, "description") == [user.first("description")]
    assert raw_values(result, "displayName") == [user.first("displayName")]
    assert raw_values(result, "cn") == [user.first("cn")]


def test_hostile_names_can_be_written_over_ldap(samba_admin, samba_dc) -> None:
    """The LDAP add path (not only the offline loader) accepts the seed's escaping."""
    hosting = f"OU=Hosting,{samba_dc.base_dn}"
    name = f"  #Probe, \"{uuid.uuid4().hex[:6]}\" + <a>;b=c \\ \x1b[1m[bold]x[/]\x1b[0m 東京 "
    dn = f"OU={_escape_rdn_value(name)},{hosting}"
    samba_admin.add(dn, ["top", "organizationalUnit"], {"businessCategory": "probe"})
    try:
        samba_admin.search(hosting, "(businessCategory=probe)", ldap3.LEVEL, attributes=["ou"])
        assert [raw_values(r, "ou") for r in entries(samba_admin)] == [[name]]
        returned = entries(samba_admin)[0]["dn"]
        assert norm_dn(returned) == norm_dn(dn)
        assert parse_dn(returned)  # ldap3 can parse what Samba hands back
    finally:
        samba_admin.delete(dn)
