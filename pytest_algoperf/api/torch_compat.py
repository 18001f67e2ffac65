"""Torch internals that AlgoPerf-era submissions call under names the pinned torch no longer has.

Upstream's runner pinned torch 2.5; submissions copied optimizer code from that
era (upstream's own NAdamW class among them) and call private helpers that
later torch releases renamed or removed. Each entry below restores the old
name as an alias of what the pinned torch provides, or as a one-line
equivalent, and only when the old name is missing — a torch that still has it
is left untouched.

| old name (torch <= 2.5)                               | in torch 2.11                                              |
|-------------------------------------------------------|------------------------------------------------------------|
| `torch.optim.Optimizer._cuda_graph_capture_health_check` | renamed `_accelerator_graph_capture_health_check`       |
| `torch.optim.optimizer._dispatch_sqrt`                 | removed; it was `math.sqrt` on numbers, `.sqrt()` on tensors |
"""

from __future__ import annotations

import math
from typing import Any, List


def _dispatch_sqrt(value: Any) -> Any:
    """The square root of a Python number or a tensor, as torch's removed helper computed it."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.sqrt()
    return math.sqrt(value)


def install_torch_compat() -> List[str]:
    """Adds the old names that are missing; returns the ones added (empty when torch has them all). Idempotent."""
    import torch.optim.optimizer as optimizer_module
    from torch.optim import Optimizer

    added = []
    if not hasattr(Optimizer, "_cuda_graph_capture_health_check") and hasattr(Optimizer, "_accelerator_graph_capture_health_check"):
        Optimizer._cuda_graph_capture_health_check = Optimizer._accelerator_graph_capture_health_check
        added.append("torch.optim.Optimizer._cuda_graph_capture_health_check")
    if not hasattr(optimizer_module, "_dispatch_sqrt"):
        optimizer_module._dispatch_sqrt = _dispatch_sqrt
        added.append("torch.optim.optimizer._dispatch_sqrt")
    return added
