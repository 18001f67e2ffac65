"""The official OGB release of ogbg-molpcba: gzipped CSVs, read and checked (and written, for tests).

Layout of the release (`pcba.zip` from the OGB site, or the `ogbg_molpcba/`
folder an OGB download leaves behind):

  raw/num-node-list.csv.gz   atoms per molecule, one line per graph
  raw/num-edge-list.csv.gz   bonds per molecule, one line per graph
  raw/node-feat.csv.gz       9 integer atom features per atom, molecules one after another
  raw/edge.csv.gz            2 atom indices per bond, local to the molecule, one direction only
  raw/edge-feat.csv.gz       3 integer bond features per bond
  raw/graph-label.csv.gz     128 task labels per molecule: 1, 0, or empty for "not measured"
  split/scaffold/{train,valid,test}.csv.gz   graph indices (rows above) of each split

No file has a header. Reading follows OGB's own loader and tfds's builder
(pandas `read_csv(header=None)`, empty label -> NaN).
"""

from __future__ import annotations

import dataclasses
import io
import zipfile
from pathlib import Path
from typing import IO, Dict, Optional

import numpy as np

OFFICIAL_URL = "https://snap.stanford.edu/ogb/data/graphproppred/csv_mol_download/pcba.zip"

# Our split name -> file name in split/scaffold/.
SPLIT_FILES = {"train": "train.csv.gz", "validation": "valid.csv.gz", "test": "test.csv.gz"}
NUM_TASKS = 128
NODE_FEATURE_DIM = 9
EDGE_FEATURE_DIM = 3
# The scaffold split of the full release (OGB paper, Table 1; reference §4.1).
REFERENCE_SPLIT_SIZES = {"train": 350_343, "validation": 43_793, "test": 43_793}


class RawDataError(ValueError):
    """The raw release is missing a file or its files disagree; the message says which and how."""


@dataclasses.dataclass
class RawMolecules:
    """Every molecule of a release, as flat arrays (molecules one after another)."""

    num_nodes: np.ndarray  # (G,) int64
    num_edges: np.ndarray  # (G,) int64 bonds (one direction)
    node_feat: np.ndarray  # (sum num_nodes, 9) integer codes
    edge_index: np.ndarray  # (sum num_edges, 2) atom indices local to the molecule
    edge_feat: np.ndarray  # (sum num_edges, 3) integer codes
    labels: np.ndarray  # (G, 128) float32, NaN = not measured
    splits: Dict[str, np.ndarray]  # split name -> (n,) int64 graph indices

    @property
    def num_graphs(self) -> int:
        return len(self.num_nodes)


# --- locating the files -------------------------------------------------------------------------


class _RawFiles:
    """Opens `raw/...` and `split/scaffold/...` members of an extracted folder or of the zip itself."""

    def __init__(self, location: Path) -> None:
        self.location = location
        self._zip: Optional[zipfile.ZipFile] = None
        self._root: Optional[Path] = None
        self._prefix = ""
        if location.is_file() and zipfile.is_zipfile(location):
            self._zip = zipfile.ZipFile(location)
            members = [name for name in self._zip.namelist() if name.endswith("raw/edge.csv.gz")]
            if not members:
                raise RawDataError(f"{location} holds no raw/edge.csv.gz; is it the ogbg-molpcba release ({OFFICIAL_URL})?")
            self._prefix = members[0][: -len("raw/edge.csv.gz")]
        else:
            self._root = self._find_root(location)

    @staticmethod
    def _find_root(location: Path) -> Path:
        candidates = [location, location.parent] + (sorted(p for p in location.iterdir() if p.is_dir()) if location.is_dir() else [])
        for candidate in candidates:
            if (candidate / "raw" / "edge.csv.gz").is_file():
                return candidate
        raise RawDataError(
            f"no ogbg-molpcba release at {location}: expected raw/edge.csv.gz and split/scaffold/ inside it "
            f"(unzip {OFFICIAL_URL}, or pass the zip itself)"
        )

    def describe(self, relative: str) -> str:
        return f"{self.location}!{self._prefix}{relative}" if self._zip else str(self._root / relative)

    def open(self, relative: str) -> IO[bytes]:
        try:
            if self._zip is not None:
                return io.BytesIO(self._zip.read(self._prefix + relative))
            return open(self._root / relative, "rb")
        except (KeyError, FileNotFoundError):
            raise RawDataError(f"{self.describe(relative)} is missing; the release is incomplete (get it again from {OFFICIAL_URL})") from None


def _read_csv(files: _RawFiles, relative: str, width: int, dtype) -> np.ndarray:
    import pandas as pd

    with files.open(relative) as handle:
        try:
            frame = pd.read_csv(handle, compression="gzip", header=None)
        except pd.errors.EmptyDataError:  # e.g. no bonds at all in a tiny dump
            return np.zeros((0, width), dtype=dtype)
        except (OSError, EOFError, ValueError) as error:
            raise RawDataError(f"{files.describe(relative)} is not a readable gzipped CSV ({error}); get it again") from None
    if frame.shape[1] != width:
        raise RawDataError(f"{files.describe(relative)} has {frame.shape[1]} columns per line, expected {width}")
    values = frame.to_numpy()
    if np.issubdtype(dtype, np.integer):
        if not np.issubdtype(values.dtype, np.integer):
            raise RawDataError(f"{files.describe(relative)} holds non-integer or empty values; expected integers only")
    return values.astype(dtype, copy=False)


