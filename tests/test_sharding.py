"""Shards of a session (`--algoperf-shard=K/N`): the pure assignment, then black-box pytester runs."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from pytest_algoperf.options import Settings
from pytest_algoperf.sharding import assign_shards, budget_function
from scoring.versions import load_version

ROOT = Path(__file__).resolve().parents[1]
NADAMW = ROOT / "submissions" / "nadamw"


def _random_budgets(seed: int, count: int) -> list:
    rng = random.Random(seed)
    return [(f"item{index:03d}", rng.choice([60.0, 4430.0, 7703.0, 12011.0, 66159.0, 0.0])) for index in range(count)]


# --- the assignment ---------------------------------------------------------------------------


@pytest.mark.parametrize("num_shards", [1, 2, 3, 7, 40])
def test_shards_are_disjoint_and_complete(num_shards):
    budgets = _random_budgets(num_shards, 25)
    shards = assign_shards(budgets, num_shards)
    assert len(shards) == num_shards
    ids = [item for shard in shards for item in shard.items]
    assert sorted(ids) == sorted(item for item, _ in budgets)  # every item once, none twice
    for shard in shards:
        assert shard.budget_sec == pytest.approx(sum(dict(budgets)[item] for item in shard.items))
        # Within a shard, items keep the order they were given (collection order).
        assert shard.items == sorted(shard.items)


def test_the_plan_does_not_depend_on_item_order():
    budgets = _random_budgets(0, 40)
    expected = [set(shard.items) for shard in assign_shards(budgets, 4)]
    for seed in range(5):
        shuffled = list(budgets)
        random.Random(seed).shuffle(shuffled)
        assert [set(shard.items) for shard in assign_shards(shuffled, 4)] == expected


@pytest.mark.parametrize("seed", range(5))
def test_shards_are_balanced_within_the_greedy_bound(seed):
    budgets = _random_budgets(seed, 60)
    loads = [shard.budget_sec for shard in assign_shards(budgets, 6)]
    # Longest first onto the least-loaded shard: the heaviest is at most one item above the lightest.
    assert max(loads) - min(loads) <= max(budget for _, budget in budgets)
    assert max(loads) <= sum(loads) / len(loads) + max(budget for _, budget in budgets)


def test_equal_budgets_spread_evenly():
    shards = assign_shards([(f"t{index}", 60.0) for index in range(10)], 3)
    assert sorted(len(shard.items) for shard in shards) == [3, 3, 4]
    zero = assign_shards([(f"t{index}", 0.0) for index in range(6)], 3)
    assert [len(shard.items) for shard in zero] == [2, 2, 2]


def test_more_shards_than_items_leaves_some_empty():
    shards = assign_shards([("a", 1.0), ("b", 2.0)], 4)
    assert [shard.items for shard in shards] == [["b"], ["a"], [], []]


def _settings(**overrides) -> Settings:
    values = dict(submission=None, ruleset="external", trials=5, studies=3, data_dir=Path("."), results_dir=Path("."),
                  experiment=None, seed=0, max_steps=None, budget_scale=1.0, benchmark_version="v0.6", torch_compile="no")
    values.update(overrides)
    return Settings(**values)


@pytest.mark.parametrize("version", ["v0.5", "v0.6", "a100"])
@pytest.mark.parametrize("ruleset", ["external", "self"])
def test_item_budgets_are_the_trials_budgets(version, ruleset):
    budget = budget_function(_settings(ruleset=ruleset, benchmark_version=version, budget_scale=2.0))
    rules = load_version(version)
    for workload in rules.workloads:
        assert budget(workload) == pytest.approx(2.0 * rules.budget_sec(workload, self_tuning=ruleset == "self"))
    if "finewebedu_lm" not in rules.workloads:  # in a smoke session: a100's budget, this version's factor
        factor = rules.self_tuning_budget_factor if ruleset == "self" else 1
        assert budget("finewebedu_lm") == pytest.approx(2.0 * factor * 31967)


# --- the plugin -------------------------------------------------------------------------------


def _collect(pytester: pytest.Pytester, tmp_path: Path, *extra: str) -> pytest.RunResult:
    return pytester.runpytest(
        "-p", "no:cacheprovider", "--collect-only", "-q", f"--algoperf-submission={NADAMW}",
        f"--algoperf-data-dir={tmp_path}", f"--algoperf-results-dir={tmp_path}", *extra,
    )


def _item_ids(result: pytest.RunResult) -> list:
    return [line for line in result.stdout.lines if "::test_" in line]


@pytest.mark.parametrize("options", [("--algoperf-studies=1", "--algoperf-trials=2"), ("--algoperf-smoke",)], ids=["time-to-target", "smoke"])
def test_shards_of_a_session_partition_its_collection(pytester, tmp_path, options):
    everything = _item_ids(_collect(pytester, tmp_path, *options))
    assert len(everything) >= 3
    shards = [_item_ids(_collect(pytester, tmp_path, *options, f"--algoperf-shard={k}/3")) for k in (1, 2, 3)]
    kept = [item for shard in shards for item in shard]
    assert sorted(kept) == sorted(everything) and len(kept) == len(set(kept))
    assert all(shards)


def test_shards_split_what_k_selects(pytester, tmp_path):
    options = ("-k", "mnist", "--algoperf-studies=2", "--algoperf-trials=3")
    everything = _item_ids(_collect(pytester, tmp_path, *options))
    first, second = (_collect(pytester, tmp_path, *options, f"--algoperf-shard={k}/2") for k in (1, 2))
    assert len(everything) == 6
    assert sorted(_item_ids(first) + _item_ids(second)) == sorted(everything)
    assert not set(_item_ids(first)) & set(_item_ids(second))
    # 60 s a trial: three trials are 0.05 h.
    first.stdout.fnmatch_lines([
        "algoperf: shard plan, 6 items selected, in 2 shards balanced by runtime budget:",
        "  shard 1/2 (this run): 3 items, 0.05 h of budget",
        "    test_time_to_target[[]mnist-study*-trial*[]]",
        "  shard 2/2: 3 items, 0.05 h of budget",
    ])
    match = re.search(r"(\d+)/\d+ tests collected", first.stdout.str())
    assert match and int(match.group(1)) == 3


def test_plan_lists_every_shard_with_its_items(pytester, tmp_path):
    result = _collect(pytester, tmp_path, "-k", "mnist or ogbg_gelu", "--algoperf-studies=1", "--algoperf-trials=1", "--algoperf-shard=2/2")
    result.stdout.fnmatch_lines([
        "algoperf: shard plan, 2 items selected, in 2 shards balanced by runtime budget:",
        "  shard 1/2: 1 item, 3.34 h of budget",  # ogbg's 12,011 s in v0.6
        "    test_time_to_target[[]ogbg_gelu-study0-trial1[]]",
        "  shard 2/2 (this run): 1 item, 0.02 h of budget",  # mnist's 60 s
        "    test_time_to_target[[]mnist-study0-trial1[]]",
    ])


def test_a_sharded_run_reports_its_share(pytester, tmp_path):
    # No prepared data: the items skip in set-up, which is all this run needs.
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-k", "mnist", f"--algoperf-submission={NADAMW}", f"--algoperf-data-dir={tmp_path}",
        f"--algoperf-results-dir={tmp_path}", "--algoperf-studies=2", "--algoperf-trials=2", "--algoperf-shard=2/2",
    )
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines([
        "algoperf: shard 2/2 of the items -k/-m select, split by runtime budget*",
        "algoperf: shard 2/2 runs 2 of 4 items selected, 0.03 h of budget (all shards: 0.03 h | 0.03 h)*",
    ])


def test_an_empty_shard_succeeds(pytester, tmp_path):
    result = _collect(pytester, tmp_path, "-k", "mnist and study0 and trial1", "--algoperf-shard=3/3")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["  shard 1/3: 1 item, *", "  shard 3/3 (this run): 0 items, 0.00 h of budget"])
    assert not _item_ids(result)
    # A selection of nothing stays pytest's "no tests ran", shards or not.
    assert _collect(pytester, tmp_path, "-k", "no_such_item", "--algoperf-shard=1/2").ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_step_time_sessions_are_not_sharded(pytester, tmp_path):
    result = _collect(pytester, tmp_path, "--algoperf-benchmark-steps", "--algoperf-shard=1/2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--algoperf-shard splits time-to-target and smoke sessions*"])
