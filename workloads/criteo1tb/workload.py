"""AlgoPerf's Criteo 1TB click-through workload (DLRM-small) and its variants (reference §4.2, §5)."""

from __future__ import annotations

import contextlib
import math
from typing import Dict, Iterator, Optional, Tuple

import torch
import torch.nn.functional as F

from pytest_algoperf.api import spec
from workloads import parallel
from workloads.base import BenchmarkWorkload
from workloads.criteo1tb import input_pipeline, prepared_data
from workloads.criteo1tb.model import DROPOUT_RATE, DLRMResNet, DlrmSmall
from workloads.criteo1tb.tsv_format import NUM_DENSE_FEATURES


class Criteo1TbWorkload(BenchmarkWorkload):
    """DLRM-small on Criteo 1TB; targets, budget (7,703 s) and step hint (10,666): scoring/versions/*.json."""

    name = "criteo1tb"
    REFERENCE_COUNTS = prepared_data.REFERENCE_COUNTS

    vocab_size: int = 32 * 128 * 1024  # 4,194,304 embedding rows
    num_dense_features: int = NUM_DENSE_FEATURES
    mlp_bottom_dims: Tuple[int, ...] = (512, 256, 128)
    mlp_top_dims: Tuple[int, ...] = (1024, 1024, 512, 256, 1)
    embed_dim: int = 128

    # --- model choices the variants change ----------------------------------------
    @property
    def use_layer_norm(self) -> bool:
        return False

    @property
    def use_resnet(self) -> bool:
        return False

    @property
    def embedding_init_multiplier(self) -> Optional[float]:
        return None  # None: 1 / sqrt(vocab_size)

    # --- constants -------------------------------------------------------------------
    @property
    def loss_type(self) -> spec.LossType:
        return spec.LossType.SIGMOID_CROSS_ENTROPY

    @property
    def eval_batch_size(self) -> int:
        return 8_192  # PyTorch's; upstream's JAX workload evaluates in batches of 131,072

    # --- data ----------------------------------------------------------------------------
    @property
    def dataset_name(self) -> str:
        return prepared_data.DATASET_NAME  # every variant reads the same prepared data

    def preparation_command(self, data_dir: str) -> str:
        return f"python -m workloads.criteo1tb.prepare --data-dir {data_dir} --raw-dir {data_dir}/{prepared_data.RAW_DIR_NAME}"

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
        del cache  # nothing to cache: batches are copied from memory-mapped arrays
        world = parallel.current_world()
        parallel.check_same_seed_on_every_rank(data_rng, world=world)
        # Under DDP each rank reads block `rank` of every (padded) global batch, which upstream's rank 0
        # would broadcast to it; a single process, DataParallel included, reads whole global batches.
        shard, num_shards = (world.rank, world.num_shards) if world.use_ddp else (0, 1)
        return input_pipeline.torch_batches(
            self.dataset_dir(data_dir), split, global_batch_size, int(data_rng[0]), world.device,
            num_batches=num_batches, repeat=bool(repeat_final_dataset), shard=shard, num_shards=num_shards,
        )

    # --- model -----------------------------------------------------------------------------
    def build_model(self) -> torch.nn.Module:
        """The variant's model, initialised on the current default device (use 'meta' to count parameters)."""
        if self.use_resnet:
            return DLRMResNet(
                vocab_size=self.vocab_size, num_dense_features=self.num_dense_features,
                mlp_bottom_dims=self.mlp_bottom_dims, mlp_top_dims=self.mlp_top_dims, embed_dim=self.embed_dim,
            )
        return DlrmSmall(
            vocab_size=self.vocab_size, num_dense_features=self.num_dense_features,
            mlp_bottom_dims=self.mlp_bottom_dims, mlp_top_dims=self.mlp_top_dims, embed_dim=self.embed_dim,
            use_layer_norm=self.use_layer_norm, embedding_init_multiplier=self.embedding_init_multiplier,
        )

    def init_model_fn(
        self, rng: spec.RandomState, dropout_rate: Optional[float] = None, aux_dropout_rate: Optional[float] = None
    ) -> spec.ModelInitState:
        del dropout_rate, aux_dropout_rate  # dropout is chosen per model_fn call
        torch.random.manual_seed(int(rng[0]))
        torch.backends.cudnn.benchmark = False  # upstream turns it off for this workload (memory)
        model = self.build_model()
        return self._adopt_model(model), None

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        # Upstream's keys, kept as they are: `top_mlp.4` is the third top layer, not the output layer.
        return param_key in ("top_mlp.4.weight", "top_mlp.4.bias")

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
            logits = model(augmented_and_preprocessed_input_batch["inputs"], dropout_rate=dropout_rate)
        return logits, None

    def loss_fn(
        self,
        label_batch: spec.Tensor,
        logits_batch: spec.Tensor,
        mask_batch: Optional[spec.Tensor] = None,
        label_smoothing: float = 0.0,
    ) -> Dict[str, spec.Tensor]:
        """Per-example sigmoid cross-entropy; upstream's PyTorch workload ignores label smoothing here."""
        del label_smoothing
        batch_size = label_batch.shape[0]
        labels = label_batch.reshape(batch_size)
        logits = logits_batch.reshape(batch_size)
        per_example = -(labels * F.logsigmoid(logits) + (1 - labels) * F.logsigmoid(-logits))
        if mask_batch is not None:
            mask = mask_batch.reshape(batch_size)
            per_example = per_example * mask
            n_valid = mask.sum()
        else:
            n_valid = torch.tensor(batch_size, device=per_example.device)
        return {"summed": per_example.sum(), "n_valid_examples": torch.as_tensor(n_valid), "per_example": per_example}

    # --- evaluation ------------------------------------------------------------------------
    def _eval_batch(self, params: spec.ParameterContainer, batch: Dict[str, spec.Tensor]) -> torch.Tensor:
        logits, _ = self.model_fn(params, batch, None, spec.ForwardPassMode.EVAL, None, update_batch_norm=False)
        summed = self.loss_fn(batch["targets"], logits, batch["weights"])["summed"]
        return summed.to(torch.float64)

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
        num_batches = math.ceil(num_examples / global_batch_size)
        # Upstream seeds eval_train's file order with the first eval's rng.
        batches = self._cached_eval_batches(split, rng, data_dir, global_batch_size, num_batches)
        total = None
        for _ in range(num_batches):
            summed = self._eval_batch(params, next(batches))
            total = summed if total is None else total + summed  # stays on the device: one sync per split
        # Each rank summed its own rows; the split's loss sums over all ranks.
        return {"loss": parallel.all_reduce_sum(total).item() / num_examples}


class Criteo1TbTestWorkload(Criteo1TbWorkload):
    """Development variant with a 65,536-row table (32 * 128 * 16), small enough for a CPU."""

    name = "criteo1tb_test"
    vocab_size = 32 * 128 * 16


class Criteo1TbLayerNormWorkload(Criteo1TbWorkload):
    name = "criteo1tb_layernorm"

    @property
    def use_layer_norm(self) -> bool:
        return True


class Criteo1TbEmbedInitWorkload(Criteo1TbWorkload):
    name = "criteo1tb_embed_init"

    @property
    def embedding_init_multiplier(self) -> Optional[float]:
        return 1.0


class Criteo1TbResNetWorkload(Criteo1TbWorkload):
    name = "criteo1tb_resnet"
    mlp_bottom_dims = (256, 256, 256)
    mlp_top_dims = (256, 256, 256, 256, 1)

    @property
    def use_resnet(self) -> bool:
        return True