# --- reading and checking ------------------------------------------------------------------------


def read_release(location: Path) -> RawMolecules:
    """Reads and cross-checks a release; raises RawDataError naming the first inconsistency."""
    files = _RawFiles(Path(location).expanduser())
    num_nodes = _read_csv(files, "raw/num-node-list.csv.gz", 1, np.int64)[:, 0]
    num_edges = _read_csv(files, "raw/num-edge-list.csv.gz", 1, np.int64)[:, 0]
    node_feat = _read_csv(files, "raw/node-feat.csv.gz", NODE_FEATURE_DIM, np.int64)
    edge_index = _read_csv(files, "raw/edge.csv.gz", 2, np.int64)
    edge_feat = _read_csv(files, "raw/edge-feat.csv.gz", EDGE_FEATURE_DIM, np.int64)
    labels = _read_csv(files, "raw/graph-label.csv.gz", NUM_TASKS, np.float32)
    splits = {name: _read_csv(files, f"split/scaffold/{file_name}", 1, np.int64)[:, 0] for name, file_name in SPLIT_FILES.items()}
    molecules = RawMolecules(num_nodes, num_edges, node_feat, edge_index, edge_feat, labels, splits)
    check_release(molecules, files.describe)
    return molecules


def check_release(molecules: RawMolecules, describe=lambda relative: relative) -> None:
    m = molecules
    if not len(m.num_nodes) == len(m.num_edges) == len(m.labels):
        raise RawDataError(
            f"{describe('raw/')}: num-node-list has {len(m.num_nodes)} graphs, num-edge-list {len(m.num_edges)}, "
            f"graph-label {len(m.labels)}; they must agree"
        )
    if (m.num_nodes < 1).any():
        raise RawDataError(f"{describe('raw/num-node-list.csv.gz')}: graph {int(np.argmin(m.num_nodes))} has no atoms")
    if (m.num_edges < 0).any():
        raise RawDataError(f"{describe('raw/num-edge-list.csv.gz')}: graph {int(np.argmin(m.num_edges))} has a negative bond count")
    if m.num_nodes.sum() != len(m.node_feat):
        raise RawDataError(f"{describe('raw/node-feat.csv.gz')} has {len(m.node_feat)} atoms, the node counts add up to {m.num_nodes.sum()}")
    for relative, rows in (("raw/edge.csv.gz", len(m.edge_index)), ("raw/edge-feat.csv.gz", len(m.edge_feat))):
        if rows != m.num_edges.sum():
            raise RawDataError(f"{describe(relative)} has {rows} bonds, the edge counts add up to {m.num_edges.sum()}")
    atoms_of_bond = np.repeat(m.num_nodes, m.num_edges)[:, None]
    bad = (m.edge_index < 0) | (m.edge_index >= atoms_of_bond)
    if bad.any():
        bond = int(np.argwhere(bad.any(axis=1))[0, 0])
        graph = int(np.searchsorted(np.cumsum(m.num_edges), bond, side="right"))
        raise RawDataError(f"{describe('raw/edge.csv.gz')}: bond {bond} of graph {graph} names an atom outside the molecule")
    known = ~np.isnan(m.labels)
    if not np.isin(m.labels[known], (0.0, 1.0)).all():
        raise RawDataError(f"{describe('raw/graph-label.csv.gz')} holds labels other than 0, 1 or empty")
    seen = np.zeros(m.num_graphs, dtype=bool)
    for name, indices in m.splits.items():
        relative = f"split/scaffold/{SPLIT_FILES[name]}"
        if len(indices) == 0:
            raise RawDataError(f"{describe(relative)} is empty")
        if indices.min() < 0 or indices.max() >= m.num_graphs:
            raise RawDataError(f"{describe(relative)} names graphs outside 0..{m.num_graphs - 1}")
        if len(np.unique(indices)) != len(indices) or seen[indices].any():
            raise RawDataError(f"{describe(relative)} repeats a graph, or shares one with another split")
        seen[indices] = True


def is_full_release(molecules: RawMolecules) -> bool:
    return all(len(molecules.splits[name]) == size for name, size in REFERENCE_SPLIT_SIZES.items())


# --- writing (tests and benchmarks build small releases with this) ---------------------------------


def write_release(root: Path, molecules: RawMolecules) -> Path:
    """Writes `molecules` in the release layout under `root` (raw/ and split/scaffold/), as pandas writes CSVs."""
    import pandas as pd

    root = Path(root)
    (root / "raw").mkdir(parents=True, exist_ok=True)
    (root / "split" / "scaffold").mkdir(parents=True, exist_ok=True)

    def write(relative: str, values: np.ndarray) -> None:
        pd.DataFrame(values).to_csv(root / relative, compression="gzip", header=False, index=False)

    write("raw/num-node-list.csv.gz", molecules.num_nodes[:, None])
    write("raw/num-edge-list.csv.gz", molecules.num_edges[:, None])
    write("raw/node-feat.csv.gz", molecules.node_feat)
    write("raw/edge.csv.gz", molecules.edge_index)
    write("raw/edge-feat.csv.gz", molecules.edge_feat)
    write("raw/graph-label.csv.gz", molecules.labels)  # NaN -> empty field, as in the release
    for name, file_name in SPLIT_FILES.items():
        write(f"split/scaffold/{file_name}", molecules.splits[name][:, None])
    return root
