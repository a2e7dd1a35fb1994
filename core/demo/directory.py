"""The embedded demo directory: ldap3's in-memory mock, made to answer like AD.

:func:`open_demo` returns an ordinary :class:`~core.directory.Directory` whose pool
holds ldap3 ``MOCK_SYNC`` connections on one in-process ``Server`` (one ``dit``),
loaded with :func:`core.demo.seed.build_seed` and bound as the sp-admin operator.
The operators get a random password per demo server, kept only in memory.

ldap3 2.9.1's mock (``ldap3/strategy/mockBase.py``) differs from Active Directory
exactly where this product depends on it. :class:`DemoStrategy` (a
``MockSyncStrategy``) keeps ldap3's request and response plumbing but answers every
operation from :class:`DemoController`, which behaves as AD (and Samba AD) do:

* modify DN — mockBase keeps the old RDN on a move (``dn_components[0]``), copies
  only the entry (children stay under the old DN) and rewrites nothing. Here the new
  RDN applies (``cn``/``ou`` and ``name`` follow), the subtree moves, and every
  ``member``, ``manager``, ``memberOf`` and ``directReports`` value that pointed at an
  old DN points at the new one.
* filters — mockBase re-parses the filter from a string rebuilt without escaping, so
  a value holding ``*)(`` raises ``LDAPInvalidFilterError``; its substring match is
  unanchored at the end; NOT over AND/OR is wrong; extensible matches raise. Here the
  ASN.1 filter is evaluated directly: AD's case-insensitive string matching, DN values
  compared as DNs, integers as integers, GUIDs/SIDs as bytes, the bitwise rules
  ``…803``/``…804`` and ``LDAP_MATCHING_RULE_IN_CHAIN`` (``…1941``, over the link
  attributes).
* back-links — mockBase has no ``memberOf``; it is kept as AD keeps it (and
  ``directReports`` for ``manager``): computed at load, updated on member add/remove,
  group add, delete and move. Links must point at existing objects (32). The
  constructed ``tokenGroups`` (nested security groups' SIDs, base-scope reads only)
  is answered too, so the AD dialect's own ``nested_groups`` works on the demo.
* operational attributes — every entry gets ``objectGUID`` (16 pseudo-random bytes, AD's
  little-endian layout, the same in every demo for the objects made in the same order), ``uSNCreated``/``uSNChanged`` (one server-wide counter,
  ``uSNChanged`` raised on every write to the entry), ``whenCreated``/``whenChanged``,
  ``name``, ``distinguishedName``; users and groups an ``objectSid``.
* one-level searches — mockBase's "direct child" test (``',' not in
  entry[:-len(base) - 1]``) drops ``CN=Smith\\, John`` and returns the base itself.
  Here the tree is indexed by parsed DNs (escaping and case normalised), so one-level
  and subtree scopes are exact, and a missing base answers noSuchObject (32).
* result codes — duplicate add 68; missing object or parent 32; deleting a non-leaf
  66; adding an existing value 20 (``member``: 68, as AD and Samba answer); deleting
  an absent value 16 (``member``: 53); a second value of a single-valued attribute 20;
  the RDN attribute 67; system-only attributes 19; ``memberOf`` 53; duplicate
  ``sAMAccountName`` 68, ``userPrincipalName`` 19; wrong RDN type or parent class 64
  (53 for a rename to another RDN type), as the Samba AD DC answers.
  mockBase answers 1 for an absent value, crashes on a case-different one, and
  accepts duplicates.
* passwords — ``unicodePwd`` only as AD takes it (one UTF-16-LE value in double
  quotes) and checked against the domain policy on the domain root (``minPwdLength``,
  ``pwdProperties``); never returned by a search. Enabling a user that has no
  password is refused (53), as AD does. Bind accepts a DN, a UPN or ``DOMAIN\\sam``
  (mockBase: only the DN, against a readable ``userPassword``).
* paging — AD's MaxPageSize (1,000) caps pages and unpaged searches (sizeLimitExceeded
  with the first 1,000); cookies belong to the connection that issued them; the last
  page carries the empty cookie even when the count divides evenly (mockBase sends an
  extra empty page). Pages are read when served, so entries deleted meanwhile drop out.
* concurrency — the pool drives several connections from threads on one ``dit``;
  every operation runs under one lock (mockBase iterates the dict while others write).

Where Windows AD and the Samba test DC differ, the demo answers as Windows does, the
stricter of the two (checked against Samba 4 with the seed loaded): MaxPageSize and
the unpaged 1,000-entry limit (Samba returns everything), enabling an account without
a password (Samba allows it), a password holding the account name (Samba accepts it),
adding a value that differs from a present one only in case (Samba accepts it).

The Exchange organisation and the Lync topology (:mod:`core.demo.platform`) are loaded
below ``CN=Configuration``, a naming context of its own as in AD: a search of the
domain's subtree does not see it, a search based in it does.

Still not AD: no ACLs (every bound operator may write), no tombstones, no ranged
retrieval of large multi-valued attributes, no schema beyond the attributes above.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import hmac
import random
import secrets
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

import ldap3
from ldap3.core.exceptions import LDAPOperationResult
from ldap3.core.results import DO_NOT_RAISE_EXCEPTIONS
from ldap3.operation.search import search_result_done_response_to_dict
from ldap3.protocol.rfc2696 import paged_search_control
from ldap3.strategy.mockSync import MockSyncStrategy
from ldap3.utils.ciDict import CaseInsensitiveDict

from core.config import DEFAULT_SERVICES, Config, DirectoryConfig, LayoutConfig, ServiceConfig
from core.directory import ops
from core.directory.directory import Directory
from core.escape import dn_value
from core.directory.pool import ConnectionPool, bind_error
from core.tenants import TenantMap, parse_tenants

__all__ = [
    "DEMO_URL", "DemoController", "DemoServer", "DemoStrategy", "LdapError",
    "build_demo_server", "canonical_dn", "demo_config", "demo_connection", "open_demo",
]

DEMO_URL = "ldaps://demo.example.net"  # shown to the user; nothing ever connects to it
DEMO_BASE_DN = "DC=example,DC=net"
DEMO_HOSTING_OU = "OU=Hosting"
DEMO_NETBIOS = "EXAMPLE"
SP_ADMIN = "sp-admin"
SP_ADMIN_UPN = "sp-admin@example.net"

MAX_PAGE_SIZE = 1000  # AD's default MaxPageSize
RULE_BIT_AND = "1.2.840.113556.1.4.803"
RULE_BIT_OR = "1.2.840.113556.1.4.804"
RULE_IN_CHAIN = "1.2.840.113556.1.4.1941"

OP_ADD, OP_DELETE, OP_REPLACE, OP_INCREMENT = 0, 1, 2, 3  # ModifyRequest operations on the wire

GUID_SEED = 2026  # the demo's objectGUIDs are drawn from it: a screen that shows one looks the same every run

UAC_ACCOUNTDISABLE = 0x2
UAC_PASSWD_NOTREQD = 0x20
UAC_NEW_USER = 0x222  # what AD gives a user created without userAccountControl

# -- what the controller knows of AD's schema (attribute names lower-case) ------------
FORWARD_LINKS = {"member": "memberOf", "manager": "directReports"}
BACK_LINKS = {"memberof": "member", "directreports": "manager"}
DN_VALUED = frozenset({"member", "manager", "memberof", "directreports", "distinguishedname"})
BINARY = frozenset({"objectguid", "objectsid", "tokengroups"})
INTEGER = frozenset({
    "useraccountcontrol", "grouptype", "usnchanged", "usncreated", "instancetype", "pwdlastset",
    "minpwdlength", "pwdproperties", "pwdhistorylength", "samaccounttype", "primarygroupid",
})
SYSTEM_ONLY = frozenset({
    "objectguid", "objectsid", "usncreated", "usnchanged", "whencreated", "whenchanged",
    "distinguishedname", "instancetype",
})
SINGLE_VALUED = frozenset({
    "cn", "name", "displayname", "givenname", "sn", "initials", "samaccountname", "userprincipalname",
    "mail", "mailnickname", "legacyexchangedn", "useraccountcontrol", "manager", "department", "company",
    "title", "physicaldeliveryofficename", "telephonenumber", "mobile", "facsimiletelephonenumber",
    "homephone", "pager", "ipphone", "streetaddress", "l", "st", "postalcode", "c", "co", "division",
    "employeeid", "employeenumber", "info", "wwwhomepage", "msrtcsip-primaryuseraddress",
    "msrtcsip-userenabled", "grouptype", "pwdlastset", "minpwdlength", "pwdproperties",
    "pwdhistorylength", *SYSTEM_ONLY, *(f"extensionattribute{i}" for i in range(1, 16)),
})
SAM_CLASSES = frozenset({"user", "computer", "group"})  # "description" is single-valued on these
SECRETS = frozenset({"unicodepwd", "userpassword"})  # never stored in the dit, never returned

# Structural classes: their objectClass chain, naming attribute and possible parents.
OBJECT_CLASSES: dict[str, tuple[str, ...]] = {
    "user": ("top", "person", "organizationalPerson", "user"),
    "computer": ("top", "person", "organizationalPerson", "user", "computer"),
    "contact": ("top", "person", "organizationalPerson", "contact"),
    "group": ("top", "group"),
    "organizationalunit": ("top", "organizationalUnit"),
    "container": ("top", "container"),
    "domaindns": ("top", "domain", "domainDNS"),
}
NAMING_ATTRIBUTE = {"organizationalunit": "OU", "domaindns": "DC"}  # every other class: CN
_LEAF_PARENTS = frozenset({"organizationalunit", "container", "domaindns"})
POSSIBLE_PARENTS: dict[str, frozenset[str]] = {
    "user": _LEAF_PARENTS, "computer": _LEAF_PARENTS, "contact": _LEAF_PARENTS, "group": _LEAF_PARENTS,
    "container": _LEAF_PARENTS, "organizationalunit": frozenset({"organizationalunit", "domaindns"}),
    "domaindns": frozenset({"domaindns"}),
}
_SAM_FORBIDDEN = frozenset('"/\\[]:;|=,+*?<>')


class LdapError(Exception):
    """An LDAP result code with AD's meaning, raised inside the controller."""

    def __init__(self, code: int, message: str, matched: str = ""):
        super().__init__(message)
        self.code, self.message, self.matched = code, message, matched


