"""The AlgoPerf submission and workload API (reference §1–§2).

Submissions written against upstream `algoperf.spec` (or the v0.5 name
`algorithmic_efficiency.spec`) get this module under that name, so every
name a submission may touch lives here with its upstream meaning.
"""

from __future__ import annotations

import abc
import math
from typing import Any, Dict, Iterator, Optional, Tuple, Union

from pytest_algoperf.api.cross_package_enum import CrossPackageEnum
from pytest_algoperf.api.param_utils import (  # noqa: F401  (part of the public API)
    ParameterType,
    ShapeTuple,
    pytorch_param_shapes,
    pytorch_param_types,
)
from pytest_algoperf.api.random_utils import PRNGKey, fold_in, split  # noqa: F401


class LossType(CrossPackageEnum):
    SOFTMAX_CROSS_ENTROPY = 0
    SIGMOID_CROSS_ENTROPY = 1
    MEAN_SQUARED_ERROR = 2
    CTC_LOSS = 3
    MEAN_ABSOLUTE_ERROR = 4


class ForwardPassMode(CrossPackageEnum):
    TRAIN = 0
    EVAL = 1


class TrainingCompleteError(Exception):
    """Raised by a submission's `update_params` to end training early."""


# Type aliases, as loose as upstream's: they document intent, not enforce it.
Tensor = Any
Shape = Union[Tuple[int], Tuple[int, int], Tuple[int, int, int], Tuple[int, int, int, int], ShapeTuple]
ParameterShapeTree = Dict[str, Dict[str, Shape]]
ParameterKey = str
ParameterContainer = Any  # for PyTorch: the (possibly DDP-wrapped) nn.Module
ParameterTypeTree = Dict[ParameterKey, ParameterType]
RandomState = Any  # numpy int array of shape (2,), see random_utils
OptimizerState = Union[Dict[str, Any], Tuple[Any, ...]]
Hyperparameters = Any  # a namedtuple, or None under self-tuning
Timing = int
Steps = int
ModelAuxiliaryState = Any  # always None for PyTorch workloads
ModelInitState = Tuple[ParameterContainer, ModelAuxiliaryState]
UpdateReturn = Tuple[OptimizerState, ParameterContainer, ModelAuxiliaryState]
InitOptimizerFn = Any
UpdateParamsFn = Any
PrepareForEvalFn = Any
DataSelectionFn = Any


