"""What every benchmark workload shares: targets and budgets as data, the target check, data checks."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar, Dict, Optional

from pytest_algoperf import spec

DEFAULT_BENCHMARK_VERSION = "v0.6"
MAXIMIZED_METRICS = ("accuracy", "mean_average_precision", "ssim", "bleu")
MINIMIZED_METRICS = ("loss", "wer", "ctc_loss", "error_rate", "l1_loss", "ppl")


@dataclasses.dataclass(frozen=True)
class TargetsAndBudget:
    """The per-version numbers of a workload (reference §4.1, §5)."""

    target_metric_name: str
    validation_target_value: float
    test_target_value: float
    max_allowed_runtime_sec: float
    eval_period_time_sec: float
    step_hint: int

    @property
    def higher_is_better(self) -> bool:
        if self.target_metric_name in MAXIMIZED_METRICS:
            return True
        if self.target_metric_name in MINIMIZED_METRICS:
            return False
        raise ValueError(f"No known direction for metric {self.target_metric_name!r}.")


@dataclasses.dataclass(frozen=True)
class DataStatus:
    """Whether a workload's prepared data is usable; `missing` means 'not prepared yet' (a skip)."""

    ready: bool
    missing: bool = False
    reason: str = ""


class DataProblem(Exception):
    """Prepared data exists but is corrupt or partial; the message names the path and the fix."""


class BenchmarkWorkload(spec.Workload):
    """A `spec.Workload` whose targets and budgets come from `VERSIONS`, selectable by benchmark version."""

    name: ClassVar[str]
    VERSIONS: ClassVar[Dict[str, TargetsAndBudget]]

    def __init__(self, benchmark_version: str = DEFAULT_BENCHMARK_VERSION) -> None:
        super().__init__()
        if benchmark_version not in self.VERSIONS:
            known = ", ".join(sorted(self.VERSIONS))
            raise ValueError(f"Workload {self.name!r} has no numbers for benchmark version {benchmark_version!r}; known: {known}.")
        self.benchmark_version = benchmark_version
        self._numbers = self.VERSIONS[benchmark_version]
        # Set by v0.5-API runs, where dropout is fixed when the model is built.
        self._init_dropout_rate: Optional[float] = None
        self._init_aux_dropout_rate: Optional[float] = None

    @property
    def target_metric_name(self) -> str:
        return self._numbers.target_metric_name

    @property
    def validation_target_value(self) -> float:
        return self._numbers.validation_target_value

    @property
    def test_target_value(self) -> float:
        return self._numbers.test_target_value

    @property
    def max_allowed_runtime_sec(self) -> float:
        return self._numbers.max_allowed_runtime_sec

    @property
    def eval_period_time_sec(self) -> float:
        return self._numbers.eval_period_time_sec

    @property
    def step_hint(self) -> int:
        return self._numbers.step_hint

    @property
    def higher_is_better(self) -> bool:
        return self._numbers.higher_is_better

    def _beats(self, value: float, target: float) -> bool:
        # Strict, as upstream's runner; the scorer's check is non-strict (reference §9.2).
        return value > target if self.higher_is_better else value < target

    def has_reached_validation_target(self, eval_result: Dict[str, float]) -> bool:
        return self._beats(eval_result[f"validation/{self.target_metric_name}"], self.validation_target_value)

    def has_reached_test_target(self, eval_result: Dict[str, float]) -> bool:
        return self._beats(eval_result[f"test/{self.target_metric_name}"], self.test_target_value)

    def fix_dropout_at_init(self, dropout_rate: Optional[float], aux_dropout_rate: Optional[float]) -> None:
        """v0.5 API: dropout chosen once from the hyperparameters, used whenever model_fn gets none."""
        self._init_dropout_rate = dropout_rate
        self._init_aux_dropout_rate = aux_dropout_rate

    # --- data --------------------------------------------------------------
    def data_status(self, data_dir: str) -> DataStatus:
        """Override: is the prepared data under `data_dir` present and complete?"""
        raise NotImplementedError

    def preparation_command(self, data_dir: str) -> str:
        """Override: the exact shell command that prepares this workload's data."""
        raise NotImplementedError

    def dataset_dir(self, data_dir: str) -> Path:
        return Path(data_dir).expanduser() / self.dataset_name

    @property
    def dataset_name(self) -> str:
        return self.name
