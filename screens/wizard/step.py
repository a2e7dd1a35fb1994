"""What every wizard step screen shares: the step trail, the problem list, ``esc`` back,
and checking the draft with the core before going on."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from textual import work
from textual.screen import Screen

from core.errors import TenantryError
from core.plan import Plan, Problem
from screens.slow_notice import SlowNotice
from screens.wizard.engine import Draft, Go, Place
from widgets import ProblemList, StepTrail

log = logging.getLogger("tenantry.console")

SLOW_CHECK = 0.25  # seconds before "checking…" is shown


class StepParts:
    """Mixin for a step screen (also one that is not a plain :class:`Screen`)."""

    draft: Any
    place: Place

    def trail(self) -> StepTrail:
        return self.place.trail(self.draft.title())

    def problem_list(self) -> ProblemList:
        return self.query_one("#problems", ProblemList)  # type: ignore[attr-defined]

    def show_plan(self, plan: Plan) -> list[Problem]:
        """Show this step's problems (all of them) and note the other steps'."""
        mine = self.place.mine(plan)
        self.problem_list().show([x.message for x in mine], self.place.elsewhere(plan))
        return mine

    def preflight(self, *, fresh: bool, **options: Any) -> Any:
        """The core's check of the draft (a step may ask more of it, with ``options``)."""
        return self.draft.check(fresh=fresh, **options)

    async def check(self, *, fresh: bool = False, **options: Any) -> Plan | None:
        """The core's preflight; a failure to check is one sentence in the problem list."""
        what = self.place.wizard.what
        slow = SlowNotice(self, SLOW_CHECK, self._show_checking)  # type: ignore[arg-type]
        try:
            plan = await self.preflight(fresh=fresh, **options)
            if self.problem_list().has_class("-checking"):
                self.problem_list().show([])  # the caller shows what the check found
            return plan
        except TenantryError as error:
            self.problem_list().show([f"The {what} could not be checked: {error}"])
        except Exception as error:  # a defect below: one sentence here, the details in the log
            log.exception("preflight failed")
            self.problem_list().show([f"The {what} could not be checked ({type(error).__name__}); the details are in the log."])
        finally:
            slow.stop()
        return None

    async def advance(self) -> None:
        """Check with the core; go on if nothing blocks this step, else show every reason (and stay)."""
        plan = await self.check()
        if plan is None:
            return
        if self.show_plan(plan):
            self.app.bell()  # type: ignore[attr-defined]
            return
        self.dismiss(Go.NEXT)  # type: ignore[attr-defined]

    def _show_checking(self) -> None:
        self.problem_list().show([], "Checking with the directory…")
        self.problem_list().add_class("-checking")


class StepScreen(StepParts, Screen[Go]):
    """A wizard step: ``esc`` goes back (keeping what was entered), ``enter`` goes on once
    the core finds nothing blocking on this step."""

    def __init__(self, draft: Draft, *, place: Place, debounce: float = 0.15) -> None:
        super().__init__()
        self.draft = draft
        self.place = place
        self.debounce = debounce

    def action_back(self) -> None:
        self.workers.cancel_group(self, "check")
        self.workers.cancel_group(self, "live")
        self.dismiss(Go.BACK)

    def action_next(self) -> None:
        """``enter``: go on once the core finds nothing blocking here."""
        self.workers.cancel_group(self, "live")
        self.go_on()

    @work(exclusive=True, group="check", exit_on_error=False)
    async def go_on(self) -> None:
        await self.advance()

    @work(exclusive=True, group="live", exit_on_error=False)
    async def live_check(self, delay: float) -> None:
        """Flag problems while the admin edits (the newest edit cancels an older check)."""
        if delay:
            await asyncio.sleep(delay)
        plan = await self.check()
        if plan is not None:
            self.show_plan(plan)


class ReviewScreen(StepScreen):
    """The review: ``enter`` runs the plan it shows once the core made it without problems;
    before that, or when the core refuses, ``enter`` says why instead of doing nothing."""

    plan: Plan | None = None  # the core's plan, once made

    def action_run(self) -> None:
        if self.plan is not None and self.plan.ok:
            self.dismiss(Go.NEXT)
            return
        self.app.bell()
        what = self.place.wizard.what
        if self.plan is None:
            self.notify(f"The {what} is still being checked (or could not be): nothing can run yet.", markup=False)
        else:
            self.notify(f"The core refuses this {what} for the reasons listed; esc goes back to fix them.", markup=False)
