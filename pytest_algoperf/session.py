"""The state of one benchmark session, kept in `config.stash` (never module globals: xdist splits those)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from pytest_algoperf.distributed import SINGLE_PROCESS, Ranks, session_ranks
from pytest_algoperf.options import Settings
from pytest_algoperf.run_plan import StepTimeCase, TrialSpec, plan_step_times, plan_trials, workloads_for
from workloads.registry import workloads_of_other_versions
from pytest_algoperf.seeds import search_order_seed
from pytest_algoperf.submission_loading import SubmissionPaths
from pytest_algoperf.api.halton import SearchSpaceError, generate_search, load_search_space

RECORD_PROPERTY = "algoperf_trial"


@dataclasses.dataclass
class BenchmarkSession:
    settings: Settings
    paths: SubmissionPaths
    submission_hash: str
    experiment: str
    plan: List[TrialSpec]  # time-to-target trials, or one smoke trial per workload
    notes: List[str]
    step_time_plan: List[StepTimeCase] = dataclasses.field(default_factory=list)
    first_point: Optional[Any] = None  # the first tuning point (None under self-tuning), for step-time runs
    records: Dict[str, Dict[str, Any]] = dataclasses.field(default_factory=dict)
    ranks: Ranks = SINGLE_PROCESS  # this process's rank under torchrun

    @property
    def experiment_dir(self) -> Path:
        return self.settings.results_dir / self.experiment

    def session_file(self, name: str) -> Path:
        """Where a session-level file goes: shards of one experiment each write their own
        (`time_to_target_summary.shard-2-of-8.csv`), so none overwrites another's."""
        if self.settings.shard is None:
            return self.experiment_dir / name
        stem, dot, suffix = name.partition(".")
        index, count = self.settings.shard
        return self.experiment_dir / f"{stem}.shard-{index}-of-{count}{dot}{suffix}"

    @classmethod
    def from_settings(cls, settings: Settings) -> "BenchmarkSession":
        """Resolves the submission and its search space; configuration problems become UsageErrors."""
        try:
            paths = SubmissionPaths.resolve(settings.submission)
        except FileNotFoundError as error:
            raise pytest.UsageError(str(error)) from None
        notes: List[str] = []
        points: Optional[List[Any]] = None
        num_trials = settings.trials
        if settings.ruleset == "external":
            if paths.search_space_file is None:
                raise pytest.UsageError(
                    f"external tuning needs a tuning_search_space.json next to {paths.module_file.name} "
                    f"(in {paths.module_file.parent}); add one, or pass --algoperf-ruleset=self"
                )
            try:
                search_space = load_search_space(paths.search_space_file)
            except SearchSpaceError as error:
                raise pytest.UsageError(str(error)) from None
            points = generate_search(search_space, settings.trials, order_seed=search_order_seed(settings.seed))
            if len(points) < settings.trials:
                notes.append(f"{paths.search_space_file.name} lists {len(points)} points, so {len(points)} trials run per study (asked for {settings.trials})")
                num_trials = len(points)
        elif paths.search_space_file is not None:
            notes.append(f"self-tuning: {paths.search_space_file.name} is ignored (hyperparameters=None)")
        workloads = workloads_for(settings.mode, settings.variants, settings.benchmark_version)
        if settings.mode == "time-to-target":
            elsewhere = workloads_of_other_versions(settings.benchmark_version)
            if elsewhere:
                notes.append(f"benchmark {settings.benchmark_version} has no {', '.join(elsewhere)}; "
                             f"{'they run' if len(elsewhere) > 1 else 'it runs'} under --algoperf-benchmark-version="
                             f"{' or '.join(sorted({version for versions in elsewhere.values() for version in versions}))}")
        if settings.mode == "time-to-target":
            plan = plan_trials(workloads, settings.studies, points, num_trials, settings.seed, settings.seed_scope)
            suffix = f"-max-steps-{settings.max_steps}" if settings.is_development_run else ""
        else:
            # Smoke and step-time sessions: one run per workload with the first tuning point.
            plan = plan_trials(workloads, 1, points, 1, settings.seed) if settings.mode == "smoke" else []
            suffix = "-smoke" if settings.mode == "smoke" else "-step-time"
        experiment = settings.experiment or paths.name + suffix
        step_time_plan = plan_step_times(workloads) if settings.mode == "step-time" else []
        first_point = points[0] if points else None
        return cls(
            settings, paths, paths.content_hash(), experiment, plan, notes,
            step_time_plan=step_time_plan, first_point=first_point, ranks=session_ranks(),
        )

    def add_record(self, record: Dict[str, Any]) -> None:
        self.records[record["id"]] = record


SESSION_KEY = pytest.StashKey[BenchmarkSession]()
