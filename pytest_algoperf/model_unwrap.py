"""The module under the wrappers a trial may put around a model (DDP, DataParallel, torch.compile)."""

from __future__ import annotations

from typing import Any


def unwrapped_model(model: Any) -> Any:
    """Peels `torch.compile`'s `_orig_mod` and DDP's / DataParallel's `module`, in any nesting order.

    Upstream compiles the model its workload already wrapped in DDP, so a compiled DDP model
    needs both peeled; the parameter names of the result are the workload's own.
    """
    import torch

    while True:
        inner = getattr(model, "_orig_mod", None)
        if inner is None and isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
            inner = model.module
        if inner is None:
            return model
        model = inner
