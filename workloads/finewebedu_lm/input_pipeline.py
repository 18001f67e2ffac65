"""finewebedu_lm batches as the reference's tf.data pipeline makes them (reference §4.12), from the prepared token streams.

Each split is one flat stream of GPT-2 ids (documents concatenated, each ending in EOS;
prepare.py). The reference flattens it and cuts it into non-overlapping windows of 1,025 tokens
from its start, window i = tokens[1025 i : 1025 (i + 1)], dropping the incomplete tail; a window
gives `inputs = w[:1024]` and `targets = w[1:]`. Sequences are therefore packed across document
boundaries (no segment masks, no position resets) and the first token of a window is never a
target.

train:       window indices through a shuffle buffer of 1,000 (tf.data's `shuffle(1000)`: the
             buffer starts with the first 1,000 indices; each output is a uniformly drawn slot,
             refilled with the next index), reshuffled every epoch with fresh draws, batched and
             repeated forever. The reference keeps each epoch's last, partial batch; here it is
             dropped, so every batch has the same shape (no run gets near it: the step hint's
             72,000 batches of 64 are 0.53 epoch of 8,749,870 windows). No `weights` key: the loss
             averages over every token.
eval_train,
validation:  the windows in order, from the start of the train stream (eval_train) or of the
             validation stream, in `num_batches` batches. A batch cut short by the end of the
             stream is padded to full size with rows of id 0 and `weights` 0 (1.0 on every real
             token). The reference pads with -1, which PyTorch's cross entropy cannot take as a
             target; the weights make the pad ids irrelevant. With repeat=True the same batches
             come round again (the reference caches its eval iterators).
Dtypes as the reference's PyTorch workload: inputs int32 (B, 1024), targets int64 (B, 1024),
weights float32 (B, 1024).

The host-to-device side is workloads/host_batches.py: `prefetched(numpy_batches(...))` builds
batches on a thread, `torch_batches(..., rank, world_size)` moves them (each DDP rank takes its
contiguous block of rows of the global batch, which is the reference's train sharding).
"""

from __future__ import annotations

import functools
import itertools
import json
from pathlib import Path
from typing import Dict, Iterator, Optional, Union

import numpy as np

from workloads.base import DataProblem
from workloads.data_manifest import MANIFEST_NAME
from workloads.host_batches import prefetched, torch_batches  # noqa: F401 (this pipeline's public API)

DATASET_NAME = "finewebedu_lm"
SEQUENCE_LENGTH = 1024  # tokens predicted per sequence
WINDOW_LENGTH = SEQUENCE_LENGTH + 1  # the reference's batch(1025): inputs and targets share 1,024 tokens
SHUFFLE_BUFFER_SIZE = 1000  # the reference's shuffle(1000), counted in windows
EVAL_BATCH_SIZE = 256
TOKEN_DTYPE = np.uint16  # GPT-2's 50,257 ids fit
PAD_ID = 0  # the reference's -1 would break torch's cross entropy; pad rows carry weight 0
TOKEN_FILES = {"train": "train_tokens.npy", "validation": "validation_tokens.npy"}
DOCUMENT_FILES = {"train": "train_documents.npy", "validation": "validation_documents.npy"}
STREAM_OF_SPLIT = {"train": "train", "eval_train": "train", "validation": "validation"}
# The reference's sizes, in windows of 1,025 tokens.
REFERENCE_TRAIN_SEQUENCES = 8_749_870
REFERENCE_VALIDATION_EXAMPLES = 100_000
MIN_VALIDATION_SEQUENCES = 391 * EVAL_BATCH_SIZE  # 100,096: ceil(100,000 / 256) full eval batches
MIN_TRAIN_SEQUENCES = 40 * EVAL_BATCH_SIZE  # 10,240: eval_train's ceil(10,000 / 256) batches
_DRAW_BLOCK = 4096  # shuffle-buffer draws are made this many at a time


def num_windows(num_tokens: int) -> int:
    """Complete 1,025-token windows in a stream of `num_tokens`."""
    return int(num_tokens) // WINDOW_LENGTH