# -- DNs ---------------------------------------------------------------------------------
_HEX = frozenset("0123456789abcdefABCDEF")


@functools.lru_cache(maxsize=1 << 16)
def parse_dn(dn: str) -> tuple[tuple[str, str], ...]:
    """``dn`` as ``(ATTRIBUTE, unescaped value)`` pairs; :class:`LdapError` 34 if malformed.

    RFC 4514 escaping (``\\,`` and ``\\2C`` alike); unescaped spaces around values
    are dropped. Multi-valued RDNs and quoted values do not exist in AD: refused.
    """
    if "\\" not in dn and '"' not in dn and "+" not in dn and dn.strip():
        fast = []
        for part in dn.split(","):
            attribute, equals, value = part.partition("=")
            attribute, value = attribute.strip(), value.strip(" ")
            if not equals or not value or not attribute or not all(c.isalnum() or c in "-." for c in attribute):
                break
            fast.append((attribute.upper(), value))
        else:
            return tuple(fast)
    rdns: list[tuple[str, str]] = []
    index, length = 0, len(dn)
    while dn.strip():
        equals = dn.find("=", index)
        attribute = dn[index:equals].strip() if equals >= 0 else ""
        if not attribute or not all(c.isalnum() or c in "-." for c in attribute):
            raise LdapError(34, f"invalid DN syntax: {dn!r}")
        index = equals + 1
        while index < length and dn[index] == " ":
            index += 1
        raw, keep = bytearray(), 0
        while index < length:
            char = dn[index]
            if char == "\\":
                pair = dn[index + 1 : index + 3]
                if len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
                    raw.append(int(pair, 16))
                    index += 3
                elif index + 1 < length:
                    raw += dn[index + 1].encode()
                    index += 2
                else:
                    raise LdapError(34, f"invalid DN syntax (trailing backslash): {dn!r}")
                keep = len(raw)
            elif char == ",":
                break
            elif char in '+"':
                raise LdapError(34, f"invalid DN syntax (multi-valued or quoted RDN): {dn!r}")
            else:
                raw += char.encode()
                index += 1
                if char != " ":
                    keep = len(raw)
        try:
            value = bytes(raw[:keep]).decode("utf-8")
        except UnicodeDecodeError:
            raise LdapError(34, f"invalid DN syntax (not UTF-8): {dn!r}") from None
        if not value:
            raise LdapError(34, f"invalid DN syntax (empty value): {dn!r}")
        rdns.append((attribute.upper(), value))
        if index >= length:
            break
        index += 1
        if index >= length:
            raise LdapError(34, f"invalid DN syntax (trailing comma): {dn!r}")
    return tuple(rdns)


_escaped = functools.lru_cache(maxsize=1 << 16)(dn_value)


def _join(rdns: Iterable[tuple[str, str]]) -> str:
    return ",".join(f"{attribute}={_escaped(value)}" for attribute, value in rdns)


@functools.lru_cache(maxsize=1 << 16)
def parent_dn(canonical: str) -> str:
    """The parent of a canonical DN ("" for a top-level name), itself canonical."""
    rdns = parse_dn(canonical)
    return canonical[len(_join(rdns[:1])) + 1 :] if len(rdns) > 1 else ""


@functools.lru_cache(maxsize=1 << 16)
def canonical_dn(dn: str) -> str:
    """The one spelling the demo stores and returns (AD's escaping, upper-case types)."""
    return _join(parse_dn(dn))


def dn_key(dn: str) -> str:
    return canonical_dn(dn).lower()


# -- values ------------------------------------------------------------------------------
def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def _fold(value: bytes) -> str:
    return value.decode("utf-8", errors="replace").casefold()


def _int(value: bytes) -> int | None:
    try:
        return int(value)
    except ValueError:
        return None


def _value_key(attribute: str, value: bytes) -> Any:
    """What AD compares for equality: bytes, integers, DNs or case-folded text."""
    if attribute in BINARY:
        return value
    if attribute in INTEGER:
        number = _int(value)
        return value if number is None else number
    if attribute in DN_VALUED:
        return _text(value).lower()  # stored values are canonical DNs
    return _fold(value)


def _generalized_time(moment: float | None = None) -> bytes:
    stamp = datetime.fromtimestamp(time.time() if moment is None else moment, tz=timezone.utc)
    return stamp.strftime("%Y%m%d%H%M%S.0Z").encode()


def _filetime() -> bytes:
    return str(int(time.time() * 10_000_000) + 116_444_736_000_000_000).encode()


def _sid(authorities: tuple[int, ...]) -> bytes:
    """A binary SID S-1-5-<authorities…> as AD stores ``objectSid``."""
    return bytes([1, len(authorities), 0, 0, 0, 0, 0, 5]) + b"".join(a.to_bytes(4, "little") for a in authorities)


def _structural(object_classes: Iterable[bytes]) -> str | None:
    for value in reversed(list(object_classes)):
        name = _text(value).lower()
        if name in OBJECT_CLASSES:
            return name
    return None


class Attributes(CaseInsensitiveDict):
    """ldap3's case-insensitive dict (as the mock's ``dit`` uses), minus a ``strip()`` per access.

    Keys here are attribute names and canonical DNs, which never have outer spaces.
    """

    @staticmethod
    def _ci_key(key: Any) -> Any:
        return key.lower() if isinstance(key, str) else key


# -- filters -----------------------------------------------------------------------------
Entry = Attributes  # attribute name -> list[bytes]
Test = Callable[[Entry], bool]


def _attribute(description: Any) -> str:
    return str(description).split(";", 1)[0].lower()


