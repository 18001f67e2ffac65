"""AlgoPerf's ImageNet ViT-S/16 workload and its variants (reference §4.1, §4.5, §5).

The ResNet workload's task on the same prepared data (workloads/imagenet/: same
preparation command, same folders, no second copy), with a Vision Transformer
(model.py) and the reference's stronger training input: RandAugment (2 ops per image,
after the random crop and flip, workloads/imagenet/randaugment.py) and mixup (alpha 0.2,
on each per-device batch once it is on the device, workloads/imagenet/mixup.py), so
training targets are (B, 1000) soft labels; the loss takes them as class probabilities.
Evaluation is the ResNet's (accuracy and loss, no augmentation), with upstream's eval batch
of 2,048 and an eval every 420 s. As upstream, the model is not compiled (the reference's
runner lists imagenet_vit among the workloads it runs eagerly).

Dropout: 0.0 unless model_fn is given a rate (v0.6); a v0.5 run fixes the rate at init and
applies none to the attention probabilities (model.V05_ATTENTION_DROPOUT_RATE).
Variants change only the model: GLU MLPs, post-LN blocks, or a MAP pooling head.
"""

from __future__ import annotations

from typing import Dict, Iterator, Optional, Tuple

import torch

from pytest_algoperf.api import spec
from workloads.imagenet.mixup import mixup
from workloads.imagenet.randaugment import RandAugment
from workloads.imagenet_resnet.workload import ImagenetResNetWorkload
from workloads.imagenet_vit.model import DROPOUT_RATE, V05_ATTENTION_DROPOUT_RATE, ViT, vit_s16


class ImagenetVitWorkload(ImagenetResNetWorkload):
    """ViT-S/16 on ImageNet; targets, budget (69,768 s; v0.5 77,520 s) and step hint: scoring/versions/*.json."""

    name = "imagenet_vit"
    HAS_BATCH_NORM = False

    # --- model choices the variants change ------------------------------------------------
    @property
    def use_glu(self) -> bool:
        return False

    @property
    def use_post_layer_norm(self) -> bool:
        return False

    @property
    def use_map(self) -> bool:
        return False

    @property
    def eval_batch_size(self) -> int:
        return 2048

    # --- data: the ResNet's, plus RandAugment and mixup for training ----------------------------
    def _extra_train_ops(self) -> Tuple:
        return (RandAugment(),)  # on the PIL image in the workers, or the uint8 tensor on the GPU

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
        batches = super()._build_input_queue(
            data_rng, split, data_dir, global_batch_size, cache, repeat_final_dataset, num_batches
        )
        if split != "train":
            return batches
        return (mixup(batch, num_classes=self.num_classes) for batch in batches)

    # --- model -------------------------------------------------------------------------------
    def build_model(self) -> ViT:
        """The variant's ViT-S/16, initialised on the current default device."""
        return vit_s16(
            num_classes=self.num_classes,
            use_glu=self.use_glu,
            use_post_layer_norm=self.use_post_layer_norm,
            use_map=self.use_map,
        )

    def init_model_fn(
        self, rng: spec.RandomState, dropout_rate: Optional[float] = None, aux_dropout_rate: Optional[float] = None
    ) -> spec.ModelInitState:
        del dropout_rate, aux_dropout_rate  # chosen per model_fn call (v0.5 runs: fix_dropout_at_init)
        torch.random.manual_seed(int(rng[0]))
        return self._adopt_model(self.build_model()), None

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key in ("head.weight", "head.bias")

    def _forward(self, model: torch.nn.Module, inputs: torch.Tensor, dropout_rate: Optional[float]) -> torch.Tensor:
        rate = self._dropout_rate_or_default(dropout_rate, DROPOUT_RATE)
        # v0.5 fixed dropout at init and had none on the attention probabilities; v0.6 applies the rate everywhere.
        attention_rate = V05_ATTENTION_DROPOUT_RATE if dropout_rate is None and self._dropout_fixed_at_init else None
        return model(inputs, dropout_rate=rate, attention_dropout_rate=attention_rate)


class ImagenetVitGluWorkload(ImagenetVitWorkload):
    """GLU MLPs: GELU(linear1(x)) times glu_linear of it."""

    name = "imagenet_vit_glu"

    @property
    def use_glu(self) -> bool:
        return True


class ImagenetVitPostLNWorkload(ImagenetVitWorkload):
    """LayerNorm after each residual sum, no final encoder_norm."""

    name = "imagenet_vit_post_ln"

    @property
    def use_post_layer_norm(self) -> bool:
        return True


class ImagenetVitMapWorkload(ImagenetVitWorkload):
    """Multi-head attention pooling (a learned probe) instead of the mean over tokens."""

    name = "imagenet_vit_map"

    @property
    def use_map(self) -> bool:
        return True
