"""The controller's reporter: gathers trial records (xdist included) and reports them at session end."""

from __future__ import annotations

import pytest

from pytest_algoperf import summary
from pytest_algoperf.session import RECORD_PROPERTY, BenchmarkSession


class SessionReporter:
    """Registered only on the controller, so only it prints and writes session-level files."""

    def __init__(self, session: BenchmarkSession) -> None:
        self.session = session
        self._scored = None

    def _scoring(self):
        """(table rows, ScoringResult), computed once from the logs on disk."""
        if self._scored is None:
            result = summary.score_session(self.session)
            self._scored = (summary.summary_rows(self.session, result), result)
        return self._scored

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == RECORD_PROPERTY:
                self.session.add_record(value)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.session.records:
            return
        rows, result = self._scoring()
        terminalreporter.section("AlgoPerf time to target")
        for line in summary.render_rows(rows, self.session).splitlines():
            terminalreporter.write_line(line)
        if self.session.settings.compare:
            terminalreporter.section("AlgoPerf benchmark score")
            for line in result.format_text().splitlines():
                terminalreporter.write_line(line)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        if self.session.records:
            rows, result = self._scoring()
            summary.write(self.session, rows, result)
