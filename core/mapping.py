"""User mapping: the new UPN, email, SIP URI and username of a user in a customer.

Values come from templates (``{first}.{last}@{domain}``, ``{f}{last}@{domain}``,
``{sam}@{domain}``, …) with accents folded and the characters each attribute cannot
hold removed. The rule, as the directory's own data has it: Latin letters lose their
accents (``Renée`` → ``renee``, ``ß`` → ``ss``), apostrophes and spaces go (``O'Neill`` →
``oneill``), and letters of other scripts are not transliterated: a name with none left
gives no local part, and an address with an empty local part (``.@domain``,
``sip:@domain``) is refused, so the admin types one. Address rules of PRODUCT §2: addresses in the source customer's domains
leave with the user, the old ``legacyExchangeDN`` stays reachable as an ``X500:``
address, and exactly one ``SMTP:`` primary remains.
"""

from __future__ import annotations

import re
import string
import unicodedata
from dataclasses import dataclass
from typing import Any

from core.errors import UsageError

PLACEHOLDERS = frozenset({"first", "last", "f", "l", "sam", "upn_prefix", "domain", "code", "email_prefix"})

_SPECIAL_FOLDS = str.maketrans({
    "ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "đ": "d", "Đ": "D",
    "œ": "oe", "Œ": "OE", "þ": "th", "Þ": "TH", "ı": "i",
})
_LOCAL_PART_ILLEGAL = re.compile(r"[^a-z0-9._+-]")
_SAM_ILLEGAL = re.compile(r"[\"/\\\[\]:;|=,+*?<>@\s'\u2019]")  # and apostrophes, as in the directory's data
SAM_MAX = 20


def fold(text: str) -> str:
    """``"Renée Müller-Łukasz"`` → ``"Renee Muller-Lukasz"``: accents and ligatures folded."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_SPECIAL_FOLDS))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def local_part(text: str) -> str:
    """A valid email/UPN local part: folded, lower-case, no illegal characters or stray dots."""
    cleaned = _LOCAL_PART_ILLEGAL.sub("", fold(text).lower().replace(" ", ""))
    return re.sub(r"\.{2,}", ".", cleaned).strip(".")


def sam_account_name(text: str) -> str:
    """A valid sAMAccountName: folded, no illegal characters, at most 20, no trailing dot."""
    cleaned = _SAM_ILLEGAL.sub("", fold(text))
    return cleaned[:SAM_MAX].rstrip(".")


@dataclass(frozen=True)
class Formats:
    """The templates of one customer (configurable per customer)."""

    upn: str = "{upn_prefix}@{domain}"
    email: str = "{first}.{last}@{domain}"
    sip: str = "{email_prefix}@{domain}"
    sam: str = "{sam}"

    def check(self, where: str) -> None:
        for name in ("upn", "email", "sip", "sam"):
            template = getattr(self, name)
            fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
            unknown = fields - PLACEHOLDERS
            if unknown:
                raise UsageError(
                    f"{where}: the {name} format {template!r} uses unknown placeholder {{{sorted(unknown)[0]}}} "
                    f"(known: {', '.join(sorted(PLACEHOLDERS))})."
                )


@dataclass(frozen=True)
class Identity:
    """What a template may use about a user."""

    first: str
    last: str
    sam: str
    upn_prefix: str


def render(template: str, identity: Identity, domain: str, code: str | None, *, email_prefix: str = "") -> str:
    """Fill ``template``; every user-derived part is cleaned for a local part or username."""
    values = {
        "first": local_part(identity.first),
        "last": local_part(identity.last),
        "f": local_part(identity.first)[:1],
        "l": local_part(identity.last)[:1],
        "sam": identity.sam,
        "upn_prefix": local_part(identity.upn_prefix),
        "domain": domain.lower(),
        "code": (code or "").lower(),
        "email_prefix": email_prefix,
    }
    rendered = template.format(**values)
    if "@" not in rendered:
        return rendered
    local, _, domain = rendered.rpartition("@")  # parts left empty leave stray dots: ".@domain"
    return f"{re.sub(r'[.]{2,}', '.', local).strip('.')}@{domain}"


def mapped_addresses(mapping: Any) -> list[tuple[str, str]]:
    """A mapping's UPN, email address and SIP URI (without ``sip:``), each named, to be checked alike."""
    values = [("UPN", mapping.upn)]
    if mapping.email:
        values.append(("email address", mapping.email))
    if mapping.sip:
        values.append(("SIP URI", mapping.sip.removeprefix("sip:")))
    return values


def split_address(address: str) -> tuple[str, str]:
    local, _, domain = address.rpartition("@")
    return local, domain.lower()


def address_problem(address: str, what: str) -> str | None:
    """Why ``address`` is not a usable email/UPN, or ``None``."""
    local, domain = split_address(address)
    if not local and "@" in address:
        return f"The {what} {address!r} has no name before the @ (the name has no letters an address can hold): type one."
    if not local or not domain or "." not in domain:
        return f"The {what} {address!r} is not of the form name@domain."
    if local != local_part(local) and local.lower() != local_part(local):
        return f"The {what} {address!r} contains characters an address cannot hold."
    return None


def proxy_addresses(
    current: tuple[str, ...],
    new_primary: str,
    source_domains: tuple[str, ...],
    legacy_exchange_dn: str | None,
    new_sip: str | None = None,
) -> tuple[str, ...]:
    """The user's proxyAddresses after a move.

    Addresses in the source customer's domains leave, whatever their type (``SMTP:``,
    ``SIP:``, ``EUM:`` …: a user of another customer must not keep receiving its mail or
    calls); the new primary is the only ``SMTP:``; other aliases and addresses without a
    domain (``X500:``) stay; a ``SIP:`` address that left is replaced by the new SIP URI
    (``new_sip``, ``sip:`` scheme or not); the old ``legacyExchangeDN`` is kept as an
    ``X500:`` address.
    """
    leaving = {d.casefold() for d in source_domains}
    kept: list[str] = [f"SMTP:{new_primary}"]
    seen = {new_primary.casefold()}
    sip_left = False
    for value in current:
        kind, _, address = value.partition(":")
        if _proxy_domain(address).casefold() in leaving:
            sip_left = sip_left or kind.casefold() == "sip"
            continue
        if kind.lower() == "smtp":
            if address.casefold() in seen:
                continue
            seen.add(address.casefold())
            kept.append(f"smtp:{address}")
        elif value not in kept:
            kept.append(value)
    if sip_left and new_sip:
        sip = "SIP:" + (new_sip.partition(":")[2] if new_sip.lower().startswith("sip:") else new_sip)
        if all(v.casefold() != sip.casefold() for v in kept):
            kept.append(sip)
    if legacy_exchange_dn:
        x500 = f"X500:{legacy_exchange_dn}"
        if all(v.casefold() != x500.casefold() for v in kept):
            kept.append(x500)
    return tuple(kept)


def _proxy_domain(address: str) -> str:
    """The domain of a proxy address's value (``anna@contoso.example;phone-context=…`` →
    ``contoso.example``); empty for one without (``X500:/o=…``)."""
    mailbox = address.split(";", 1)[0]
    return mailbox.rpartition("@")[2] if "@" in mailbox else ""


def legacy_exchange_dn(old: str | None, mail_nickname: str, unique: str) -> str:
    """A new legacyExchangeDN in the same organisation, named after the new nickname."""
    prefix = "/o=Hosting/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients"
    if old and "/cn=" in old:
        prefix = old.rsplit("/cn=", 1)[0]
    return f"{prefix}/cn={mail_nickname}{unique}"
