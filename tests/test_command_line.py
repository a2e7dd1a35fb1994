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
