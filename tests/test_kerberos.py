"""Kerberos binds (issue 13): ``[directory] auth = "kerberos"`` binds with SASL/GSSAPI from
the operator's own ticket cache, against the Samba DC's own KDC.

A test ``kinit``s a seed operator into a private ticket cache (KRB5CCNAME in tmp, with
the DC fixture's krb5.conf as KRB5_CONFIG), runs Tenantry as a real process with no
password anywhere, and reads the audit: it names that principal as the bound identity.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import load
from core.errors import ConfigError
from directory_fixtures import PASSWORD_ENV

pytestmark = pytest.mark.dc
ROOT = Path(__file__).resolve().parent.parent


def kerberos_config(samba_dc, path: Path, extra: str = "", urls: list[str] | None = None) -> Path:
    urls = urls or [samba_dc.ldaps_url]
    path.write_text(
        "[directory]\n"
        f"urls = {json.dumps(urls)}\n"
        f'base_dn = "{samba_dc.base_dn}"\n'
        'auth = "kerberos"\n'
        f'kerberos_host = "{samba_dc.kerberos_host}"\n'
        f'ca_file = "{samba_dc.ca_file}"\n'
        "connect_timeout = 3\nreceive_timeout = 10\n" + extra
        + '\n[services.exchange]\ndisplay_name = "Hosted Exchange"\nadapter = "exchange"\n',
        encoding="utf-8",
    )
    return path


def kerberos_env(samba_dc, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (PASSWORD_ENV, "KRB5CCNAME", "KRB5_CONFIG")}
    return {**env, "KRB5_CONFIG": samba_dc.krb5_conf, "KRB5CCNAME": f"FILE:{tmp_path / 'ccache'}",
            "TENANTRY_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(ROOT), **extra}


def kinit(samba_dc, env: dict[str, str], name: str) -> str:
    principal = f"{samba_dc.seed.operator(name).sam}@{samba_dc.realm}"
    result = subprocess.run(["kinit", principal], input=samba_dc.operator_passwords[name] + "\n",
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return principal


def tenantry(config: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args, "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=180)


@pytest.mark.parametrize("url", ["ldaps", "ldap"])
def test_a_kerberos_bind_from_a_ticket_and_the_audit_names_the_principal(samba_dc, tmp_path, url):
    """Over LDAPS (with channel binding) and over ldap:// with StartTLS; no password at all."""
    config = kerberos_config(samba_dc, tmp_path / "krb.toml", urls=[getattr(samba_dc, f"{url}_url")])
    env = kerberos_env(samba_dc, tmp_path)
    principal = kinit(samba_dc, env, "sp-admin")
    listed = tenantry(config, env, "customers", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {c["name"] for c in json.loads(listed.stdout)} >= {samba_dc.seed.customers()[0].first("ou")}

    customer = samba_dc.seed.customers()[0]
    user = samba_dc.seed.users(under=f"OU=Users,{customer.dn}")[0]
    refused = tenantry(config, env, "move", user.first("userPrincipalName"), "--to", customer.first("ou"), "--yes", "--json")
    assert refused.returncode == 3, refused.stderr  # same customer: refused, and audited
    entries = json.loads(tenantry(config, env, "audit", "--json").stdout)
    assert [(e["bound_as"], e["result"]) for e in entries] == [(principal, "refused")]
    assert entries[0]["operator"] == samba_dc.seed.entry(samba_dc.seed.operator("sp-admin").dn).first("displayName")


def test_the_principal_decides_the_rights(samba_dc, tmp_path):
    """A reseller admin's ticket gets a reseller admin's rights, whatever else is configured."""
    config = kerberos_config(samba_dc, tmp_path / "krb.toml")
    env = kerberos_env(samba_dc, tmp_path)
    name = next(o.name for o in samba_dc.seed.operators if o.rights.startswith("reseller_admin"))
    principal = kinit(samba_dc, env, name)
    customer = samba_dc.seed.customers()[0]
    user = samba_dc.seed.users(under=f"OU=Users,{customer.dn}")[0]
    tenantry(config, env, "move", user.first("userPrincipalName"), "--to", customer.first("ou"), "--yes", "--json")
    entries = json.loads(tenantry(config, env, "audit", "--json").stdout)
    assert entries and all(e["bound_as"] == principal for e in entries)


def test_without_a_ticket_it_is_one_sentence(samba_dc, tmp_path):
    config = kerberos_config(samba_dc, tmp_path / "krb.toml")
    result = tenantry(config, kerberos_env(samba_dc, tmp_path), "customers")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == ["tenantry: No valid Kerberos ticket: run kinit (check KRB5CCNAME), then start Tenantry again."]


def test_without_the_extra_it_is_one_sentence(samba_dc, tmp_path):
    """As on a light install (scripts/demo): gssapi not importable."""
    config = kerberos_config(samba_dc, tmp_path / "krb.toml")
    code = ("import sys; sys.modules['gssapi'] = None; import cli.main; "
            f"sys.exit(cli.main.main(['customers', '--config', {str(config)!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env=kerberos_env(samba_dc, tmp_path), timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == ("tenantry: auth = \"kerberos\" needs Tenantry's Kerberos extra: install it with "
                                     "pip install 'tenantry[kerberos]' (it builds against libkrb5: apt install libkrb5-dev).")


def test_a_shared_account_acts_for_the_operator_whose_ticket_it_is(samba_dc, tmp_path):
    """operator_proof = "kerberos": the named operator's own ticket is the proof; another's is refused."""
    shared = samba_dc.seed.operator("readonly-op")
    sp_admin = samba_dc.seed.operator("sp-admin")
    path = tmp_path / "svc.toml"
    path.write_text(
        "[directory]\n"
        f'urls = ["{samba_dc.ldaps_url}"]\nbase_dn = "{samba_dc.base_dn}"\nbind_user = "{shared.upn}"\n'
        f'password_env = "{PASSWORD_ENV}"\nca_file = "{samba_dc.ca_file}"\nkerberos_host = "{samba_dc.kerberos_host}"\n'
        f'service_account = true\noperator = "{sp_admin.upn}"\noperator_proof = "kerberos"\n'
        '\n[services.exchange]\ndisplay_name = "Hosted Exchange"\nadapter = "exchange"\n', encoding="utf-8")
    env = kerberos_env(samba_dc, tmp_path, **{PASSWORD_ENV: samba_dc.operator_passwords["readonly-op"]})
    kinit(samba_dc, env, "readonly-op")  # someone else's ticket
    refused = tenantry(path, env, "customers")
    assert refused.returncode == 2 and "not for the operator" in refused.stderr and len(refused.stderr.splitlines()) == 1
    kinit(samba_dc, env, "sp-admin")
    customer = samba_dc.seed.customers()[0]
    user = samba_dc.seed.users(under=f"OU=Users,{customer.dn}")[0]
    moved = tenantry(path, env, "move", user.first("userPrincipalName"), "--to", customer.first("ou"), "--yes", "--json")
    assert moved.returncode == 3, moved.stderr
    entries = json.loads(tenantry(path, env, "audit", "--json").stdout)
    assert [e["bound_as"] for e in entries] == [shared.upn]
    assert entries[0]["operator"] == samba_dc.seed.entry(sp_admin.dn).first("displayName")


@pytest.mark.parametrize(("extra", "message"), [
    ('bind_user = "x@example.net"\n', 'directory.bind_user is not used with auth = "kerberos"'),
    ('password_env = "X"\n', 'directory.password_env is not used with auth = "kerberos"'),
    ('service_account = true\n', 'directory.service_account is not used with auth = "kerberos"'),
])
def test_kerberos_configuration_errors(samba_dc, tmp_path, extra, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load(kerberos_config(samba_dc, tmp_path / "krb.toml", extra=extra))


# -- the Global Catalog bound with the same ticket (issue 9 item 7) ----------------------------


def _gc_url(samba_dc) -> str:
    return samba_dc.ldaps_url.rsplit(":", 1)[0] + ":3269"


def kerberos_dc_config(samba_dc, path: Path, gc_urls: list[str], extra: str = "") -> Path:
    """The DC tests' whole configuration (services, tenant map), bound with Kerberos, with ``gc_urls``."""
    from directory_fixtures import write_dc_config

    kerberos = f'auth = "kerberos"\nkerberos_host = "{samba_dc.kerberos_host}"\n'
    write_dc_config(samba_dc, path, extra=kerberos + f"gc_urls = {json.dumps(gc_urls)}\n" + extra)
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith(("bind_user", "password_env"))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_global_catalog_is_checked_with_the_kerberos_ticket(samba_dc, tmp_path):
    """auth = "kerberos" and gc_urls: a copy's values are checked in the Global Catalog
    (the DC's own, port 3269) bound from the same ticket — no password exists anywhere.
    With only a dead GC the check is refused in one sentence (so the GC is asked); with
    the live one after it a fresh copy plans, and a UPN another user holds is refused."""
    from directory_fixtures import dead_url

    env = kerberos_env(samba_dc, tmp_path)
    kinit(samba_dc, env, "sp-admin")
    customer = samba_dc.seed.customers()[0]
    template, other = samba_dc.seed.users(under=f"OU=Users,{customer.dn}")[:2]
    copy = ("copy", template.first("userPrincipalName"), "--first", "Gc", "--last", "Kerberos", "--services", "exchange",
            "--dry-run", "--json")
    dead = kerberos_dc_config(samba_dc, tmp_path / "dead.toml", [dead_url()])
    refused = tenantry(dead, env, *copy)
    assert refused.returncode != 0 and refused.stdout == ""
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "No Global Catalog of directory.gc_urls answers" in refused.stderr

    live = kerberos_dc_config(samba_dc, tmp_path / "live.toml", [dead_url(), _gc_url(samba_dc)])
    planned = tenantry(live, env, *copy)
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["status"] == "planned"
    taken = other.first("userPrincipalName")
    collides = tenantry(live, env, *copy, "--upn", taken)
    assert collides.returncode == 3, collides.stderr
    messages = [x["message"] for x in json.loads(collides.stdout)["problems"]]
    assert any(f"The UPN {taken} is already used by" in m for m in messages), messages


def test_a_global_catalog_refusing_the_kerberos_bind_is_one_sentence_and_nothing_is_written(samba_dc, tmp_path):
    """The ticket is gone (kdestroy) after the DC bound and before the Global Catalog is:
    the GC's bind is refused; the copy stops with one sentence naming the Global Catalog,
    nothing written (no account, no job), the DC connection still fine."""
    code = f"""
import asyncio, json, subprocess, sys
from pathlib import Path
from core.config import load
from core.copy import CopyRequest
from core.directory import connect
from core.errors import TenantryError
from core.session import Session

async def main():
    directory = await connect(load({str(tmp_path / "gc.toml")!r}), None)
    session = await Session.open(directory, state=Path({str(tmp_path / "state")!r}))
    subprocess.run(["kdestroy"], check=True)
    try:
        await session.copier().preflight(session.operator, CopyRequest(sys.argv[1], "Gc", "Refused", services=("exchange",)), None)
        print(json.dumps({{"refused": None}}))
    except TenantryError as error:
        customers = await directory.customers(search=sys.argv[2], with_services=False)
        print(json.dumps({{"refused": str(error), "kind": type(error).__name__, "jobs": len(session.journal.jobs()),
                          "dc_answers": bool(customers)}}))
    await directory.close()

asyncio.run(main())
"""
    customer = samba_dc.seed.customers()[0]
    template = samba_dc.seed.users(under=f"OU=Users,{customer.dn}")[0]
    # one DC connection, opened before the ticket goes: only the Global Catalog binds after
    kerberos_dc_config(samba_dc, tmp_path / "gc.toml", [_gc_url(samba_dc)], extra="pool_size = 1\n")
    env = kerberos_env(samba_dc, tmp_path)
    kinit(samba_dc, env, "sp-admin")
    ran = subprocess.run([sys.executable, "-c", code, template.first("userPrincipalName"), customer.first("ou")],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=180)
    assert ran.returncode == 0, ran.stderr
    out = json.loads(ran.stdout)
    assert out["kind"] == "AuthenticationFailed" and out["jobs"] == 0 and out["dc_answers"], out
    assert out["refused"].startswith("The Global Catalog of directory.gc_urls refused the bind (No valid Kerberos ticket")
    assert out["refused"].endswith("nothing was written.") and "\n" not in out["refused"]
    with samba_dc.connect() as conn:
        conn.search(samba_dc.base_dn, "(sn=Refused)", attributes=["cn"])
        assert conn.entries == []
