"""How fast does ``scoring`` score a tree the size of the v0.5 external-tuning leaderboard?

The published scorer needs about 18 s on 2 cores for that tree (3,718 CSVs, 51 MB); the goal is
at least 10x faster with identical results. This script generates a tree of the same shape
(benchmarks/scoring_log_tree.py), scores it several times with warm file caches, and prints the
seconds per tree, the time with all outputs written, the time of the straightforward path (one
``pandas.read_csv`` per file) and whether both paths agree exactly. It is not part of the tests.

    python benchmarks/scoring_speed.py                 # generates the tree in a temporary dir
    python benchmarks/scoring_speed.py --tree /tmp/v05_like --repeat 10
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]  # scoring from this checkout, the tree generator

import pandas as pd  # noqa: E402
from scoring_log_tree import write_tree  # noqa: E402

from scoring import find_submissions, score_log_dirs  # noqa: E402

# Seconds the published scorer takes for the v0.5 external-tuning tree on 2 cores.
PUBLISHED_SCORER_SECONDS = 18.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path,
                        help="log tree to use; generated there if missing (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs (default: 5)")
    parser.add_argument("--workers", type=int, default=1,
                        help="parser processes (default: 1)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch:
        tree = args.tree or Path(scratch) / "tree"
        if not tree.exists():
            started = time.perf_counter()
            files, size = write_tree(tree)
            print(f"generated {files} files, {size / 1e6:.1f} MB in "
                  f"{time.perf_counter() - started:.1f} s")
        files = list(tree.rglob("eval_measurements.csv"))
        print(f"tree: {tree}: {len(files)} CSVs, "
              f"{sum(f.stat().st_size for f in files) / 1e6:.1f} MB")
        submissions = find_submissions(tree)

        def score(**options):
            return score_log_dirs(submissions, version="v0.5", workers=args.workers, **options)

        score()  # warm the file cache and imports, as for any later run
        seconds = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            fast = score()
            seconds.append(time.perf_counter() - started)
        best, median = min(seconds), statistics.median(seconds)
        print(f"scoring (read, time to target, profiles, scores): {best:.3f} s per tree "
              f"(best of {args.repeat}; median {median:.3f} s)")

        started = time.perf_counter()
        score().write(Path(scratch) / "outputs")
        with_outputs = time.perf_counter() - started
        print(f"  with every output written (CSVs, summaries, plot PNG + PDF): "
              f"{with_outputs:.3f} s")

        started = time.perf_counter()
        plain = score(fast=False)
        plain_seconds = time.perf_counter() - started
        identical = _identical(fast, plain)
        print(f"straightforward path (one pandas.read_csv per file): {plain_seconds:.3f} s; "
              f"identical results: {'yes' if identical else 'NO'}")

        print(f"speedup over the published scorer's {PUBLISHED_SCORER_SECONDS:g} s: "
              f"{PUBLISHED_SCORER_SECONDS / median:.0f}x (scoring, median), "
              f"{PUBLISHED_SCORER_SECONDS / with_outputs:.0f}x (with outputs)")
    return 0 if identical else 1


def _identical(a, b) -> bool:
    try:
        pd.testing.assert_frame_equal(a.evals, b.evals, check_exact=True)
        pd.testing.assert_frame_equal(a.per_study, b.per_study, check_exact=True)
        pd.testing.assert_frame_equal(a.time_to_target, b.time_to_target, check_exact=True)
        pd.testing.assert_series_equal(a.scores, b.scores, check_exact=True)
    except AssertionError as error:
        print(error)
        return False
    return a.warnings == b.warnings


if __name__ == "__main__":
    sys.exit(main())
