"""The fastMRI model: a U-Net that maps a zero-filled knee reconstruction to the full one (reference §4.3).

Ronneberger et al. 2015 (arXiv:1505.04597), in the form of the fastMRI
baseline (Zbontar et al. 2018, arXiv:1811.08839): 7,756,097 parameters at the
default size.

    (B, 1, 320, 320)
      down:   ConvBlock 1->32, 32->64, 64->128, 128->256, each followed by 2x2 average pooling
      bottom: ConvBlock 256->512 at 20x20
      up:     per level, TransposeConvBlock (x2 upsampling, halving channels), concatenate the
              skip of the same resolution, ConvBlock back to half the channels;
              the last level ends with a 1x1 convolution 32->1 (the only bias in the model)
    (B, 1, 320, 320)

A ConvBlock is twice [3x3 conv (no bias) -> norm -> activation -> channel dropout];
a TransposeConvBlock is [2x2 stride-2 transposed conv (no bias) -> norm -> activation].
The norm is InstanceNorm2d without affine parameters. The variants change:
  * num_pool_layers / num_channels (fastmri_model_size: 3 levels, 64 channels);
  * the activation: Tanh instead of LeakyReLU(0.2) (fastmri_tanh), everywhere;
  * the ConvBlock norm: GroupNorm with one group (a LayerNorm over C, H, W with a
    per-channel affine), eps 1e-6 (fastmri_layernorm). The TransposeConvBlocks keep
    InstanceNorm2d, as upstream's do.

Attribute names (`down_sample_layers`, `conv`, `up_transpose_conv`, `up_conv`,
`conv_layers`, `layers`) and the index layout of the Sequentials are upstream's:
`is_output_params` names `up_conv.3.1`, and the parameter-type rules read every
name as containing 'conv' (so the GroupNorm parameters count as CONV_WEIGHT / BIAS,
as upstream's do). Construction order is upstream's too, so one seed gives the same
initial weights.
"""

from __future__ import annotations

from typing import Callable, List

import torch
import torch.nn.functional as F
from torch import nn

from pytest_algoperf.api.init_utils import pytorch_default_init
from pytest_algoperf.api.pytorch_utils import CustomDropout2d, SequentialWithDropout

DROPOUT_RATE = 0.0  # upstream's default when model_fn gets no rate
LEAKY_RELU_SLOPE = 0.2  # fastMRI baseline U-Net
GROUP_NORM_EPS = 1e-6  # the Flax LayerNorm default the layernorm variant was set against


def _activation(use_tanh: bool) -> nn.Module:
    return nn.Tanh() if use_tanh else nn.LeakyReLU(negative_slope=LEAKY_RELU_SLOPE, inplace=True)


def _conv_norm(use_layer_norm: bool) -> Callable[[int], nn.Module]:
    if use_layer_norm:
        return lambda channels: nn.GroupNorm(1, channels, eps=GROUP_NORM_EPS)
    return nn.InstanceNorm2d  # no affine parameters, no running statistics


class ConvBlock(nn.Module):
    """Two [3x3 conv -> norm -> activation -> Dropout2d] layers; keeps the spatial size."""

    _supports_custom_dropout = True  # takes the dropout rate from an enclosing SequentialWithDropout

    def __init__(self, in_chans: int, out_chans: int, use_tanh: bool, use_layer_norm: bool) -> None:
        super().__init__()
        norm = _conv_norm(use_layer_norm)
        # Indices 0..7 as upstream: conv_layers.0 and conv_layers.4 are the convolutions,
        # conv_layers.1 and conv_layers.5 the norms.
        self.conv_layers = SequentialWithDropout(
            nn.Conv2d(in_chans, out_chans, kernel_size=3, padding=1, bias=False),
            norm(out_chans),
            _activation(use_tanh),
            CustomDropout2d(),
            nn.Conv2d(out_chans, out_chans, kernel_size=3, padding=1, bias=False),
            norm(out_chans),
            _activation(use_tanh),
            CustomDropout2d(),
        )

    def forward(self, x: torch.Tensor, dropout_rate: float) -> torch.Tensor:
        return self.conv_layers(x, dropout_rate)  # (B, in, H, W) -> (B, out, H, W)


class TransposeConvBlock(nn.Module):
    """2x2 transposed conv with stride 2 -> InstanceNorm -> activation; doubles H and W."""

    def __init__(self, in_chans: int, out_chans: int, use_tanh: bool) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(in_chans, out_chans, kernel_size=2, stride=2, bias=False),
            nn.InstanceNorm2d(out_chans),  # also in the layernorm variant, as upstream
            _activation(use_tanh),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # (B, in, H, W) -> (B, out, 2H, 2W)


class UNet(nn.Module):
    def __init__(
        self,
        in_chans: int = 1,
        out_chans: int = 1,
        num_channels: int = 32,
        num_pool_layers: int = 4,
        use_tanh: bool = False,
        use_layer_norm: bool = False,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        self.out_chans = out_chans
        self.num_channels = num_channels
        self.num_pool_layers = num_pool_layers

        self.down_sample_layers = nn.ModuleList([ConvBlock(in_chans, num_channels, use_tanh, use_layer_norm)])
        channels = num_channels
        for _ in range(num_pool_layers - 1):
            self.down_sample_layers.append(ConvBlock(channels, 2 * channels, use_tanh, use_layer_norm))
            channels *= 2
        self.conv = ConvBlock(channels, 2 * channels, use_tanh, use_layer_norm)  # the bottleneck

        # Each up level: transposed conv 2c -> c, concatenate the c-channel skip (2c), ConvBlock 2c -> c.
        self.up_conv = nn.ModuleList()
        self.up_transpose_conv = nn.ModuleList()
        for _ in range(num_pool_layers - 1):
            self.up_transpose_conv.append(TransposeConvBlock(2 * channels, channels, use_tanh))
            self.up_conv.append(ConvBlock(2 * channels, channels, use_tanh, use_layer_norm))
            channels //= 2
        self.up_transpose_conv.append(TransposeConvBlock(2 * channels, channels, use_tanh))
        self.up_conv.append(
            SequentialWithDropout(
                ConvBlock(2 * channels, channels, use_tanh, use_layer_norm),
                nn.Conv2d(channels, out_chans, kernel_size=1, stride=1),  # up_conv.<last>.1: the output layer
            )
        )

        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                pytorch_default_init(module)

    def forward(self, x: torch.Tensor, dropout_rate: float = DROPOUT_RATE) -> torch.Tensor:
        # x: (B, in_chans, H, W)
        skips: List[torch.Tensor] = []
        output = x
        for layer in self.down_sample_layers:
            output = layer(output, dropout_rate)
            skips.append(output)
            output = F.avg_pool2d(output, kernel_size=2, stride=2, padding=0)  # floors odd sizes

        output = self.conv(output, dropout_rate)

        for transpose_conv, conv in zip(self.up_transpose_conv, self.up_conv):
            skip = skips.pop()
            output = transpose_conv(output)
            # After pooling floored an odd size, the upsampled map is one short: reflect-pad right / bottom.
            pad_right = int(output.shape[-1] != skip.shape[-1])
            pad_bottom = int(output.shape[-2] != skip.shape[-2])
            if pad_right or pad_bottom:
                output = F.pad(output, [0, pad_right, 0, pad_bottom], mode="reflect")
            output = torch.cat([output, skip], dim=1)
            output = conv(output, dropout_rate)
        return output  # (B, out_chans, H, W)
