"""Bootstrap confidence intervals for the median times to target and the benchmark score.

The point values (``ScoringResult.time_to_target``, ``.scores``) are the published scorer's and
stay untouched; the intervals only say how much they could move had the studies come out
otherwise. The method, a two-stage (nested) percentile bootstrap:

* Resampling unit. A submission's studies of one workload are resampled with replacement, as many
  as it has (3 in v0.6, 5 in v0.5). Under external tuning each drawn study also has its trials
  resampled with replacement (5 draws from its 5), and the study takes the trial the published
  rule picks among the draws: the one reaching the target at the earliest eval, ties to the
  trial listed first (time_to_target.py). Self-tuning has one trial per study: only studies are
  resampled. The pick among n drawn trials is sampled directly from its distribution, the best
  rank among n uniform draws, P(rank >= k) = ((n - k) / n) ** n -- the same law as drawing the n
  trials, in one random number per study.
* Replicate. The median over the drawn studies (``np.median``, as the point value): a replicate of
  the per-workload time. Every submission and workload is resampled independently, with its own
  random stream derived from the seed and the submission's and workload's names, so adding a
  submission to a comparison leaves the others' time intervals unchanged.
* Score. On every replicate the credited times, performance ratios, profiles and scores are
  recomputed from the replicate's time table with profiles.py's functions -- the held-out rule and
  the 4x rule included, the fastest submission taken within the replicate -- exactly as the point
  score is computed from the observed table.
* Interval. The percentile interval: the 2.5th and 97.5th percentiles of the replicates
  (``method="inverted_cdf"``: actual replicate values, never interpolated, so infinity stays
  infinity). The defaults are :data:`DEFAULT_SAMPLES` replicates and seed :data:`DEFAULT_SEED`;
  a given seed always gives the same intervals.

Reading the intervals:

* An upper end of ``inf`` means that in at least 2.5% of the replicates the median study never
  reached the target: the logs cannot rule out, at 95%, that the submission fails the workload
  (e.g. one study of three never reached it). A lower end of ``inf`` means it (almost) never does.
* NaN means the submission has no logs for the workload: there is nothing to resample.
* With few studies the percentile bootstrap says little more than the spread of the studies. Its
  replicates only take values among the observed study times (and, under external tuning, the
  studies' slower trials): with 3 or 5 self-tuning studies the 2.5th percentile of the median is
  the fastest study and the 97.5th the slowest (the median is the fastest of 3 studies in 7 of 27
  resamples, of 5 in 181 of 3125); under external tuning the upper end may reach a study's
  second-best trial. Treat the interval as "the range the studies span", not as a guarantee.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .listing_order import listing_key
from .profiles import (benchmark_scores, performance_profiles, performance_ratios,
                       times_entering_score)
from .versions import BenchmarkVersion

DEFAULT_SAMPLES = 2000  # replicates: the 2.5th percentile then rests on 50 of them
DEFAULT_SEED = 0
CONFIDENCE = 0.95


@dataclass(frozen=True)
class BootstrapSettings:
    """How many replicates, from which seed, at which confidence level."""

    samples: int = DEFAULT_SAMPLES
    seed: int = DEFAULT_SEED
    confidence: float = CONFIDENCE

    def __post_init__(self) -> None:
        if not isinstance(self.samples, (int, np.integer)) or self.samples < 1:
            raise ValueError(f"bootstrap samples must be a positive whole number, got "
                             f"{self.samples!r}; e.g. {DEFAULT_SAMPLES}")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"bootstrap seed must be a whole number >= 0, got {self.seed!r}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must lie strictly between 0 and 1, got "
                             f"{self.confidence!r}; e.g. 0.95")


@dataclass
class TimeReplicates:
    """Bootstrap replicates of the median times: ``values[b, i, j]`` is replicate b of submission
    ``submissions[i]`` on ``workloads[j]`` (NaN where the submission has no logs for it)."""

    submissions: list[str]
    workloads: list[str]
    values: np.ndarray  # (samples, submissions, workloads)

    def table(self, sample: int) -> pd.DataFrame:
        """One replicate as a submissions x workloads table, like ``time_to_target``."""
        return pd.DataFrame(self.values[sample],
                            index=pd.Index(self.submissions, name="submission"),
                            columns=pd.Index(self.workloads, name="workload"))

    def of(self, submission: str) -> np.ndarray:
        """(samples, workloads): one submission's replicates."""
        return self.values[:, self.submissions.index(submission), :]


