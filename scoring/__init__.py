"""Scoring for AlgoPerf logs: time to target, performance profiles and the benchmark score.

Torch-free: it reads ``eval_measurements.csv`` log trees (ours or the public leaderboard's) and
reproduces the published numbers. Typical use::

    from scoring import score_log_dirs
    result = score_log_dirs({"mine": "results/my_run", "baseline": "logs/baseline"},
                            version="v0.6")
    print(result.format_text())
    result.write("scoring_results")

``score_log_dirs(..., intervals=True)`` adds bootstrap confidence intervals (bootstrap.py) and, with
a ``speedup_base``, per-workload speedups with verdicts and permutation p-values (speedups.py).

or from a shell: ``python -m scoring LOGDIR --version v0.6 --output scoring_results``.
"""

from .bootstrap import BootstrapSettings, Intervals
from .layout import LogLayoutError, TrialLog, find_submissions
from .logs import read_log_tree
from .pipeline import score_log_dirs
from .problems import ScoringError
from .profiles import benchmark_scores, performance_profiles
from .report import ScoringResult
from .speedups import geometric_mean_speedups, workload_speedups
from .versions import BenchmarkVersion, WorkloadTarget, available_versions, load_version

__all__ = [
    "BenchmarkVersion",
    "BootstrapSettings",
    "Intervals",
    "LogLayoutError",
    "ScoringError",
    "ScoringResult",
    "TrialLog",
    "WorkloadTarget",
    "available_versions",
    "benchmark_scores",
    "find_submissions",
    "geometric_mean_speedups",
    "load_version",
    "performance_profiles",
    "read_log_tree",
    "score_log_dirs",
    "workload_speedups",
]
