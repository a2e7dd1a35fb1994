"""The Tenantry console: the App owns the directory, the operator and the global keys.

The first screen paints at once; the directory is opened (or awaited) in a worker
behind it, and screens ask for it with :meth:`TenantryApp.wait_for_directory`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Union
from urllib.parse import urlsplit

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Header

from core import preferences
from core.config import Config, ConsoleConfig
from core.errors import TenantryError
from core.index_keeper import customer_index_keeper
from core.model import Customer, Operator, User
from core.text import plain
from screens.audit import AuditScreen
from screens.customers import CustomersScreen
from screens.help import HelpScreen, key_groups, screen_name, tasks
from screens.user_detail import UserDetailScreen
from screens.users import UsersScreen
from screens.wizard.engine import Finished
from tui.palette import ConsoleCommands
from widgets import ConnectionBanner

if TYPE_CHECKING:
    from core.directory import Directory
    from core.execute import Executor
    from core.session import Session

log = logging.getLogger("tenantry.console")

DirectoryOpener = Callable[[], Awaitable["Directory"]]
DirectorySource = Union["Directory", DirectoryOpener]


class TenantryApp(App[None]):
    """The console.

    ``directory`` is an open :class:`~core.directory.Directory` (the caller keeps
    ownership and closes it) or an async callable that opens one (the app then owns
    it and closes it on exit). ``config`` may be ``None`` when the directory brings
    its own (the demo directory); the console settings then default until it opens.
    """

    CSS_PATH = Path(__file__).with_name("theme.tcss")  # absolute: subclasses elsewhere keep it
    TITLE = "Tenantry"
    BINDINGS = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("colon", "command_palette", "Commands", show=False, id="app.commands"),
        # Textual adds ctrl+p only when no binding opens the palette: both, then.
        Binding("ctrl+p", "command_palette", "palette", show=False, priority=True, tooltip="Open the command palette"),
        # ctrl+c quits when no job runs (a running job's screen binds it first, to cancel).
        Binding("ctrl+c", "quit", "Quit", show=False, id="app.interrupt"),
        # Shifted: j/k, g/G move in every table, and lower-case letters are typed.
        Binding("J", "jobs", "Jobs", id="app.jobs"),
        Binding("A", "audit", "Audit", id="app.audit"),
        # The same two keys unlisted, for the screens whose footer has no room for them
        # (``?`` lists them there): check_action keeps exactly one of each pair active.
        Binding("J", "jobs(False)", "Jobs", show=False, id="app.jobs-unlisted"),
        Binding("A", "audit(False)", "Audit", show=False, id="app.audit-unlisted"),
    ]
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    # The screens whose footer has room for J and A at 80 columns.
    ROOMY_FOOTERS: tuple[type[Screen], ...] = (CustomersScreen, UserDetailScreen, AuditScreen)

    def __init__(
        self,
        directory: DirectorySource,
        config: Config | None = None,
        operator: Operator | None = None,
        *,
        readonly: bool | None = None,
        low_bandwidth: bool | None = None,
        state: Path | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        console = config.console if config else ConsoleConfig()
        self.readonly = console.readonly if readonly is None else readonly
        self.low_bandwidth = console.low_bandwidth if low_bandwidth is None else low_bandwidth
        self.operator = operator
        self._opener: DirectoryOpener | None = directory if callable(directory) else None
        self._owns_directory = self._opener is not None  # what the app opens, it closes
        self.directory: Directory | None = None if self._opener else directory  # type: ignore[assignment]
        self._open_error: TenantryError | None = None
        self._opened = asyncio.Event()  # set once the directory is open, or failed to open
        if self._opener is None:
            self._opened.set()
        self.state = state  # where the journal and audit log live (None: core.state.state_dir())
        self.index_keeper = customer_index_keeper(config, console, state)
        self.session: Session | None = None  # opened on the first write (see wait_for_session)
        self._session_lock = asyncio.Lock()
        if not console.animations or self.low_bandwidth:
            self.animation_level = "none"
        self._settled_console = False
        if config is not None:
            self._console_settings(console)
        self._refresh_title()

    @classmethod
    def for_command_line(cls, args: argparse.Namespace, config: Config | None, opener: DirectoryOpener,
                         state: Path | None = None) -> TenantryApp:
        """The app for ``tenantry [--demo] [--readonly] [--low-bandwidth]`` (flags only ever
        switch on); ``state``: where its journal and audit live (the demo's own folder with
        --demo, as for the subcommands)."""
        return cls(
            opener,
            config,
            readonly=True if getattr(args, "readonly", False) else None,
            low_bandwidth=True if getattr(args, "low_bandwidth", False) else None,
            state=state,
        )

    def _console_settings(self, console: ConsoleConfig) -> None:
        """``[console.keymap]`` remaps binding ids; the theme is the one last picked, else the config's."""
        self._settled_console = True
        self.set_keymap(dict(console.keymap))
        if self.low_bandwidth:
            self.theme = "ansi-dark"  # the terminal's own colours: short escape sequences
            return
        theme = preferences.load(self._state_folder()).get("theme") or console.theme
        if theme in self.available_themes:
            self.theme = theme
        else:
            log.warning("unknown theme %r: the default is used", theme)

    def _state_folder(self) -> Path:
        from core.state import state_dir

        return self.state or state_dir()

    def _remember_theme(self, theme: Any) -> None:
        if not self.low_bandwidth:
            preferences.remember(self._state_folder(), theme=theme.name)

    def run(self, *, mouse: bool | None = None, **kwargs: Any) -> None:  # type: ignore[override]
        """Run; in low-bandwidth mode the mouse is off (no hover repaints over SSH)."""
        return super().run(mouse=not self.low_bandwidth if mouse is None else mouse, **kwargs)

    @property
    def console_config(self) -> ConsoleConfig:
        """The ``[console]`` settings (defaults until a demo directory brings its config)."""
        return self.config.console if self.config else ConsoleConfig()

    # -- screens -----------------------------------------------------------------
    @property
    def search_debounce(self) -> float:
        """Seconds a search (or a live check) waits for the next keystroke."""
        return 0.3 if self.low_bandwidth else 0.15

    def get_default_screen(self) -> Screen:
        return CustomersScreen(self.wait_for_directory, debounce=self.search_debounce, keeper=self.index_keeper)

    def on_customers_screen_customer_selected(self, message: CustomersScreen.CustomerSelected) -> None:
        self.open_customer(message.customer)

    def open_customer(self, customer: Customer, search: str | None = None) -> UsersScreen:
        """Show the users of ``customer`` (optionally already searched)."""
        console = self.console_config
        screen = UsersScreen(customer, self.wait_for_directory, debounce=self.search_debounce, search=search,
                             users_cap=console.users_cap, refresh_seconds=console.refresh_seconds)
        self.push_screen(screen)
        return screen

    # -- moving a user ---------------------------------------------------------------
    def on_users_screen_move_user(self, message: UsersScreen.MoveUser) -> None:
        self.start_move(message.user, message.customer)

    def start_move(self, user: User, source: Customer) -> None:
        """Open the move wizard on ``user`` (of ``source``)."""
        if self.readonly:
            self.notify("Tenantry runs in read-only mode: nothing can be changed.", severity="warning", markup=False)
            return
        self._move_flow(user, source)

    @work(exclusive=True, group="move-flow", exit_on_error=False)
    async def _move_flow(self, user: User, source: Customer) -> None:
        await self._run_move(user, source)

    async def _run_move(self, user: User, source: Customer) -> bool:
        """The move wizard on ``user``; ``True`` if the admin went back out of its first step."""
        from screens.move_draft import MoveDraft
        from screens.wizards import MOVE

        try:
            session = await self.wait_for_session()
            detailed = await session.directory.user(user.dn)
        except Exception as error:  # one sentence, never a traceback
            self.show_error(error)
            return False
        draft = MoveDraft(session, detailed, source)
        return await MOVE.walk(self, draft, lambda: self.move_executor(session), debounce=self.search_debounce) is None

    # -- moving the marked users (a bulk move) ---------------------------------------------
    def on_users_screen_move_marked(self, message: UsersScreen.MoveMarked) -> None:
        self.start_bulk_move(message.users, message.customer)

    def start_bulk_move(self, users: list[User], source: Customer) -> None:
        """Open the bulk move of ``users`` (marked on the users screen of ``source``)."""
        if self.readonly:
            self.notify("Tenantry runs in read-only mode: nothing can be changed.", severity="warning", markup=False)
            return
        self._bulk_flow(users, source)

    @work(exclusive=True, group="move-flow", exit_on_error=False)  # one move wizard at a time, single or bulk
    async def _bulk_flow(self, users: list[User], source: Customer) -> None:
        from screens.bulk_draft import BulkDraft
        from screens.wizards import BULK_MOVE

        try:
            session = await self.wait_for_session()
        except Exception as error:  # one sentence, never a traceback
            self.show_error(error)
            return
        concurrency = self.console_config.bulk_concurrency
        draft = BulkDraft(session, list(users), source, concurrency=concurrency)
        await BULK_MOVE.walk(self, draft, lambda: self.move_executor(session), debounce=self.search_debounce)

    # -- copying a user -----------------------------------------------------------------
    def on_users_screen_copy_user(self, message: UsersScreen.CopyUser) -> None:
        self.start_copy(message.user, message.customer)

    def start_copy(self, template: User, customer: Customer) -> None:
        """Open the copy wizard with ``template`` (of ``customer``) as the template user."""
        if self.readonly:
            self.notify("Tenantry runs in read-only mode: nothing can be changed.", severity="warning", markup=False)
            return
        self._copy_flow(template, customer)

    @work(exclusive=True, group="copy-flow", exit_on_error=False)
    async def _copy_flow(self, template: User, customer: Customer) -> None:
        await self._run_copy(template, customer)

    async def _run_copy(self, template: User, customer: Customer) -> bool:
        """The copy wizard from ``template``; ``True`` if the admin went back out of its first step."""
        from screens.copy_draft import CopyDraft
        from screens.wizards import COPY

        try:
            session = await self.wait_for_session()
            detailed = await session.directory.user(template.dn)
        except Exception as error:  # one sentence, never a traceback
            self.show_error(error)
            return False
        draft = CopyDraft(session, detailed, customer)
        return await COPY.walk(self, draft, lambda: self.move_executor(session), debounce=self.search_debounce) is None

    async def on_wizard_finished(self, message: Finished) -> None:
        """A wizard's job ran: the users screen below reads its rows again; ``open`` shows
        the moved or new user."""
        from screens.move_result import OPEN

        origin, outcome = self.screen, message.outcome
        if not isinstance(origin, UsersScreen):
            return
        if message.what == "bulk move":
            origin.clear_marks()  # the marks were the batch's; the moved users left the list
            return
        if outcome.status != "refused":
            origin.reload()  # the moved user left, the new user is there (a failure left things as they were)
        if message.action != OPEN or outcome.change is None:
            return
        if message.what == "move" and outcome.destination is not None:
            await self.pop_screen()
            self.open_customer(outcome.destination, search=outcome.change.upn_after).open_detail(outcome.change.dn_after)
        else:
            origin.open_detail(outcome.change.dn_after)

    # -- the command palette's jobs (tui/palette.py) -----------------------------------------
    @property
    def in_wizard(self) -> bool:
        """A move or copy wizard is open (the palette then offers no other job)."""
        return any(w.group in ("move-flow", "copy-flow") and not w.is_finished for w in self.workers)

    def move_a_user(self) -> None:
        """The highlighted user, else pick the customer and the user first."""
        if isinstance(self.screen, UsersScreen) and self.screen.highlighted is not None:
            self.start_move(self.screen.highlighted, self.screen.customer)
        elif not self.readonly:
            self._pick_then_move()

    def copy_a_user(self) -> None:
        """From the highlighted user, else pick the customer and the template user first."""
        if isinstance(self.screen, UsersScreen) and self.screen.highlighted is not None:
            self.start_copy(self.screen.highlighted, self.screen.customer)
        elif not self.readonly:
            self._pick_then_copy()

    @work(exclusive=True, group="move-flow", exit_on_error=False)
    async def _pick_then_move(self) -> None:
        from screens.wizards import MOVE

        await self._pick_then("Move a user", MOVE.names, self._run_move)

    @work(exclusive=True, group="copy-flow", exit_on_error=False)
    async def _pick_then_copy(self) -> None:
        from screens.wizards import COPY

        await self._pick_then("Copy a user", COPY.names, self._run_copy)

    async def _pick_then(self, title: str, steps: Iterable[str], wizard: Callable[[User, Customer], Awaitable[bool]]) -> None:
        """Source customer → user, then the wizard; its ``esc`` comes back to the user step."""
        from rich.text import Text

        from screens.move_source import SourcePicker

        picker = SourcePicker(Text(title, style="bold"), tuple(steps), self.wait_for_directory, debounce=self.search_debounce)
        while (picked := await picker.pick(self)) is not None:
            if not await wizard(*picked):
                return

    async def go_to_customer(self, customer: Customer | None) -> None:
        """Back to the customers, then ``customer``'s users (``None``: the customers' search box)."""
        while len(self.screen_stack) > 1 and not self.in_wizard:
            await self.pop_screen()
        if customer is not None:
            self.open_customer(customer)
        elif isinstance(self.screen, CustomersScreen):
            self.screen.action_focus_search()

    def move_executor(self, session: Session) -> Executor:
        """The executor a move runs with (a test subclass injects failures here)."""
        return session.executor()

    async def wait_for_session(self) -> Session:
        """The operator's session (journal, audit log, adapters), opened on first use."""
        from core.session import Session

        async with self._session_lock:
            if self.session is None:
                directory = await self.wait_for_directory()
                self.session = await Session.open(directory, readonly=self.readonly, state=self.state)
                if self.operator is None:
                    self.operator = self.session.operator
                    self._refresh_title()
            return self.session

    # -- the directory -------------------------------------------------------------
    def on_mount(self) -> None:
        if not self._settled_console:
            self._console_settings(ConsoleConfig())  # the demo's config comes with its directory
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        # After the first paint: an opener may import ldap3 or bind synchronously at
        # first, and the operator should see the console while that happens.
        self.call_after_refresh(self._open_directory)

    @work(exclusive=True, group="directory", exit_on_error=False)
    async def _open_directory(self) -> None:
        """Open the directory (if given an opener), then read who the operator is."""
        if self._opener is not None:
            try:
                self.directory = await self._opener()
            except TenantryError as error:
                self._open_error = error
            except Exception as error:  # a defect below: one sentence here, the details in the log
                log.exception("opening the directory failed")
                self._open_error = TenantryError(f"The directory could not be opened ({type(error).__name__}).")
            else:
                if self.config is None:
                    self.config = self.directory.config
                self._refresh_title()
            finally:
                self._opened.set()
        if self.directory is not None:
            self._watch_connection(self.directory)
            self._load_index(self.directory)
        if self.directory is not None and self.operator is None:
            await self._read_operator(self.directory)

    @work(group="index", exit_on_error=False)
    async def _load_index(self, directory: Directory) -> None:
        """Load the customer index (or refresh its snapshot), then keep it fresh behind."""
        await self.index_keeper.refresh(directory)
        if self.index_keeper.index.complete:
            self._freeze_what_lasts()
        self.index_keeper.start(directory)

    @staticmethod
    def _freeze_what_lasts() -> None:
        """Take what lives as long as the console — its modules, widgets and the customer
        index, ~10⁵ objects — out of the garbage collector's generations (collected once
        first, so that no garbage is kept). A full collection then scans only what came
        after: without this, one that falls while an open customer's users load holds
        the event loop ~0.4 s, a key with it. Rows let go later (an index read again)
        are freed by their reference counts as before; all goes back to the collector
        when the console closes (:meth:`on_unmount`)."""
        gc.collect()
        gc.freeze()

    # -- the connection to the domain controller --------------------------------------
    def _watch_connection(self, directory: Directory) -> None:
        self._unwatch_connection = directory.connection.watch(self._connection_changed)
        self.screen_change_signal.subscribe(self, self._show_connection)
        self._connection_changed(directory.connection.state)

    _unwatch_connection: Callable[[], None] | None = None

    def _connection_changed(self, _state: str) -> None:
        self._show_connection(self.screen)
        if self.directory is not None and self.directory.connection.lost:
            self._reconnect()

    @work(exclusive=True, group="reconnect", exit_on_error=False)
    async def _reconnect(self) -> None:
        """Probe the domain controller with back-off until it answers (core/ decides when)."""
        if self.directory is not None:
            await self.directory.reconnect()

    def _show_connection(self, screen: Screen) -> None:
        """While the connection is lost, the banner under the header of the screen in front."""
        if self.directory is None or not self.directory.connection.lost:
            for shown in self.screen_stack:
                shown.query(ConnectionBanner).remove()
        elif not screen.query(ConnectionBanner) and screen.query(Header):
            screen.mount(ConnectionBanner(self.server), after=screen.query_one(Header))

    async def _read_operator(self, directory: Directory) -> None:
        """Who is at the keyboard (name and rights), when the caller did not say."""
        try:
            self.operator = await directory.operator()
        except Exception:  # the title keeps the bind identity; rights are enforced in core/
            log.warning("the operator could not be read", exc_info=True)
        else:
            self._refresh_title()

    async def wait_for_directory(self) -> Directory:
        """The open directory, waiting while it opens; raises the error that stopped it."""
        await self._opened.wait()
        if self._open_error is not None:
            raise self._open_error
        if self.directory is None:
            raise TenantryError("The directory is not open yet.")
        return self.directory

    async def on_unmount(self) -> None:
        self.index_keeper.stop()
        gc.unfreeze()  # what was frozen (_freeze_what_lasts) can be collected once the console is gone
        if self._unwatch_connection is not None:
            self._unwatch_connection()
        if self.session is not None:
            await self._close_session(self.session)
        if self._owns_directory and self.directory is not None:
            try:
                await self.directory.close()
            except Exception:  # closing must never turn a clean exit into a traceback
                log.exception("closing the directory failed")

    @staticmethod
    async def _close_session(session: Session) -> None:
        """Close what the session opened; the directory is closed below, by its owner."""
        from core.services import close_adapters

        try:
            await close_adapters(session.adapters)
            session.journal.close()
            session.audit.close()
        except Exception:
            log.exception("closing the session failed")

    # -- title, help, errors ----------------------------------------------------------
    @property
    def server(self) -> str:
        """The domain controller the directory is bound to (its host), or ``""``."""
        url = getattr(self.directory, "server", None)
        if not url and self.config is not None and self.config.directory.urls:
            url = self.config.directory.urls[0]
        if not url:
            return ""
        return urlsplit(url).hostname or url

    def _refresh_title(self) -> None:
        who = self.operator.name if self.operator else getattr(self.directory, "bound_as", None)
        parts = [plain(who)] if who else []
        if self.server:
            parts.append(f"on {plain(self.server)}")
        self.sub_title = " ".join(parts)
        # An insecure setting stays in the header of every screen for as long as the console runs;
        # read-only mode too, next to the name (the end of a long header is cut at 80 columns).
        insecure = self.config.directory.insecure if self.config is not None else ()
        self.title = " ⚠ ".join((self.TITLE + (" (read-only)" if self.readonly else ""), *insecure))

    def format_title(self, title: str, sub_title: str) -> Content:
        # Content(...) is literal text, never markup; plain() strips control characters.
        return super().format_title(plain(title), plain(sub_title))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The command palette (ctrl+p): Textual's commands (its "Keys" panel aside: ours,
        in :class:`~tui.palette.ConsoleCommands` with the other main commands, lists them
        all), then this screen's."""
        yield from (command for command in super().get_system_commands(screen) if command.title != "Keys")
        if isinstance(screen, UsersScreen):
            yield SystemCommand("Search users", "Find a user of this customer", screen.action_focus_search)
            if not self.readonly and screen.users:
                yield SystemCommand("Mark every user shown", "Then a bulk move takes them all", screen.mark_all)
            if screen.marked:
                yield SystemCommand("Clear the marks", "No user marked any more, shown or not", screen.unmark_all)
            if not self.readonly and screen.marked:
                yield SystemCommand("Move the marked users", "A bulk move of every marked user", screen.action_move)
            if not self.readonly and screen.highlighted is not None:
                if not screen.marked:
                    yield SystemCommand("Move the highlighted user", "Move it to another customer", screen.action_move)
                yield SystemCommand("Copy the highlighted user", "Make a new user from it", screen.action_copy)
        elif isinstance(screen, CustomersScreen):
            yield SystemCommand("Search customers", "Find a customer by name or domain", screen.action_focus_search)

    @property
    def job_running(self) -> bool:
        """Whether a job runs on a screen of the stack (a progress pane not finished)."""
        return any(getattr(screen, "job_running", False) for screen in self.screen_stack)

    async def action_quit(self) -> None:
        """``q``, ``ctrl+c``, ``ctrl+q`` or the palette's Quit: never in the middle of a job."""
        if self.job_running:
            self.notify("A job is running: wait for it to finish, or cancel it with ctrl+c, before quitting.", markup=False)
            return
        await super().action_quit()

    def action_help(self) -> None:
        """The help screen: every key of the screen below, read before it is covered."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(screen_name(self.screen), key_groups(self.screen), None if self.readonly else tasks(self.screen)))

    # -- jobs and audit ------------------------------------------------------------------
    def action_jobs(self, listed: bool = True) -> None:
        """The jobs screen (``listed``: which of the twin ``J`` bindings ran; see check_action)."""
        from screens.jobs import JobsScreen

        self.push_screen(JobsScreen(self.wait_for_session))

    def action_audit(self, listed: bool = True) -> None:
        """The audit screen (``listed``: which of the twin ``A`` bindings ran; see check_action)."""
        self.push_screen(AuditScreen(self.wait_for_session, debounce=self.search_debounce))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("jobs", "audit"):
            # By the screen's SHOWN_BY, not isinstance: importing the jobs screen here, on
            # the first frame's footer, cost about 100 ms of the console's start.
            if getattr(self.screen, "SHOWN_BY", None) == action:
                return False  # already there
            listed = parameters[0] if parameters else True
            return listed == isinstance(self.screen, self.ROOMY_FOOTERS)
        return True

    def show_error(self, error: BaseException) -> None:
        """Tell the operator, in one sentence, that something failed (never a traceback)."""
        if isinstance(error, TenantryError):
            sentence = str(error)
        else:
            log.error("unexpected error", exc_info=error)
            sentence = f"Something went wrong ({type(error).__name__}); the details are in the log."
        self.notify(plain(sentence), severity="error", markup=False, timeout=10)
