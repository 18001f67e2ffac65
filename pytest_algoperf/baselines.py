"""Where the baseline submissions live: the project's `submissions/` folder, found by path.

The baselines are never installed as a `submissions` package: a leaderboard
checkout has a `submissions` package of its own, which submissions import by
that name (see submission_imports.py).
"""

from __future__ import annotations

from pathlib import Path

BASELINES_DIR = Path(__file__).resolve().parent.parent / "submissions"
# The NAdamW baseline of each tuning ruleset.
BASELINE_FOR_RULESET = {"external": "nadamw", "self": "nadamw_self_tuning"}


def baseline_dir(name: str) -> Path:
    """The folder of baseline `name` (holding submission.py); a missing one names where it was looked for."""
    folder = BASELINES_DIR / name
    if not (folder / "submission.py").is_file():
        known = sorted(p.name for p in BASELINES_DIR.glob("*/submission.py")) if BASELINES_DIR.is_dir() else []
        raise FileNotFoundError(
            f"no baseline {name!r} in {BASELINES_DIR} (found: {', '.join(known) or 'none'}); "
            "the baselines ship with the project checkout: install it with `pip install -e .`"
        )
    return folder


def ruleset_baseline_dir(ruleset: str) -> Path:
    return baseline_dir(BASELINE_FOR_RULESET[ruleset])


def baseline_module(name: str):
    """The imported module of baseline `name`, e.g. for a test submission that wraps the baseline."""
    from pytest_algoperf.submission_loading import load_submission

    return load_submission(baseline_dir(name)).module