@dataclass
class Intervals:
    """The bootstrap's results, beside the point values they belong to."""

    settings: BootstrapSettings
    replicates: TimeReplicates
    time_to_target: pd.DataFrame  # submission, workload, time_to_target, low, high
    scores: pd.DataFrame  # submission, score, low, high (empty without base workloads)
    speedups: pd.DataFrame | None = None  # submission, speedup, low, high (geometric mean)


def percentile_interval(replicates: np.ndarray, confidence: float = CONFIDENCE,
                        axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(low, high): the percentile interval of ``replicates`` along ``axis``.

    Replicate values are returned as they are (inverted CDF), so an interval end may be inf; an
    all-NaN slice gives NaN.
    """
    tail = (1 - confidence) / 2
    values = np.asarray(replicates, dtype=float)
    low = np.full(np.delete(values.shape, axis), np.nan)
    high = low.copy()
    known = ~np.isnan(values).all(axis=axis)
    if known.any():
        # Replicates are NaN for a whole slice or not at all (a workload is logged or it is not).
        moved = np.moveaxis(values, axis, 0)[:, known]
        low[known], high[known] = np.quantile(moved, [tail, 1 - tail], axis=0,
                                              method="inverted_cdf")
    return low, high


def study_trial_times(trials: pd.DataFrame,
                      self_tuning: bool) -> dict[tuple[str, str], list[np.ndarray]]:
    """(submission, workload) -> per study, its trials' times in the published rule's pick order.

    Element 0 of each study's array is the time of the trial the study is scored with (the point
    value); never-reached trials come last, with time inf. Self-tuning studies keep only that one.
    """
    if trials.empty:
        return {}
    evals = trials["target_eval"].to_numpy()
    ordered = trials.assign(
        _eval=np.where(evals >= 0, evals, np.iinfo(np.int64).max),
        _listed=pd.Series([listing_key(e) + listing_key(t) for e, t in
                           zip(trials["experiment"].astype(str), trials["trial"].astype(str),
                               strict=True)], index=trials.index, dtype=object))
    ordered = ordered.sort_values("_listed", kind="stable").sort_values("_eval", kind="stable")
    studies: dict[tuple[str, str], list[np.ndarray]] = {}
    keys = ["submission", "workload", "study"]
    for (submission, workload, _), group in ordered.groupby(keys, observed=True, sort=True):
        times = group["time_to_target"].to_numpy(dtype=float)
        studies.setdefault((str(submission), str(workload)), []).append(
            times[:1] if self_tuning else times)
    return studies


def median_replicates(studies: list[np.ndarray], samples: int,
                      rng: np.random.Generator) -> np.ndarray:
    """(samples,) replicates of the median over studies, each study's trials given in pick order."""
    count = len(studies)
    most = max(len(times) for times in studies)
    padded = np.full((count, most), np.inf)
    # survival[s, k - 1] = P(best rank among n draws >= k), k = 1 .. most - 1 (0 beyond n - 1).
    survival = np.zeros((count, max(most - 1, 0)))
    for index, times in enumerate(studies):
        n = len(times)
        padded[index, :n] = times
        ranks = np.arange(1, n)
        survival[index, :n - 1] = ((n - ranks) / n) ** n
    drawn = rng.integers(count, size=(samples, count))
    uniform = rng.random((samples, count))
    rank = (uniform[..., None] < survival[drawn]).sum(axis=-1)
    return np.median(padded[drawn, rank], axis=1)


def time_replicates(trials: pd.DataFrame, submissions: list[str], workloads: list[str],
                    self_tuning: bool, settings: BootstrapSettings) -> TimeReplicates:
    """Replicates of every submission's median time on every workload (NaN where not logged)."""
    values = np.full((settings.samples, len(submissions), len(workloads)), np.nan)
    studies = study_trial_times(trials, self_tuning)
    for i, submission in enumerate(submissions):
        for j, workload in enumerate(workloads):
            if (submission, workload) in studies:
                values[:, i, j] = median_replicates(studies[submission, workload],
                                                    settings.samples,
                                                    _stream(settings.seed, submission, workload))
    return TimeReplicates(list(submissions), list(workloads), values)


