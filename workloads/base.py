"""What every benchmark workload shares: targets and budgets as data, the target check, data checks.

Targets, runtime budgets, step hints and eval periods are read from the
benchmark version files in `scoring/versions/` (the same data the scorer uses),
so one version name selects them everywhere; a workload class adds only what
does not vary by version.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ClassVar, Dict, Iterator, List, Optional

from pytest_algoperf.api import spec
from scoring.versions import DEFAULT_VERSION, VersionError, available_versions, load_version

if TYPE_CHECKING:
    import torch

DEFAULT_BENCHMARK_VERSION = DEFAULT_VERSION
TRAIN_NUM_WORKERS = 4  # upstream's DataLoader workers for training batches


@dataclasses.dataclass(frozen=True)
class DataStatus:
    """Whether a workload's prepared data is usable; `missing` means 'not prepared yet' (a skip)."""

    ready: bool
    missing: bool = False
    reason: str = ""


class DataProblem(Exception):
    """Prepared data exists but is corrupt or partial; the message names the path and the fix."""


class BenchmarkWorkload(spec.Workload):
    """A `spec.Workload` whose targets and budgets come from the selected benchmark version."""

    name: ClassVar[str]
    # Example counts per split that full prepared data must have (checked against its manifest).
    REFERENCE_COUNTS: ClassVar[Dict[str, int]] = {}
    # Training examples per smoke-gate batch (tiny data on a CPU: rows, graphs, sentences or images);
    # fewer where one example is costly.
    SMOKE_BATCH_SIZE: ClassVar[int] = 8
    # Compute precisions the workload offers (--algoperf-precision); the first is the reference's.
    PRECISIONS: ClassVar[tuple] = ("float32",)

    def __init__(self, benchmark_version: str = DEFAULT_BENCHMARK_VERSION) -> None:
        super().__init__()
        try:
            self._target = load_version(benchmark_version).target(self.name)
        except (VersionError, KeyError) as error:
            elsewhere = [version for version in available_versions() if self.name in load_version(version).workloads]
            hint = f"; it is part of {', '.join(elsewhere)} (--algoperf-benchmark-version={elsewhere[0]})" if elsewhere else ""
            raise ValueError(f"Workload {self.name!r} has no numbers for benchmark version {benchmark_version!r}: {error}{hint}") from None
        self.benchmark_version = benchmark_version
        # Set by v0.5-API runs, where dropout is fixed when the model is built.
        self._init_dropout_rate: Optional[float] = None
        self._init_aux_dropout_rate: Optional[float] = None
        self._dropout_fixed_at_init = False  # a rate of None then still means "fixed at the workload's default"
        # Split sizes of a subset data dir (see data_manifest); None means the reference sizes.
        self._subset_sizes: Optional[Dict[str, int]] = None
        self._precision = self.PRECISIONS[0]

    def use_precision(self, precision: str) -> None:
        """Computes in `precision` where the workload offers it; the others keep their only one."""
        if precision in self.PRECISIONS:
            self._precision = precision

    @property
    def target_metric_name(self) -> str:
        return self._target.metric

    @property
    def validation_target_value(self) -> float:
        return self._target.validation_target

    @property
    def test_target_value(self) -> float:
        return self._target.test_target

    @property
    def max_allowed_runtime_sec(self) -> float:
        return self._target.max_allowed_runtime_sec

    @property
    def eval_period_time_sec(self) -> float:
        if self._target.eval_period_time_sec is None:
            raise ValueError(f"Benchmark version {self.benchmark_version!r} gives no eval_period_time_sec for {self.name!r}; add it to its version file.")
        return self._target.eval_period_time_sec

    @property
    def step_hint(self) -> int:
        return self._target.step_hint

    @property
    def higher_is_better(self) -> bool:
        return not self._target.minimize

    # Upstream defines input statistics only for image workloads; the others raise.
    @property
    def train_mean(self):
        raise NotImplementedError

    @property
    def train_stddev(self):
        raise NotImplementedError

    def _beats(self, value: float, target: float) -> bool:
        # Strict, as upstream's runner; the scorer's check is non-strict (reference §9.2).
        return value > target if self.higher_is_better else value < target

    def has_reached_validation_target(self, eval_result: Dict[str, float]) -> bool:
        return self._beats(eval_result[f"validation/{self.target_metric_name}"], self.validation_target_value)

    def has_reached_test_target(self, eval_result: Dict[str, float]) -> bool:
        return self._beats(eval_result[f"test/{self.target_metric_name}"], self.test_target_value)

    def _adopt_model(self, model):
        """`init_model_fn`'s last step: parameter shapes and types from the bare module (wrappers prefix
        the names), then the model on this process's device, wrapped as upstream wraps it."""
        from pytest_algoperf.api.param_utils import pytorch_param_shapes, pytorch_param_types
        from workloads import parallel

        self._param_shapes = pytorch_param_shapes(model)
        self._param_types = pytorch_param_types(self._param_shapes)
        return parallel.wrap_model(model)

    def _dropout_rate_or_default(self, dropout_rate: Optional[float], default: float) -> float:
        """The rate a `model_fn` call uses: its own; else the one fixed at init (v0.5 API); else `default`."""
        if dropout_rate is not None:
            return dropout_rate
        return self._init_dropout_rate if self._init_dropout_rate is not None else default

    def fix_dropout_at_init(self, dropout_rate: Optional[float], aux_dropout_rate: Optional[float]) -> None:
        """v0.5 API: dropout chosen once from the hyperparameters, used whenever model_fn gets none."""
        self._init_dropout_rate = dropout_rate
        self._init_aux_dropout_rate = aux_dropout_rate
        self._dropout_fixed_at_init = True

    # --- data --------------------------------------------------------------
    def _cached_eval_batches(
        self, split: str, rng: spec.RandomState, data_dir: str, global_batch_size: int, num_batches: Optional[int] = None
    ) -> Iterator[Dict[str, spec.Tensor]]:
        """The split's endless eval iterator, built on the first eval and reused (as upstream caches it,
        so the eval_train sample stays the same across evals)."""
        if split not in self._eval_iters:
            self._eval_iters[split] = self._build_input_queue(
                rng, split, data_dir, global_batch_size, cache=True, repeat_final_dataset=True, num_batches=num_batches
            )
        return self._eval_iters[split]

    def _summed_over_split(
        self,
        split: str,
        num_examples: int,
        global_batch_size: int,
        data_rng: spec.RandomState,
        data_dir: str,
        batch_sums: Callable[[Dict[str, spec.Tensor]], "torch.Tensor"],
        size: int,
    ) -> List[float]:
        """Sums of `batch_sums(batch)` (a float64 tensor of `size` on this process's device) over the split's
        ceil(num_examples / global batch) eval batches, then over all ranks (each rank summed its own rows)."""
        import torch

        from workloads import parallel

        batches = self._cached_eval_batches(split, data_rng, data_dir, global_batch_size)
        totals = torch.zeros(size, dtype=torch.float64, device=parallel.current_world().device)
        for _ in range(math.ceil(num_examples / global_batch_size)):
            totals += batch_sums(next(batches))
        return parallel.all_reduce_sum(totals).tolist()

    def _dataloader_workers(self, split: str, world) -> int:
        """DataLoader workers for a split's batches: upstream's 4 for training on a GPU (none on a CPU-only
        run, whose smoke data is a handful of examples and where worker start-up would dominate), and for
        the eval splits the eval_num_workers that DataLoader workloads set (upstream's runner sets it from
        --pytorch_eval_num_workers, default 0; an instance attribute, so the meta data logs it as upstream's)."""
        if split != "train":
            return self.eval_num_workers
        return TRAIN_NUM_WORKERS if world.device.type == "cuda" else 0

    def use_prepared_data(self, data_dir: str) -> None:
        """Adopts the split sizes of a subset data dir, so evals cover exactly the examples there."""
        from workloads.data_manifest import subset_counts

        self._subset_sizes = subset_counts(self.dataset_dir(data_dir))

    @property
    def on_subset_data(self) -> bool:
        return self._subset_sizes is not None

    def split_size(self, split: str, reference_size: int) -> int:
        """The number of examples of a split: the reference's, or the subset's when running on one."""
        if self._subset_sizes is None:
            return reference_size
        return self._subset_sizes.get(split, reference_size)

    # Split sizes from REFERENCE_COUNTS (a subset data dir's when running on one); workloads whose
    # reference sizes live elsewhere override these.
    @property
    def num_train_examples(self) -> int:
        return self.split_size("train", self.REFERENCE_COUNTS["train"])

    @property
    def num_validation_examples(self) -> int:
        return self.split_size("validation", self.REFERENCE_COUNTS["validation"])

    @property
    def num_test_examples(self) -> int:
        return self.split_size("test", self.REFERENCE_COUNTS["test"])

    @property
    def num_eval_train_examples(self) -> int:
        """Upstream's usual rule: the validation size rounded up to whole eval batches, capped by the
        training examples a subset data dir holds."""
        standard = spec.standard_num_eval_train_examples(self.num_validation_examples, self.eval_batch_size)
        return self.split_size("eval_train", min(standard, self.num_train_examples))

    def data_status(self, data_dir: str) -> DataStatus:
        """Is the prepared data under `data_dir` present, complete and of the reference's size?"""
        from workloads.data_manifest import check_manifest

        return check_manifest(self.dataset_dir(data_dir), self.preparation_command(data_dir), self.REFERENCE_COUNTS)

    def preparation_command(self, data_dir: str) -> str:
        """Override: the exact shell command that prepares this workload's data."""
        raise NotImplementedError

    def dataset_dir(self, data_dir: str) -> Path:
        return Path(data_dir).expanduser() / self.dataset_name

    @property
    def dataset_name(self) -> str:
        return self.name
