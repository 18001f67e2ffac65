"""What the selected trials cost: their runtime budgets in device-hours on the benchmark's hardware of record.

Printed after collection, so -k, -m, deselection and --algoperf-shard have applied; `--collect-only`
shows it without running anything. The report header, printed before any selection, states the
cost of the whole plan (every trial the options ask for). An item's budget is the one its trial trains under
(`runner.max_allowed_runtime`: the workload's, times the self-tuning factor, times
--algoperf-budget-scale); device-hours are that budget times the devices one trial runs on in the
selected benchmark version (its version file's "hardware": 8x V100 for v0.5 and v0.6, 4x A100 for
a100). The budget is an upper bound: a trial stops as soon as it reaches its targets. A trial an
earlier run of the same experiment finished is reused, not run again (resume.py), so it costs nothing.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from pytest_algoperf import resume
from pytest_algoperf.results import trial_dir
from pytest_algoperf.run_plan import TrialSpec
from scoring.versions import Hardware, load_version

SECONDS_PER_HOUR = 3600.0


@dataclasses.dataclass
class WorkloadCost:
    workload: str
    budget_sec: float  # one trial's budget
    trials: int = 0  # trials that will run (reused ones excluded)
    reused: int = 0  # trials an earlier run finished

    @property
    def budget_hours(self) -> float:
        return self.trials * self.budget_sec / SECONDS_PER_HOUR


@dataclasses.dataclass(frozen=True)
class SelectionCost:
    workloads: List[WorkloadCost]  # in the order the items were selected
    hardware: Optional[Hardware]  # None: the version names no hardware, device-hours are unknown
    benchmark_version: str
    ruleset: str
    budget_scale: float = 1.0

    @property
    def trials(self) -> int:
        return sum(cost.trials for cost in self.workloads)

    @property
    def reused(self) -> int:
        return sum(cost.reused for cost in self.workloads)

    @property
    def budget_hours(self) -> float:
        return sum(cost.budget_hours for cost in self.workloads)

    def device_hours(self, hours: float) -> Optional[float]:
        return None if self.hardware is None else hours * self.hardware.devices

    @property
    def total_device_hours(self) -> Optional[float]:
        return self.device_hours(self.budget_hours)


def selection_cost(
    trials: Iterable[TrialSpec],
    budget: Callable[[str], float],
    benchmark_version: str,
    ruleset: str,
    budget_scale: float = 1.0,
    is_reused: Callable[[TrialSpec], bool] = lambda trial: False,
) -> SelectionCost:
    """The cost of running `trials`; `budget(workload)` is one trial's budget in seconds."""
    costs: Dict[str, WorkloadCost] = {}
    for trial in trials:
        cost = costs.setdefault(trial.workload, WorkloadCost(trial.workload, budget(trial.workload)))
        if is_reused(trial):
            cost.reused += 1
        else:
            cost.trials += 1
    return SelectionCost(list(costs.values()), load_version(benchmark_version).hardware, benchmark_version, ruleset, budget_scale)


def finished_elsewhere(results_dir, experiment: str, overwrite: bool) -> Callable[[TrialSpec], bool]:
    """Whether a trial's folder holds a finished result a rerun reuses (never, with --algoperf-overwrite)."""

    def is_reused(trial: TrialSpec) -> bool:
        if overwrite:
            return False
        folder = trial_dir(results_dir, experiment, trial.study, trial.workload, trial.trial)
        return resume.trial_history(folder).state == resume.FINISHED

    return is_reused


def _hours(hours: float) -> str:
    return f"{hours:,.2f}"


def _ruleset_text(cost: SelectionCost) -> str:
    text = "self-tuning" if cost.ruleset == "self" else "external tuning"
    return text + (f", budget scale {cost.budget_scale:g}" if cost.budget_scale != 1.0 else "")


