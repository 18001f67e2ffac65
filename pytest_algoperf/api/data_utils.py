"""Batch padding helpers shared by the input pipelines (reference §2.6)."""

from __future__ import annotations

from typing import Dict, Optional

import numpy as np


def shard_and_maybe_pad_np(
    batch: Dict[str, np.ndarray], padding_value: int = 0, global_batch_size: Optional[int] = None
) -> Dict[str, np.ndarray]:
    """Pads a short final batch to `global_batch_size` and marks real rows in `weights`.

    Rows added here get weight 0, so metrics summed with the weights ignore them.
    For 3-D targets (sequence models) the mask takes the 2-D target shape.
    """
    inputs = batch["inputs"]
    current_size = inputs.shape[0]
    pad_size = 0 if global_batch_size is None else global_batch_size - current_size
    if pad_size <= 0:
        return dict(batch)
    padded = {}
    if "weights" not in batch:
        targets = batch["targets"]
        mask_shape = targets.shape[:2] if targets.ndim == 3 else (current_size,)
        padded["weights"] = np.pad(np.ones(mask_shape, dtype=np.float64), [(0, pad_size)] + [(0, 0)] * (len(mask_shape) - 1))
    for key, value in batch.items():
        pad_width = [(0, pad_size)] + [(0, 0)] * (value.ndim - 1)
        padded[key] = np.pad(value, pad_width, mode="constant", constant_values=padding_value)
    return padded
