"""`tenantry move`, `jobs`, `resume`, `rollback` and `audit` as real processes on the Samba DC."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from directory_fixtures import PASSWORD_ENV, write_dc_config
from move_fixtures import DESTINATION, SOURCE, make_user, remove_user, snapshot
from test_move_services import SERVICES
from uem_server import tenant_tables

pytestmark = pytest.mark.asyncio(loop_scope="session")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cli(samba_dc, sp_password, uem_servers, tmp_path):
    services = (
        '\n[services.exchange]\ndisplay_name = "Hosted Exchange"\nadapter = "exchange"\nplans = ["Basic 2 GB", "Premium 50 GB"]\n'
        '\n[services.ocs]\ndisplay_name = "Office Communications Server"\nadapter = "ocs"\n'
        f'\n[services.blackberry]\ndisplay_name = "BlackBerry"\nadapter = "blackberry"\nplans = ["Standard", "Enterprise"]\n'
        'timeout = 1\nbackoff = 0.01\n'
        '\n[services.sharepoint]\ndisplay_name = "SharePoint"\nadapter = "group"\nmovable = false\n'
    )
    tables, uem_environ = tenant_tables({SOURCE: uem_servers[0], DESTINATION: uem_servers[1]})
    config = write_dc_config(samba_dc, tmp_path / "dc.toml", extra=services, tenants=samba_dc.seed.tenants_toml(uem=tables))
    state = tmp_path / "state"
    env = {**os.environ, **uem_environ, PASSWORD_ENV: sp_password, "TENANTRY_STATE_DIR": str(state), "PYTHONPATH": str(ROOT)}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cli", *args, "--config", str(config)],
                              capture_output=True, text=True, cwd=ROOT, env=env, timeout=180)

    run.state = state
    return run


async def prepare(dc_directory, uems, *, devices: int = 0):
    """A user with Exchange, OCS and BlackBerry; its UEM user (with ``devices``) in the source's UEM."""
    user = await make_user(dc_directory, services=SERVICES)
    source, destination = uems
    source.add_user({"username": user.upn, "emailAddress": user.upn}, groups=("Standard",),
                    devices=tuple({"model": f"Phone {i}"} for i in range(devices)))
    destination.add_group("Standard")
    destination.add_group("Enterprise")
    return user


def uem_state(uems) -> tuple:
    return tuple(uem.snapshot() for uem in uems)


async def test_dry_run_json_then_move_then_jobs_and_audit(cli, dc_directory, uem_servers, sp_password):
    user = await prepare(dc_directory, uem_servers)
    try:
        before = await snapshot(dc_directory, user.source, user.destination)
        dry = cli("move", user.upn, "--to", DESTINATION, "--dry-run", "--json")
        assert dry.returncode == 0, dry.stderr
        planned = json.loads(dry.stdout)
        assert planned["status"] == "planned" and planned["job"] is None and planned["problems"] == []
        assert {tuple(sorted(step)) for step in planned["plan"]} == {("action", "after", "before", "target", "user")}
        assert planned["plan"][0]["action"] == "modify" and planned["plan"][1]["action"] == "move"
        assert await snapshot(dc_directory, user.source, user.destination) == before
        assert all(uem.calls("DELETE") == [] and uem.calls("POST", "*/users") == [] for uem in uem_servers)  # the dry run only read

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
                assert sp_password.encode() not in data
                assert not any(uem.admin_password.encode() in data for uem in uem_servers)
    finally:
        await remove_user(dc_directory, user)


async def test_refused_move_is_exit_3_with_every_problem(cli, dc_directory, uem_servers):
    user = await prepare(dc_directory, uem_servers)
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


async def test_failure_rolls_back_exit_4_and_a_failed_undo_leaves_a_job_for_rollback(cli, dc_directory, uem_servers):
    source, destination = uem_servers
    user = await prepare(dc_directory, uem_servers)
    try:
        before = (await snapshot(dc_directory, user.source, user.destination), uem_state(uem_servers))
        source.fail_next("DELETE", f"/{source.srp_id}/api/v1/users/*", "status:503", times=3)
        failed = cli("move", user.upn, "--to", DESTINATION, "--yes")
        assert failed.returncode == 4, failed.stderr
        assert "rolled back" in failed.stderr
        assert (await snapshot(dc_directory, user.source, user.destination), uem_state(uem_servers)) == before

        # The delete fails, and so does the undo of the create: the job needs attention (5).
        source.fail_next("DELETE", f"/{source.srp_id}/api/v1/users/*", "status:503", times=3)
        destination.fail_next("DELETE", f"/{destination.srp_id}/api/v1/users/*", "status:503", times=3)
        stuck = cli("move", user.upn, "--to", DESTINATION, "--yes", "--json")
        assert stuck.returncode == 5, stuck.stderr
        job = json.loads(stuck.stdout)["job"]
        jobs = json.loads(cli("jobs", "--json").stdout)
        assert next(j for j in jobs if j["job"] == job)["status"] == "needs_attention"
        # The service is back: rolling the job back finishes the undo.
        again = cli("rollback", job)
        assert again.returncode == 0, again.stderr
        assert (await snapshot(dc_directory, user.source, user.destination), uem_state(uem_servers)) == before
    finally:
        await remove_user(dc_directory, user)


async def test_a_user_with_devices_is_refused_with_the_count_and_moved_with_the_opt_in(cli, dc_directory, uem_servers):
    source, destination = uem_servers
    user = await prepare(dc_directory, uem_servers, devices=2)
    try:
        before = (await snapshot(dc_directory, user.source, user.destination), uem_state(uem_servers))
        refused = cli("move", user.upn, "--to", DESTINATION, "--yes", "--json")
        assert refused.returncode == 3, refused.stderr
        (problem,) = [p for p in json.loads(refused.stdout)["problems"] if p["code"] == "devices"]
        assert f"{user.upn} has 2 devices in BlackBerry tenant {source.srp_id}" in problem["message"] and "--with-devices" in problem["message"]
        assert (await snapshot(dc_directory, user.source, user.destination), uem_state(uem_servers)) == before

        dry = json.loads(cli("move", user.upn, "--to", DESTINATION, "--with-devices", "--dry-run", "--json").stdout)
        (removal,) = [s for s in dry["plan"] if s["target"].startswith("blackberry: remove 2 device(s)")]
        assert removal["before"]["devices"] == ["Phone 0", "Phone 1"] and "cannot be undone" in removal["after"]["devices"]

        done = cli("move", user.upn, "--to", DESTINATION, "--with-devices", "--yes", "--json")
        assert done.returncode == 0, done.stderr
        upn = json.loads(done.stdout)["users"][0]["upn_after"]
        assert source.snapshot()["users"] == {}
        assert destination.snapshot()["users"][upn]["devices"] == 0 and destination.snapshot()["users"][upn]["groups"] == ["Standard"]
        assert len(source.calls("POST", f"/{source.srp_id}/api/v1/users/*/userDevices/*/commands")) == 2
    finally:
        await remove_user(dc_directory, user)
