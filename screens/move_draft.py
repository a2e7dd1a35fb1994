"""What the admin entered so far in the move wizard (:class:`MoveDraft`), and the
core's preflight of it. The steps are declared in :mod:`screens.wizards`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.text import Text

from core.attempt import attempt
from core.directory.layout import dn_key
from core.mapping import split_address
from core.model import Customer, User
from core.move import MoveMapping, MoveRequest, map_user
from core.plan import Plan
from core.text import plain
from screens.wizard.engine import Preflight

if TYPE_CHECKING:
    from core.session import Session


def move_title(who: str, source: Customer, destination: Customer | None) -> Text:
    """``Move <who> from <source> → <destination>``, as literal text."""
    text = Text.assemble("Move ", (who, "bold"), " from ", plain(source.name))
    if destination is not None:
        text.append(" → ")
        text.append(plain(destination.name), style="bold")
    return text


@dataclass
class MoveDraft:
    """The move being prepared: the user, the destination, the mapping and plan choices."""

    session: Session
    user: User  # read in full (Directory.user)
    source: Customer
    destination: Customer | None = None
    upn_prefix: str = ""
    upn_domain: str = ""
    email: str | None = None  # None: the user has no mailbox and gets no address
    email_auto: bool = True  # the email follows the UPN's domain until the admin edits it
    plans: dict[str, str] = field(default_factory=dict)  # service key → destination plan
    with_devices: bool = False  # the admin agreed that the user's mobile devices are left behind
    destination_search: str = ""  # what was typed on the destination step
    _email_local: str = ""
    _preflight: Preflight[MoveRequest, Plan] = field(default_factory=Preflight, repr=False)

    @property
    def who(self) -> str:
        return plain(self.user.display_name or self.user.cn)

    def title(self) -> Text:
        return move_title(self.who, self.source, self.destination)

    # -- choices ---------------------------------------------------------------
    def choose_destination(self, customer: Customer) -> None:
        """A new destination resets the mapping and plan choices; the same one keeps them."""
        if self.destination is not None and dn_key(self.destination.dn) == dn_key(customer.dn):
            self.destination = customer
            return
        self.destination = customer
        self.plans = {}
        default = map_user(self.session.config, self.user, customer, MoveRequest(self.user.dn, self.target))
        self.upn_prefix, self.upn_domain = split_address(default.upn)
        self._email_local = split_address(default.email)[0] if default.email else ""
        self.email = default.email
        self.email_auto = True

    def set_upn(self, prefix: str, domain: str) -> None:
        self.upn_prefix, self.upn_domain = prefix.strip(), domain
        if self.email is not None and self.email_auto:
            self.email = f"{self._email_local}@{domain}"

    def set_email(self, value: str) -> None:
        self.email = value.strip()
        self.email_auto = False

    def set_plan(self, service: str, plan: str) -> None:
        self.plans[service] = plan

    # -- what the core sees ---------------------------------------------------------
    @property
    def target(self) -> str:
        """How the destination is named to the core: its default domain (unique), else its name."""
        assert self.destination is not None
        return self.destination.default_domain or self.destination.name

    def request(self) -> MoveRequest:
        return MoveRequest(
            user=self.user.dn,
            destination=self.target,
            upn=f"{self.upn_prefix}@{self.upn_domain}",
            email=self.email,
            plans=dict(self.plans),
            with_devices=self.with_devices,
        )

    def mapping(self) -> MoveMapping:
        assert self.destination is not None
        return map_user(self.session.config, self.user, self.destination, self.request())

    async def check(self, *, fresh: bool = False) -> Plan:
        """The core's preflight of the move as entered (cached while nothing changes);
        ``fresh``, the final one before the run (the review): a refusal is audited."""
        request, session = self.request(), self.session

        async def make() -> Plan:
            if fresh:
                return (await attempt(session, request)).plan
            return await session.planner().preflight(session.operator, request)

        return await self._preflight.get(request, make, fresh=fresh)

    @property
    def checked(self) -> Plan | None:
        """The last preflight, if it is of the move as entered now."""
        return self._preflight.of(self.request())
