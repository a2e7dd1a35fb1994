"""The one sanitiser for untrusted text (PRODUCT §7).

Every string read from the directory or an HTTP API passes through :func:`plain`
before it is shown: control characters (C0, DEL, C1 — which covers ESC and CSI) are
removed. The result is still *text*, not markup: callers hand it to widgets as
``rich.text.Text`` / ``Content`` or with ``markup=False``.
"""

from __future__ import annotations

import json
import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile(r"[\t\n]+")


def plain(value: object, *, single_line: bool = True) -> str:
    """Return ``value`` as a printable string with every control character removed.

    Tabs and newlines become a single space when ``single_line`` (table cells,
    titles); otherwise they are kept (detail panels, logs).
    """
    text = "" if value is None else str(value)
    text = _CONTROL.sub("", text)
    if single_line:
        text = _LINE_BREAKS.sub(" ", text)
    return text


def listed(value: object) -> str:
    """One attribute's values (a list, joined by "; ") or one value, as plain text; "—" for none."""
    if value is None or value == []:
        return "—"
    return plain("; ".join(map(str, value)) if isinstance(value, list) else str(value))


_JSON_UNESCAPED_CONTROL = re.compile(r"[\x7f-\x9f]")


def json_text(value: object, *, indent: int | None = 2) -> str:
    """``value`` as JSON for a terminal or a log: non-ASCII text kept readable, every
    control character escaped. ``json`` escapes C0 itself but passes DEL and C1 (CSI,
    OSC, …) through raw when ``ensure_ascii`` is off; they become ``\\u007f``…``\\u009f``
    here, which any JSON reader decodes back to the same string."""
    text = json.dumps(value, ensure_ascii=False, indent=indent, default=str)
    return _JSON_UNESCAPED_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
