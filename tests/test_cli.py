"""The headless command line, run as a real process, on the demo directory and the Samba DC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from directory_fixtures import PASSWORD_ENV, dead_url, write_dc_config

ROOT = Path(__file__).resolve().parent.parent


def tenantry(*args: str, env: dict | None = None, stdin: str = "") -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        capture_output=True, text=True, cwd=ROOT, env=environment, input=stdin, timeout=120,
    )


def assert_one_sentence_error(result: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module")
def demo_customers():
    result = tenantry("customers", "--demo", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_customers_json_on_the_demo_directory(demo_customers):
    from core.demo.seed import build_seed

    seed = build_seed()
    assert 35 <= len(demo_customers) <= 60
    for item in demo_customers:
        assert set(item) >= {"name", "reseller", "domains", "services", "dn"}
        assert item["domains"] and all(isinstance(s, str) for s in item["services"])
    names = {c["name"] for c in demo_customers}
    assert set(seed.hostile_customers) <= names
    globex = next(c for c in demo_customers if c["name"] == seed.big_customer)
    assert "exchange" in globex["services"]


def test_users_json_by_domain_with_search(demo_customers):
    from core.demo.seed import build_seed

    big = next(c for c in demo_customers if c["name"] == build_seed().big_customer)
    result = tenantry("users", big["domains"][0], "--demo", "--json", "--search", "ann")
    assert result.returncode == 0, result.stderr
    users = json.loads(result.stdout)
    assert users
    for user in users:
        assert set(user) >= {"display_name", "upn", "sam", "email", "services", "roles", "enabled", "dn"}
        assert any("ann" in (user[k] or "").lower() for k in ("display_name", "upn", "email", "sam"))


def test_text_output_never_carries_terminal_control_bytes():
    result = tenantry("customers", "--demo")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout
    assert "[@click=app.quit]x[/]" in result.stdout
    assert "Red Alert" in result.stdout


def test_unknown_customer_is_exit_2_with_one_sentence():
    assert_one_sentence_error(tenantry("users", "no-such-customer.example", "--demo"), 2, "No customer is named")


def test_missing_and_broken_configuration_are_exit_2(tmp_path):
    assert_one_sentence_error(tenantry("customers", "--config", str(tmp_path / "none.toml")), 2, "does not exist")
    broken = tmp_path / "broken.toml"
    broken.write_text('[directory]\nurls = "ldaps://x"\nbase_dn = "DC=x"\nbind_user = "u"\n')
    assert_one_sentence_error(tenantry("customers", "--config", str(broken)), 2, "directory.urls")


def test_customers_json_on_the_dc_matches_the_demo(samba_dc, sp_password, tmp_path, demo_customers):
    config = write_dc_config(samba_dc, tmp_path / "dc.toml")
    result = tenantry("customers", "--config", str(config), "--json", env={PASSWORD_ENV: sp_password})
    assert result.returncode == 0, result.stderr
    on_dc = json.loads(result.stdout)
    keep = ("name", "reseller", "domains", "services", "plans", "code")
    assert [{k: c[k] for k in keep} for c in on_dc] == [{k: c[k] for k in keep} for c in demo_customers]


def test_connection_faults_are_exit_2_with_one_sentence(samba_dc, sp_password, tmp_path):
    good = write_dc_config(samba_dc, tmp_path / "good.toml")
    wrong = tenantry("customers", "--config", str(good), env={PASSWORD_ENV: "not-the-password"})
    assert_one_sentence_error(wrong, 2, "refused the password")
    assert "not-the-password" not in wrong.stderr
    dead = write_dc_config(samba_dc, tmp_path / "dead.toml", urls=[dead_url()])
    assert_one_sentence_error(tenantry("customers", "--config", str(dead), env={PASSWORD_ENV: sp_password}), 2, "cannot be reached")
    bad_ca = write_dc_config(samba_dc, tmp_path / "ca.toml", ca_file=samba_dc.wrong_ca_file)
    assert_one_sentence_error(tenantry("customers", "--config", str(bad_ca), env={PASSWORD_ENV: sp_password}), 2, "could not be verified")
