"""The per-submission summary: one row per trial (spec §6.3, ``<submission>_summary.csv``).

Per trial: the validation target and whether it was reached, the best validation value (NaN
ignored) and when it came, the time to the validation target (the scored one) and to the test
target, and the workload's step time. The step time follows the published summary: the median,
over every eval interval of all of a submission's trials of the workload, of submission seconds
elapsed per step taken, the first interval counting from zero.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .time_to_target import TIME_COLUMN, column_values, first_rows_where, reached_target
from .versions import BenchmarkVersion


def trial_summary(evals: pd.DataFrame, trials: pd.DataFrame,
                  version: BenchmarkVersion) -> pd.DataFrame:
    """Summary rows of all trials, with a ``submission`` column; ``trials`` from ``trial_times``."""
    n_trials = len(trials)
    best_value, best_time = _best_validation(evals, version, n_trials)
    test_rows, test_hit = first_rows_where(evals, reached_target(evals, version, "test"), n_trials)
    test_time = np.full(n_trials, np.inf)
    test_time[test_hit] = column_values(evals, TIME_COLUMN)[test_rows[test_hit]]
    workloads = trials["workload"].astype(str).to_numpy()
    targets = [version.target(w) for w in workloads]
    return pd.DataFrame({
        "submission": trials["submission"].astype(str).to_numpy(),
        "workload": workloads,
        "study": trials["study"].astype(str).to_numpy(),
        "experiment": trials["experiment"].astype(str).to_numpy(),
        "trial": trials["trial"].astype(str).to_numpy(),
        "evals": trials["n_evals"].to_numpy(),
        "val target metric name": [t.validation_column for t in targets],
        "val target metric value": [t.validation_target for t in targets],
        "val target reached": trials["target_eval"].to_numpy() >= 0,
        "best metric value on val": best_value,
        "time to best eval on val (s)": best_time,
        "time to target on val (s)": trials["time_to_target"].to_numpy(),
        "test target metric value": [t.test_target for t in targets],
        "test target reached": test_hit,
        "time to target on test (s)": test_time,
        "step_time (s)": _median_step_times(evals, trials),
        "step_hint": [t.step_hint for t in targets],
    })


def _best_validation(evals: pd.DataFrame, version: BenchmarkVersion,
                     n_trials: int) -> tuple[np.ndarray, np.ndarray]:
    """Per trial: the best validation value of the target metric (NaN ignored) and its time."""
    # Sign-adjust so that smaller is better everywhere, NaN sorting last.
    adjusted = np.full(len(evals), np.inf)
    original = np.full(len(evals), np.nan)
    codes = evals["workload"].cat.codes.to_numpy()
    for code, workload in enumerate(evals["workload"].cat.categories):
        target = version.target(workload)
        if target.validation_column not in evals:
            continue
        rows = codes == code
        values = evals[target.validation_column].to_numpy()[rows]
        original[rows] = values
        adjusted[rows] = np.where(np.isnan(values), np.inf, values if target.minimize else -values)
    trial_of_row = evals["path"].cat.codes.to_numpy()
    # Rows come grouped by trial, in trial order: per trial, the smallest adjusted value, then
    # the earliest row holding it.
    starts = np.flatnonzero(np.r_[True, trial_of_row[1:] != trial_of_row[:-1]]) if len(
        trial_of_row) else np.zeros(0, dtype=np.int64)
    trials_in_order = trial_of_row[starts]
    if len(starts):
        best = np.minimum.reduceat(adjusted, starts)
        holding = np.flatnonzero(adjusted == np.repeat(best, np.diff(np.r_[starts, len(evals)])))
        best_rows = holding[np.searchsorted(holding, starts)]
    else:
        best_rows = starts
    best_value = np.full(n_trials, np.nan)
    best_time = np.full(n_trials, np.nan)
    best_value[trials_in_order] = original[best_rows]
    best_time[trials_in_order] = column_values(evals, TIME_COLUMN)[best_rows]
    best_time[np.isnan(best_value)] = np.nan
    return best_value, best_time


def _median_step_times(evals: pd.DataFrame, trials: pd.DataFrame) -> np.ndarray:
    """Per trial: the median seconds per step of its (submission, workload), as defined above."""
    time = column_values(evals, TIME_COLUMN)
    step = column_values(evals, "global_step")
    first_of_trial = evals["eval"].to_numpy() == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = ((time - np.where(first_of_trial, 0.0, np.roll(time, 1)))
                 / (step - np.where(first_of_trial, 0.0, np.roll(step, 1))))
    n_workloads = len(evals["workload"].cat.categories)
    group = (evals["submission"].cat.codes.to_numpy().astype(np.int64) * n_workloads
             + evals["workload"].cat.codes.to_numpy())
    wanted = (trials["submission"].cat.codes.to_numpy().astype(np.int64) * n_workloads
              + trials["workload"].cat.codes.to_numpy())
    if not len(group):
        return np.full(len(wanted), np.nan)
    # Sorted by group, then by value with NaN last: each group's median sits in the middle of
    # its leading non-NaN values (the mean of the middle two for an even count, as np.median).
    order = np.lexsort((ratio, group))
    group, ratio = group[order], ratio[order]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    counts = np.add.reduceat(~np.isnan(ratio), starts)
    low = starts + np.maximum(counts - 1, 0) // 2
    high = np.minimum(starts + counts // 2, len(ratio) - 1)
    with np.errstate(invalid="ignore"):
        medians = np.where(low == high, ratio[low], (ratio[low] + ratio[high]) / 2)
    medians[counts == 0] = np.nan
    keys = group[starts]
    found = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    return np.where(keys[found] == wanted, medians[found], np.nan)
