"""Fixtures for the scoring tests: hand-built log trees and the shared v0.6 leaderboard logs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from scoring import load_version

V06 = load_version("v0.6")


class LogTree:
    """Builds an AlgoPerf log tree under ``root``, one trial at a time."""

    def __init__(self, root: Path, version=V06):
        self.root = root
        self.version = version  # whose targets the curves are written against

    def trial(self, submission: str, study: int, workload: str, trial: int,
              metric: Sequence[float], times: Sequence[float] | None = None,
              framework: str = "pytorch", test_metric: Sequence[float] | None = None,
              drop_columns: Sequence[str] = ()) -> Path:
        """Write ``<submission>/study_<s>/<workload>_<framework>/trial_<k>/eval_measurements.csv``.

        ``metric`` is the workload's validation target metric per eval; ``times`` the ``score``
        column (default 100, 200, ...). Returns the CSV path.
        """
        target = self.version.target(workload)
        n = len(metric)
        times = list(times) if times is not None else [100.0 * (i + 1) for i in range(n)]
        test_metric = list(test_metric) if test_metric is not None else list(metric)
        columns = {
            "accumulated_eval_time": [10.0 * (i + 1) for i in range(n)],
            "accumulated_logging_time": [0.5 * i for i in range(n)],
            "accumulated_submission_time": times,
            "global_step": [1 + 50 * i for i in range(n)],
            "preemption_count": [0] * n,
            "score": times,
            f"test/{target.metric}": test_metric,
            "test/num_examples": [1000] * n,
            "total_duration": [t + 10.0 * (i + 1) for i, t in enumerate(times)],
            f"train/{target.metric}": list(metric),
            f"validation/{target.metric}": list(metric),
            "validation/num_examples": [500] * n,
        }
        names = sorted(name for name in columns if name not in drop_columns)
        lines = [",".join(names)]
        lines += [",".join(repr(columns[name][i]) for name in names) for i in range(n)]
        path = (self.root / submission / f"study_{study}" / f"{workload}_{framework}"
                / f"trial_{trial}" / "eval_measurements.csv")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")
        return path

    def curve(self, workload: str, reach_at: int | None, n_evals: int | None = None) -> list[float]:
        """A validation metric curve first meeting the workload's target exactly at eval
        ``reach_at`` (never if None)."""
        target = self.version.target(workload)
        n = n_evals or (reach_at + 2 if reach_at is not None else 4)
        worse = target.validation_target * (1.5 if target.minimize else 0.5)
        return [target.validation_target if reach_at is not None and i >= reach_at else worse
                for i in range(n)]

    def times_trial(self, submission: str, study: int, workload: str, trial: int,
                    reach_at: int | None, seconds_per_eval: float = 100.0,
                    n_evals: int | None = None) -> Path:
        """A trial reaching the target at eval ``reach_at``, evals ``seconds_per_eval`` apart."""
        metric = self.curve(workload, reach_at, n_evals)
        times = [seconds_per_eval * (i + 1) for i in range(len(metric))]
        return self.trial(submission, study, workload, trial, metric, times)


@pytest.fixture
def log_tree(tmp_path) -> LogTree:
    return LogTree(tmp_path / "logs")


@pytest.fixture(scope="session")
def v06_logs() -> Path:
    """The public v0.6 leaderboard logs, found as ../shared/data beside the repository."""
    logs = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "algoperf_v06_logs"
    if not logs.is_dir():
        pytest.skip(f"the shared v0.6 leaderboard logs are not available (looked in {logs})")
    return logs
