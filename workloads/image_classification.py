"""What the image-classification workloads share: the forward pass, the loss and the evaluation.

imagenet_resnet, imagenet_vit and cifar all classify images into integer classes with a
softmax cross-entropy, report `accuracy` and `loss` per split, and follow upstream's
PyTorch semantics:

  model_fn   EVAL runs under no_grad with module.eval(); asking to update batch-norm
             statistics there is an error. TRAIN with update_batch_norm=False freezes the BN
             running statistics (momentum 0) while still normalising with batch statistics.
             Models without BN (the ViT) ignore update_batch_norm, as upstream's.
  loss_fn    per-example cross-entropy with the caller's label smoothing, times the mask;
             targets may be class ids (B,) or class probabilities (B, C) (mixup's soft labels).
             No regularisation, nothing synced across ranks.
  eval       over ceil(n / global batch) padded batches: correct predictions and summed loss
             weighted by `weights`, summed over ranks, divided by the split's size.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from pytest_algoperf.api import pytorch_utils
from pytest_algoperf.api import random_utils as prng
from pytest_algoperf.api import spec
from workloads.base import BenchmarkWorkload


class ImageClassificationWorkload(BenchmarkWorkload):
    """A BenchmarkWorkload whose model maps (B, 3, H, W) images to (B, num_classes) logits."""

    # ResNets normalise with batch statistics; the ViT has none, and upstream's ViT model_fn then
    # ignores update_batch_norm altogether.
    HAS_BATCH_NORM = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.eval_num_workers = 0  # DataLoader workers for eval batches (see BenchmarkWorkload._dataloader_workers)

    @property
    def loss_type(self) -> spec.LossType:
        return spec.LossType.SOFTMAX_CROSS_ENTROPY

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
        """Logits (B, num_classes); the model's state (BN statistics) lives in the module."""
        del model_state, rng
        model = params
        if mode == spec.ForwardPassMode.EVAL:
            if update_batch_norm and self.HAS_BATCH_NORM:
                raise ValueError(
                    "model_fn: batch-norm statistics cannot be updated in EVAL mode (pass update_batch_norm=False)"
                )
            model.eval()
        else:
            model.train()
            if self.HAS_BATCH_NORM:
                model.apply(functools.partial(pytorch_utils.update_batch_norm_fn, update_batch_norm=update_batch_norm))
        context = torch.no_grad if mode == spec.ForwardPassMode.EVAL else contextlib.nullcontext
        with context():
            logits = self._forward(model, augmented_and_preprocessed_input_batch["inputs"], dropout_rate)
        return logits, None

    def _forward(self, model: torch.nn.Module, inputs: torch.Tensor, dropout_rate: Optional[float]) -> torch.Tensor:
        """The model on a batch; models with dropout take the call's rate (the ResNets have none)."""
        del dropout_rate
        return model(inputs)

    def loss_fn(
        self,
        label_batch: spec.Tensor,
        logits_batch: spec.Tensor,
        mask_batch: Optional[spec.Tensor] = None,
        label_smoothing: float = 0.0,
    ) -> Dict[str, spec.Tensor]:
        """Cross-entropy per image (B,) against class ids (B,) or class probabilities (B, C), times the (B,) mask."""
        per_example = F.cross_entropy(logits_batch, label_batch, reduction="none", label_smoothing=label_smoothing)
        if mask_batch is not None:
            per_example = per_example * mask_batch
            n_valid = mask_batch.sum()
        else:
            n_valid = torch.tensor(len(per_example), device=per_example.device)
        return {"summed": per_example.sum(), "n_valid_examples": torch.as_tensor(n_valid), "per_example": per_example}

    def _eval_batch_sums(self, params: spec.ParameterContainer, batch: Dict[str, spec.Tensor]) -> torch.Tensor:
        """[correct predictions, summed loss] over the batch's real images, in float64."""
        logits, _ = self.model_fn(params, batch, None, spec.ForwardPassMode.EVAL, None, update_batch_norm=False)
        weights = batch.get("weights")
        if weights is None:
            weights = torch.ones(len(logits), device=logits.device)
        correct = ((logits.argmax(dim=1) == batch["targets"]) * weights).sum()
        summed_loss = self.loss_fn(batch["targets"], logits, weights)["summed"]
        return torch.stack([correct.double(), summed_loss.double()])

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
        batch_sums = functools.partial(self._eval_batch_sums, params)
        correct, loss = self._summed_over_split(split, num_examples, global_batch_size, data_rng, data_dir, batch_sums, 2)
        return {"accuracy": correct / num_examples, "loss": loss / num_examples}
