"""Defects a new user's trial found in the headless command line (issue 15), each run as
a real process: the example configuration, a reader that leaves early, ``ctrl+c`` at the
confirmation prompt."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
from pathlib import Path

from directory_fixtures import PASSWORD_ENV

ROOT = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, "-m", "cli"]


def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV}
    env.update({"TENANTRY_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": str(ROOT)})
    return env


def test_the_example_config_with_a_missing_ca_file_is_one_sentence_naming_the_key_exit_2(tmp_path):
    example = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    shipped = example.replace('# ca_file = "/etc/ssl/certs/example-ca.pem"', 'ca_file = "/etc/ssl/certs/example-ca.pem"')
    assert shipped != example  # the line the example documents, switched on
    config = tmp_path / "config.toml"
    config.write_text(shipped, encoding="utf-8")
    result = subprocess.run([*COMMAND, "customers", "--config", str(config)], capture_output=True, text=True, cwd=ROOT,
                            env={**environment(tmp_path), "TENANTRY_BIND_PASSWORD": "x"}, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "directory.ca_file" in lines[0] and "example-ca.pem" in lines[0], result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def run_with_reader_gone(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The command with its standard output's reader gone before it writes (``| head -0``)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([*COMMAND, *args], stdout=write, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                              env=environment(tmp_path), timeout=120)
    finally:
        os.close(write)


def test_a_reader_that_leaves_early_keeps_the_commands_exit_code(tmp_path):
    listing = run_with_reader_gone(tmp_path, "customers", "--demo", "--json")
    assert listing.returncode == 0, listing.stderr
    assert listing.stderr == ""
    users = json.loads(subprocess.run([*COMMAND, "users", "Fabrikam", "--demo", "--json"], capture_output=True, text=True,
                                      cwd=ROOT, env=environment(tmp_path), timeout=120).stdout)
    refused = run_with_reader_gone(tmp_path, "move", users[0]["upn"], "--to", "Fabrikam", "--demo", "--json")
    assert refused.returncode == 3, refused.stderr  # refused (its own customer), not the pipe's 1 or 0


def read_until(fd: int, marker: bytes) -> bytes:
    """What the terminal shows until ``marker`` (or the end of the output)."""
    seen = b""
    while marker not in seen:
        ready, _, _ = select.select([fd], [], [], 60)
        assert ready, seen  # a deadline against a hang, not a measurement
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # the terminal closed: the process ended
            break
        if not chunk:
            break
        seen += chunk
    return seen


def test_ctrl_c_at_the_confirmation_prompt_stops_at_once_and_changes_nothing(tmp_path):
    env = environment(tmp_path)
    users = json.loads(subprocess.run([*COMMAND, "users", "Fabrikam", "--demo", "--json"], capture_output=True, text=True,
                                      cwd=ROOT, env=env, timeout=120).stdout)
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command on a terminal
        os.chdir(ROOT)
        os.execve(sys.executable, [*COMMAND, "move", users[0]["upn"], "--to", "Woodgrove Bank", "--demo"], env)
    try:
        before = read_until(fd, b"[y/N]")
        assert b"[y/N]" in before, before
        os.write(fd, b"\x03")  # ctrl+c as the terminal sends it: SIGINT to the command
        after = read_until(fd, b"interrupted")
        _, status = os.waitpid(pid, 0)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 130, after
    assert b"Nothing was changed." in after and b"Traceback" not in after, after
    jobs = subprocess.run([*COMMAND, "jobs", "--demo", "--json"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert json.loads(jobs.stdout) == []  # no job was started


def tenantry(tmp_path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, cwd=ROOT, env=environment(tmp_path),
                          input=stdin, timeout=180)


def fabrikam_users(tmp_path: Path) -> list[dict]:
    return json.loads(tenantry(tmp_path, "users", "Fabrikam", "--demo", "--json").stdout)


def test_the_audit_of_a_copy_names_the_account_it_created(tmp_path):
    template = next(u for u in fabrikam_users(tmp_path) if u["display_name"] == "Ana Hall")
    copied = tenantry(tmp_path, "copy", template["upn"], "--first", "Zoe", "--last", "Quinn", "--demo", "--yes",
                      "--password-stdin", "--json", stdin="Tr4velBus9\n")
    assert copied.returncode == 0, copied.stderr
    new_upn = json.loads(copied.stdout)["users"][0]["upn_after"]
    found = json.loads(tenantry(tmp_path, "audit", "--demo", "--search", new_upn, "--json").stdout)
    assert [(e["action"], e["result"]) for e in found] == [("copy", "done")]
    assert found[0]["users"] == [template["upn"], new_upn]  # the template, then the new account


def test_a_bulk_moves_json_carries_the_one_user_names_and_adds_batch_and_rows(tmp_path):
    users = [u["upn"] for u in fabrikam_users(tmp_path)[:2]]
    moved = tenantry(tmp_path, "move", *users, "--to", "Woodgrove Bank", "--demo", "--yes", "--json")
    assert moved.returncode == 0, moved.stderr
    out = json.loads(moved.stdout)
    assert {"job", "status", "problems", "plan", "users", "batch", "rows"} <= set(out)
    assert out["job"] == out["batch"] and out["status"] == "done" and out["problems"] == []
    assert [u["upn_before"] for u in out["users"]] == users
    assert {s["user"] for s in out["plan"]} == set(users) and all(set(s) == {"user", "action", "target", "before", "after"} for s in out["plan"])
    assert len(out["rows"]) == 2
    refused = tenantry(tmp_path, "move", *users, "--to", "Fabrikam", "--demo", "--json")  # their own customer
    assert refused.returncode == 3, refused.stderr
    out = json.loads(refused.stdout)
    assert out["status"] == "refused" and out["job"] == out["batch"] and out["plan"] == []
    assert [x["code"] for x in out["problems"]] == ["same_customer", "same_customer"]


def test_an_unknown_customer_is_one_sentence_offering_the_matches(tmp_path):
    near = tenantry(tmp_path, "users", "fabri", "--demo")
    assert near.returncode == 2 and near.stderr.count("\n") == 1, near.stderr
    assert "No customer is named 'fabri'" in near.stderr and "did you mean: Fabrikam (fabrikam.example)" in near.stderr
    moved = tenantry(tmp_path, "move", fabrikam_users(tmp_path)[0]["upn"], "--to", "woodgrove", "--demo", "--yes")
    assert moved.returncode == 2 and "did you mean: Woodgrove Bank" in moved.stderr, moved.stderr
    none = tenantry(tmp_path, "users", "zzz-none", "--demo")
    assert none.returncode == 2 and "did you mean" not in none.stderr


def test_the_text_table_pads_by_terminal_cells(capsys):
    from rich.cells import cell_len

    from cli.report import _print_table

    _print_table(("NAME", "UPN"), [("山田太郎", "taro@x.example"), ("Renée Müller", "renee@x.example"), ("Al", "al@x.example")])
    lines = capsys.readouterr().out.splitlines()
    starts = {cell_len(line[: line.index(upn)]) for line, upn in zip(lines, ("UPN", "taro@", "renee@", "al@"))}
    assert len(starts) == 1, lines  # the second column starts in the same terminal cell on every line


def test_the_console_refuses_to_start_without_a_terminal(tmp_path):
    result = subprocess.run(COMMAND + ["--demo"], capture_output=True, text=True, cwd=ROOT, env=environment(tmp_path),
                            stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == "tenantry: The console needs a terminal; for scripts use a subcommand (tenantry --help lists them)."
