"""Bootstrap intervals: a worked example enumerated by hand, the rules they share with the point
values, inf and missing workloads, determinism, and the command line."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from scoring import load_version, score_log_dirs
from scoring.bootstrap import (BootstrapSettings, TimeReplicates, median_replicates,
                               percentile_interval, score_replicates, study_trial_times)
from scoring.cli import main
from scoring.profiles import (benchmark_scores, performance_profiles, performance_ratios,
                              times_entering_score)

V05 = load_version("v0.5")


def study_logs(log_tree, submission: str, workload: str, study_times) -> None:
    """One trial per study, reaching the target at its first eval at the given time (None:
    never)."""
    for study, time in enumerate(study_times):
        if time is None:
            log_tree.times_trial(submission, study, workload, 1, reach_at=None)
        else:
            log_tree.times_trial(submission, study, workload, 1, reach_at=0, seconds_per_eval=time)


def interval_of(result, submission: str, workload: str) -> tuple[float, float]:
    times = result.intervals.time_to_target
    row = times[(times["submission"] == submission) & (times["workload"] == workload)]
    return float(row["low"].iloc[0]), float(row["high"].iloc[0])


# --- the worked example ----------------------------------------------------------------------


def test_worked_example_three_studies_all_27_resamples_by_hand(log_tree):
    """Studies at 100, 200 and 400 s. Resampling 3 of 3 with replacement gives 27 equally likely
    resamples; their medians are 100 in 7 (two or three draws of 100: 1 + 3*2), 400 in 7 and 200
    in the other 13. The 2.5th percentile is the smallest median whose cumulative share reaches
    2.5% -- 100 (7/27 = 26%) -- and the 97.5th the smallest reaching 97.5% -- 400."""
    times = [100.0, 200.0, 400.0]
    medians = [float(np.median(draw)) for draw in itertools.product(times, repeat=3)]
    assert Counter(medians) == {100.0: 7, 200.0: 13, 400.0: 7}
    low, high = percentile_interval(np.array(medians))
    assert (low, high) == (100.0, 400.0)

    study_logs(log_tree, "mine", "wmt", times)
    result = score_log_dirs({"mine": log_tree.root / "mine"}, self_tuning=True, intervals=True)
    assert result.time_to_target.loc["mine", "wmt"] == 200.0  # the point value: the median
    assert interval_of(result, "mine", "wmt") == (100.0, 400.0)
    replicated = Counter(result.intervals.replicates.of("mine")[:, 0].tolist())
    assert set(replicated) == {100.0, 200.0, 400.0}
    assert replicated[200.0] / result.intervals.settings.samples == pytest.approx(13 / 27, abs=0.04)


def test_with_five_studies_the_interval_still_spans_the_studies():
    """The median of 5 resampled studies is the fastest study in 181 of the 3125 resamples (5.8%),
    so the percentile interval of 5 studies is their range too (the module docstring's caveat)."""
    times = [100.0, 150.0, 200.0, 260.0, 400.0]
    medians = np.array([np.median(draw) for draw in itertools.product(times, repeat=5)])
    assert int(np.sum(medians == 100.0)) == 181
    assert percentile_interval(medians) == (100.0, 400.0)
    replicates = median_replicates([np.array([t]) for t in times], 2000, np.random.default_rng(0))
    assert percentile_interval(replicates) == (100.0, 400.0)


def test_trials_within_a_study_are_resampled_and_picked_by_the_published_rule():
    """One study of 5 trials, in pick order. Drawing 5 of them with replacement, the study takes
    the best-ranked draw: rank k with probability ((5-k)/5)^5 - ((4-k)/5)^5, enumerated here over
    all 3125 draws."""
    trials = np.array([100.0, 150.0, 250.0, 300.0, np.inf])  # the last never reaches the target
    exact = Counter(min(draw) for draw in itertools.product(range(5), repeat=5))
    replicates = median_replicates([trials], 20000, np.random.default_rng(0))
    for rank in range(5):
        share = np.mean(replicates == trials[rank])
        assert share == pytest.approx(exact[rank] / 3125, abs=0.01), rank
    # P(rank >= 2) = 7.8% but P(rank >= 3) = 1.0%: the 97.5th percentile is the third trial.
    assert percentile_interval(replicates) == (100.0, 250.0)


def test_pick_order_is_fewest_evals_first_as_the_point_value(log_tree):
    # Trial 1 reaches at its 2nd eval (600 s), trial 2 at its 3rd (300 s): the published rule
    # takes trial 1, and so must the bootstrap's pick order.
    log_tree.times_trial("mine", 0, "wmt", 1, reach_at=1, seconds_per_eval=300.0)
    log_tree.times_trial("mine", 0, "wmt", 2, reach_at=2, seconds_per_eval=100.0)
    result = score_log_dirs({"mine": log_tree.root / "mine"})
    (study,) = study_trial_times(result.trials, self_tuning=False)["mine", "wmt"]
    assert study.tolist() == [600.0, 300.0]
    assert result.per_study["time_to_target"].tolist() == [600.0]


def test_pick_order_agrees_with_every_published_study_time(v06_logs):
    result = score_log_dirs({"v06": v06_logs / "external_tuning"}, version="v0.6")
    picked = study_trial_times(result.trials, self_tuning=False)
    for row in result.per_study.itertuples(index=False):
        studies = picked[str(row.submission), str(row.workload)]
        assert row.time_to_target in [times[0] for times in studies]
    first = {key: [times[0] for times in studies] for key, studies in picked.items()}
    for (submission, workload), group in result.per_study.groupby(["submission", "workload"],
                                                                  observed=True):
        assert first[str(submission), str(workload)] == group["time_to_target"].tolist()


# --- the point values stay the published ones -----------------------------------------------


def test_intervals_leave_the_published_point_values_unchanged(v06_logs):
    plain = score_log_dirs({"v06": v06_logs / "external_tuning"}, version="v0.6")
    with_intervals = score_log_dirs({"v06": v06_logs / "external_tuning"}, version="v0.6",
                                    intervals=True, bootstrap_samples=300)
    assert plain.intervals is None
    pd.testing.assert_series_equal(plain.scores, with_intervals.scores)
    pd.testing.assert_frame_equal(plain.time_to_target, with_intervals.time_to_target)
    assert round(with_intervals.scores["v06/shampoo"], 4) == 0.6244
    assert round(with_intervals.scores["v06/baseline"], 4) == 0.4590
    scores = with_intervals.intervals.scores.set_index("submission")
    for name, score in with_intervals.scores.items():
        assert scores.at[name, "score"] == score
        assert scores.at[name, "low"] <= score <= scores.at[name, "high"]


def test_scores_of_side_by_side_replicates_equal_scoring_each_alone():
    """The vectorised score replicates (all replicates in one call of profiles.py's rules) against
    one call per replicate, on v0.5 with its held-out workloads, inf and missing times."""
    rng = np.random.default_rng(1)
    workloads = list(V05.scored_workloads)
    values = rng.choice([100, 150, 200, 300, 500, 900, np.inf, np.nan],
                        p=[.2, .2, .15, .15, .1, .1, .08, .02], size=(40, 4, len(workloads)))
    replicates = TimeReplicates(["a", "b", "c", "d"], workloads, values)
    one_by_one = np.array([
        benchmark_scores(performance_profiles(performance_ratios(
            times_entering_score(replicates.table(b), V05)), V05.num_base_workloads)).to_numpy()
        for b in range(40)])
    np.testing.assert_array_equal(score_replicates(replicates, V05), one_by_one)


# --- inf and missing -------------------------------------------------------------------------


def test_a_study_that_never_reached_makes_the_upper_end_inf(log_tree):
    study_logs(log_tree, "mine", "wmt", [100.0, 200.0, None])
    study_logs(log_tree, "mine", "ogbg", [None, None, None])
    result = score_log_dirs({"mine": log_tree.root / "mine"}, self_tuning=True, intervals=True)
    # 7 of the 27 resamples draw the failed study at least twice: the median is then inf.
    assert interval_of(result, "mine", "wmt") == (100.0, np.inf)
    assert interval_of(result, "mine", "ogbg") == (np.inf, np.inf)
    assert "[100, inf]" in result.format_text()


def test_a_workload_without_logs_has_no_interval(log_tree):
    study_logs(log_tree, "a", "wmt", [100.0, 200.0, 300.0])
    study_logs(log_tree, "a", "ogbg", [100.0, 200.0, 300.0])
    study_logs(log_tree, "b", "wmt", [150.0, 250.0, 350.0])
    result = score_log_dirs({"a": log_tree.root / "a", "b": log_tree.root / "b"},
                            self_tuning=True, intervals=True, bootstrap_samples=200)
    times = result.intervals.time_to_target
    assert not ((times["submission"] == "b") & (times["workload"] == "ogbg")).any()
    assert np.isnan(result.intervals.replicates.of("b")[:, 0]).all()  # columns sorted: ogbg, wmt
    low, high = percentile_interval(result.intervals.replicates.of("b"))
    assert np.isnan(low[0]) and np.isnan(high[0]) and (low[1], high[1]) == (150.0, 350.0)


# --- determinism and independence ------------------------------------------------------------


def test_the_same_seed_gives_the_same_intervals_and_another_seed_other_replicates(log_tree):
    for submission, shift in (("a", 0.0), ("b", 40.0)):
        for workload in ("wmt", "ogbg"):
            for study in range(3):
                for trial in range(1, 4):
                    log_tree.times_trial(submission, study, workload, trial,
                                         reach_at=(study + trial) % 3,
                                         seconds_per_eval=100.0 + shift + 10 * trial)
    dirs = {"a": log_tree.root / "a", "b": log_tree.root / "b"}
    first = score_log_dirs(dirs, intervals=True, bootstrap_samples=300, bootstrap_seed=5)
    again = score_log_dirs(dirs, intervals=True, bootstrap_samples=300, bootstrap_seed=5)
    other = score_log_dirs(dirs, intervals=True, bootstrap_samples=300, bootstrap_seed=6)
    pd.testing.assert_frame_equal(first.intervals.time_to_target, again.intervals.time_to_target)
    pd.testing.assert_frame_equal(first.intervals.scores, again.intervals.scores)
    assert not np.array_equal(first.intervals.replicates.values, other.intervals.replicates.values)
    # Each submission has its own random stream: "a" scored alone keeps its replicates.
    alone = score_log_dirs({"a": dirs["a"]}, intervals=True, bootstrap_samples=300,
                           bootstrap_seed=5)
    np.testing.assert_array_equal(alone.intervals.replicates.of("a"),
                                  first.intervals.replicates.of("a"))


@pytest.mark.parametrize("settings, message", [
    (dict(samples=0), "positive whole number"),
    (dict(samples=2.5), "positive whole number"),
    (dict(seed=-1), "whole number >= 0"),
    (dict(confidence=1.0), "strictly between 0 and 1"),
])
def test_bad_bootstrap_settings_say_what_to_give(settings, message):
    with pytest.raises(ValueError, match=message):
        BootstrapSettings(**settings)


# --- the command line ------------------------------------------------------------------------


def test_cli_prints_and_writes_intervals_only_when_asked(log_tree, tmp_path, capsys):
    study_logs(log_tree, "a", "wmt", [100.0, 200.0, 400.0])
    study_logs(log_tree, "b", "wmt", [300.0, 300.0, 300.0])
    assert main([str(log_tree.root), "--self-tuning"]) == 0
    assert "interval" not in capsys.readouterr().out

    output = tmp_path / "out"
    assert main([str(log_tree.root), "--self-tuning", "--intervals", "--bootstrap-samples", "400",
                 "--bootstrap-seed", "1", "--output", str(output), "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "95% interval" in text and "[100, 400]" in text
    assert "400 replicates, seed 1" in text
    times = pd.read_csv(output / "time_to_target_intervals.csv")
    assert times.columns.tolist() == ["submission", "workload", "time_to_target", "low", "high"]
    assert times.set_index("submission").loc["a", ["low", "high"]].tolist() == [100.0, 400.0]
    scores = pd.read_csv(output / "score_intervals.csv")
    assert scores.columns.tolist() == ["submission", "score", "low", "high", "confidence",
                                       "samples", "seed"]
    assert scores["samples"].tolist() == [400, 400] and scores["seed"].tolist() == [1, 1]


@pytest.mark.parametrize("arguments, message", [
    (["--bootstrap-samples", "100"], "--bootstrap-samples applies to --intervals"),
    (["--intervals", "--bootstrap-samples", "0"], "give at least 1"),
    (["--intervals", "--bootstrap-seed", "x"], "is not a whole number >= 0"),
])
def test_cli_refuses_bootstrap_options_that_cannot_apply(log_tree, capsys, arguments, message):
    study_logs(log_tree, "a", "wmt", [100.0, 200.0, 400.0])
    with pytest.raises(SystemExit) as exit_info:
        main([str(log_tree.root / "a"), *arguments])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