def score_replicates(replicates: TimeReplicates, version: BenchmarkVersion,
                     chunk: int = 100) -> np.ndarray:
    """(samples, submissions): the benchmark score recomputed on every replicate.

    Replicates are scored ``chunk`` at a time, side by side (see :func:`_side_by_side`).
    """
    return np.concatenate([
        _score_side_by_side(TimeReplicates(replicates.submissions, replicates.workloads,
                                           replicates.values[start:start + chunk]), version)
        for start in range(0, len(replicates.values), chunk)])


def _score_side_by_side(replicates: TimeReplicates, version: BenchmarkVersion) -> np.ndarray:
    samples, count = len(replicates.values), len(replicates.submissions)
    copies = _side_by_side(version, samples)
    # One float block holding every copy's scored workloads (NaN where not logged), in the order
    # the rules read them: building it column by column would make the rules' steps crawl.
    scored = list(version.scored_workloads)
    columns = [replicates.workloads.index(w) if w in replicates.workloads else None for w in scored]
    values = np.full((count, samples, len(scored)), np.nan)
    for j, column in enumerate(columns):
        if column is not None:
            values[:, :, j] = replicates.values[:, :, column].T
    wide = pd.DataFrame(values.reshape(count, -1),
                        index=pd.Index(replicates.submissions, name="submission"),
                        columns=[_copy_name(w, b) for b in range(samples) for w in scored])
    wide = wide[list(copies.scored_workloads)]
    ratios = performance_ratios(times_entering_score(wide, copies))
    # Columns come replicate-major (see _side_by_side): to rows (replicate, submission) x base
    # workloads.
    stacked = ratios.to_numpy().reshape(count, samples, version.num_base_workloads)
    stacked = pd.DataFrame(stacked.transpose(1, 0, 2).reshape(samples * count, -1))
    scores = benchmark_scores(performance_profiles(stacked, version.num_base_workloads))
    return scores.to_numpy().reshape(samples, count)


def _side_by_side(version: BenchmarkVersion, copies: int) -> BenchmarkVersion:
    """``copies`` independent copies of the version's scored workloads in one version.

    Every scoring rule works within a workload's column (the fastest time, the 4x rule) or between
    a held-out workload and its base: the copies' columns never meet, so one call of the rules on
    a table of all replicates side by side scores each replicate as if it were alone, with
    exactly the code that scores the point value.
    """
    workloads = {}
    for b in range(copies):
        for name in version.scored_workloads:
            target = version.target(name)
            workloads[_copy_name(name, b)] = dataclasses.replace(
                target, name=_copy_name(name, b),
                base=None if target.base is None else _copy_name(target.base, b))
    return dataclasses.replace(
        version, workloads=workloads,
        base_workloads=tuple(_copy_name(w, b) for b in range(copies)
                             for w in version.base_workloads),
        held_out_workloads=tuple(_copy_name(w, b) for b in range(copies)
                                 for w in version.held_out_workloads))


def _copy_name(workload: str, copy: int) -> str:
    return f"{workload}#{copy}"


def bootstrap_intervals(trials: pd.DataFrame, time_to_target: pd.DataFrame, scores: pd.Series,
                        version: BenchmarkVersion, self_tuning: bool,
                        settings: BootstrapSettings = BootstrapSettings()) -> Intervals:
    """Intervals for the median times and the scores of a scoring run (its trials table, its
    submissions x workloads time table and its scores)."""
    submissions = [str(s) for s in time_to_target.index]
    workloads = [str(w) for w in time_to_target.columns]
    replicates = time_replicates(trials, submissions, workloads, self_tuning, settings)
    low, high = percentile_interval(replicates.values, settings.confidence)
    times = time_to_target.rename_axis(index="submission", columns="workload").stack(
        future_stack=True).rename("time_to_target").reset_index()
    times["low"], times["high"] = low.ravel(), high.ravel()
    times = times[times["time_to_target"].notna()].reset_index(drop=True)
    score_table = pd.DataFrame(columns=["submission", "score", "low", "high"])
    if not scores.empty:
        low, high = percentile_interval(score_replicates(replicates, version), settings.confidence)
        order = [submissions.index(str(s)) for s in scores.index]
        score_table = pd.DataFrame({"submission": [str(s) for s in scores.index],
                                    "score": scores.to_numpy(), "low": low[order],
                                    "high": high[order]})
    return Intervals(settings, replicates, times, score_table)


def _stream(seed: int, *names: str) -> np.random.Generator:
    """A random stream of its own for each name, the same in every process and every run."""
    return np.random.default_rng([seed, *(zlib.crc32(name.encode()) for name in names)])