def _values_test(attribute: str, predicate: Callable[[list[bytes]], bool]) -> Test:
    def test(entry: Entry) -> bool:
        values = entry.get(attribute)
        return bool(values) and predicate(values)

    return test


def _equality(attribute: str, assertion: bytes) -> Test:
    if attribute in DN_VALUED:
        try:
            wanted: Any = dn_key(assertion.decode("utf-8"))
        except (LdapError, UnicodeDecodeError):
            return lambda entry: False
    elif attribute in INTEGER:
        wanted = _int(assertion)
        if wanted is None:
            return lambda entry: False
    else:
        wanted = _value_key(attribute, assertion)
    return _values_test(attribute, lambda values: any(_value_key(attribute, v) == wanted for v in values))


def _substrings(attribute: str, pieces: list[tuple[str, bytes]]) -> Test:
    binary = attribute in BINARY
    convert: Callable[[bytes], Any] = (lambda v: v) if binary else _fold
    initial = next((convert(v) for kind, v in pieces if kind == "initial"), None)
    final = next((convert(v) for kind, v in pieces if kind == "final"), None)
    middle = [convert(v) for kind, v in pieces if kind == "any"]

    def matches(value: Any) -> bool:
        start, end = 0, len(value)
        if initial is not None:
            if not value.startswith(initial):
                return False
            start = len(initial)
        if final is not None:
            if end - start < len(final) or not value.endswith(final):
                return False
            end -= len(final)
        for piece in middle:
            found = value.find(piece, start, end)
            if found < 0:
                return False
            start = found + len(piece)
        return True

    return _values_test(attribute, lambda values: any(matches(convert(v)) for v in values))


def _ordering(attribute: str, assertion: bytes, greater: bool) -> Test:
    if attribute in INTEGER:
        bound: Any = _int(assertion)
        if bound is None:
            return lambda entry: False
        key: Callable[[bytes], Any] = lambda v: _int(v)  # noqa: E731
    else:
        bound, key = _fold(assertion), _fold

    def compare(values: list[bytes]) -> bool:
        for value in values:
            got = key(value)
            if got is not None and (got >= bound if greater else got <= bound):
                return True
        return False

    return _values_test(attribute, compare)


Chain = Callable[[str, str], set[str]]  # (attribute, DN) -> keys of the entries in that chain


def _extensible(assertion: Any, chain: Chain | None) -> Test:
    rule = str(assertion["matchingRule"]) if assertion["matchingRule"].hasValue() else None
    attribute = _attribute(assertion["type"]) if assertion["type"].hasValue() else None
    value = bytes(assertion["matchValue"])
    if bool(assertion["dnAttributes"]) or attribute is None:
        raise LdapError(53, "the demo directory does not support dnAttributes or attribute-less extensible matches")
    if rule is None:
        return _equality(attribute, value)
    if rule == RULE_IN_CHAIN:
        if chain is None:
            raise LdapError(53, "LDAP_MATCHING_RULE_IN_CHAIN needs the directory's links")
        keys = chain(attribute, value.decode("utf-8", errors="replace"))
        return lambda entry: _text((entry.get("distinguishedName") or [b""])[0]).lower() in keys
    if rule in (RULE_BIT_AND, RULE_BIT_OR):
        mask = _int(value)
        if mask is None:
            return lambda entry: False

        def bits(values: list[bytes]) -> bool:
            for item in values:
                number = _int(item)
                if number is not None and ((number & mask) == mask if rule == RULE_BIT_AND else number & mask):
                    return True
            return False

        return _values_test(attribute, bits)
    raise LdapError(18, f"the matching rule {rule} is not supported")


def compile_filter(node: Any, chain: Chain | None = None) -> Test:
    """Turn an ASN.1 ``Filter`` (as the client sent it, bytes unescaped) into a test.

    ``chain`` answers ``LDAP_MATCHING_RULE_IN_CHAIN`` (see :meth:`DemoController.chain`).
    """
    kind = node.getName()
    part = node.getComponent()
    if kind in ("and", "or"):
        tests = [compile_filter(child, chain) for child in part]
        if kind == "and":
            return lambda entry: all(test(entry) for test in tests)
        return lambda entry: any(test(entry) for test in tests)
    if kind == "notFilter":
        inner = compile_filter(part["innerNotFilter"], chain)
        return lambda entry: not inner(entry)
    if kind in ("equalityMatch", "approxMatch"):
        return _equality(_attribute(part["attributeDesc"]), bytes(part["assertionValue"]))
    if kind == "substringFilter":
        pieces = [(piece.getName(), bytes(piece.getComponent())) for piece in part["substrings"]]
        return _substrings(_attribute(part["type"]), pieces)
    if kind in ("greaterOrEqual", "lessOrEqual"):
        return _ordering(_attribute(part["attributeDesc"]), bytes(part["assertionValue"]), kind == "greaterOrEqual")
    if kind == "present":
        attribute = _attribute(part)
        return lambda entry: bool(entry.get(attribute))
    if kind == "extensibleMatch":
        return _extensible(part, chain)
    raise LdapError(2, f"unknown filter choice {kind!r}")


