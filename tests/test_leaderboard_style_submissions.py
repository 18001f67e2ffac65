"""Submissions in the style of the public leaderboard pass the smoke gate unchanged, from a checkout layout.

The submissions live in `tests/leaderboard_checkout/submissions_algorithms/` (see its README): absl
logging, imports through the checkout path, a vendored package, an optimizer of the torch 2.5 era,
a queue-returning `data_selection`, a self-tuning submission reading `target_metric_name`.
Each smoke session runs in its own process, from a directory outside this project, as a user runs
pytest from a leaderboard checkout.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHECKOUT = Path(__file__).resolve().parent / "leaderboard_checkout" / "submissions_algorithms"
SUBMISSIONS = CHECKOUT / "submissions"

# (submission folder, ruleset, workloads its gate runs on)
CASES = [
    ("self_tuning/schedule_free_style", "self", "mnist or ogbg or wmt"),
    ("self_tuning/muon_style", "self", "mnist"),
    ("external_tuning/nadamw_copy_style", "external", "mnist or ogbg"),
    ("external_tuning/lawa_queue_style", "external", "mnist or wmt"),
]


def _smoke(pytester: pytest.Pytester, submission: Path, ruleset: str, selection: str, tmp_path: Path) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--algoperf-submission={submission}", f"--algoperf-ruleset={ruleset}",
        "--algoperf-smoke", f"--algoperf-results-dir={tmp_path}", "-k", selection,
    )


@pytest.mark.parametrize("folder, ruleset, selection", CASES, ids=[case[0].split("/")[1] for case in CASES])
def test_leaderboard_style_submission_passes_the_smoke_gate(pytester, tmp_path, folder, ruleset, selection):
    result = _smoke(pytester, SUBMISSIONS / folder, ruleset, selection, tmp_path)
    expected = len(selection.split(" or "))
    result.assert_outcomes(passed=expected)
    result.stdout.fnmatch_lines(["*AlgoPerf smoke gate*"])
    assert "may be broken" not in result.stdout.str()  # reading step_hint or target_metric_name is no identification


def test_the_checkout_also_runs_from_inside_it(pytester, tmp_path):
    """The same submission, with pytest started in the checkout root (upstream's working directory)."""
    pytester.chdir()
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--rootdir={CHECKOUT}", f"--algoperf-submission={SUBMISSIONS / 'self_tuning/muon_style'}",
        "--algoperf-ruleset=self", "--algoperf-smoke", f"--algoperf-results-dir={tmp_path}", "-k", "mnist",
    )
    result.assert_outcomes(passed=1)


def test_a_submission_needing_a_missing_package_fails_with_the_install_command(pytester, tmp_path):
    submission = pytester.mkdir("needs_package")
    (submission / "submission.py").write_text("import algoperf_missing_dependency\n")
    (submission / "requirements.txt").write_text("algoperf-missing-dependency==1.0\n")
    result = _smoke(pytester, submission, "self", "mnist", tmp_path)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*submission.py needs the package 'algoperf_missing_dependency', which is not installed; "
        f"install it with `pip install -r {submission / 'requirements.txt'}`*",
    ])
    assert "Traceback" not in result.stdout.str()


def test_a_jax_submission_is_told_that_only_pytorch_runs(pytester, tmp_path):
    submission = pytester.makepyfile(jax_submission="import jax.numpy as jnp\n")
    result = _smoke(pytester, submission, "self", "mnist", tmp_path)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*imports 'jax', which this PyTorch benchmark does not install; only PyTorch submissions run here*"])
