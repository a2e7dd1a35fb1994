"""The copy wizard's screens: the new user's details, the password, the services to
copy, the review, the run (the move wizard's progress pane) and the result.

Every check is the core's preflight (:meth:`CopyDraft.check`); its problems appear on
the step they belong to. ``esc`` goes back keeping what was entered.
"""

from __future__ import annotations

import logging
from typing import Any

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Checkbox, Footer, Header, Input, Label, Static

from core.password import password_problems
from core.plan import Plan
from core.text import plain
from screens.copy_draft import CopyDraft
from screens.move_result import OPEN
from screens.plan_view import grid, left_out_view, step_details, step_summary
from screens.wizard.engine import Place
from screens.wizard.run import Outcome
from widgets.replication import ReplicationNote
from screens.wizard.step import ReviewScreen, StepScreen
from widgets import Choice, PasswordFields, ProblemList, StepTrail, Tick

log = logging.getLogger("tenantry.console")

BACK_TO_LIST = "list"

CSS = """
.cfield { height: 1; }
.cfield .field-label { width: 13; text-style: bold; }
.cfield Input { width: 1fr; }
#copy-form { height: auto; padding: 1 1 0 1; }
#copy-at { width: 1; }
#copy-domain { max-width: 36; }
#generated { height: auto; padding: 0 1; }
#generated { text-style: bold; }
#copy-services { height: auto; padding: 1 1 0 1; }
.service-row { height: 1; }
.service-row Checkbox { width: 34; }
"""


class CopyStepScreen(StepScreen):
    """A copy step: its checks include the password typed, from the password step on."""

    CSS = CSS
    WITH_PASSWORD = True

    def preflight(self, *, fresh: bool, with_password: bool | None = None) -> Any:
        return self.draft.check(fresh=fresh, with_password=self.WITH_PASSWORD if with_password is None else with_password)


# -- 1. the new user's details ------------------------------------------------------------

LABELS = {
    "first": "First name", "last": "Last name", "display_name": "Display name",
    "username": "Username", "upn_prefix": "UPN", "email": "Email",
}


class DetailsStep(CopyStepScreen):
    WITH_PASSWORD = False
    AUTO_FOCUS = "#first"
    BINDINGS = [
        Binding("enter", "next", "Next", priority=True, id="copy.next"),
        Binding("escape", "back", "Back", id="copy.back"),
    ]

    def compose(self) -> ComposeResult:
        draft = self.draft
        yield Header()
        yield self.trail()
        with Vertical(id="copy-form"):
            for name, label in LABELS.items():
                with Horizontal(classes="cfield"):
                    yield Label(label, classes="field-label")
                    yield Input(getattr(draft, name), id=name.replace("_", "-"), compact=True)
                    if name == "upn_prefix":
                        yield Static("@", id="copy-at")
                        yield Choice(draft.customer.domains or (draft.upn_domain,), draft.upn_domain, id="copy-domain")
        yield Static(Text("Proposed from the customer's formats until edited · tab: next field · "
                          "nothing is written yet", style="dim"), id="hint")
        yield ProblemList(id="problems")
        yield Footer()

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = self.app.animation_level != "none"
        plan = self.draft.checked
        if plan is not None:
            self.show_plan(plan)

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        name = (event.input.id or "").replace("-", "_")
        if name not in LABELS or getattr(self.draft, name) == event.value:
            return
        self.draft.set(name, event.value)
        self._refresh_fields()
        if self.draft.first.strip() and self.draft.last.strip():
            self.live_check(self.debounce)

    @on(Choice.Changed, "#copy-domain")
    def _domain(self, event: Choice.Changed) -> None:
        if event.value != self.draft.upn_domain:
            self.draft.set_domain(event.value)
            self._refresh_fields()
            self.live_check(self.debounce)

    def _refresh_fields(self) -> None:
        """Show the proposals the core's formats make from what is typed."""
        for name in LABELS:
            field = self.query_one("#" + name.replace("_", "-"), Input)
            value = getattr(self.draft, name)
            if field.value != value and not field.has_focus:
                with field.prevent(Input.Changed):
                    field.value = value
        self.query_one("#trail", StepTrail).retitle(self.draft.title())


# -- 2. the password ---------------------------------------------------------------------

