"""Learning curves: the curve data of real MNIST logs, each trial's and each workload's PNG, the comparison."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import pytest

from pytest_algoperf import learning_curves
from scoring import load_version, score_log_dirs
from test_plugin import _mnist_args, _run

V06 = load_version("v0.6")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A reference submission's MNIST trial: the second eval meets the target exactly (the scorer's rule is
# non-strict), the third is past it.
REFERENCE_LOG = (
    "global_step,score,train/accuracy,validation/accuracy,test/accuracy\n"
    "1,0.5,0.1,0.1,0.1\n"
    "900,1.5,0.95,0.97,0.96\n"
    "2000,3.0,0.99,0.98,0.98\n"
)


def _png_size(path: Path) -> tuple:
    """(width, height) from the PNG header."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _rows(path: Path) -> list:
    return list(csv.DictReader(path.open()))


def _with_target(version, workload: str, validation_target: float):
    target = dataclasses.replace(version.workloads[workload], validation_target=validation_target)
    return dataclasses.replace(version, workloads={**version.workloads, workload: target})


def test_a_development_run_draws_each_trial_and_each_workload(pytester, mnist_data_dir, tmp_path):
    results = tmp_path / "results"
    result = _run(pytester, *_mnist_args(mnist_data_dir, results, "--algoperf-studies=2", "--algoperf-trials=1", "--algoperf-max-steps=40"))
    result.assert_outcomes(passed=2)
    experiment = results / "nadamw-max-steps-40"
    result.stdout.fnmatch_lines([f"learning curves: mnist.png in {experiment / 'learning_curves'}"])
    for study in (0, 1):
        trial = experiment / f"study_{study}" / "mnist_pytorch" / "trial_1"
        assert _png_size(trial / "learning_curve.png") == (850, 450)
    assert _png_size(experiment / "learning_curves" / "mnist.png") == (1000, 550)
    assert not (experiment / "learning_curves" / "mnist_compare.png").exists()  # no references given

    # The curve data is the log's: submission time (the score column) and the target metric on both splits.
    measurements = experiment / "study_1" / "mnist_pytorch" / "trial_1" / "eval_measurements.csv"
    rows = _rows(measurements)
    curve = learning_curves.trial_curve(measurements, "mnist", V06)
    assert list(curve.columns) == ["global_step", "time", "train", "validation", "reached"]
    assert curve["global_step"].tolist() == [float(row["global_step"]) for row in rows] and curve["global_step"].iloc[-1] == 40
    assert curve["time"].tolist() == [float(row["score"]) for row in rows]
    assert curve["validation"].tolist() == [float(row["validation/accuracy"]) for row in rows]
    assert curve["train"].tolist() == [float(row["train/accuracy"]) for row in rows]
    # 40 steps are far from 0.97: no marker, as scoring finds no time to target.
    assert learning_curves.target_mark(curve) is None
    scored = score_log_dirs({"mine": experiment}, version="v0.6")
    assert math.isinf(scored.per_study["time_to_target"].iloc[1])

    # Against a target the run does reach, the marker is the first eval meeting it, at that eval's time.
    reachable = float(rows[-1]["validation/accuracy"])
    lowered = _with_target(V06, "mnist", reachable)
    mark = learning_curves.target_mark(learning_curves.trial_curve(measurements, "mnist", lowered))
    first = next(row for row in rows if float(row["validation/accuracy"]) >= reachable)
    assert (mark["time"], mark["global_step"]) == (float(first["score"]), float(first["global_step"]))

    # Every trial of the workload, stacked with its study and trial numbers.
    stacked = learning_curves.log_tree_curves(experiment, "mnist", V06)
    assert sorted(set(zip(stacked["study"], stacked["trial"]))) == [(0, 1), (1, 1)]
    assert set(stacked["submission"]) == {"nadamw-max-steps-40"} and not stacked["interrupted"].any()


