"""Per-workload speedups with bootstrap intervals, verdicts and permutation p-values, and the
geometric mean's interval."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scoring import load_version, score_log_dirs
from scoring.cli import main
from scoring.permutation import permutation_test
from scoring.speedups import FASTER, NOT_SIGNIFICANT, SLOWER, verdict

V06 = load_version("v0.6")
# Study times (s) of one trial each; studies are the units everything is resampled by.
FAST_5 = [100.0, 104.0, 98.0, 110.0, 101.0]
SLOW_5 = [300.0, 310.0, 295.0, 320.0, 305.0]


def write_studies(log_tree, submission: str, workload: str, study_times) -> None:
    for study, time in enumerate(study_times):
        if time is None:
            log_tree.times_trial(submission, study, workload, 1, reach_at=None)
        else:
            log_tree.times_trial(submission, study, workload, 1, reach_at=0, seconds_per_eval=time)


def score(log_tree, *names, samples=1000, intervals=True, base="base"):
    # v0.6 asks for 3 studies per workload; more are scored all the same outside strict mode.
    return score_log_dirs({name: log_tree.root / name for name in names}, version="v0.6",
                          self_tuning=True, speedup_base=base, intervals=intervals,
                          bootstrap_samples=samples)


def row(result, submission: str, workload: str) -> pd.Series:
    table = result.workload_speedups
    return table[(table["submission"] == submission) & (table["workload"] == workload)].iloc[0]


# --- the permutation test on its own ---------------------------------------------------------


def test_permutation_test_worked_example_three_against_three():
    """{1,2,3} against {4,5,6}: of the C(6,3) = 20 splits only the observed one and its mirror
    are as extreme in mean difference, so p = 2/20 = 0.1, also the smallest p 3 vs 3 can give."""
    def mean_difference(x, y):
        return x.mean(axis=1) - y.mean(axis=1)

    test = permutation_test(np.array([1.0, 2, 3]), np.array([4.0, 5, 6]), mean_difference)
    assert (test.p_value, test.smallest_p, test.splits, test.exact) == (0.1, 0.1, 20, True)
    same = permutation_test(np.array([1.0, 4, 5]), np.array([2.0, 3, 6]), mean_difference)
    assert same.p_value == 1.0  # equal means: every split is at least as extreme
    five = permutation_test(np.arange(5.0), np.arange(5.0) + 10, mean_difference)
    assert five.p_value == five.smallest_p == 2 / 252 < 0.01


def test_a_median_statistic_could_not_reach_one_percent_with_five_studies():
    """Why the speedup's test compares mean log times: the median of 5 studies, all faster than
    the other 5, is matched by 11 other splits of the 252 -- p = 12/252 = 0.048."""
    def median_difference(x, y):
        return np.median(x, axis=1) - np.median(y, axis=1)

    test = permutation_test(np.array(FAST_5), np.array(SLOW_5), median_difference)
    assert test.p_value == test.smallest_p == 12 / 252


def test_permutation_test_needs_a_study_on_each_side():
    with pytest.raises(ValueError, match="at least one study on each side"):
        permutation_test(np.array([]), np.array([1.0]), lambda x, y: x.sum(axis=1))


@pytest.mark.parametrize("low, high, expected", [
    (0.5, 0.9, FASTER), (1.1, 2.0, SLOWER), (0.9, 1.1, NOT_SIGNIFICANT),
    (1.0, 1.0, NOT_SIGNIFICANT),
    (math.nan, math.nan, "missing"),
])
def test_verdict_is_whether_the_interval_excludes_one(low, high, expected):
    assert verdict(low, high) == expected


# --- speedups from logs ----------------------------------------------------------------------


def test_a_clearly_faster_submission_is_faster_with_p_below_one_percent(log_tree):
    write_studies(log_tree, "base", "wmt", SLOW_5)
    write_studies(log_tree, "new", "wmt", FAST_5)
    result = score(log_tree, "base", "new")
    wmt = row(result, "new", "wmt")
    assert wmt["speedup"] == np.median(FAST_5) / np.median(SLOW_5)  # the point value, 101 / 305
    assert wmt["low"] <= wmt["speedup"] <= wmt["high"] < 1
    assert wmt["verdict"] == FASTER
    assert wmt["p_value"] == wmt["smallest_p"] == 2 / 252
    text = result.format_text()
    assert "Speedup per workload vs base" in text and "faster" in text
    assert "out of reach" not in text  # 5 studies each can reach p < 0.01


def test_noise_is_not_significant(log_tree):
    # Both from the same spread of times, interleaved: no difference to find.
    write_studies(log_tree, "base", "wmt", [100.0, 130.0, 160.0, 190.0, 220.0])
    write_studies(log_tree, "new", "wmt", [115.0, 145.0, 175.0, 205.0, 235.0])
    result = score(log_tree, "base", "new")
    wmt = row(result, "new", "wmt")
    assert wmt["low"] < 1 < wmt["high"]
    assert wmt["verdict"] == NOT_SIGNIFICANT
    assert wmt["p_value"] > 0.5


def test_three_studies_cannot_reach_p_below_one_percent_and_the_report_says_so(log_tree):
    write_studies(log_tree, "base", "wmt", SLOW_5[:3])
    write_studies(log_tree, "new", "wmt", FAST_5[:3])
    result = score(log_tree, "base", "new")
    wmt = row(result, "new", "wmt")
    assert wmt["verdict"] == FASTER  # every resample is faster...
    assert wmt["p_value"] == wmt["smallest_p"] == 0.1  # ...but 20 splits cannot say more than 0.1
    assert "no p-value can fall below 0.1, so p < 0.01 is out of reach" in result.format_text()


def test_never_reached_counts_as_budget_plus_one_in_the_ratio_and_its_interval(log_tree):
    write_studies(log_tree, "base", "wmt", [1000.0, 1100.0, 1200.0])
    write_studies(log_tree, "new", "wmt", [None, None, None])
    result = score(log_tree, "base", "new")
    budget = result.version.budget_sec("wmt", self_tuning=True) + 1
    wmt = row(result, "new", "wmt")
    assert wmt["time"] == math.inf
    assert wmt["speedup"] == budget / 1100.0
    assert (wmt["low"], wmt["high"]) == (budget / 1200.0, budget / 1000.0)
    assert wmt["verdict"] == SLOWER


def test_one_study_on_a_side_gets_no_verdict(log_tree):
    write_studies(log_tree, "base", "wmt", [300.0])
    write_studies(log_tree, "new", "wmt", [100.0, 110.0, 120.0])
    wmt = row(score(log_tree, "base", "new", samples=200), "new", "wmt")
    assert (wmt["low"], wmt["high"]) == (100.0 / 300.0, 120.0 / 300.0)  # all below 1...
    assert wmt["verdict"] == "too few studies"  # ...but one study says nothing of its spread
    assert wmt["p_value"] == wmt["smallest_p"] == 0.25  # 1 + 3 studies: 4 splits


def test_a_workload_the_other_lacks_is_missing(log_tree):
    write_studies(log_tree, "base", "wmt", [100.0, 110.0, 120.0])
    write_studies(log_tree, "base", "ogbg", [100.0, 110.0, 120.0])
    write_studies(log_tree, "new", "wmt", [100.0, 110.0, 120.0])
    result = score(log_tree, "base", "new", samples=200)
    ogbg = row(result, "new", "ogbg")
    assert math.isnan(ogbg["speedup"]) and ogbg["verdict"] == "missing"


def test_geometric_mean_keeps_its_point_value_and_gains_an_interval(log_tree):
    for workload in V06.base_workloads:  # the geometric mean needs every base workload
        write_studies(log_tree, "base", workload, SLOW_5[:3])
        write_studies(log_tree, "new", workload, FAST_5[:3])
    plain = score(log_tree, "base", "new", intervals=False)
    with_intervals = score(log_tree, "base", "new", samples=500)
    pd.testing.assert_series_equal(plain.speedups, with_intervals.speedups)
    assert "verdict" not in plain.workload_speedups  # statistics only with intervals
    overall = with_intervals.intervals.speedups.set_index("submission")
    assert math.isnan(overall.at["base", "low"])  # no interval of the base against itself
    assert overall.at["new", "low"] <= with_intervals.speedups["new"] <= overall.at["new", "high"]
    assert overall.at["new", "high"] < 1


def test_cli_speedup_table_with_and_without_intervals(log_tree, tmp_path, capsys):
    write_studies(log_tree, "base", "wmt", SLOW_5[:3])
    write_studies(log_tree, "new", "wmt", FAST_5[:3])
    assert main([str(log_tree.root), "--self-tuning", "--speedup-base", "base"]) == 0
    text = capsys.readouterr().out
    assert "Speedup per workload vs base" in text and "verdict" not in text
    output = tmp_path / "out"
    assert main([str(log_tree.root), "--self-tuning", "--speedup-base", "base", "--intervals",
                 "--bootstrap-samples", "300", "--output", str(output), "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "verdict" in text and "faster" in text and "out of reach" in text
    table = pd.read_csv(output / "speedups_per_workload.csv")
    assert table.columns.tolist() == ["submission", "workload", "time", "base_time", "speedup",
                                      "low", "high", "verdict", "p_value", "smallest_p"]
    assert table["verdict"].tolist() == ["faster"]
    assert pd.read_csv(output / "speedup_intervals.csv").columns.tolist() == [
        "submission", "speedup", "low", "high"]
