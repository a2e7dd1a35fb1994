"""Move wizard, step 3: each of the user's services → the destination's same service,
and its plan there (``←``/``→`` chooses when the destination has no plan of the same
name). Services that cannot move, or that the destination lacks, block with the reason.
A user with mobile devices (BlackBerry UEM) is refused until the admin ticks "with
devices" (``d``), which shows once preflight has found devices.

The rows and the choosing are shared with the bulk move's services step
(:class:`ServiceRow`, :class:`PlanChoices`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Checkbox, Footer, Header, Static

from core.plan import DEVICES
from core.text import plain
from screens.move_draft import MoveDraft
from screens.wizard.step import StepScreen
from widgets import ProblemList, RowTable, cell, column_widths

if TYPE_CHECKING:
    from core.model import Customer, User
    from core.session import Session

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

    @property
    def choosable(self) -> bool:
        """Whether a plan there can be chosen: the service moves, and there are plans."""
        return bool(self.offered) and self.movable and self.at_destination

    def chosen(self, wanted: str | None) -> str | None:
        """The plan there: ``wanted`` (the admin's choice), else the plan now, if offered."""
        wanted = wanted or self.current
        return wanted if wanted in self.offered else None

    def status(self, wanted: str | None) -> Text:
        if not self.movable:
            return Text("✗ cannot be moved", style="bold")
        if not self.at_destination:
            return Text("✗ missing there", style="bold")
        if self.offered and self.chosen(wanted) is None:
            return Text("✗ choose a plan ←→", style="bold")
        if self.offered and self.chosen(wanted) != self.current:
            return Text("moves, plan changes")
        return Text("moves")

    def cells(self, wanted: str | None) -> tuple[Text, Text, Text, Text]:
        chosen = self.chosen(wanted)
        if not self.offered:
            after = Text("—", style="dim")
        elif len(self.offered) == 1:
            after = cell(chosen or "(none)")
        else:
            after = Text.assemble(("‹ ", "dim"), plain(chosen or "choose"), (" ›", "dim"), no_wrap=True, overflow="ellipsis")
        return cell(self.name), cell(self.current or "—"), after, self.status(wanted)

    def cycled(self, wanted: str | None, delta: int) -> str:
        """The plan ``delta`` places from the one chosen now (the first, or last, if none is)."""
        chosen = self.chosen(wanted)
        index = self.offered.index(chosen) + delta if chosen in self.offered else (0 if delta > 0 else -1)
        return self.offered[index % len(self.offered)]


def service_row(session: Session, user: User, destination: Customer, key: str) -> ServiceRow:
    """What the configuration and ``destination`` say about ``user``'s service ``key``."""
    adapter = session.adapters.get(key)
    current = adapter.user_plan(user) if adapter else None
    return ServiceRow(
        key=key,
        name=adapter.service.display_name if adapter else key,
        movable=bool(adapter and adapter.movable),
        at_destination=bool(adapter and adapter.customer_has(destination)),
        current=current.name if current else None,
        offered=tuple(pl.name for pl in destination.plans if pl.service == key),
    )


def service_rows(draft: MoveDraft) -> list[ServiceRow]:
    """Each of the user's services."""
    assert draft.destination is not None
    return [service_row(draft.session, draft.user, draft.destination, key) for key in draft.user.services]


class ServicesTable(RowTable):
    BINDINGS = [
        Binding("right", "plan(1)", "Plan", key_display="←→", id="move.plan"),
        Binding("left", "plan(-1)", "Previous plan", show=False, id="move.plan_previous"),
    ]

    def action_plan(self, delta: int) -> None:
        screen = self.screen
        if isinstance(screen, PlanChoices):
            screen.cycle_plan(delta)


class PlanChoices:
    """Mixin for a screen whose :class:`ServicesTable` lists :attr:`rows`, one table row
    each (keyed by its index): ``←``/``→`` changes the highlighted row's plan there."""

    rows: list[ServiceRow]

    def wanted(self, row: ServiceRow) -> str | None:
        """The plan the admin chose for ``row`` (``None``: none yet)."""
        raise NotImplementedError

    def choose(self, row: ServiceRow, plan: str) -> None:
        raise NotImplementedError

    def row_cells(self, row: ServiceRow) -> tuple[Text, ...]:
        return row.cells(self.wanted(row))

    def fill_table(self, columns: tuple[tuple[str, str], ...], widths: list[int]) -> None:
        table = self.query_one(ServicesTable)  # type: ignore[attr-defined]
        for (key, label), width in zip(columns, widths):
            table.add_column(Text(label), width=width, key=key)
        for index, row in enumerate(self.rows):
            table.add_row(*self.row_cells(row), key=str(index))
        if not self.rows:
            table.display = False

    def cycle_plan(self, delta: int) -> None:
        table = self.query_one(ServicesTable)  # type: ignore[attr-defined]
        if not self.rows or table.cursor_row < 0:
            return
        row = self.rows[table.cursor_row]
        if not row.choosable:
            self.app.bell()  # type: ignore[attr-defined]
            return
        self.choose(row, row.cycled(self.wanted(row), delta))
        for column, value in zip(table.columns, self.row_cells(row)):
            table.set_cell(str(table.cursor_row), column, value)
        self.chosen()

    def chosen(self) -> None:
        """A plan was just chosen."""


class ServicesStep(PlanChoices, StepScreen):
    AUTO_FOCUS = "#services"
    BINDINGS = [
        Binding("enter", "next", "Next", priority=True, id="move.next"),
        Binding("escape", "back", "Back", id="move.back"),
        Binding("d", "devices", "With devices", show=False, id="move.with_devices"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.trail()
        yield ServicesTable(id="services", cursor_type="row", zebra_stripes=False)
        devices = Checkbox("With devices (d): UEM stops managing the user's devices; they are activated again there",
                           self.draft.with_devices, id="with-devices")
        devices.display = self.draft.with_devices
        yield devices
        yield Static(id="roles-note")
        yield ProblemList(id="problems")
        yield Footer()

    def on_mount(self) -> None:
        self.rows = service_rows(self.draft)
        self.fill_table(COLUMNS, column_widths(self.app.size.width, (None, 12, 18, 20), (1,)))
        self._show_roles()
        plan = self.draft.checked
        if plan is not None:
            self.show_plan(plan)
        self.live_check(0)

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

    def show_plan(self, plan) -> list:
        mine = super().show_plan(plan)
        if any(x.code == DEVICES for x in plan.problems):
            self.query_one("#with-devices", Checkbox).display = True
        return mine

    # -- devices ---------------------------------------------------------------------
    def action_devices(self) -> None:
        box = self.query_one("#with-devices", Checkbox)
        if box.display:
            box.value = not box.value

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        if event.checkbox.id == "with-devices" and event.value != self.draft.with_devices:
            self.draft.with_devices = event.value
            self.live_check(0)

    # -- choosing plans ------------------------------------------------------------
    def wanted(self, row: ServiceRow) -> str | None:
        return self.draft.plans.get(row.key)

    def choose(self, row: ServiceRow, plan: str) -> None:
        self.draft.set_plan(row.key, plan)

    def chosen(self) -> None:
        self.live_check(self.debounce)
