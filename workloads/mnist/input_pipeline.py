"""MNIST from the standard IDX files, batched the way upstream's tf.data pipeline does (reference §4.10).

Splits: train = the first 50,000 of the 60,000 training digits, validation =
the last 10,000, test = the official 10,000 test digits. Train and eval_train
are shuffled through a buffer of 16 batches over the repeated stream; eval
splits are batched in order and padded with `weights` marking real rows.
Inputs are scaled to [0, 1] and standardised with MNIST's mean and stddev.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Dict, Iterator, Tuple

import numpy as np

from pytest_algoperf.api.data_utils import shard_and_maybe_pad_np
from workloads.mnist.idx_format import read_idx

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
NUM_TRAIN = 50_000
NUM_VALIDATION = 10_000
NUM_TEST = 10_000
PIXEL_MAX = 255.0
SHUFFLE_BUFFER_BATCHES = 16  # upstream: shuffle(16 * global_batch_size)


@functools.lru_cache(maxsize=2)
def _load_normalized(
    dataset_dir: str, mean: float, stddev: float, num_train: int = NUM_TRAIN
) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """The three splits; validation is the rest of the training file after the first `num_train` digits."""
    root = Path(dataset_dir)
    train_images = read_idx(root / IDX_FILES["train_images"])
    train_labels = read_idx(root / IDX_FILES["train_labels"])
    test_images = read_idx(root / IDX_FILES["test_images"])
    test_labels = read_idx(root / IDX_FILES["test_labels"])

    def normalise(images: np.ndarray) -> np.ndarray:
        # (N, 28, 28) uint8 -> (N, 28, 28, 1) float32 in upstream's NHWC layout. The mean and
        # stddev are MNIST's statistics for pixels in [0, 1], so pixels are scaled to [0, 1]
        # first; upstream subtracts them from raw 0..255 bytes, which saturates the sigmoid.
        return ((images.astype(np.float32) / PIXEL_MAX - mean) / stddev)[..., None]

    return {
        "train": (normalise(train_images[:num_train]), train_labels[:num_train].astype(np.int64)),
        "validation": (normalise(train_images[num_train:]), train_labels[num_train:].astype(np.int64)),
        "test": (normalise(test_images), test_labels.astype(np.int64)),
    }


class ShuffleBuffer:
    """Streams indices of a repeated dataset through a fixed-size random buffer (tf.data `shuffle` semantics)."""

    def __init__(self, num_examples: int, buffer_size: int, seed: int) -> None:
        self._num_examples = num_examples
        self._rng = np.random.RandomState(seed % 2**32)
        self._next_index = 0
        self._buffer = np.array([self._take() for _ in range(buffer_size)], dtype=np.int64)

    def _take(self) -> int:
        index = self._next_index % self._num_examples
        self._next_index += 1
        return index

    def draw(self, count: int) -> np.ndarray:
        slots = self._rng.randint(0, len(self._buffer), size=count)
        drawn = np.empty(count, dtype=np.int64)
        for position, slot in enumerate(slots):
            drawn[position] = self._buffer[slot]
            self._buffer[slot] = self._take()
        return drawn


def _shuffled_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int) -> Iterator[Dict[str, np.ndarray]]:
    buffer = ShuffleBuffer(len(labels), SHUFFLE_BUFFER_BATCHES * batch_size, seed)
    while True:
        indices = buffer.draw(batch_size)
        yield {"inputs": images[indices], "targets": labels[indices]}


def _ordered_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, repeat: bool) -> Iterator[Dict[str, np.ndarray]]:
    while True:
        for start in range(0, len(labels), batch_size):
            batch = {"inputs": images[start : start + batch_size], "targets": labels[start : start + batch_size]}
            yield shard_and_maybe_pad_np(batch, global_batch_size=batch_size)
        if not repeat:
            return


def numpy_batches(
    dataset_dir: Path, split: str, batch_size: int, seed: int, mean: float, stddev: float, repeat: bool, num_train: int = NUM_TRAIN
) -> Iterator[Dict[str, np.ndarray]]:
    arrays = _load_normalized(str(dataset_dir), mean, stddev, num_train)
    if split in ("train", "eval_train"):
        return _shuffled_batches(*arrays["train"], batch_size=batch_size, seed=seed)
    if split in ("validation", "test"):
        return _ordered_batches(*arrays[split], batch_size=batch_size, repeat=repeat)
    raise ValueError(f"Unknown split {split!r}; expected train, eval_train, validation or test.")


def torch_batches(numpy_iterator: Iterator[Dict[str, np.ndarray]], device) -> Iterator[Dict[str, "object"]]:
    """Moves batches to `device` in upstream's PyTorch layout: NCHW inputs, long targets, bool weights."""
    import torch

    non_blocking = device.type == "cuda"
    for batch in numpy_iterator:
        inputs = torch.from_numpy(np.ascontiguousarray(batch["inputs"]))
        targets = torch.from_numpy(batch["targets"])
        weights = torch.from_numpy(batch["weights"]).bool() if "weights" in batch else torch.ones(len(targets), dtype=torch.bool)
        if non_blocking:
            inputs, targets, weights = inputs.pin_memory(), targets.pin_memory(), weights.pin_memory()
        yield {
            "inputs": inputs.to(device, non_blocking=non_blocking).permute(0, 3, 1, 2),
            "targets": targets.to(device, non_blocking=non_blocking),
            "weights": weights.to(device, non_blocking=non_blocking),
        }
