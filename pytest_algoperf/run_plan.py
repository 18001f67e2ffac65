"""Which trials a session runs: one per (workload, study, trial), with ids, seeds and markers."""

from __future__ import annotations

import dataclasses
from typing import Any, List, Optional, Sequence

import pytest

from pytest_algoperf.seeds import trial_seed
from workloads.registry import WORKLOADS, WorkloadEntry


@dataclasses.dataclass(frozen=True)
class TrialSpec:
    workload: str
    study: int  # 0-based, as upstream's study_<s> dirs
    trial: int  # 1-based, as upstream's trial_<k> dirs
    seed: int
    hyperparameters: Optional[Any]  # namedtuple, or None under self-tuning

    @property
    def id(self) -> str:
        return f"{self.workload}-study{self.study}-trial{self.trial}"

    @property
    def entry(self) -> WorkloadEntry:
        return WORKLOADS[self.workload]


def markers_for(entry: WorkloadEntry) -> List[str]:
    """The workload's own marker, its base workload's, its dataset family's, and `dev` for development workloads."""
    names = [entry.name, entry.base, entry.family] + (["dev"] if entry.development else [])
    return list(dict.fromkeys(names))


def marker_descriptions() -> List[str]:
    lines = {"dev: development workloads (not part of the benchmark score)"}
    for entry in WORKLOADS.values():
        lines.add(f"{entry.name}: runs of the {entry.name} workload")
        lines.add(f"{entry.base}: runs of {entry.base} and its variants")
        lines.add(f"{entry.family}: runs on the {entry.family} data sets")
    return sorted(lines)


def workloads_for(mode: str, include_variants: bool, benchmark_version: str) -> List[str]:
    """Full runs: every registered workload the benchmark version has numbers for. Smoke and step-time
    sessions: base and development workloads (plus variants on request) of every version, so the gate
    covers a workload before the version that scores it is selected."""
    from scoring.versions import load_version
    from workloads.registry import list_workloads

    names = list_workloads()
    if mode == "time-to-target":
        known = load_version(benchmark_version).workloads
        return [name for name in names if name in known]
    if include_variants:
        return names
    return [name for name in names if not WORKLOADS[name].is_variant]


@dataclasses.dataclass(frozen=True)
class StepTimeCase:
    """One side of a step-time comparison: the submission's or the baseline's update_params on a workload."""

    workload: str
    side: str  # 'submission' or 'baseline'

    @property
    def id(self) -> str:
        return f"{self.workload}-{self.side}"

    @property
    def entry(self) -> WorkloadEntry:
        return WORKLOADS[self.workload]


def plan_step_times(workloads: Sequence[str]) -> List[StepTimeCase]:
    return [StepTimeCase(workload, side) for workload in workloads for side in ("submission", "baseline")]


def plan_trials(
    workloads: Sequence[str], studies: int, hyperparameter_points: Optional[Sequence[Any]], num_trials: int, base_seed: int,
    seed_scope: str = "study",
) -> List[TrialSpec]:
    """Trials in (workload, study, trial) order; external tuning uses point k-1 for trial k."""
    plan = []
    for workload in workloads:
        for study in range(studies):
            for trial in range(1, num_trials + 1):
                point = hyperparameter_points[trial - 1] if hyperparameter_points is not None else None
                plan.append(TrialSpec(workload, study, trial, trial_seed(base_seed, workload, study, trial, seed_scope), point))
    return plan


def as_params(plan: Sequence[Any]) -> List[Any]:
    return [
        pytest.param(spec, id=spec.id, marks=[getattr(pytest.mark, name) for name in markers_for(spec.entry)])
        for spec in plan
    ]
