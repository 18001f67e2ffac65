"""The result object the plugin uses at session end: tables, text report, files."""

import math

import pandas as pd
import pytest

from scoring import ScoringResult, score_log_dirs

BASE = ("criteo1tb", "fastmri", "imagenet_resnet", "imagenet_vit", "librispeech_conformer",
        "librispeech_deepspeech", "ogbg", "wmt")


@pytest.fixture
def plugin_run_and_baseline(log_tree):
    """A plugin run (one study, two workloads) and a baseline's reference tree."""
    log_tree.times_trial("my_run", 0, "ogbg", 1, reach_at=1, seconds_per_eval=50)
    log_tree.times_trial("my_run", 0, "ogbg", 2, reach_at=None)
    log_tree.times_trial("my_run", 0, "mnist", 1, reach_at=2)
    for study in range(3):
        for workload in BASE:
            log_tree.times_trial("reference/baseline", study, workload, 1, reach_at=1)
    return log_tree.root


def test_scoring_a_run_among_reference_results(plugin_run_and_baseline):
    root = plugin_run_and_baseline
    result = score_log_dirs({"my_submission": root / "my_run", "baseline": root / "reference"},
                            version="v0.6")
    assert isinstance(result, ScoringResult)
    assert list(result.submissions) == ["my_submission", "baseline"]  # one-submission dir: kept
    assert set(result.per_study.columns) >= {"submission", "workload", "study",
                                             "time_to_target", "trial"}
    assert result.time_to_target.loc["my_submission", "ogbg"] == 100.0
    assert math.isnan(result.time_to_target.loc["my_submission", "wmt"])
    assert result.time_to_target.loc["my_submission", "mnist"] == 300.0
    # Scored among the baseline: fastest on ogbg (1 of 8 base workloads), nothing else.
    assert result.scores["my_submission"] == pytest.approx(1 / 8)
    assert result.scores["baseline"] == pytest.approx(7 / 8 + (1 / 8) * (4 - 2) / 3, abs=0.01)
    text = result.format_text()
    for words in ("benchmark v0.6", "my_submission: time to target", "Leaderboard",
                  "study_0", "median", "mnist"):
        assert words in text, words
    assert "Warnings" not in text


def test_a_directory_of_several_submissions_is_named_after_its_key(plugin_run_and_baseline):
    root = plugin_run_and_baseline
    result = score_log_dirs({"all": root / "reference", "mine": root / "my_run"},
                            version="v0.6")
    assert list(result.submissions) == ["all", "mine"]  # "reference" holds one submission
    (root / "reference" / "other" / "study_0").mkdir(parents=True)
    result = score_log_dirs({"all": root / "reference"}, version="v0.6")
    assert list(result.submissions) == ["all/baseline", "all/other"]


def test_summary_has_one_row_per_trial(plugin_run_and_baseline):
    root = plugin_run_and_baseline
    result = score_log_dirs({"mine": root / "my_run"}, version="v0.6")
    summary = result.summary("mine")
    assert len(summary) == 3
    ogbg = summary[summary["workload"] == "ogbg"].set_index("trial")
    assert ogbg.loc["trial_1", "val target reached"]
    assert ogbg.loc["trial_1", "time to target on val (s)"] == 100.0
    assert not ogbg.loc["trial_2", "val target reached"]
    assert math.isinf(ogbg.loc["trial_2", "time to target on val (s)"])
    assert ogbg.loc["trial_1", "val target metric name"] == "validation/mean_average_precision"
    assert ogbg.loc["trial_1", "best metric value on val"] == pytest.approx(0.28098)
    assert ogbg.loc["trial_1", "step_hint"] == 52000
    # The median over every eval interval of both ogbg trials: trial_1 gives 50, 1, 1 seconds
    # per step (its first eval comes after 1 step), trial_2 gives 100, 2, 2, 2.
    assert ogbg["step_time (s)"].tolist() == [2.0, 2.0]


def test_write_produces_the_tables_and_the_plot(plugin_run_and_baseline, tmp_path):
    result = score_log_dirs({"mine": plugin_run_and_baseline / "my_run"}, version="v0.6")
    written = {path.name for path in result.write(tmp_path / "out")}
    assert written == {"time_to_targets.csv", "time_to_targets_per_study.csv",
                       "mine_summary.csv", "leaderboard.csv", "performance_profiles.csv",
                       "performance_profiles.png", "performance_profiles.pdf"}
    per_study = pd.read_csv(tmp_path / "out" / "time_to_targets_per_study.csv")
    assert per_study["workload"].tolist() == ["mnist", "ogbg"]


def test_without_base_workloads_there_is_no_score_and_no_plot(log_tree, tmp_path):
    log_tree.times_trial("dev", 0, "mnist", 1, reach_at=0)
    result = score_log_dirs({"dev": log_tree.root / "dev"}, version="v0.6")
    assert result.scores.empty and result.leaderboard().empty
    written = {path.name for path in result.write(tmp_path / "out")}
    assert written == {"time_to_targets.csv", "time_to_targets_per_study.csv",
                       "dev_summary.csv"}
