"""The prepared on-disk format: per split, a handful of flat .npy arrays plus offsets.

<data-dir>/ogbg/
  manifest.json                 written last by the preparation command (see workloads/data_manifest.py)
  <split>/node_feat.npy         (N, 9)   atom feature codes, smallest integer dtype that holds them
  <split>/edge_feat.npy         (2B, 3)  bond feature codes, for both directions of every bond
  <split>/senders.npy           (2B,)    source atom of each directed edge, local to its molecule
  <split>/receivers.npy         (2B,)    target atom, local to its molecule
  <split>/node_offsets.npy      (G+1,)   molecule g owns atoms node_offsets[g]:node_offsets[g+1]
  <split>/edge_offsets.npy      (G+1,)   ... and directed edges edge_offsets[g]:edge_offsets[g+1]
  <split>/labels.npy            (G, 128) int8: 1 active, 0 inactive, -1 not measured
  <split>/graph_index.npy       (G,)     the molecule's row in the OGB release
for split in train, validation, test. Each molecule's directed edges are its
bonds as listed in the release, then the same bonds reversed: the order in
which upstream's input pipeline makes edges bidirectional.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

SPLITS = ("train", "validation", "test")
ARRAY_NAMES = ("node_feat", "edge_feat", "senders", "receivers", "node_offsets", "edge_offsets", "labels", "graph_index")
MISSING_LABEL = -1


@dataclasses.dataclass(frozen=True)
class GraphSplit:
    node_feat: np.ndarray
    edge_feat: np.ndarray
    senders: np.ndarray
    receivers: np.ndarray
    node_offsets: np.ndarray
    edge_offsets: np.ndarray
    labels: np.ndarray
    graph_index: np.ndarray

    @property
    def num_graphs(self) -> int:
        return len(self.labels)

    @functools.cached_property
    def n_node(self) -> np.ndarray:  # (G,) atoms per molecule
        return np.diff(self.node_offsets)

    @functools.cached_property
    def n_edge(self) -> np.ndarray:  # (G,) directed edges per molecule
        return np.diff(self.edge_offsets)

    def arrays(self) -> Dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in ARRAY_NAMES}


def array_files() -> Tuple[str, ...]:
    """Every file of a prepared data dir except the manifest, relative to it."""
    return tuple(f"{split}/{name}.npy" for split in SPLITS for name in ARRAY_NAMES)


def save_split(dataset_dir: Path, split: str, graphs: GraphSplit) -> None:
    directory = dataset_dir / split
    directory.mkdir(parents=True, exist_ok=True)
    for name, values in graphs.arrays().items():
        np.save(directory / f"{name}.npy", values, allow_pickle=False)


def load_split(dataset_dir: Path, split: str) -> GraphSplit:
    """The split's arrays, read once per process (keyed by the manifest, so a re-preparation is re-read)."""
    manifest = Path(dataset_dir) / "manifest.json"
    stamp = manifest.stat().st_mtime_ns if manifest.exists() else 0
    return _load_split(str(dataset_dir), split, stamp)


@functools.lru_cache(maxsize=6)
def _load_split(dataset_dir: str, split: str, manifest_stamp: int) -> GraphSplit:
    del manifest_stamp  # part of the cache key only
    directory = Path(dataset_dir) / split
    return GraphSplit(**{name: np.load(directory / f"{name}.npy", allow_pickle=False) for name in ARRAY_NAMES})


def compact_integer_dtype(values: np.ndarray) -> np.dtype:
    """The smallest of uint8 / int16 / int32 / int64 that holds every value exactly."""
    if values.size == 0:
        return np.dtype(np.uint8)
    low, high = int(values.min()), int(values.max())
    for dtype in (np.uint8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return np.dtype(dtype)
    return np.dtype(np.int64)
