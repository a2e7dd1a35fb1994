"""Adapters whose service lives in the directory: Hosted Exchange and OCS/Lync.

Their attribute changes are merged by the planner into the user's one
compare-and-swap modify, so a move costs one LDAP write for all of them.
"""

from __future__ import annotations

from core.mapping import legacy_exchange_dn, proxy_addresses, split_address
from core.services.base import Changes, MoveContext, ServiceAdapter, ServiceMove


def _change(changes: Changes, attribute: str, old: tuple[str, ...], new: tuple[str, ...]) -> None:
    if tuple(old) != tuple(new):
        changes[attribute] = (tuple(old), tuple(new))


class ExchangeAdapter(ServiceAdapter):
    """Hosted Exchange, directory side: mail, proxyAddresses, mailNickname,
    legacyExchangeDN and the tenant's address-book segregation value."""

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
        return ServiceMove(attributes=changes)


class OcsAdapter(ServiceAdapter):
    """OCS/Lync/Skype for Business, directory side: the SIP URI."""

    def plan_move(self, context: MoveContext) -> ServiceMove:
        if context.sip is None:
            return ServiceMove()
        changes: Changes = {}
        _change(changes, "msRTCSIP-PrimaryUserAddress", context.user.attribute("msRTCSIP-PrimaryUserAddress"), (context.sip,))
        return ServiceMove(attributes=changes)
