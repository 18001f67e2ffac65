"""Host-side batch plumbing shared by the token workloads: build batches ahead on a thread, move them to the device."""

from __future__ import annotations

import queue
import threading
from typing import Dict, Iterator

import numpy as np

PREFETCH_BATCHES = 4  # training batches built ahead on a background thread


def prefetched(iterator: Iterator[Dict[str, np.ndarray]], depth: int = PREFETCH_BATCHES) -> Iterator[Dict[str, np.ndarray]]:
    """Builds the next batches on a daemon thread while the caller trains on the current one."""
    buffer: "queue.Queue" = queue.Queue(maxsize=depth)
    finished = object()

    def produce() -> None:
        try:
            for item in iterator:
                buffer.put(item)
        except BaseException as error:  # handed to the consumer, which re-raises it
            buffer.put(error)
        buffer.put(finished)

    threading.Thread(target=produce, name="input-pipeline-prefetch", daemon=True).start()
    while True:
        item = buffer.get()
        if item is finished:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def torch_batches(batches: Iterator[Dict[str, np.ndarray]], device, rank: int = 0, world_size: int = 1) -> Iterator[Dict[str, object]]:
    """The arrays as tensors on `device` (their dtypes kept); under DDP each rank keeps its contiguous block of rows."""
    import torch

    non_blocking = device.type == "cuda"
    for batch in batches:
        tensors = {}
        for key, array in batch.items():
            if world_size > 1:
                rows = array.shape[0] // world_size
                array = array[rank * rows : (rank + 1) * rows]
            tensor = torch.from_numpy(np.ascontiguousarray(array))
            if non_blocking:
                tensor = tensor.pin_memory()
            tensors[key] = tensor.to(device, non_blocking=non_blocking)
        yield tensors
