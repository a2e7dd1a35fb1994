"""Headless output of the read-only commands: aligned plain text or JSON (PRODUCT §5).

Text output passes every directory string through the core sanitiser, so a name
with ESC bytes cannot drive the terminal; JSON keeps values exact (JSON escapes
control characters itself).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Iterable, Sequence

from rich.cells import cell_len

from core.directory import Directory
from core.model import Customer, User
from core.text import json_text, plain


def customer_json(customer: Customer) -> dict[str, Any]:
    return {
        "name": customer.name,
        "reseller": customer.reseller,
        "domains": list(customer.domains),
        "services": list(customer.services),
        "plans": [{"service": p.service, "name": p.name} for p in customer.plans],
        "code": customer.code,
        "dn": customer.dn,
    }


def user_json(user: User) -> dict[str, Any]:
    return {
        "display_name": user.display_name or user.cn,
        "upn": user.upn,
        "sam": user.sam,
        "email": user.email,
        "services": list(user.services),
        "roles": list(user.roles),
        "enabled": user.enabled,
        "dn": user.dn,
    }


async def customers(directory: Directory, args: argparse.Namespace) -> int:
    found = await directory.customers(args.search)
    if args.json:
        print_json([customer_json(c) for c in found])
    else:
        rows = [(c.name, c.reseller or "—", ", ".join(c.domains), ", ".join(c.services)) for c in found]
        _print_table(("CUSTOMER", "RESELLER", "DOMAINS", "SERVICES"), rows)
        print(f"{len(found)} customer{'s' if len(found) != 1 else ''}", file=sys.stderr)
    return 0


async def users(directory: Directory, args: argparse.Namespace) -> int:
    customer = await directory.customer(args.customer)
    found = await directory.users(customer, args.search)
    if args.json:
        print_json([user_json(u) for u in found])
    else:
        rows = [
            (u.display_name or u.cn, u.upn or "", u.email or "", ", ".join(u.services), ", ".join(u.roles), "yes" if u.enabled else "no")
            for u in found
        ]
        _print_table(("NAME", "UPN", "EMAIL", "SERVICES", "ROLES", "ENABLED"), rows)
        print(f"{len(found)} user{'s' if len(found) != 1 else ''} of {plain(customer.name)}", file=sys.stderr)
    return 0


def print_json(value: Any) -> None:
    sys.stdout.write(json_text(value) + "\n")


def _print_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Columns aligned in terminal cells: a CJK character takes two, an accent none."""
    cleaned = [tuple(plain(cell) for cell in row) for row in rows]
    widths = [max([cell_len(h)] + [cell_len(r[i]) for r in cleaned]) for i, h in enumerate(header)]
    for row in (tuple(header), *cleaned):
        print("  ".join(cell + " " * (width - cell_len(cell)) for cell, width in zip(row, widths)).rstrip())
