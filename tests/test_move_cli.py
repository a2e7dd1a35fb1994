"""`tenantry move`, `jobs`, `resume`, `rollback` and `audit` as real processes on the Samba DC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from directory_fixtures import PASSWORD_ENV, write_dc_config
from move_fixtures import DESTINATION, make_user, remove_user, snapshot
from test_move_services import SERVICES, TOKEN_ENV

pytestmark = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cli(samba_dc, sp_password, provisioning_server, tmp_path):
    provisioning_server.reset()
    services = (
        '\n[services.exchange]\ndisplay_name = "Hosted Exchange"\nadapter = "exchange"\nplans = ["Basic 2 GB", "Premium 50 GB"]\n'
        '\n[services.ocs]\ndisplay_name = "Office Communications Server"\nadapter = "ocs"\n'
        f'\n[services.blackberry]\ndisplay_name = "BlackBerry"\nadapter = "blackberry"\nplans = ["Standard", "Enterprise"]\n'
        f'url = "{provisioning_server.url}"\ntoken_env = "{TOKEN_ENV}"\ntimeout = 1\nbackoff = 0.01\n'
        '\n[services.sharepoint]\ndisplay_name = "SharePoint"\nadapter = "group"\nmovable = false\n'
    )
    config = write_dc_config(samba_dc, tmp_path / "dc.toml", extra=services)
    state = tmp_path / "state"
    env = {**os.environ, PASSWORD_ENV: sp_password, TOKEN_ENV: provisioning_server.token, "TENANTRY_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli", *args, "--config", str(config)],
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=180)

    run.state = state
    return run


async def prepare(dc_directory, server):
    user = await make_user(dc_directory, services=SERVICES)
    server.seed_tenant(user.source.code.lower(), users=[{"username": user.upn, "emailAddress": user.upn}], groups={"Standard": [user.upn]})
    server.seed_tenant(user.destination.code.lower(), groups={"Standard": [], "Enterprise": []})
    return user


async def test_dry_run_json_then_move_then_jobs_and_audit(cli, dc_directory, provisioning_server, sp_password):
    user = await prepare(dc_directory, provisioning_server)
    try:
        before = await snapshot(dc_directory, user.source, user.destination)
        dry = cli("move", user.upn, "--to", DESTINATION, "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        planned = json.loads(dry.stdout)
        assert planned["status"] == "planned" and planned["job"] is None and planned["problems"] == []
        assert {tuple(sorted(step)) for step in planned["plan"]} == {("action", "after", "before", "target", "user")}
        assert planned["plan"][0]["action"] == "modify" and planned["plan"][1]["action"] == "move"
        assert await snapshot(dc_directory, user.source, user.destination) == before
        assert provisioning_server.calls_to("POST") == [] and provisioning_server.calls_to("DELETE") == []

        done = cli("move", user.upn, "--to", DESTINATION, "--yes", "--json")
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["status"] == "done" and result["job"]
        moved = await dc_directory.user(user.sam)
        assert moved.upn == result["users"][0]["upn_after"]

        jobs = json.loads(cli("jobs", "--json").stdout)
        assert jobs[0]["job"] == result["job"] and jobs[0]["status"] == "done"
        audit = json.loads(cli("audit", "--json", "--search", user.upn).stdout)
        assert audit[0]["result"] == "done" and audit[0]["job"] == result["job"]
        for path in cli.state.rglob("*"):  # the journal and audit hold no secret
            if path.is_file():
                data = path.read_bytes()
                assert sp_password.encode() not in data and provisioning_server.token.encode() not in data
    finally:
        await remove_user(dc_directory, user)


async def test_refused_move_is_exit_3_with_every_problem(cli, dc_directory, provisioning_server):
    user = await prepare(dc_directory, provisioning_server)
    try:
        refused = cli("move", user.upn, "--to", "Tailspin Toys", "--email", "x@elsewhere.example", "--json")
        assert refused.returncode == 3, refused.stderr
        result = json.loads(refused.stdout)
        assert result["status"] == "refused" and result["plan"] == []
        codes = {p["code"] for p in result["problems"]}
        assert {"service_missing", "foreign_domain"} <= codes
        text = cli("move", user.upn, "--to", "Tailspin Toys")
        assert text.returncode == 3 and "has no Hosted Exchange" in text.stderr and "Traceback" not in text.stderr
        audit = json.loads(cli("audit", "--json").stdout)
        assert audit[0]["result"] == "refused"
        unknown = cli("move", user.upn, "--to", "No Such Customer", "--yes")
        assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    finally:
        await remove_user(dc_directory, user)


async def test_failure_rolls_back_exit_4_and_a_failed_undo_leaves_a_job_for_rollback(cli, dc_directory, provisioning_server):
    server = provisioning_server
    user = await prepare(dc_directory, server)
    try:
        before = (await snapshot(dc_directory, user.source, user.destination), server.snapshot())
        server.fail_next("DELETE", f"/{user.source.code.lower()}/api/v1/users/*", "status:503", times=3)
        failed = cli("move", user.upn, "--to", DESTINATION, "--yes")
        assert failed.returncode == 4, failed.stderr
        assert "rolled back" in failed.stderr
        assert (await snapshot(dc_directory, user.source, user.destination), server.snapshot()) == before

        # The delete fails, and so does the undo of the create: the job needs attention (5).
        server.fail_next("DELETE", f"/{user.source.code.lower()}/api/v1/users/*", "status:503", times=3)
        server.fail_next("DELETE", f"/{user.destination.code.lower()}/api/v1/users/*", "status:503", times=3)
        stuck = cli("move", user.upn, "--to", DESTINATION, "--yes", "--json")
        assert stuck.returncode == 5, stuck.stderr
        job = json.loads(stuck.stdout)["job"]
        jobs = json.loads(cli("jobs", "--json").stdout)
        assert next(j for j in jobs if j["job"] == job)["status"] == "needs_attention"
        # The service is back: rolling the job back finishes the undo.
        again = cli("rollback", job)
        assert again.returncode == 0, again.stderr
        assert (await snapshot(dc_directory, user.source, user.destination), server.snapshot()) == before
    finally:
        await remove_user(dc_directory, user)
