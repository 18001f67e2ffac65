"""Speedups against a chosen base submission (spec §6.5): per workload and their geometric mean.

Per workload, the speedup is t_submission / t_base, the per-workload median times to target. A
workload never finished counts as its budget plus one second, the budget being the version's
runtime budget times the self-tuning factor where it applies (:func:`never_reached_as_budget`,
the one place of that rule). The overall speedup is the geometric mean over the base workloads.
For v0.5 these are exactly the published ``compute_speedups.py`` numbers (its budgets are v0.5's
and its self-tuning factor is 3); other versions use their own budgets. A value below 1 means
faster than the base: 0.72 is "28% less time".

With bootstrap replicates of the median times (bootstrap.py), each speedup gains a percentile
interval -- submission and base resampled independently, the ratio taken per replicate -- and a
verdict at the interval's confidence: "faster" when the whole interval lies below 1, "slower"
when above, "not significant" otherwise, and "too few studies" when either side has a single study
(nothing then says how much a study varies). Beside it, an exact permutation test over the two
submissions' study times (permutation.py) gives a p-value for "no difference". Its statistic is
the difference of the mean log study times (never reached as budget + 1 s), not of the medians:
the median of 3 or 5 studies takes too few values for the test to resolve anything. With the
p-value comes the smallest p-value the study counts allow: with 3 studies each it is 0.1, so
neither p < 0.05 nor modded-nanogpt's p < 0.01 record rule can be met; 5 studies each can reach
2/252 = 0.0079.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .bootstrap import CONFIDENCE, TimeReplicates, percentile_interval
from .permutation import permutation_test
from .versions import BenchmarkVersion

FASTER, SLOWER, NOT_SIGNIFICANT, MISSING = "faster", "slower", "not significant", "missing"
TOO_FEW = "too few studies"  # a single study on either side: its spread is unknown
MIN_STUDIES = 2


def never_reached_as_budget(times: np.ndarray, workloads: list[str], version: BenchmarkVersion,
                            self_tuning: bool) -> np.ndarray:
    """``times`` (last axis: ``workloads``) with inf replaced by the workload's budget + 1 s."""
    budgets = np.array([version.budget_sec(w, self_tuning) + 1 for w in workloads], dtype=float)
    times = np.asarray(times, dtype=float)
    return np.where(np.isposinf(times), np.broadcast_to(budgets, times.shape), times)


def geometric_mean_speedups(times: pd.DataFrame, base_submission: str, version: BenchmarkVersion,
                            self_tuning: bool = False) -> pd.Series:
    """Submission -> geometric mean of its time relative to ``base_submission``'s (NaN if a base
    workload is missing for either)."""
    _check_base(times, base_submission)
    base_workloads = list(version.base_workloads)
    table = times.reindex(columns=base_workloads).astype(float)
    filled = pd.DataFrame(never_reached_as_budget(table.to_numpy(), base_workloads, version,
                                                  self_tuning),
                          index=table.index, columns=table.columns)
    relative = filled / filled.loc[base_submission]
    return pd.Series(np.exp(np.log(relative).mean(axis=1, skipna=False)), index=table.index,
                     name=f"speedup_vs_{base_submission}")


def geometric_mean_intervals(speedups: pd.Series, replicates: TimeReplicates,
                             base_submission: str, version: BenchmarkVersion, self_tuning: bool,
                             confidence: float) -> pd.DataFrame:
    """The geometric-mean speedups with their percentile intervals (none for the base itself)."""
    base_workloads = list(version.base_workloads)
    rows = []
    for submission, speedup in speedups.items():
        low = high = np.nan
        if submission != base_submission:
            ratios = _ratio_replicates(replicates, submission, base_submission, base_workloads,
                                       version, self_tuning)
            with np.errstate(invalid="ignore"):
                per_replicate = np.exp(np.log(ratios).mean(axis=1))
            low, high = (float(v) for v in percentile_interval(per_replicate, confidence))
        rows.append({"submission": submission, "speedup": speedup, "low": low, "high": high})
    return pd.DataFrame(rows, columns=["submission", "speedup", "low", "high"])


