"""AlgoPerf's OGBG workload and its variants (reference §4.8, §5): multi-task molecular property prediction.

Batches, model, loss and metrics follow upstream. Where evaluation deliberately
differs, the metrics of a full split are unchanged and only upstream's
accidents go:
  * an eval reads every molecule of its split exactly once (upstream takes
    ceil(N / batch) dynamic batches from a cycled iterator, which can stop
    short of, or run past, the end of the split);
  * eval_train is a fixed random subset of 43,793 training molecules, drawn on
    the first eval (upstream keeps drawing from the shuffled, repeated train
    stream, so successive train metrics see different molecules);
  * eval batches carry one small padding graph instead of padding to the full
    budget, which no real molecule's output depends on;
  * mean average precision skips tasks without a *valid* positive and negative
    label, as OGB's evaluator (see metrics.py).
"""

from __future__ import annotations

import contextlib
from typing import Dict, Iterator, Optional, Tuple

import numpy as np
import torch

from pytest_algoperf.api import random_utils as prng
from pytest_algoperf.api import spec
from workloads import parallel
from workloads.base import DEFAULT_BENCHMARK_VERSION, BenchmarkWorkload
from workloads.ogbg import input_pipeline, prepare
from workloads.ogbg.metrics import EvalTotals, sigmoid_cross_entropy
from workloads.ogbg.model import DROPOUT_RATE, GNN
from workloads.ogbg.prepared_data import load_split
from workloads.ogbg.raw_format import REFERENCE_SPLIT_SIZES