class PreparedTokens:
    """A prepared finewebedu_lm dataset dir: the two token streams, memory-mapped, and their window counts."""

    def __init__(self, dataset_dir: Union[str, Path]) -> None:
        self.dataset_dir = Path(dataset_dir)
        self.streams: Dict[str, np.ndarray] = {}
        for split, name in TOKEN_FILES.items():
            path = self.dataset_dir / name
            try:
                stream = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as error:
                raise DataProblem(f"{path} cannot be read ({error}); rerun the finewebedu_lm preparation") from None
            if stream.ndim != 1 or stream.dtype != TOKEN_DTYPE:
                raise DataProblem(f"{path} holds {stream.dtype} {stream.shape}, expected a flat uint16 token stream; "
                                  "rerun the finewebedu_lm preparation")
            self.streams[split] = stream
        self.num_windows = {split: num_windows(len(stream)) for split, stream in self.streams.items()}

    def stream(self, split: str) -> np.ndarray:
        try:
            return self.streams[STREAM_OF_SPLIT[split]]
        except KeyError:
            raise ValueError(f"Unknown split {split!r}; expected one of {', '.join(STREAM_OF_SPLIT)}") from None

    def windows(self, split: str) -> np.ndarray:
        """The split's stream as a (num_windows, 1025) memmap view (nothing is read until indexed)."""
        stream = self.stream(split)
        count = num_windows(len(stream))
        return stream[: count * WINDOW_LENGTH].reshape(count, WINDOW_LENGTH)


def open_prepared(dataset_dir: Union[str, Path]) -> PreparedTokens:
    """The prepared data at dataset_dir; opened again only when a new preparation replaced it."""
    manifest = Path(dataset_dir) / MANIFEST_NAME
    stamp = manifest.stat().st_mtime_ns if manifest.is_file() else None
    return _open_prepared(str(dataset_dir), stamp)


@functools.lru_cache(maxsize=4)
def _open_prepared(dataset_dir: str, stamp: Optional[int]) -> PreparedTokens:
    del stamp  # part of the cache key only
    return PreparedTokens(dataset_dir)


def read_summary(dataset_dir: Union[str, Path]) -> Dict:
    """The preparation's record (finewebedu_lm.json): source, split rule, tokenizer, per-split counts."""
    return json.loads((Path(dataset_dir) / f"{DATASET_NAME}.json").read_text())


# --- order -----------------------------------------------------------------------------------


def seed_generator(seed: int) -> np.random.Generator:
    """A generator for any int seed (the workload's are drawn from [-2^31, 2^31), which numpy does not take as is)."""
    return np.random.default_rng(int(seed) % 2**64)


class ShuffleBuffer:
    """Indices 0..n-1 of one epoch through a tf.data-style shuffle buffer, handed out lazily.

    The buffer holds the next `buffer_size` indices; each output is a uniformly drawn slot,
    refilled with the next index, or, once every index has entered, filled with the last slot's
    index as the buffer shrinks. So index k is emitted at position k - (buffer_size - 1) or later.
    """

    def __init__(self, num_items: int, buffer_size: int, rng: np.random.Generator) -> None:
        self.num_items = int(num_items)
        self.buffer = list(range(min(buffer_size, self.num_items)))
        self.next_index = len(self.buffer)
        self.rng = rng
        self._draws: Iterator[float] = iter(())

    def __len__(self) -> int:
        """Indices still to come this epoch."""
        return len(self.buffer) + self.num_items - self.next_index

    def _draw(self) -> float:
        draw = next(self._draws, None)
        if draw is None:
            self._draws = iter(self.rng.random(_DRAW_BLOCK).tolist())
            draw = next(self._draws)
        return draw

    def take(self, count: int) -> np.ndarray:
        """The next `count` indices (fewer at the end of the epoch)."""
        out = []
        buffer = self.buffer
        for _ in range(min(count, len(self))):
            slot = int(self._draw() * len(buffer))
            out.append(buffer[slot])
            if self.next_index < self.num_items:
                buffer[slot] = self.next_index
                self.next_index += 1
            else:
                buffer[slot] = buffer[-1]
                buffer.pop()
        return np.array(out, dtype=np.int64)


