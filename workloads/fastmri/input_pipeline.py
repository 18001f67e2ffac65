"""fastMRI batches from the prepared HDF5 volumes, with the reference's splits, order and preprocessing (reference §4.3).

Splits (decided once, by the preparation command, and listed in `volumes.json`):
  train, eval_train  every volume of knee_singlecoil_train/;
  validation         the first 100 volumes of knee_singlecoil_val/ in name order;
  test               the other val volumes.

Order, as the reference's tf.data pipeline produces it:
  * the split's volumes are interleaved slice by slice (cycle 32 volumes, blocks of 64 slices;
    knee volumes have fewer than 64 slices, so in effect they are read one after another) and
    the slices numbered in that order (the example index);
  * train: each pass goes through a shuffle buffer of 16 x global batch, reshuffled every
    pass; the passes are chained (repeat) and cut into full batches, so a batch may hold the
    end of one pass and the start of the next;
  * eval_train: one pass of the same buffer shuffle, batched without dropping the tail;
  * validation, test: the interleaved order itself.
  Eval splits are cut to `num_examples` slices and `num_batches` batches (the reference's
  `take`); the last batch is padded to the full global batch with zeros and `weights` 0.
  With `repeat`, an eval split yields the same batches again, pass after pass; by default
  they are kept in memory after the first pass, as the reference caches them.

Per slice (`process_slice`): a random column mask keeps the 8 % central k-space columns
(`int(W * 0.08)`) and every other column with probability (W/4 - num_low) / (W - num_low),
so a quarter of the columns survive on average (acceleration 4); the masked k-space goes
through the centred inverse 2-D FFT scaled by sqrt(H * W) (the orthonormal inverse), is
centre-cropped to 320 x 320, and its magnitude is normalised by its own mean and standard
deviation and clipped to [-6, 6]; the fully sampled target (`reconstruction_esc`) is
normalised with the same mean and std and clipped alike. Batches hold `inputs` and `targets`
(B, 320, 320) float32, `mean`, `std`, `volume_max` (B,) float32, and in eval `weights` (B,).

Deliberate differences from the reference, and their effect:
  * Mask randomness. The reference draws the mask with TensorFlow's stateless Philox
    generator, seeded by fold_in(fold_in(data_rng, 0), example index) in train and eval_train
    and by the fixed PRNGKey(0) for validation and test. Here numpy's PCG64 is seeded by
    (data seed, example index), and by a fixed seed for validation and test. The semantics
    are the same (an example keeps its mask in every pass, one fixed mask per width in eval,
    same keep probability, same always-kept centre), but the masks are not bit-identical to
    TensorFlow's, which cannot be reproduced without TensorFlow. Likewise the shuffle buffer's
    draws come from numpy, not tf.data. Effect: individual batches differ from the reference's;
    their distribution, and therefore the metrics in expectation, do not.
  * Training file order. The reference interleaves `glob` output, whose order depends on the
    file system; here the volumes are taken in name order, so runs repeat on every machine.
  * No in-memory cache of the training slices (the reference caches every raw training
    example in RAM, some 65 GB of k-space for the full set): each pass reads the files again,
    from the OS page cache when it fits.
  * The inverse FFT runs along the rows only for the columns the mask keeps (the others are
    zero) and along the columns only for the 320 rows kept by the crop, and the input's
    ifftshift, a unit-modulus phase that the magnitude removes, is skipped. The result equals
    the reference's full transform within float32 rounding, in about half the time.
  * Eval batches always carry `weights` (float32); the reference adds them only to a padded
    batch (float64 ones), and its workload uses ones when they are missing: the same numbers.

Work runs on a pool of threads (`num_threads`, default up to 4): numpy's FFTs and array loops
and the raw file reads run outside the interpreter lock. The slices of the next batches are
submitted before the current batch is handed out, so the pool works while the model trains.
Under DDP, `shard`/`num_shards` computes only one rank's rows of each global batch. Slices/s
per core: benchmarks/fastmri_input_pipeline.py.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import json
import os
import sys
import threading
from pathlib import Path
from typing import Callable, Deque, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from workloads.base import DataProblem

DATASET_NAME = "fastmri"
TRAIN_DIR = "knee_singlecoil_train"
VAL_DIR = "knee_singlecoil_val"
INDEX_NAME = "volumes.json"
INDEX_FORMAT_VERSION = 1
SPLITS = ("train", "eval_train", "validation", "test")
NUM_VALIDATION_VOLUMES = 100  # the reference: sorted(val files)[:100] is validation, the rest test
# The reference's slice counts (reference §4.1) and the volumes they come from.
REFERENCE_COUNTS = {"train": 34_742, "validation": 3_554, "test": 3_581}
REFERENCE_VOLUMES = {"train": 973, "val": 199}

CROP = 320  # the reconstruction (and target) size
CENTER_FRACTION = np.float32(0.08)  # share of central k-space columns always kept
ACCELERATION = np.float32(4.0)  # a quarter of the columns survive on average
CLIP = 6.0  # normalised images are clipped to [-6, 6]
INTERLEAVE_CYCLE = 32  # the reference: interleave(cycle_length=32, block_length=64)
INTERLEAVE_BLOCK = 64
SHUFFLE_BUFFER_BATCHES = 16  # the reference: shuffle(16 * global_batch_size)
EVAL_MASK_SEED = 0  # the reference's _EVAL_SEED: one fixed mask per width in validation and test
# Seed-sequence tags keep the mask and shuffle streams of one data seed apart.
_MASK_TAG, _SHUFFLE_TAG, _EVAL_TAG = 0, 1, 2
OPEN_FILES = 64  # h5py handles kept open; volumes are read in runs, so a few suffice

Batch = Dict[str, np.ndarray]


# --- the prepared index ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Volume:
    path: str  # relative to the dataset dir, e.g. knee_singlecoil_val/file1000000.h5
    slices: int
    width: int  # k-space columns (W); the rows are the 640 read-out samples


def preparation_hint(dataset_dir: Path) -> str:
    data_dir = Path(dataset_dir).parent
    return f"python -m workloads.fastmri.prepare --data-dir {data_dir} --raw-dir RAW"


def write_index(dataset_dir: Path, splits: Dict[str, Sequence[Volume]], source: str, subset: bool) -> Path:
    """volumes.json: per split, the volumes in the pipeline's order as [path, slices, width], one per line."""
    header = {"format_version": INDEX_FORMAT_VERSION, "source": source, "subset": subset}
    lines = [json.dumps(header)[:-1] + ', "splits": {']
    for number, (split, volumes) in enumerate(splits.items()):
        rows = ",\n".join("  " + json.dumps([v.path, v.slices, v.width]) for v in volumes)
        lines.append(f'{json.dumps(split)}: [\n{rows}\n]' + ("," if number < len(splits) - 1 else ""))
    lines.append("}}")
    path = dataset_dir / INDEX_NAME
    temporary = path.with_suffix(".tmp")
    temporary.write_text("\n".join(lines) + "\n")
    os.replace(temporary, path)
    return path


