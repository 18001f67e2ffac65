"""Geometric-mean speedups against a chosen base submission (spec §6.5).

For every submission: the geometric mean over the base workloads of t_submission / t_base, the
per-workload median times to target. A workload never finished counts as its budget plus one
second, the budget being the version's runtime budget times the self-tuning factor where it
applies. For v0.5 these are exactly the published ``compute_speedups.py`` numbers (its budgets are
v0.5's and its self-tuning factor is 3); other versions use their own budgets. A value below 1 means
faster than the base: 0.72 is "28% less time".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .versions import BenchmarkVersion


def geometric_mean_speedups(times: pd.DataFrame, base_submission: str, version: BenchmarkVersion,
                            self_tuning: bool = False) -> pd.Series:
    """Submission -> geometric mean of its time relative to ``base_submission``'s (NaN if a base
    workload is missing for either)."""
    if base_submission not in times.index:
        raise KeyError(f"speedup base {base_submission!r} is not among the scored submissions "
                       f"({', '.join(map(str, times.index))})")
    base_workloads = list(version.base_workloads)
    table = times.reindex(columns=base_workloads).astype(float)
    for workload in base_workloads:
        never = np.isposinf(table[workload])
        table.loc[never, workload] = version.budget_sec(workload, self_tuning) + 1
    relative = table / table.loc[base_submission]
    return pd.Series(np.exp(np.log(relative).mean(axis=1, skipna=False)), index=table.index,
                     name=f"speedup_vs_{base_submission}")
