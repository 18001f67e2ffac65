"""``python -m scoring``: score log directories from a shell."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .bootstrap import DEFAULT_SAMPLES, DEFAULT_SEED
from .layout import LogLayoutError, find_submissions
from .pipeline import score_log_dirs
from .problems import Problems, ScoringError
from .versions import DEFAULT_VERSION, VersionError, available_versions, load_version

_DESCRIPTION = """\
Score AlgoPerf training-algorithm logs: the time each submission needs to reach each workload's
validation target, performance profiles, and the benchmark score.

The score of a submission is the area under its performance profile: for every tau in [1, 4], the
fraction of the base workloads on which it reached the target within tau times the fastest
submission's time. It lies in [0, 1] (1 = fastest everywhere) and is relative to the submissions
scored together, so score a new submission together with reference logs (e.g. a baseline's).
"""

_EPILOG = """\
LOGDIR layouts (AlgoPerf's, also written by the pytest plugin):
  SUBMISSION/study_<s>/<workload>_<framework>/trial_<k>/eval_measurements.csv
LOGDIR may be one submission's directory (holding study_*), a directory of submissions
(e.g. .../external_tuning), or a tree holding external_tuning/ and self_tuning/.
A trial directory still holding trial_running.json (the plugin's marker while a trial runs) was
interrupted: it is left out of the score and named in the warnings (an error with --strict).

examples:
  python -m scoring logs/algoperf_v06_logs --output results
  python -m scoring logs/algoperf_v06_logs --self-tuning
  python -m scoring results/my_run logs/v05/external_tuning --version v0.5 --speedup-base baseline
  python -m scoring logs/algoperf_v06_logs --intervals --speedup-base baseline

--intervals adds 95% percentile bootstrap intervals (studies resampled, and under external tuning
the trials within each study) to the median times, the scores and the speedups, and a
permutation-test p-value to each per-workload speedup; the point values do not change. With 3
studies per submission no p-value can fall below 0.1 (p < 0.01 takes 5 studies on each side).

exit status: 0 scored; 1 no logs found, or --strict found problems; 2 bad command line.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scoring", description=_DESCRIPTION,
                                     epilog=_EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("log_dirs", nargs="+", type=Path, metavar="LOGDIR",
                        help="log directory to score; several are scored together")
    parser.add_argument("--version", default=DEFAULT_VERSION, metavar="VERSION",
                        help=f"benchmark version whose targets and rules apply: "
                             f"{', '.join(available_versions())} (default: %(default)s), "
                             f"or the path of a version JSON file")
    parser.add_argument("--self-tuning", action="store_true",
                        help="score the self-tuning ruleset (one trial per study; picks "
                             "self_tuning/ in a tree holding both rulesets)")
    parser.add_argument("--output", type=Path, metavar="DIR",
                        help="also write CSV tables and the performance-profile plot (PNG, PDF) "
                             "into DIR")
    parser.add_argument("--no-plots", action="store_true",
                        help="with --output, skip the plot (no matplotlib needed)")
    parser.add_argument("--strict", action="store_true",
                        help="treat problems in the logs (interrupted trials among them) as "
                             "errors, and require the version's number of studies and trials "
                             "for every scored workload")
    parser.add_argument("--speedup-base", metavar="SUBMISSION",
                        help="also report each submission's geometric-mean time relative to "
                             "this submission over the base workloads (below 1 = faster), and "
                             "the per-workload speedups")
    parser.add_argument("--intervals", action="store_true",
                        help="add 95%% bootstrap confidence intervals (and, with --speedup-base, "
                             "significance verdicts and permutation p-values); off by default "
                             "for speed")
    parser.add_argument("--bootstrap-samples", type=_positive_int, metavar="N",
                        help=f"with --intervals: bootstrap replicates (default: {DEFAULT_SAMPLES})")
    parser.add_argument("--bootstrap-seed", type=_seed, metavar="S",
                        help=f"with --intervals: seed of the replicates; the same seed gives the "
                             f"same intervals (default: {DEFAULT_SEED})")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; e.g. "
                                         f"{DEFAULT_SAMPLES}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} replicates: give at least 1 (e.g. "
                                         f"{DEFAULT_SAMPLES})")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 0")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for option in ("bootstrap_samples", "bootstrap_seed"):
        if getattr(args, option) is not None and not args.intervals:
            parser.error(f"--{option.replace('_', '-')} applies to --intervals; add --intervals "
                         f"or drop it")
    started = time.perf_counter()
    try:
        version = load_version(args.version)
    except VersionError as error:
        parser.error(str(error))
    problems = Problems()  # found while looking for submissions
    submissions: dict[str, list[Path]] = {}
    try:
        for log_dir in args.log_dirs:
            for name, directories in find_submissions(log_dir, args.self_tuning, problems).items():
                if name in submissions:
                    parser.error(f"two submissions are named {name!r} ({submissions[name][0]} and "
                                 f"{directories[0]}); score them separately or rename one")
                submissions[name] = directories
        if args.speedup_base is not None and args.speedup_base not in submissions:
            parser.error(f"--speedup-base {args.speedup_base!r} is not among the submissions "
                         f"found: {', '.join(submissions)}")
        if args.strict:
            problems.raise_if_any()
        result = score_log_dirs(submissions, version=version, self_tuning=args.self_tuning,
                                strict=args.strict, speedup_base=args.speedup_base,
                                intervals=args.intervals,
                                bootstrap_samples=_given(args.bootstrap_samples, DEFAULT_SAMPLES),
                                bootstrap_seed=_given(args.bootstrap_seed, DEFAULT_SEED))
    except ScoringError as error:
        every = list(dict.fromkeys(problems.messages + error.problems))
        print(f"error: {ScoringError(every)}", file=sys.stderr)
        return 1
    except LogLayoutError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except ValueError as error:  # e.g. one directory given twice
        parser.error(str(error))
    result.warnings[:0] = problems.messages
    print(result.format_text())
    if args.output is not None:
        written = result.write(args.output, plots=not args.no_plots)
        print(f"\nWrote {len(written)} files to {args.output}/")
    print(f"\nScored {len(result.trials)} trials in {time.perf_counter() - started:.2f} s.")
    return 0


def _given(value: int | None, default: int) -> int:
    return default if value is None else value
