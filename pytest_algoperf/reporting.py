"""The controller's reporter: gathers trial records (xdist included) and reports them at session end."""

from __future__ import annotations

import pytest

from pytest_algoperf import gate_summary, summary
from pytest_algoperf.session import RECORD_PROPERTY, BenchmarkSession


class SessionReporter:
    """Registered only on the controller, so only it prints and writes session-level files."""

    def __init__(self, session: BenchmarkSession) -> None:
        self.session = session
        self._scored = None

    def scoring(self):
        """(table rows, ScoringResult), computed once from the logs on disk.

        Other plugins reach it as ``config.pluginmanager.get_plugin("algoperf-reporter").scoring()``;
        with --algoperf-compare the result holds bootstrap intervals and speedups too.
        """
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
        mode = self.session.settings.mode
        if mode == "smoke":
            terminalreporter.section("AlgoPerf smoke gate")
            text = gate_summary.render_smoke(gate_summary.smoke_rows(self.session), gate_summary.smoke_warnings(self.session))
        elif mode == "step-time":
            terminalreporter.section("AlgoPerf update_params time")
            text = gate_summary.render_step_times(gate_summary.step_time_rows(self.session))
        else:
            rows, result = self.scoring()
            terminalreporter.section("AlgoPerf time to target")
            text = summary.render_rows(rows, self.session, result)
            if self.session.settings.compare:
                self._write(terminalreporter, text)
                terminalreporter.section("AlgoPerf benchmark score")
                self._write(terminalreporter, result.format_text())
                terminalreporter.section("AlgoPerf comparison")
                text = "\n".join(summary.comparison_lines(self.session, result))
        self._write(terminalreporter, text)

    @staticmethod
    def _write(terminalreporter, text: str) -> None:
        for line in text.splitlines():
            terminalreporter.write_line(line)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        if not self.session.records:
            return
        mode = self.session.settings.mode
        if mode == "smoke":
            gate_summary.write_rows(self.session, gate_summary.SMOKE_CSV, gate_summary.smoke_rows(self.session))
        elif mode == "step-time":
            gate_summary.write_rows(self.session, gate_summary.STEP_TIME_CSV, gate_summary.step_time_rows(self.session))
        else:
            rows, result = self.scoring()
            summary.write(self.session, rows, result)
