"""Where directories differ: how nested groups are found, objects moved, members changed.

:class:`ActiveDirectory` is the real thing (Samba AD included). The embedded demo
directory subclasses it to cover the gaps of ldap3's in-memory mock.
"""

from __future__ import annotations

from typing import Any

import ldap3

from core.directory import ops
from core.errors import DirectoryError


def _binary_filter(hex_value: str) -> str:
    """A binary value (as hex) in filter form: every byte ``\\xx``."""
    return "".join(f"\\{hex_value[i:i + 2]}" for i in range(0, len(hex_value), 2))


class ActiveDirectory:
    def nested_groups(self, conn: Any, member_dn: str, base_dn: str) -> list[str]:
        """Every security group ``member_dn`` belongs to, directly or through other groups.

        AD computes the transitive closure in the constructed ``tokenGroups`` attribute
        (a base-scope read, about a millisecond); the SIDs are then resolved in one
        indexed search. A whole-tree ``member:1.2.840.113556.1.4.1941:=`` search gives
        the same answer but took about a second on the test DC.
        """
        entry = ops.read(conn, member_dn, ["tokenGroups"])
        sids = entry.get("tokenGroups") if entry else []
        if not sids:
            return []
        clauses = "".join(f"(objectSid={_binary_filter(sid)})" for sid in sids)
        return [e.dn for e in ops.search(conn, base_dn, f"(&(objectClass=group)(|{clauses}))", "sub", ["cn"])]

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

        AD answers 68 (entryAlreadyExists; 20 on some servers) to the first and 53
        (unwillingToPerform) or 16 (noSuchAttribute) to the second.
        """
        operation = ldap3.MODIFY_ADD if add else ldap3.MODIFY_DELETE
        benign = (20, 68) if add else (16, 53)
        return ops.modify(conn, group_dn, {"member": [(operation, [member_dn])]}, benign=benign)
