"""Batches of molecules for training and evaluation, as upstream's tf.data + jraph pipeline produces them (reference §4.8).

Train (and nothing else) is shuffled and repeated, like
`tfds.load(shuffle_files=True).shuffle(2**15).repeat()`: every epoch visits each
training molecule once, in an order made by reshuffling blocks of the stored
order (tfds's shuffled shard files) and passing them through a shuffle buffer
of 2**15 molecules; batches run on across epoch boundaries. Eval passes are
finite: each eval reads its molecules once, in stored order.

A global batch is `num_shards` (one per rank under DDP, else one per GPU, at least one) dynamically batched
sub-batches of `global_batch_size // num_shards` graphs each; a single process
gets them joined into one graph (jraph.batch), a DDP rank gets its own. Every
rank follows the same molecule stream (one seed) and assembles only its own
sub-batch: the graphs upstream's rank 0 sends it with broadcast_object_list.
Host-side assembly runs in a background thread and hands over pinned tensors,
so the copy to the GPU overlaps the training step.
"""

from __future__ import annotations

import itertools
import queue
import threading
from typing import Any, Dict, Iterator, List, Optional, TypeVar

import numpy as np

from pytest_algoperf.api import random_utils as prng
from workloads.parallel import per_device_batch_size
from workloads.ogbg.batching import Budget, NumpyBatch, assemble, concatenate, count_that_fit
from workloads.ogbg.graphs import GraphsTuple
from workloads.ogbg.prepared_data import GraphSplit

SHUFFLE_BUFFER_SIZE = 2**15  # upstream: dataset.shuffle(buffer_size=2**15)
SHUFFLE_BLOCK_SIZE = 2**15  # molecules per block whose order is reshuffled every epoch
PREFETCH_BATCHES = 4

T = TypeVar("T")


# --- the order of molecules -----------------------------------------------------------------------


def shuffle_buffer_order(sequence: np.ndarray, buffer_size: int, rng: np.random.RandomState) -> np.ndarray:
    """The order in which a shuffle buffer emits one pass over `sequence` (tf.data `shuffle` semantics).

    The buffer starts with the first `buffer_size` elements; each draw emits a
    uniformly chosen slot and refills it with the next element; once the input
    is exhausted the rest of the buffer drains in random order. Computed for
    the whole pass at once: a draw emits the buffer's original element unless
    an earlier draw of the same slot put a newer one there.
    """
    size = min(buffer_size, len(sequence))
    if size == 0:
        return sequence.copy()
    buffer = sequence[:size].copy()
    incoming = sequence[size:]  # element j enters the slot emptied by draw j
    if len(incoming) == 0:  # everything fits in the buffer: it just drains
        return buffer[rng.permutation(size)]
    slots = rng.randint(0, size, size=len(incoming))
    by_slot = np.argsort(slots, kind="stable")
    sorted_slots = slots[by_slot]
    same_slot_as_next = sorted_slots[1:] == sorted_slots[:-1]
    previous_draw = np.full(len(incoming), -1, dtype=np.int64)  # the last earlier draw of the same slot
    previous_draw[by_slot[1:][same_slot_as_next]] = by_slot[:-1][same_slot_as_next]
    emitted = np.where(previous_draw >= 0, incoming[np.maximum(previous_draw, 0)], buffer[slots])
    last_draw_of_slot = np.append(~same_slot_as_next, True)
    buffer[sorted_slots[last_draw_of_slot]] = incoming[by_slot[last_draw_of_slot]]
    return np.concatenate([emitted, buffer[rng.permutation(size)]])


def _seed(rng_row: np.ndarray) -> int:
    return int(rng_row[0]) % 2**32


def train_epochs(num_graphs: int, data_rng: Any) -> Iterator[np.ndarray]:
    """Endless epochs of training-molecule indices, each a permutation of range(num_graphs)."""
    if num_graphs < 1:
        raise ValueError("the training split holds no molecules")
    # One seed for the block order, one for the buffer, as upstream splits its data rng into a
    # file-shuffle seed and a buffer seed.
    block_rng_seed, buffer_rng_seed = prng.split(data_rng, 2)
    block_rng = np.random.RandomState(_seed(block_rng_seed))
    buffer_rng = np.random.RandomState(_seed(buffer_rng_seed))
    blocks = [np.arange(start, min(start + SHUFFLE_BLOCK_SIZE, num_graphs)) for start in range(0, num_graphs, SHUFFLE_BLOCK_SIZE)]
    while True:
        sequence = np.concatenate([blocks[i] for i in block_rng.permutation(len(blocks))])
        yield shuffle_buffer_order(sequence, SHUFFLE_BUFFER_SIZE, buffer_rng)


class IndexStream:
    """Molecule indices from a (possibly endless) iterator of arrays, with look-ahead."""

    def __init__(self, chunks: Iterator[np.ndarray]) -> None:
        self._chunks = chunks
        self._pending = np.zeros(0, dtype=np.int64)

    def peek(self, count: int) -> np.ndarray:
        while len(self._pending) < count:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._pending = np.concatenate([self._pending, chunk])
        return self._pending[:count]

    def advance(self, count: int) -> None:
        self._pending = self._pending[count:]


