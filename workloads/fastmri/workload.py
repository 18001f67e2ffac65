"""AlgoPerf's fastMRI workload and its variants (reference §4.3, §5): knee MRI reconstruction with a U-Net.

The model maps the zero-filled reconstruction of 4x under-sampled k-space to
the fully sampled image, both normalised by the input slice's mean and std.
Training minimises the mean absolute error per slice; the target metric is
SSIM on the original intensity scale (ssim.py). Variants change only the
model (model.py); they share the base workload's data, budgets and eval period.
"""

from __future__ import annotations

import contextlib
import math
from typing import Dict, Iterator, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from pytest_algoperf.api import random_utils as prng
from pytest_algoperf.api import spec
from workloads import parallel
from workloads.base import BenchmarkWorkload
from workloads.fastmri.model import DROPOUT_RATE, UNet
from workloads.fastmri.ssim import summed_ssim

DATASET_NAME = "fastmri"  # every variant reads the same prepared data
EVAL_SPLITS = ("eval_train", "validation", "test")


class FastMRIWorkload(BenchmarkWorkload):
    """U-Net on fastMRI knee single-coil; targets, budget (4,430 s; v0.5 8,859 s) and step hint: scoring/versions/*.json."""

    name = "fastmri"
    # Slices per split: all training volumes; the first 100 sorted validation volumes; the other 99.
    REFERENCE_COUNTS = {"train": 34_742, "validation": 3_554, "test": 3_581}
    # A 320x320 U-Net step costs about 1.6 s per slice on one CPU core: two slices keep the smoke gate short.
    SMOKE_BATCH_SIZE = 2

    # --- model choices the variants change ------------------------------------------------
    @property
    def num_pool_layers(self) -> int:
        return 4

    @property
    def num_channels(self) -> int:
        return 32

    @property
    def use_tanh(self) -> bool:
        return False

    @property
    def use_layer_norm(self) -> bool:
        return False

    # --- constants ----------------------------------------------------------------------------
    @property
    def loss_type(self) -> spec.LossType:
        return spec.LossType.MEAN_ABSOLUTE_ERROR

    @property
    def eval_batch_size(self) -> int:
        return 256

    @property
    def center_fractions(self) -> Tuple[float, ...]:
        return (0.08,)  # fraction of central k-space columns always kept

    @property
    def accelerations(self) -> Tuple[int, ...]:
        return (4,)  # under-sampling factor of the k-space mask

    # --- data ----------------------------------------------------------------------------------
    @property
    def dataset_name(self) -> str:
        return DATASET_NAME

    def preparation_command(self, data_dir: str) -> str:
        return f"python -m workloads.fastmri.prepare --data-dir {data_dir} --raw-dir RAW"

    def _split_examples(self, split: str) -> Optional[int]:
        return {
            "eval_train": self.num_eval_train_examples,
            "validation": self.num_validation_examples,
            "test": self.num_test_examples,
        }.get(split)

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
        """Train: shuffled, repeated global batches. Eval splits: padded batches with `weights`, repeated if asked."""
        from workloads.fastmri import input_pipeline

        world = parallel.current_world()
        world.local_batch_size(global_batch_size)  # under DDP: fails here, with the fix, when ranks do not divide it
        # Every rank plans the same global batches (one seed) and computes only its own block of rows,
        # the rows upstream's rank 0 would broadcast to it; a single process, DataParallel included,
        # gets whole global batches. Eval padding sits at the end of the global batch, so each
        # rank's real rows come first in its block.
        shard, num_shards = (world.rank, world.num_shards) if world.use_ddp else (0, 1)
        batches = input_pipeline.numpy_batches(
            self.dataset_dir(data_dir),
            split,
            global_batch_size,
            seed=int(data_rng[0]),
            repeat=True if split == "train" else bool(repeat_final_dataset),
            num_batches=num_batches,
            num_examples=self._split_examples(split),
            shard=shard,
            num_shards=num_shards,
            cache=cache,
        )
        return _torch_batches(batches, world.device)

    # --- model -------------------------------------------------------------------------------
    def build_model(self) -> UNet:
        """The variant's U-Net, initialised on the current default device (use 'meta' to count parameters)."""
        return UNet(
            num_channels=self.num_channels,
            num_pool_layers=self.num_pool_layers,
            use_tanh=self.use_tanh,
            use_layer_norm=self.use_layer_norm,
        )

    def init_model_fn(
        self, rng: spec.RandomState, dropout_rate: Optional[float] = None, aux_dropout_rate: Optional[float] = None
    ) -> spec.ModelInitState:
        del dropout_rate, aux_dropout_rate  # dropout is chosen per model_fn call (v0.5 runs: fix_dropout_at_init)
        torch.random.manual_seed(int(rng[0]))
        model = self.build_model()
        return self._adopt_model(model), None

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        # Upstream's keys for every variant; fastmri_model_size (3 levels) has no `up_conv.3`, so
        # there upstream names no parameter at all. Kept as is.
        return param_key in ("up_conv.3.1.weight", "up_conv.3.1.bias")

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
        del model_state, rng, update_batch_norm  # no batch norm, no model state
        dropout_rate = self._dropout_rate_or_default(dropout_rate, DROPOUT_RATE)
        model = params
        model.train(mode == spec.ForwardPassMode.TRAIN)
        context = torch.no_grad if mode == spec.ForwardPassMode.EVAL else contextlib.nullcontext
        with context():
            inputs = augmented_and_preprocessed_input_batch["inputs"]  # (B, 320, 320)
            outputs = model(inputs.unsqueeze(1), dropout_rate=dropout_rate).squeeze(1)  # (B, 320, 320)
        return outputs, None

    def loss_fn(
        self,
        label_batch: spec.Tensor,
        logits_batch: spec.Tensor,
        mask_batch: Optional[spec.Tensor] = None,
        label_smoothing: float = 0.0,
    ) -> Dict[str, spec.Tensor]:
        """Mean absolute error per slice (B,), times the (B,) mask; no regularisation, not synced across ranks."""
        del label_smoothing
        per_example = F.l1_loss(logits_batch, label_batch, reduction="none").mean(dim=(1, 2))
        if mask_batch is not None:
            per_example = per_example * mask_batch
            n_valid = mask_batch.sum()
        else:
            n_valid = torch.tensor(len(per_example), device=per_example.device)
        return {"summed": per_example.sum(), "n_valid_examples": torch.as_tensor(n_valid), "per_example": per_example}

    # --- evaluation ----------------------------------------------------------------------------
    def _eval_batch_sums(self, params: spec.ParameterContainer, batch: Dict[str, spec.Tensor]) -> torch.Tensor:
        """[summed SSIM, summed loss] over the batch's real slices, in float64."""
        outputs, _ = self.model_fn(params, batch, None, spec.ForwardPassMode.EVAL, None, update_batch_norm=False)
        weights = batch.get("weights")
        if weights is None:
            weights = torch.ones(len(outputs), device=outputs.device)
        ssim_sum = summed_ssim(outputs, batch["targets"], batch["mean"], batch["std"], batch["volume_max"], weights)
        loss_sum = self.loss_fn(batch["targets"], outputs, weights)["summed"]
        return torch.stack([ssim_sum.double(), loss_sum.double()])

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
        num_batches = math.ceil(num_examples / global_batch_size)
        batches = self._cached_eval_batches(split, data_rng, data_dir, global_batch_size, num_batches)
        totals = torch.zeros(2, dtype=torch.float64, device=parallel.current_world().device)
        for _ in range(num_batches):
            totals += self._eval_batch_sums(params, next(batches))
        # Each rank summed over its own rows; the split's totals are the sums over all ranks.
        ssim_total, loss_total = parallel.all_reduce_sum(totals).tolist()
        return {"ssim": ssim_total / num_examples, "loss": loss_total / num_examples}


