"""AlgoPerf's MNIST development workload (reference §4.10)."""

from __future__ import annotations

import contextlib
import math
from typing import Dict, Iterator, Optional, Tuple

import torch
import torch.nn.functional as F

from pytest_algoperf.api import random_utils as prng
from pytest_algoperf.api import spec
from workloads import parallel
from workloads.base import BenchmarkWorkload
from workloads.mnist import input_pipeline
from workloads.mnist.model import MnistMLP


class MnistWorkload(BenchmarkWorkload):
    name = "mnist"
    REFERENCE_COUNTS = {"train": 60_000, "test": 10_000}  # digits in the two official IDX files

    # --- constants -------------------------------------------------------
    @property
    def loss_type(self) -> spec.LossType:
        return spec.LossType.SOFTMAX_CROSS_ENTROPY

    @property
    def num_train_examples(self) -> int:
        return self.split_size("train", input_pipeline.NUM_TRAIN)

    @property
    def num_validation_examples(self) -> int:
        return self.split_size("validation", input_pipeline.NUM_VALIDATION)

    @property
    def num_test_examples(self) -> int:
        return self.split_size("test", input_pipeline.NUM_TEST)

    @property
    def eval_batch_size(self) -> int:
        return 10_000

    @property
    def num_eval_train_examples(self) -> int:
        return spec.standard_num_eval_train_examples(self.num_validation_examples, self.eval_batch_size)

    @property
    def train_mean(self) -> float:
        return 0.1307

    @property
    def train_stddev(self) -> float:
        return 0.3081

    # --- data ----------------------------------------------------------------
    def preparation_command(self, data_dir: str) -> str:
        return f"python -m workloads.mnist.prepare --data-dir {data_dir}"

    def _build_input_queue(
        self,
        data_rng: spec.RandomState,
        split: str,
        data_dir: str,
        global_batch_size: int,
        cache: Optional[bool] = None,
        repeat_final_dataset: Optional[bool] = None,
        num_batches: Optional[int] = None,
    ) -> Iterator[Dict[str, spec.Tensor]]:
        del cache, num_batches
        world = parallel.current_world()
        parallel.check_same_seed_on_every_rank(data_rng, world=world)
        world.local_batch_size(global_batch_size)  # under DDP: fails here, with the fix, when ranks do not divide it
        batches = input_pipeline.numpy_batches(
            self.dataset_dir(data_dir),
            split,
            global_batch_size,
            seed=int(data_rng[0]),
            mean=self.train_mean,
            stddev=self.train_stddev,
            repeat=bool(repeat_final_dataset),
            num_train=self.num_train_examples,
        )
        # Every rank draws the same global batches (one seed) and keeps its own block, the rows
        # upstream's rank 0 would broadcast to it; eval batches are padded to the global size first.
        local = ({key: world.local_rows(value) for key, value in batch.items()} for batch in batches)
        return input_pipeline.torch_batches(local, world.device)

    # --- model -----------------------------------------------------------------
    def init_model_fn(
        self, rng: spec.RandomState, dropout_rate: Optional[float] = None, aux_dropout_rate: Optional[float] = None
    ) -> spec.ModelInitState:
        del dropout_rate, aux_dropout_rate  # the MLP has no dropout
        if hasattr(self, "_model"):
            # Upstream quirk kept: a second init re-initialises the same module with
            # LeCun-normal weights instead of building a fresh default-initialised one.
            parallel.unwrap_model(self._model).reset_parameters()
            return self._model, None
        torch.random.manual_seed(int(rng[0]))
        model = MnistMLP()
        self._model = self._adopt_model(model)
        return self._model, None

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        # 'net_layer2.bias' (with an underscore) is upstream's spelling, kept as is.
        return param_key in ("net.layer2.weight", "net_layer2.bias")

    def model_fn(
        self,
        params: spec.ParameterContainer,
        augmented_and_preprocessed_input_batch: Dict[str, spec.Tensor],
        model_state: spec.ModelAuxiliaryState,
        mode: spec.ForwardPassMode,
        rng: spec.RandomState,
        update_batch_norm: bool,
        dropout_rate: Optional[float] = None,
    ) -> Tuple[spec.Tensor, spec.ModelAuxiliaryState]:
        del model_state, rng, update_batch_norm, dropout_rate
        model = params
        if mode == spec.ForwardPassMode.EVAL:
            model.eval()  # in TRAIN mode the submission calls model.train() itself, as upstream
        context = torch.no_grad if mode == spec.ForwardPassMode.EVAL else contextlib.nullcontext
        with context():
            logits = model(augmented_and_preprocessed_input_batch["inputs"])
        return logits, None

    def loss_fn(
        self,
        label_batch: spec.Tensor,
        logits_batch: spec.Tensor,
        mask_batch: Optional[spec.Tensor] = None,
        label_smoothing: float = 0.0,
    ) -> Dict[str, spec.Tensor]:
        per_example = F.cross_entropy(logits_batch, label_batch, reduction="none", label_smoothing=label_smoothing)
        if mask_batch is not None:
            per_example = per_example * mask_batch
            n_valid = mask_batch.sum()
        else:
            n_valid = torch.tensor(len(per_example), device=per_example.device)
        return {"summed": per_example.sum(), "n_valid_examples": torch.as_tensor(n_valid), "per_example": per_example}

    # --- evaluation ------------------------------------------------------------
    def _eval_batch_sums(self, params: spec.ParameterContainer, batch: Dict[str, spec.Tensor]) -> Dict[str, torch.Tensor]:
        logits, _ = self.model_fn(params, batch, None, spec.ForwardPassMode.EVAL, None, update_batch_norm=False)
        weights = batch["weights"]
        correct = ((logits.argmax(dim=1) == batch["targets"]) * weights).sum()
        summed_loss = self.loss_fn(batch["targets"], logits, weights)["summed"]
        return {"accuracy": correct, "loss": summed_loss}

    def _eval_model_on_split(
        self,
        split: str,
        num_examples: int,
        global_batch_size: int,
        params: spec.ParameterContainer,
        model_state: spec.ModelAuxiliaryState,
        rng: spec.RandomState,
        data_dir: str,
        global_step: int = 0,
    ) -> Dict[str, float]:
        del model_state, global_step
        data_rng, _ = prng.split(rng, 2)
        batches = self._cached_eval_batches(split, data_rng, data_dir, global_batch_size)
        totals = torch.zeros(2, dtype=torch.float64, device=parallel.current_world().device)  # [correct, summed loss]
        for _ in range(math.ceil(num_examples / global_batch_size)):
            sums = self._eval_batch_sums(params, next(batches))
            totals += torch.stack([sums["accuracy"].double(), sums["loss"].double()])
        # Each rank summed over its own rows; the split's totals are the sums over all ranks.
        accuracy, loss = parallel.all_reduce_sum(totals).tolist()
        return {"accuracy": accuracy / num_examples, "loss": loss / num_examples}
