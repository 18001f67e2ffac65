"""AlgoPerf's MNIST model: an MLP 784 -> 128 (sigmoid) -> 10; 101,770 parameters."""

from collections import OrderedDict

import torch
from torch import nn

from pytest_algoperf.api.init_utils import pytorch_default_init

INPUT_SIZE = 28 * 28
NUM_HIDDEN = 128
NUM_CLASSES = 10


class MnistMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        # Names `net.layer1` / `net.layer2` are upstream's: parameter types and
        # `is_output_params` depend on them.
        self.net = nn.Sequential(
            OrderedDict(
                [
                    ("layer1", nn.Linear(INPUT_SIZE, NUM_HIDDEN)),
                    ("layer1_sig", nn.Sigmoid()),
                    ("layer2", nn.Linear(NUM_HIDDEN, NUM_CLASSES)),
                ]
            )
        )

    def reset_parameters(self) -> None:
        for module in self.net.modules():
            if isinstance(module, nn.Linear):
                pytorch_default_init(module)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.view(x.shape[0], -1))  # (B, 1, 28, 28) -> (B, 784) -> (B, 10)