def workload_speedups(times: pd.DataFrame, per_study: pd.DataFrame, base_submission: str,
                      version: BenchmarkVersion, self_tuning: bool = False,
                      replicates: TimeReplicates | None = None,
                      confidence: float = CONFIDENCE) -> pd.DataFrame:
    """One row per (other submission, workload): median times, their ratio and, given bootstrap
    replicates, its interval, verdict and permutation p-value.

    Columns: submission, workload, time, base_time (medians, inf = never reached), speedup;
    with ``replicates`` also low, high, verdict, p_value, smallest_p.
    """
    _check_base(times, base_submission)
    workloads = [str(w) for w in times.columns]
    filled = pd.DataFrame(never_reached_as_budget(times.to_numpy(dtype=float), workloads, version,
                                                  self_tuning),
                          index=times.index, columns=times.columns)
    rows = []
    for submission in times.index:
        if submission == base_submission:
            continue
        for workload in workloads:
            row = {"submission": submission, "workload": workload,
                   "time": times.at[submission, workload],
                   "base_time": times.at[base_submission, workload],
                   "speedup": (filled.at[submission, workload]
                               / filled.at[base_submission, workload])}
            if replicates is not None:
                row.update(_significance(row["speedup"], replicates, per_study, submission,
                                         base_submission, workload, version, self_tuning,
                                         confidence))
            rows.append(row)
    columns = ["submission", "workload", "time", "base_time", "speedup"]
    if replicates is not None:
        columns += ["low", "high", "verdict", "p_value", "smallest_p"]
    return pd.DataFrame(rows, columns=columns)


def verdict(low: float, high: float) -> str:
    """What a speedup interval says at its confidence level."""
    if np.isnan(low) or np.isnan(high):
        return MISSING
    if high < 1:
        return FASTER
    if low > 1:
        return SLOWER
    return NOT_SIGNIFICANT


def _significance(speedup: float, replicates: TimeReplicates, per_study: pd.DataFrame,
                  submission: str, base_submission: str, workload: str,
                  version: BenchmarkVersion, self_tuning: bool, confidence: float) -> dict:
    if np.isnan(speedup):
        return {"low": np.nan, "high": np.nan, "verdict": MISSING, "p_value": np.nan,
                "smallest_p": np.nan}
    ratios = _ratio_replicates(replicates, submission, base_submission, [workload], version,
                               self_tuning)[:, 0]
    low, high = (float(v) for v in percentile_interval(ratios, confidence))

    def mean_log_difference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.log(x).mean(axis=1) - np.log(y).mean(axis=1)

    studies = [never_reached_as_budget(_study_times(per_study, name, workload)[:, None],
                                       [workload], version, self_tuning)[:, 0]
               for name in (submission, base_submission)]
    test = permutation_test(*studies, mean_log_difference)
    enough = min(len(times) for times in studies) >= MIN_STUDIES
    return {"low": low, "high": high, "verdict": verdict(low, high) if enough else TOO_FEW,
            "p_value": test.p_value, "smallest_p": test.smallest_p}


def _ratio_replicates(replicates: TimeReplicates, submission: str, base_submission: str,
                      workloads: list[str], version: BenchmarkVersion,
                      self_tuning: bool) -> np.ndarray:
    """(samples, workloads): per replicate, t_submission / t_base with never reached as budget."""
    columns = [replicates.workloads.index(w) if w in replicates.workloads else None
               for w in workloads]

    def of(name: str) -> np.ndarray:
        values = replicates.of(name)
        picked = np.full((len(values), len(workloads)), np.nan)
        for j, column in enumerate(columns):
            if column is not None:
                picked[:, j] = values[:, column]
        return never_reached_as_budget(picked, workloads, version, self_tuning)

    return of(submission) / of(base_submission)


def _study_times(per_study: pd.DataFrame, submission: str, workload: str) -> np.ndarray:
    mine = per_study[(per_study["submission"].astype(str) == submission)
                     & (per_study["workload"].astype(str) == workload)]
    return mine["time_to_target"].to_numpy(dtype=float)


def _check_base(times: pd.DataFrame, base_submission: str) -> None:
    if base_submission not in times.index:
        raise KeyError(f"speedup base {base_submission!r} is not among the scored submissions "
                       f"({', '.join(map(str, times.index))})")
