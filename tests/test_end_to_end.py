"""The NAdamW baseline trained to target on the real MNIST digits, through the plugin, on this CPU."""

import csv

import pytest


def test_nadamw_baseline_reaches_the_mnist_target(pytester, mnist_data_dir, tmp_path, project_root):
    result = pytester.runpytest(
        f"--algoperf-submission={project_root / 'submissions' / 'nadamw'}",
        f"--algoperf-data-dir={mnist_data_dir}",
        f"--algoperf-results-dir={tmp_path}",
        "--algoperf-studies=1",
        "-k", "trial3",
        "-p", "no:cacheprovider",
    )
    result.assert_outcomes(passed=1)
    rows = list(csv.DictReader((tmp_path / "nadamw" / "study_0" / "mnist_pytorch" / "trial_3" / "eval_measurements.csv").open()))
    final = rows[-1]
    assert float(final["validation/accuracy"]) > 0.97 and float(final["test/accuracy"]) > 0.97
    assert float(final["score"]) < 60.0
    assert all(float(row["validation/accuracy"]) <= 0.97 or float(row["test/accuracy"]) <= 0.97 for row in rows[:-1])
    result.stdout.fnmatch_lines(["*0*reached"])
