"""What differs between benchmark versions' runners: the `runner` block of scoring/versions/*.json, read here only."""

from __future__ import annotations

import dataclasses
from typing import Optional


@dataclasses.dataclass(frozen=True)
class RunnerProtocol:
    budget_check_every_step: bool = False  # v0.5; v0.6 checks only when an eval is due
    step_rng_splits: int = 4  # v0.5 split the per-step rng 3 ways (no prepare_for_eval rng)
    calls_prepare_for_eval: bool = True
    dropout_fixed_at_init: bool = False  # v0.5 built the model with the trial's dropout rates
    pytorch_tf32_matmul: Optional[bool] = None  # None: leave torch's default

    @classmethod
    def of_version(cls, benchmark_version: str) -> "RunnerProtocol":
        from scoring.versions import load_version

        runner = load_version(benchmark_version).runner
        tf32 = runner.get("pytorch_tf32_matmul")
        return cls(
            budget_check_every_step=runner.get("budget_check", "at_eval") == "every_step",
            step_rng_splits=int(runner.get("step_rng_splits", 4)),
            calls_prepare_for_eval=bool(runner.get("calls_prepare_for_eval", True)),
            dropout_fixed_at_init=bool(runner.get("dropout_fixed_at_init", False)),
            pytorch_tf32_matmul=None if tf32 is None else bool(tf32),
        )
