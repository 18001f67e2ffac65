"""Prepare ogbg-molpcba: the official OGB raw release -> compact arrays under <data-dir>/ogbg/.

Sources (either):
  --raw-dir PATH   the release already on disk: the unzipped `pcba/` folder (or an
                   OGB `ogbg_molpcba/` folder) holding raw/ and split/scaffold/, or pcba.zip itself
  --download       fetch the official pcba.zip into <data-dir>/ogbg_raw/ first (needs internet)

The release is checked file against file (atom, bond and graph counts, atom
indices, labels, disjoint splits) before anything is written; the manifest is
written last. A release whose split sizes differ from the reference's
(350,343 / 43,793 / 43,793) is prepared as a *subset* (tests, smoke runs):
evaluation then covers its splits exactly, and runs on it are never scored.

Usage: python -m workloads.ogbg.prepare --data-dir DIR (--raw-dir PATH | --download)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import urllib.request
from pathlib import Path
from typing import Dict, Optional

import numpy as np

from workloads.data_manifest import MANIFEST_NAME, write_manifest
from workloads.ogbg.index_ranges import concat_ranges, exclusive_cumsum
from workloads.ogbg.prepared_data import MISSING_LABEL, SPLITS, GraphSplit, array_files, compact_integer_dtype, save_split
from workloads.ogbg.raw_format import OFFICIAL_URL, RawDataError, RawMolecules, is_full_release, read_release

DATASET_NAME = "ogbg"
DOWNLOAD_DIR_NAME = "ogbg_raw"
NUM_EVAL_TRAIN_EXAMPLES = 43_793  # upstream evaluates train metrics on as many molecules as validation has
# tfds stores a split's records in an order fixed by hashing their keys, and the
# train stream is shuffled from that order; a fixed permutation plays that role here.
TRAIN_RECORD_ORDER_SEED = 0


def split_graphs(molecules: RawMolecules, graph_ids: np.ndarray) -> GraphSplit:
    """The molecules `graph_ids`, in that order, with every bond as two directed edges."""
    m = molecules
    n_nodes = m.num_nodes[graph_ids]
    n_bonds = m.num_edges[graph_ids]
    node_rows = concat_ranges(exclusive_cumsum(m.num_nodes)[graph_ids], n_nodes)

    # Each molecule's directed edges: its bonds as listed, then the same bonds reversed.
    n_directed = 2 * n_bonds
    position = concat_ranges(np.zeros_like(n_directed), n_directed)  # 0 .. 2b-1 within each molecule
    bonds_here = np.repeat(n_bonds, n_directed)
    reverse = position >= bonds_here
    bond_rows = np.repeat(exclusive_cumsum(m.num_edges)[graph_ids], n_directed) + np.where(reverse, position - bonds_here, position)
    ends = m.edge_index[bond_rows]  # (2B, 2) local atom indices
    senders = np.where(reverse, ends[:, 1], ends[:, 0])
    receivers = np.where(reverse, ends[:, 0], ends[:, 1])

    node_feat = m.node_feat[node_rows]
    edge_feat = m.edge_feat[bond_rows]
    local_dtype = compact_integer_dtype(np.concatenate([senders, receivers, [0]]))
    labels = np.where(np.isnan(m.labels[graph_ids]), MISSING_LABEL, m.labels[graph_ids]).astype(np.int8)
    return GraphSplit(
        node_feat=node_feat.astype(compact_integer_dtype(node_feat)),
        edge_feat=edge_feat.astype(compact_integer_dtype(edge_feat)),
        senders=senders.astype(local_dtype),
        receivers=receivers.astype(local_dtype),
        node_offsets=np.concatenate([[0], np.cumsum(n_nodes)]).astype(np.int64),
        edge_offsets=np.concatenate([[0], np.cumsum(n_directed)]).astype(np.int64),
        labels=labels,
        graph_index=graph_ids.astype(np.int64),
    )


def stored_order(split: str, graph_ids: np.ndarray) -> np.ndarray:
    """Validation and test in release order (as tfds's builder visits them); train in a fixed shuffled order."""
    ordered = np.sort(graph_ids)
    if split == "train":
        return np.random.RandomState(TRAIN_RECORD_ORDER_SEED).permutation(ordered)
    return ordered


def split_counts(molecules: RawMolecules) -> Dict[str, int]:
    counts = {split: len(molecules.splits[split]) for split in SPLITS}
    counts["eval_train"] = min(NUM_EVAL_TRAIN_EXAMPLES, counts["train"])
    return counts


def write_dataset(molecules: RawMolecules, dataset_dir: Path, source: str) -> Path:
    dataset_dir.mkdir(parents=True, exist_ok=True)
    (dataset_dir / MANIFEST_NAME).unlink(missing_ok=True)  # a rerun is unfinished until the new manifest lands
    for split in SPLITS:
        save_split(dataset_dir, split, split_graphs(molecules, stored_order(split, molecules.splits[split])))
    return write_manifest(dataset_dir, array_files(), split_counts(molecules), source, subset=not is_full_release(molecules))


def download_release(target_dir: Path, url: str = OFFICIAL_URL) -> Path:
    target_dir.mkdir(parents=True, exist_ok=True)
    archive = target_dir / Path(url).name
    if archive.is_file():
        return archive
    partial = archive.with_suffix(".part")
    print(f"downloading {url} -> {archive}")
    with urllib.request.urlopen(url, timeout=120) as response, open(partial, "wb") as out:
        shutil.copyfileobj(response, out)
    partial.replace(archive)
    return archive


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workloads.ogbg.prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True, help="the benchmark data dir; arrays go to DATA_DIR/ogbg/")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--raw-dir", help="the release: unzipped pcba/ (or ogbg_molpcba/) folder, or pcba.zip")
    source.add_argument("--download", action="store_true", help=f"download {OFFICIAL_URL} first")
    parser.add_argument("--url", default=OFFICIAL_URL, help=argparse.SUPPRESS)  # tests point this at a local copy
    args = parser.parse_args(argv)

    data_dir = Path(args.data_dir).expanduser()
    raw_location = download_release(data_dir / DOWNLOAD_DIR_NAME, args.url) if args.download else Path(args.raw_dir).expanduser()
    try:
        molecules = read_release(raw_location)
    except RawDataError as error:
        raise SystemExit(f"ogbg-molpcba release unusable: {error}") from None
    dataset_dir = data_dir / DATASET_NAME
    manifest = write_dataset(molecules, dataset_dir, source=str(raw_location))
    counts = split_counts(molecules)
    kind = "full release" if is_full_release(molecules) else "SUBSET (never scored)"
    print(
        f"ogbg-molpcba ready in {dataset_dir} ({manifest.name} written): {kind}, "
        f"{counts['train']:,} train / {counts['validation']:,} validation / {counts['test']:,} test molecules"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
