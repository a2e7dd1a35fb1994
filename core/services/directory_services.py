"""Adapters whose service lives in the directory: Hosted Exchange and OCS/Lync.

Their attribute changes are merged by the planner into the user's one
compare-and-swap modify, so a move costs one LDAP write for all of them.
"""

from __future__ import annotations

from typing import Any

from core.mapping import legacy_exchange_dn, proxy_addresses, split_address
from core.plan import INVALID_VALUE, Problem, Step
from core.services.base import Changes, CopyContext, MoveContext, ServiceAdapter, ServiceCopy, ServiceMove, changed
from core.services.http import HttpAdapter


def _change(changes: Changes, attribute: str, old: tuple[str, ...], new: tuple[str, ...]) -> None:
    if (change := changed(old, new)) is not None:
        changes[attribute] = change


class ExchangeAdapter(ServiceAdapter):
    """Hosted Exchange: the directory side (mail, proxyAddresses, mailNickname,
    legacyExchangeDN, the tenant's address-book segregation value) and, when the
    service has a ``url``, the mail platform's provisioning call that re-homes the
    mailbox (a generic HTTP call: see :mod:`core.services.http` for its options,
    e.g. ``move_path = "/mailboxes/{upn}"``). A copy gives the new user its own
    mailbox: a fresh address, nickname, legacyExchangeDN and the tenant's address-book
    value, and the platform's create call (``create_path``)."""

    def __init__(self, service, options, layout, **client: Any):
        super().__init__(service, options, layout)
        self.platform = HttpAdapter(service, options, layout, **client) if options.get("url") else None

    async def inspect(self, context: MoveContext) -> tuple[dict[str, Any], list[Problem]]:
        return await self.platform.inspect(context) if self.platform else ({}, [])

    async def inspect_copy(self, context: CopyContext) -> tuple[dict[str, Any], list[Problem]]:
        return await self.platform.inspect_copy(context) if self.platform else ({}, [])

    def foreign_call(self, step: Step, customers) -> str | None:
        return self.platform.foreign_call(step, customers) if self.platform else super().foreign_call(step, customers)

    async def perform(self, step: Step) -> dict[str, Any] | None:
        return await self.platform.perform(step)

    async def undo(self, step: Step, result: dict[str, Any] | None) -> None:
        await self.platform.undo(step, result)

    async def aclose(self) -> None:
        if self.platform:
            await self.platform.aclose()

    def plan_move(self, context: MoveContext) -> ServiceMove:
        user = context.user
        if context.email is None:
            return ServiceMove()
        nickname = split_address(context.email)[0]
        old_legacy = user.attribute("legacyExchangeDN")
        new_legacy = legacy_exchange_dn(old_legacy[0] if old_legacy else None, nickname, (user.guid or "")[:8])
        changes: Changes = {}
        _change(changes, "mail", user.attribute("mail"), (context.email,))
        _change(changes, "mailNickname", user.attribute("mailNickname"), (nickname,))
        _change(
            changes,
            "proxyAddresses",
            user.proxy_addresses,
            proxy_addresses(user.proxy_addresses, context.email, context.source.domains, old_legacy[0] if old_legacy else None, context.sip),
        )
        _change(changes, "legacyExchangeDN", old_legacy, (new_legacy,))
        segregation = self.layout.address_book_attribute
        if context.destination.code:
            _change(changes, segregation, context.user.attribute(segregation), (context.destination.code,))
        steps = self.platform.plan_move(context).steps if self.platform else ()
        return ServiceMove(attributes=changes, steps=steps)


    def plan_copy(self, context: CopyContext) -> ServiceCopy:
        who = context.upn
        if context.email is None:
            return ServiceCopy(problems=(Problem(INVALID_VALUE, f"{self.service.display_name} needs an email address for {who}.", who),))
        nickname = split_address(context.email)[0]
        template_legacy = context.template.attribute("legacyExchangeDN")
        legacy = legacy_exchange_dn(template_legacy[0] if template_legacy else None, nickname, context.unique)
        segregation = self.layout.address_book_attribute
        book = (context.customer.code,) if context.customer.code else context.template.attribute(segregation)
        attributes: Changes = {
            "mail": ((), (context.email,)),
            "mailNickname": ((), (nickname,)),
            "proxyAddresses": ((), (f"SMTP:{context.email}",)),
            "legacyExchangeDN": ((), (legacy,)),
        }
        if book:
            attributes[segregation] = ((), tuple(book))
        steps = self.platform.plan_copy(context).steps if self.platform else ()
        return ServiceCopy(attributes=attributes, steps=steps)


HOME_ATTRIBUTES = ("msRTCSIP-PrimaryHomeServer", "msRTCSIP-OptionFlags")  # OCS 2007 R2: the user's pool and features


class OcsAdapter(ServiceAdapter):
    """OCS 2007 R2, managed through the directory: the SIP URI (a fresh one for a copy).
    A copy is homed like its template: the template's home server (the pool's
    ``msRTCSIP-PrimaryHomeServer``: a user without one cannot sign in) and option flags,
    when it has them."""

    def plan_copy(self, context: CopyContext) -> ServiceCopy:
        who = context.upn
        if context.sip is None:
            return ServiceCopy(problems=(Problem(INVALID_VALUE, f"{self.service.display_name} needs a SIP URI for {who}.", who),))
        attributes = {"msRTCSIP-PrimaryUserAddress": ((), (context.sip,)), "msRTCSIP-UserEnabled": ((), ("TRUE",))}
        for name in HOME_ATTRIBUTES:
            if context.template.attribute(name):
                attributes[name] = ((), context.template.attribute(name))
        return ServiceCopy(attributes=attributes)

    def plan_move(self, context: MoveContext) -> ServiceMove:
        if context.sip is None:
            return ServiceMove()
        changes: Changes = {}
        _change(changes, "msRTCSIP-PrimaryUserAddress", context.user.attribute("msRTCSIP-PrimaryUserAddress"), (context.sip,))
        return ServiceMove(attributes=changes)
