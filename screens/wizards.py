"""The console's wizards, declared: each step's name, screen, the problem topics it shows
and when it is skipped; then how the job runs and how its result shows. The engine
(:mod:`screens.wizard.engine`) walks them."""

from __future__ import annotations

from core import plan as p
from core.attempt import Attempt
from screens.bulk_draft import BulkDraft
from screens.bulk_run import BulkResultStep, BulkRunStep
from screens.bulk_steps import (
    BulkDestinationStep,
    BulkReviewStep,
    BulkRowsStep,
    BulkServicesStep,
)
from screens.copy_draft import CopyDraft
from screens.copy_steps import (
    CopyResultStep,
    CopyReviewStep,
    CopyServicesStep,
    DetailsStep,
    PasswordStep,
)
from screens.move_destination import DestinationStep
from screens.move_draft import MoveDraft
from screens.move_result import ResultStep
from screens.move_review import ReviewStep
from screens.move_services import ServicesStep
from screens.move_user import UserMappingStep
from screens.plan_view import step_summary
from screens.wizard.engine import ExecutorFactory, Place, Wizard, WizardStep
from screens.wizard.run import RunStep


def topics(*names: str) -> frozenset[str]:
    return frozenset(names)


def _run_move(draft: MoveDraft, place: Place, executor: ExecutorFactory) -> RunStep:
    plan = draft.checked
    assert plan is not None and plan.ok
    return RunStep(draft, place=place, plan=plan, job=Attempt(draft.session, plan, request=draft.request()).run, executor=executor,
                   summary=step_summary, destination=draft.destination)


def _run_copy(draft: CopyDraft, place: Place, executor: ExecutorFactory) -> RunStep:
    plan = draft.checked
    assert plan is not None and plan.ok
    password, draft.password = draft.password, ""  # given to this job only, then not kept
    return RunStep(draft, place=place, plan=plan, job=Attempt(draft.session, plan, password, request=draft.request()).run, executor=executor,
                   summary=step_summary, destination=draft.customer)


def _run_bulk(draft: BulkDraft, place: Place, executor: ExecutorFactory) -> BulkRunStep:
    bulk = draft.bulk
    assert bulk is not None and bulk.clean
    return BulkRunStep(draft, place, bulk, executor)


MOVE: Wizard[MoveDraft] = Wizard(
    "move",
    (
        WizardStep("Destination", DestinationStep, topics(p.RIGHTS, p.DESTINATION, p.SOURCE)),
        WizardStep("User mapping", UserMappingStep, topics(p.IDENTITY)),
        WizardStep("Services", ServicesStep, topics(p.SERVICES)),
        WizardStep("Review", ReviewStep),
    ),
    run=_run_move,
    result=ResultStep,
)

COPY: Wizard[CopyDraft] = Wizard(
    "copy",
    (
        WizardStep("New user", DetailsStep, topics(p.RIGHTS, p.SOURCE, p.IDENTITY)),
        WizardStep("Password", PasswordStep, topics(p.PASSWORD)),
        WizardStep("Services", CopyServicesStep, topics(p.SERVICES)),
        WizardStep("Review", CopyReviewStep),
    ),
    run=_run_copy,
    result=CopyResultStep,
)

BULK_MOVE: Wizard[BulkDraft] = Wizard(
    "bulk move",
    (
        WizardStep("Destination", BulkDestinationStep, topics(p.RIGHTS, p.DESTINATION)),
        WizardStep("Services", BulkServicesStep, skip=lambda draft: not draft.needs_plans),  # nothing to choose
        WizardStep("Users", BulkRowsStep),
        WizardStep("Review", BulkReviewStep),
    ),
    run=_run_bulk,
    result=BulkResultStep,
)
