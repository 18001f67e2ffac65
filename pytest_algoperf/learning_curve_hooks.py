"""When the learning curves are drawn (the drawing itself is learning_curves.py).

* Each trial's `learning_curve.png`, beside its logs, as soon as its item has run: on the process
  that ran it (an xdist worker, or rank 0 of a torchrun session: the rank that writes the logs),
  after the trial's clock has stopped and before its report goes out, so the HTML report can show it.
* Each workload's `results/<experiment>/learning_curves/<workload>.png` (every trial on disk, one
  colour per study) at session end, on the controller; with `--algoperf-compare` also
  `<workload>_compare.png`: this run beside each reference that has the workload.

Drawing never fails an item or the session: a plotting error becomes a warning.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from pytest_algoperf.session import RECORD_PROPERTY, SESSION_KEY, BenchmarkSession

WRITTEN_KEY = pytest.StashKey[List[Path]]()


class LearningCurveWarning(UserWarning):
    """A learning curve could not be drawn (the trial and its logs are unaffected)."""


def time_to_target_session(config: pytest.Config) -> Optional[BenchmarkSession]:
    """The session, when it is a time-to-target one (the only kind with learning curves)."""
    session = config.stash.get(SESSION_KEY, None)
    if session is None or session.settings.mode != "time-to-target":
        return None
    return session


def trial_record(user_properties) -> Optional[Dict[str, Any]]:
    """The trial record an item carries (verdict.trial_record's dict), or None."""
    return next((value for name, value in user_properties if name == RECORD_PROPERTY), None)


def trial_plot_path(session: BenchmarkSession, record: Dict[str, Any]) -> Path:
    from pytest_algoperf import learning_curves, results

    directory = results.trial_dir(session.settings.results_dir, session.experiment, record["study"], record["workload"], record["trial"])
    return directory / learning_curves.TRIAL_PLOT


def session_plot_dir(session: BenchmarkSession) -> Path:
    from pytest_algoperf import learning_curves

    return session.experiment_dir / learning_curves.SESSION_PLOT_DIR


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if call.when == "call":
        session = time_to_target_session(item.config)
        record = trial_record(item.user_properties)
        if session is not None and record is not None and session.ranks.is_writer:
            _warn_on_error(f"the learning curve of {record['id']}", lambda: _draw_trial(session, record))
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    benchmark = time_to_target_session(config)
    if benchmark is None or hasattr(config, "workerinput") or not benchmark.ranks.is_writer or not benchmark.records:
        return
    written = config.stash.setdefault(WRITTEN_KEY, [])
    for workload in sorted({record["workload"] for record in benchmark.records.values()}):
        _warn_on_error(f"the learning curves of {workload}", lambda: written.extend(_draw_workload(benchmark, workload)))


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    written = config.stash.get(WRITTEN_KEY, [])
    if written:
        terminalreporter.write_line(f"learning curves: {', '.join(path.name for path in written)} in {written[0].parent}")


def _draw_trial(session: BenchmarkSession, record: Dict[str, Any]) -> None:
    from pytest_algoperf import learning_curves
    from scoring.versions import load_version

    path = trial_plot_path(session, record)
    measurements = path.with_name("eval_measurements.csv")
    if not measurements.is_file():
        return  # the trial stopped before its first eval
    version = load_version(session.settings.benchmark_version)
    curve = learning_curves.trial_curve(measurements, record["workload"], version)
    title = f"{record['id']}: {record['status']} ({record['stop_reason']})"
    learning_curves.draw_trial(curve, version.target(record["workload"]), path, title)


def _draw_workload(session: BenchmarkSession, workload: str) -> List[Path]:
    import pandas as pd

    from pytest_algoperf import learning_curves
    from scoring.versions import load_version

    settings = session.settings
    version = load_version(settings.benchmark_version)
    target = version.target(workload)
    self_tuning = settings.ruleset == "self"
    mine = learning_curves.log_tree_curves(session.experiment_dir, workload, version, self_tuning, name=session.experiment)
    if mine.empty:
        return []
    directory = session_plot_dir(session)
    studies, trials = mine["study"].nunique(), len(mine.groupby(["study", "trial"]))
    written = [learning_curves.draw_workload(
        mine, target, directory / f"{workload}.png",
        f"{workload}: {session.experiment}, {trials} trials in {studies} stud{'ies' if studies != 1 else 'y'}")]
    references = [learning_curves.log_tree_curves(reference, workload, version, self_tuning, name=reference.name)
                  for reference in settings.compare]
    references = [curves for curves in references if not curves.empty]
    if references:
        written.append(learning_curves.draw_comparison(
            pd.concat([mine, *references], ignore_index=True), target, directory / f"{workload}_compare.png",
            f"{workload}: this run ({session.experiment}) and the references"))
    return written


def _warn_on_error(what: str, draw) -> None:
    try:
        draw()
    except Exception as error:  # a plot must never fail the benchmark
        warnings.warn(LearningCurveWarning(f"{what} was not drawn: {type(error).__name__}: {error}"))
