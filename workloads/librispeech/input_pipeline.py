"""LibriSpeech batches from a prepared data dir, with the reference's splits, padding and samplers (reference §4.6).

Layout (the reference's, written by workloads/librispeech/prepare.py or by upstream's
datasets/librispeech_preprocess.py), in DATA_DIR/librispeech/:
  <subset>/<utterance id>_audio.npy     16 kHz samples as integers (the reference stores int64)
  <subset>/<utterance id>_targets.npy   int32 SentencePiece ids ending in EOS
  <subset>.csv                          the subset's utterance ids, as pandas writes a one-column
                                        frame: a `,id` header, then `<row number>,<id>` lines
  spm_model.vocab                       the SentencePiece model (workloads/librispeech/tokenizer.py)
for the subsets train-clean-100, train-clean-360, train-other-500, dev-clean, dev-other and
test-clean. Rows are read from column 1 of each csv, in file order, as upstream's
LibriSpeechDataset does.

Splits (upstream's PyTorch workload):
  train       train-clean-100 + train-clean-360 + train-other-500 (263,840 utterances); endless,
              a new permutation every epoch (DistributedSampler.set_epoch), drop_last;
  eval_train  the same rows, range(num_train) shuffled by random.Random(int(data_rng[0])), the
              first 5,376 (the validation size rounded up to whole 256-utterance eval batches);
  validation  dev-clean + dev-other (5,348); test = test-clean (2,472).
Under DDP each rank reads its own rows: DistributedSampler for train, and for eval the
rank-strided rows rank, rank + N, ... (upstream's DistributedEvalSampler).

Batches: {'inputs': (audio, audio_paddings), 'targets': (targets, target_paddings)}, all
float32 as upstream: audio (B, 320,000) zero-padded, targets (B, 256) padded with 0 (blank),
paddings 1.0 where padded. Eval batches add 'weights' (B,) and are always full per-device
batches: the last rows are padded with empty utterances (audio and targets all padding)
that weigh 0, and a rank whose strided share runs out yields all-padding batches, so every
rank takes exactly ceil(num_examples / global batch) batches per pass. An empty utterance
has CTC loss 0 and no target length, so upstream's loss already leaves it out; the WER
sums must skip rows of weight 0 (workloads/librispeech/metrics.py takes the weights).

Deliberate differences from upstream, and their effect:
  * upstream's last eval batch is short and carries no weights (its DataLoader keeps the
    remainder); here it is padded as described. Same sums, and under DDP every rank runs
    the same number of eval steps (upstream's ranks can disagree by one batch);
  * the train order is seeded from data_rng (upstream: torch's global RNG without DDP,
    DistributedSampler's fixed seed 0 under DDP);
  * padding is done once per batch in the collate function instead of per utterance in
    __getitem__, which saves a copy of every row; the arrays are the same;
  * an utterance longer than 320,000 samples or 256 target ids is named as a data problem
    (upstream's np.pad would fail with a negative width).
Utterances/s per core: benchmarks/librispeech_input_pipeline.py.
"""

from __future__ import annotations

import csv
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from workloads.base import DataProblem
from workloads.imagenet.input_pipeline import eval_train_indices, num_eval_batches, rank_strided_indices
from workloads.librispeech.tokenizer import MODEL_FILE_NAME
from workloads.parallel import World

if TYPE_CHECKING:
    import torch

DATASET_NAME = "librispeech"
TOKENIZER_FILE = MODEL_FILE_NAME
TRAIN_SUBSETS = ("train-clean-100", "train-clean-360", "train-other-500")
VALIDATION_SUBSETS = ("dev-clean", "dev-other")
TEST_SUBSETS = ("test-clean",)
SUBSETS = TRAIN_SUBSETS + VALIDATION_SUBSETS + TEST_SUBSETS
SPLIT_SUBSETS = {"train": TRAIN_SUBSETS, "eval_train": TRAIN_SUBSETS, "validation": VALIDATION_SUBSETS, "test": TEST_SUBSETS}
SPLITS = tuple(SPLIT_SUBSETS)
# Utterances per split after the preparation's length filters (reference §4.1, §4.6).
REFERENCE_COUNTS = {"train": 263_840, "validation": 5_348, "test": 2_472}
EVAL_BATCH_SIZE = 256
NUM_EVAL_TRAIN_EXAMPLES = 5_376  # ceil(5,348 / 256) * 256, the reference's eval_train size
SAMPLE_RATE = 16_000
MAX_AUDIO_SAMPLES = 320_000  # 20 s: longer utterances are dropped, shorter ones padded to this
MAX_TARGET_TOKENS = 256  # targets are padded to this many ids
MAX_TRANSCRIPT_CHARS = 256  # longer transcripts are dropped (before tokenising)
AUDIO_SUFFIX, TARGETS_SUFFIX = "_audio.npy", "_targets.npy"

Batch = Dict[str, Any]


def preparation_hint(dataset_dir: Path) -> str:
    return f"python -m workloads.librispeech.prepare --data-dir {Path(dataset_dir).parent} --raw-dir RAW"