def test_with_a_reference_the_workload_is_drawn_beside_it(pytester, mnist_data_dir, tmp_path):
    reference = tmp_path / "reference"
    trial = reference / "study_0" / "mnist_pytorch" / "trial_1"
    trial.mkdir(parents=True)
    (trial / "eval_measurements.csv").write_text(REFERENCE_LOG)
    results = tmp_path / "results"
    # v0.5 checks the budget at every step, so a tiny budget ends the trial within a second or two.
    result = _run(pytester, *_mnist_args(mnist_data_dir, results, f"--algoperf-compare={reference}", "--algoperf-studies=1",
                                             "--algoperf-trials=1", "--algoperf-benchmark-version=v0.5", "--algoperf-budget-scale=0.02"))
    result.assert_outcomes(failed=1)  # the target is out of reach in a 1.2 s budget
    plots = results / "nadamw" / "learning_curves"
    assert _png_size(plots / "mnist.png") == (1000, 550)
    assert _png_size(plots / "mnist_compare.png") == (1100, 480)  # two panels: this run, the reference
    assert _png_size(results / "nadamw" / "study_0" / "mnist_pytorch" / "trial_1" / "learning_curve.png") == (850, 450)

    curves = learning_curves.log_tree_curves(reference, "mnist", V06, name="reference")
    mark = learning_curves.target_mark(curves)
    assert (mark["time"], mark["global_step"]) == (1.5, 900.0)  # 0.97 meets "> 0.97"'s target by the scorer's rule
    assert set(curves["submission"]) == {"reference"}


def test_a_metric_to_minimise_is_reached_from_above(tmp_path):
    trial = tmp_path / "sub" / "study_0" / "librispeech_conformer_pytorch" / "trial_1"
    trial.mkdir(parents=True)
    target = V06.target("librispeech_conformer").validation_target  # word error rate: lower is better
    (trial / "eval_measurements.csv").write_text(
        "global_step,score,train/wer,validation/wer\n"
        f"1,10,0.99,0.99\n2,20,0.5,{target + 0.01}\n3,30,0.2,{target - 0.01}\n4,40,0.1,{target - 0.02}\n"
    )
    curve = learning_curves.trial_curve(trial / "eval_measurements.csv", "librispeech_conformer", V06)
    assert curve["reached"].tolist() == [False, False, True, True]
    assert learning_curves.target_mark(curve)["time"] == 30
    path = learning_curves.draw_trial(curve, V06.target("librispeech_conformer"), tmp_path / "curve.png", "librispeech_conformer")
    assert _png_size(path) == (850, 450)


def test_a_log_without_the_train_metric_still_draws(tmp_path):
    measurements = tmp_path / "eval_measurements.csv"
    measurements.write_text("global_step,score,validation/accuracy\n1,0.5,0.1\n10,2.0,0.98\n")
    curve = learning_curves.trial_curve(measurements, "mnist", V06)
    assert curve["train"].isna().all() and learning_curves.target_mark(curve)["global_step"] == 10
    assert _png_size(learning_curves.draw_trial(curve, V06.target("mnist"), tmp_path / "curve.png")) == (850, 450)


def test_a_plotting_error_is_a_warning_and_the_trial_still_passes(pytester, mnist_data_dir, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no canvas")

    monkeypatch.setattr(learning_curves, "draw_trial", broken)
    results = tmp_path / "results"
    result = _run(pytester, *_mnist_args(mnist_data_dir, results, "--algoperf-studies=1", "--algoperf-trials=1", "--algoperf-max-steps=2"))
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*LearningCurveWarning: the learning curve of mnist-study0-trial1 was not drawn: RuntimeError: no canvas"])
    experiment = results / "nadamw-max-steps-2"
    assert not (experiment / "study_0" / "mnist_pytorch" / "trial_1" / "learning_curve.png").exists()
    assert (experiment / "learning_curves" / "mnist.png").is_file()  # the session's plots are drawn apart
    assert json.loads((experiment / "summary.json").read_text())["items"][0]["status"] == "unscored"
