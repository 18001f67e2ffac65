"""Random molecule-shaped graphs in the release's format, for tests and the pipeline benchmark (never for scoring).

Sizes follow ogbg-molpcba's averages (about 26 atoms and 28 bonds per molecule):
a random tree over the atoms plus a few ring-closing bonds. Feature codes stay
inside the ranges of OGB's atom and bond featurisers; labels are sparse, with
most tasks unmeasured for most molecules, as in the real release.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from workloads.ogbg.index_ranges import concat_ranges, exclusive_cumsum
from workloads.ogbg.raw_format import NUM_TASKS, RawMolecules

# Number of values of each OGB atom feature (atomic number, chirality, degree, formal charge,
# #Hs, radical electrons, hybridisation, aromatic, in ring) and bond feature (type, stereo, conjugated).
ATOM_FEATURE_CARDINALITIES = (119, 4, 12, 12, 10, 6, 6, 2, 2)
BOND_FEATURE_CARDINALITIES = (5, 6, 2)
MEAN_ATOMS = 25  # plus the one atom every molecule has
MEAN_RING_BONDS = 2.5  # with the tree bonds, about 28 bonds per molecule


def random_molecules(
    num_graphs: int,
    seed: int = 0,
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    missing_fraction: float = 0.6,
    positive_fraction: float = 0.2,
) -> RawMolecules:
    rng = np.random.RandomState(seed)
    num_nodes = 1 + rng.poisson(MEAN_ATOMS, size=num_graphs).astype(np.int64)

    # Tree bonds: atom i (i >= 1) bonds to a random earlier atom.
    tree_counts = num_nodes - 1
    child = concat_ranges(np.ones(num_graphs, dtype=np.int64), tree_counts)
    parent = (rng.random_sample(len(child)) * child).astype(np.int64)
    # Ring closures between two distinct atoms of molecules with at least three atoms.
    ring_counts = np.where(num_nodes >= 3, rng.poisson(MEAN_RING_BONDS, size=num_graphs), 0).astype(np.int64)
    ring_size = np.repeat(num_nodes, ring_counts)
    ring_a = (rng.random_sample(len(ring_size)) * ring_size).astype(np.int64)
    ring_b = (ring_a + 1 + (rng.random_sample(len(ring_size)) * (ring_size - 1)).astype(np.int64)) % ring_size

    # Interleave per molecule: its tree bonds, then its ring bonds.
    num_edges = tree_counts + ring_counts
    starts = exclusive_cumsum(num_edges)
    edge_index = np.zeros((int(num_edges.sum()), 2), dtype=np.int64)
    tree_rows = concat_ranges(starts, tree_counts)
    ring_rows = concat_ranges(starts + tree_counts, ring_counts)
    edge_index[tree_rows] = np.stack([child, parent], axis=1)
    edge_index[ring_rows] = np.stack([ring_a, ring_b], axis=1)

    node_feat = np.stack([rng.randint(0, c, size=int(num_nodes.sum())) for c in ATOM_FEATURE_CARDINALITIES], axis=1)
    edge_feat = np.stack([rng.randint(0, c, size=len(edge_index)) for c in BOND_FEATURE_CARDINALITIES], axis=1)
    labels = (rng.random_sample((num_graphs, NUM_TASKS)) < positive_fraction).astype(np.float32)
    labels[rng.random_sample((num_graphs, NUM_TASKS)) < missing_fraction] = np.nan

    order = rng.permutation(num_graphs)
    cuts = np.cumsum([max(1, int(round(f * num_graphs))) for f in split_fractions[:2]])
    splits = {"train": order[: cuts[0]], "validation": order[cuts[0] : cuts[1]], "test": order[cuts[1] :]}
    return RawMolecules(num_nodes, num_edges, node_feat.astype(np.int64), edge_index, edge_feat.astype(np.int64), labels, splits)