def train_index_batches(num_items: int, batch_size: int, seed: int) -> Iterator[np.ndarray]:
    """Window indices of each training batch: epoch after epoch through the shuffle buffer, each epoch's
    partial last batch dropped. One generator runs through all epochs, so every epoch is shuffled anew."""
    if batch_size < 1:
        raise ValueError(f"batch size {batch_size} must be positive")
    if num_items < batch_size:
        raise ValueError(f"the training stream has {num_items} windows of {WINDOW_LENGTH} tokens, fewer than one batch of {batch_size}")
    rng = seed_generator(seed)
    while True:
        epoch = ShuffleBuffer(num_items, SHUFFLE_BUFFER_SIZE, rng)
        while len(epoch) >= batch_size:
            yield epoch.take(batch_size)


# --- batches ---------------------------------------------------------------------------------


def window_batch(windows: np.ndarray, indices: np.ndarray) -> Dict[str, np.ndarray]:
    """inputs / targets of the given windows, read from the memmap in one gather (in ascending order)."""
    order = np.argsort(indices, kind="stable")
    rows = np.empty((len(indices), WINDOW_LENGTH), dtype=windows.dtype)
    rows[order] = windows[indices[order]]
    return {"inputs": rows[:, :-1].astype(np.int32), "targets": rows[:, 1:].astype(np.int64)}


def train_batches(data: PreparedTokens, batch_size: int, seed: int) -> Iterator[Dict[str, np.ndarray]]:
    """Endless shuffled training batches {inputs, targets} of `batch_size` windows."""
    windows = data.windows("train")
    for indices in train_index_batches(len(windows), batch_size, seed):
        yield window_batch(windows, indices)


def padded_batch(windows: np.ndarray, start: int, batch_size: int) -> Dict[str, np.ndarray]:
    """Windows start.. in order as one full batch; rows past the stream's end are padding with weight 0."""
    stop = min(start + batch_size, len(windows))
    real = stop - start
    rows = np.full((batch_size, WINDOW_LENGTH), PAD_ID, dtype=windows.dtype)
    rows[:real] = windows[start:stop]
    weights = np.zeros((batch_size, SEQUENCE_LENGTH), dtype=np.float32)
    weights[:real] = 1.0
    return {"inputs": rows[:, :-1].astype(np.int32), "targets": rows[:, 1:].astype(np.int64), "weights": weights}


def eval_batches(data: PreparedTokens, split: str, batch_size: int, num_batches: Optional[int] = None,
                 repeat: bool = False) -> Iterator[Dict[str, np.ndarray]]:
    """The first `num_batches` batches of the split's windows in order (all of them when None), the last one
    padded if the stream ends inside it; over and over with repeat=True."""
    if split not in ("eval_train", "validation"):
        raise ValueError(f"Unknown eval split {split!r}; expected eval_train or validation")
    if batch_size < 1:
        raise ValueError(f"batch size {batch_size} must be positive")
    windows = data.windows(split)
    available = -(-len(windows) // batch_size)
    count = available if num_batches is None else min(int(num_batches), available)
    if count == 0 and repeat:
        raise ValueError(f"the {STREAM_OF_SPLIT[split]} stream holds no complete window of {WINDOW_LENGTH} tokens")
    for _ in itertools.count() if repeat else range(1):
        for number in range(count):
            yield padded_batch(windows, number * batch_size, batch_size)


def numpy_batches(data: PreparedTokens, split: str, batch_size: int, seed: int = 0,
                  num_batches: Optional[int] = None, repeat: bool = False) -> Iterator[Dict[str, np.ndarray]]:
    """Global batches of `split` as numpy dicts; `seed` shuffles train, the eval splits ignore it."""
    if split == "train":
        return train_batches(data, batch_size, seed)
    if split in ("eval_train", "validation"):
        return eval_batches(data, split, batch_size, num_batches, repeat)
    if split == "test":
        raise ValueError("finewebedu_lm has no test split (the reference's num_test_examples is 0)")
    raise ValueError(f"Unknown split {split!r}; expected train, eval_train or validation")
