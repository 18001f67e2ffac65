"""How a workload spreads over devices: the process world, model wrapping, each rank's rows, sums across ranks.

Upstream's PyTorch workloads (reference §2.4, §3.7) run one process per device
under torchrun. A global batch of B rows is viewed as (N, B / N, ...) and rank r
trains on block r; in eval the last batch is first padded to the full global
batch (padding rows get weight 0), so every rank gets an equal per-device batch.
Per-rank eval sums are all-reduced, then divided by the number of examples.
OGBG's graph batches follow the same pattern with one batch per device, each
dynamically batched on its own (workloads/ogbg/input_pipeline.py).

Upstream builds each batch on rank 0 and broadcasts it. The pipelines here are
deterministic functions of the data seed, so each rank plans the same global
batch and keeps only its own block: the same rows, with no broadcast. That
holds only while every rank has the same seed, which `check_same_on_every_rank`
verifies when a pipeline is built. A pipeline whose batches depended on
anything rank-specific would have to broadcast instead; none of the current
ones does.

Without torchrun, a process that sees several GPUs drives them all through
`nn.DataParallel` and gets the whole global batch, as upstream.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

if TYPE_CHECKING:  # torch is imported where it is used: the input pipelines import this module without it
    import torch
    from torch import nn


@dataclasses.dataclass(frozen=True)
class World:
    """This process's place among the devices of one run."""

    use_ddp: bool  # started by torchrun: one process per device
    rank: int
    device: torch.device
    num_devices: int  # upstream's N_GPUS: ranks under DDP, visible GPUs otherwise (0 on a CPU-only machine)

    @property
    def num_shards(self) -> int:
        """How many per-device batches one global batch is made of (at least one)."""
        return max(self.num_devices, 1)

    @property
    def shard_index(self) -> Optional[int]:
        """The block of every global batch this process gets; None: all of them (no DDP)."""
        return self.rank if self.use_ddp else None

    def per_device_batch_size(self, global_batch_size: int) -> int:
        return per_device_batch_size(global_batch_size, self.num_shards)

    def local_bounds(self, global_batch_size: int) -> Tuple[int, int]:
        """[start, stop) of this process's rows within a global batch."""
        if self.shard_index is None:
            return 0, global_batch_size
        per_device = self.per_device_batch_size(global_batch_size)
        return self.shard_index * per_device, (self.shard_index + 1) * per_device

    def local_batch_size(self, global_batch_size: int) -> int:
        """Rows of each global batch this process gets; under DDP a clear error when they do not divide."""
        start, stop = self.local_bounds(global_batch_size)
        return stop - start

    def local_rows(self, array: Any) -> Any:
        """This process's block of a global batch's rows (a numpy array or a tensor, batch dim first)."""
        start, stop = self.local_bounds(len(array))
        return array[start:stop]


def current_world() -> World:
    from pytest_algoperf.api.pytorch_utils import pytorch_setup

    use_ddp, rank, device, num_devices = pytorch_setup()
    return World(use_ddp=use_ddp, rank=rank, device=device, num_devices=num_devices)


def per_device_batch_size(global_batch_size: int, num_devices: int) -> int:
    """global / devices; an error that names the fix when it does not divide."""
    num_devices = max(num_devices, 1)
    if global_batch_size <= 0 or global_batch_size % num_devices:
        raise ValueError(
            f"a global batch of {global_batch_size} does not divide evenly across {num_devices} devices; "
            f"use a batch size that is a multiple of {num_devices}."
        )
    return global_batch_size // num_devices


# --- the model ---------------------------------------------------------------------------------


def wrap_model(model: nn.Module, world: Optional[World] = None) -> nn.Module:
    """The model on this process's device, wrapped as upstream's `init_model_fn` wraps it.

    DDP when torchrun started several processes (pinned to the rank's GPU on
    CUDA; a CPU module takes no device ids), DataParallel when one process sees
    several GPUs, the bare module otherwise. Build the parameter shapes and
    types from the bare module first: wrappers prefix the parameter names.
    """
    from torch import nn

    world = world or current_world()
    model.to(world.device)
    if world.num_devices <= 1:
        return model
    if world.use_ddp:
        from torch.nn.parallel import DistributedDataParallel

        if world.device.type == "cuda":
            return DistributedDataParallel(model, device_ids=[world.rank], output_device=world.rank)
        return DistributedDataParallel(model)
    return nn.DataParallel(model)


def unwrap_model(model: Any) -> "nn.Module":
    """The module inside DDP / DataParallel / torch.compile wrappers, however they nest."""
    from torch import nn

    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def sync_model_state_for_eval(model: nn.Module, world: Optional[World] = None) -> None:
    """Averages the model's floating-point state (e.g. batch-norm running statistics) across ranks.

    DDP keeps parameters equal on every rank, but state a model updates from
    its own rows, such as running statistics of unsynchronised batch norm,
    drifts apart. Upstream's Conformer averages its whole state dict across
    ranks before every eval; call this where a workload needs the same.
    Integer entries (step counters) are equal on every rank and left alone.
    """
    world = world or current_world()
    if not _collectives_needed(world):
        return
    import torch
    import torch.distributed as dist

    with torch.no_grad():
        for value in unwrap_model(model).state_dict(keep_vars=True).values():
            if torch.is_floating_point(value):
                summed = value.detach().clone()
                dist.all_reduce(summed)
                value.data.copy_(summed / dist.get_world_size())


# --- across ranks ------------------------------------------------------------------------------


def _collectives_needed(world: World) -> bool:
    if not world.use_ddp:
        return False
    import torch.distributed as dist

    if not dist.is_initialized():
        raise RuntimeError(
            "torchrun started this process (LOCAL_RANK is set) but no process group exists; "
            "call pytorch_init(use_ddp, rank) first."
        )
    return dist.get_world_size() > 1


def all_reduce_sum(tensor: torch.Tensor, world: Optional[World] = None) -> torch.Tensor:
    """The tensor summed over all ranks (in place); unchanged outside DDP."""
    if _collectives_needed(world or current_world()):
        import torch.distributed as dist

        dist.all_reduce(tensor)
    return tensor


def all_gather_objects(obj: Any, world: Optional[World] = None) -> List[Any]:
    """Every rank's `obj`, in rank order; outside DDP just `[obj]`."""
    if not _collectives_needed(world or current_world()):
        return [obj]
    import torch.distributed as dist

    gathered: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def check_same_on_every_rank(value: Any, what: str, world: Optional[World] = None) -> None:
    """Raises, on every rank, when the ranks hold different `value`s (e.g. the seed a pipeline plans from).

    Every rank must call it, in the same order: it is a collective.
    """
    values = all_gather_objects(value, world)
    if any(other != values[0] for other in values[1:]):
        listed = ", ".join(f"rank {rank}: {other!r}" for rank, other in enumerate(values))
        raise RuntimeError(
            f"the ranks disagree on {what} ({listed}); each would then take its block of a different global "
            f"batch. Give every rank the same seed (e.g. pass the same rng to _build_input_queue on each)."
        )


def check_same_seed_on_every_rank(rng: Any, what: str = "the data seed", world: Optional[World] = None) -> None:
    """`check_same_on_every_rank` for an AlgoPerf rng (an array or list of integers)."""
    check_same_on_every_rank([int(part) for part in rng], what, world)
