"""The device settings upstream's runner applies, and freeing CUDA memory between trials and around evals."""

from __future__ import annotations

import gc
from typing import Any


def apply_benchmark_settings(benchmark_version: str) -> None:
    """Upstream's `pytorch_init`: cuDNN autotuning on; TF32 matmuls as the benchmark version sets them.

    Applied once per process, before any submission code runs, so the rules' check that a submission
    leaves these settings alone compares against the benchmark's own values.
    """
    import torch

    from pytest_algoperf.runner_protocol import RunnerProtocol

    torch.backends.cudnn.benchmark = True
    tf32 = RunnerProtocol.of_version(benchmark_version).pytorch_tf32_matmul
    if tf32 is not None:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.set_float32_matmul_precision("high" if tf32 else "highest")


def free_cuda_memory(device: Any = None) -> None:
    """Upstream's `_reset_cuda_mem`: cuBLAS workspaces, the caching allocator and peak statistics; no-op on a CPU."""
    import torch

    if not torch.cuda.is_available() or (device is not None and getattr(device, "type", "cuda") != "cuda"):
        return
    gc.collect()
    clear_workspaces = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
    if clear_workspaces is not None:
        clear_workspaces()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
