"""WMT batches as the reference's tf.data pipeline builds them (reference §4.9), from the prepared arrays.

train:       the stored training order through a 1,024-example shuffle buffer
             (seeded by the data rng, reshuffled every epoch), repeated forever,
             packed greedily into rows of 256 tokens per side (packing restarts
             every 256 examples, as the reference packs one padded batch of 256
             at a time), batched with the remainder dropped. Keys: inputs,
             inputs_position, inputs_segmentation, targets, targets_position,
             targets_segmentation, weights.
eval_train:  the training split through the same shuffle buffer (seeded by the
             eval rng), not packed: padded batches as below.
validation,
test:        in order, each sentence padded to 256 tokens, the last batch padded
             with empty rows. Keys: inputs, targets, weights.
Every split: `weights = targets > 0` (and 0 on padding rows); eval iterators
take the first `num_batches` batches and repeat them. All tensors are int64.
"""

from __future__ import annotations

import functools
import itertools
import json
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from pytest_algoperf.api.data_utils import shard_and_maybe_pad_np
from workloads.host_batches import prefetched, torch_batches  # noqa: F401 (this pipeline's public API)
from workloads.wmt.prepare import METADATA_NAME
from workloads.wmt.token_arrays import TokenizedPairs, load_split
from workloads.wmt.tokenizer import MODEL_FILE_NAME, Tokenizer

SHUFFLE_BUFFER_SIZE = 1024  # the reference's tf.data shuffle buffer
PACKED_KEYS = ("inputs", "inputs_position", "inputs_segmentation", "targets", "targets_position", "targets_segmentation")
_UNIFORM_BLOCK = 4096  # shuffle draws are made in blocks: one numpy call per block, not per example


class PreparedWmt:
    """A prepared WMT data dir: its splits (memory-mapped on first use), sequence length and vocabulary."""

    def __init__(self, dataset_dir: Path) -> None:
        metadata = json.loads((dataset_dir / METADATA_NAME).read_text())
        self.dataset_dir = dataset_dir
        self.max_length = int(metadata["max_length"])  # 256 unless a smoke data dir was prepared shorter
        self.vocab_size = int(metadata["vocab_size"])
        self._splits: Dict[str, TokenizedPairs] = {}

    @functools.cached_property
    def tokenizer(self) -> Tokenizer:
        return Tokenizer(self.dataset_dir / MODEL_FILE_NAME)

    def split(self, name: str) -> TokenizedPairs:
        stored = "train" if name == "eval_train" else name  # eval_train draws from the training split
        if stored not in self._splits:
            self._splits[stored] = load_split(self.dataset_dir, stored)
        return self._splits[stored]


def open_prepared(dataset_dir: str) -> PreparedWmt:
    """The prepared data at dataset_dir; reopened only when a new preparation replaced it."""
    stamp = (Path(dataset_dir) / METADATA_NAME).stat().st_mtime_ns
    return _open_prepared(dataset_dir, stamp)


@functools.lru_cache(maxsize=4)
def _open_prepared(dataset_dir: str, stamp: int) -> PreparedWmt:
    del stamp  # part of the cache key only
    return PreparedWmt(Path(dataset_dir))


# --- order -----------------------------------------------------------------------------------


def buffer_shuffle(num_examples: int, buffer_size: int, seed: Sequence[int]) -> Iterator[int]:
    """Indices 0..num_examples-1 through a shuffle buffer, as tf.data's `shuffle` emits a finite dataset.

    The buffer holds the next `buffer_size` indices; each output is a uniformly
    drawn buffer slot, refilled with the next index (or dropped once none is left).
    """
    rng = np.random.default_rng(list(seed))
    buffer = list(range(min(buffer_size, num_examples)))
    next_index = len(buffer)
    uniforms: Iterator[float] = iter(())
    while buffer:
        draw = next(uniforms, None)
        if draw is None:
            uniforms = iter(rng.random(_UNIFORM_BLOCK).tolist())
            draw = next(uniforms)
        slot = int(draw * len(buffer))
        yield buffer[slot]
        if next_index < num_examples:
            buffer[slot] = next_index
            next_index += 1
        else:
            buffer[slot] = buffer[-1]
            buffer.pop()


def shuffled_epochs(num_examples: int, seed: int) -> Iterator[int]:
    """The repeated, per-epoch reshuffled index stream of the training split."""
    for epoch in itertools.count():
        yield from buffer_shuffle(num_examples, SHUFFLE_BUFFER_SIZE, (seed, epoch))


# --- packing ---------------------------------------------------------------------------------


def _packable(tokens: np.ndarray) -> np.ndarray:
    """The reference keeps as many leading tokens as the sentence has non-zero ids.

    Quirk kept: an unknown piece (id 0) therefore costs the sentence its last
    token(s), EOS included; without one, this is the whole sentence.
    """
    return tokens[: int(np.count_nonzero(tokens))]


