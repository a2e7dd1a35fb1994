"""One operator's working session: the directory, the service adapters, the journal,
the audit log and the operator's rights, opened together for the console or a command."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.audit import Audit, open_audit
from core.config import Config
from core.copy import CopyPlanner, CopyRequest
from core.demo.services import demo_adapters
from core.directory import Directory
from core.execute import Executor, StepHook
from core.journal import JobRecord, Journal
from core.model import Operator
from core.move import MovePlanner
from core.plan import Plan
from core.replan import journaled_request
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
        return Executor(self.directory, self.adapters, self.journal, self.audit, before_step=before_step, readonly=self.readonly,
                        replanner=self.replan)

    async def replan(self, job: JobRecord, operator: Operator) -> Plan:
        """A fresh plan of the request ``job`` kept (see :mod:`core.replan`); a copy's
        password is checked again when the job sets it, as on any resume."""
        request = journaled_request(job)
        if isinstance(request, CopyRequest):
            return await self.copier().preflight(operator, request)
        return await self.planner().preflight(operator, request)

    async def close(self) -> None:
        await close_adapters(self.adapters)
        self.journal.close()
        self.audit.close()
        await self.directory.close()