def render(cost: SelectionCost, verbose: bool = True) -> List[str]:
    """Report lines: one per workload (when verbose), then the total and what it means."""
    if cost.hardware is None:
        where = f"benchmark {cost.benchmark_version} names no hardware of record, so only budget hours are known"
    else:
        where = f"device-hours on {cost.benchmark_version}'s hardware of record, {cost.hardware} per trial"
    lines = [f"algoperf: cost of the selection ({_ruleset_text(cost)}), {where}:"] if verbose else []
    width = max([len(item.workload) for item in cost.workloads] + [len("total")])
    if verbose:
        for item in cost.workloads:
            lines.append(f"  {item.workload:<{width}}  {_trials(item.trials):>10} x {item.budget_sec:>7,.0f} s = "
                         f"{_hours(item.budget_hours):>8} h of budget{_device_text(cost, item.budget_hours)}"
                         + (f" ({item.reused} reused)" if item.reused else ""))
    total = (f"{_trials(cost.trials)}, {_hours(cost.budget_hours)} h of budget{_device_text(cost, cost.budget_hours)}")
    if verbose:
        lines.append(f"  {'total':<{width}}  {total}; an upper bound, since a trial stops at its target")
    else:
        on = "" if cost.hardware is None else f" on {cost.hardware} per trial"
        lines.append(f"algoperf: cost of the selection: {total}{on} (an upper bound: a trial stops at its target)")
    if cost.reused:
        lines.append(f"algoperf: {_trials(cost.reused)} an earlier run finished {'is' if cost.reused == 1 else 'are'} "
                     "reused and cost nothing (not counted above; --algoperf-overwrite reruns them)")
    return lines


def _device_text(cost: SelectionCost, hours: float) -> str:
    device_hours = cost.device_hours(hours)
    return "" if device_hours is None else f" = {_hours(device_hours)} device-hours"


def _trials(count: int) -> str:
    return f"{count} trial" + ("" if count == 1 else "s")


def trial_of(item) -> Optional[TrialSpec]:
    """The TrialSpec a time-to-target item runs, None for any other item."""
    return getattr(getattr(item, "callspec", None), "params", {}).get("algoperf_trial")


def trials_by_node_ids(node_ids: Sequence[str], plan: Sequence[TrialSpec]) -> List[TrialSpec]:
    """The plan's trials that xdist workers collected, from their node ids (`...[mnist-study0-trial1]`)."""
    by_id = {trial.id: trial for trial in plan}
    found = (by_id.get(node_id.rpartition("[")[2].rstrip("]")) for node_id in node_ids if node_id.endswith("]"))
    return [trial for trial in found if trial is not None]


def plan_cost_line(session) -> Optional[str]:
    """The report header's line: every planned trial's budget, before any selection (None outside
    time-to-target sessions)."""
    from pytest_algoperf.sharding import budget_function

    settings = session.settings
    if settings.mode != "time-to-target" or not session.plan:
        return None
    cost = selection_cost(session.plan, budget_function(settings), settings.benchmark_version, settings.ruleset,
                          settings.budget_scale)
    on = "" if cost.hardware is None else f" on {cost.hardware} per trial"
    return (f"algoperf: the whole plan, before -k/-m/--algoperf-shard: {_trials(cost.trials)}, {_hours(cost.budget_hours)} h "
            f"of budget{_device_text(cost, cost.budget_hours)}{on}; the selection's cost follows collection")


def session_cost_lines(session, trials: Sequence[TrialSpec], verbose: bool) -> List[str]:
    """The report lines of a time-to-target session's selected trials (none for other sessions)."""
    from pytest_algoperf.sharding import budget_function

    settings = session.settings
    if settings.mode != "time-to-target" or not trials:
        return []
    cost = selection_cost(trials, budget_function(settings), settings.benchmark_version, settings.ruleset, settings.budget_scale,
                          finished_elsewhere(settings.results_dir, session.experiment, settings.overwrite))
    lines = render(cost, verbose)
    if settings.is_development_run:
        lines.append(f"algoperf: --algoperf-max-steps={settings.max_steps} stops every trial after {settings.max_steps} steps, "
                     "far inside these budgets")
    return lines