def read_index(dataset_dir: Path) -> Dict[str, List[Volume]]:
    """The volumes of each split, in the order the preparation fixed; a clear error when not prepared."""
    path = Path(dataset_dir) / INDEX_NAME
    try:
        index = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataProblem(f"{path} is missing, so the fastMRI data was never prepared; run: {preparation_hint(dataset_dir)}") from None
    except json.JSONDecodeError:
        raise DataProblem(f"{path} is unreadable; rerun: {preparation_hint(dataset_dir)}") from None
    if index.get("format_version") != INDEX_FORMAT_VERSION:
        raise DataProblem(f"{path} has format {index.get('format_version')}, expected {INDEX_FORMAT_VERSION}; rerun: {preparation_hint(dataset_dir)}")
    return {split: [Volume(*entry) for entry in volumes] for split, volumes in index["splits"].items()}


# --- per-slice preprocessing ----------------------------------------------------------------------


def num_low_frequencies(width: int) -> int:
    # float32 arithmetic and truncation, as the reference's tf.cast(W * 0.08, int32)
    return int(np.float32(width) * CENTER_FRACTION)


def keep_probability(width: int) -> np.float32:
    """Chance that a column outside the centre is kept: (W/4 - num_low) / (W - num_low), in float32."""
    low = np.float32(num_low_frequencies(width))
    cols = np.float32(width)
    return (cols / ACCELERATION - low) / (cols - low)


