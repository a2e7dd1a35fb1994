"""The help screen (``?``): every key that works on the screen below it, with what it
does, grouped — that screen's own keys, the keys that work everywhere, and moving
around. The list is read from the screen's active bindings when ``?`` is pressed, so it
is always the keys as they are (read-only mode's hidden ones are not listed).
``esc``, ``q`` or ``?`` closes it."""

from __future__ import annotations

import re
from dataclasses import replace

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, Static

from core.text import plain

THIS_SCREEN, EVERYWHERE, MOVING = "On this screen", "Everywhere", "Moving around and editing"

KeyGroups = list[tuple[str, list[tuple[str, str]]]]
COPY_ACTIONS = ("screen.copy_text", "copy")  # Textual's ctrl+c: copies a selection, else passes the key on


def screen_name(screen: Screen) -> str:
    """``UserDetailScreen`` → ``User detail``: what the help's title calls a screen."""
    name = re.sub(r"(Screen|Step)$", "", type(screen).__name__) or type(screen).__name__
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", name).capitalize()


def key_groups(screen: Screen) -> KeyGroups:
    """The active keys of ``screen`` as (group, [(key, description)]), in binding order."""
    app = screen.app
    groups: dict[str, list[tuple[str, str]]] = {THIS_SCREEN: [], EVERYWHERE: [], MOVING: []}
    for key, active in screen.active_bindings.items():
        binding, node = active.binding, active.node
        if binding.action in COPY_ACTIONS and (quits := app._bindings.key_to_bindings.get(key)):
            # Textual's copy takes ctrl+c only when text is selected; else the app's runs
            binding, node = replace(quits[0], description=f"{quits[0].description} (copy if selected)"), app
        if not binding.description or not active.enabled:
            continue
        if node is app:
            group = EVERYWHERE
        elif binding.show or binding.id is not None:
            group = THIS_SCREEN
        else:  # a widget's own keys: arrows, paging, tab
            group = MOVING
        groups[group].append((app.get_key_display(binding), binding.description))
    return [(name, keys) for name, keys in groups.items() if keys]


def bound_key(screen: Screen, binding_id: str, default: str) -> str:
    """The key a binding id has now (the config's ``[console.keymap]`` may remap it)."""
    key = getattr(screen.app, "_keymap", {}).get(binding_id, default).split(",")[0].strip()
    return screen.app.get_key_display(Binding(key, ""))


def tasks(screen: Screen) -> Text:
    """The two tasks the console is for, and how to start them, whatever screen this is."""
    move, copy = bound_key(screen, "users.move", "m"), bound_key(screen, "users.copy", "c")
    return Text.assemble(
        ("Move a user", "bold"), f": {move} on the user in its customer's list (enter opens a customer);",
        " space marks several first. ", ("Copy a user", "bold"), f": {copy} there. Anywhere: : then ",
        ("Move a user…", "italic"), " or ", ("Copy a user…", "italic"), ".",
    )


def _keys_table(groups: KeyGroups, key_width: int) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(width=key_width, justify="right", no_wrap=True)
    table.add_column(ratio=1)
    for index, (name, keys) in enumerate(groups):
        if index:
            table.add_row("", "")
        table.add_row("", Text(name, style="bold underline"))
        for key, description in keys:
            table.add_row(Text(plain(key), style="bold"), Text(plain(description)))
    return table


def help_table(groups: KeyGroups) -> Table:
    """The screen's own and the global keys on the left, moving around on the right (so
    the whole list, and the tasks above it, fit 80×24)."""
    left = [group for group in groups if group[0] != MOVING]
    right = [group for group in groups if group[0] == MOVING]
    table = Table.grid(padding=(0, 1))
    table.add_column(ratio=1)
    table.add_column(ratio=1)
    table.add_row(_keys_table(left, 8), _keys_table(right, 9) if right else "")
    return table


class HelpScreen(ModalScreen[None]):
    """The keys of the screen it was opened over (see :func:`key_groups`)."""

    CSS = """
    HelpScreen { align: center middle; }
    #help { width: 72; max-width: 100%; height: 100%; border: round $primary; background: $surface; }
    #help-title { height: 1; padding: 0 1; text-style: bold; }
    #help-tasks { height: auto; margin-bottom: 1; }
    #help-keys { height: 1fr; padding: 0 1; scrollbar-size-vertical: 1; }
    """
    AUTO_FOCUS = "#help-keys"
    BINDINGS = [
        Binding("escape", "close", "Close", id="help.close"),
        Binding("q", "close", "Close", show=False, id="help.q"),
        Binding("question_mark", "close", "Close", show=False, id="help.again"),
    ]

    def __init__(self, title: str, groups: KeyGroups, tasks: Text | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.groups = groups
        self.tasks = tasks

    def compose(self) -> ComposeResult:
        with Vertical(id="help"):
            yield Static(Text(f"Keys — {plain(self.title_text)}", no_wrap=True, overflow="ellipsis"), id="help-title")
            with VerticalScroll(id="help-keys"):
                if self.tasks is not None:  # on every screen: the two tasks and how to start them
                    yield Static(self.tasks, id="help-tasks")
                yield Static(help_table(self.groups), id="help-table")
        yield Footer()

    def action_close(self) -> None:
        self.dismiss(None)
