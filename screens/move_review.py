"""Move wizard, step 4: the whole plan as the core made it — every attribute old → new,
every membership, every HTTP call — before anything is written. ``enter`` runs it."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Static

from screens.plan_view import plan_view
from screens.wizard.step import ReviewScreen
from widgets import ProblemList


class ReviewStep(ReviewScreen):
    AUTO_FOCUS = "#review"
    BINDINGS = [
        Binding("enter", "run", "Run the move", priority=True, id="move.run"),
        Binding("escape", "back", "Back", id="move.back"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.trail()
        yield Static(id="review-banner")
        with VerticalScroll(id="review"):
            yield Static(id="review-plan")
        yield ProblemList(id="problems")
        yield Footer()

    def on_mount(self) -> None:
        self._banner(Text("Making the plan…", style="italic"))
        self.make_plan()

    def _banner(self, text: Text) -> None:
        self.query_one("#review-banner", Static).update(text)

    @work(exclusive=True, group="check", exit_on_error=False)
    async def make_plan(self) -> None:
        plan = await self.check(fresh=True)  # what runs is what is shown, read just now
        if plan is None:
            self._banner(Text("The plan could not be made.", style="bold"))
            return
        self.plan = plan
        if plan.problems:
            self._banner(Text("The core refuses this move; nothing has been written:", style="bold"))
            self.problem_list().show(
                self.place.labelled(plan),
                "esc goes back to fix them.",
            )
        else:
            self._banner(Text.assemble(
                ("Nothing has been written yet. ", "bold"),
                f"enter runs these {len(plan.steps)} steps (all or nothing); esc goes back.",
            ))
            self.query_one("#review-plan", Static).update(plan_view(plan))
        self.refresh_bindings()

