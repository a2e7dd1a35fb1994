"""One user's details in a panel: identity, services and plans, roles, groups, addresses
and every attribute read — all as literal text. ``m`` moves the user, ``esc`` closes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Awaitable, Callable

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from core.escape import parent_dn, rdn_value
from core.errors import TenantryError
from core.model import User
from core.text import plain

if TYPE_CHECKING:
    from core.directory import Directory

log = logging.getLogger("tenantry.console")

LABEL = 11
SHOWN_ABOVE = {"cn", "displayname", "userprincipalname", "samaccountname", "mail", "memberof", "proxyaddresses", "msrtcsip-primaryuseraddress"}


def _group_name(dn: str) -> str:
    try:
        return f"{rdn_value(dn)} ({rdn_value(parent_dn(dn))})"
    except Exception:
        return dn


def _grid(rows: list[tuple[str, str]], label_width: int = LABEL, label_style: str = "bold") -> Table:
    """Label | value, the value wrapping inside its column; every string sanitised."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=label_width, no_wrap=True, overflow="ellipsis", style=label_style)
    grid.add_column(ratio=1, overflow="fold")
    for label, value in rows:
        grid.add_row(Text(plain(label)), Text(plain(value, single_line=False)))
    return grid


def _listed(label: str, values: list[str]) -> list[tuple[str, str]]:
    return [(label if i == 0 else "", v) for i, v in enumerate(values)] or [(label, "—")]


def detail_view(user: User, customer: str | None = None) -> Group:
    """Everything the panel shows about ``user``, sanitised, never markup."""
    heading = Text.assemble(
        (plain(user.display_name or user.cn), "bold"), "   ",
        ("enabled", "") if user.enabled else ("DISABLED", "bold"),
    )
    identity = [("UPN", user.upn or "—"), ("Username", user.sam), ("Email", user.email or "—"), ("SIP", user.sip or "—")]
    if customer:
        identity.append(("Customer", customer))
    identity.append(("DN", user.dn))
    plans = {pl.service: pl.name for pl in user.plans}
    services = [f"{s} ({plans[s]})" if s in plans else s for s in user.services]
    membership = (
        _listed("Services", services) + _listed("Roles", list(user.roles))
        + _listed("Groups", [_group_name(g) for g in user.groups]) + _listed("Addresses", list(user.proxy_addresses))
    )
    rest = [(name, value) for name, values in user.attributes if name.lower() not in SHOWN_ABOVE for value in values]
    rest = [(name if i == 0 or rest[i - 1][0] != name else "", value) for i, (name, value) in enumerate(rest)]
    width = min(28, max((len(n) for n, _ in rest), default=8))
    return Group(
        heading, _grid(identity), Text(""), _grid(membership), Text(""),
        Text("Attributes", style="bold underline"), _grid(rest, width, "dim"),
    )


class UserDetailScreen(Screen[User | None]):
    """The details panel of one user, read fresh from the directory; dismissed with the
    user when ``m`` asks to move it."""

    AUTO_FOCUS = "#detail"
    BINDINGS = [
        Binding("escape", "close", "Back", id="detail.back"),
        Binding("m", "move", "Move", id="detail.move"),
        Binding("c", "copy", "Copy", id="detail.copy"),
    ]

    def __init__(self, dn: str, directory: Callable[[], Awaitable[Directory]], *, movable: bool = True, customer: str | None = None) -> None:
        super().__init__()
        self.dn = dn
        self._directory = directory
        self.movable = movable
        self.customer = customer
        self.user: User | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="detail"):
            yield Static(Text("reading…", style="italic"), id="detail-text")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True, group="detail", exit_on_error=False)
    async def load(self) -> None:
        shown = self.query_one("#detail-text", Static)
        try:
            directory = await self._directory()
            self.user = await directory.user(self.dn)
        except TenantryError as error:
            shown.update(Text(plain(str(error))))
        except Exception as error:
            log.exception("reading a user failed")
            shown.update(Text(f"The user could not be read ({type(error).__name__}); the details are in the log."))
        else:
            shown.update(detail_view(self.user, self.customer))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("move", "copy"):
            return self.movable
        return True

    def action_close(self) -> None:
        self.dismiss(None)

    def action_move(self) -> None:
        if self.user is None:  # not read (yet): nothing to move
            self.app.bell()
            return
        self.dismiss(self.user)

    def action_copy(self) -> None:
        if self.user is None:  # not read (yet): nothing to copy
            self.app.bell()
            return
        self.dismiss(("copy", self.user))
