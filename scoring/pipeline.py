"""From log directories to a :class:`ScoringResult`: the order in which the rules are applied.

1. find every trial's measurements file (layout.py), skipping workloads the version does not know
   and trials that were interrupted before they finished (the harness's running marker is there);
2. read the needed columns of all of them into one table (logs.py, fast_csv.py);
3. check the logs' contents: missing target columns, all-NaN metrics, and in strict mode the
   study and trial counts of the version's rules;
4. time to target per trial, per study, per workload (time_to_target.py);
5. performance profiles and scores (profiles.py), speedups if a base submission is named;
6. on request, bootstrap intervals for the times, the scores and the speedups (bootstrap.py,
   speedups.py), beside the point values, which they leave unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .fast_csv import ColumnSelection
from .bootstrap import (DEFAULT_SAMPLES, DEFAULT_SEED, BootstrapSettings, Intervals,
                        bootstrap_intervals)
from .layout import (INTERRUPTED, TrialLog, experiment_dirs, find_submissions, find_trial_logs,
                     is_submission_dir)
from .logs import tabulate_trials
from .problems import Problems
from .profiles import score_submissions
from .report import ScoringResult
from .speedups import geometric_mean_intervals, geometric_mean_speedups, workload_speedups
from .time_to_target import TIME_COLUMN, study_times, trial_times, workload_times
from .versions import DEFAULT_VERSION, BenchmarkVersion, load_version

PathLike = str | os.PathLike[str]


def score_log_dirs(log_dirs: Mapping[str, PathLike | Sequence[PathLike]],
                   version: str | BenchmarkVersion = DEFAULT_VERSION, self_tuning: bool = False,
                   strict: bool = False, speedup_base: str | None = None, fast: bool = True,
                   workers: int = 1, intervals: bool = False,
                   bootstrap_samples: int = DEFAULT_SAMPLES,
                   bootstrap_seed: int = DEFAULT_SEED) -> ScoringResult:
    """Score submissions together, from their log directories.

    ``log_dirs`` maps a submission name to its directory (the one holding ``study_*``; sibling
    directories with a timestamp suffix are merged in) or to a list of such directories. A
    directory of several submissions (or a tree with ``external_tuning/``) is accepted too: its
    submissions are named ``<name>/<submission>``, or just ``<name>`` if it holds one.

    A trial interrupted before it finished is scored as if absent (so a study's partial best trial
    does not stand for it), named in the warnings and listed in ``result.interrupted_trials``.
    Problems in the logs become ``result.warnings``; with ``strict=True`` they, interrupted trials
    and deviations from the version's study and trial counts raise one :class:`ScoringError`
    listing them all.

    With ``intervals=True`` the result also holds 95% bootstrap intervals (``result.intervals``,
    see bootstrap.py) from ``bootstrap_samples`` replicates drawn from ``bootstrap_seed``; with a
    ``speedup_base`` the per-workload speedups (``result.workload_speedups``) then gain intervals,
    verdicts and permutation p-values.
    """
    settings = BootstrapSettings(bootstrap_samples, bootstrap_seed) if intervals else None
    version = version if isinstance(version, BenchmarkVersion) else load_version(version)
    problems = Problems()
    submissions = resolve_submissions(log_dirs, self_tuning, problems)
    trials = [trial for name, directories in submissions.items()
              for trial in find_trial_logs(name, directories, problems)]
    trials = _known_workloads(trials, version, problems)
    trials, interrupted = _finished_trials(trials, problems)
    selections = {name: ColumnSelection((TIME_COLUMN, "global_step", target.validation_column,
                                         target.test_column))
                  for name, target in version.workloads.items()}
    evals, trial_table = tabulate_trials(trials, lambda trial: selections[trial.workload],
                                         problems, fast=fast, workers=workers)
    _check_contents(evals, trial_table, version, problems)
    trial_table = trial_times(evals, trial_table, version)
    per_study = study_times(trial_table)
    times = workload_times(per_study)
    if strict:
        _check_counts(per_study, trial_table, list(submissions), version, self_tuning, problems)
        problems.raise_if_any()

    if any(workload in times.columns for workload in version.base_workloads):
        credited, profiles, scores = score_submissions(times, version)
    else:
        credited, profiles = pd.DataFrame(dtype=float), pd.DataFrame(dtype=float)
        scores = pd.Series(dtype=float, name="score")
    bootstrap = None
    if settings is not None:
        bootstrap = bootstrap_intervals(trial_table, times, scores, version, self_tuning, settings)
    speedups = per_workload = None
    if speedup_base is not None:
        speedups, per_workload = _speedups(times, per_study, speedup_base, version, self_tuning,
                                           bootstrap)
    return ScoringResult(version=version, self_tuning=self_tuning, submissions=submissions,
                         evals=evals, trials=trial_table, per_study=per_study,
                         time_to_target=times, credited_times=credited,
                         performance_profiles=profiles, scores=scores, speedups=speedups,
                         workload_speedups=per_workload, intervals=bootstrap,
                         warnings=list(problems.messages), interrupted_trials=interrupted)


def _speedups(times: pd.DataFrame, per_study: pd.DataFrame, base: str, version: BenchmarkVersion,
              self_tuning: bool, bootstrap: Intervals | None) -> tuple[pd.Series, pd.DataFrame]:
    """The geometric-mean and per-workload speedups vs ``base``; with bootstrap replicates also
    their intervals (the geometric mean's into ``bootstrap.speedups``)."""
    overall = geometric_mean_speedups(times, base, version, self_tuning)
    if bootstrap is None:
        return overall, workload_speedups(times, per_study, base, version, self_tuning)
    confidence = bootstrap.settings.confidence
    bootstrap.speedups = geometric_mean_intervals(overall, bootstrap.replicates, base, version,
                                                  self_tuning, confidence)
    return overall, workload_speedups(times, per_study, base, version, self_tuning,
                                      bootstrap.replicates, confidence)


def resolve_submissions(log_dirs: Mapping[str, PathLike | Sequence[PathLike]],
                         self_tuning: bool, problems: Problems) -> dict[str, list[Path]]:
    """Submission name -> its experiment directories, named as :func:`score_log_dirs` names them
    (ValueError if two share a name or a directory)."""
    submissions: dict[str, list[Path]] = {}
    owner: dict[Path, str] = {}

    def add(name: str, directories: list[Path]) -> None:
        if name in submissions:
            raise ValueError(f"two submissions are named {name!r}; give them distinct names")
        for directory in directories:
            key = directory.resolve()
            if key in owner:
                raise ValueError(f"{directory} is given for both {owner[key]!r} and {name!r}")
            owner[key] = name
        submissions[name] = directories

    for name, where in log_dirs.items():
        if isinstance(where, (str, os.PathLike)):
            directory = Path(where)
            if is_submission_dir(directory):
                add(name, experiment_dirs(directory))
                continue
            found = find_submissions(directory, self_tuning, problems)
            for inner, directories in found.items():
                add(name if len(found) == 1 else f"{name}/{inner}", directories)
        else:
            add(name, [Path(p) for p in where])
    return submissions


def _known_workloads(trials: list[TrialLog], version: BenchmarkVersion,
                     problems: Problems) -> list[TrialLog]:
    for trial in trials:
        if trial.workload not in version.workloads:
            problems.add(os.path.dirname(os.path.dirname(trial.path)),
                         f"unknown workload {trial.workload!r} (not in benchmark {version.name}); "
                         f"ignored")
    return [trial for trial in trials if trial.workload in version.workloads]


def _finished_trials(trials: list[TrialLog],
                     problems: Problems) -> tuple[list[TrialLog], list[TrialLog]]:
    """Split off the interrupted trials: their measurements stop where the run was cut short."""
    finished, interrupted = [], []
    for trial in trials:
        (interrupted if trial.was_interrupted() else finished).append(trial)
    for trial in interrupted:
        problems.add(trial.directory, f"{INTERRUPTED}, left out of the score; rerun the pytest "
                                      f"command that started it to resume the trial")
    return finished, interrupted


def _check_contents(evals: pd.DataFrame, trials: pd.DataFrame, version: BenchmarkVersion,
                    problems: Problems) -> None:
    """Name the files whose contents make a trial unable to reach its target."""
    has_value = np.zeros(len(trials), dtype=bool)
    codes = evals["workload"].cat.codes.to_numpy()
    trial_of_row = evals["path"].cat.codes.to_numpy()
    for code, workload in enumerate(evals["workload"].cat.categories):
        column = version.target(workload).validation_column
        if column in evals:
            rows = (codes == code) & ~np.isnan(evals[column].to_numpy())
            has_value[trial_of_row[rows]] = True
    for trial, valued in zip(trials.itertuples(index=False), has_value, strict=True):
        target = version.target(trial.workload)
        if trial.n_evals == 0:
            problems.add(trial.path, "no evals (only a header)")
        elif target.validation_column not in trial.columns:
            problems.add(trial.path, f"no {target.validation_column} column: the target metric "
                                     f"of {trial.workload} is missing, the trial cannot reach it")
        elif not valued:
            problems.add(trial.path, f"{target.validation_column} is NaN in every eval")
        if trial.n_evals and TIME_COLUMN not in trial.columns:
            problems.add(trial.path, f"no {TIME_COLUMN!r} column: its time to target is unknown")


def _check_counts(per_study: pd.DataFrame, trials: pd.DataFrame, submissions: list[str],
                  version: BenchmarkVersion, self_tuning: bool, problems: Problems) -> None:
    """The version's rules on what a complete submission logs (strict mode only)."""
    for submission in submissions:
        mine = per_study[per_study["submission"].astype(str) == submission]
        logged = set(mine["workload"].astype(str))
        for workload in version.scored_workloads:
            if workload not in logged:
                problems.add(None, f"{submission}: no logs for scored workload {workload}")
                continue
            studies = mine[mine["workload"].astype(str) == workload]
            if len(studies) != version.num_studies:
                problems.add(None, f"{submission}/{workload}: {len(studies)} studies, "
                                   f"{version.name} requires {version.num_studies}")
    if self_tuning:
        return  # one trial per study, with no search space to count (as the published scorer)
    counts = trials.groupby(["submission", "workload", "study"], observed=True).size()
    for (submission, workload, study), count in counts.items():
        if workload in version.scored_workloads and count != version.num_trials:
            problems.add(None, f"{submission}/{study}/{workload}: {count} trials read, "
                               f"{version.name} requires {version.num_trials}")
