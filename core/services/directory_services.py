"""Adapters whose service lives in the directory: Hosted Exchange and OCS/Lync.

Their attribute changes are merged by the planner into the user's one
compare-and-swap modify, so a move costs one LDAP write for all of them.
"""

from __future__ import annotations

from typing import Any

from core.mapping import legacy_exchange_dn, proxy_addresses, split_address
from core.plan import Problem, Step
from core.services.base import Changes, MoveContext, ServiceAdapter, ServiceMove
from core.services.http import HttpAdapter


def _change(changes: Changes, attribute: str, old: tuple[str, ...], new: tuple[str, ...]) -> None:
    if tuple(old) != tuple(new):
        changes[attribute] = (tuple(old), tuple(new))


class ExchangeAdapter(ServiceAdapter):
    """Hosted Exchange: the directory side (mail, proxyAddresses, mailNickname,
    legacyExchangeDN, the tenant's address-book segregation value) and, when the
    service has a ``url``, the mail platform's provisioning call that re-homes the
    mailbox (a generic HTTP call: see :mod:`core.services.http` for its options,
    e.g. ``move_path = "/mailboxes/{upn}"``)."""

    def __init__(self, service, options, layout, **client: Any):
        super().__init__(service, options, layout)
        self.platform = HttpAdapter(service, options, layout, **client) if options.get("url") else None

    async def inspect(self, context: MoveContext) -> tuple[dict[str, Any], list[Problem]]:
        return await self.platform.inspect(context) if self.platform else ({}, [])

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
            proxy_addresses(user.proxy_addresses, context.email, context.source.domains, old_legacy[0] if old_legacy else None),
        )
        _change(changes, "legacyExchangeDN", old_legacy, (new_legacy,))
        segregation = self.layout.address_book_attribute
        if context.destination.code:
            _change(changes, segregation, context.user.attribute(segregation), (context.destination.code,))
        steps = self.platform.plan_move(context).steps if self.platform else ()
        return ServiceMove(attributes=changes, steps=steps)


class OcsAdapter(ServiceAdapter):
    """OCS/Lync/Skype for Business, directory side: the SIP URI."""

    def plan_move(self, context: MoveContext) -> ServiceMove:
        if context.sip is None:
            return ServiceMove()
        changes: Changes = {}
        _change(changes, "msRTCSIP-PrimaryUserAddress", context.user.attribute("msRTCSIP-PrimaryUserAddress"), (context.sip,))
        return ServiceMove(attributes=changes)
