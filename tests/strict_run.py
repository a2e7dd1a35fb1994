"""Pytest hooks that keep the suite honest: a skipped test fails the run.

The README promises that no test is skipped; a test that silently stops running
(a missing package, a DC that did not start) must turn the run red, not green.
Pytest's own "no tests ran" exit (5) already fails ``scripts/test``.
"""

from __future__ import annotations


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if skipped and exitstatus == 0:
        session.exitstatus = 1


def pytest_terminal_summary(terminalreporter):
    skipped = terminalreporter.stats.get("skipped", [])
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} test(s) skipped: this suite treats a skipped test as a failure.", red=True
        )
