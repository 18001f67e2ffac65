"""Which models and losses upstream wraps in torch.compile (reference §3.3 step 6)."""

from __future__ import annotations

from typing import Any

# Base workloads whose model upstream compiles; the others run eagerly (finewebedu_lm: the A100
# runs print "Performing torch.compile" for it, LM_AND_A100 §4.12).
COMPILED_MODELS = ("fastmri", "imagenet_resnet", "wmt", "mnist", "cifar", "finewebedu_lm")
# Base workloads whose loss_fn upstream compiles.
COMPILED_LOSSES = ("fastmri", "librispeech_deepspeech", "ogbg", "wmt")


def should_compile(mode: str, device: Any) -> bool:
    """'auto' compiles only on CUDA: on a CPU the compile time would dwarf short budgets."""
    if mode == "yes":
        return True
    if mode == "no":
        return False
    return getattr(device, "type", str(device)) == "cuda"


def compile_like_upstream(workload: Any, model: Any, base_workload: str) -> Any:
    """Compiles the model (and the workload's loss) where upstream does; returns the model to train."""
    import torch

    if base_workload in COMPILED_LOSSES:
        workload.loss_fn = torch.compile(workload.loss_fn)
    if base_workload in COMPILED_MODELS:
        return torch.compile(model)
    return model