def column_mask(width: int, uniform: np.ndarray) -> np.ndarray:
    """Which k-space columns survive: uniform draws below the keep probability, and the centre always."""
    low = num_low_frequencies(width)
    start = (width - low + 1) // 2  # the reference's pad
    keep = uniform < keep_probability(width)
    keep[start : start + low] = True
    return keep


def mask_seed_words(split: str, seed: int, example_index: int) -> Tuple[int, ...]:
    """The words seeding one slice's mask: per example in train and eval_train, fixed in validation and test."""
    if split in ("train", "eval_train"):
        return (int(seed) % 2**32, _MASK_TAG, int(example_index))
    return (EVAL_MASK_SEED, _EVAL_TAG)


def draw_mask(width: int, seed_words: Tuple[int, ...]) -> np.ndarray:
    uniform = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed_words))).random(width, dtype=np.float32)
    return column_mask(width, uniform)


_workspace = threading.local()


def _scratch(name: str, shape: Tuple[int, ...], dtype: type) -> np.ndarray:
    """A buffer of this thread's, reused from slice to slice (fresh 1-2 MB arrays cost page faults)."""
    buffers = _workspace.__dict__.setdefault("buffers", {})
    key = (name, shape)
    if key not in buffers:
        buffers[key] = np.empty(shape, dtype=dtype)
    return buffers[key]


