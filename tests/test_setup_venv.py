"""``scripts/demo`` starts at once the second time: ``scripts/setup-venv`` installs only
when pyproject.toml (or the extras asked for) changed. The venv's python is a stand-in
that records how it is called: what is tested is the script's decision."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_setup_venv_installs_once_per_pyproject_and_extras(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup-venv", tmp_path / "scripts" / "setup-venv")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    log = tmp_path / "calls.log"
    (bin_dir / "python").write_text(f'#!/bin/sh\necho "$*" >> {log}\n', encoding="utf-8")
    (bin_dir / "tenantry").write_text("#!/bin/sh\n", encoding="utf-8")
    for tool in ("python", "tenantry"):
        (bin_dir / tool).chmod(0o755)

    def setup(*extra: str) -> None:
        subprocess.run(["bash", "scripts/setup-venv", *extra], cwd=tmp_path, check=True, timeout=60,
                       env={**os.environ, "PYTHON": sys.executable})

    def editable_setup() -> int:
        return log.read_text().count(" -e ") if log.exists() else 0

    setup("test")
    assert editable_setup() == 1
    setup("test")
    setup()  # the demo: the test extra's install will do
    assert editable_setup() == 1
    with (tmp_path / "pyproject.toml").open("a", encoding="utf-8") as handle:
        handle.write("\n# a new dependency\n")
    setup()
    assert editable_setup() == 2