# -- the controller ----------------------------------------------------------------------
class DemoController:
    """The in-process domain controller: the entries of one ``dit`` and AD's rules.

    Every public method runs under :attr:`lock` (the strategy takes it) and raises
    :class:`LdapError` with the code AD would answer. DNs are stored canonical
    (:func:`canonical_dn`); the tree is indexed by lower-cased canonical DN.
    """

    def __init__(self, dit: Attributes):
        self.dit = dit
        self.lock = threading.RLock()
        self.usn = 12000
        self._dns: dict[str, str] = {}  # key -> canonical DN
        self._children: dict[str, dict[str, None]] = {}  # key -> child keys, in creation order
        self._passwords: dict[str, bytes] = {}  # key -> salted digest
        self._has_password: set[str] = set()
        self._salt = secrets.token_bytes(16)
        self._domain_sid = tuple(secrets.randbits(32) for _ in range(3))
        self._next_rid = 1100
        self.root_key = ""
        self.partitions: frozenset[str] = frozenset()  # keys of the naming contexts below the domain's (configuration)
        self._guids = random.Random(GUID_SEED)  # the same objectGUIDs in every demo, in the order objects are made

    # -- lookup ------------------------------------------------------------------------
    def _name(self, dn: str) -> tuple[str, str]:
        canonical = canonical_dn(dn)
        if not canonical:
            raise LdapError(32, "the root DSE cannot be changed")
        return canonical, canonical.lower()

    def _require(self, dn: str) -> tuple[str, str, Entry]:
        canonical, key = self._name(dn)
        stored = self._dns.get(key)
        if stored is None:
            raise LdapError(32, f"no such object: {canonical}", self._matched(canonical))
        return stored, key, self.dit[stored]

    def _matched(self, canonical: str) -> str:
        rdns = parse_dn(canonical)
        for start in range(1, len(rdns)):
            stored = self._dns.get(_join(rdns[start:]).lower())
            if stored:
                return stored
        return ""

    def _class_of(self, key: str) -> str | None:
        return _structural(self.dit[self._dns[key]].get("objectClass") or ())

    def _subtree(self, key: str, within: bool = False) -> list[str]:
        """``key`` and everything below it; ``within`` its naming context only, as a
        search sees it (the domain's subtree does not hold the configuration partition)."""
        out, stack = [], [key]
        while stack:
            current = stack.pop()
            out.append(current)
            children = self._children.get(current, ())
            stack.extend(reversed([k for k in children if not (within and k in self.partitions)]))
        return out

    def _index(self, canonical: str) -> None:
        key = canonical.lower()
        self._dns[key] = canonical
        self._children.setdefault(key, {})
        parent = parent_dn(canonical)
        if parent:
            self._children.setdefault(parent.lower(), {})[key] = None

    def _unindex(self, key: str) -> None:
        canonical = self._dns.pop(key)
        self._children.pop(key, None)
        parent = parent_dn(canonical)
        if parent:
            self._children.get(parent.lower(), {}).pop(key, None)

    # -- bookkeeping ---------------------------------------------------------------------
    def _touch(self, entry: Entry) -> None:
        self.usn += 1
        entry["uSNChanged"] = [str(self.usn).encode()]
        entry["whenChanged"] = [_generalized_time()]

    def _operational(self, entry: Entry, canonical: str, structural: str) -> None:
        attribute, value = parse_dn(canonical)[0]
        entry[attribute.lower()] = [value.encode()]  # cn / ou / dc follows the RDN
        entry["name"] = [value.encode()]
        entry["distinguishedName"] = [canonical.encode()]
        entry["objectGUID"] = [uuid.UUID(int=self._guids.getrandbits(128), version=4).bytes_le]
        if structural in SAM_CLASSES:
            entry["objectSid"] = [_sid((21, *self._domain_sid, self._next_rid))]
            self._next_rid += 1
        elif structural == "domaindns":
            entry["objectSid"] = [_sid((21, *self._domain_sid))]
        entry["instanceType"] = [b"4"]
        now = _generalized_time()
        self.usn += 1
        entry["whenCreated"] = [now]
        entry["whenChanged"] = [now]
        entry["uSNCreated"] = [str(self.usn).encode()]
        entry["uSNChanged"] = [str(self.usn).encode()]

    def _link(self, source: str, forward: str, target_key: str, add: bool) -> None:
        """Keep the back-link of ``source``'s ``forward`` value on the target."""
        target = self.dit[self._dns[target_key]]
        back = FORWARD_LINKS[forward]
        values = list(target.get(back) or ())
        source_key = source.lower()
        values = [v for v in values if _text(v).lower() != source_key]
        if add:
            values.append(source.encode())
        if values:
            target[back] = values
        elif back in target:
            del target[back]

    def _link_targets(self, values: Iterable[bytes]) -> list[bytes]:
        """Canonical DNs of existing objects, as AD stores linked values."""
        out = []
        for value in values:
            try:
                canonical, key = self._name(value.decode("utf-8"))
            except UnicodeDecodeError:
                raise LdapError(34, "a DN value is not UTF-8") from None
            stored = self._dns.get(key)
            if stored is None:
                raise LdapError(32, f"the linked object does not exist: {canonical}", self._matched(canonical))
            out.append(stored.encode())
        return out

    # -- loading -------------------------------------------------------------------------
    def load(self, base_dn: str, entries: Iterable[tuple[str, Mapping[str, Sequence[str]]]]) -> None:
        """Add the domain root and ``entries`` (parents first, link targets first)."""
        with self.lock:
            root = {
                "objectClass": OBJECT_CLASSES["domaindns"],
                "minPwdLength": ("7",),
                "pwdProperties": ("1",),  # DOMAIN_PASSWORD_COMPLEX
                "pwdHistoryLength": ("24",),
            }
            self.root_key = dn_key(base_dn)
            self._insert(base_dn, root, root=True)
            for dn, attributes in entries:
                self._insert(dn, attributes)
            configuration = f"cn=configuration,{self.root_key}"
            self.partitions = frozenset({configuration} & self._dns.keys())
            for key, canonical in list(self._dns.items()):
                entry = self.dit[canonical]
                for forward in FORWARD_LINKS:
                    for value in entry.get(forward) or ():
                        self._link(canonical, forward, _text(value).lower(), True)

    def _insert(self, dn: str, attributes: Mapping[str, Sequence[str]], root: bool = False) -> None:
        canonical, key = self._name(dn)
        if key in self._dns:
            raise ValueError(f"the seed holds {canonical} twice")
        parent = parent_dn(canonical).lower()
        if not root and parent not in self._dns:
            raise ValueError(f"the seed lists {canonical} before its parent")
        entry = Attributes()
        for name, values in attributes.items():
            low = name.lower()
            encoded = [v.encode() if isinstance(v, str) else bytes(v) for v in values]
            if low in FORWARD_LINKS:
                try:
                    encoded = self._link_targets(encoded)
                except LdapError as error:
                    raise ValueError(f"the seed links {canonical} to a missing object: {error.message}") from None
            entry[name] = encoded
        structural = _structural(entry.get("objectClass") or ())
        if structural is None:
            raise ValueError(f"the seed gives {canonical} no known structural class")
        entry["objectClass"] = [c.encode() for c in OBJECT_CLASSES[structural]]
        self._operational(entry, canonical, structural)
        self.dit[canonical] = entry
        self._index(canonical)
        if structural in ("user", "computer"):
            self._has_password.add(key)  # seeded accounts have a password nobody knows

    def set_secret(self, dn: str, password: str) -> None:
        """Give an account a password (kept as a salted digest, in memory only)."""
        with self.lock:
            _stored, key, entry = self._require(dn)
            self._set_password(key, entry, password)

    def _set_password(self, key: str, entry: Entry, password: str) -> None:
        self._passwords[key] = hashlib.sha256(self._salt + password.encode("utf-8")).digest()
        self._has_password.add(key)
        entry["pwdLastSet"] = [_filetime()]

    # -- bind ----------------------------------------------------------------------------
    def bind(self, name: str, password: bytes) -> str:
        if not name and not password:
            return ""  # anonymous, as AD allows
        key = self._account(name)
        digest = self._passwords.get(key or "")
        given = hashlib.sha256(self._salt + password).digest()
        if key is None or digest is None or not hmac.compare_digest(digest, given):
            raise LdapError(49, "80090308: LdapErr: invalid credentials (data 52e)")
        uac = _int((self.dit[self._dns[key]].get("userAccountControl") or [b"0"])[0]) or 0
        if uac & UAC_ACCOUNTDISABLE:
            raise LdapError(49, "80090308: LdapErr: invalid credentials (data 533, account disabled)")
        return self._dns[key]

    def _account(self, name: str) -> str | None:
        if "=" in name:
            try:
                key = dn_key(name)
            except LdapError:
                return None
            return key if key in self._dns else None
        if "\\" in name:
            domain, _, sam = name.partition("\\")
            if domain.casefold() != DEMO_NETBIOS.casefold():
                return None
            return self._holder("samaccountname", sam.encode())
        if "@" in name:
            return self._holder("userprincipalname", name.encode())
        return None

    def _holder(self, attribute: str, value: bytes, exclude: str | None = None) -> str | None:
        wanted = _fold(value)
        for key, canonical in self._dns.items():
            if key == exclude:
                continue
            if any(_fold(v) == wanted for v in self.dit[canonical].get(attribute) or ()):
                return key
        return None

    # -- search --------------------------------------------------------------------------
    def search(self, base: str, scope: int, test: Test) -> list[str]:
        """Keys of the entries in scope that pass ``test``, parents before children."""
        if not base:
            if scope != 0:
                raise LdapError(32, "the root DSE has no children: search below the domain")
            return [""] if test(self.root_dse()) else []
        canonical, key = self._name(base)
        if key not in self._dns:
            raise LdapError(32, f"no such object: {canonical}", self._matched(canonical))
        if scope == 0:
            candidates = [key]
        elif scope == 1:
            candidates = [k for k in self._children.get(key, ()) if k not in self.partitions]
        else:
            candidates = self._subtree(key, within=True)
        return [k for k in candidates if test(self.dit[self._dns[k]])]

    def chain(self, attribute: str, dn: str) -> set[str]:
        """Keys of the entries whose ``attribute`` reaches ``dn`` in one or more hops.

        ``(member:1.2.840.113556.1.4.1941:=X)`` matches the groups X is in, nested
        included: walk ``memberOf`` up from X; ``memberOf:…:=G`` walks ``member`` down
        from G; ``manager`` walks ``directReports``. Cycles end the walk.
        """
        follow = FORWARD_LINKS.get(attribute) or BACK_LINKS.get(attribute)
        try:
            start = dn_key(dn)
        except LdapError:
            return set()
        if follow is None or start not in self._dns:
            return set()
        found: set[str] = set()
        frontier = [start]
        while frontier:
            for value in self.dit[self._dns[frontier.pop()]].get(follow) or ():
                key = _text(value).lower()
                if key not in found:
                    found.add(key)
                    frontier.append(key)
        return found

    def root_dse(self) -> Entry:
        """The root DSE's change-tracking part: which DC this is, its highest committed USN."""
        root = Attributes()
        root["objectClass"] = [b"top"]
        root["dsServiceName"] = [f"CN=NTDS Settings,CN=DEMO,CN=Servers,CN=Configuration,{self._dns.get(self.root_key, '')}".encode()]
        root["highestCommittedUSN"] = [str(self.usn).encode()]
        return root

    def project(self, key: str, attributes: list[str], types_only: bool) -> dict | None:
        """One search result entry in the mock's response shape (``None`` if gone)."""
        canonical = self._dns.get(key, "" if key == "" else None)
        if canonical is None:
            return None
        entry = self.dit[canonical] if key else self.root_dse()
        wanted = {a.split(";", 1)[0].lower() for a in attributes}
        everything = not wanted or "*" in wanted
        if wanted == {"1.1"}:
            wanted = set()
        out = [
            {"type": name, "vals": [] if types_only else list(values)}
            for name, values in entry.items()
            if (everything or name.lower() in wanted) and name.lower() not in SECRETS
        ]
        if "tokengroups" in wanted:  # constructed: only when asked for, by name
            out.append({"type": "tokenGroups", "vals": [] if types_only else self.token_groups(key)})
        return {"object": canonical, "attributes": out}

    def token_groups(self, key: str) -> list[bytes]:
        """``tokenGroups``: the SIDs of every security group ``key`` is in, nested included."""
        sids: list[bytes] = []
        seen: set[str] = set()
        frontier = [key]
        while frontier:
            current = self.dit[self._dns[frontier.pop()]]
            for value in current.get("memberOf") or ():
                group_key = _text(value).lower()
                if group_key in seen:
                    continue
                seen.add(group_key)
                frontier.append(group_key)
                group = self.dit[self._dns[group_key]]
                group_type = _int((group.get("groupType") or [b"0"])[0]) or 0
                if group_type & 0x80000000 and group.get("objectSid"):
                    sids.append(group["objectSid"][0])
        return sids

    # -- add -----------------------------------------------------------------------------
    def add(self, dn: str, attributes: Mapping[str, list[bytes]]) -> None:
        canonical, key = self._name(dn)
        if key in self._dns:
            raise LdapError(68, f"entry already exists: {self._dns[key]}")
        rdns = parse_dn(canonical)
        parent = self._dns.get(parent_dn(canonical).lower())
        if parent is None:
            raise LdapError(32, f"the parent does not exist: {parent_dn(canonical)}", self._matched(canonical))
        canonical = f"{_join(rdns[:1])},{parent}"  # the parent as the directory spells it
        entry = Attributes()
        password: list[bytes] | None = None
        for name, values in attributes.items():
            base = name.split(";", 1)[0]
            low = base.lower()
            if low in SYSTEM_ONLY:
                raise LdapError(19, f"{base} is system-only and cannot be set")
            if low in BACK_LINKS:
                raise LdapError(53, f"{base} is a back-link: change {BACK_LINKS[low]} on the other object")
            if low == "userpassword":
                raise LdapError(53, "set passwords with unicodePwd")
            if low == "unicodepwd":
                password = list(values)
                continue
            if not values:
                continue
            if low in FORWARD_LINKS:
                values = self._link_targets(values)
            keys = [_value_key(low, v) for v in values]
            if len(set(keys)) != len(keys):
                raise LdapError(20, f"{base} holds the same value twice")
            entry[base] = list(values)
        structural = _structural(entry.get("objectClass") or ())
        if structural is None:
            raise LdapError(65, "objectClass is missing or names no structural class the demo knows")
        entry["objectClass"] = [c.encode() for c in OBJECT_CLASSES[structural]]
        naming = NAMING_ATTRIBUTE.get(structural, "CN")
        if rdns[0][0] != naming:
            raise LdapError(64, f"a {structural} is named by {naming}=, not {rdns[0][0]}=")
        parent_class = self._class_of(parent.lower())
        if parent_class not in POSSIBLE_PARENTS[structural]:
            raise LdapError(64, f"a {structural} cannot be created below a {parent_class}")
        for name in list(entry):
            low = name.lower()
            multi_ok = low not in SINGLE_VALUED and not (low == "description" and structural in SAM_CLASSES)
            if len(entry[name]) > 1 and not multi_ok:
                raise LdapError(19, f"{name} is single-valued")
        if structural in SAM_CLASSES:
            if not entry.get("sAMAccountName"):
                entry["sAMAccountName"] = [f"${secrets.token_hex(3).upper()}-{secrets.token_hex(6).upper()}".encode()]
            self._check_unique(entry, None)
        if structural == "group" and not entry.get("groupType"):
            entry["groupType"] = [b"-2147483646"]
        if structural in ("user", "computer"):
            if not entry.get("userAccountControl"):
                entry["userAccountControl"] = [str(UAC_NEW_USER).encode()]
            if password is None:
                self._check_enable(entry, has_password=False)
        secret = self._password_from(password, entry) if password is not None else None
        self._operational(entry, canonical, structural)
        self.dit[canonical] = entry
        self._index(canonical)
        if secret is not None:
            self._set_password(key, entry, secret)
        for forward in FORWARD_LINKS:
            for value in entry.get(forward) or ():
                self._link(canonical, forward, _text(value).lower(), True)

    def _check_unique(self, entry: Entry, exclude: str | None, changed: set[str] | None = None) -> None:
        """sAMAccountName (domain-wide, 68) and userPrincipalName (forest-wide, 19) uniqueness."""
        if changed is None or "samaccountname" in changed:
            for value in entry.get("sAMAccountName") or ():
                text = _text(value)
                if not text.strip() or any(c in _SAM_FORBIDDEN or ord(c) < 0x20 for c in text):
                    raise LdapError(19, f"the sAMAccountName {text!r} holds a character AD does not allow")
                holder = self._holder("samaccountname", value, exclude)
                if holder is not None:
                    raise LdapError(68, f"the sAMAccountName {text!r} is already in use by {self._dns[holder]}")
        if changed is None or "userprincipalname" in changed:
            for value in entry.get("userPrincipalName") or ():
                holder = self._holder("userprincipalname", value, exclude)
                if holder is not None:
                    raise LdapError(19, f"the userPrincipalName {_text(value)!r} is not unique in the forest ({self._dns[holder]})")

    @staticmethod
    def _check_enable(entry: Entry, has_password: bool) -> None:
        uac = _int((entry.get("userAccountControl") or [b"0"])[0])
        if uac is None:
            raise LdapError(21, "userAccountControl must be an integer")
        if not has_password and not uac & (UAC_ACCOUNTDISABLE | UAC_PASSWD_NOTREQD):
            raise LdapError(53, "0000052D: an account without a password cannot be enabled")

    # -- passwords -----------------------------------------------------------------------
    def _password_from(self, values: list[bytes], entry: Entry) -> str:
        if len(values) != 1:
            raise LdapError(19, "00000056: unicodePwd takes exactly one value")
        raw = values[0]
        try:
            text = raw.decode("utf-16-le") if len(raw) % 2 == 0 else ""
        except UnicodeDecodeError:
            text = ""
        if len(text) < 2 or text[0] != '"' or text[-1] != '"':
            raise LdapError(19, "00000056: unicodePwd must be the password in double quotes, encoded as UTF-16-LE")
        password = text[1:-1]
        problem = self._policy_problem(password, entry)
        if problem:
            raise LdapError(19, f"0000052D: the password does not meet the domain's password policy ({problem})")
        return password

    def _policy_problem(self, password: str, entry: Entry) -> str | None:
        root = self.dit[self._dns[self.root_key]]
        minimum = _int((root.get("minPwdLength") or [b"0"])[0]) or 0
        complex_ = (_int((root.get("pwdProperties") or [b"0"])[0]) or 0) & 1
        if len(password) < minimum:
            return f"shorter than {minimum} characters"
        if not complex_:
            return None
        kinds = sum((
            any(c.isupper() for c in password),
            any(c.islower() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
            any(c.isalpha() and not c.isupper() and not c.islower() for c in password),
        ))
        if kinds < 3:
            return "it needs three of: upper case, lower case, digits, symbols"
        folded = password.casefold()
        sam = _fold((entry.get("sAMAccountName") or [b""])[0])
        if len(sam) >= 3 and sam in folded:
            return "it contains the account name"
        display = _fold((entry.get("displayName") or [b""])[0])
        for separator in ",.-_#\t":
            display = display.replace(separator, " ")
        if any(len(token) >= 3 and token in folded for token in display.split()):
            return "it contains part of the user's name"
        return None

    # -- modify --------------------------------------------------------------------------
    def modify(self, dn: str, changes: list[tuple[int, str, list[bytes]]]) -> None:
        canonical, key, entry = self._require(dn)
        structural = _structural(entry.get("objectClass") or ())
        rdn_attribute = parse_dn(canonical)[0][0].lower()
        new = Attributes({name: list(values) for name, values in entry.items()})
        password: str | None = None
        changed: set[str] = set()
        for operation, name, values in changes:
            base = name.split(";", 1)[0]
            low = base.lower()
            changed.add(low)
            if low in BACK_LINKS:
                raise LdapError(53, f"{base} is a back-link and cannot be modified: change {BACK_LINKS[low]} on the other object")
            if low in SYSTEM_ONLY:
                raise LdapError(19, f"{base} is system-only and cannot be modified")
            if low in (rdn_attribute, "name"):
                raise LdapError(67, f"{base} names the object: rename it with modify DN")
            if low == "objectclass":
                raise LdapError(69, "the demo directory does not change objectClass")
            if low == "userpassword":
                raise LdapError(53, "set passwords with unicodePwd")
            if low == "unicodepwd":
                if operation != OP_REPLACE:
                    raise LdapError(53, "00000056: only a password reset (replace unicodePwd) is supported by the demo")
                password = self._password_from(values, new)
                continue
            if low in FORWARD_LINKS and values:
                if operation == OP_DELETE:  # the target may be gone already
                    values = [_canonical_value(v) for v in values]
                else:
                    values = self._link_targets(values)
            single = low in SINGLE_VALUED or (low == "description" and structural in SAM_CLASSES)
            self._apply(new, base, low, operation, values, single)
        if structural in SAM_CLASSES:
            self._check_unique(new, key, changed)
        if structural in ("user", "computer") and password is None:
            old_uac = (entry.get("userAccountControl") or [b""])[0]
            if (new.get("userAccountControl") or [b""])[0] != old_uac:
                self._check_enable(new, key in self._has_password)
        for forward in FORWARD_LINKS:
            before = {_text(v).lower() for v in entry.get(forward) or ()}
            after = {_text(v).lower() for v in new.get(forward) or ()}
            for target in after - before:
                self._link(canonical, forward, target, True)
            for target in before - after:
                self._link(canonical, forward, target, False)
        self.dit[canonical] = new
        if password is not None:
            self._set_password(key, new, password)
        self._touch(new)

    @staticmethod
    def _apply(entry: Entry, name: str, low: str, operation: int, values: list[bytes], single: bool) -> None:
        current = list(entry.get(name) or ())
        keys = [_value_key(low, v) for v in current]
        if operation == OP_ADD:
            if not values:
                raise LdapError(2, f"adding no values to {name}")
            for value in values:
                value_key = _value_key(low, value)
                if value_key in keys:
                    code = 68 if low == "member" else 20
                    raise LdapError(code, f"{name} already holds {_text(value)!r}")
                current.append(value)
                keys.append(value_key)
            if single and len(current) > 1:
                raise LdapError(20, f"{name} is single-valued and already has a value")
        elif operation == OP_DELETE:
            if not current:
                raise LdapError(16, f"{name} has no value to delete")
            if not values:
                current = []
            for value in values:
                value_key = _value_key(low, value if low not in DN_VALUED else _canonical_value(value))
                if value_key not in keys:
                    code = 53 if low == "member" else 16
                    raise LdapError(code, f"{name} does not hold {_text(value)!r}")
                index = keys.index(value_key)
                del current[index], keys[index]
        elif operation == OP_REPLACE:
            if len(set(_value_key(low, v) for v in values)) != len(values):
                raise LdapError(20, f"{name} would hold the same value twice")
            if single and len(values) > 1:
                raise LdapError(19, f"{name} is single-valued")
            current = list(values)
        elif operation == OP_INCREMENT:
            if not current:
                raise LdapError(16, f"{name} has no value to increment")
            step = _int(values[0]) if len(values) == 1 else None
            if step is None or any(_int(v) is None for v in current):
                raise LdapError(21, f"{name} cannot be incremented")
            current = [str(int(v) + step).encode() for v in current]
        else:
            raise LdapError(2, f"unknown modify operation {operation}")
        if current:
            entry[name] = current
        elif name in entry:
            del entry[name]

    # -- modify DN -----------------------------------------------------------------------
    def rename(self, dn: str, new_rdn: str, delete_old: bool, new_superior: str | None) -> str:
        canonical, key, entry = self._require(dn)
        if key == self.root_key:
            raise LdapError(53, "the domain root cannot be moved")
        old_rdns = parse_dn(canonical)
        rdn_parts = parse_dn(new_rdn)
        if len(rdn_parts) != 1:
            raise LdapError(34, f"invalid new RDN: {new_rdn!r}")
        attribute, value = rdn_parts[0]
        if attribute != old_rdns[0][0]:
            raise LdapError(53, f"{canonical} is named by {old_rdns[0][0]}=, not {attribute}=")
        if not delete_old and value.casefold() != old_rdns[0][1].casefold():
            raise LdapError(53, "deleteoldrdn must be true: the naming attribute is single-valued")
        parent = _join(old_rdns[1:])
        if new_superior:
            parent, parent_key, _ = self._require(new_superior)
            if parent_key == key or parent_key.endswith("," + key):
                raise LdapError(53, "an object cannot be moved below itself")
            structural = _structural(entry.get("objectClass") or ())
            parent_class = self._class_of(parent_key)
            if structural and parent_class not in POSSIBLE_PARENTS[structural]:
                raise LdapError(64, f"a {structural} cannot be moved below a {parent_class}")
        new_dn = _join(((attribute, value), *parse_dn(parent)))
        new_key = new_dn.lower()
        if new_key != key and new_key in self._dns:
            raise LdapError(68, f"entry already exists: {self._dns[new_key]}")
        moved = self._subtree(key)
        old_dns = {k: self._dns[k] for k in moved}
        renames = {k: old_dns[k][: len(old_dns[k]) - len(canonical)] + new_dn for k in moved}
        for old_key in reversed(moved):
            self._unindex(old_key)
        for old_key in moved:
            moved_dn = renames[old_key]
            attributes = self.dit.pop(old_dns[old_key])
            attributes["distinguishedName"] = [moved_dn.encode()]
            self.dit[moved_dn] = attributes
            self._index(moved_dn)
            if old_key in self._passwords:
                self._passwords[moved_dn.lower()] = self._passwords.pop(old_key)
            if old_key in self._has_password:
                self._has_password.discard(old_key)
                self._has_password.add(moved_dn.lower())
        moved_entry = self.dit[new_dn]
        naming = "cn" if attribute == "CN" else attribute.lower()
        moved_entry[naming] = [value.encode()]
        moved_entry["name"] = [value.encode()]
        self._touch(moved_entry)
        self._rewrite_references({k: v.encode() for k, v in renames.items()})
        return new_dn

    def _rewrite_references(self, renames: dict[str, bytes]) -> None:
        for canonical in self._dns.values():
            entry = self.dit[canonical]
            for name in ("member", "manager", "memberOf", "directReports"):
                values = entry.get(name)
                if values and any(_text(v).lower() in renames for v in values):
                    entry[name] = [renames.get(_text(v).lower(), v) for v in values]

    # -- delete --------------------------------------------------------------------------
    def delete(self, dn: str) -> None:
        canonical, key, entry = self._require(dn)
        if key == self.root_key:
            raise LdapError(53, "the domain root cannot be deleted")
        if self._children.get(key):
            raise LdapError(66, f"{canonical} has child objects: delete them first")
        for forward in FORWARD_LINKS:
            for value in entry.get(forward) or ():
                self._link(canonical, forward, _text(value).lower(), False)
        for back, forward in BACK_LINKS.items():
            for value in entry.get(back) or ():
                source = self.dit[self._dns[_text(value).lower()]]
                kept = [v for v in source.get(forward) or () if _text(v).lower() != key]
                if kept:
                    source[forward] = kept
                else:
                    del source[forward]
                self._touch(source)
        del self.dit[canonical]
        self._unindex(key)
        self._passwords.pop(key, None)
        self._has_password.discard(key)

    # -- compare -------------------------------------------------------------------------
    def compare(self, dn: str, attribute: str, value: bytes) -> bool:
        _canonical, _key, entry = self._require(dn)
        low = _attribute(attribute)
        if low in SECRETS or not entry.get(low):
            raise LdapError(16, f"{attribute} has no value")
        return _equality(low, value)(entry)


def _canonical_value(value: bytes) -> bytes:
    """A DN value in canonical spelling, for matching against stored DN values."""
    try:
        return canonical_dn(value.decode("utf-8")).encode()
    except (LdapError, UnicodeDecodeError):
        return value


# -- the ldap3 strategy ------------------------------------------------------------------
@dataclasses.dataclass
class _PagedSearch:
    keys: list[str]
    attributes: list[str]
    types_only: bool
    sent: int = 0


def _result(code: int = 0, message: str = "", matched: str = "") -> dict[str, Any]:
    return {"resultCode": code, "matchedDN": matched, "diagnosticMessage": message, "referral": None}


def _formatted(value: bytes) -> str | bytes:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value


def _dn_text(value: Any) -> str:
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise LdapError(34, "a DN is not UTF-8") from None


class DemoStrategy(MockSyncStrategy):
    """ldap3's ``MOCK_SYNC`` strategy with every operation answered by :class:`DemoController`.

    ldap3 still encodes each request and decodes each response; only the ``mock_*``
    methods (which receive the ASN.1 request) are replaced. Paged-search cookies live
    on the strategy, so, as with AD, a cookie is only valid on its own connection.
    """

    def __init__(self, connection: ldap3.Connection):
        super().__init__(connection)
        self.controller: DemoController = connection.server.demo
        self._paged: dict[bytes, _PagedSearch] = {}

    def _answer(self, action: Callable[[], Any]) -> dict[str, Any]:
        try:
            with self.controller.lock:
                action()
        except LdapError as error:
            return _result(error.code, error.message, error.matched)
        return _result()

    def mock_bind(self, request_message: Any, controls: Any) -> dict[str, Any]:
        authentication = request_message["authentication"]
        if authentication.getName() != "simple":
            return {**_result(7, "the demo directory accepts simple binds only"), "serverSaslCreds": None}

        def bind() -> None:
            self.bound = self.controller.bind(_dn_text(request_message["name"]), bytes(authentication["simple"]))

        return {**self._answer(bind), "serverSaslCreds": None}

    def mock_add(self, request_message: Any, controls: Any) -> dict[str, Any]:
        def add() -> None:
            attributes: dict[str, list[bytes]] = {}
            for attribute in request_message["attributes"]:
                attributes.setdefault(str(attribute["type"]), []).extend(bytes(v) for v in attribute["vals"])
            self.controller.add(_dn_text(request_message["entry"]), attributes)

        return self._answer(add)

    def mock_modify(self, request_message: Any, controls: Any) -> dict[str, Any]:
        def modify() -> None:
            changes = [
                (int(change["operation"]), str(change["modification"]["type"]), [bytes(v) for v in change["modification"]["vals"]])
                for change in request_message["changes"]
            ]
            self.controller.modify(_dn_text(request_message["object"]), changes)

        return self._answer(modify)

    def mock_modify_dn(self, request_message: Any, controls: Any) -> dict[str, Any]:
        superior = request_message["newSuperior"]
        return self._answer(lambda: self.controller.rename(
            _dn_text(request_message["entry"]),
            _dn_text(request_message["newrdn"]),
            bool(request_message["deleteoldrdn"]),
            _dn_text(superior) if superior is not None and superior.hasValue() else None,
        ))

    def mock_delete(self, request_message: Any, controls: Any) -> dict[str, Any]:
        return self._answer(lambda: self.controller.delete(_dn_text(request_message)))

    def mock_compare(self, request_message: Any, controls: Any) -> dict[str, Any]:
        outcome: list[bool] = []
        ava = request_message["ava"]
        answer = self._answer(lambda: outcome.append(self.controller.compare(
            _dn_text(request_message["entry"]), str(ava["attributeDesc"]), bytes(ava["assertionValue"]))))
        if outcome:
            answer["resultCode"] = 6 if outcome[0] else 5
        return answer

    def post_send_search(self, payload: Any) -> list[dict]:
        """mockSync's ``post_send_search`` with a lean entry conversion.

        The entries carry what ldap3 gives for a real server without a schema:
        ``dn``, ``raw_dn``, ``raw_attributes`` (bytes) and ``attributes`` (text where
        the bytes are UTF-8), with requested but missing attributes as empty lists.
        """
        _message_id, message_type, request, controls = payload
        self.connection.response = []
        self.connection.result = {}
        if message_type != "searchRequest":
            return self.connection.response
        entries, result = self.mock_search(request, controls)
        requested = [str(a) for a in request["attributes"]] if self.connection.empty_attributes else []
        requested = [a for a in requested if a not in ("*", "+", "1.1")]
        for entry in entries:
            raw = Attributes({item["type"]: item["vals"] for item in entry["attributes"]})
            for name in requested:
                if name not in raw:
                    raw[name] = []
            self.connection.response.append({
                "type": "searchResEntry",
                "dn": entry["object"],
                "raw_dn": entry["object"].encode(),
                "raw_attributes": raw,
                "attributes": Attributes({name: [_formatted(v) for v in values] for name, values in raw.items()}),
            })
        done = search_result_done_response_to_dict(result)
        done["type"] = "searchResDone"
        self.connection.result = done
        if self.connection.raise_exceptions and done["result"] not in DO_NOT_RAISE_EXCEPTIONS:
            raise LDAPOperationResult(result=done["result"], description=done["description"], dn=done["dn"],
                                      message=done["message"], response_type=done["type"])
        return self.connection.response

    def mock_search(self, request_message: Any, controls: Any) -> tuple[list[dict], dict[str, Any]]:
        try:
            with self.controller.lock:
                return self._search(request_message, controls)
        except LdapError as error:
            return [], _result(error.code, error.message, error.matched)

    def _search(self, request: Any, controls: Any) -> tuple[list[dict], dict[str, Any]]:
        paged: dict | None = None
        for control in controls or ():
            if not control:
                continue
            oid, spec = self.decode_control(control)
            if oid == ops.PAGED_RESULTS:
                paged = spec["value"]
            elif spec["criticality"]:
                raise LdapError(12, f"the critical control {oid} is not supported")
        if paged and paged["cookie"]:
            state = self._paged.pop(bytes(paged["cookie"]), None)
            if state is None:
                raise LdapError(53, "the paged search cookie is not valid on this connection")
        else:
            test = compile_filter(request["filter"], self.controller.chain)
            attributes = [str(a) for a in request["attributes"]]
            if int(request["scope"]) != 0 and any(a.lower() == "tokengroups" for a in attributes):
                raise LdapError(1, "00002120: tokenGroups can only be read with a base-scope search")
            keys = self.controller.search(_dn_text(request["baseObject"]), int(request["scope"]), test)
            state = _PagedSearch(keys, attributes, bool(request["typesOnly"]))
        if paged is None:
            limit = min(int(request["sizeLimit"]) or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
            entries = self._entries(state, limit)
            code = 4 if len(state.keys) > limit else 0
            return entries, _result(code, "size limit exceeded" if code else "")
        size = min(int(paged["size"]), MAX_PAGE_SIZE)
        entries = self._entries(state, size) if size else []
        state.sent += size
        cookie = b""
        if size and state.sent < len(state.keys):
            cookie = secrets.token_bytes(8)
            self._paged[cookie] = state
        result = _result()
        result["controls"] = [self.decode_control(paged_search_control(False, 0, cookie))]
        return entries, result

    def _entries(self, state: _PagedSearch, count: int) -> list[dict]:
        chosen = state.keys[state.sent : state.sent + count]
        projected = (self.controller.project(key, state.attributes, state.types_only) for key in chosen)
        return [entry for entry in projected if entry is not None]


def demo_connection(server: ldap3.Server, user: str, password: str) -> ldap3.Connection:
    """A bound ``MOCK_SYNC`` connection to the demo server, driven by :class:`DemoStrategy`."""
    conn = ldap3.Connection(
        server,
        user=user,
        password=password,
        client_strategy=ldap3.MOCK_SYNC,
        raise_exceptions=False,
        auto_referrals=False,
        read_only=False,
    )
    # ldap3 picks the strategy class from the constant; swap in ours and re-map the
    # five methods Connection.__init__ copied from the strategy it made.
    conn.strategy = DemoStrategy(conn)
    conn.send = conn.strategy.send
    conn.open = conn.strategy.open
    conn.get_response = conn.strategy.get_response
    conn.post_send_single_response = conn.strategy.post_send_single_response
    conn.post_send_search = conn.strategy.post_send_search
    if not conn.bind():
        raise bind_error(DEMO_URL, user, conn.result or {})
    return conn


# -- the dialect -------------------------------------------------------------------------
# -- opening the demo --------------------------------------------------------------------
def demo_config() -> Config:
    """The configuration the demo runs with: the seed's domain, default layout and services,
    Hosted Exchange and OCS on their cmdlet adapters (``exchange_powershell``,
    ``lync_powershell``: :class:`core.demo.services.DemoServices` points them at the
    demo's in-process PowerShell server), the tenants' pool and conferencing policy as
    :mod:`core.demo.platform` provisions them."""
    from core.demo.platform import CONFERENCING_POLICY, DEMO_POOL

    cmdlets = {"exchange": ("exchange_powershell", {}),
               "ocs": ("lync_powershell", {"registrar_pool": DEMO_POOL, "policies": {"ConferencingPolicy": CONFERENCING_POLICY}})}
    services = {}
    for key, service in DEFAULT_SERVICES.items():
        adapter, options = cmdlets.get(key, (service.adapter, {}))
        services[key] = ServiceConfig(dataclasses.replace(service, adapter=adapter), options)
    return Config(
        directory=DirectoryConfig(urls=(DEMO_URL,), base_dn=DEMO_BASE_DN, hosting_ou=DEMO_HOSTING_OU, bind_user=SP_ADMIN_UPN),
        layout=LayoutConfig(),
        services=services,
    )


@functools.lru_cache(maxsize=2)
def _seed(number: int) -> Any:
    from core.demo.seed import build_seed

    return build_seed(number)


@dataclasses.dataclass(frozen=True)
class DemoServer:
    server: ldap3.Server
    controller: DemoController
    seed: Any  # core.demo.seed.Seed
    passwords: Mapping[str, str]  # operator name -> password, in memory only

    def find_operator(self, name: str | None) -> Any | None:
        """The seed operator ``name`` names (UPN, sAMAccountName, short name or DN)."""
        wanted = (name or "").casefold()
        for account in self.seed.operators:
            if wanted in (account.upn.casefold(), account.sam.casefold(), account.name.casefold()):
                return account
            try:
                if "=" in wanted and dn_key(account.dn) == dn_key(name or ""):
                    return account
            except LdapError:
                return None
        return None

    def connect(self, operator_name: str = SP_ADMIN) -> ldap3.Connection:
        account = self.seed.operator(operator_name)
        return demo_connection(self.server, account.upn, self.passwords[account.name])


def build_demo_server(seed: int = 2026) -> DemoServer:
    """Load the seed, with the Exchange and Lync platform's objects and stamps
    (:func:`core.demo.platform.platform_entries`), into a fresh in-process server
    (blocking; about a tenth of a second)."""
    from core.demo.platform import platform_entries

    data = _seed(seed)
    server = ldap3.Server("demo.example.net", use_ssl=True, get_info=ldap3.NONE)
    # use_ssl: nothing leaves the process, so the demo is as private as LDAPS and the AD
    # dialect's TLS check for passwords holds. No socket is opened for MOCK_SYNC.
    server.dit = Attributes()
    controller = DemoController(server.dit)
    server.demo = controller
    controller.load(data.base_dn, platform_entries(data))
    passwords = {}
    for account in data.operators:
        passwords[account.name] = secrets.token_urlsafe(18) + "aA1!"
        controller.set_secret(account.dn, passwords[account.name])
    return DemoServer(server, controller, data, passwords)


def _demo_directory(config: Config, demo: DemoServer, account: Any) -> Config:
    operator = config.directory.operator
    directory = dataclasses.replace(
        config.directory,
        urls=(DEMO_URL,),
        base_dn=DEMO_BASE_DN,
        hosting_ou=DEMO_HOSTING_OU,
        bind_user=account.upn,
        password_env=None,
        password_file=None,
        operator=operator if demo.find_operator(operator) else None,
        ca_file=None,
        tls_verify=True,
    )
    # The demo is a fixed world: its customers' tenant map is the seed's, unless the
    # given configuration maps them itself.
    tenants = config.tenants if len(config.tenants) else demo_tenants(demo.seed, config)
    return dataclasses.replace(config, directory=directory, tenants=tenants)


def demo_tenants(seed: Any, config: Config) -> TenantMap:
    """The seed's customers as an SP would map them (code, domains, a UEM tenant for
    every blackberry-adapter service of ``config``, the Lync hosting tenant id
    :mod:`core.demo.platform` gives its users for every lync_powershell one)."""
    from core.demo.platform import lync_tenant_id

    keys = tuple(key for key, entry in config.services.items() if entry.service.adapter == "blackberry")
    lync = [key for key, entry in config.services.items() if entry.service.adapter == "lync_powershell"]
    adapters = {key: entry.service.adapter for key, entry in config.services.items()}
    tenants = seed.tenants(keys)
    for table in tenants.values():
        table.update({key: {"tenant_id": lync_tenant_id(table["code"])} for key in lync})
    return parse_tenants(tenants, "the demo's tenant map", adapters)


async def open_demo(config: Config | None = None, *, seed: int = 2026) -> Directory:
    """A :class:`Directory` on a freshly loaded in-process demo domain.

    ``config`` (default :func:`demo_config`) keeps its layout, services, console and
    pool/page settings; its directory section is pointed at the demo domain. The pool
    binds as the seed operator ``directory.bind_user`` names, else as sp-admin.
    """
    base = config or demo_config()
    demo = await asyncio.to_thread(build_demo_server, seed)
    account = demo.find_operator(base.directory.bind_user) or demo.seed.operator(SP_ADMIN)
    demo_cfg = _demo_directory(base, demo, account)
    pool = ConnectionPool(lambda: demo.connect(account.name), demo_cfg.directory.pool_size)
    await pool.start()
    from core.demo.services import DemoServices

    return Directory(demo_cfg, pool, bound_as=account.upn, server=lambda: DEMO_URL, services=DemoServices(demo_cfg, demo.seed, demo.connect),
                     memory_instance=uuid.uuid4().hex)