# --- batches ---------------------------------------------------------------------------------------


def _selections(graphs: GraphSplit, stream: IndexStream, budget: Budget) -> Iterator[np.ndarray]:
    """The molecules of each per-device batch, in stream order, until the stream ends."""
    while True:
        candidates = stream.peek(budget.max_graphs - 1)
        if len(candidates) == 0:
            return
        count = count_that_fit(graphs.n_node[candidates], graphs.n_edge[candidates], budget)
        yield candidates[:count].copy()
        stream.advance(count)


def _global_batches(
    graphs: GraphSplit, stream: IndexStream, global_batch_size: int, num_shards: int, shard_index: Optional[int], pad_to_budget: bool
) -> Iterator[NumpyBatch]:
    # Upstream's rule: each device's batch is dynamically batched on its own, with the budget of
    # global / devices graphs (not the global budget cut into pieces).
    per_device = per_device_batch_size(global_batch_size, num_shards)
    budget = Budget.for_batch_size(per_device)
    selections = _selections(graphs, stream, budget)
    while True:
        shards: List[np.ndarray] = list(itertools.islice(selections, num_shards))
        if not shards:
            return
        # The end of an eval pass: devices without molecules get a padding-only batch.
        shards += [np.zeros(0, dtype=np.int64)] * (num_shards - len(shards))
        if shard_index is not None:
            yield assemble(graphs, shards[shard_index], budget, pad_to_budget)
        else:
            yield concatenate([assemble(graphs, ids, budget, pad_to_budget) for ids in shards])


def train_batches(
    graphs: GraphSplit, global_batch_size: int, data_rng: Any, num_shards: int = 1, shard_index: Optional[int] = None
) -> Iterator[NumpyBatch]:
    """Endless shuffled training batches, padded to the full budget."""
    stream = IndexStream(train_epochs(graphs.num_graphs, data_rng))
    return _global_batches(graphs, stream, global_batch_size, num_shards, shard_index, pad_to_budget=True)


def eval_batches(
    graphs: GraphSplit, graph_ids: np.ndarray, global_batch_size: int, num_shards: int = 1, shard_index: Optional[int] = None
) -> Iterator[NumpyBatch]:
    """One pass over the molecules `graph_ids`, in that order."""
    stream = IndexStream(iter([np.asarray(graph_ids, dtype=np.int64)]))
    return _global_batches(graphs, stream, global_batch_size, num_shards, shard_index, pad_to_budget=False)


# --- to torch -------------------------------------------------------------------------------------


def as_torch(batch: NumpyBatch, pin: bool) -> Dict[str, Any]:
    """Host tensors sharing the numpy memory (pinned copies when bound for a GPU)."""
    import torch

    def convert(array: np.ndarray) -> "torch.Tensor":
        tensor = torch.from_numpy(array)
        return tensor.pin_memory() if pin else tensor

    graph: GraphsTuple = batch["inputs"]
    inputs = GraphsTuple(*(value if name == "globals" else convert(value) for name, value in zip(GraphsTuple._fields, graph)))
    return {"inputs": inputs, "targets": convert(batch["targets"]), "weights": convert(batch["weights"])}


def to_device(batch: Dict[str, Any], device: Any) -> Dict[str, Any]:
    non_blocking = getattr(device, "type", str(device)) == "cuda"

    def move(tensor):
        return tensor.to(device, non_blocking=non_blocking)

    graph = batch["inputs"]
    inputs = GraphsTuple(*(value if name == "globals" else move(value) for name, value in zip(GraphsTuple._fields, graph)))
    return {"inputs": inputs, "targets": move(batch["targets"]), "weights": move(batch["weights"])}


def device_batches(numpy_batches: Iterator[NumpyBatch], device: Any, background: bool) -> Iterator[Dict[str, Any]]:
    """Torch batches on `device`; with `background`, assembled and pinned ahead in a worker thread."""
    pin = getattr(device, "type", str(device)) == "cuda"
    host_batches = (as_torch(batch, pin) for batch in numpy_batches)
    if background:
        host_batches = prefetch(host_batches, PREFETCH_BATCHES)
    for batch in host_batches:
        yield to_device(batch, device)


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


_END = object()


def prefetch(iterator: Iterator[T], depth: int) -> Iterator[T]:
    """Runs `iterator` in a daemon thread, `depth` items ahead; stops when the consumer is closed or collected."""
    items: "queue.Queue[Any]" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def offer(item: Any) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in iterator:
                if not offer(item):
                    return
            offer(_END)
        except BaseException as error:  # handed to the consumer, which re-raises it
            offer(_Failure(error))

    worker = threading.Thread(target=work, name="ogbg-input-pipeline", daemon=True)
    worker.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
