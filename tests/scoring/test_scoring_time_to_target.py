"""Time to target per trial, per study and per workload, on hand-built log trees (spec §6.2)."""

import math

import numpy as np
import pytest

from scoring import score_log_dirs

INF = math.inf


def score(log_tree, **kwargs):
    return score_log_dirs({"sub": log_tree.root / "sub"}, version="v0.6", **kwargs)


def study_time(result, workload="ogbg", study="study_0"):
    rows = result.per_study[(result.per_study["workload"] == workload)
                            & (result.per_study["study"] == study)]
    return rows.iloc[0]


def test_time_is_the_score_at_the_first_eval_meeting_the_target(log_tree):
    log_tree.trial("sub", 0, "ogbg", 1, metric=[0.1, 0.2, 0.29, 0.30, 0.25],
                   times=[10.0, 20.0, 30.0, 40.0, 50.0])
    row = study_time(score(log_tree))
    assert row["time_to_target"] == 30.0
    assert (row["trial"], row["eval"], row["global_step"]) == ("trial_1", 2, 101)


def test_the_comparison_is_not_strict_and_follows_the_metric_direction(log_tree):
    ogbg = 0.28098  # mean_average_precision, maximised
    wer = 0.119936  # librispeech_deepspeech, minimised
    log_tree.trial("sub", 0, "ogbg", 1, metric=[ogbg - 1e-9, ogbg], times=[1.0, 2.0])
    log_tree.trial("sub", 0, "librispeech_deepspeech", 1, metric=[wer + 1e-9, wer, 0.0],
                   times=[1.0, 2.0, 3.0])
    result = score(log_tree)
    assert study_time(result, "ogbg")["time_to_target"] == 2.0
    assert study_time(result, "librispeech_deepspeech")["time_to_target"] == 2.0


def test_nan_never_reaches_and_a_study_nobody_finishes_takes_infinity(log_tree):
    log_tree.trial("sub", 0, "ogbg", 1, metric=[float("nan"), 0.1], times=[1.0, 2.0])
    row = study_time(score(log_tree))
    assert math.isinf(row["time_to_target"])
    assert row["trial"] is None


def test_the_trial_reaching_the_target_in_fewest_evals_wins_not_the_fastest(log_tree):
    # trial_1 reaches at eval 3 after 300 s; trial_2 at eval 2 but after 500 s.
    log_tree.times_trial("sub", 0, "ogbg", 1, reach_at=3, seconds_per_eval=75)
    log_tree.times_trial("sub", 0, "ogbg", 2, reach_at=2, seconds_per_eval=500 / 3)
    row = study_time(score(log_tree))
    assert row["trial"] == "trial_2"
    assert row["time_to_target"] == pytest.approx(500.0)


def test_ties_go_to_the_trial_the_published_scorer_listed_first(log_tree):
    # Same eval index everywhere; ext4 lists trial_5, trial_3, trial_4, trial_1, trial_2.
    for trial, seconds in [(1, 10.0), (2, 20.0), (4, 40.0), (5, 50.0)]:
        log_tree.times_trial("sub", 0, "ogbg", trial, reach_at=1, seconds_per_eval=seconds)
    row = study_time(score(log_tree))
    assert (row["trial"], row["time_to_target"]) == ("trial_5", 100.0)


def test_trials_of_timestamped_experiment_dirs_join_their_submission(log_tree):
    log_tree.times_trial("sub", 0, "ogbg", 1, reach_at=None)
    later = log_tree.root / "sub-2024-03-01-12-00-00"
    log_tree.times_trial("sub-2024-03-01-12-00-00", 0, "ogbg", 1, reach_at=0)
    result = score(log_tree)
    assert later.is_dir() and list(result.submissions) == ["sub"]
    row = study_time(result)
    assert (row["experiment"], row["trial"]) == ("sub-2024-03-01-12-00-00", "trial_1")
    assert len(result.trials) == 2


@pytest.mark.parametrize("study_seconds, median", [
    ([100, INF, 300], 300),
    ([100, INF], INF),  # an even count averages the middle two: inf
    ([100, 200], 150),
    ([INF, INF, 5], INF),
    ([INF, 7, 5, 6], 6.5),
])
def test_workload_time_is_the_median_over_studies_with_infinity(log_tree, study_seconds, median):
    for study, seconds in enumerate(study_seconds):
        if math.isinf(seconds):
            log_tree.times_trial("sub", study, "ogbg", 1, reach_at=None)
        else:
            log_tree.times_trial("sub", study, "ogbg", 1, reach_at=0, seconds_per_eval=seconds)
    assert score(log_tree).time_to_target.loc["sub", "ogbg"] == median
    assert median == np.median(study_seconds)


def test_framework_suffix_is_dropped_and_any_known_workload_gets_a_time(log_tree):
    log_tree.times_trial("sub", 0, "mnist", 1, reach_at=1)
    log_tree.trial("sub", 0, "wmt_glu_tanh", 1, metric=[10.0, 29.6], framework="jax")
    result = score(log_tree)
    assert list(result.time_to_target.columns) == ["mnist", "wmt_glu_tanh"]
    assert result.time_to_target.loc["sub", "wmt_glu_tanh"] == 200.0
    # Development workloads and variants are never scored.
    assert result.scores.empty
    assert "No benchmark score" in result.format_text()