class Workload(metaclass=abc.ABCMeta):
    """A dataset, a fixed model, a fixed loss and a target on a validation metric."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        del args, kwargs
        self._param_shapes: Optional[Dict[str, ShapeTuple]] = None
        self._param_types: Optional[ParameterTypeTree] = None
        self._eval_iters: Dict[str, Iterator[Dict[str, Tensor]]] = {}
        self.metrics_logger = None

    # --- targets and budgets -------------------------------------------------
    @property
    @abc.abstractmethod
    def target_metric_name(self) -> str:
        """Metric key without the split prefix, e.g. 'accuracy'."""

    @property
    @abc.abstractmethod
    def validation_target_value(self) -> float: ...

    @property
    @abc.abstractmethod
    def test_target_value(self) -> float: ...

    @abc.abstractmethod
    def has_reached_validation_target(self, eval_result: Dict[str, float]) -> bool: ...

    @abc.abstractmethod
    def has_reached_test_target(self, eval_result: Dict[str, float]) -> bool: ...

    @property
    @abc.abstractmethod
    def loss_type(self) -> LossType: ...

    @property
    @abc.abstractmethod
    def num_train_examples(self) -> int: ...

    @property
    @abc.abstractmethod
    def eval_batch_size(self) -> int: ...

    @property
    @abc.abstractmethod
    def num_eval_train_examples(self) -> int: ...

    @property
    @abc.abstractmethod
    def num_validation_examples(self) -> int: ...

    @property
    @abc.abstractmethod
    def num_test_examples(self) -> Optional[int]: ...

    @property
    @abc.abstractmethod
    def train_mean(self) -> Any: ...

    @property
    @abc.abstractmethod
    def train_stddev(self) -> Any: ...

    @property
    @abc.abstractmethod
    def max_allowed_runtime_sec(self) -> int: ...

    @property
    @abc.abstractmethod
    def eval_period_time_sec(self) -> int: ...

    @property
    @abc.abstractmethod
    def step_hint(self) -> int:
        """Approximate number of steps the baseline takes within the budget."""

    # --- model and data ------------------------------------------------------
    @abc.abstractmethod
    def _build_input_queue(
        self,
        data_rng: RandomState,
        split: str,
        data_dir: str,
        global_batch_size: int,
        cache: Optional[bool] = None,
        repeat_final_dataset: Optional[bool] = None,
        num_batches: Optional[int] = None,
    ) -> Iterator[Dict[str, Tensor]]:
        """The only workload method a submission may not call."""

    @abc.abstractmethod
    def is_output_params(self, param_key: ParameterKey) -> bool: ...

    @abc.abstractmethod
    def init_model_fn(self, rng: RandomState) -> ModelInitState: ...

    @abc.abstractmethod
    def model_fn(
        self,
        params: ParameterContainer,
        augmented_and_preprocessed_input_batch: Dict[str, Tensor],
        model_state: ModelAuxiliaryState,
        mode: ForwardPassMode,
        rng: RandomState,
        update_batch_norm: bool,
        dropout_rate: Optional[float] = None,
    ) -> Tuple[Tensor, ModelAuxiliaryState]:
        """Returns pre-activation logits and the new model state."""

    @abc.abstractmethod
    def loss_fn(
        self,
        label_batch: Tensor,
        logits_batch: Tensor,
        mask_batch: Optional[Tensor] = None,
        label_smoothing: float = 0.0,
    ) -> Dict[str, Tensor]:
        """Returns {'summed', 'n_valid_examples', 'per_example'}; no regularisation."""

    @abc.abstractmethod
    def _eval_model_on_split(
        self,
        split: str,
        num_examples: int,
        global_batch_size: int,
        params: ParameterContainer,
        model_state: ModelAuxiliaryState,
        rng: RandomState,
        data_dir: str,
        global_step: int = 0,
    ) -> Dict[str, float]: ...

    # --- concrete API ----------------------------------------------------------
    @property
    def param_shapes(self) -> Dict[str, ShapeTuple]:
        if self._param_shapes is None:
            raise ValueError("This should not happen, workload.init_model_fn() should be called before workload.param_shapes!")
        return self._param_shapes

    @property
    def model_params_types(self) -> ParameterTypeTree:
        if self._param_types is None:
            raise ValueError("This should not happen, workload.init_model_fn() should be called before workload.model_params_types!")
        return self._param_types

    def attach_metrics_logger(self, metrics_logger: Any) -> None:
        self.metrics_logger = metrics_logger

    def output_activation_fn(self, logits_batch: Tensor, framework: str) -> Tensor:
        """Turns logits into predictions the way upstream does per loss type."""
        if framework != "pytorch":
            raise ValueError(f"Only the 'pytorch' framework is available here, got {framework!r}.")
        import torch

        if self.loss_type in (LossType.MEAN_SQUARED_ERROR, LossType.MEAN_ABSOLUTE_ERROR):
            return logits_batch
        if self.loss_type in (LossType.SOFTMAX_CROSS_ENTROPY, LossType.CTC_LOSS):
            return torch.softmax(logits_batch, dim=-1)
        if self.loss_type == LossType.SIGMOID_CROSS_ENTROPY:
            return torch.sigmoid(logits_batch)
        raise ValueError(f"Unknown loss type {self.loss_type}.")

    def eval_model(
        self,
        global_batch_size: int,
        params: ParameterContainer,
        model_state: ModelAuxiliaryState,
        rng: RandomState,
        data_dir: str,
        imagenet_v2_data_dir: Optional[str],
        global_step: int,
    ) -> Dict[str, float]:
        """Evaluates on eval_train, validation and (if defined) test."""
        train_metrics = self._eval_model_on_split(
            "eval_train", self.num_eval_train_examples, global_batch_size, params, model_state, rng, data_dir, global_step
        )
        eval_metrics = {f"train/{k}": v for k, v in train_metrics.items()}
        validation_metrics = self._eval_model_on_split(
            "validation", self.num_validation_examples, global_batch_size, params, model_state, rng, data_dir, global_step
        )
        eval_metrics.update({f"validation/{k}": v for k, v in validation_metrics.items()})
        eval_metrics["validation/num_examples"] = self.num_validation_examples
        if self.num_test_examples is not None:
            test_data_dir = imagenet_v2_data_dir or data_dir
            try:
                test_metrics = self._eval_model_on_split(
                    "test", self.num_test_examples, global_batch_size, params, model_state, rng, test_data_dir, global_step
                )
            except NotImplementedError:
                test_metrics = {}
            if test_metrics:
                eval_metrics.update({f"test/{k}": v for k, v in test_metrics.items()})
                eval_metrics["test/num_examples"] = self.num_test_examples
        return eval_metrics


def standard_num_eval_train_examples(num_validation_examples: int, eval_batch_size: int) -> int:
    """Upstream's default: the validation size rounded up to whole eval batches."""
    return math.ceil(num_validation_examples / eval_batch_size) * eval_batch_size


__all__ = [
    "LossType", "ForwardPassMode", "ParameterType", "ShapeTuple", "TrainingCompleteError", "Workload",
    "Tensor", "Shape", "ParameterShapeTree", "ParameterKey", "ParameterContainer", "ParameterTypeTree",
    "RandomState", "OptimizerState", "Hyperparameters", "Timing", "Steps", "ModelAuxiliaryState",
    "ModelInitState", "UpdateReturn", "InitOptimizerFn", "UpdateParamsFn", "PrepareForEvalFn",
    "DataSelectionFn", "pytorch_param_shapes", "pytorch_param_types", "PRNGKey", "split", "fold_in",
    "standard_num_eval_train_examples",
]
