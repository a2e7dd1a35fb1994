"""Holes 2 and 5 of issue 13, against the Samba DC: the operator is the bound account
unless a shared service account acts for an operator who proved who they are, and a
simple bind never goes out without TLS unless a lab says so out loud.

The "shared account" here is the seed's read-only operator: it has no rights of its
own, so an SP administrator's rights can only come from the operator it claims.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import load
from core.directory import connect
from core.errors import AuthenticationFailed, ConfigError, DirectoryError
from directory_fixtures import PASSWORD_ENV, write_dc_config

pytestmark = pytest.mark.dc
ROOT = Path(__file__).resolve().parent.parent
OPERATOR_ENV = "TENANTRY_TEST_OPERATOR_PASSWORD"


def shared_config(samba_dc, tmp_path: Path, extra: str = "") -> Path:
    shared = samba_dc.seed.operator("readonly-op")
    sp_admin = samba_dc.seed.operator("sp-admin")
    return write_dc_config(samba_dc, tmp_path / "shared.toml", user=shared.upn,
                           extra=f'service_account = true\noperator = "{sp_admin.upn}"\n' + extra + SERVICES,
                           tenants=samba_dc.seed.tenants_toml(services=()))  # only exchange is configured


# Services with no HTTP side: the refused move below needs no service endpoint.
SERVICES = '\n[services.exchange]\ndisplay_name = "Hosted Exchange"\nadapter = "exchange"\n'



def run(config: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in (PASSWORD_ENV, OPERATOR_ENV)}
    return subprocess.run([sys.executable, "-m", "cli", *args, "--config", str(config)], capture_output=True,
                          text=True, cwd=ROOT, env={**environment, "PYTHONPATH": str(ROOT), **env}, timeout=180)


def test_naming_an_operator_without_a_service_account_is_refused_at_load(samba_dc, tmp_path):
    """The hole as reported: any bind account plus ``operator = "sp-admin@…"`` gave SP rights."""
    sp_admin = samba_dc.seed.operator("sp-admin")
    path = write_dc_config(samba_dc, tmp_path / "claim.toml", user=samba_dc.seed.operator("readonly-op").upn,
                           extra=f'operator = "{sp_admin.upn}"\n')
    with pytest.raises(ConfigError, match=r"directory\.operator names .*only for a shared account \(service_account = true\)"):
        load(path)


async def test_a_shared_account_naming_an_operator_without_proof_is_refused(samba_dc, tmp_path):
    config = load(shared_config(samba_dc, tmp_path))
    password = samba_dc.operator_passwords["readonly-op"]
    with pytest.raises(AuthenticationFailed, match=r"acts for sp-admin@.* only once .* proves who they are.*nothing was done"):
        await connect(config, password)
    result = run(shared_config(samba_dc, tmp_path), "customers", "--json", env={PASSWORD_ENV: password, "TENANTRY_STATE_DIR": str(tmp_path / "s")})
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1 and "proves who they are" in result.stderr and "Traceback" not in result.stderr


async def test_a_wrong_operator_password_is_refused(samba_dc, tmp_path):
    config = load(shared_config(samba_dc, tmp_path, f'operator_password_env = "{OPERATOR_ENV}"\n'))
    with pytest.raises(AuthenticationFailed, match="refused the password for sp-admin@"):
        await connect(config, samba_dc.operator_passwords["readonly-op"], operator_password="not-" + samba_dc.operator_passwords["sp-admin"])


async def test_the_shared_account_acts_for_an_operator_who_proved_it_and_the_audit_names_both(samba_dc, tmp_path):
    path = shared_config(samba_dc, tmp_path, f'operator_password_env = "{OPERATOR_ENV}"\n')
    config = load(path)
    directory = await connect(config, samba_dc.operator_passwords["readonly-op"], operator_password=samba_dc.operator_passwords["sp-admin"])
    try:
        operator = await directory.operator()
    finally:
        await directory.close()
    assert operator.rights.sp_admin and operator.dn.lower() == samba_dc.seed.operator("sp-admin").dn.lower()
    assert operator.bound_as == samba_dc.seed.operator("readonly-op").upn

    # End to end: a refused move (to the user's own customer) is audited with both identities.
    user = samba_dc.seed.users(under=f"OU=Users,{samba_dc.seed.customers()[0].dn}")[0]
    customer = samba_dc.seed.customers()[0].first("ou")
    env = {PASSWORD_ENV: samba_dc.operator_passwords["readonly-op"], OPERATOR_ENV: samba_dc.operator_passwords["sp-admin"],
           "TENANTRY_STATE_DIR": str(tmp_path / "state")}
    refused = run(path, "move", user.first("userPrincipalName"), "--to", customer, "--yes", "--json", env=env)
    assert refused.returncode == 3, refused.stderr
    entries = json.loads(run(path, "audit", "--json", env=env).stdout)
    assert [(e["operator"], e["bound_as"], e["result"]) for e in entries] == [
        (operator.name, samba_dc.seed.operator("readonly-op").upn, "refused")]


async def test_without_an_operator_the_bound_account_is_the_operator(samba_dc, tmp_path):
    shared = samba_dc.seed.operator("readonly-op")
    config = load(write_dc_config(samba_dc, tmp_path / "svc.toml", user=shared.upn, extra="service_account = true\n"))
    directory = await connect(config, samba_dc.operator_passwords["readonly-op"])
    try:
        operator = await directory.operator()
    finally:
        await directory.close()
    assert not operator.rights.sp_admin and operator.dn.lower() == shared.dn.lower()


# -- hole 5: simple binds only over TLS -------------------------------------------------------------


def test_an_ldap_url_without_start_tls_is_refused_at_load(samba_dc, tmp_path):
    path = write_dc_config(samba_dc, tmp_path / "clear.toml", urls=[samba_dc.ldap_url], extra="start_tls = false\n")
    with pytest.raises(ConfigError, match=r"directory\.start_tls is false with an ldap:// URL, which would send the bind in clear text"):
        load(path)


async def test_the_bind_never_goes_out_in_clear_even_if_the_config_was_built_by_hand(samba_dc, tmp_path):
    """Defence in depth: a DirectoryConfig made without load() is refused by the connection itself."""
    from dataclasses import replace

    config = load(write_dc_config(samba_dc, tmp_path / "tls.toml", urls=[samba_dc.ldap_url]))
    clear = replace(config, directory=replace(config.directory, start_tls=False))
    with pytest.raises(DirectoryError, match=r"without TLS is refused"):
        await connect(clear, samba_dc.operator_passwords["sp-admin"])


async def test_allow_cleartext_bind_is_a_loud_explicit_lab_setting(samba_dc, tmp_path):
    """Allowed only when spelt out; the command line says so on every run. (The test DC
    itself refuses simple binds without TLS — 'ldap server require strong auth' — as AD
    does: the bind is attempted in clear and refused by the server, which is the point.)"""
    path = write_dc_config(samba_dc, tmp_path / "lab.toml", urls=[samba_dc.ldap_url],
                           extra="start_tls = false\nallow_cleartext_bind = true\n")
    config = load(path)
    assert config.directory.insecure == ("CLEAR-TEXT BIND",)
    result = run(path, "customers", env={PASSWORD_ENV: samba_dc.operator_passwords["sp-admin"], "TENANTRY_STATE_DIR": str(tmp_path / "s")})
    assert "warning: insecure setting in force: CLEAR-TEXT BIND" in result.stderr
    assert result.returncode == 2 and "requires TLS for binding" in result.stderr
