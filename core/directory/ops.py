"""Blocking LDAP operations on one connection, run in a worker thread.

They accept both ldap3's SAFE_SYNC connections (operations return a tuple) and its
MOCK_SYNC ones (operations return a bool and keep the result on the connection), turn
raw attribute values into ``{lower-case name: [str, ...]}`` and LDAP result codes
into the project's errors.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Iterable

import ldap3

from core.errors import (
    AlreadyExists,
    ChangedUnderneath,
    DirectoryError,
    DirectoryUnavailable,
    NotFound,
    PermissionDenied,
)

PAGED_RESULTS = "1.2.840.113556.1.4.319"
GUID_ATTRIBUTES = frozenset({"objectguid", "invocationid"})
BINARY_ATTRIBUTES = GUID_ATTRIBUTES | {"objectsid", "tokengroups", "repluptodatevector"}

SCOPES = {"base": ldap3.BASE, "one": ldap3.LEVEL, "sub": ldap3.SUBTREE}


@dataclass(frozen=True)
class Entry:
    dn: str
    attributes: dict[str, list[str]]  # lower-case attribute name → values

    def get(self, name: str) -> list[str]:
        return self.attributes.get(name.lower(), [])

    def first(self, name: str) -> str | None:
        values = self.get(name)
        return values[0] if values else None


def _call(conn: Any, method: str, *args: Any, **kwargs: Any) -> tuple[bool, dict, list]:
    outcome = getattr(conn, method)(*args, **kwargs)
    if isinstance(outcome, tuple):
        status, result, response, _request = outcome
    else:
        status, result, response = outcome, conn.result, conn.response
    return bool(status), result or {}, response or []


def _decode(name: str, raw: Iterable[bytes]) -> list[str]:
    if name in BINARY_ATTRIBUTES:
        out = []
        for value in raw:
            if name in GUID_ATTRIBUTES and len(value) == 16:
                out.append(str(uuid.UUID(bytes_le=bytes(value))))
            else:
                out.append(bytes(value).hex())
        return out
    return [v.decode("utf-8", errors="replace") if isinstance(v, (bytes, bytearray)) else str(v) for v in raw]


def to_entries(response: list[dict]) -> list[Entry]:
    entries = []
    for item in response:
        if item.get("type") != "searchResEntry":
            continue
        raw = item.get("raw_attributes") or {}
        attributes = {name.lower(): _decode(name.lower(), values) for name, values in raw.items()}
        entries.append(Entry(item["dn"], attributes))
    return entries


def search_page(
    conn: Any,
    base: str,
    search_filter: str,
    scope: str,
    attributes: list[str],
    page_size: int,
    cookie: bytes | None,
    controls: list[tuple[str, bool, Any]] | None = None,
) -> tuple[list[Entry], bytes | None]:
    """One page of a simple-paged search; the returned cookie is ``None`` at the end."""
    ok, result, response = _call(
        conn,
        "search",
        base,
        search_filter,
        SCOPES[scope],
        attributes=attributes,
        paged_size=page_size,
        paged_cookie=cookie,
        controls=controls,
    )
    code = result.get("result", 0)
    if not ok and code not in (0, 4):  # 4: sizeLimitExceeded still returns the entries
        if code == 32:
            return [], None
        raise result_error(result, f"search below {base}")
    control = (result.get("controls") or {}).get(PAGED_RESULTS)
    next_cookie = control["value"]["cookie"] if control else None
    return to_entries(response), (next_cookie or None)


def search_with_controls(
    conn: Any, base: str, search_filter: str, scope: str, attributes: list[str], controls: list[tuple[str, bool, Any]], doing: str
) -> tuple[list[Entry], dict]:
    """One unpaged search with request ``controls``: the entries and the response's
    controls (by OID); ``doing`` names the search in the error if the DC refuses it."""
    ok, result, response = _call(conn, "search", base, search_filter, SCOPES[scope], attributes=attributes, controls=controls)
    if not ok and result.get("result", 0) != 0:
        raise result_error(result, doing)
    return to_entries(response), result.get("controls") or {}


def search(conn: Any, base: str, search_filter: str, scope: str, attributes: list[str], page_size: int = 500) -> list[Entry]:
    """Every matching entry, page by page (use only where the result set is small)."""
    entries: list[Entry] = []
    cookie: bytes | None = None
    while True:
        page, cookie = search_page(conn, base, search_filter, scope, attributes, page_size, cookie)
        entries.extend(page)
        if not cookie:
            return entries


def read(conn: Any, dn: str, attributes: list[str]) -> Entry | None:
    ok, result, response = _call(conn, "search", dn, "(objectClass=*)", ldap3.BASE, attributes=attributes)
    if not ok:
        if result.get("result") == 32:
            return None
        raise result_error(result, f"reading {dn}")
    entries = to_entries(response)
    return entries[0] if entries else None


def add(conn: Any, dn: str, attributes: dict[str, Any]) -> None:
    object_class = attributes.get("objectClass")
    others = {k: v for k, v in attributes.items() if k != "objectClass"}
    ok, result, _ = _call(conn, "add", dn, object_class, others)
    if not ok:
        raise result_error(result, f"creating {dn}")


def modify(
    conn: Any,
    dn: str,
    changes: dict[str, list[tuple[Any, list[Any]]]],
    *,
    compare_and_swap: bool = False,
    benign: tuple[int, ...] = (),
) -> bool:
    """Apply ``changes``; ``False`` when the server answered with a ``benign`` code."""
    ok, result, _ = _call(conn, "modify", dn, changes)
    if not ok:
        if result.get("result") in benign:
            return False
        if compare_and_swap and result.get("result") in (16, 20):
            raise ChangedUnderneath(f"{dn} was changed by someone else since it was read; nothing was overwritten.")
        raise result_error(result, f"changing {dn}")
    return True


def modify_dn(conn: Any, dn: str, relative_dn: str, new_superior: str | None) -> None:
    ok, result, _ = _call(conn, "modify_dn", dn, relative_dn, new_superior=new_superior)
    if not ok:
        raise result_error(result, f"moving {dn}")


def delete(conn: Any, dn: str) -> None:
    ok, result, _ = _call(conn, "delete", dn)
    if not ok:
        raise result_error(result, f"deleting {dn}")


def result_error(result: dict, doing: str) -> DirectoryError:
    """Turn an LDAP result into one of the project's errors with a clear sentence
    (the LDAP result code is kept as ``ldap_code``, the server's text as ``server_message``)."""
    error = _result_error(result, doing)
    error.ldap_code = result.get("result")
    error.server_message = (result.get("message") or "").strip().split("\n")[0]
    return error


def _result_error(result: dict, doing: str) -> DirectoryError:
    code = result.get("result")
    server_message = (result.get("message") or "").strip().split("\n")[0]
    detail = f" ({server_message})" if server_message else ""
    if code == 32:
        return NotFound(f"The directory has no object for {doing}{detail}.")
    if code == 68:
        return AlreadyExists(f"Something with that name exists already: {doing} failed{detail}.")
    if code == 50:
        return PermissionDenied(f"The bind account is not allowed {doing}{detail}.")
    if code in (51, 52, 81, 82):
        return DirectoryUnavailable(f"The domain controller is unavailable while {doing}{detail}.")
    if code == 19:
        return DirectoryError(f"The domain controller refused {doing}: a constraint was violated{detail}.")
    description = result.get("description") or f"error {code}"
    return DirectoryError(f"The domain controller refused {doing}: {description}{detail}.")
