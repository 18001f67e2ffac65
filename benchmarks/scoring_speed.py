"""How fast does ``scoring`` score a tree the size of the v0.5 external-tuning leaderboard?

The published v0.5 tree holds 3,718 ``eval_measurements.csv`` files (51 MB), each with every column
the runner logs. This script generates a tree of the same shape (benchmarks/scoring_log_tree.py),
then times, with warm file caches:

* scoring in this process (read, time to target, profiles, scores), and the same with every
  output written (CSVs, per-submission summaries, the profile plot as PNG and PDF);
* ``python -m scoring TREE --version v0.5 --output DIR`` in a fresh process: interpreter start,
  imports, scoring, the terminal report and every output, as a user runs it;
* the straightforward path (one ``pandas.read_csv`` per file), checking that both paths agree;
* with ``--published-scorer DIR``, the published scorer on the same tree in the same run.

DIR holds the published v0.5 scorer as laid out upstream (``scoring/score_submissions.py``,
``scoring/performance_profile.py``, ``scoring/scoring_utils.py``, and what they import). It reads
``<team>/<submission>/study_*`` trees, so it is given a view of this tree with one team per
submission (symbolic links). Its scores are compared with ours. It is not part of the tests.

    python benchmarks/scoring_speed.py                 # generates the tree in a temporary dir
    python benchmarks/scoring_speed.py --tree /tmp/v05_like --published-scorer /tmp/published
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(REPO), str(HERE)]  # scoring from this checkout, the tree generator

import pandas as pd  # noqa: E402
from scoring_log_tree import write_tree  # noqa: E402

from scoring import find_submissions, score_log_dirs  # noqa: E402

# The published v0.5 scorer on this script's tree, timed with --published-scorer (median of 2, in
# the same run that measured 1.00 s for the fresh process here, 12.0x): 2 shared cores,
# Python 3.11, pandas 3.1, matplotlib 3.11.
PUBLISHED_SCORER_SECONDS = 12.1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path,
                        help="log tree to use; generated there if missing (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="timed runs of each kind (default: 5)")
    parser.add_argument("--workers", type=int, default=1,
                        help="parser processes for the in-process runs (default: 1)")
    parser.add_argument("--published-scorer", type=Path, metavar="DIR",
                        help="time the published scorer in DIR on the same tree (see above)")
    parser.add_argument("--published-repeat", type=int, default=1,
                        help="timed runs of the published scorer (default: 1)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        tree = args.tree or scratch / "tree"
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

        fast = score()  # warm the file cache and imports, as for any later run
        fast.write(scratch / "warm")
        seconds = _timed(score, args.repeat)
        print(f"in this process, scoring (read, time to target, profiles, scores): "
              f"{_summary(seconds)}")
        runs = iter(range(args.repeat))
        written = _timed(lambda: score().write(scratch / f"out_{next(runs)}"), args.repeat)
        print(f"  with every output written (CSVs, summaries, plot PNG + PDF): {_summary(written)}")

        command = [sys.executable, "-m", "scoring", str(tree), "--version", "v0.5",
                   "--output", str(scratch / "cli_out")]
        fresh = _timed(lambda: _run(command, cwd=REPO), args.repeat)
        print(f"fresh process, python -m scoring TREE --version v0.5 --output DIR: "
              f"{_summary(fresh)}")

        started = time.perf_counter()
        plain = score(fast=False)
        plain_seconds = time.perf_counter() - started
        identical = _identical(fast, plain)
        print(f"straightforward path (one pandas.read_csv per file): {plain_seconds:.3f} s; "
              f"identical results: {'yes' if identical else 'NO'}")

        published = PUBLISHED_SCORER_SECONDS
        source = "recorded"
        if args.published_scorer is not None:
            published, agrees = _time_published(args.published_scorer.resolve(), tree, scratch,
                                                fast.scores, args.published_repeat)
            identical = identical and agrees
            source = "measured now"
        print(f"published scorer ({source}): {published:.2f} s; speedup: "
              f"{published / statistics.median(fresh):.1f}x (fresh process, all outputs), "
              f"{published / statistics.median(written):.1f}x (in process, all outputs), "
              f"{published / statistics.median(seconds):.1f}x (in process, scoring only)")
    return 0 if identical else 1


def _timed(work, repeat: int) -> list[float]:
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    return seconds


def _summary(seconds: list[float]) -> str:
    return (f"{statistics.median(seconds):.3f} s median of {len(seconds)} "
            f"(best {min(seconds):.3f} s)")


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")


def _time_published(scorer: Path, tree: Path, scratch: Path, our_scores: pd.Series,
                    repeat: int) -> tuple[float, bool]:
    """Median seconds of the published scorer on ``tree``, and whether its scores equal ours."""
    script = scorer / "scoring" / "score_submissions.py"
    if not script.is_file():
        sys.exit(f"{script} not found: --published-scorer needs the directory holding upstream's "
                 f"scoring/ (score_submissions.py, performance_profile.py, scoring_utils.py)")
    teams = scratch / "published_view"
    for submission in sorted(p for p in tree.iterdir() if p.is_dir()):
        (teams / submission.name).mkdir(parents=True, exist_ok=True)
        (teams / submission.name / submission.name).symlink_to(submission.resolve())
    output = scratch / "published_out"
    command = [sys.executable, str(script), "--submission_directory", str(teams),
               "--output_dir", str(output), "--compute_performance_profiles"]
    env = {**os.environ, "PYTHONPATH": str(scorer)}
    seconds = _timed(lambda: _run(command, cwd=scorer, env=env), repeat)
    print(f"published scorer ({script}): {_summary(seconds)}")
    theirs = pd.read_csv(output / "scores.csv", index_col=0)["score"]
    difference = (theirs - our_scores.reindex(theirs.index)).abs().max()
    agrees = bool(difference <= 1e-12) and set(theirs.index) == set(our_scores.index)
    print(f"  its scores {'equal' if agrees else 'DIFFER from'} ours "
          f"(largest difference {difference:.1e})")
    return statistics.median(seconds), agrees


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
