"""Mixup (Zhang et al. 2017, arXiv:1710.09412) as the reference's PyTorch ViT workload applies it (reference §4.5).

Upstream: `mixup_pytorch` in algoperf/data_utils.py, called by `data_utils.cycle(...,
use_mixup=True, mixup_alpha=0.2)` on every train batch after PrefetchedWrapper has moved it
to the device, so under DDP each rank mixes its own per-device batch. One weight per batch,
lambda ~ Beta(0.2, 0.2), drawn by `torch.distributions.Beta(alpha, alpha).sample()` from
torch's global (CPU) RNG; each image is mixed with its neighbour in the batch,
torch.roll(x, 1, dims=0), so row i pairs with row i - 1 and row 0 with the last row:

    inputs  = lambda * inputs + (1 - lambda) * roll(inputs)
    targets = lambda * one_hot(targets, 1000) + (1 - lambda) * roll(one_hot(targets, 1000))

The targets become float32 soft labels of shape (B, 1000); the ResNet workload's loss,
F.cross_entropy(logits, targets, reduction='none', label_smoothing=ls), takes them as class
probabilities (smoothing then mixes them with the uniform distribution).

`generator=None` keeps upstream's draw exactly; a torch.Generator (CPU) draws the same Beta
sample from its own stream instead (the same values as the global RNG in the same state).
"""

from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F

from workloads.imagenet.input_pipeline import NUM_CLASSES

MIXUP_ALPHA = 0.2  # both Beta concentrations; upstream's mixup_alpha for the ViT workloads


def draw_mixup_weight(alpha: float = MIXUP_ALPHA, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """lambda ~ Beta(alpha, alpha), a float32 0-d CPU tensor."""
    if generator is None:
        return torch.distributions.Beta(alpha, alpha).sample()
    # Beta.sample() is the first component of this Dirichlet draw; only the op takes a generator
    concentration = torch.tensor([alpha, alpha], dtype=torch.float32)
    return torch._sample_dirichlet(concentration, generator=generator)[0]


def mix(
    batch: Dict[str, torch.Tensor], weight: torch.Tensor, num_classes: int = NUM_CLASSES
) -> Dict[str, torch.Tensor]:
    """The batch with inputs and one-hot targets mixed with their neighbours, row i with row i - 1."""
    inputs, labels = batch["inputs"], batch["targets"]
    if labels.dim() != 1 or labels.is_floating_point():
        raise ValueError(f"mixup takes (B,) integer class ids as targets, got {labels.dtype} {tuple(labels.shape)}")
    targets = F.one_hot(labels, num_classes=num_classes)  # (B, num_classes) int64; times weight gives float32
    mixed = dict(batch)
    mixed["inputs"] = weight * inputs + (1.0 - weight) * torch.roll(inputs, 1, dims=0)
    mixed["targets"] = weight * targets + (1.0 - weight) * torch.roll(targets, 1, dims=0)
    return mixed


def mixup(
    batch: Dict[str, torch.Tensor],
    alpha: float = MIXUP_ALPHA,
    num_classes: int = NUM_CLASSES,
    generator: Optional[torch.Generator] = None,
) -> Dict[str, torch.Tensor]:
    """Mixup of one per-device train batch {'inputs': (B, 3, H, W), 'targets': (B,) ids}; other keys pass through."""
    return mix(batch, draw_mixup_weight(alpha, generator), num_classes)
