"""What the console remembers between runs for the operator (the theme picked), kept as
JSON in the state directory. Never a secret; a missing or unreadable file is no
preference."""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger("tenantry")

FILE = "console.json"


def load(folder: Path) -> dict[str, str]:
    try:
        data = json.loads((folder / FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(data, dict) else {}


def remember(folder: Path, **values: str) -> None:
    path = folder / FILE
    try:
        path.write_text(json.dumps({**load(folder), **values}, indent=2), encoding="utf-8")
    except OSError:  # a preference not kept is no reason to stop the console
        log.warning("the console's preferences could not be written to %s", path, exc_info=True)
