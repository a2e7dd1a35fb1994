"""The console's commands in the command palette (``:`` or ``ctrl+p``): move or copy a
user (the highlighted one, else picked first), and "go to" a customer — typing ``go to``
and part of a name or domain finds them (:func:`core.customer_lookup.find_customers`: an
exact name or domain, then the local customer index — never a substring scan of the DC)
and offers each match.

Every customer string reaches the palette as ``Content`` built from
:func:`core.text.plain` — never as markup (the palette parses a ``str`` as markup, and so
does the fuzzy matcher's highlighting, which therefore only ever sees our own names).
"""

from __future__ import annotations

import logging
import re
from functools import partial
from typing import TYPE_CHECKING, Callable, Iterator

from textual.command import Hit, Hits, Provider
from textual.content import Content

from core.customer_lookup import find_customers
from core.errors import TenantryError
from core.text import plain

if TYPE_CHECKING:
    from tui.app import TenantryApp

log = logging.getLogger("tenantry.console")

GO_TO = re.compile(r"^\s*go\s*to\s+(?P<name>\S.*)$", re.IGNORECASE)  # "go to NAME", "goto NAME"
CUSTOMER_HITS = 10  # customers offered for one "go to"


class ConsoleCommands(Provider):
    """Move a user…, Copy a user…, Go to customer …, Jobs, Audit log, Keys."""

    @property
    def console(self) -> TenantryApp:
        return self.app  # type: ignore[return-value]

    def _commands(self) -> Iterator[tuple[str, str, Callable[[], object]]]:
        """The console's main commands, the article's two tasks first."""
        app = self.console
        if not app.in_wizard:  # one job at a time: esc out of the wizard first
            if not app.readonly:
                yield "Move a user…", "Move the highlighted user, or find one first, to another customer", app.move_a_user
                yield "Copy a user…", "A new user from the highlighted one, or from one found first", app.copy_a_user
            yield "Go to customer…", "Type “go to” and part of a customer's name or domain", partial(app.go_to_customer, None)
        yield "Jobs", "The journal's jobs: resume or roll back an unfinished one", app.action_jobs
        yield "Audit log", "Who did what to which users, and when; searchable", app.action_audit
        yield "Keys", "List the keys that work here", app.action_help

    async def discover(self) -> Hits:
        """Before anything is typed: these first, in this order (the palette sorts every
        provider's hits by score, and Textual's discovery hits all score 0)."""
        commands = list(self._commands())
        for rank, (name, help_text, command) in enumerate(commands):
            yield Hit(1.0 - rank / 100, Content(name), command, text=name, help=Content(help_text))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, command in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), command, text=name, help=Content(help_text))
        wanted = GO_TO.match(query)
        if wanted is None or self.console.in_wizard:
            return
        try:
            directory = await self.console.wait_for_directory()
            customers = await find_customers(directory, self.console.index_keeper.index, wanted["name"], CUSTOMER_HITS)
        except Exception as error:  # one sentence in the list, never a traceback
            if not isinstance(error, TenantryError):
                log.exception("the palette's customer search failed")
            yield Hit(1.0, Content(plain(_sentence(error))), partial(self.console.show_error, error), text="")
            return
        for rank, customer in enumerate(customers):
            name = plain(customer.name)
            yield Hit(
                0.99 - rank / 1000,  # exact match, then prefixes, then by name: above the fuzzy matches
                Content.assemble("Go to customer ", (name, "bold")),
                partial(self.console.go_to_customer, customer),
                text=f"Go to customer {name}",
                help=Content(plain(", ".join(customer.domains))),
            )


def _sentence(error: BaseException) -> str:
    if isinstance(error, TenantryError):
        return f"Customers could not be searched: {error}"
    return f"Customers could not be searched ({type(error).__name__}); the details are in the log."
