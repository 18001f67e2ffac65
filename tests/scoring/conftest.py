"""Fixtures for the scoring tests: hand-built log trees and the shared v0.6 leaderboard logs."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pytest

from scoring import load_version

V06 = load_version("v0.6")


def write_trial(root: Path, submission: str, study: int, workload: str, trial: int,
                metric: Sequence[float], times: Sequence[float] | None = None,
                framework: str = "pytorch", test_metric: Sequence[float] | None = None,
                drop_columns: Sequence[str] = ()) -> Path:
    """Write ``<root>/<submission>/study_<s>/<workload>_<framework>/trial_<k>/eval_measurements.csv``.

    ``metric`` is the workload's validation target metric per eval; ``times`` the ``score``
    column (default 100, 200, ...). Returns the CSV path.
    """
    target = V06.target(workload)
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
    path = (root / submission / f"study_{study}" / f"{workload}_{framework}" / f"trial_{trial}"
            / "eval_measurements.csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def reaching_at(workload: str, eval_index: int, n_evals: int | None = None) -> list[float]:
    """A metric curve that first meets the workload's validation target at ``eval_index``
    (never, if None)."""
    target = V06.target(workload)
    n = n_evals or (eval_index + 2 if eval_index is not None else 4)
    worse = target.validation_target * (1.5 if target.minimize else 0.5)
    curve = [worse] * n
    if eval_index is not None:
        for i in range(eval_index, n):
            curve[i] = target.validation_target
    return curve


@pytest.fixture
def trial_writer(tmp_path):
    """``trial_writer(submission, study, workload, trial, metric, ...)`` writes under tmp_path."""

    def write(*args, **kwargs) -> Path:
        return write_trial(tmp_path, *args, **kwargs)

    write.root = tmp_path
    return write


@pytest.fixture(scope="session")
def v06_logs() -> Path:
    """The public v0.6 leaderboard logs, found as ../shared/data beside the repository."""
    logs = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "algoperf_v06_logs"
    if not logs.is_dir():
        pytest.skip(f"the shared v0.6 leaderboard logs are not available (looked in {logs})")
    return logs
