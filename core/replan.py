"""A planned job whose user changed since its plan was made is planned again, never run
on the old plan (issue 9, item 6).

A bulk job journals every row as ``planned`` before the first one runs; by the time a row
starts (a resume after a crash, a DC lost for an hour) its user may have changed. The row
keeps what was asked (:func:`request_meta`, the job's ``meta["request"]``), so a resume
plans it again on a fresh read (:func:`journaled_request`) and says what the new plan does
differently (:func:`plan_changes`) — the same steps run at once; other steps are journaled
and shown first, to run on the next resume.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable

from core.copy import CopyRequest
from core.journal import JobRecord
from core.move import MoveRequest
from core.plan import Step
from core.text import listed, plain

MOST = 8  # changes named in a sentence; the rest are counted


def request_meta(request: MoveRequest | CopyRequest) -> dict[str, Any]:
    """What was asked, as a job keeps it in its meta (``{"move": {...}}`` or ``{"copy": {...}}``)."""
    kind = "copy" if isinstance(request, CopyRequest) else "move"
    fields = dataclasses.asdict(request)
    if fields.get("services") is not None:
        fields["services"] = list(fields["services"])
    return {kind: fields}


def journaled_request(job: JobRecord) -> MoveRequest | CopyRequest | None:
    """The request ``job`` was planned from, if it kept it (jobs of a bulk run do)."""
    kept = (job.meta or {}).get("request")
    if not isinstance(kept, dict) or len(kept) != 1:
        return None
    (kind, fields), = kept.items()
    cls = {"move": MoveRequest, "copy": CopyRequest}.get(kind)
    if cls is None or not isinstance(fields, dict):
        return None
    known = {f.name for f in dataclasses.fields(cls)}
    fields = {k: v for k, v in fields.items() if k in known}
    if isinstance(fields.get("services"), list):
        fields["services"] = tuple(fields["services"])
    try:
        return cls(**fields)
    except TypeError:  # a field missing: edited, or from another version
        return None


def plan_changes(old: Iterable[Step], new: Iterable[Step]) -> list[str]:
    """What the new plan does differently, one short phrase each: a step added or
    dropped, or the values a step reads or writes that differ. Empty: the same steps."""
    def key(step: Step) -> tuple:
        return step.action, str(step.target).casefold(), step.service or ""

    before = {key(s): s for s in old}
    after = {key(s): s for s in new}
    changes: list[str] = [f"new step {s.action} {plain(s.target)}" for k, s in after.items() if k not in before]
    changes += [f"step {s.action} {plain(s.target)} dropped" for k, s in before.items() if k not in after]
    for k, s in after.items():
        was = before.get(k)
        if was is None or (was.before, was.after) == (s.before, s.after):
            continue
        if isinstance(s.before, dict) and isinstance(was.before, dict):
            for attribute in dict.fromkeys([*was.before, *s.before, *(was.after or {}), *(s.after or {})]):
                if was.before.get(attribute) != s.before.get(attribute):
                    changes.append(f"{plain(attribute)} of {plain(s.target)} was {listed(was.before.get(attribute))}, "
                                   f"now {listed(s.before.get(attribute))}")
                elif (was.after or {}).get(attribute) != (s.after or {}).get(attribute):
                    changes.append(f"{plain(attribute)} of {plain(s.target)} becomes {listed((s.after or {}).get(attribute))}")
        else:
            changes.append(f"step {s.action} {plain(s.target)}: {listed(s.before)} → {listed(s.after)}")
    return changes


def changes_sentence(changes: list[str]) -> str:
    """The changes as one clause (the first :data:`MOST`, then how many more)."""
    shown = "; ".join(changes[:MOST])
    more = len(changes) - MOST
    return shown + (f"; and {more} more" if more > 0 else "")
