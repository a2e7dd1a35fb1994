"""The layers import downward only — core < widgets < screens < app (tui) < command line —
as the import-linter contracts in pyproject.toml say; and the contracts do catch a breach."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "widgets", "screens", "tui", "cli")
LINT = Path(sys.executable).with_name("lint-imports")  # installed with the test extra


def lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_the_tree_keeps_every_import_contract():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and "Layers import downward only KEPT" in result.stdout


def test_a_screen_that_imports_the_app_breaks_the_layers_contract(tmp_path):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert lint(tmp_path).returncode == 0  # the copy is as clean as the tree
    (tmp_path / "screens" / "intruder.py").write_text("from tui.app import TenantryApp\n", encoding="utf-8")
    result = lint(tmp_path)
    assert result.returncode == 1, result.stdout
    assert "Layers import downward only BROKEN" in result.stdout
    assert "screens.intruder -> tui.app" in result.stdout