class OgbgWorkload(BenchmarkWorkload):
    name = "ogbg"
    REFERENCE_COUNTS = REFERENCE_SPLIT_SIZES
    NUM_OUTPUTS = 128  # one logit per PubChem bioassay task

    def __init__(self, benchmark_version: str = DEFAULT_BENCHMARK_VERSION) -> None:
        super().__init__(benchmark_version)
        # The eval_train molecules, drawn on the first eval and kept, so train metrics of
        # successive evals compare like with like.
        self._eval_train_graph_ids: Optional[np.ndarray] = None

    # --- the model's shape (variants override) -----------------------------
    @property
    def activation_fn_name(self) -> str:
        return "relu"

    @property
    def hidden_dims(self) -> Tuple[int, ...]:
        return (256,)

    @property
    def latent_dim(self) -> int:
        return 256

    @property
    def num_message_passing_steps(self) -> int:
        return 5

    # --- constants -----------------------------------------------------------
    @property
    def dataset_name(self) -> str:
        return prepare.DATASET_NAME  # the variants share the base workload's data

    @property
    def loss_type(self) -> spec.LossType:
        # Upstream's value, although the loss is a sigmoid cross-entropy (reference §9.8); kept for
        # submissions that branch on it.
        return spec.LossType.SOFTMAX_CROSS_ENTROPY

    @property
    def num_train_examples(self) -> int:
        return self.split_size("train", REFERENCE_SPLIT_SIZES["train"])

    @property
    def num_eval_train_examples(self) -> int:
        # Fixed at the validation size, not rounded up to whole eval batches as elsewhere.
        return self.split_size("eval_train", prepare.NUM_EVAL_TRAIN_EXAMPLES)

    @property
    def num_validation_examples(self) -> int:
        return self.split_size("validation", REFERENCE_SPLIT_SIZES["validation"])

    @property
    def num_test_examples(self) -> int:
        return self.split_size("test", REFERENCE_SPLIT_SIZES["test"])

    @property
    def eval_batch_size(self) -> int:
        return 32_768

    # --- data ----------------------------------------------------------------
    def preparation_command(self, data_dir: str) -> str:
        return f"python -m workloads.ogbg.prepare --data-dir {data_dir} --download"

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
        """Train: endless shuffled batches. Other splits: one pass (endless passes with repeat_final_dataset)."""
        del cache, num_batches
        world = parallel.current_world()
        parallel.check_same_seed_on_every_rank(data_rng, world=world)
        if split == "train":
            graphs = load_split(self.dataset_dir(data_dir), "train")
            batches = input_pipeline.train_batches(graphs, global_batch_size, data_rng, world.num_shards, world.shard_index)
            return input_pipeline.device_batches(batches, world.device, background=True)

        def passes() -> Iterator[Dict[str, spec.Tensor]]:
            while True:
                yield from self._eval_pass(split, self._eval_examples(split), global_batch_size, data_dir, data_rng)
                if not repeat_final_dataset:
                    return

        return passes()

    def _eval_examples(self, split: str) -> int:
        return {
            "eval_train": self.num_eval_train_examples,
            "validation": self.num_validation_examples,
            "test": self.num_test_examples,
        }[split]

    def _eval_graph_ids(self, split: str, num_examples: int, num_graphs: int, data_rng: spec.RandomState) -> np.ndarray:
        if split != "eval_train":
            return np.arange(min(num_examples, num_graphs))
        if self._eval_train_graph_ids is None:
            # Every rank draws the subset itself and evaluates its share of it, so all must draw the same.
            parallel.check_same_seed_on_every_rank(data_rng, "the eval_train seed")
            rng = np.random.RandomState(int(data_rng[0]) % 2**32)
            self._eval_train_graph_ids = np.sort(rng.choice(num_graphs, min(num_examples, num_graphs), replace=False))
        return self._eval_train_graph_ids

    def _eval_pass(
        self, split: str, num_examples: int, global_batch_size: int, data_dir: str, data_rng: spec.RandomState
    ) -> Iterator[Dict[str, spec.Tensor]]:
        world = parallel.current_world()
        graphs = load_split(self.dataset_dir(data_dir), "train" if split == "eval_train" else split)
        graph_ids = self._eval_graph_ids(split, num_examples, graphs.num_graphs, data_rng)
        batches = input_pipeline.eval_batches(graphs, graph_ids, global_batch_size, world.num_shards, world.shard_index)
        return input_pipeline.device_batches(batches, world.device, background=False)

    # --- model -----------------------------------------------------------------
    def init_model_fn(
        self, rng: spec.RandomState, dropout_rate: Optional[float] = None, aux_dropout_rate: Optional[float] = None
    ) -> spec.ModelInitState:
        del dropout_rate, aux_dropout_rate  # dropout is chosen per model_fn call (v0.5 runs: fix_dropout_at_init)
        torch.random.manual_seed(int(rng[0]))
        model = GNN(
            num_outputs=self.NUM_OUTPUTS,
            activation_fn_name=self.activation_fn_name,
            latent_dim=self.latent_dim,
            hidden_dims=self.hidden_dims,
            num_message_passing_steps=self.num_message_passing_steps,
        )
        return self._adopt_model(model), None

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key in ("decoder.weight", "decoder.bias")

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
        del rng, update_batch_norm  # no batch norm in this model
        if model_state is not None:
            raise ValueError(f"Expected model_state to be None, received {model_state}.")
        dropout_rate = self._dropout_rate_or_default(dropout_rate, DROPOUT_RATE)
        model = params
        if mode == spec.ForwardPassMode.TRAIN:
            model.train()
        elif mode == spec.ForwardPassMode.EVAL:
            model.eval()
        context = torch.no_grad if mode == spec.ForwardPassMode.EVAL else contextlib.nullcontext
        with context():
            logits = model(augmented_and_preprocessed_input_batch["inputs"], dropout_rate=dropout_rate)
        return logits, None

    def loss_fn(
        self,
        label_batch: spec.Tensor,
        logits_batch: spec.Tensor,
        mask_batch: Optional[spec.Tensor] = None,
        label_smoothing: float = 0.0,
    ) -> Dict[str, spec.Tensor]:
        """Masked sigmoid cross-entropy; `per_example` holds the (G, 128) per-label losses, as upstream."""
        mask = mask_batch if mask_batch is not None else torch.ones_like(label_batch, dtype=torch.bool)
        per_label = sigmoid_cross_entropy(label_batch, logits_batch, mask, label_smoothing)
        # Upstream counts valid labels under a mask, but rows (molecules) without one.
        n_valid = mask_batch.sum() if mask_batch is not None else torch.tensor(len(per_label), device=per_label.device)
        return {"summed": per_label.sum(), "n_valid_examples": n_valid, "per_example": per_label}

    # --- evaluation ------------------------------------------------------------
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
        """One full pass over the split's `num_examples` molecules; metrics over their valid labels."""
        del model_state, global_step
        data_rng, _ = prng.split(rng, 2)
        totals = EvalTotals()
        for batch in self._eval_pass(split, num_examples, global_batch_size, data_dir, data_rng):
            logits, _ = self.model_fn(params, batch, None, spec.ForwardPassMode.EVAL, None, update_batch_norm=False)
            per_label = self.loss_fn(batch["targets"], logits, batch["weights"])["per_example"]
            totals.add(logits, batch["targets"], batch["weights"], per_label)
        return totals.compute()


class OgbgGeluWorkload(OgbgWorkload):
    name = "ogbg_gelu"

    @property
    def activation_fn_name(self) -> str:
        return "gelu"


class OgbgSiluWorkload(OgbgWorkload):
    name = "ogbg_silu"

    @property
    def activation_fn_name(self) -> str:
        return "silu"


class OgbgModelSizeWorkload(OgbgWorkload):
    """A narrower latent (128), a deeper MLP (256, 256) and 3 message-passing steps: 2,571,648 parameters."""

    name = "ogbg_model_size"

    @property
    def hidden_dims(self) -> Tuple[int, ...]:
        return (256, 256)

    @property
    def latent_dim(self) -> int:
        return 128

    @property
    def num_message_passing_steps(self) -> int:
        return 3