def _shifted_crop(length: int) -> List[Tuple[slice, slice]]:
    """(source, destination) runs of fftshift(y)[c : c + 320] for c = (length - 320) // 2: the centre
    crop of the shifted axis, read from the unshifted one (fftshift(y)[j] = y[(j - length // 2) % length])."""
    first = ((length - CROP) // 2 - length // 2) % length
    head = min(CROP, length - first)
    runs = [(slice(first, first + head), slice(0, head))]
    if head < CROP:
        runs.append((slice(0, CROP - head), slice(head, CROP)))
    return runs


def zero_filled_magnitude(kspace: np.ndarray, keep: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """|centre crop of ifft2c(kspace * mask)| * sqrt(H * W), (320, 320) float32.

    ifft2c is fftshift(ifft2(ifftshift(.))). The ifftshift of the input only multiplies the
    transform by a unit-modulus phase, which the magnitude drops, so it is left out; the
    fftshift of the output becomes part of the crop. The 2-D transform runs axis by axis: along
    the rows only for the kept columns (a zero column transforms to zero), then along the
    columns only for the 320 rows the crop keeps. Both are orthonormal, the reference's
    sqrt(H * W) scaling of an unnormalised ifft2.
    """
    height, width = kspace.shape
    columns = np.flatnonzero(keep)
    along_rows = kspace[:, columns]  # (H, K)
    np.fft.ifft(along_rows, axis=0, norm="ortho", out=along_rows)
    filled = _scratch("filled", (CROP, width), np.complex64)
    filled.fill(0)
    for source, destination in _shifted_crop(height):
        filled[destination, columns] = along_rows[source]
    np.fft.ifft(filled, axis=1, norm="ortho", out=filled)
    out = np.empty((CROP, CROP), dtype=np.float32) if out is None else out
    for source, destination in _shifted_crop(width):
        np.abs(filled[:, source], out=out[:, destination])
    return out


def process_slice(
    kspace: np.ndarray, target: np.ndarray, keep: np.ndarray, inputs_out: np.ndarray, targets_out: np.ndarray
) -> Tuple[float, float]:
    """Writes the normalised, clipped input and target of one slice into the given (320, 320) arrays; returns (mean, std)."""
    magnitude = zero_filled_magnitude(kspace, keep, out=_scratch("magnitude", (CROP, CROP), np.float32))
    mean = magnitude.mean()  # float32, as the reference's tf.math.reduce_mean
    np.subtract(magnitude, mean, out=inputs_out)
    centred = inputs_out.reshape(-1)
    std = np.sqrt(np.dot(centred, centred) / np.float32(centred.size))  # population std, as tf.math.reduce_std
    np.divide(inputs_out, std, out=inputs_out)
    np.clip(inputs_out, -CLIP, CLIP, out=inputs_out)
    np.subtract(target, mean, out=targets_out)
    np.divide(targets_out, std, out=targets_out)
    np.clip(targets_out, -CLIP, CLIP, out=targets_out)
    return float(mean), float(std)


# --- order ---------------------------------------------------------------------------------------------


def interleave_order(slice_counts: Sequence[int], cycle_length: int = INTERLEAVE_CYCLE, block_length: int = INTERLEAVE_BLOCK) -> np.ndarray:
    """(volume position, slice) pairs in tf.data `interleave` order, shape (N, 2).

    `cycle_length` volumes are open at once; each in turn gives up to `block_length` slices.
    A volume that runs out frees its slot, and the slot after it is served next; an empty
    slot takes the next unopened volume.
    """
    pending = collections.deque(range(len(slice_counts)))
    slots: List[Optional[List[int]]] = [None] * cycle_length  # [volume, next slice]
    order: List[Tuple[int, int]] = []
    slot = 0
    open_count = 0
    while pending or open_count:
        current = slots[slot]
        if current is None:
            if pending:
                slots[slot] = [pending.popleft(), 0]
                open_count += 1
            else:
                slot = (slot + 1) % cycle_length
            continue
        volume, start = current
        take = min(block_length, slice_counts[volume] - start)
        order.extend((volume, start + i) for i in range(take))
        if start + take == slice_counts[volume]:
            slots[slot] = None
            open_count -= 1
        else:
            current[1] = start + take
        slot = (slot + 1) % cycle_length
    return np.array(order, dtype=np.int64).reshape(-1, 2)


def shuffle_buffer_order(num_examples: int, buffer_size: int, rng: np.random.Generator) -> np.ndarray:
    """One pass through a tf.data-style shuffle buffer: fill it, then draw a random slot and refill it
    from the input; once the input is used up, the buffer drains in random order."""
    size = min(buffer_size, num_examples)
    buffer = list(range(size))
    following = size
    # The buffer holds `size` examples until the input runs out, then one fewer per draw.
    occupancy = np.concatenate([np.full(num_examples - size, size), np.arange(size, 0, -1)])
    slots = (rng.random(num_examples) * occupancy).astype(np.int64)
    order = np.empty(num_examples, dtype=np.int64)
    for position, slot in enumerate(slots.tolist()):
        order[position] = buffer[slot]
        if following < num_examples:
            buffer[slot] = following
            following += 1
        else:
            buffer[slot] = buffer[-1]
            buffer.pop()
    return order


def _pass_rng(seed: int, pass_index: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence((int(seed) % 2**32, _SHUFFLE_TAG, pass_index))))


def train_plan(num_examples: int, batch_size: int, seed: int, repeat: bool) -> Iterator[np.ndarray]:
    """Example indices of each full training batch: buffer-shuffled passes, chained when repeating."""
    if num_examples == 0:
        raise ValueError("the training split has no slices")
    if not repeat and num_examples < batch_size:
        raise ValueError(f"the training split has {num_examples} slices, fewer than one batch of {batch_size}")
    buffer_size = SHUFFLE_BUFFER_BATCHES * batch_size
    carried = np.empty(0, dtype=np.int64)
    pass_index = 0
    while True:
        stream = np.concatenate([carried, shuffle_buffer_order(num_examples, buffer_size, _pass_rng(seed, pass_index))])
        pass_index += 1
        full = len(stream) // batch_size * batch_size
        for start in range(0, full, batch_size):
            yield stream[start : start + batch_size]
        carried = stream[full:]
        if not repeat:
            return  # drop_remainder: the short tail of the only pass is dropped


def eval_order(split: str, num_examples: int, batch_size: int, seed: int) -> np.ndarray:
    """Example indices of one eval pass: eval_train goes through the shuffle buffer once, the others stay in order."""
    if split == "eval_train":
        return shuffle_buffer_order(num_examples, SHUFFLE_BUFFER_BATCHES * batch_size, _pass_rng(seed, 0))
    return np.arange(num_examples, dtype=np.int64)


# --- reading and assembling ---------------------------------------------------------------------


@dataclasses.dataclass
class _OpenVolume:
    handle: object  # h5py.File
    kspace: object  # its datasets
    target: object
    volume_max: float
    fd: Optional[int]  # set when both datasets can be read straight from the file (see VolumeReader)
    kspace_offset: Optional[int]
    target_offset: Optional[int]


def _raw_offset(dataset, dtype: np.dtype) -> Optional[int]:
    """Byte offset of a contiguous, uncompressed dataset stored exactly as `dtype`, else None."""
    if dataset.chunks is not None or dataset.dtype != dtype:
        return None
    return dataset.id.get_offset()


class VolumeReader:
    """Slices of a split's volumes through a small pool of open files.

    The knee volumes store both datasets contiguously and uncompressed, so a slice is one
    `preadv` at a known offset into this thread's buffer (a quarter of what h5py's own read
    costs, and without holding the interpreter); other layouts go through h5py. Reads happen
    under this reader's lock, which also keeps a file from being closed mid-read (h5py
    serialises its calls behind one lock anyway); the FFTs that follow run in parallel.
    """

    def __init__(self, dataset_dir: Path, volumes: Sequence[Volume]) -> None:
        self._dataset_dir = Path(dataset_dir)
        self._volumes = list(volumes)
        self._open: "collections.OrderedDict[int, _OpenVolume]" = collections.OrderedDict()
        self._lock = threading.Lock()

    def _volume(self, position: int) -> _OpenVolume:
        import h5py

        entry = self._open.get(position)
        if entry is not None:
            self._open.move_to_end(position)
            return entry
        path = self._dataset_dir / self._volumes[position].path
        try:
            handle = h5py.File(path, "r")
            kspace, target = handle["kspace"], handle["reconstruction_esc"]
            kspace_offset = _raw_offset(kspace, np.dtype("<c8"))
            target_offset = _raw_offset(target, np.dtype("<f4"))
            fd = os.open(path, os.O_RDONLY) if None not in (kspace_offset, target_offset) and sys.byteorder == "little" else None
        except (OSError, KeyError) as error:
            raise DataProblem(f"{path} cannot be read ({error}); rerun: {preparation_hint(self._dataset_dir)}") from None
        volume_max = float(handle.attrs.get("max", 0.0))  # the reference's default when the attribute is missing
        entry = _OpenVolume(handle, kspace, target, volume_max, fd, kspace_offset, target_offset)
        self._open[position] = entry
        if len(self._open) > OPEN_FILES:
            self._close(self._open.popitem(last=False)[1])
        return entry

    @staticmethod
    def _close(entry: _OpenVolume) -> None:
        if entry.fd is not None:
            os.close(entry.fd)
        entry.handle.close()

    def read(self, position: int, index: int) -> Tuple[np.ndarray, np.ndarray, float]:
        """(k-space (640, W) complex64, target (320, 320) float32, volume max) of one slice, in this
        thread's buffers: valid until the thread's next read."""
        with self._lock:
            entry = self._volume(position)
            kspace = _scratch("kspace", entry.kspace.shape[1:], np.complex64)
            target = _scratch("target", entry.target.shape[1:], np.float32)
            if entry.fd is not None:
                for buffer, offset in ((kspace, entry.kspace_offset), (target, entry.target_offset)):
                    start = offset + index * buffer.nbytes
                    if os.preadv(entry.fd, [memoryview(buffer).cast("B")], start) != buffer.nbytes:
                        path = self._dataset_dir / self._volumes[position].path
                        raise DataProblem(f"{path} is shorter than its header says; rerun: {preparation_hint(self._dataset_dir)}")
            else:
                entry.kspace.read_direct(kspace, np.s_[index])
                entry.target.read_direct(target, np.s_[index])
            return kspace, target, entry.volume_max

    def close(self) -> None:
        with self._lock:
            while self._open:
                self._close(self._open.popitem()[1])


@dataclasses.dataclass
class _Examples:
    """A split's slices in interleave order: volume position and slice per example index."""

    volumes: List[Volume]
    order: np.ndarray  # (N, 2)

    @property
    def count(self) -> int:
        return len(self.order)


def _split_examples(dataset_dir: Path, split: str) -> _Examples:
    index = read_index(dataset_dir)
    volumes = index["train" if split == "eval_train" else split]
    return _Examples(volumes, interleave_order([volume.slices for volume in volumes]))


def _empty_batch(rows: int, with_weights: bool) -> Batch:
    batch = {
        "inputs": np.zeros((rows, CROP, CROP), dtype=np.float32),
        "targets": np.zeros((rows, CROP, CROP), dtype=np.float32),
        "mean": np.zeros(rows, dtype=np.float32),
        "std": np.zeros(rows, dtype=np.float32),
        "volume_max": np.zeros(rows, dtype=np.float32),
    }
    if with_weights:
        batch["weights"] = np.zeros(rows, dtype=np.float32)
    return batch


class _SliceJob:
    """Fills one row of a batch: read, mask, reconstruct, normalise."""

    def __init__(self, reader: VolumeReader, examples: _Examples, split: str, seed: int) -> None:
        self._reader = reader
        self._examples = examples
        self._split = split
        self._seed = seed
        self._eval_masks: Dict[int, np.ndarray] = {}  # validation and test: one mask per width

    def mask(self, example_index: int, width: int) -> np.ndarray:
        if self._split in ("validation", "test"):
            keep = self._eval_masks.get(width)
            if keep is None:
                keep = self._eval_masks.setdefault(width, draw_mask(width, mask_seed_words(self._split, self._seed, 0)))
            return keep
        return draw_mask(width, mask_seed_words(self._split, self._seed, example_index))

    def __call__(self, batch: Batch, row: int, example_index: int) -> None:
        position, index = self._examples.order[example_index]
        kspace, target, volume_max = self._reader.read(int(position), int(index))
        keep = self.mask(example_index, kspace.shape[1])
        mean, std = process_slice(kspace, target, keep, batch["inputs"][row], batch["targets"][row])
        batch["mean"][row], batch["std"][row], batch["volume_max"][row] = mean, std, volume_max
        if "weights" in batch:
            batch["weights"][row] = 1.0


def _run_batches(
    plan: Iterator[np.ndarray],
    job: _SliceJob,
    rows: Tuple[int, int],
    with_weights: bool,
    num_threads: int,
    ahead: int,
) -> Iterator[Batch]:
    """Batches from planned example indices (padding rows are -1); `ahead` batches are in the works meanwhile."""
    start, stop = rows

    def submit(indices: np.ndarray, pool: Optional[concurrent.futures.ThreadPoolExecutor]) -> Tuple[Batch, List]:
        batch = _empty_batch(stop - start, with_weights)
        calls = [(row, int(example)) for row, example in enumerate(indices[start:stop]) if example >= 0]
        if pool is None:
            for row, example in calls:
                job(batch, row, example)
            return batch, []
        return batch, [pool.submit(job, batch, row, example) for row, example in calls]

    if num_threads <= 1:
        for indices in plan:
            yield submit(indices, None)[0]
        return
    in_flight: Deque[Tuple[Batch, List]] = collections.deque()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=num_threads, thread_name_prefix="fastmri-slices")
    try:
        for indices in plan:
            in_flight.append(submit(indices, pool))
            if len(in_flight) > ahead:
                batch, futures = in_flight.popleft()
                for future in futures:
                    future.result()  # re-raises a worker's error here
                yield batch
        while in_flight:
            batch, futures = in_flight.popleft()
            for future in futures:
                future.result()
            yield batch
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _padded(indices: np.ndarray, batch_size: int) -> np.ndarray:
    if len(indices) == batch_size:
        return indices
    return np.concatenate([indices, np.full(batch_size - len(indices), -1, dtype=np.int64)])