class FastMRIModelSizeWorkload(FastMRIWorkload):
    """Three U-Net levels of 64, 128, 256 channels (bottleneck 512): 7,692,929 parameters."""

    name = "fastmri_model_size"

    @property
    def num_pool_layers(self) -> int:
        return 3

    @property
    def num_channels(self) -> int:
        return 64


class FastMRITanhWorkload(FastMRIWorkload):
    """Tanh in place of every LeakyReLU."""

    name = "fastmri_tanh"

    @property
    def use_tanh(self) -> bool:
        return True


class FastMRILayerNormWorkload(FastMRIWorkload):
    """GroupNorm(1 group, eps 1e-6) in place of the ConvBlocks' InstanceNorm: 7,761,985 parameters."""

    name = "fastmri_layernorm"

    @property
    def use_layer_norm(self) -> bool:
        return True


def _torch_batches(numpy_batches: Iterator[Dict[str, np.ndarray]], device: torch.device) -> Iterator[Dict[str, torch.Tensor]]:
    """Each numpy batch as tensors on `device`, floats as float32 (pinned and copied asynchronously on CUDA)."""
    non_blocking = device.type == "cuda"
    for batch in numpy_batches:
        tensors = {}
        for key, value in batch.items():
            value = np.ascontiguousarray(value)
            if np.issubdtype(value.dtype, np.floating):
                value = value.astype(np.float32, copy=False)
            tensor = torch.from_numpy(value)
            if non_blocking:
                tensor = tensor.pin_memory()
            tensors[key] = tensor.to(device, non_blocking=non_blocking)
        yield tensors
