"""Criteo batches from the prepared chunks, with the reference's ordering, batching and padding.

The reference pipeline (reference §4.2) reads its 5,000,000-line files one after another
(`flat_map(TextLineDataset)`), so consecutive examples stay consecutive and a batch may
span two files:
  * train: files in a seeded random order, batches of exactly `global_batch_size` rows,
    the tail of a pass dropped (`batch(drop_remainder=True)` before `repeat`), then a new
    pass in a new order; there is no example-level shuffle;
  * eval_train: the training files in a seeded random order, `num_batches` batches per
    pass (a short last batch is padded), each pass in a new order;
  * validation, test: their files in name order, `num_batches` batches per pass, the
    last one padded to full size with `weights` 0 on the padding rows.
Every batch has `inputs` (B, 39) float32, `targets` (B,) float32 and `weights` (B,)
float32 (all ones in training, as upstream's PyTorch workload sends them).

Rows are copied straight from memory-mapped float32 arrays, so one core assembles
millions of rows per second (benchmarks/criteo1tb_input_pipeline.py). Under DDP every
rank builds the same global batch plan and reads only its own slice, so no batch is
broadcast. On CUDA, rows land in page-locked buffers, are copied to the GPU without
blocking, and the next batches are assembled on a background thread meanwhile.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from pytest_algoperf.api.data_utils import shard_and_maybe_pad_np
from workloads.criteo1tb.features import NUM_INPUTS
from workloads.criteo1tb.prepared_data import Chunk, ChunkReader, chunks_of_split, read_index
from workloads.parallel import per_device_batch_size

# (position of the chunk in the split's chunk list, first row, end row)
Segment = Tuple[int, int, int]
HostBatch = Dict[str, np.ndarray]

PREFETCH_BATCHES = 2  # batches assembled ahead on CUDA, like the reference's prefetch


def _seed_rng(seed: int) -> np.random.RandomState:
    return np.random.RandomState(int(seed) % 2**32)


def _pass_segments(rows: Sequence[int], order: Sequence[int], batch_size: int) -> Iterator[List[Segment]]:
    """One pass over the chunks in `order`, cut into batches; the last one may be short."""
    pending: List[Segment] = []
    filled = 0
    for position in order:
        start = 0
        while start < rows[position]:
            take = min(rows[position] - start, batch_size - filled)
            pending.append((int(position), start, start + take))
            start += take
            filled += take
            if filled == batch_size:
                yield pending
                pending, filled = [], 0
    if pending:
        yield pending


def train_plan(rows: Sequence[int], batch_size: int, seed: int) -> Iterator[List[Segment]]:
    """Endless full batches: each pass a new seeded file order, its short tail dropped."""
    if sum(rows) < batch_size:
        raise ValueError(f"the training split has {sum(rows)} rows, fewer than one batch of {batch_size}")

    def endless() -> Iterator[List[Segment]]:
        rng = _seed_rng(seed)
        while True:
            for segments in _pass_segments(rows, rng.permutation(len(rows)), batch_size):
                if sum(stop - start for _, start, stop in segments) == batch_size:
                    yield segments

    return endless()


def eval_plan(
    rows: Sequence[int], batch_size: int, num_batches: Optional[int], seed: Optional[int], repeat: bool
) -> Iterator[List[Segment]]:
    """`num_batches` batches per pass (all of them if None), files shuffled per pass when seeded."""
    if sum(rows) == 0:
        raise ValueError("the evaluation split has no rows")

    def passes() -> Iterator[List[Segment]]:
        rng = _seed_rng(seed) if seed is not None else None
        while True:
            order = rng.permutation(len(rows)) if rng is not None else range(len(rows))
            for count, segments in enumerate(_pass_segments(rows, order, batch_size)):
                if num_batches is not None and count == num_batches:
                    break
                yield segments
            if not repeat:
                return

    return passes()


def shard_segments(segments: Sequence[Segment], start: int, stop: int) -> List[Segment]:
    """The segments covering rows [start, stop) of a batch made of `segments`."""
    mine: List[Segment] = []
    offset = 0
    for position, first, end in segments:
        length = end - first
        low, high = max(start - offset, 0), min(stop - offset, length)
        if low < high:
            mine.append((position, first + low, first + high))
        offset += length
    return mine


def read_rows(reader: ChunkReader, segments: Sequence[Segment], inputs: np.ndarray, targets: np.ndarray) -> int:
    """Copies the segments' rows into the front of `inputs`/`targets`; returns how many rows."""
    filled = 0
    for position, first, end in segments:
        chunk_inputs, chunk_targets = reader.arrays(position)
        count = end - first
        np.copyto(inputs[filled : filled + count], chunk_inputs[first:end])
        np.copyto(targets[filled : filled + count], chunk_targets[first:end])
        filled += count
    return filled


def fresh_buffers(rows: int) -> Callable[[], Tuple[np.ndarray, np.ndarray, Any]]:
    def allocate() -> Tuple[np.ndarray, np.ndarray, Any]:
        return np.empty((rows, NUM_INPUTS), dtype=np.float32), np.empty((rows,), dtype=np.float32), None

    return allocate


