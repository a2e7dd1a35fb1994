"""What the admin entered so far in the copy wizard (:class:`CopyDraft`), and the core's
preflight of it. The steps are declared in :mod:`screens.wizards`.

The password lives in the draft, in memory only, and goes to the executor as a secret;
it is never logged, notified, journaled or shown (except a generated one, once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.text import Text

from core.attempt import attempt
from core.copy import CopyMapping, CopyRequest, map_copy
from core.mapping import split_address
from core.model import Customer, User
from core.plan import Plan
from core.text import plain
from screens.wizard.engine import Preflight

if TYPE_CHECKING:
    from core.session import Session


FIELDS = ("first", "last", "display_name", "username", "upn_prefix", "email")


@dataclass
class CopyDraft:
    """The copy being prepared: the template, the new user's values, password, services."""

    session: Session
    template: User  # read in full (Directory.user)
    customer: Customer
    first: str = ""
    last: str = ""
    display_name: str = ""
    username: str = ""
    upn_prefix: str = ""
    upn_domain: str = ""
    email: str = ""
    edited: set[str] = field(default_factory=set)  # fields the admin typed (no longer proposed)
    services: list[str] = field(default_factory=list)  # the services copied
    plans: dict[str, str] = field(default_factory=dict)  # service key → plan
    password: str = field(default="", repr=False)
    _preflight: Preflight[tuple[CopyRequest, bool], Plan] = field(default_factory=Preflight, repr=False)

    def __post_init__(self) -> None:
        self.services = list(self.template.services)
        self.plans = {pl.service: pl.name for pl in self.template.plans}
        self.propose()

    @property
    def who(self) -> str:
        return plain(self.template.display_name or self.template.cn)

    def title(self) -> Text:
        text = Text.assemble("Copy ", (self.who, "bold"), " in ", plain(self.customer.name))
        name = self.display_name or f"{self.first} {self.last}".strip()
        if name:
            text.append(" → ")
            text.append(plain(name), style="bold")
        return text

    # -- proposals from the customer's formats ---------------------------------------
    def proposal(self) -> CopyMapping:
        request = CopyRequest(self.template.dn, self.first, self.last)
        return map_copy(self.session.config, self.template, self.customer, request, self.services)

    def propose(self) -> None:
        """Refresh every field the admin has not typed from the customer's formats."""
        mapping = self.proposal()
        prefix, domain = split_address(mapping.upn) if "@" in (mapping.upn or "") else ("", "")
        proposed = {
            "display_name": mapping.display_name,
            "username": mapping.sam,
            "upn_prefix": prefix,
            "email": mapping.email or "",
        }
        for name, value in proposed.items():
            if name not in self.edited:
                setattr(self, name, value or "")
        if not self.upn_domain:
            self.upn_domain = domain or self.customer.default_domain or ""

    def set(self, name: str, value: str) -> None:
        if getattr(self, name) == value:
            return
        setattr(self, name, value)
        if name not in ("first", "last"):
            self.edited.add(name)
        self.propose()

    def set_domain(self, domain: str) -> None:
        old = self.upn_domain
        self.upn_domain = domain
        if "email" not in self.edited and self.email.endswith("@" + old):
            self.email = self.email[: -len(old)] + domain

    # -- what the core sees -------------------------------------------------------------
    def request(self) -> CopyRequest:
        return CopyRequest(
            template=self.template.dn,
            first=self.first.strip(),
            last=self.last.strip(),
            display_name=self.display_name.strip() or None,
            username=self.username.strip() or None,
            upn=f"{self.upn_prefix.strip()}@{self.upn_domain}" if self.upn_prefix.strip() else None,
            email=self.email.strip() or None,
            services=tuple(self.services),
            plans={k: v for k, v in self.plans.items() if k in self.services},
        )

    async def check(self, *, with_password: bool = False, fresh: bool = False) -> Plan:
        """The core's preflight (with the password against the domain's policy, if asked)."""
        request, session = self.request(), self.session
        password = self.password if with_password else None

        async def make() -> Plan:
            if fresh:  # the final check before the run (the review): a refusal is audited
                return (await attempt(session, request, password=password)).plan
            return await session.copier().preflight(session.operator, request, password)

        return await self._preflight.get((request, with_password), make, fresh=fresh)

    @property
    def checked(self) -> Plan | None:
        """The last preflight, if it is of the copy as entered now (with the password or not)."""
        return self._preflight.of((self.request(), True)) or self._preflight.of((self.request(), False))
