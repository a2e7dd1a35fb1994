"""One operator's working session: the directory, the service adapters, the journal,
the audit log and the operator's rights, opened together for the console or a command."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.audit import Audit, open_audit
from core.config import Config
from core.copy import CopyPlanner
from core.demo.services import demo_adapters
from core.directory import Directory
from core.execute import Executor, StepHook
from core.journal import Journal
from core.model import Operator
from core.move import MovePlanner
from core.services import build_adapters, close_adapters
from core.services.base import ServiceAdapter
from core.state import state_dir


@dataclass
class Session:
    config: Config
    directory: Directory
    adapters: dict[str, ServiceAdapter]
    journal: Journal
    audit: Audit
    operator: Operator
    readonly: bool = False

    @classmethod
    async def open(
        cls,
        directory: Directory,
        *,
        readonly: bool = False,
        state: Path | None = None,
        adapters: dict[str, ServiceAdapter] | None = None,
    ) -> Session:
        """Resolve the operator's rights and open the journal and audit log in ``state``.

        The service adapters are ``adapters`` if given, else the configured ones; on the
        embedded demo directory their HTTP calls go to its in-process backend.
        """
        config = directory.config
        folder = state or state_dir()
        operator = await directory.operator()
        if adapters is None:
            adapters = demo_adapters(directory)  # None unless this is the demo directory
        if adapters is None:
            adapters = build_adapters(config)
        return cls(
            config=config,
            directory=directory,
            adapters=adapters,
            journal=Journal(folder / "journal.sqlite3"),
            audit=open_audit(config, folder),
            operator=operator,
            readonly=readonly or config.console.readonly,
        )

    def planner(self) -> MovePlanner:
        return MovePlanner(self.config, self.directory, self.adapters, readonly=self.readonly)

    def copier(self) -> CopyPlanner:
        return CopyPlanner(self.config, self.directory, self.adapters, readonly=self.readonly)

    def executor(self, *, before_step: StepHook | None = None) -> Executor:
        return Executor(self.directory, self.adapters, self.journal, self.audit, before_step=before_step, readonly=self.readonly)

    async def close(self) -> None:
        await close_adapters(self.adapters)
        self.journal.close()
        self.audit.close()
        await self.directory.close()
