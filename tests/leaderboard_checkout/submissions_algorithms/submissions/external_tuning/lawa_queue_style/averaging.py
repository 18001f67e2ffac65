"""Latest-weight averaging (LAWA): a queue of recent parameter snapshots and their mean."""

import collections

import torch


class WeightQueue:
    def __init__(self, length: int):
        self.snapshots = collections.deque(maxlen=length)

    def push(self, model: torch.nn.Module) -> None:
        self.snapshots.append([p.detach().clone() for p in model.parameters()])

    def average(self):
        return [torch.stack(tensors).mean(dim=0) for tensors in zip(*self.snapshots)]
