"""Move wizard, step 3: each of the user's services → the destination's same service,
and its plan there (``←``/``→`` chooses when the destination has no plan of the same
name). Services that cannot move, or that the destination lacks, block with the reason."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Static

from core.text import plain
from screens.move_flow import MoveDraft, WizardStep
from screens.move_step import MoveStepScreen
from tui.widgets import ProblemList, cell, column_widths

# (key, label); the service's name gets what the plans and the status leave
COLUMNS = (("service", "Service"), ("now", "Plan now"), ("after", "Plan there"), ("status", "Status"))


@dataclass(frozen=True)
class ServiceRow:
    key: str
    name: str
    movable: bool
    at_destination: bool
    current: str | None  # the user's plan now
    offered: tuple[str, ...]  # the destination's plans of this service

    def chosen(self, draft: MoveDraft) -> str | None:
        wanted = draft.plans.get(self.key) or self.current
        return wanted if wanted in self.offered else None

    def status(self, draft: MoveDraft) -> Text:
        if not self.movable:
            return Text("✗ cannot be moved", style="bold")
        if not self.at_destination:
            return Text("✗ missing there", style="bold")
        if self.offered and self.chosen(draft) is None:
            return Text("✗ choose a plan ←→", style="bold")
        if self.offered and self.chosen(draft) != self.current:
            return Text("moves, plan changes")
        return Text("moves")


def service_rows(draft: MoveDraft) -> list[ServiceRow]:
    """What the configuration and the destination say about each of the user's services."""
    destination = draft.destination
    assert destination is not None
    rows = []
    for key in draft.user.services:
        adapter = draft.session.adapters.get(key)
        current = adapter.user_plan(draft.user) if adapter else None
        rows.append(ServiceRow(
            key=key,
            name=adapter.service.display_name if adapter else key,
            movable=bool(adapter and adapter.movable),
            at_destination=bool(adapter and adapter.customer_has(destination)),
            current=current.name if current else None,
            offered=tuple(pl.name for pl in destination.plans if pl.service == key),
        ))
    return rows


class ServicesTable(DataTable):
    BINDINGS = [
        Binding("right", "plan(1)", "Plan", key_display="←→", id="move.plan"),
        Binding("left", "plan(-1)", "Previous plan", show=False, id="move.plan_previous"),
    ]

    def action_plan(self, delta: int) -> None:
        screen = self.screen
        if isinstance(screen, ServicesStep):
            screen.cycle_plan(delta)


class ServicesStep(MoveStepScreen):
    STEP = WizardStep.SERVICES
    AUTO_FOCUS = "#services"
    BINDINGS = [
        Binding("enter", "next", "Next", priority=True, id="move.next"),
        Binding("escape", "back", "Back", id="move.back"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.trail()
        yield ServicesTable(id="services", cursor_type="row", zebra_stripes=False)
        yield Static(id="roles-note")
        yield ProblemList(id="problems")
        yield Footer()

    def on_mount(self) -> None:
        self.rows = service_rows(self.draft)
        table = self.query_one(ServicesTable)
        widths = column_widths(self.app.size.width, (None, 12, 18, 20), (1,))
        for (key, label), width in zip(COLUMNS, widths):
            table.add_column(Text(label), width=width, key=key)
        for row in self.rows:
            table.add_row(*self._cells(row), key=row.key)
        if not self.rows:
            table.display = False
        self._show_roles()
        plan = self.draft.checked
        if plan is not None:
            self.show_plan(plan)
        self.live_check(0)

    def _cells(self, row: ServiceRow) -> tuple[Text, Text, Text, Text]:
        chosen = row.chosen(self.draft)
        if not row.offered:
            after = Text("—", style="dim")
        elif len(row.offered) == 1:
            after = cell(chosen or "(none)")
        else:
            after = Text.assemble(("‹ ", "dim"), plain(chosen or "choose"), (" ›", "dim"), no_wrap=True, overflow="ellipsis")
        return cell(row.name), cell(row.current or "—"), after, row.status(self.draft)

    def _show_roles(self) -> None:
        draft, note = self.draft, Text()
        if not self.rows:
            note.append("The user has no services: the account, its roles and its groups move.\n", style="italic")
        roles = draft.user.roles
        if roles:
            present = {r.casefold() for r in draft.destination.roles} if draft.destination else set()
            note.append("Roles carried over: ")
            for index, role in enumerate(roles):
                note.append(", " if index else "")
                note.append(plain(role))
                if role.casefold() not in present:
                    note.append(" (created there)", style="dim")
        else:
            note.append("No security roles to carry over.", style="dim")
        self.query_one("#roles-note", Static).update(note)

    # -- choosing plans ------------------------------------------------------------
    def cycle_plan(self, delta: int) -> None:
        table = self.query_one(ServicesTable)
        if not self.rows or table.cursor_row < 0:
            return
        row = self.rows[table.cursor_row]
        if len(row.offered) < 1 or not (row.movable and row.at_destination):
            self.app.bell()
            return
        chosen = row.chosen(self.draft)
        index = row.offered.index(chosen) + delta if chosen in row.offered else (0 if delta > 0 else -1)
        self.draft.set_plan(row.key, row.offered[index % len(row.offered)])
        for key, value in zip((k for k, _ in COLUMNS), self._cells(row)):
            table.update_cell(row.key, key, value)
        self.live_check(self.debounce)
