"""Performance profiles, the 4x rule, the held-out rule and the score (spec §6.3-§6.5)."""

import math

import numpy as np
import pandas as pd
import pytest

from scoring import geometric_mean_speedups, load_version
from scoring.profiles import TAUS, score_submissions, times_entering_score

INF, NAN = math.inf, math.nan
V05, V06 = load_version("v0.5"), load_version("v0.6")
BASE = list(V06.base_workloads)


def times(rows: dict[str, dict[str, float]]) -> pd.DataFrame:
    return pd.DataFrame.from_dict(rows, orient="index", dtype=float)


def all_base(value: float, **overrides: float) -> dict[str, float]:
    return {**{w: value for w in BASE}, **overrides}


def test_tau_grid_is_100_points_from_1_to_4():
    assert TAUS[0] == 1.0 and TAUS[-1] == 4.0 and len(TAUS) == 100


def test_fastest_everywhere_scores_one_and_nothing_scores_zero():
    _, _, scores = score_submissions(times({"a": all_base(10.0), "b": all_base(INF)}), V06)
    assert scores["a"] == pytest.approx(1.0)
    assert scores["b"] == 0.0


def test_divisor_is_the_number_of_base_workloads_even_when_some_are_missing():
    # "a" ran only 4 of the 8 base workloads, fastest on each: rho = 4/8 for every tau.
    table = times({"a": {w: 1.0 for w in BASE[:4]}})
    _, profiles, scores = score_submissions(table, V06)
    assert np.all(profiles.loc["a"].to_numpy() == 0.5)
    assert scores["a"] == pytest.approx(0.5)


def test_score_is_the_trapezoid_area_normalised_by_three():
    # 2.5x the fastest everywhere: rho jumps to 1 between the 50th and 51st tau point, the
    # trapezoid counts half of that interval: (49.5 intervals of 3/99) / 3 = 0.5.
    _, profiles, scores = score_submissions(times({"fast": all_base(2.0),
                                                   "slow": all_base(5.0)}), V06)
    assert profiles.loc["slow"].to_numpy().tolist() == [0.0] * 50 + [1.0] * 50
    assert scores["slow"] == pytest.approx(0.5)


def test_times_above_four_times_the_fastest_earn_nothing():
    table = times({"fast": all_base(100.0), "four": all_base(400.0),
                   "over": all_base(400.0 + 1e-9)})
    credited, profiles, scores = score_submissions(table, V06)
    assert np.all(credited.loc["four"] == 400.0)
    assert np.all(np.isinf(credited.loc["over"]))
    # At exactly 4x a workload counts at tau = 4 only: half of the last interval.
    assert profiles.loc["four"].iloc[-1] == 1.0 and profiles.loc["four"].iloc[-2] == 0.0
    assert scores["four"] == pytest.approx(0.5 * (3 / 99) / 3)
    assert scores["over"] == 0.0


def test_nan_is_skipped_when_finding_the_fastest():
    table = times({"a": all_base(100.0), "b": all_base(NAN, ogbg=300.0)})
    credited, _, scores = score_submissions(table, V06)
    assert credited.loc["b", "ogbg"] == 300.0
    assert math.isnan(credited.loc["b", "wmt"])
    assert scores["b"] > 0


def test_ratios_of_a_column_nobody_finished_stay_infinite():
    table = times({"a": all_base(100.0, wmt=INF), "b": all_base(200.0, wmt=INF)})
    _, profiles, _ = score_submissions(table, V06)
    assert profiles.loc["a"].max() == pytest.approx(7 / 8)


def held_out_case(**rows):
    """v0.5 times: every base workload 100 unless overridden; held-out columns as given."""
    return times({name: {**all_base(100.0), **row} for name, row in rows.items()})


def test_failed_held_out_variant_costs_the_base_workload():
    table = held_out_case(ok={"criteo1tb_embed_init": 50.0},
                          failed={"criteo1tb_embed_init": INF},
                          not_run={})  # NaN held-out: also a failure
    credited = times_entering_score(table, V05)
    assert credited.loc["ok", "criteo1tb"] == 100.0
    assert math.isinf(credited.loc["failed", "criteo1tb"])
    assert math.isinf(credited.loc["not_run", "criteo1tb"])
    # Base workloads without a held-out variant (imagenet_vit in v0.5) are untouched.
    assert credited.loc["failed", "imagenet_vit"] == 100.0
    assert list(credited.columns) == list(V05.base_workloads)


def test_held_out_slower_than_four_times_the_fastest_costs_the_base_workload():
    table = held_out_case(fast={"criteo1tb_embed_init": 50.0},
                          slow={"criteo1tb_embed_init": 250.0})
    credited = times_entering_score(table, V05)
    assert math.isinf(credited.loc["slow", "criteo1tb"])


def test_held_out_fastest_counts_only_submissions_that_finished_the_base_workload():
    # "cheat" never finishes criteo1tb: its held-out time (10) is voided first, so "ok" (50) is
    # compared with 50, not with 10, and keeps its criteo1tb time.
    table = held_out_case(ok={"criteo1tb_embed_init": 50.0},
                          cheat={"criteo1tb": INF, "criteo1tb_embed_init": 10.0})
    credited = times_entering_score(table, V05)
    assert credited.loc["ok", "criteo1tb"] == 100.0
    assert math.isinf(credited.loc["cheat", "criteo1tb"])


def test_v06_has_no_held_out_rule():
    table = times({"a": all_base(100.0, criteo1tb_embed_init=INF)})
    assert times_entering_score(table, V06).loc["a", "criteo1tb"] == 100.0


def test_speedups_are_geometric_means_with_never_finished_counting_as_budget_plus_one():
    table = times({"base": all_base(100.0, wmt=INF), "fast": all_base(50.0)})
    speedups = geometric_mean_speedups(table, "base", V05)
    wmt_ratio = 50.0 / (48151 + 1)  # v0.5 wmt budget
    assert speedups["base"] == pytest.approx(1.0)
    assert speedups["fast"] == pytest.approx((0.5 ** 7 * wmt_ratio) ** (1 / 8))
    self_tuning = geometric_mean_speedups(table, "base", V05, self_tuning=True)
    assert self_tuning["fast"] == pytest.approx((0.5 ** 7 * 50.0 / (3 * 48151 + 1)) ** (1 / 8))


def test_speedup_base_must_be_scored():
    with pytest.raises(KeyError, match="not among the scored submissions"):
        geometric_mean_speedups(times({"a": all_base(1.0)}), "missing", V06)
