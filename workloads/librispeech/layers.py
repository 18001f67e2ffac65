"""Layers the two LibriSpeech models share, as upstream's DeepSpeech borrows them from its Conformer.

LayerNorm stores its gain as an offset `scale` from 1 (initialised to 0, so the norm starts
as a plain LayerNorm) beside a zero `bias`, eps 1e-6; the parameter names are upstream's, so
the AlgoPerf parameter-type rules read them as layer-norm scale and bias. `initialize` is
upstream's `models.initialize`: xavier-uniform weights and zero biases for every Linear and
Conv1d, in module order; every other layer keeps its own initialisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

LAYER_NORM_EPS = 1e-6


class LayerNorm(nn.Module):
    """LayerNorm over the last axis with weight 1 + scale (biased variance, as upstream's)."""

    def __init__(self, dim: int, epsilon: float = LAYER_NORM_EPS) -> None:
        super().__init__()
        self.dim = dim
        self.epsilon = epsilon
        self.scale = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (..., dim)
        return F.layer_norm(x, (self.dim,), 1 + self.scale, self.bias, self.epsilon)


def initialize(model: nn.Module) -> None:
    """Xavier-uniform weights and zero biases for every Linear and Conv1d (lazy layers materialised first)."""
    for module in model.modules():  # depth-first in registration order, upstream's recursion
        if isinstance(module, nn.modules.lazy.LazyModuleMixin) and module.has_uninitialized_params():
            raise RuntimeError("initialize() needs the lazy layers materialised first (materialize_lazy_layers)")
        if isinstance(module, (nn.Linear, nn.Conv1d)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
