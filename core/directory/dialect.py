"""Where directories differ: how nested groups are found, objects moved, members changed.

:class:`ActiveDirectory` is the real thing (Samba AD included). The embedded demo
directory subclasses it to cover the gaps of ldap3's in-memory mock.
"""

from __future__ import annotations

from typing import Any

import ldap3

from core.directory import ops
from core.directory.escape import filter_value
from core.errors import DirectoryError

IN_CHAIN = "1.2.840.113556.1.4.1941"


class ActiveDirectory:
    def nested_groups(self, conn: Any, member_dn: str, base_dn: str) -> list[str]:
        """Every group ``member_dn`` belongs to, directly or through other groups."""
        search_filter = f"(&(objectClass=group)(member:{IN_CHAIN}:={filter_value(member_dn)}))"
        return [e.dn for e in ops.search(conn, base_dn, search_filter, "sub", ["cn"])]

    def add(self, conn: Any, dn: str, attributes: dict[str, Any]) -> None:
        ops.add(conn, dn, attributes)

    def set_password(self, conn: Any, dn: str, encoded: bytes) -> None:
        if not (conn.server.ssl or getattr(conn, "tls_started", False)):
            raise DirectoryError("Passwords are only sent over TLS; use ldaps:// or StartTLS.")
        ops.modify(conn, dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [encoded])]})

    def move(self, conn: Any, dn: str, new_rdn: str, new_parent: str) -> str:
        ops.modify_dn(conn, dn, new_rdn, new_parent)
        return f"{new_rdn},{new_parent}"

    def change_member(self, conn: Any, group_dn: str, member_dn: str, add: bool) -> bool:
        """Idempotent: adding a member twice or removing a non-member returns ``False``.

        AD answers 20 (attributeOrValueExists) to the first and 53 (unwillingToPerform)
        or 16 (noSuchAttribute) to the second.
        """
        operation = ldap3.MODIFY_ADD if add else ldap3.MODIFY_DELETE
        benign = (20,) if add else (16, 53)
        return ops.modify(conn, group_dn, {"member": [(operation, [member_dn])]}, benign=benign)
