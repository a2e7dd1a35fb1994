"""The suite in pytest-xdist workers (``scripts/test`` starts one per core).

Each worker has a test DC of its own (``samba_dc.worker_address``); the two-DC tests
all go to one worker, since their DCs' addresses are fixed (``xdist_group``). The lines a
fixture adds for the end of the run (how long its DCs took to start) are printed by the
process that shows the summary: a worker hands them to the controller when it ends.
"""

from __future__ import annotations

import pytest

KEY = "tenantry_summary"  # in a worker's workeroutput: [title, line] pairs
NAME = "tenantry-run-summary"


class RunSummary:
    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.lines: list[tuple[str, str]] = []

    def add(self, title: str, line: str) -> None:
        output = getattr(self.config, "workeroutput", None)
        if output is not None:  # a worker: sent to the controller as it ends
            output.setdefault(KEY, []).append([title, line])
        else:
            self.lines.append((title, line))

    @pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the group marks
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            if "samba_pair" in item.fixturenames:
                item.add_marker(pytest.mark.xdist_group("samba_pair"))

    def pytest_terminal_summary(self, terminalreporter) -> None:
        for title, line in self.lines:
            terminalreporter.write_sep("-", title)
            terminalreporter.write_line(line)


class WorkerLines:
    """The controller's side: a worker's lines, as it goes down (only with xdist)."""

    def __init__(self, summary: RunSummary) -> None:
        self.summary = summary

    def pytest_testnodedown(self, node, error) -> None:
        self.summary.lines.extend((title, line) for title, line in getattr(node, "workeroutput", {}).get(KEY, []))


def pytest_configure(config: pytest.Config) -> None:
    summary = RunSummary(config)
    config.pluginmanager.register(summary, NAME)
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(WorkerLines(summary), f"{NAME}-workers")


def add_summary_line(config: pytest.Config, title: str, line: str) -> None:
    """``line`` under ``title`` at the end of the run's summary."""
    config.pluginmanager.get_plugin(NAME).add(title, line)