class PasswordStep(CopyStepScreen):
    AUTO_FOCUS = "#password"
    BINDINGS = [
        Binding("enter", "next", "Next", priority=True, id="copy.next"),
        Binding("ctrl+g", "generate", "Generate", priority=True, id="copy.generate"),
        Binding("escape", "back", "Back", id="copy.back"),
    ]

    def compose(self) -> ComposeResult:
        draft = self.draft
        yield Header()
        yield self.trail()
        with Vertical(id="copy-form"):
            yield PasswordFields(
                draft.session.directory.password_policy,
                lambda password, policy: password_problems(password, policy, sam=draft.username, display_name=draft.display_name,
                                                           first=draft.first, last=draft.last),
                value=draft.password, hint="Type a password (twice), or ctrl+g to generate one.",
            )
        yield Static(id="generated")
        yield ProblemList(id="problems")
        yield Footer()

    @on(PasswordFields.Changed)
    def _changed(self, event: PasswordFields.Changed) -> None:
        self.draft.password = event.value
        self.query_one("#generated", Static).update("")

    def action_next(self) -> None:
        fields = self.query_one(PasswordFields)
        if not fields.same_twice:
            self.problem_list().show(["The two passwords differ."])
            self.app.bell()
            return
        self.draft.password = fields.value
        super().action_next()

    def action_generate(self) -> None:
        self.generate()

    @work(exclusive=True, group="policy", exit_on_error=False)
    async def generate(self) -> None:
        plan = await self.check(with_password=False)  # everything else must hold first
        if plan is None or not plan.ok:
            if plan is not None:
                self.show_plan(plan)
            self.app.bell()
            return
        password = await self.draft.session.copier().generate_password(plan)
        self.query_one(PasswordFields).set_value(password)
        self.draft.password = password
        self.problem_list().show([])  # what was wrong with the typed one no longer is
        self.query_one("#generated", Static).update(Text.assemble(
            ("Generated (shown once, note it now): ", "bold"), (password, "bold reverse")))

    def on_screen_suspend(self) -> None:
        self.query_one("#generated", Static).update("")


# -- 3. the services to copy ---------------------------------------------------------------

class CopyServicesStep(CopyStepScreen):
    BINDINGS = [
        Binding("enter", "next", "Next", priority=True, id="copy.next"),
        Binding("escape", "back", "Back", id="copy.back"),
    ]

    def compose(self) -> ComposeResult:
        draft = self.draft
        adapters = draft.session.adapters
        yield Header()
        yield self.trail()
        with Vertical(id="copy-services"):
            if not draft.template.services:
                yield Static(Text("The template has no services: only the account and its groups are copied.", style="dim"))
            for index, key in enumerate(draft.template.services):
                name = adapters[key].service.display_name if key in adapters else key
                with Horizontal(classes="service-row"):
                    yield Tick(plain(name), key in draft.services, id=f"service-{index}", compact=True)
                    offered = [pl.name for pl in draft.customer.plans if pl.service == key]
                    if offered:
                        yield Choice(offered, draft.plans.get(key), id=f"plan-{index}")
        yield Static(Text("space: copy or not · ←→: plan · tab: next · the template's choices by default", style="dim"), id="hint")
        yield ProblemList(id="problems")
        yield Footer()

    def on_mount(self) -> None:
        checkboxes = self.query(Checkbox)
        if checkboxes:
            checkboxes.first().focus()
        plan = self.draft.checked
        if plan is not None:
            self.show_plan(plan)

    @on(Checkbox.Changed)
    def _toggled(self, event: Checkbox.Changed) -> None:
        key = self.draft.template.services[int((event.checkbox.id or "-0").rsplit("-", 1)[1])]
        services = [k for k in self.draft.template.services if k != key and k in self.draft.services]
        if event.value:
            services.append(key)
        self.draft.services = [k for k in self.draft.template.services if k in services]
        if "email" not in self.draft.edited:
            self.draft.propose()
        self.live_check(self.debounce)

    @on(Choice.Changed)
    def _plan(self, event: Choice.Changed) -> None:
        key = self.draft.template.services[int((event.choice.id or "-0").rsplit("-", 1)[1])]
        self.draft.plans[key] = event.value
        self.live_check(self.debounce)


# -- 4. the review -------------------------------------------------------------------------

