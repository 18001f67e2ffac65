"""AlgoPerf's CIFAR-10 development workload (reference §4.10): ResNet-18 on 32 x 32 images.

A development workload: it is never part of the benchmark score (its registry entry is
marked `dev`), but it runs like any other, so a submission can be tried on a real image
task in minutes. Numbers as upstream: validation and test accuracy targets 0.85, a
3,600 s budget, evaluation every 600 s, 45,000 / 5,000 / 10,000 images, eval batch 1,024
and a step hint of 4,883 (100 epochs at batch 1,024; upstream never ran target setting on
it). Data (prepare.py, input_pipeline.py) are torchvision's CIFAR-10 python pickles;
model_fn, loss_fn and the evaluation are shared with the ImageNet workloads
(workloads/image_classification.py).
"""

from __future__ import annotations

from typing import Dict, Iterator, Optional, Tuple

import torch

from pytest_algoperf.api import spec
from workloads import parallel
from workloads.cifar import input_pipeline
from workloads.cifar.model import resnet18
from workloads.image_classification import ImageClassificationWorkload


class CifarWorkload(ImageClassificationWorkload):
    """ResNet-18 on CIFAR-10; targets, budget and step hint: scoring/versions/*.json."""

    name = "cifar"
    REFERENCE_COUNTS = dict(input_pipeline.REFERENCE_COUNTS)

    @property
    def eval_batch_size(self) -> int:
        return input_pipeline.EVAL_BATCH_SIZE

    @property
    def num_classes(self) -> int:
        return input_pipeline.NUM_CLASSES

    @property
    def train_mean(self) -> Tuple[float, float, float]:
        return input_pipeline.TRAIN_MEAN  # per-channel means of the training images, on the [0, 1] scale

    @property
    def train_stddev(self) -> Tuple[float, float, float]:
        return input_pipeline.TRAIN_STDDEV

    @property
    def crop_size(self) -> int:
        return input_pipeline.CROP_SIZE

    @property
    def padding_size(self) -> int:
        return input_pipeline.CROP_PADDING

    @property
    def dataset_name(self) -> str:
        return input_pipeline.DATASET_NAME

    def preparation_command(self, data_dir: str) -> str:
        return f"python -m workloads.cifar.prepare --data-dir {data_dir} --raw-dir RAW"

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
        repeated with repeat_final_dataset (as the evals read them, like upstream's cycled loaders)."""
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
            repeat=bool(repeat_final_dataset),
        )

    def init_model_fn(
        self, rng: spec.RandomState, dropout_rate: Optional[float] = None, aux_dropout_rate: Optional[float] = None
    ) -> spec.ModelInitState:
        del dropout_rate, aux_dropout_rate  # ResNet-18 has no dropout
        if hasattr(self, "_model"):
            # Upstream quirk kept: a second init re-initialises the same module in place
            # (from torch's current RNG state, not from `rng`).
            parallel.unwrap_model(self._model).reset_parameters()
            return self._model, None
        torch.random.manual_seed(int(rng[0]))
        self._model = self._adopt_model(resnet18(num_classes=self.num_classes))
        return self._model, None

    def is_output_params(self, param_key: spec.ParameterKey) -> bool:
        return param_key in ("fc.weight", "fc.bias")
