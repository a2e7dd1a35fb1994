"""`tenantry copy` (and `resume` of a crashed copy) as real processes, on the Samba DC
and on the embedded demo directory. The password only ever travels on stdin."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from core import plan as p
from core.config import load
from core.copy import CopyRequest
from core.services import build_adapters, close_adapters
from core.session import Session
from directory_fixtures import PASSWORD_ENV, write_dc_config
from move_fixtures import SOURCE, make_user, remove_user, snapshot
from test_copy import Crash, bind_check, copy_names, new_password, remove_copy
from test_move_services import SERVICES, TOKEN_ENV
from uem_server import tenant_tables

pytestmark = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parent.parent


def _runner(env: dict, config: Path | None, state: Path):
    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        extra = ["--config", str(config)] if config else []
        return subprocess.run([sys.executable, "-m", "cli", *args, *extra], input=stdin if stdin is not None else "",
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=180)

    run.state = state
    return run


@pytest.fixture
def cli(samba_dc, sp_password, provisioning_server, uem_servers, tmp_path):
    provisioning_server.reset()
    services = (
        '\n[services.exchange]\ndisplay_name = "Hosted Exchange"\nadapter = "exchange"\nplans = ["Basic 2 GB", "Premium 50 GB"]\n'
        f'url = "{provisioning_server.url}/provisioning"\ntoken_env = "{TOKEN_ENV}"\ntimeout = 1\nbackoff = 0.01\n'
        '\n[services.ocs]\ndisplay_name = "Office Communications Server"\nadapter = "ocs"\n'
        '\n[services.blackberry]\ndisplay_name = "BlackBerry"\nadapter = "blackberry"\nplans = ["Standard", "Enterprise"]\n'
        'timeout = 1\nbackoff = 0.01\n'
        '\n[services.sharepoint]\ndisplay_name = "SharePoint"\nadapter = "group"\nmovable = false\n'
    )
    tables, uem_environ = tenant_tables({SOURCE: uem_servers[0]})
    config = write_dc_config(samba_dc, tmp_path / "dc.toml", extra=services, tenants=samba_dc.seed.tenants_toml(uem=tables))
    state = tmp_path / "state"
    env = {**os.environ, **uem_environ, PASSWORD_ENV: sp_password, TOKEN_ENV: provisioning_server.token, "TENANTRY_STATE_DIR": str(state),
           "PYTHONPATH": str(ROOT)}
    run = _runner(env, config, state)
    run.config = config
    return run


@pytest.fixture
def demo_cli(tmp_path):
    state = tmp_path / "state"
    env = {**os.environ, "TENANTRY_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}
    env.pop("TENANTRY_CONFIG", None)
    return _runner(env, None, state)


async def prepare(dc_directory, uem):
    """A template with Exchange, OCS and BlackBerry; its user in its customer's UEM."""
    user = await make_user(dc_directory, services=SERVICES)
    uem.add_group("Enterprise")
    uem.add_user({"username": user.upn, "emailAddress": user.upn}, groups=("Standard",))
    return user


def state_files_hold(state: Path, secret: str) -> list[Path]:
    return [f for f in state.rglob("*") if f.is_file() and any(secret.encode(e) in f.read_bytes() for e in ("utf-8", "utf-16-le"))]


