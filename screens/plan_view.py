"""How a plan reads: one line per step (the reviews' headings, the progress panes' rows)
and each step's exact change under it — every attribute old → new, every membership,
every HTTP call — for moves, copies and resumed jobs alike."""

from __future__ import annotations

from typing import Any, Iterable

from rich.console import Group
from rich.table import Table
from rich.text import Text

from core import plan as p
from core.escape import parent_dn, rdn_value
from core.plan import Plan, Step
from core.text import plain

LABEL = 18  # attribute name column
ONE_LINE = 52  # "old  →  new" on one line when it fits, else two


def _group(dn: str) -> str:
    """``Hosted Exchange (Services)``: a group by its name and its OU's."""
    try:
        return f"{plain(rdn_value(dn))} ({plain(rdn_value(parent_dn(dn)))})"
    except Exception:  # not a DN we can parse: show it whole
        return plain(dn)


def step_summary(step: Step, plan: Plan) -> Text:
    """One line for a step (the review's headings, the progress pane's rows)."""
    source, destination = plain(plan.source), plain(plan.destination)
    if step.action == p.ADD_USER:
        text = f"Create the account (disabled) in {destination}"
    elif step.action == p.SET_PASSWORD:
        text = "Set the password (not shown)"
    elif step.action == p.MODIFY and (step.after or {}).get("userAccountControl") == ["512"]:
        text = "Enable the account"
    elif step.action == p.MODIFY:
        names = list(step.after or {})
        text = f"Change {len(names)} attribute{'s' if len(names) != 1 else ''} ({', '.join(plain(a) for a in names)})"
    elif step.action == p.MOVE:
        text = f"Move the account to {destination}"
    elif step.action == p.ADD_MEMBER:
        text = f"Join {_group(step.target)} of {destination}"
    elif step.action == p.REMOVE_MEMBER:
        text = f"Leave {_group(step.target)} of {source}"
    elif step.action == p.CREATE_GROUP:
        text = f"Create the role group {_group(step.target)} in {destination}"
    elif step.action == p.HTTP:
        text = f"{step.call_kind}: {plain(step.target)}"
    else:
        text = f"{plain(step.action)} {plain(step.target)}"
    return Text(text, no_wrap=True, overflow="ellipsis")


def _values(values: Any) -> list[str]:
    if values is None:
        return []
    if isinstance(values, (list, tuple)):
        return [plain(v) for v in values]
    return [plain(values)]


Row = tuple[str, Text]  # (label, value)


def _attribute_rows(name: str, before: list[str], after: list[str]) -> Iterable[Row]:
    label = plain(name)
    if len(before) <= 1 and len(after) <= 1:
        old = before[0] if before else "(none)"
        new = after[0] if after else "(none)"
        if len(old) + len(new) + 5 <= ONE_LINE:
            yield label, Text.assemble(old, ("  →  ", "dim"), new)
        else:
            yield label, Text(old)
            yield "", Text.assemble(("→ ", "dim"), new)
        return
    removed = [v for v in before if v not in after]
    added = [v for v in after if v not in before]
    kept = len(after) - len(added)
    for sign, value, style in [("− ", v, "red") for v in removed] + [("+ ", v, "green") for v in added]:
        yield label, Text.assemble((sign, style), value)
        label = ""
    if kept:
        yield label, Text(f"{kept} value(s) kept", style="dim")


def step_details(step: Step) -> Iterable[Row]:
    """The exact change of a step, under its summary."""
    if step.action == p.ADD_USER:
        for name, values in (step.after or {}).items():
            yield plain(name), Text(", ".join(plain(v) for v in values))
    elif step.action == p.SET_PASSWORD:
        yield "", Text("the password typed (never shown, never written to a log)", style="dim")
    elif step.action == p.MODIFY:
        before, after = step.before or {}, step.after or {}
        for name in after:
            yield from _attribute_rows(name, _values(before.get(name)), _values(after.get(name)))
    elif step.action == p.MOVE:
        yield "from", Text(plain(step.target))
        yield "to", Text(plain(step.after))
    elif step.action == p.CREATE_GROUP:  # (memberships: the heading says it all)
        yield "sAMAccountName", Text(plain((step.after or {}).get("sam")))
    elif step.action == p.HTTP:
        request, undo = step.request or {}, step.undo_request or {}
        yield "request", Text.assemble((plain(request.get("method", "")), "bold"), " ", plain(request.get("path") or request.get("url") or ""))
        for name, value in (step.after if isinstance(step.after, dict) else {}).items():
            shown = ", ".join(_values(value)) if isinstance(value, (list, tuple)) else plain(value)
            yield plain(name), Text(shown)
        if undo:
            yield "undone by", Text.assemble(plain(undo.get("method", "")), " ", plain(undo.get("path") or undo.get("url") or ""))


def grid(rows: Iterable[Row]) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=2)
    grid.add_column(width=LABEL, no_wrap=True, overflow="ellipsis", style="bold")
    grid.add_column(ratio=1, overflow="fold")
    for label, value in rows:
        grid.add_row("", Text(label), value)
    return grid


def left_out_view(plan: Plan) -> list[Any]:
    """What the plan deliberately does not do (roles the operator may not grant), after its steps."""
    if not plan.left_out:
        return []
    parts: list[Any] = [Text("Left out", style="bold underline")]
    for item in plan.left_out:
        parts.append(Text.assemble(("✗ ", "bold"), f"Not granted: {_group(item.target)}", no_wrap=True, overflow="ellipsis"))
        parts.append(grid([("why", Text(plain(item.reason)))]))
    return parts


def plan_view(plan: Plan) -> Group:
    """The review: who changes how, then each step with its exact change (long values
    wrap inside their column)."""
    parts: list[Any] = []
    for change in plan.users:
        parts.append(grid([
            ("UPN", Text.assemble(plain(change.upn_before or "(none)"), ("  →  ", "dim"), plain(change.upn_after or "(none)"))),
            ("Email", Text.assemble(plain(change.email_before or "(none)"), ("  →  ", "dim"), plain(change.email_after or "(none)"))),
        ]))
    for index, step in enumerate(plan.steps):
        heading = step_summary(step, plan)
        parts.append(Text.assemble((f"{index + 1:>2} ", "bold"), heading, no_wrap=True, overflow="ellipsis"))
        parts.append(grid(step_details(step)))
    return Group(*parts, *left_out_view(plan))
