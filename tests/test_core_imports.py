"""core/ must not depend on Textual (it is shared by the console and the command line)."""

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import core

CORE = Path(core.__file__).parent


def test_no_module_of_core_imports_textual_or_rich_statically():
    offenders = []
    for path in CORE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(CORE.parent)}: {n}" for n in names if n.split(".")[0] in {"textual", "rich"}]
    assert offenders == []


def test_importing_every_core_module_loads_no_textual():
    # (rich may come in through httpx's optional command-line tool; Textual must not.)
    modules = [m.name for m in pkgutil.walk_packages([str(CORE)], prefix="core.")]
    assert len(modules) >= 10, modules
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'textual')\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=CORE.parent, check=True)
    assert result.stdout.strip() == ""