def _replayed(first_pass: Iterator[Batch], cache: bool, rebuild: Callable[[], Iterator[Batch]]) -> Iterator[Batch]:
    """Eval with repeat: the first pass's batches again and again, from memory or recomputed."""
    kept: List[Batch] = []
    for batch in first_pass:
        if cache:
            kept.append(batch)
        yield batch
    while True:
        if cache:
            if not kept:
                return
            yield from kept
        else:
            yield from rebuild()


def default_num_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def numpy_batches(
    dataset_dir: Path,
    split: str,
    global_batch_size: int,
    seed: int,
    repeat: bool,
    num_batches: Optional[int] = None,
    num_examples: Optional[int] = None,
    *,
    shard: int = 0,
    num_shards: int = 1,
    num_threads: Optional[int] = None,
    cache: Optional[bool] = None,
) -> Iterator[Batch]:
    """Global batches of a split under the reference's rules (module docstring).

    `num_batches` caps the batches of a pass (the reference's `take`; also honoured in
    training); `num_examples` caps an eval split's slices (ignored in training). With
    `num_shards` > 1 only rows [shard * B/n, (shard + 1) * B/n) of every global batch are
    computed and returned: the same rows the whole batch would hold there, at 1/n of the work.
    `cache` (default: yes for repeated eval splits) keeps eval batches in memory after the
    first pass; pass False to recompute them (identical) instead. Batches are shared when
    cached: treat them as read-only.
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)}.")
    if global_batch_size <= 0 or global_batch_size % num_shards:
        raise ValueError(f"global batch {global_batch_size} does not divide into {num_shards} shards; use a multiple of {num_shards}")
    per_shard = global_batch_size // num_shards
    rows = (shard * per_shard, (shard + 1) * per_shard)
    threads = default_num_threads() if num_threads is None else num_threads
    examples = _split_examples(Path(dataset_dir), split)

    def build() -> Iterator[Batch]:
        reader = VolumeReader(Path(dataset_dir), examples.volumes)
        job = _SliceJob(reader, examples, split, seed)
        if split == "train":
            plan: Iterator[np.ndarray] = train_plan(examples.count, global_batch_size, seed, repeat)
            with_weights, ahead = False, 2
        else:
            order = eval_order(split, examples.count, global_batch_size, seed)
            if num_examples is not None:
                order = order[:num_examples]
            batches = [order[i : i + global_batch_size] for i in range(0, len(order), global_batch_size)]
            plan = (_padded(indices, global_batch_size) for indices in batches)
            with_weights, ahead = True, 1
        if num_batches is not None:
            plan = (indices for _, indices in zip(range(num_batches), plan))
        try:
            yield from _run_batches(plan, job, rows, with_weights, threads, ahead)
        finally:
            reader.close()

    if split == "train" or not repeat:
        return build()
    if examples.count == 0:
        raise ValueError(f"the {split} split has no slices")
    return _replayed(build(), cache if cache is not None else True, build)
