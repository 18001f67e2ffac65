"""The controller's reporter: gathers trial records (xdist included) and reports them at session end."""

from __future__ import annotations

import pytest

from pytest_algoperf import summary
from pytest_algoperf.session import RECORD_PROPERTY, BenchmarkSession


class SessionReporter:
    """Registered only on the controller, so only it prints and writes session-level files."""

    def __init__(self, session: BenchmarkSession) -> None:
        self.session = session

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == RECORD_PROPERTY:
                self.session.add_record(value)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.session.records:
            return
        terminalreporter.section("AlgoPerf time to target")
        for line in summary.render(self.session).splitlines():
            terminalreporter.write_line(line)

    def pytest_sessionfinish(self) -> None:
        if self.session.records:
            summary.write(self.session)