def tokenizer_path(dataset_dir: Path) -> Path:
    """Where the SentencePiece model of a prepared data dir is (upstream's --librispeech_tokenizer_vocab_path)."""
    return Path(dataset_dir) / TOKENIZER_FILE


# --- the csv index -------------------------------------------------------------------------------


def csv_path(dataset_dir: Path, subset: str) -> Path:
    return Path(dataset_dir) / f"{subset}.csv"


def write_ids(dataset_dir: Path, subset: str, ids: Sequence[str]) -> Path:
    """`<subset>.csv` as pandas' DataFrame(ids, columns=['id']).to_csv writes it."""
    path = csv_path(dataset_dir, subset)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", newline="") as handle:
        handle.write(",id\n")
        handle.writelines(f"{row},{utterance}\n" for row, utterance in enumerate(ids))
    os.replace(temporary, path)
    return path


def read_ids(dataset_dir: Path, subset: str) -> List[str]:
    """The utterance ids of a subset csv, from column 1 of every row after the header (as upstream reads them)."""
    path = csv_path(dataset_dir, subset)
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError:
        raise DataProblem(f"{path} is missing, so the LibriSpeech data was never prepared; run: {preparation_hint(dataset_dir)}") from None
    if not rows or len(rows[0]) < 2 or rows[0][1] != "id" or any(len(row) < 2 for row in rows[1:]):
        raise DataProblem(
            f"{path} is not a LibriSpeech id list (a ',id' header, then '<row>,<id>' lines); rerun: {preparation_hint(dataset_dir)}"
        )
    return [row[1] for row in rows[1:]]


# --- utterances ----------------------------------------------------------------------------------


class LibriSpeechDataset:
    """The utterances of one split, in csv order (a map-style dataset for torch's DataLoader).

    Items are the stored arrays, unpadded: (audio samples, target ids) as numpy arrays;
    `collate` pads and stacks them. `padded_item` gives upstream's per-item form.
    """

    def __init__(self, dataset_dir: Path, split: str) -> None:
        if split not in SPLIT_SUBSETS:
            raise ValueError(f"unknown LibriSpeech split {split!r}; expected one of {', '.join(SPLITS)}")
        self.dataset_dir = Path(dataset_dir)
        self.split = split
        self.ids = [f"{subset}/{utterance}" for subset in SPLIT_SUBSETS[split] for utterance in read_ids(dataset_dir, subset)]

    def __len__(self) -> int:
        return len(self.ids)

    def _load(self, index: int, suffix: str) -> np.ndarray:
        path = self.dataset_dir / (self.ids[index] + suffix)
        try:
            array = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            listed_in = self.ids[index].split("/")[0] + ".csv"
            raise DataProblem(f"{path} is missing (listed in {listed_in}); rerun: {preparation_hint(self.dataset_dir)}") from None
        except (ValueError, EOFError, OSError) as error:
            raise DataProblem(f"{path} is damaged ({error}); rerun: {preparation_hint(self.dataset_dir)}") from None
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise DataProblem(
                f"{path} holds {array.dtype} {array.shape}, expected a 1-D integer array; rerun: {preparation_hint(self.dataset_dir)}"
            )
        return array

    def __getitem__(self, index: int) -> Tuple[np.ndarray, np.ndarray]:
        audio, targets = self._load(index, AUDIO_SUFFIX), self._load(index, TARGETS_SUFFIX)
        if len(audio) > MAX_AUDIO_SAMPLES or len(targets) > MAX_TARGET_TOKENS:
            raise DataProblem(
                f"{self.dataset_dir / self.ids[index]}: {len(audio):,} samples and {len(targets)} target ids; the "
                f"workloads pad to {MAX_AUDIO_SAMPLES:,} and {MAX_TARGET_TOKENS}, and the preparation drops longer utterances"
            )
        return audio, targets

    def padded_item(self, index: int) -> Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
        """((audio, audio_paddings), (targets, target_paddings)), float32 and padded: upstream's __getitem__."""
        audio, targets = self[index]
        audio_paddings = np.pad(np.zeros(len(audio), np.float32), (0, MAX_AUDIO_SAMPLES - len(audio)), constant_values=1.0)
        target_paddings = np.pad(np.zeros(len(targets), np.float32), (0, MAX_TARGET_TOKENS - len(targets)), constant_values=1.0)
        audio = np.pad(audio, (0, MAX_AUDIO_SAMPLES - len(audio))).astype(np.float32)
        targets = np.pad(targets, (0, MAX_TARGET_TOKENS - len(targets))).astype(np.float32)
        return (audio, audio_paddings), (targets, target_paddings)


