"""What every move wizard step shares: the step trail, the problem list, ``esc`` back,
and checking the move with the core before going on."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from textual import work
from textual.screen import Screen

from core.errors import TenantryError
from core.plan import Plan
from screens.move_flow import BACK, STEP_NAMES, MoveDraft, WizardStep, elsewhere, problems_for
from screens.slow_notice import SlowNotice
from tui.widgets import ProblemList, StepTrail

log = logging.getLogger("tenantry.console")

SLOW_CHECK = 0.25  # seconds before "checking…" is shown


class StepParts:
    """Mixin for a step screen (also one that is not a plain :class:`Screen`)."""

    STEP: WizardStep
    draft: MoveDraft

    def trail(self) -> StepTrail:
        return StepTrail(self.draft.title(), STEP_NAMES, self.STEP)

    def problem_list(self) -> ProblemList:
        return self.query_one("#problems", ProblemList)  # type: ignore[attr-defined]

    def show_plan(self, plan: Plan) -> list:
        """Show this step's problems (all of them) and note the other steps'."""
        mine = problems_for(plan, self.STEP)
        self.problem_list().show([x.message for x in mine], elsewhere(plan, self.STEP))
        return mine

    async def check(self, *, fresh: bool = False) -> Plan | None:
        """The core's preflight; a failure to check is one sentence in the problem list."""
        slow = SlowNotice(self, SLOW_CHECK, self._show_checking)  # type: ignore[arg-type]
        try:
            plan = await self.draft.check(fresh=fresh)
            if self.problem_list().has_class("-checking"):
                self.problem_list().show([])  # the caller shows what the check found
            return plan
        except TenantryError as error:
            self.problem_list().show([f"The move could not be checked: {error}"])
        except Exception as error:  # a defect below: one sentence here, the details in the log
            log.exception("preflight failed")
            self.problem_list().show([f"The move could not be checked ({type(error).__name__}); the details are in the log."])
        finally:
            slow.stop()
        return None

    async def advance(self, result: Any) -> None:
        """Check with the core; go on with ``result`` if nothing blocks this step, else
        show every reason (and stay)."""
        plan = await self.check()
        if plan is None:
            return
        if self.show_plan(plan):
            self.app.bell()  # type: ignore[attr-defined]
            return
        self.dismiss(result)  # type: ignore[attr-defined]

    def _show_checking(self) -> None:
        self.problem_list().show([], "Checking with the directory…")
        self.problem_list().add_class("-checking")


class MoveStepScreen(StepParts, Screen[Any]):
    """A wizard step: ``esc`` goes back (keeping what was entered), ``enter`` goes on once
    the core finds nothing blocking on this step."""

    def __init__(self, draft: MoveDraft, *, debounce: float = 0.15) -> None:
        super().__init__()
        self.draft = draft
        self.debounce = debounce

    def action_back(self) -> None:
        self.workers.cancel_group(self, "check")
        self.dismiss(BACK)

    def action_next(self) -> None:
        """``enter``: go on once the core finds nothing blocking here."""
        self.workers.cancel_group(self, "live")
        self.go_on()

    @work(exclusive=True, group="check", exit_on_error=False)
    async def go_on(self) -> None:
        await self.advance(True)

    @work(exclusive=True, group="live", exit_on_error=False)
    async def live_check(self, delay: float) -> None:
        """Flag problems while the admin edits (the newest edit cancels an older check)."""
        if delay:
            await asyncio.sleep(delay)
        plan = await self.check()
        if plan is not None:
            self.show_plan(plan)