def copy_plan_view(draft: CopyDraft, plan: Plan) -> Group:
    change = plan.users[0]
    parts: list[Any] = [grid([
        ("Template", Text(plain(draft.template.upn or draft.template.sam))),
        ("New UPN", Text(plain(change.upn_after))),
        ("New email", Text(plain(change.email_after or "(none)"))),
        ("Services", Text(", ".join(plain(k) for k in draft.services) or "(none)")),
    ])]
    for index, step in enumerate(plan.steps):
        parts.append(Text.assemble((f"{index + 1:>2} ", "bold"), step_summary(step, plan), no_wrap=True, overflow="ellipsis"))
        parts.append(grid(step_details(step)))
    return Group(*parts, *left_out_view(plan))


class CopyReviewStep(CopyStepScreen, ReviewScreen):
    AUTO_FOCUS = "#review"
    BINDINGS = [
        Binding("enter", "run", "Run the copy", priority=True, id="copy.run"),
        Binding("escape", "back", "Back", id="copy.back"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.trail()
        yield Static(Text("Making the plan…", style="italic"), id="review-banner")
        with VerticalScroll(id="review"):
            yield Static(id="review-plan")
        yield ProblemList(id="problems")
        yield Footer()

    def on_mount(self) -> None:
        self.make_plan()

    @work(exclusive=True, group="check", exit_on_error=False)
    async def make_plan(self) -> None:
        plan = await self.check(with_password=True, fresh=True)
        banner = self.query_one("#review-banner", Static)
        if plan is None:
            banner.update(Text("The plan could not be made.", style="bold"))
            return
        self.plan = plan
        if plan.problems:
            banner.update(Text("The core refuses this copy; nothing has been written:", style="bold"))
            self.problem_list().show(
                self.place.labelled(plan),
                "esc goes back to fix them.",
            )
        else:
            banner.update(Text.assemble(("Nothing has been written yet. ", "bold"),
                                        f"enter runs these {len(plan.steps)} steps (all or nothing); esc goes back."))
            self.query_one("#review-plan", Static).update(copy_plan_view(self.draft, plan))
        self.refresh_bindings()



# -- 5. the result ---------------------------------------------------------------------------

HEADLINES = {
    "done": "✓ {name} was created in {customer}, copied from {who}.",
    "rolled_back": "✗ The copy of {who} failed and was rolled back: no account was created.",
    "cancelled": "✗ The copy of {who} was cancelled and rolled back: no account was created.",
    "needs_attention": "✗ The copy of {who} failed and could not be fully rolled back.",
    "refused": "✗ The copy of {who} was refused: nothing was written.",
}


def copy_result_text(draft: CopyDraft, outcome: Outcome) -> Text:
    headline = HEADLINES.get(outcome.ending, "The copy ended: {status}.")
    name = plain(draft.display_name or f"{draft.first} {draft.last}")
    lines = [Text(headline.format(name=name, customer=plain(draft.customer.name), who=draft.who,
                                  status=plain(outcome.status)), style="bold")]
    change = outcome.change
    if outcome.status == "done" and change is not None:
        lines += [Text(""),
                  Text.assemble(("UPN    ", "bold"), plain(change.upn_after or "(none)")),
                  Text.assemble(("Email  ", "bold"), plain(change.email_after or "(none)")),
                  Text.assemble(("DN     ", "bold"), plain(change.dn_after))]
    elif outcome.message:
        lines += [Text(""), Text.assemble(("Reason  ", "bold"), plain(outcome.message, single_line=False))]
    if outcome.job:
        lines += [Text(""), Text.assemble(("Job    ", "bold"), plain(outcome.job), ("  (in the journal and the audit log)", "dim"))]
    return Text("\n").join(lines)


class CopyResultStep(Screen[str | None]):
    AUTO_FOCUS = "#result"
    BINDINGS = [
        Binding("enter", "open", "Open user", priority=True, id="copy.open"),  # short: Quit and Help fit 80 columns
        Binding("escape", "close", "Back", id="copy.done"),
    ]

    def __init__(self, draft: CopyDraft, place: Place, outcome: Outcome) -> None:
        super().__init__()
        self.draft = draft
        self.place = place
        self.outcome = outcome

    def compose(self) -> ComposeResult:
        yield Header()
        yield self.place.trail(self.draft.title())
        with VerticalScroll(id="result"):
            yield Static(copy_result_text(self.draft, self.outcome), id="result-text")
            if self.outcome.status == "done" and self.outcome.job:
                yield ReplicationNote(self.draft.session, self.outcome.job)
        yield Footer()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "open":
            return self.outcome.status == "done"
        return True

    def action_open(self) -> None:
        self.dismiss(OPEN)

    def action_close(self) -> None:
        self.dismiss(BACK_TO_LIST)
