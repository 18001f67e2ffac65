"""Prepared Criteo data on disk: one pair of raw float32 arrays per 5,000,000-line chunk.

    <data_dir>/criteo1tb/
      day_<d>_<NN>.inputs.f32    (rows, 39) little-endian float32: 13 dense features, 26 bucket ids
      day_<d>_<NN>.targets.f32   (rows,)    little-endian float32 click labels
      chunks.json                chunk names and row counts, format version, preparation settings
      manifest.json              written last (workloads/data_manifest.py)

The arrays hold exactly what the reference's TensorFlow parser hands the model (see
features.py), so the training pipeline only copies rows: no parsing, no conversion.
A chunk is the unit of the reference's file-level shuffling and of its day-23 split
(reference §4.2): `day_23_00`..`day_23_18` are the test split, `day_23_19`..`day_23_35`
the validation split, and every chunk of days 0-22 is training data.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from workloads.base import DataProblem
from workloads.criteo1tb.features import NUM_INPUTS

DATASET_NAME = "criteo1tb"
RAW_DIR_NAME = "criteo1tb_raw"  # where the preparation command looks for raw day files by default
FORMAT_VERSION = 1
INDEX_NAME = "chunks.json"
INPUTS_SUFFIX = ".inputs.f32"
TARGETS_SUFFIX = ".targets.f32"
ROW_BYTES = NUM_INPUTS * 4  # one float32 row of `inputs`

LINES_PER_FILE = 5_000_000  # the reference splits every day with `split -a 2 -d -l 5000000`
TRAIN_DAYS = range(0, 23)
EVAL_DAY = 23
NUM_TEST_CHUNKS = 19  # the reference: _NUM_DAY_23_FILES // 2 + 1 with 36 files on day 23
NUM_EVAL_DAY_CHUNKS = 36
SPLITS = ("train", "eval_train", "validation", "test")

# The reference's example counts (reference §4.1).
REFERENCE_COUNTS = {"train": 4_195_197_692, "validation": 83_274_637, "test": 95_000_000}

_CHUNK_NAME = re.compile(r"day_(\d+)_(\d+)")


@dataclasses.dataclass(frozen=True)
class Chunk:
    name: str  # day_<d>_<NN>
    rows: int

    @property
    def day_and_index(self) -> Tuple[int, int]:
        return parse_chunk_name(self.name)


def chunk_name(day: int, index: int) -> str:
    return f"day_{day}_{index:02d}"


def parse_chunk_name(name: str) -> Tuple[int, int]:
    match = _CHUNK_NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is not a chunk name of the form day_<d>_<NN>")
    return int(match.group(1)), int(match.group(2))


def split_of(name: str) -> Optional[str]:
    """Which split a chunk belongs to under the reference's rules; None for chunks no split reads."""
    day, index = parse_chunk_name(name)
    if day in TRAIN_DAYS:
        return "train"
    if day == EVAL_DAY:
        if index < NUM_TEST_CHUNKS:
            return "test"
        if index < NUM_EVAL_DAY_CHUNKS:
            return "validation"
    return None


def chunk_files(name: str) -> Tuple[str, str]:
    return name + INPUTS_SUFFIX, name + TARGETS_SUFFIX


def split_counts(chunks: Sequence[Chunk]) -> Dict[str, int]:
    counts = collections.Counter()
    for chunk in chunks:
        split = split_of(chunk.name)
        if split is not None:
            counts[split] += chunk.rows
    return {split: counts[split] for split in ("train", "validation", "test")}


def write_index(dataset_dir: Path, chunks: Sequence[Chunk], lines_per_file: int, source: str) -> Path:
    index = {
        "format_version": FORMAT_VERSION,
        "row_layout": "inputs: 39 little-endian float32 per row (13 log-scaled integers, 26 float32 bucket ids); "
        "targets: one float32 per row",
        "lines_per_file": lines_per_file,
        "source": source,
        "counts": split_counts(chunks),
        "chunks": [{"name": chunk.name, "rows": chunk.rows} for chunk in sorted(chunks, key=lambda c: c.day_and_index)],
    }
    path = dataset_dir / INDEX_NAME
    path.write_text(json.dumps(index, indent=1))
    return path


def read_index(dataset_dir: Path) -> List[Chunk]:
    path = dataset_dir / INDEX_NAME
    try:
        index = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataProblem(f"{path} is unreadable ({error}); rerun python -m workloads.criteo1tb.prepare") from None
    if index.get("format_version") != FORMAT_VERSION:
        raise DataProblem(
            f"{dataset_dir} was prepared in format {index.get('format_version')}, this code reads format "
            f"{FORMAT_VERSION}; rerun python -m workloads.criteo1tb.prepare"
        )
    return [Chunk(entry["name"], int(entry["rows"])) for entry in index["chunks"]]


def chunks_of_split(chunks: Sequence[Chunk], split: str) -> List[Chunk]:
    """The split's chunks in file-name order (eval_train reads the training chunks)."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; expected one of {', '.join(SPLITS)}.")
    wanted = "train" if split == "eval_train" else split
    return sorted((chunk for chunk in chunks if split_of(chunk.name) == wanted), key=lambda c: c.day_and_index)


class ChunkReader:
    """Memory maps of a split's chunks, opened on first use; only a few stay open at once."""

    MAX_OPEN = 8  # reading is sequential within a chunk, so a handful of maps is plenty

    def __init__(self, dataset_dir: Path, chunks: Sequence[Chunk]) -> None:
        self.dataset_dir = dataset_dir
        self.chunks = list(chunks)
        self._open: "collections.OrderedDict[int, Tuple[np.ndarray, np.ndarray]]" = collections.OrderedDict()

    def arrays(self, position: int) -> Tuple[np.ndarray, np.ndarray]:
        """(inputs (rows, 39), targets (rows,)) of the chunk at `position`, memory-mapped read-only."""
        if position in self._open:
            self._open.move_to_end(position)
            return self._open[position]
        chunk = self.chunks[position]
        inputs_name, targets_name = chunk_files(chunk.name)
        inputs = self._map(inputs_name, (chunk.rows, NUM_INPUTS))
        targets = self._map(targets_name, (chunk.rows,))
        self._open[position] = (inputs, targets)
        if len(self._open) > self.MAX_OPEN:
            self._open.popitem(last=False)
        return inputs, targets

    def _map(self, name: str, shape: Tuple[int, ...]) -> np.ndarray:
        path = self.dataset_dir / name
        expected = int(np.prod(shape)) * 4
        try:
            size = path.stat().st_size
        except OSError:
            raise DataProblem(f"{path} is missing; rerun python -m workloads.criteo1tb.prepare") from None
        if size != expected:
            raise DataProblem(f"{path} has {size} bytes, expected {expected} for {shape}; rerun python -m workloads.criteo1tb.prepare")
        if expected == 0:
            return np.zeros(shape, dtype=np.float32)
        return np.memmap(path, dtype="<f4", mode="r", shape=shape)
