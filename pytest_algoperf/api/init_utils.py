"""Upstream's default layer initialisation (reference §2.7)."""

import math

from torch import nn

# std of a standard normal truncated to [-2, 2]; dividing by it restores unit variance.
TRUNCATED_NORMAL_STDDEV = 0.87962566103423978


def pytorch_default_init(module: nn.Module) -> None:
    """LeCun-normal, truncated at two standard deviations; zero bias."""
    fan_in = module.weight[0].numel()  # in_features, or in_channels x kernel area
    std = math.sqrt(1.0 / fan_in) / TRUNCATED_NORMAL_STDDEV
    nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
    if getattr(module, "bias", None) is not None:
        nn.init.constant_(module.bias, 0.0)
