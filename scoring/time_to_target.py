"""Time to target: per trial, per study (the published scorer's pick), per workload (median).

The rules (spec §6.2), each implemented once here:

* A trial reaches the target at its first eval with ``validation/<metric> <= target`` (metrics to
  minimise) or ``>= target`` (to maximise). The comparison is non-strict, unlike the runner's stop
  check; NaN never reaches.
* Time is the ``score`` column (accumulated submission time) at that eval.
* Per study, the trial that reaches the target in the fewest *evals* is picked -- not the trial
  with the least time -- ties going to the trial the published scorer listed first
  (listing_order.py). This quirk of the published scorer decides v0.5's lawa_ema score (0.3384
  rather than 0.3434). A study no trial finishes takes infinity.
* Per workload, the median over studies with ``np.median``: infinity takes part, an even count
  averages the middle two. No budget check happens here; the runner stops evaluating at the budget.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .listing_order import listing_key
from .versions import BenchmarkVersion

TIME_COLUMN = "score"
STUDY_KEYS = ["submission", "workload", "study"]


def reached_target(evals: pd.DataFrame, version: BenchmarkVersion,
                   split: str = "validation") -> np.ndarray:
    """Per eval row: did the workload's target metric on ``split`` reach its target?"""
    reached = np.zeros(len(evals), dtype=bool)
    workload_codes = evals["workload"].cat.codes.to_numpy()
    for code, workload in enumerate(evals["workload"].cat.categories):
        target = version.target(workload)
        column = f"{split}/{target.metric}"
        if column not in evals:
            continue
        value = target.validation_target if split == "validation" else target.test_target
        if value is None:  # no test split (finewebedu_lm): nothing on it to reach
            continue
        rows = workload_codes == code
        metric = evals[column].to_numpy()[rows]
        with np.errstate(invalid="ignore"):
            reached[rows] = metric <= value if target.minimize else metric >= value
    return reached


def first_rows_where(evals: pd.DataFrame, condition: np.ndarray,
                     n_trials: int) -> tuple[np.ndarray, np.ndarray]:
    """Per trial, the row number of the first eval meeting ``condition`` (-1 if none).

    Returns (row per trial, mask of trials that have one). Rows must be grouped by trial in trial
    order, as ``logs.tabulate_trials`` returns them.
    """
    trial_of_row = evals["path"].cat.codes.to_numpy()
    hit_rows = np.flatnonzero(condition)
    # Rows are in trial order, so a trial's first hit is its first occurrence among the hits.
    hit_trials, first = np.unique(trial_of_row[hit_rows], return_index=True)
    rows = np.full(n_trials, -1, dtype=np.int64)
    rows[hit_trials] = hit_rows[first]
    return rows, rows >= 0


def trial_times(evals: pd.DataFrame, trials: pd.DataFrame,
                version: BenchmarkVersion) -> pd.DataFrame:
    """The trials table plus, per trial, the first eval reaching the target and its time.

    Adds ``target_eval`` (-1 if never reached), ``target_step`` and ``time_to_target`` (inf if
    never reached).
    """
    result = trials.copy()
    rows, hit = first_rows_where(evals, reached_target(evals, version), len(result))
    target_eval = np.full(len(result), -1, dtype=np.int64)
    target_eval[hit] = evals["eval"].to_numpy()[rows[hit]]
    time = np.full(len(result), np.inf)
    time[hit] = column_values(evals, TIME_COLUMN)[rows[hit]]
    step = np.full(len(result), np.nan)
    step[hit] = column_values(evals, "global_step")[rows[hit]]
    result["target_eval"] = target_eval
    result["target_step"] = step
    result["time_to_target"] = time
    return result


def study_times(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per (submission, workload, study): the picked trial and its time to target.

    ``trials`` is the output of :func:`trial_times`. Among the trials reaching the target, the one
    doing so at the earliest eval wins; ties go to the trial listed first by the published scorer
    (see listing_order.py). Studies where no trial reaches the target get ``inf`` and no trial.
    """
    columns = STUDY_KEYS + ["experiment", "trial", "target_eval", "target_step", "time_to_target"]
    finished = trials.loc[trials["target_eval"] >= 0, columns]
    listed = [listing_key(experiment) + listing_key(trial) for experiment, trial in
              zip(finished["experiment"].astype(str), finished["trial"].astype(str),
                  strict=True)]
    finished = finished.assign(listed=pd.Series(listed, index=finished.index, dtype=object))
    picked = (finished.sort_values("listed", kind="stable")
              .sort_values("target_eval", kind="stable")
              .drop_duplicates(STUDY_KEYS)
              .drop(columns="listed"))
    studies = trials[STUDY_KEYS].drop_duplicates().merge(picked, on=STUDY_KEYS, how="left")
    studies["time_to_target"] = studies["time_to_target"].astype(float).where(
        studies["target_eval"].notna(), np.inf)
    studies = studies.rename(columns={"target_eval": "eval", "target_step": "global_step"})
    studies["eval"] = studies["eval"].astype("Int64")
    for key in ("experiment", "trial"):
        studies[key] = studies[key].astype(object).where(studies[key].notna(), None)
    return studies.sort_values(STUDY_KEYS, kind="stable").reset_index(drop=True)[
        STUDY_KEYS + ["time_to_target", "experiment", "trial", "eval", "global_step"]]


def workload_times(studies: pd.DataFrame) -> pd.DataFrame:
    """Submissions x workloads: the median over studies of the time to target (NaN if not run)."""
    if studies.empty:
        return pd.DataFrame(dtype=float)
    medians = (studies.groupby(["submission", "workload"], observed=True, sort=True)
               ["time_to_target"].agg(lambda times: float(np.median(times.to_numpy()))))
    table = medians.unstack("workload")
    submissions = [s for s in studies["submission"].cat.categories if s in table.index]
    table = table.reindex(index=submissions, columns=sorted(table.columns))
    table.index = pd.Index(table.index.astype(str), name="submission")
    table.columns = pd.Index(table.columns.astype(str), name="workload")
    return table.astype(float)


def column_values(evals: pd.DataFrame, name: str) -> np.ndarray:
    """A measurement column as an array, all NaN if no file had it."""
    if name in evals:
        return evals[name].to_numpy()
    return np.full(len(evals), np.nan)
