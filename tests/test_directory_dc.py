"""Behaviour only a real domain controller shows: TLS, fail-over, faults, writes, reconnects."""

from __future__ import annotations

import socket

import pytest

from core.config import load
from core.directory import connect
from core.escape import child_dn
from core.directory.layout import dn_key
from core.errors import AlreadyExists, AuthenticationFailed, CertificateError, ChangedUnderneath, DirectoryUnavailable
from directory_fixtures import dead_url, write_dc_config

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_fail_over_to_the_second_url_when_the_first_is_dead(samba_dc, sp_password, tmp_path):
    config = load(write_dc_config(samba_dc, tmp_path / "c.toml", urls=[dead_url(), samba_dc.ldaps_url]))
    directory = await connect(config, sp_password)
    try:
        assert directory.server == samba_dc.ldaps_url
        assert await directory.customers(search="Globex")
    finally:
        await directory.close()


async def test_start_tls_on_plain_ldap_url(samba_dc, sp_password, tmp_path):
    config = load(write_dc_config(samba_dc, tmp_path / "c.toml", urls=[samba_dc.ldap_url]))
    directory = await connect(config, sp_password)
    try:
        assert (await directory.operator()).rights.sp_admin
    finally:
        await directory.close()


async def test_wrong_password_unreachable_and_bad_certificate_are_distinct_errors(samba_dc, sp_password, tmp_path):
    good = load(write_dc_config(samba_dc, tmp_path / "good.toml"))
    with pytest.raises(AuthenticationFailed, match="refused the password"):
        await connect(good, sp_password + "x")
    unreachable = load(write_dc_config(samba_dc, tmp_path / "dead.toml", urls=[dead_url()]))
    with pytest.raises(DirectoryUnavailable, match="cannot be reached"):
        await connect(unreachable, sp_password)
    wrong_ca = load(write_dc_config(samba_dc, tmp_path / "ca.toml", ca_file=samba_dc.wrong_ca_file))
    with pytest.raises(CertificateError, match="could not be verified"):
        await connect(wrong_ca, sp_password)


async def test_uniqueness_is_checked_in_the_global_catalog_when_one_is_configured(samba_dc, sp_password, tmp_path):
    """The DC's own Global Catalog (port 3269) after a dead one: a value held once is one
    conflict (the DC and the GC name the same object); no GC answering stops the check
    with one sentence, while the DC itself still answers."""
    gc = samba_dc.ldaps_url.rsplit(":", 1)[0] + ":3269"
    config = load(write_dc_config(samba_dc, tmp_path / "gc.toml", extra=f'gc_urls = ["{dead_url()}", "{gc}"]\n'))
    directory = await connect(config, sp_password)
    try:
        user = next(u for u in await directory.users(await directory.customer("Globex Corporation"), limit=50) if u.email and u.sam)
        found = await directory.conflicts(upn=user.upn.upper(), sam=user.sam, addresses=[user.email])
        assert sorted(c.kind for c in found) == ["address", "sam", "upn"] and {dn_key(c.dn) for c in found} == {dn_key(user.dn)}
        assert await directory.conflicts(upn=user.upn, exclude_dn=user.dn) == []
    finally:
        await directory.close()
    config = load(write_dc_config(samba_dc, tmp_path / "dead-gc.toml", extra=f'gc_urls = ["{dead_url()}"]\n'))
    directory = await connect(config, sp_password)
    try:
        with pytest.raises(DirectoryUnavailable, match=r"^No Global Catalog of directory\.gc_urls answers .* nothing was written\.$"):
            await directory.conflicts(upn=user.upn)
        assert not directory.connection.lost and await directory.customers(search="Globex")
    finally:
        await directory.close()


async def test_reconnects_after_the_connection_drops(dc_directory):
    before = await dc_directory.customers(search="Globex", with_services=False)
    for slot in dc_directory.pool._slots:
        slot.conn.socket.shutdown(socket.SHUT_RDWR)
    assert await dc_directory.customers(search="Globex", with_services=False) == before


async def test_compare_and_swap_modify_fails_when_the_value_changed_underneath(dc_directory, samba_dc):
    customer = await dc_directory.customer(samba_dc.seed.big_customer)
    user = (await dc_directory.users(customer, limit=1))[0]
    detail = await dc_directory.user(user.dn)
    old_title = list(detail.attribute("title"))
    await dc_directory.modify(user.dn, {"title": (old_title, ["Plan Read Title"])})
    with samba_dc.connect() as other:  # someone else edits the user meanwhile
        assert other.modify(user.dn, {"title": [("MODIFY_REPLACE", ["Changed Elsewhere"])]})
    try:
        with pytest.raises(ChangedUnderneath, match="changed by someone else"):
            await dc_directory.modify(user.dn, {"title": (["Plan Read Title"], ["Would Overwrite"])})
        assert (await dc_directory.user(user.dn)).attribute("title") == ("Changed Elsewhere",)
    finally:
        await dc_directory.modify(user.dn, {"title": (["Changed Elsewhere"], old_title)})
    assert list((await dc_directory.user(user.dn)).attribute("title")) == old_title


async def test_user_lifecycle_add_password_move_groups_delete(dc_directory, samba_dc):
    source = await dc_directory.customer("Back\\slash BV")
    target = await dc_directory.customer("Smith, Jones & Partners")
    layout = dc_directory.layout
    cn = 'Test *)(objectClass=*, "Quoted" \\ User'
    dn = child_dn("CN", cn, layout.users_dn(source.dn))
    upn = f"lifecycle.test@{source.default_domain}"
    group_dn = child_dn("CN", "Partial User Administrator Test", layout.roles_dn(target.dn))
    moved = None
    try:
        await dc_directory.add_user(dn, {
            "cn": cn, "sAMAccountName": "lifecycle.t1", "userPrincipalName": upn,
            "displayName": cn, "userAccountControl": "514",
        })
        with pytest.raises(AlreadyExists):
            await dc_directory.add_user(dn, {"cn": cn, "sAMAccountName": "lifecycle.t2"})
        # The filter-injection text finds exactly this user.
        assert [dn_key(u.dn) for u in await dc_directory.users(source, "*)(objectClass=*")] == [dn_key(dn)]
        await dc_directory.set_password(dn, "Lifecycle-Test-Pw-2026!")
        await dc_directory.modify(dn, {"userAccountControl": (["514"], ["512"])})
        with samba_dc.connect(upn, "Lifecycle-Test-Pw-2026!") as bound:
            assert bound.bound
        moved = await dc_directory.move(dn, layout.users_dn(target.dn))
        assert dn_key((await dc_directory.user(upn)).dn) == dn_key(moved)
        assert not await dc_directory.exists(dn)
        await dc_directory.create_group(group_dn, "lifecycle-grp")
        assert await dc_directory.add_member(group_dn, moved) is True
        assert await dc_directory.add_member(group_dn, moved) is False
        assert "Partial User Administrator Test" in (await dc_directory.user(moved)).roles
        assert await dc_directory.remove_member(group_dn, moved) is True
        assert await dc_directory.remove_member(group_dn, moved) is False
    finally:
        for leftover in (group_dn, moved or dn):
            if await dc_directory.exists(leftover):
                await dc_directory.delete(leftover)
    assert not await dc_directory.exists(moved)