def collate(items: Sequence[Tuple[np.ndarray, np.ndarray]], batch_size: Optional[int] = None) -> Batch:
    """One batch of padded float32 tensors from unpadded items.

    batch_size: eval batches; the rows after the items are empty utterances, and 'weights'
    (1.0 for items, 0.0 for padding rows) is added.
    """
    import torch

    rows = len(items) if batch_size is None else batch_size
    audio = torch.zeros((rows, MAX_AUDIO_SAMPLES), dtype=torch.float32)
    audio_paddings = torch.ones((rows, MAX_AUDIO_SAMPLES), dtype=torch.float32)
    targets = torch.zeros((rows, MAX_TARGET_TOKENS), dtype=torch.float32)
    target_paddings = torch.ones((rows, MAX_TARGET_TOKENS), dtype=torch.float32)
    for row, (samples, ids) in enumerate(items):
        audio[row, : len(samples)] = torch.from_numpy(samples)  # the copy converts to float32
        audio_paddings[row, : len(samples)] = 0.0
        targets[row, : len(ids)] = torch.from_numpy(ids)
        target_paddings[row, : len(ids)] = 0.0
    batch: Batch = {"inputs": (audio, audio_paddings), "targets": (targets, target_paddings)}
    if batch_size is not None:
        weights = torch.zeros(rows, dtype=torch.float32)
        weights[: len(items)] = 1.0
        batch["weights"] = weights
    return batch


# --- iterators ------------------------------------------------------------------------------------


def _seed(data_rng: Sequence[int]) -> int:
    return int(data_rng[0]) % (1 << 63)


def _to_device(batch: Batch, world: World) -> Batch:
    non_blocking = world.device.type == "cuda"

    def move(value):
        if isinstance(value, tuple):
            return tuple(move(part) for part in value)
        return value.to(world.device, non_blocking=non_blocking)

    return {key: move(value) for key, value in batch.items()}


def _replicas(world: World) -> Tuple[int, int]:
    return (world.num_shards, world.rank) if world.use_ddp else (1, 0)


def train_iterator(dataset, data_rng: Sequence[int], global_batch_size: int, world: World, num_workers: int = 0) -> Iterator[Batch]:
    """Endless train batches of this process's rows; a new permutation each epoch."""
    from torch.utils.data import DataLoader, DistributedSampler

    batch_size = world.local_batch_size(global_batch_size)
    replicas, rank = _replicas(world)
    # With one replica, DistributedSampler is a seeded shuffle that set_epoch reshuffles.
    sampler = DistributedSampler(dataset, num_replicas=replicas, rank=rank, shuffle=True, seed=_seed(data_rng))
    if len(sampler) < batch_size:
        raise ValueError(
            f"this rank holds {len(sampler)} training utterances, fewer than one batch of {batch_size} "
            "(drop_last would yield nothing); use a smaller batch or more data"
        )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate,
        drop_last=True,
        pin_memory=world.device.type == "cuda",
        persistent_workers=num_workers > 0,
    )
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        for batch in loader:
            yield _to_device(batch, world)
        epoch += 1


def eval_iterator(dataset, global_batch_size: int, world: World, num_workers: int = 0, repeat: bool = True) -> Iterator[Batch]:
    """Per-device eval batches with 'weights': ceil(len / global batch) of them per pass on every rank."""
    from torch.utils.data import DataLoader

    batch_size = world.local_batch_size(global_batch_size)
    replicas, rank = _replicas(world)
    pad_to_batch = functools.partial(collate, batch_size=batch_size)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=rank_strided_indices(len(dataset), rank, replicas),
        num_workers=num_workers,
        collate_fn=pad_to_batch,
        pin_memory=world.device.type == "cuda",
    )
    batches_per_pass = num_eval_batches(len(dataset), global_batch_size)
    while True:
        emitted = 0
        for batch in loader:
            yield _to_device(batch, world)
            emitted += 1
        while emitted < batches_per_pass:
            yield _to_device(pad_to_batch([]), world)
            emitted += 1
        if not repeat:
            return


def build_input_iterator(
    dataset_dir: Path,
    split: str,
    data_rng: Sequence[int],
    global_batch_size: int,
    world: World,
    num_eval_train_examples: int = NUM_EVAL_TRAIN_EXAMPLES,
    num_workers: int = 0,
    repeat: bool = True,
) -> Iterator[Batch]:
    """The batches of one split of DATA_DIR/librispeech (`dataset_dir`), on this process's device.

    num_eval_train_examples: eval_train's size, capped at the training rows a subset data dir holds.
    num_workers: DataLoader worker processes (upstream: 4). repeat: eval splits only; False stops
    after one pass (train is always endless).
    """
    from torch.utils.data import Subset

    world.local_batch_size(global_batch_size)  # under DDP: fails here, with the fix, when the ranks do not divide it
    dataset = LibriSpeechDataset(dataset_dir, split)
    if split == "train":
        return train_iterator(dataset, data_rng, global_batch_size, world, num_workers)
    if split == "eval_train":
        count = min(num_eval_train_examples, len(dataset))
        dataset = Subset(dataset, eval_train_indices(data_rng, len(dataset), count))
    if len(dataset) == 0:
        raise DataProblem(f"the {split} split of {dataset_dir} is empty; rerun: {preparation_hint(dataset_dir)}")
    return eval_iterator(dataset, global_batch_size, world, num_workers, repeat=repeat)
