"""Performance profiles and the benchmark score (spec §6.3, §6.4).

Scores are relative: every submission is compared with the fastest one scored in the same call.
Starting from the submissions x workloads table of median times to target:

1. keep the base and held-out workloads (missing ones are NaN);
2. a held-out workload becomes inf where its base workload is inf or NaN;
3. in every column, a time above 4x the column's fastest (NaN skipped) becomes inf;
4. a base workload becomes inf where its held-out workload is inf or NaN (v0.5's "infinite" rule:
   a submission whose held-out variant fails, or is 4x slower than the fastest among submissions
   that finished the base workload, loses the base workload too);
5. keep the base workloads only; divide each column by its fastest time;
6. rho_s(tau) = #{workloads with ratio <= tau} / (number of base workloads) on 100 points of
   [1, 4] -- the divisor stays fixed even when a submission lacks a workload;
7. the score is the area under rho (trapezoid rule) divided by the width of the tau range, 3.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .versions import BenchmarkVersion

# The published score_submissions.py: min_tau=1.0, max_tau=4.0, num_points=100, linear scale.
TAUS = np.linspace(1.0, 4.0, 100)
# A submission more than this many times slower than the fastest gets no credit for a workload.
MAX_SLOWDOWN = 4

_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # np.trapz became np.trapezoid in numpy 2


def times_entering_score(times: pd.DataFrame, version: BenchmarkVersion) -> pd.DataFrame:
    """Steps 1-5 before the division: the times each submission is credited with, base only.

    On a numpy copy, column by column: the bootstrap calls this on thousands of resamples at once.
    """
    table = times.reindex(columns=list(version.scored_workloads)).astype(float)
    columns = list(table.columns)
    held_out = [columns.index(workload) for workload in version.held_out_workloads]
    bases = [columns.index(version.base_of(workload)) for workload in version.held_out_workloads]
    values = table.to_numpy(copy=True)
    values[:, held_out] = np.where(_failed(values[:, bases]), np.inf, values[:, held_out])
    fastest = pd.DataFrame(values).min(axis=0, skipna=True).to_numpy()  # NaN where a column has no time
    with np.errstate(invalid="ignore"):
        values = np.where(values > MAX_SLOWDOWN * fastest, np.inf, values)
    for held, base in zip(held_out, bases, strict=True):  # a base may have several variants
        values[:, base] = np.where(_failed(values[:, held]), np.inf, values[:, base])
    credited = pd.DataFrame(values, index=table.index, columns=columns)
    return credited[list(version.base_workloads)]


def performance_ratios(credited: pd.DataFrame) -> pd.DataFrame:
    """Each time divided by its column's fastest time.

    Where the division is undefined (inf/inf, NaN) the time itself is kept, as the published
    scorer's ``DataFrame.update`` does; inf and NaN never count as reached in the profile.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = credited / credited.min(axis=0, skipna=True)
    return ratios.where(ratios.notna(), credited)


def performance_profiles(ratios: pd.DataFrame, num_base_workloads: int,
                         taus: np.ndarray = TAUS) -> pd.DataFrame:
    """Submissions x tau: the fraction of base workloads solved within tau times the fastest."""
    values = ratios.to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        solved = (values[:, :, None] <= taus[None, None, :]).sum(axis=1)
    profiles = pd.DataFrame(solved / num_base_workloads, index=ratios.index, columns=taus)
    profiles.columns.name = "tau"
    return profiles


def benchmark_scores(profiles: pd.DataFrame) -> pd.Series:
    """The normalised area under each submission's performance profile, in [0, 1]."""
    taus = profiles.columns.to_numpy(dtype=float)
    area = _trapezoid(profiles.to_numpy(dtype=float), x=taus, axis=-1)
    return pd.Series(area / (taus.max() - taus.min()), index=profiles.index, name="score")


def score_submissions(times: pd.DataFrame,
                      version: BenchmarkVersion) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """From median times to (credited times, performance profiles, scores)."""
    credited = times_entering_score(times, version)
    profiles = performance_profiles(performance_ratios(credited), version.num_base_workloads)
    return credited, profiles, benchmark_scores(profiles)


def _failed(times: np.ndarray) -> np.ndarray:
    return ~np.isfinite(times)
