"""The ImageNet model: ResNet-50 (He et al. 2015, arXiv:1512.03385) in torchvision's layout (reference §4.4).

25,557,032 parameters.

    (B, 3, H, W)
      stem:   7x7 stride-2 conv 3->64 -> BN -> activation -> 3x3 stride-2 max pool      (H/4)
      layer1: 3 Bottlenecks, width 64,  out 256                                         (H/4)
      layer2: 4 Bottlenecks, width 128, out 512,  first one strided                     (H/8)
      layer3: 6 Bottlenecks, width 256, out 1024, first one strided                     (H/16)
      layer4: 3 Bottlenecks, width 512, out 2048, first one strided                     (H/32)
      head:   global average pool -> `fc` 2048->1000
    (B, 1000) logits

A Bottleneck is 1x1 conv -> BN -> act -> 3x3 conv (carries the stride, the "ResNet v1.5"
placement) -> BN -> act -> 1x1 conv (x4 channels) -> BN, added to the shortcut, then act.
The shortcut is the identity, or `downsample` = 1x1 (strided) conv + BN where the shape changes.
No conv has a bias; BatchNorm uses torch's defaults (momentum 0.1, eps 1e-5). No dropout.

Initialisation: convs `pytorch_default_init`, BN gamma 1 / beta 0, `fc` weight N(0, 0.01) and
bias 0; then the last BN of every residual branch gets gamma = `bn_init_scale` (0 makes each block
start as the identity, Goyal et al. 2017, arXiv:1706.02677). The variants change:
  * the activation: SiLU (imagenet_resnet_silu) or tanh-approximated GELU (imagenet_resnet_gelu);
  * `bn_init_scale` 8.0 instead of 0.0 (imagenet_resnet_large_bn_init).

Attribute names (`conv1`, `bn1`, `layer<i>.<j>.conv3`, `layer<i>.0.downsample.conv` / `.bn`, `fc`,
...) are upstream's: the parameter-type rules read 'bn' and 'conv' in them, and `is_output_params`
names `fc`. Construction order is upstream's too, so one seed gives the same initial weights.
"""

from __future__ import annotations

import collections
import functools
from typing import Callable, Dict, List, Optional, Sequence, Type, Union

import torch
from torch import nn

from pytest_algoperf.api.init_utils import pytorch_default_init

DROPOUT_RATE = 0.0  # the model has no dropout; model_fn ignores the rate
FC_INIT_STD = 1e-2  # torchvision's classifier init, kept by upstream
BASE_WIDTH = 64  # channels after the stem, and the width of layer1's bottlenecks

ACTIVATIONS: Dict[str, Callable[[], nn.Module]] = {
    "relu": functools.partial(nn.ReLU, inplace=True),
    "silu": functools.partial(nn.SiLU, inplace=True),
    "gelu": functools.partial(nn.GELU, approximate="tanh"),  # upstream's form, matching jax.nn.gelu
}

# What each registered variant changes in the model (keyword arguments of `resnet50`).
VARIANT_MODEL_KWARGS: Dict[str, dict] = {
    "imagenet_resnet": {},
    "imagenet_resnet_silu": {"activation": "silu"},
    "imagenet_resnet_gelu": {"activation": "gelu"},
    "imagenet_resnet_large_bn_init": {"bn_init_scale": 8.0},
}


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 conv, padding 1, no bias: keeps H and W at stride 1."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs (the first carries the stride); ResNet-18/34's block, used by the CIFAR model."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        activation: Callable[[], nn.Module] = ACTIVATIONS["relu"],
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.act_fnc = activation()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)  # the branch's last BN: gamma = bn_init_scale
        self.downsample = downsample
        self.stride = stride

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, inplanes, H, W) -> (B, planes, H / stride, W / stride)
        identity = x if self.downsample is None else self.downsample(x)
        out = self.act_fnc(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act_fnc(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (strided) -> 1x1 expand by 4, each followed by BN."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: Optional[nn.Module] = None,
        activation: Callable[[], nn.Module] = ACTIVATIONS["relu"],
    ) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)  # the branch's last BN: gamma = bn_init_scale
        self.act_fnc = activation()
        self.downsample = downsample  # registered after the convs, as upstream (parameter order)
        self.stride = stride

    def last_bn(self) -> nn.BatchNorm2d:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, inplanes, H, W) -> (B, 4 planes, H / stride, W / stride)
        identity = x if self.downsample is None else self.downsample(x)
        out = self.act_fnc(self.bn1(self.conv1(x)))
        out = self.act_fnc(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.act_fnc(out + identity)


Block = Union[Type[BasicBlock], Type[Bottleneck]]


def make_stage(
    block: Block, inplanes: int, planes: int, num_blocks: int, stride: int, activation: Callable[[], nn.Module]
) -> nn.Sequential:
    """`num_blocks` blocks; the first strides and, where the shape changes, gets a conv+BN shortcut."""
    downsample = None
    if stride != 1 or inplanes != planes * block.expansion:
        downsample = nn.Sequential(
            collections.OrderedDict(
                [
                    ("conv", conv1x1(inplanes, planes * block.expansion, stride)),
                    ("bn", nn.BatchNorm2d(planes * block.expansion)),
                ]
            )
        )
    blocks = [block(inplanes, planes, stride, downsample, activation)]
    blocks += [block(planes * block.expansion, planes, activation=activation) for _ in range(1, num_blocks)]
    return nn.Sequential(*blocks)


def init_resnet(model: nn.Module, bn_init_scale: float) -> None:
    """Upstream's ResNet initialisation, shared by the ImageNet and CIFAR models."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            pytorch_default_init(module)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    nn.init.normal_(model.fc.weight, std=FC_INIT_STD)
    nn.init.zeros_(model.fc.bias)
    for module in model.modules():
        if isinstance(module, (BasicBlock, Bottleneck)):
            nn.init.constant_(module.last_bn().weight, bn_init_scale)


class ResNet(nn.Module):
    def __init__(
        self,
        block: Block,
        layers: Sequence[int],
        num_classes: int = 1000,
        activation: str = "relu",
        bn_init_scale: float = 0.0,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"Unknown activation {activation!r}: expected one of {sorted(ACTIVATIONS)}.")
        make_activation = ACTIVATIONS[activation]
        self.conv1 = nn.Conv2d(3, BASE_WIDTH, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(BASE_WIDTH)
        self.act_fnc = make_activation()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = BASE_WIDTH
        stages: List[nn.Sequential] = []
        for index, num_blocks in enumerate(layers):
            planes = BASE_WIDTH * 2**index  # 64, 128, 256, 512
            stages.append(make_stage(block, inplanes, planes, num_blocks, 1 if index == 0 else 2, make_activation))
            inplanes = planes * block.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(inplanes, num_classes)  # 2048 -> 1000 for ResNet-50
        init_resnet(self, bn_init_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, 3, H, W)
        x = self.maxpool(self.act_fnc(self.bn1(self.conv1(x))))  # (B, 64, H/4, W/4)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 2048, H/32, W/32)
        x = torch.flatten(self.avgpool(x), 1)  # (B, 2048)
        return self.fc(x)  # (B, num_classes)


def resnet50(activation: str = "relu", bn_init_scale: float = 0.0, num_classes: int = 1000) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, activation, bn_init_scale)