async def test_dry_run_then_copy_with_password_stdin_then_bind(cli, dc_directory, provisioning_server, uem_servers, request):
    uem = uem_servers[0]
    user = await prepare(dc_directory, uem)
    first, last = copy_names()
    password = new_password()
    copy_dn = None
    try:
        before = await snapshot(dc_directory, user.source)
        dry = cli("copy", user.upn, "--first", first, "--last", last, "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        planned = json.loads(dry.stdout)
        assert planned["status"] == "planned" and planned["job"] is None and planned["problems"] == []
        assert [s["action"] for s in planned["plan"]][:2] == ["add_user", "set_password"]
        assert planned["plan"][-1] == {**planned["plan"][-1], "action": "modify", "after": {"userAccountControl": ["512"]}}
        assert await snapshot(dc_directory, user.source) == before

        done = cli("copy", user.upn, "--first", first, "--last", last, "--password-stdin", "--yes", "--json", stdin=password + "\n")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["status"] == "done" and result["job"] and result["problems"] == []
        change = result["users"][0]
        copy_dn = change["dn_after"]
        assert change["upn_after"] == f"copy.{last.lower()}@{user.source.default_domain}"
        new = await dc_directory.user(change["upn_after"])
        assert new.enabled and set(new.services) == set(SERVICES)
        assert provisioning_server.backend.record(new.upn) is not None and new.upn in uem.users()
        bind_check(request, dc_directory, new.upn, password)
        assert password not in done.stdout + done.stderr

        jobs = json.loads(cli("jobs", "--json").stdout)
        assert jobs[0]["job"] == result["job"] and jobs[0]["kind"] == "copy" and jobs[0]["status"] == "done"
        audit = json.loads(cli("audit", "--json").stdout)
        assert audit[0]["action"] == "copy" and audit[0]["result"] == "done" and audit[0]["job"] == result["job"]
        assert state_files_hold(cli.state, password) == []
    finally:
        await remove_copy(dc_directory, copy_dn)
        await remove_user(dc_directory, user)


async def test_bad_passwords_and_missing_options(cli, dc_directory, provisioning_server, uem_servers):
    uem = uem_servers[0]
    user = await prepare(dc_directory, uem)
    first, last = copy_names()
    try:
        before = await snapshot(dc_directory, user.source)
        weak = cli("copy", user.upn, "--first", first, "--last", last, "--password-stdin", "--yes", "--json", stdin="Qz1\n")
        assert weak.returncode == 3, weak.stderr
        result = json.loads(weak.stdout)
        assert result["status"] == "refused" and {x["code"] for x in result["problems"]} == {p.WEAK_PASSWORD}
        assert "Qz1" not in weak.stdout + weak.stderr
        text = cli("copy", user.upn, "--first", first, "--last", last, "--password-stdin", "--yes", stdin=f"Xy9-{last}-Q\n")
        assert text.returncode == 3 and "part of the user's name" in text.stderr and "Traceback" not in text.stderr
        no_yes = cli("copy", user.upn, "--first", first, "--last", last, "--password-stdin", stdin=new_password() + "\n")
        assert no_yes.returncode == 2 and "--yes" in no_yes.stderr
        nothing = cli("copy", user.upn, "--first", first, "--last", last, "--yes")
        assert nothing.returncode == 2 and "--password-stdin" in nothing.stderr and len(nothing.stderr.strip().splitlines()) == 1
        empty = cli("copy", user.upn, "--first", first, "--last", last, "--password-stdin", "--yes", stdin="")
        assert empty.returncode == 2
        unknown = cli("copy", "nobody@nowhere.example", "--first", first, "--last", last, "--generate-password", "--yes")
        assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
        taken = cli("copy", user.upn, "--first", "Test", "--last", f"Mover{user.number}", "--display-name", user.cn,
                    "--upn", user.upn, "--generate-password", "--yes", "--json")
        assert taken.returncode == 3
        assert {x["code"] for x in json.loads(taken.stdout)["problems"]} >= {p.COLLISION}
        assert await snapshot(dc_directory, user.source) == before
        audit = json.loads(cli("audit", "--json").stdout)
        assert audit[0]["action"] == "copy" and audit[0]["result"] == "refused"
    finally:
        await remove_user(dc_directory, user)


async def test_generated_password_is_shown_once_on_stderr_and_works(cli, dc_directory, provisioning_server, uem_servers, request):
    uem = uem_servers[0]
    user = await prepare(dc_directory, uem)
    first, last = copy_names()
    copy_dn = None
    try:
        done = cli("copy", user.upn, "--first", first, "--last", last, "--services", "exchange,ocs", "--generate-password", "--yes", "--json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        copy_dn = result["users"][0]["dn_after"]
        shown = re.findall(r"\(shown once, kept nowhere\): (\S+)", done.stderr)
        assert len(shown) == 1
        password = shown[0]
        assert password not in done.stdout
        new = await dc_directory.user(copy_dn)
        assert set(new.services) == {"exchange", "ocs"}
        assert new.upn not in uem.users()  # BlackBerry was not chosen
        bind_check(request, dc_directory, new.upn, password)
        assert state_files_hold(cli.state, password) == []
    finally:
        await remove_copy(dc_directory, copy_dn)
        await remove_user(dc_directory, user)


async def test_a_failed_copy_exits_4_with_nothing_left(cli, dc_directory, provisioning_server, uem_servers):
    uem = uem_servers[0]
    user = await prepare(dc_directory, uem)
    first, last = copy_names()
    try:
        before = (await snapshot(dc_directory, user.source), provisioning_server.snapshot(), uem.snapshot())
        uem.fail_next("POST", f"/{uem.srp_id}/api/v1/users", "status:500", message="UEM is down")
        failed = cli("copy", user.upn, "--first", first, "--last", last, "--password-stdin", "--yes", stdin=new_password() + "\n")
        assert failed.returncode == 4, failed.stderr
        assert "rolled back" in failed.stderr and "UEM is down" in failed.stderr
        assert (await snapshot(dc_directory, user.source), provisioning_server.snapshot(), uem.snapshot()) == before
    finally:
        await remove_user(dc_directory, user)


async def test_resume_of_a_crashed_copy_reads_the_password_again(cli, dc_directory, provisioning_server, uem_servers, request, monkeypatch):
    uem = uem_servers[0]
    user = await prepare(dc_directory, uem)
    first, last = copy_names()
    copy_dn = None
    monkeypatch.setenv(TOKEN_ENV, provisioning_server.token)
    cli.state.mkdir(parents=True, exist_ok=True)
    session = await Session.open(dc_directory, state=cli.state, adapters=build_adapters(load(cli.config)))
    try:
        plan = await session.copier().preflight(session.operator, CopyRequest(user.upn, first, last, services=("exchange", "ocs")), None)
        assert plan.ok, plan.problems
        copy_dn = plan.users[0].dn_after

        async def crash(index, step):
            if step.action == p.SET_PASSWORD:
                raise Crash()

        with pytest.raises(Crash):
            [e async for e in session.executor(before_step=crash).run(plan, session.operator, secrets={"password": new_password()})]
        job = session.journal.jobs()[0].id

        without = cli("resume", job)
        assert without.returncode == 2 and "never kept" in without.stderr and len(without.stderr.strip().splitlines()) == 1
        weak = cli("resume", job, "--password-stdin", stdin="weak\n")
        assert weak.returncode == 3 and "shorter than" in weak.stderr
        assert not (await dc_directory.user(copy_dn)).enabled
        password = new_password()
        resumed = cli("resume", job, "--password-stdin", stdin=password + "\n")
        assert resumed.returncode == 0, resumed.stderr
        new = await dc_directory.user(copy_dn)
        assert new.enabled
        bind_check(request, dc_directory, new.upn, password)
        assert state_files_hold(cli.state, password) == []
    finally:
        await close_adapters(session.adapters)
        session.journal.close()
        session.audit.close()
        await remove_copy(dc_directory, copy_dn)
        await remove_user(dc_directory, user)


async def test_copy_on_the_demo(demo_cli):
    users = json.loads(demo_cli("users", "Adventure Works Cycles", "--demo", "--json").stdout)
    template = next(u for u in users if {"exchange", "ocs", "blackberry"} <= set(u["services"]))
    dry = demo_cli("copy", template["upn"], "--first", "Anna", "--last", "Müller", "--demo", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert planned["status"] == "planned"
    actions = [s["action"] for s in planned["plan"]]
    assert actions[:2] == ["add_user", "set_password"] and "http" in actions and actions[-1] == "modify"
    password = new_password()
    done = demo_cli("copy", template["upn"], "--first", "Anna", "--last", "Müller", "--demo", "--password-stdin", "--yes", "--json",
                    stdin=password + "\n")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "done" and result["users"][0]["upn_after"].startswith("anna.muller@")
    text = demo_cli("copy", template["upn"], "--first", "Anna", "--last", "Müller", "--demo", "--password-stdin", "--yes", stdin="Anna-Muller-1\n")
    assert text.returncode == 3 and "part of the user's name" in text.stderr
    assert state_files_hold(demo_cli.state, password) == []
    jobs = json.loads(demo_cli("jobs", "--demo", "--json").stdout)
    assert [j["kind"] for j in jobs] == ["copy"] and jobs[0]["status"] == "done"
