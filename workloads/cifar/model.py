"""The CIFAR-10 model: ResNet-18 adapted to 32x32 images (reference §4.10); 11,173,962 parameters.

    (B, 3, 32, 32)
      stem:   3x3 stride-1 conv 3->64 -> BN -> ReLU (no max pool: the images are small)   (32x32)
      layer1..layer4: 2 BasicBlocks each, 64 / 128 / 256 / 512 channels, layers 2-4 strided (32, 16, 8, 4)
      head:   4x4 average pool -> `fc` 512->10
    (B, 10) logits

The blocks, the conv+BN `downsample` shortcuts and the initialisation are the ImageNet
ResNet's (workloads/imagenet_resnet/model.py): convs `pytorch_default_init`, BN gamma 1 / beta 0,
`fc` N(0, 0.01) with zero bias, and the last BN of each residual branch (`bn2`) at gamma 0.

Attribute names (`conv1`, `bn1`, `relu`, `layer<i>.<j>.bn2`, `layer<i>.0.downsample.conv`, `fc`)
and construction order are upstream's, so parameter types, `is_output_params` (`fc`) and the
initial weights for one seed match.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from workloads.imagenet_resnet.model import ACTIVATIONS, BASE_WIDTH, BasicBlock, init_resnet, make_stage

DROPOUT_RATE = 0.0  # the model has no dropout; model_fn ignores the rate
FINAL_POOL = 4  # layer4's 4x4 map on 32x32 inputs pooled to 1x1


class ResNet(nn.Module):
    def __init__(self, layers: Sequence[int] = (2, 2, 2, 2), num_classes: int = 10) -> None:
        super().__init__()
        make_activation = ACTIVATIONS["relu"]
        self.conv1 = nn.Conv2d(3, BASE_WIDTH, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(BASE_WIDTH)
        self.relu = make_activation()
        inplanes = BASE_WIDTH
        stages = []
        for index, num_blocks in enumerate(layers):
            planes = BASE_WIDTH * 2**index  # 64, 128, 256, 512
            stages.append(make_stage(BasicBlock, inplanes, planes, num_blocks, 1 if index == 0 else 2, make_activation))
            inplanes = planes * BasicBlock.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.fc = nn.Linear(inplanes, num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init_resnet(self, bn_init_scale=0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, 3, 32, 32)
        x = self.relu(self.bn1(self.conv1(x)))  # (B, 64, 32, 32)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, 512, 4, 4)
        x = torch.flatten(F.avg_pool2d(x, FINAL_POOL), 1)  # (B, 512)
        return self.fc(x)  # (B, 10)


def resnet18(num_classes: int = 10) -> ResNet:
    return ResNet((2, 2, 2, 2), num_classes)
