"""AlgoPerf's ImageNet ResNet-50 workload and its variants (reference §4.1, §4.4, §5).

ILSVRC 2012 classification with a torchvision-layout ResNet-50 (model.py). The data
layer (prepared ImageFolder dirs, transforms, batches) is shared with the ViT workload
and lives in workloads/imagenet/. Train, eval_train and validation follow upstream's
torchvision pipeline; the test split is ImageNet-v2 (matched frequency) with the
reference's TF-style eval crop. Variants change only the model (activation or the
initial scale of each residual branch's last BN); they share the base workload's
data, budget, step hint and eval period. model_fn, loss_fn and the evaluation are the
image-classification workloads' shared ones (workloads/image_classification.py).
"""

from __future__ import annotations

from typing import Dict, Iterator, Optional, Tuple

import torch

from pytest_algoperf.api import spec
from workloads import parallel
from workloads.image_classification import ImageClassificationWorkload
from workloads.imagenet import input_pipeline, transforms
from workloads.imagenet_resnet.model import ResNet, resnet50


class ImagenetResNetWorkload(ImageClassificationWorkload):
    """ResNet-50 on ImageNet; targets, budget (66,159 s; v0.5 63,008 s) and step hint: scoring/versions/*.json."""

    name = "imagenet_resnet"
    # Images per split of the prepared manifest: ILSVRC 2012 train and val, ImageNet-v2 as test.
    REFERENCE_COUNTS = dict(input_pipeline.REFERENCE_COUNTS)
    # A 224x224 ResNet-50 step is slow on a CPU (~4 GFLOPs forward per image): two keep the smoke gate short.
    SMOKE_BATCH_SIZE = 2

    # --- model choices the variants change ------------------------------------------------
    @property
    def use_silu(self) -> bool:
        return False

    @property
    def use_gelu(self) -> bool:
        return False

    @property
    def bn_init_scale(self) -> float:
        return 0.0  # each block starts as the identity (Goyal et al. 2017)

    # --- constants ----------------------------------------------------------------------------
    @property
    def eval_batch_size(self) -> int:
        return 1024

    @property
    def num_classes(self) -> int:
        return input_pipeline.NUM_CLASSES

    @property
    def train_mean(self) -> Tuple[float, float, float]:
        return transforms.TRAIN_MEAN  # (0.485, 0.456, 0.406) x 255: RGB means on the 0-255 scale

    @property
    def train_stddev(self) -> Tuple[float, float, float]:
        return transforms.TRAIN_STDDEV  # (0.229, 0.224, 0.225) x 255

    @property
    def center_crop_size(self) -> int:
        return transforms.CENTER_CROP_SIZE

    @property
    def resize_size(self) -> int:
        return transforms.RESIZE_SIZE

    @property
    def input_shape(self) -> Tuple[int, int, int]:
        return (224, 224, 3)  # upstream's (H, W, C); batches are NCHW

    @property
    def scale_ratio_range(self) -> Tuple[float, float]:
        return transforms.SCALE_RATIO_RANGE

    @property
    def aspect_ratio_range(self) -> Tuple[float, float]:
        return transforms.ASPECT_RATIO_RANGE

    # --- data ----------------------------------------------------------------------------------
    @property
    def dataset_name(self) -> str:
        return input_pipeline.DATASET_NAME  # every variant, and the ViT workload, read the same data

    def preparation_command(self, data_dir: str) -> str:
        return f"python -m workloads.imagenet.prepare --data-dir {data_dir} --raw-dir RAW"

    def _extra_train_ops(self) -> Tuple:
        """Per-image ops after the train crop and flip (none here; the ViT workload adds RandAugment)."""
        return ()

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
        """Train: endless shuffled batches. Eval splits: padded batches with `weights`, one pass, or endlessly
        repeated with repeat_final_dataset (as the evals read them, like upstream's cycled loaders).
        Decoded on the GPU when training on one (input_pipeline's decode="auto")."""
        del cache, num_batches
        world = parallel.current_world()
        parallel.check_same_seed_on_every_rank(data_rng, world=world)
        world.local_batch_size(global_batch_size)  # under DDP: fails here, with the fix, when ranks do not divide it
        return input_pipeline.build_input_iterator(
            self.dataset_dir(data_dir),
            split,
            data_rng,
            global_batch_size,
            world,
            num_eval_train_examples=self.num_eval_train_examples,
            num_workers=self._dataloader_workers(split, world),
            extra_train_ops=self._extra_train_ops() if split == "train" else (),
            repeat=bool(repeat_final_dataset),
        )

    # --- model -------------------------------------------------------------------------------
    def build_model(self) -> ResNet:
        """The variant's ResNet-50, initialised on the current default device."""
        if self.use_silu and self.use_gelu:
            raise RuntimeError(f"{type(self).__name__} asks for both SiLU and GELU activations; choose one")
        activation = "silu" if self.use_silu else "gelu" if self.use_gelu else "relu"
        return resnet50(activation=activation, bn_init_scale=self.bn_init_scale, num_classes=self.num_classes)

    def init_model_fn(
        self, rng: spec.RandomState, dropout_rate: Optional[float] = None, aux_dropout_rate: Optional[float] = None
    ) -> spec.ModelInitState:
        del dropout_rate, aux_dropout_rate  # ResNet-50 has no dropout
        torch.random.manual_seed(int(rng[0]))
        model = self.build_model()
        return self._adopt_model(model), None

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key in ("fc.weight", "fc.bias")


class ImagenetResNetSiLUWorkload(ImagenetResNetWorkload):
    """SiLU in place of every ReLU."""

    name = "imagenet_resnet_silu"

    @property
    def use_silu(self) -> bool:
        return True


class ImagenetResNetGELUWorkload(ImagenetResNetWorkload):
    """GELU (tanh approximation) in place of every ReLU."""

    name = "imagenet_resnet_gelu"

    @property
    def use_gelu(self) -> bool:
        return True


class ImagenetResNetLargeBNScaleWorkload(ImagenetResNetWorkload):
    """The last BN gamma of every residual branch starts at 8.0 instead of 0.0."""

    name = "imagenet_resnet_large_bn_init"

    @property
    def bn_init_scale(self) -> float:
        return 8.0
