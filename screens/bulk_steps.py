"""The bulk move's steps before the run: the destination (the move wizard's own search),
the services — the plan there for each service whose plan the destination lacks, chosen
as on the move wizard's services step —, the users — each marked user's new UPN and email, and its problems, every row at once —
and the review of every row: the clean rows will run, the refused ones are listed with
their reasons. Nothing is written before the run."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any, Iterable

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from core import plan as p
from core.bulk import BulkPlan, BulkRow
from core.errors import TenantryError
from core.text import plain
from screens.bulk_draft import BulkDraft, problems_of
from screens.move_destination import DestinationStep
from screens.move_services import COLUMNS, PlanChoices, ServiceRow, ServicesTable
from screens.plan_view import grid
from screens.wizard.engine import Go, Place
from widgets import RowTable, cell, column_widths

log = logging.getLogger("tenantry.console")

_STEP_WORDS = {  # how the review counts a user's steps
    p.MODIFY: ("attribute change", "attribute changes"), p.MOVE: ("move", "moves"),
    p.ADD_MEMBER: ("join", "joins"), p.REMOVE_MEMBER: ("leave", "leaves"),
    p.CREATE_GROUP: ("new role group", "new role groups"), p.HTTP: ("service call", "service calls"),
}


class BulkDestinationStep(DestinationStep):
    """Where the marked users go: the move wizard's destination step, with the bulk draft.
    What blocks every row (rights, the users' own customer) shows here."""


class BulkScreen(Screen[Go]):
    """A bulk step after the destination: the trail, a banner, ``esc`` back."""

    def __init__(self, draft: BulkDraft, *, place: Place, debounce: float = 0.15) -> None:
        super().__init__()
        self.draft = draft
        self.place = place
        self.bulk: BulkPlan | None = None  # the preflight shown

    def trail(self):
        return self.place.trail(self.draft.title())

    def banner(self, text: Text) -> None:
        self.query_one("#bulk-banner", Static).update(text)

    @work(exclusive=True, group="check", exit_on_error=False)
    async def preflight(self, fresh: bool) -> None:
        """Every row checked by the core (read just now if ``fresh``), then :meth:`show`."""
        self.banner(Text("Checking every user with the directory…", style="italic"))
        try:
            blocking = await self.draft.check(fresh=fresh)
        except TenantryError as error:
            self.banner(Text(f"The users could not be checked: {plain(error)}", style="bold"))
            return
        except Exception as error:  # a defect below: one sentence here, the details in the log
            log.exception("bulk preflight failed")
            self.banner(Text(f"The users could not be checked ({type(error).__name__}); the details are in the log.", style="bold"))
            return
        if blocking.problems:  # rights or the destination changed since it was chosen
            self.banner(Text("\n").join([Text("The core refuses this move; esc goes back:", style="bold")]
                                        + [Text(f"✗ {plain(x.message)}") for x in blocking.problems]))
            return
        self.bulk = self.draft.bulk
        self.show(self.bulk)
        self.refresh_bindings()

    def show(self, bulk: BulkPlan) -> None:
        raise NotImplementedError

    def action_next(self) -> None:
        if self.bulk is not None and self.bulk.clean:
            self.dismiss(Go.NEXT)
            return
        self.app.bell()  # and why, in one sentence
        self.notify("No user can move: every row has a problem (listed)." if self.bulk is not None
                    else "The users are still being checked (or could not be): nothing can go on yet.", markup=False)

    def action_back(self) -> None:
        self.workers.cancel_group(self, "check")
        self.dismiss(Go.BACK)


class BulkServicesStep(PlanChoices, BulkScreen):
    """Each service of the marked users, on each plan they have now, with how many users:
    ``←``/``→`` chooses the plan there (the plan now is kept where the destination has
    it); services that cannot move or that the destination lacks show why. Shown only
    when a plan must be chosen. ``enter`` goes on to the rows, checked with these plans:
    a user still without a plan there is refused on its row."""

    AUTO_FOCUS = "#services"
    BINDINGS = [
        Binding("enter", "next", "Users", priority=True, id="bulk.users"),
        Binding("escape", "back", "Back", id="bulk.back"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.trail()
        yield Static(id="bulk-banner")
        yield ServicesTable(id="services", cursor_type="row", zebra_stripes=False)
        yield Static(Text("←→: the plan there · the plan now is kept where the destination has it", style="dim"), id="hint")
        yield Footer()

    def on_mount(self) -> None:
        counted = self.draft.service_rows()
        self.rows = [row for row, _ in counted]
        self.counts = [n for _, n in counted]
        columns = (COLUMNS[0], ("users", "Users"), *COLUMNS[1:])
        self.fill_table(columns, column_widths(self.app.size.width, (None, 5, 12, 14, 18), (1,)))
        table = self.query_one(ServicesTable)
        table.move_cursor(row=next((i for i, row in enumerate(self.rows) if self.draft.unchosen(row)), 0))
        self.chosen()

    def row_cells(self, row: ServiceRow) -> tuple[Text, ...]:
        name, *rest = row.cells(self.wanted(row))
        return (name, Text(str(self.counts[self.rows.index(row)]), justify="right"), *rest)

    def wanted(self, row: ServiceRow) -> str | None:
        return self.draft.wanted(row)

    def choose(self, row: ServiceRow, plan: str) -> None:
        self.draft.set_plan(row, plan)

    def chosen(self) -> None:
        where = plain(self.draft.destination.name if self.draft.destination else "")
        waiting = self.draft.without_plan()
        if waiting:
            text = Text.assemble((where, "bold"), " lacks the plan some users have now: choose the plan there. ",
                                 f"Left unchosen, {waiting} user{'s' if waiting != 1 else ''} will not move.")
        else:
            text = Text.assemble("Every service that moves has its plan at ", (where, "bold"), ". enter checks every user.")
        self.banner(text)

    def action_next(self) -> None:
        self.dismiss(Go.NEXT)


def _summary(draft: BulkDraft, bulk: BulkPlan) -> Text:
    where = plain(draft.destination.name if draft.destination else "")
    clean, total = len(bulk.clean), len(bulk.rows)
    if not clean:
        return Text(f"No user can move to {where}: every row has a problem (below).", style="bold")
    text = Text.assemble((f"{clean} of {total} users", "bold"), f" can move to {where}.")
    if bulk.refused:
        text.append(f" {len(bulk.refused)} will not: the reasons are below.")
    return text


class BulkRowsStep(BulkScreen):
    """One row per marked user: its new UPN and email, ✓ or ✗; every problem listed below.
    ``d`` moves users with mobile devices too ("With devices"), checking every row again."""

    AUTO_FOCUS = "#bulk-rows"
    BINDINGS = [
        Binding("enter", "next", "Review", priority=True, id="bulk.review"),
        Binding("escape", "back", "Back", id="bulk.back"),
        Binding("d", "devices", "With devices", show=False, id="bulk.with_devices"),
    ]

    def action_devices(self) -> None:
        self.draft.with_devices = not self.draft.with_devices
        self.preflight(fresh=False)

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.trail()
        yield Static(id="bulk-banner")
        yield RowTable(id="bulk-rows", cursor_type="row", zebra_stripes=False)
        with VerticalScroll(id="bulk-problems"):
            yield Static(id="bulk-problems-text")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#bulk-rows", DataTable)
        columns = (("ok", ""), ("who", "User"), ("upn", "New UPN"), ("email", "New email"))
        for (key, label), width in zip(columns, column_widths(self.app.size.width, (1, None, None, None), (10, 14, 14))):
            table.add_column(Text(label), width=width, key=key)
        self.preflight(fresh=self.draft.bulk is None)

    def show(self, bulk: BulkPlan) -> None:
        table = self.query_one("#bulk-rows", DataTable)
        with self.app.batch_update():
            table.clear()
            for row in bulk.rows:
                change = row.plan.users[0] if row.plan.users else None
                table.add_row(
                    Text("✓", style="green") if row.ok else Text("✗", style="bold red"),
                    self.draft.name(row.label),
                    cell(change.upn_after) if change and change.upn_after else Text("—", style="dim"),
                    cell(change.email_after) if change and change.email_after else Text("—", style="dim"),
                    key=row.label,
                )
            summary = _summary(self.draft, bulk)
            if self.draft.with_devices:
                summary.append(" With devices (d): UEM stops managing the users' devices.", style="italic")
            elif any(x.code == p.DEVICES for row in bulk.refused for x in row.plan.problems):
                summary.append(" d: move the users with devices too.", style="italic")
            self.banner(summary)
            views = [refused_view(self.draft, row) for row in bulk.refused]
            self.query_one("#bulk-problems").set_class(bool(views), "-shown")
            self.query_one("#bulk-problems-text", Static).update(Group(*views))


def indented(lines: Iterable[Text], indent: int = 4) -> Table:
    """Lines that wrap under themselves, ``indent`` cells in."""
    grid = Table.grid()
    grid.add_column(width=indent)
    grid.add_column(ratio=1, overflow="fold")
    for line in lines:
        grid.add_row("", line)
    return grid


def refused_view(draft: BulkDraft, row: BulkRow) -> Group:
    """``✗ <name>  <label>`` and each of its problems on lines of their own."""
    head = Text.assemble(("✗ ", "bold"), (draft.name(row.label).plain, "bold"), (f"  {plain(row.label)}", "dim"))
    return Group(head, indented(Text(message) for message in problems_of(row)))


def _steps(row: BulkRow) -> str:
    counts = Counter(step.action for step in row.plan.steps)
    parts = [f"{n} {_STEP_WORDS[a][n != 1]}" for a, n in counts.items() if a in _STEP_WORDS]
    return f"{len(row.plan.steps)}: " + ", ".join(parts)


class BulkReviewStep(BulkScreen):
    """Every row, read again just now: who moves (old → new UPN and email, its steps) and
    who will not (with the reasons). ``enter`` runs the clean rows."""

    AUTO_FOCUS = "#review"
    BINDINGS = [
        Binding("enter", "next", "Run the clean rows", priority=True, id="bulk.run"),
        Binding("escape", "back", "Back", id="bulk.back"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.trail()
        yield Static(id="bulk-banner")
        with VerticalScroll(id="review"):
            yield Static(id="review-plan")
        yield Footer()

    def on_mount(self) -> None:
        self.preflight(fresh=True)  # what runs is what is shown, read just now

    def show(self, bulk: BulkPlan) -> None:
        summary = _summary(self.draft, bulk)
        if bulk.clean:
            summary.append(f" At most {self.draft.concurrency} at once, each user all-or-nothing. Nothing has been written yet.")
        self.banner(summary)
        parts: list[Any] = []
        if bulk.clean:
            parts.append(Text(f"Will move ({len(bulk.clean)})", style="bold underline"))
        for row in bulk.clean:
            change = row.plan.users[0]
            parts += [
                Text.assemble(("✓ ", "green"), (self.draft.name(row.label).plain, "bold")),
                grid([
                    ("UPN", _change(change.upn_before, change.upn_after)),
                    ("Email", _change(change.email_before, change.email_after)),
                    ("Steps", Text(_steps(row))),
                ]),
            ]
        if bulk.refused:
            parts += [Text(""), Text(f"Will not move ({len(bulk.refused)})", style="bold underline")]
            parts += [refused_view(self.draft, row) for row in bulk.refused]
        self.query_one("#review-plan", Static).update(Group(*parts))


def _change(before: str | None, after: str | None) -> Text:
    return Text.assemble(plain(before or "(none)"), ("  →  ", "dim"), plain(after or "(none)"))
