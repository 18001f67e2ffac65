"""AlgoPerf's PyTorch helpers (reference §2.4): device setup, batch-norm freezing, dropout modules.

One deliberate difference: under torchrun, `pytorch_setup` reports the number of
processes (WORLD_SIZE) as `n_gpus`, where upstream reports the visible GPU count
and assumes torchrun starts one process per GPU. The two agree in upstream's
setting; WORLD_SIZE stays right for CPU runs over gloo (no GPUs at all) and for
runs on fewer processes than GPUs, so per-device batches are global / processes.
"""

from __future__ import annotations

import os
from typing import Any, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def pytorch_setup() -> Tuple[bool, int, torch.device, int]:
    """(use_ddp, rank, device, n_gpus); DDP iff torchrun set LOCAL_RANK.

    n_gpus is the number of devices a global batch is split across: the
    torchrun world size under DDP, the visible GPU count otherwise (0 on a CPU).
    """
    use_ddp = "LOCAL_RANK" in os.environ
    rank = int(os.environ["LOCAL_RANK"]) if use_ddp else 0
    device = torch.device(f"cuda:{rank}" if torch.cuda.is_available() else "cpu")
    if use_ddp and "WORLD_SIZE" in os.environ:
        n_gpus = int(os.environ["WORLD_SIZE"])
    else:
        n_gpus = torch.cuda.device_count()
    return use_ddp, rank, device, n_gpus


def pytorch_init(use_ddp: bool, rank: int, profiler: Any = None) -> None:
    """Upstream's process set-up: cuDNN autotuning, and under torchrun one device and the process group."""
    del profiler
    torch.backends.cudnn.benchmark = True
    if use_ddp:
        if torch.cuda.is_available():
            torch.cuda.set_device(rank)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def sync_ddp_time(time: float, device: torch.device) -> float:
    """The slowest rank's clock, so every rank agrees on elapsed time."""
    time_tensor = torch.tensor(time, dtype=torch.float64, device=device)
    dist.all_reduce(time_tensor, op=dist.ReduceOp.MAX)
    return time_tensor.item()


def update_batch_norm_fn(module: nn.Module, update_batch_norm: bool) -> None:
    """Freezes (momentum 0) or restores batch-norm running statistics; use with `model.apply`."""
    if not isinstance(module, nn.modules.batchnorm._BatchNorm) and not getattr(module, "_is_custom_batch_norm", False):
        return
    if not update_batch_norm:
        if not hasattr(module, "momentum_backup"):
            module.momentum_backup = module.momentum
        module.momentum = torch.zeros_like(module.momentum) if torch.is_tensor(module.momentum) else 0.0
    elif hasattr(module, "momentum_backup"):
        module.momentum = module.momentum_backup


class CustomDropout(nn.Module):
    """Dropout whose rate is chosen per call, so submissions may vary it during training."""

    _supports_custom_dropout = True

    def forward(self, x: torch.Tensor, p: float) -> torch.Tensor:
        return F.dropout(x, p, training=self.training)


class CustomDropout2d(nn.Module):
    _supports_custom_dropout = True

    def forward(self, x: torch.Tensor, p: float) -> torch.Tensor:
        return F.dropout2d(x, p, training=self.training)


class SequentialWithDropout(nn.Sequential):
    """Passes the dropout rate to the children that take one; itself takes one too, so it nests."""

    _supports_custom_dropout = True

    def forward(self, x: torch.Tensor, p: float) -> torch.Tensor:  # type: ignore[override]
        for module in self:
            x = module(x, p) if getattr(module, "_supports_custom_dropout", False) else module(x)
        return x
