"""`--algoperf-shard=K/N`: run the K-th of N disjoint shards of the selected items, one shard per cluster job.

Every process computes the same plan from the items that -k/-m selected, so the N jobs of an
array need no coordination: give them the same options and each keeps only its own shard.
Items go longest runtime budget first onto the least-loaded shard (ties: fewer items, then the
lower shard number), ordered by (budget, node id), never by collection order, so the plan does
not depend on plugins that reorder items. The heaviest shard then carries at most one item's
budget more than the lightest.

An item's budget is the one its trial trains under: the workload's, times the ruleset factor,
times the budget scale (`runner.max_allowed_runtime`, numbers from the benchmark version file).
Smoke sessions are sharded by the same rule; their items train a few steps each, so the budget
serves only as a proxy for how heavy a workload is. Step-time sessions are refused: each workload's
submission and baseline sides must be timed on the same machine to be compared.

`--collect-only` prints the whole plan (every shard's items and budget hours); other runs print
one line with every shard's budget. A shard left empty (more shards than items) exits 0, so an
array job's surplus tasks succeed. Under xdist the controller collects nothing, so there only the
report header names the shard (and an empty shard exits 5, "no tests ran"); the workers apply the
same plan.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import pytest

from pytest_algoperf import runner
from pytest_algoperf.options import Settings
from pytest_algoperf.session import SESSION_KEY
from scoring.versions import load_version
from workloads.registry import benchmark_version_for

BENCHMARK_PARAMS = ("algoperf_trial", "algoperf_step_case")


@dataclasses.dataclass(frozen=True)
class Shard:
    items: List[str]  # item ids, in the order they were given
    budget_sec: float

    @property
    def budget_hours(self) -> float:
        return self.budget_sec / 3600


def assign_shards(budgets: Sequence[Tuple[str, float]], num_shards: int) -> List[Shard]:
    """Split (item id, budget seconds) pairs into `num_shards` disjoint shards, balanced by budget.

    Greedy longest-budget-first onto the least-loaded shard; the result depends only on the pairs,
    not on their order, as long as the ids are unique. Shard K is `result[K - 1]`.
    """
    if num_shards < 1:
        raise ValueError(f"num_shards must be at least 1, got {num_shards}")
    order = sorted(range(len(budgets)), key=lambda index: (-budgets[index][1], budgets[index][0]))
    loads = [0.0] * num_shards
    members: List[List[int]] = [[] for _ in range(num_shards)]
    for index in order:
        # Fewer items breaks load ties, so zero-budget items spread out too.
        shard = min(range(num_shards), key=lambda k: (loads[k], len(members[k]), k))
        members[shard].append(index)
        loads[shard] += budgets[index][1]
    return [Shard([budgets[index][0] for index in sorted(chosen)], load) for chosen, load in zip(members, loads)]


def budget_function(settings: Settings) -> Callable[[str], float]:
    """workload name -> the runtime budget (seconds) its trials train under in this session (a smoke
    session's workload that the selected version lacks: the budget of the version that has it)."""
    cache: Dict[str, float] = {}

    def budget(workload: str) -> float:
        if workload not in cache:
            version = load_version(benchmark_version_for(workload, settings.benchmark_version))
            cache[workload] = runner.max_allowed_runtime(
                version.target(workload).max_allowed_runtime_sec, settings.ruleset, settings.benchmark_version, settings.budget_scale
            )
        return cache[workload]

    return budget


def _benchmark_case(item: pytest.Item) -> Optional[Any]:
    params = getattr(getattr(item, "callspec", None), "params", {})
    return next((params[name] for name in BENCHMARK_PARAMS if name in params), None)


def item_budget_sec(item: pytest.Item, budget: Callable[[str], float]) -> float:
    """A benchmark item's runtime budget; 0 for any other test the session collected."""
    case = _benchmark_case(item)
    return budget(case.workload) if case is not None else 0.0


@dataclasses.dataclass(frozen=True)
class ShardPlan:
    shards: List[Shard]
    selected: int  # 1-based K
    names: Dict[str, str]  # node id -> the name the plan prints
    smoke: bool = False  # smoke items train a few steps: their budgets weigh workloads, they are not hours spent

    @property
    def kept(self) -> Shard:
        return self.shards[self.selected - 1]

    def lines(self, verbose: bool) -> List[str]:
        count, total = len(self.shards), sum(len(shard.items) for shard in self.shards)
        if not verbose:
            loads = " | ".join(f"{shard.budget_hours:.2f} h" for shard in self.shards)
            return [
                f"algoperf: shard {self.selected}/{count} runs {len(self.kept.items)} of {_items(total)} selected, "
                f"{self.kept.budget_hours:.2f} h of budget (all shards: {loads}); --collect-only lists the plan"
            ]
        lines = [f"algoperf: shard plan, {_items(total)} selected, in {count} shards balanced by runtime budget"
                 + (" (a smoke item's budget only weighs its workload):" if self.smoke else ":")]
        for number, shard in enumerate(self.shards, start=1):
            mark = " (this run)" if number == self.selected else ""
            lines.append(f"  shard {number}/{count}{mark}: {_items(len(shard.items))}, {shard.budget_hours:.2f} h of budget")
            lines += [f"    {self.names[nodeid]}" for nodeid in shard.items]
        return lines


def _items(count: int) -> str:
    return f"{count} item" + ("" if count == 1 else "s")


SHARD_PLAN_KEY = pytest.StashKey[ShardPlan]()


def _settings(config: pytest.Config) -> Optional[Settings]:
    session = config.stash.get(SESSION_KEY, None)
    return session.settings if session is not None else None


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    settings = _settings(config)
    if settings is not None and settings.shard is not None and settings.mode == "step-time":
        raise pytest.UsageError(
            "--algoperf-shard splits time-to-target and smoke sessions; a step-time session times each workload's "
            "submission and baseline on one machine to compare them. Drop --algoperf-shard, or select workloads with -k."
        )


def pytest_report_header(config: pytest.Config) -> List[str]:
    settings = _settings(config)
    if settings is None or settings.shard is None:
        return []
    index, count = settings.shard
    return [f"algoperf: shard {index}/{count} of the items -k/-m select, split by runtime budget; "
            f"every shard must get the same options"]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    """After -k/-m deselection: keep this process's shard, deselect the rest as -k does."""
    settings = _settings(config)
    if settings is None or settings.shard is None:
        return
    index, count = settings.shard
    budget = budget_function(settings)
    shards = assign_shards([(item.nodeid, item_budget_sec(item, budget)) for item in items], count)
    config.stash[SHARD_PLAN_KEY] = ShardPlan(shards, index, {item.nodeid: item.name for item in items}, settings.mode == "smoke")
    kept = set(shards[index - 1].items)
    deselected = [item for item in items if item.nodeid not in kept]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.nodeid in kept]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A shard left empty (more shards than selected items) has done its part: not pytest's 'no tests ran'."""
    plan = session.config.stash.get(SHARD_PLAN_KEY, None)
    if plan is not None and exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED and not plan.kept.items and any(shard.items for shard in plan.shards):
        session.exitstatus = pytest.ExitCode.OK


def pytest_report_collectionfinish(config: pytest.Config) -> List[str]:
    plan = config.stash.get(SHARD_PLAN_KEY, None)
    if plan is None:
        return []
    return plan.lines(verbose=bool(config.getoption("collectonly")))