def host_batches(
    reader: ChunkReader,
    plan: Iterator[List[Segment]],
    batch_size: int,
    shard: int = 0,
    num_shards: int = 1,
    buffers: Optional[Callable[[], Tuple[np.ndarray, np.ndarray, Any]]] = None,
    padded: bool = False,
) -> Iterator[Tuple[HostBatch, Any]]:
    """(numpy batch, buffer handle) for this shard's rows of each planned global batch.

    `padded` batches (evaluation) always carry `weights`, 0 on rows added to fill a short batch;
    training batches are always full and get their all-ones weights on the device.
    """
    per_shard = batch_size // num_shards
    buffers = buffers or fresh_buffers(per_shard)
    for segments in plan:
        inputs, targets, handle = buffers()
        filled = read_rows(reader, shard_segments(segments, shard * per_shard, (shard + 1) * per_shard), inputs, targets)
        batch = {"inputs": inputs[:filled], "targets": targets[:filled]}
        if padded:
            batch = shard_and_maybe_pad_np(batch, global_batch_size=per_shard)
            batch.setdefault("weights", np.ones(per_shard, dtype=np.float32))
        yield batch, handle


def prefetch(iterator: Iterator[Any], depth: int) -> Iterator[Any]:
    """Runs `iterator` on a background thread, `depth` items ahead; errors surface in the consumer."""
    items: "queue.Queue[Tuple[str, Any]]" = queue.Queue(maxsize=depth)

    def produce() -> None:
        try:
            for item in iterator:
                items.put(("item", item))
            items.put(("end", None))
        except BaseException as error:  # handed to the consumer, who raises it
            items.put(("error", error))

    threading.Thread(target=produce, name="criteo1tb-prefetch", daemon=True).start()
    while True:
        kind, value = items.get()
        if kind == "end":
            return
        if kind == "error":
            raise value
        yield value


class PinnedBuffers:
    """A ring of page-locked host buffers; one is reused only after its copy to the GPU finished."""

    def __init__(self, count: int, rows: int) -> None:
        import torch

        self._free: "queue.Queue[Tuple[Any, Any, Any]]" = queue.Queue()
        for _ in range(count):
            inputs = torch.empty((rows, NUM_INPUTS), dtype=torch.float32, pin_memory=True)
            targets = torch.empty((rows,), dtype=torch.float32, pin_memory=True)
            self._free.put((inputs, targets, None))

    def acquire(self) -> Tuple[np.ndarray, np.ndarray, Any]:
        inputs, targets, copied = self._free.get()
        if copied is not None:
            copied.synchronize()  # waits for that buffer's own copy only, never for training work
        return inputs.numpy(), targets.numpy(), (inputs, targets)

    def release(self, handle: Any, copied: Any) -> None:
        self._free.put((handle[0], handle[1], copied))


def device_batches(host: Iterator[Tuple[HostBatch, Any]], device: Any, pinned: Optional[PinnedBuffers]) -> Iterator[Dict[str, Any]]:
    """Torch batches on `device`: host-to-device copies never block the host."""
    import torch

    on_cuda = device.type == "cuda"
    for batch, handle in host:
        inputs = torch.from_numpy(batch["inputs"]).to(device, non_blocking=on_cuda)
        targets = torch.from_numpy(batch["targets"]).to(device, non_blocking=on_cuda)
        if "weights" in batch:
            weights = torch.from_numpy(batch["weights"].astype(np.float32)).to(device, non_blocking=on_cuda)
        else:
            weights = torch.ones(len(batch["targets"]), dtype=torch.float32, device=device)
        if pinned is not None and handle is not None:
            copied = torch.cuda.Event()
            copied.record()
            pinned.release(handle, copied)
        yield {"inputs": inputs, "targets": targets, "weights": weights}


def numpy_batches(
    dataset_dir: Path,
    split: str,
    batch_size: int,
    seed: int,
    num_batches: Optional[int] = None,
    repeat: bool = False,
    shard: int = 0,
    num_shards: int = 1,
    buffers: Optional[Callable[[], Tuple[np.ndarray, np.ndarray, Any]]] = None,
) -> Iterator[Tuple[HostBatch, Any]]:
    """Host batches of a split under the reference's rules (see the module docstring)."""
    per_device_batch_size(batch_size, num_shards)  # fails early, with the fix, when it does not divide
    chunks: List[Chunk] = chunks_of_split(read_index(dataset_dir), split)
    rows = [chunk.rows for chunk in chunks]
    if split == "train":
        plan = train_plan(rows, batch_size, seed)
    else:
        plan = eval_plan(rows, batch_size, num_batches, seed if split == "eval_train" else None, repeat)
    return host_batches(ChunkReader(dataset_dir, chunks), plan, batch_size, shard, num_shards, buffers, padded=split != "train")


def torch_batches(
    dataset_dir: Path,
    split: str,
    batch_size: int,
    seed: int,
    device: Any,
    num_batches: Optional[int] = None,
    repeat: bool = False,
    shard: int = 0,
    num_shards: int = 1,
) -> Iterator[Dict[str, Any]]:
    """Device batches of a split; on CUDA through pinned buffers, training batches prefetched."""
    pinned = None
    ahead = PREFETCH_BATCHES if device.type == "cuda" and split == "train" else 0
    if device.type == "cuda":
        pinned = PinnedBuffers(ahead + 2, batch_size // num_shards)
    host = numpy_batches(
        dataset_dir, split, batch_size, seed, num_batches, repeat, shard, num_shards, pinned.acquire if pinned else None
    )
    if ahead:
        host = prefetch(host, ahead)
    return device_batches(host, device, pinned)
