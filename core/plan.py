"""Plans: what a job will change, step by step, decided before anything is written.

A :class:`Step` is plain data (JSON-able) so that the journal can hold it and a
crashed job can be resumed or rolled back by another process. Each step's undo is
derived from the step itself (see ``core/execute.py``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Step actions
MODIFY = "modify"  # target: DN; before/after: {attribute: [values]} (compare-and-swap)
MOVE = "move"  # target: DN before; after: DN after
ADD_MEMBER = "add_member"  # target: group DN; after: member DN
REMOVE_MEMBER = "remove_member"  # target: group DN; before: member DN
CREATE_GROUP = "create_group"  # target: group DN; after: {"sam": …, "description": …}
HTTP = "http"  # target: service key; before/after: the service's view; request/undo in spec
ADD_USER = "add_user"  # target: the new user's DN; after: {attribute: [values]} (created disabled); undo: delete it
SET_PASSWORD = "set_password"  # target: DN; no data at all: the password is given to the executor in memory;
#                                 no undo of its own (the user's deletion undoes it)


@dataclass(frozen=True)
class Problem:
    """One reason a job cannot run, in one sentence.

    ``topic`` says what the problem is about (:data:`TOPICS`), so a console can show it
    where that is entered without reading the message; left empty, the code decides
    (:data:`TOPIC_OF`), and a service adapter's own codes are about ``services``."""

    code: str
    message: str
    user: str | None = None
    topic: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if not self.topic:
            object.__setattr__(self, "topic", frozenset({TOPIC_OF.get(self.code, SERVICES)}))

    def to_json(self) -> dict[str, Any]:
        out = {"code": self.code, "message": self.message}
        if self.user:
            out["user"] = self.user
        return out


# Problem codes (PRODUCT §2's six refusals, and a few of the machinery's own)
NOT_ALLOWED = "not_allowed"
UNMOVABLE_SERVICE = "unmovable_service"
SERVICE_MISSING = "service_missing"
COLLISION = "collision"
FOREIGN_DOMAIN = "foreign_domain"
SAME_CUSTOMER = "same_customer"
CHANGED = "changed"
INVALID_VALUE = "invalid_value"
PLAN_MISSING = "plan_missing"
DEVICES = "devices"  # the user has devices a service cannot take along unless the operator opts in
WEAK_PASSWORD = "weak_password"  # the new user's password breaks the domain's policy
TENANT = "tenant"  # a customer missing from the tenant map, or claiming another tenant's code or domain

# What a problem is about (Problem.topic): where a console shows it
RIGHTS = "rights"  # the operator's rights
DESTINATION = "destination"  # where the user goes (a move's destination customer)
SOURCE = "source"  # the user as it was read (changed since)
IDENTITY = "identity"  # the mapped or new names, addresses and username
SERVICES = "services"  # services and their plans
PASSWORD = "password"  # the new user's password
TOPICS = (RIGHTS, DESTINATION, SOURCE, IDENTITY, SERVICES, PASSWORD)

TOPIC_OF = {
    NOT_ALLOWED: RIGHTS,
    TENANT: RIGHTS,  # whether Tenantry may act on the customer at all (the tenant map)
    SAME_CUSTOMER: DESTINATION,
    CHANGED: SOURCE,
    COLLISION: IDENTITY,
    FOREIGN_DOMAIN: IDENTITY,
    INVALID_VALUE: IDENTITY,
    UNMOVABLE_SERVICE: SERVICES,
    SERVICE_MISSING: SERVICES,
    PLAN_MISSING: SERVICES,
    WEAK_PASSWORD: PASSWORD,
}


@dataclass(frozen=True)
class Step:
    user: str
    action: str
    target: str
    before: Any = None
    after: Any = None
    service: str | None = None
    request: dict[str, Any] | None = None  # for HTTP steps: method, url, json
    undo_request: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Step:
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__ if k in data})

    @property
    def call_kind(self) -> str:
        """How a service call (``HTTP`` step) reaches its service: ``PowerShell`` (cmdlets) or ``HTTP``."""
        return "PowerShell" if (self.request or {}).get("method") == "PowerShell" else "HTTP"

    def public(self) -> dict[str, Any]:
        """The ``--json`` shape of PRODUCT §5: user, action, target, before, after."""
        return {"user": self.user, "action": self.action, "target": self.target, "before": self.before, "after": self.after}


@dataclass(frozen=True)
class UserChange:
    """What happens to one user: identity before and after (for the result screen)."""

    user: str  # identity as the operator named it
    dn_before: str
    dn_after: str
    upn_before: str | None
    upn_after: str | None
    email_before: str | None
    email_after: str | None
    version: str | None = None  # the user's replicated version the plan was made from (User.version)


@dataclass(frozen=True)
class LeftOut:
    """What a plan deliberately does not do, shown with it: e.g. a role the operator may
    not grant (``not_granted``), with the reason in one sentence."""

    user: str
    action: str  # NOT_GRANTED
    target: str  # e.g. the role group's DN
    reason: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


NOT_GRANTED = "not_granted"  # a role (group) the operator may not grant: not copied, not carried


@dataclass(frozen=True)
class Plan:
    """An ordered list of steps over one or more users, or the problems that forbid it."""

    kind: str  # "move" | "copy"
    source: str | None  # customer names
    destination: str | None
    users: tuple[UserChange, ...] = ()
    steps: tuple[Step, ...] = ()
    problems: tuple[Problem, ...] = field(default=())
    left_out: tuple[LeftOut, ...] = ()  # what the steps deliberately do not do

    @property
    def ok(self) -> bool:
        return not self.problems