def pack_rows(examples: Iterator[Tuple[np.ndarray, np.ndarray]], length: int) -> Iterator[List[Tuple[np.ndarray, np.ndarray]]]:
    """Groups examples into rows whose inputs and targets each fit in `length` tokens.

    Greedy, in stream order: an example joins the current row if both sides
    still fit, else the row is closed and a new one begins. Rows also close at
    the end of every group of `length` examples, as the reference packs one
    padded batch of `length` examples at a time.
    """
    while True:
        group = list(itertools.islice(examples, length))
        if not group:
            return
        row: List[Tuple[np.ndarray, np.ndarray]] = []
        used_inputs = used_targets = 0
        for source, target in group:
            source, target = _packable(source), _packable(target)
            if row and (used_inputs + len(source) > length or used_targets + len(target) > length):
                yield row
                row, used_inputs, used_targets = [], 0, 0
            row.append((source, target))
            used_inputs += len(source)
            used_targets += len(target)
        if row:
            yield row


def packed_batch(rows: Sequence[Sequence[Tuple[np.ndarray, np.ndarray]]], length: int) -> Dict[str, np.ndarray]:
    """(B, length) arrays of packed rows: tokens, positions within each example, segment numbers from 1."""
    batch = {key: np.zeros((len(rows), length), dtype=np.int64) for key in PACKED_KEYS}
    positions = np.arange(length, dtype=np.int64)
    for row_index, row in enumerate(rows):
        for side, tokens_key, position_key in ((0, "inputs", "inputs_position"), (1, "targets", "targets_position")):
            start = 0
            for example in row:
                tokens = example[side]
                batch[tokens_key][row_index, start : start + len(tokens)] = tokens
                batch[position_key][row_index, start : start + len(tokens)] = positions[: len(tokens)]
                start += len(tokens)
    for side in ("inputs", "targets"):
        # The reference's rule: a new segment wherever a position restarts at 0, zero on padding
        # (and, quirk kept, on any unknown piece inside a sentence).
        starts = (batch[f"{side}_position"] == 0).cumsum(axis=1)
        batch[f"{side}_segmentation"] = starts * (batch[side] != 0)
    batch["weights"] = (batch["targets"] > 0).astype(np.int64)
    return batch


def training_batches(data: PreparedWmt, batch_size: int, seed: int) -> Iterator[Dict[str, np.ndarray]]:
    pairs = data.split("train")
    examples = ((pairs.inputs[index], pairs.targets[index]) for index in shuffled_epochs(len(pairs), seed))
    rows = pack_rows(examples, data.max_length)
    while True:
        yield packed_batch(list(itertools.islice(rows, batch_size)), data.max_length)


# --- evaluation batches ----------------------------------------------------------------------


def padded_batches(pairs: TokenizedPairs, order: Iterable[int], batch_size: int, length: int) -> Iterator[Dict[str, np.ndarray]]:
    """Batches of whole sentences padded to `length`; a short last batch is padded with empty rows."""
    order = iter(order)
    while True:
        indices = list(itertools.islice(order, batch_size))
        if not indices:
            return
        inputs = np.zeros((len(indices), length), dtype=np.int64)
        targets = np.zeros((len(indices), length), dtype=np.int64)
        for row, index in enumerate(indices):
            source, target = pairs.inputs[index], pairs.targets[index]
            inputs[row, : len(source)] = source
            targets[row, : len(target)] = target
        # The reference pads every eval batch to the full batch size, with 2-D padding weights.
        batch = shard_and_maybe_pad_np(
            {"inputs": inputs, "targets": targets, "weights": np.ones(targets.shape, dtype=np.int64)},
            global_batch_size=batch_size,
        )
        batch["weights"] = ((batch["targets"] > 0) & (batch["weights"] > 0)).astype(np.int64)
        yield batch


def eval_batches(data: PreparedWmt, split: str, batch_size: int, seed: int,
                 num_batches: Optional[int], repeat: bool) -> Iterator[Dict[str, np.ndarray]]:
    pairs = data.split(split)
    for epoch in itertools.count():
        if split == "eval_train":
            order: Iterable[int] = buffer_shuffle(len(pairs), SHUFFLE_BUFFER_SIZE, (seed, epoch))
        else:
            order = range(len(pairs))
        yield from itertools.islice(padded_batches(pairs, order, batch_size, data.max_length), num_batches)
        if not repeat:
            return


def numpy_batches(data: PreparedWmt, split: str, batch_size: int, seed: int,
                  num_batches: Optional[int] = None, repeat: bool = False) -> Iterator[Dict[str, np.ndarray]]:
    if split == "train":
        return training_batches(data, batch_size, seed)
    if split in ("eval_train", "validation", "test"):
        return eval_batches(data, split, batch_size, seed, num_batches, repeat)
    raise ValueError(f"Unknown split {split!r}; expected train, eval_train, validation or test.")


# --- to the device ---------------------------------------------------------------------------
