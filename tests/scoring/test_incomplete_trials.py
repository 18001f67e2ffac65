"""A trial interrupted before it finished (``trial_running.json`` still in its directory) is left
out of the score and named in the warnings; ``--strict`` makes it an error."""

import math
import shutil

import pandas as pd
import pytest

from scoring import ScoringError, read_log_tree, score_log_dirs
from scoring.cli import main as scoring_cli
from scoring.layout import TRIAL_RUNNING_FILE

INTERRUPTED = "trial interrupted before it finished (trial_running.json present)"


def mark_running(trial_dir):
    (trial_dir / TRIAL_RUNNING_FILE).write_text('{"started": "2025-01-01T00:00:00"}\n')


@pytest.fixture
def study_tree(log_tree):
    """ogbg, three studies of two trials; trial 1 reaches the target first (eval 1, 200 s),
    trial 2 later (eval 3, 400 s)."""
    for study in range(3):
        log_tree.times_trial("sub", study, "ogbg", 1, reach_at=1)
        log_tree.times_trial("sub", study, "ogbg", 2, reach_at=3)
    return log_tree.root / "sub"


def test_without_markers_every_trial_counts(study_tree):
    result = score_log_dirs({"sub": study_tree}, version="v0.6")
    assert result.interrupted_trials == []
    assert result.warnings == []
    assert len(result.trials) == 6
    assert list(result.per_study["time_to_target"]) == [200.0, 200.0, 200.0]
    assert list(result.per_study["trial"]) == ["trial_1"] * 3
    assert "[3 studies, 6 trials read]" in result.format_text()


def test_an_interrupted_best_trial_does_not_set_the_study_time(study_tree):
    interrupted = study_tree / "study_0/ogbg_pytorch/trial_1"
    mark_running(interrupted)
    result = score_log_dirs({"sub": study_tree}, version="v0.6")

    # Study 0 is scored as if trial 1 were absent: trial 2's later time stands for it.
    study_0 = result.per_study[result.per_study["study"] == "study_0"].iloc[0]
    assert (study_0["trial"], study_0["time_to_target"]) == ("trial_2", 400.0)
    assert result.time_to_target.loc["sub", "ogbg"] == 200.0  # median of 400, 200, 200
    assert str(interrupted / "eval_measurements.csv") not in set(result.trials["path"].astype(str))
    assert len(result.trials) == 5
    assert len(result.summary("sub")) == 5

    assert [trial.directory for trial in result.interrupted_trials] == [str(interrupted)]
    (trial,) = result.interrupted_trials
    assert (trial.submission, trial.workload, trial.study, trial.trial) == (
        "sub", "ogbg", "study_0", "trial_1")
    assert result.warnings == [
        f"{interrupted}: {INTERRUPTED}, left out of the score; rerun the pytest command that "
        f"started it to resume the trial"]
    text = result.format_text()
    assert "[3 studies, 5 trials read, 1 interrupted left out]" in text
    assert f"{interrupted}: {INTERRUPTED}" in text


def test_an_interrupted_trial_without_measurements_is_only_reported_as_interrupted(study_tree):
    # Preempted before its first eval: the directory holds the marker and nothing else.
    early = study_tree / "study_1/ogbg_pytorch/trial_3"
    early.mkdir()
    mark_running(early)
    result = score_log_dirs({"sub": study_tree}, version="v0.6")
    assert len(result.warnings) == 1 and result.warnings[0].startswith(f"{early}: {INTERRUPTED}")
    assert len(result.trials) == 6


def test_a_study_whose_trials_were_all_interrupted_is_absent(study_tree):
    for trial in (1, 2):
        mark_running(study_tree / f"study_2/ogbg_pytorch/trial_{trial}")
    result = score_log_dirs({"sub": study_tree}, version="v0.6")
    # Absent, not infinite: the median runs over the two studies that finished.
    assert list(result.per_study["study"]) == ["study_0", "study_1"]
    assert not math.isinf(result.time_to_target.loc["sub", "ogbg"])
    assert len(result.interrupted_trials) == 2


def test_strict_mode_raises_naming_the_interrupted_trial(study_tree):
    interrupted = study_tree / "study_0/ogbg_pytorch/trial_2"
    mark_running(interrupted)
    with pytest.raises(ScoringError) as error:
        score_log_dirs({"sub": study_tree}, version="v0.6", strict=True)
    assert f"{interrupted}: {INTERRUPTED}" in str(error.value)
    assert any(problem.startswith(str(interrupted)) for problem in error.value.problems)


def test_the_cli_warns_and_strict_exits_with_1(study_tree, capsys):
    interrupted = study_tree / "study_1/ogbg_pytorch/trial_1"
    mark_running(interrupted)
    assert scoring_cli([str(study_tree)]) == 0
    out = capsys.readouterr().out
    assert "Warnings (1):" in out and f"{interrupted}: {INTERRUPTED}" in out

    assert scoring_cli([str(study_tree), "--strict"]) == 1
    err = capsys.readouterr().err
    assert f"{interrupted}: {INTERRUPTED}" in err


def test_read_log_tree_keeps_the_rows_and_warns(study_tree):
    interrupted = study_tree / "study_0/ogbg_pytorch/trial_1"
    mark_running(interrupted)
    evals = read_log_tree(study_tree)
    assert evals["path"].astype(str).str.startswith(str(interrupted)).sum() == 3
    assert evals.attrs["warnings"] == [
        f"{interrupted}: {INTERRUPTED}; its evals stop where it was cut short"]


def test_published_logs_with_the_best_trial_interrupted(v06_logs, tmp_path):
    """shampoo's v0.6 ogbg logs: its published study times, then the same with study 0's picked
    trial marked as interrupted (the next trial to reach the target takes its place)."""
    shampoo = tmp_path / "shampoo"
    for study in range(3):
        shutil.copytree(v06_logs / f"external_tuning/shampoo/study_{study}/ogbg_pytorch",
                        shampoo / f"study_{study}/ogbg_pytorch")
    before = score_log_dirs({"shampoo": shampoo}, version="v0.6")
    assert [round(t) for t in before.per_study["time_to_target"]] == [2653, 2890, 2868]
    assert before.warnings == [] and before.interrupted_trials == []

    picked = before.per_study.iloc[0]["trial"]
    mark_running(shampoo / "study_0/ogbg_pytorch" / picked)
    after = score_log_dirs({"shampoo": shampoo}, version="v0.6")
    others = before.trials[(before.trials["study"] == "study_0")
                           & (before.trials["trial"] != picked)
                           & (before.trials["target_eval"] >= 0)]
    runner_up = others.sort_values("target_eval", kind="stable").iloc[0]
    study_0 = after.per_study.iloc[0]
    assert study_0["trial"] == runner_up["trial"] != picked
    assert study_0["time_to_target"] == runner_up["time_to_target"]
    pd.testing.assert_frame_equal(after.per_study.iloc[1:].reset_index(drop=True),
                                  before.per_study.iloc[1:].reset_index(drop=True))

    (shampoo / "study_0/ogbg_pytorch" / picked / TRIAL_RUNNING_FILE).unlink()
    again = score_log_dirs({"shampoo": shampoo}, version="v0.6")
    pd.testing.assert_frame_equal(again.per_study, before.per_study)
