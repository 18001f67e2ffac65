"""Log trees into one tidy table: one row per (submission, workload, study, trial, eval).

``read_log_tree`` is the public entry point. The scoring pipeline uses the two steps beneath it,
``find_trial_logs`` (layout.py) and ``tabulate_trials``, so that it can skip workloads the benchmark
version does not know before reading their files, and read only the columns it needs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .fast_csv import ALL_COLUMNS, ColumnSelection, read_measurement_files
from .layout import INTERRUPTED, TrialLog, find_submissions, find_trial_logs, natural_key
from .problems import Problems

# Identify a row of the tidy table; every other column is a measurement (float64).
ID_COLUMNS = ("submission", "workload", "framework", "study", "experiment", "trial", "eval", "path")
# The trial-level subset: one trial is one measurements file.
TRIAL_COLUMNS = ("submission", "workload", "framework", "study", "experiment", "trial", "path")


def read_log_tree(log_dir: str | os.PathLike[str], columns: Iterable[str] | None = None,
                  self_tuning: bool = False, fast: bool = True,
                  workers: int = 1) -> pd.DataFrame:
    """Read every ``eval_measurements.csv`` under ``log_dir`` into one tidy DataFrame.

    ``log_dir`` is a submission directory, a directory of submissions, or a tree with
    ``external_tuning/`` and ``self_tuning/`` (``self_tuning`` picks one). ``columns`` keeps only
    the measurement columns matching these fnmatch patterns (e.g. ``["score", "validation/*"]``).
    Rows are ordered submission, experiment, study, workload, trial, eval; ``eval`` counts from 0.
    Problems (missing, empty or truncated files, stray directories) are listed in
    ``frame.attrs["warnings"]``, as are trials interrupted before they finished: their rows are
    kept here, as far as they go (scoring leaves such trials out).
    """
    problems = Problems()
    trials = []
    for name, directories in find_submissions(Path(log_dir), self_tuning, problems).items():
        trials.extend(find_trial_logs(name, directories, problems))
    for trial in trials:
        if trial.was_interrupted():
            problems.add(trial.directory, f"{INTERRUPTED}; its evals stop where it was cut short")
    selection = ColumnSelection(tuple(columns)) if columns is not None else ALL_COLUMNS
    evals, _ = tabulate_trials(trials, lambda trial: selection, problems, fast, workers)
    evals.attrs["warnings"] = list(problems.messages)
    return evals


def tabulate_trials(trials: Sequence[TrialLog],
                    selection_for: Callable[[TrialLog], ColumnSelection], problems: Problems,
                    fast: bool = True, workers: int = 1) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse the trials' files; return the per-eval table and a per-trial table.

    The per-trial table has one row per readable file (in the given order), with ``n_evals`` and
    ``columns`` (every column name in the file, wanted or not).
    """
    parsed = read_measurement_files([t.path for t in trials], [selection_for(t) for t in trials],
                                    fast=fast, workers=workers)
    problems.extend(parsed.problems)
    readable = np.array([header is not None for header in parsed.headers], dtype=bool)
    kept = [trial for trial, ok in zip(trials, readable, strict=True) if ok]
    # Files that could not be read have no rows, so renumbering files leaves rows in place.
    new_number = np.cumsum(readable) - 1
    row_trial = new_number[parsed.file_index]

    categoricals = {name: _categorical([str(getattr(t, name)) for t in kept], name)
                    for name in TRIAL_COLUMNS}
    trials_table = pd.DataFrame({name: categoricals[name] for name in TRIAL_COLUMNS})
    trials_table["n_evals"] = parsed.rows_per_file[readable]
    trials_table["columns"] = pd.Series([h for h in parsed.headers if h is not None], dtype=object)

    evals = {}
    for name in ID_COLUMNS:
        if name == "eval":
            evals[name] = parsed.eval_index
        else:
            per_trial = categoricals[name]
            evals[name] = pd.Categorical.from_codes(per_trial.codes[row_trial],
                                                    dtype=per_trial.dtype)
    evals.update(parsed.columns)
    return pd.DataFrame(evals), trials_table


def _categorical(values: list[str], column: str) -> pd.Categorical:
    """Categories in a meaningful order: submissions as given, the rest naturally sorted."""
    unique = list(dict.fromkeys(values))
    if column not in ("submission", "path"):
        unique.sort(key=natural_key)
    return pd.Categorical(values, categories=unique)
