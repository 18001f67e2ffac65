"""Dynamic batching of molecules under node, edge and graph budgets (jraph's `dynamically_batch` semantics).

A batch for `b` graphs (per device) may hold at most 26·b + 1 nodes, 56·b
directed edges and b + 1 graphs, the last graph being padding: molpcba
averages about 26 atoms and 56 directed edges per molecule, so b average
molecules fit, and the padding graph always has at least one node to own the
padding edges. Molecules are taken in stream order while they fit (a greedy
prefix: the first one that does not fit starts the next batch).

Train batches are padded to exactly the budget, so every step sees the same
shapes: one padding graph takes the leftover nodes and edges (its edges all
point at its first node) and empty graphs fill up the graph count. Eval batches
group molecules the same way but carry a single one-node padding graph: padding
changes no real molecule's output, and padding a small last batch to the full
eval budget would only burn time. Padding graphs have zero `weights`.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Sequence

import numpy as np

from workloads.ogbg.graphs import GraphsTuple
from workloads.ogbg.index_ranges import concat_ranges, exclusive_cumsum
from workloads.ogbg.prepared_data import GraphSplit

AVG_NODES_PER_GRAPH = 26  # upstream's budget constants (ogbg input pipeline)
AVG_EDGES_PER_GRAPH = 56

NumpyBatch = Dict[str, object]  # {'inputs': GraphsTuple of arrays, 'targets': (G, 128) float32, 'weights': (G, 128) bool}


class GraphTooLargeError(RuntimeError):
    """A molecule exceeds the budget of a whole batch (jraph raises the same)."""


@dataclasses.dataclass(frozen=True)
class Budget:
    max_nodes: int  # including the padding graph's node
    max_edges: int
    max_graphs: int  # including the padding graph

    @classmethod
    def for_batch_size(cls, graphs_per_batch: int) -> "Budget":
        return cls(
            max_nodes=AVG_NODES_PER_GRAPH * graphs_per_batch + 1,
            max_edges=AVG_EDGES_PER_GRAPH * graphs_per_batch,
            max_graphs=graphs_per_batch + 1,
        )


def count_that_fit(n_node: np.ndarray, n_edge: np.ndarray, budget: Budget) -> int:
    """How many of the next molecules (their sizes given in stream order) form the next batch."""
    limit = min(len(n_node), budget.max_graphs - 1)
    nodes = np.cumsum(n_node[:limit])
    edges = np.cumsum(n_edge[:limit])
    fit = min(
        limit,
        int(np.searchsorted(nodes, budget.max_nodes - 1, side="right")),
        int(np.searchsorted(edges, budget.max_edges, side="right")),
    )
    if fit == 0 and limit > 0:
        raise GraphTooLargeError(
            f"a molecule with {int(n_node[0])} atoms and {int(n_edge[0])} directed edges exceeds the whole batch budget "
            f"({budget.max_nodes - 1} nodes, {budget.max_edges} edges); use a larger batch size"
        )
    return fit


def assemble(graphs: GraphSplit, graph_ids: np.ndarray, budget: Budget, pad_to_budget: bool) -> NumpyBatch:
    """One padded batch of the molecules `graph_ids` (which must fit the budget); none gives a padding-only batch."""
    n_node = graphs.n_node[graph_ids]
    n_edge = graphs.n_edge[graph_ids]
    real_nodes, real_edges, real_graphs = int(n_node.sum()), int(n_edge.sum()), len(graph_ids)
    if pad_to_budget:
        total_nodes, total_edges, total_graphs = budget.max_nodes, budget.max_edges, budget.max_graphs
    else:
        total_nodes, total_edges, total_graphs = real_nodes + 1, real_edges, real_graphs + 1

    node_rows = concat_ranges(graphs.node_offsets[graph_ids], n_node)
    edge_rows = concat_ranges(graphs.edge_offsets[graph_ids], n_edge)
    first_node = np.repeat(exclusive_cumsum(n_node), n_edge)  # batch index of each edge's molecule's first atom

    nodes = np.zeros((total_nodes, graphs.node_feat.shape[1]), dtype=np.float32)
    nodes[:real_nodes] = graphs.node_feat[node_rows]
    edges = np.zeros((total_edges, graphs.edge_feat.shape[1]), dtype=np.float32)
    edges[:real_edges] = graphs.edge_feat[edge_rows]
    # Padding edges run from the padding graph's first node to itself.
    senders = np.full(total_edges, real_nodes, dtype=np.int64)
    receivers = np.full(total_edges, real_nodes, dtype=np.int64)
    senders[:real_edges] = graphs.senders[edge_rows] + first_node
    receivers[:real_edges] = graphs.receivers[edge_rows] + first_node

    counts_node = np.zeros(total_graphs, dtype=np.int64)
    counts_edge = np.zeros(total_graphs, dtype=np.int64)
    counts_node[:real_graphs], counts_edge[:real_graphs] = n_node, n_edge
    counts_node[real_graphs] = total_nodes - real_nodes
    counts_edge[real_graphs] = total_edges - real_edges

    labels = graphs.labels[graph_ids]
    targets = np.zeros((total_graphs, labels.shape[1]), dtype=np.float32)
    weights = np.zeros((total_graphs, labels.shape[1]), dtype=bool)
    targets[:real_graphs] = labels == 1
    weights[:real_graphs] = labels >= 0  # unmeasured labels (-1) get weight 0 and target 0
    return {
        "inputs": GraphsTuple(nodes, edges, receivers, senders, {}, counts_node, counts_edge),
        "targets": targets,
        "weights": weights,
    }


def concatenate(batches: Sequence[NumpyBatch]) -> NumpyBatch:
    """Several batches as one disconnected graph (jraph.batch): node indices shift by the nodes before."""
    if len(batches) == 1:
        return batches[0]
    graphs_list: List[GraphsTuple] = [batch["inputs"] for batch in batches]
    shifts = exclusive_cumsum(np.array([len(g.nodes) for g in graphs_list], dtype=np.int64))
    inputs = GraphsTuple(
        nodes=np.concatenate([g.nodes for g in graphs_list]),
        edges=np.concatenate([g.edges for g in graphs_list]),
        receivers=np.concatenate([g.receivers + shift for g, shift in zip(graphs_list, shifts)]),
        senders=np.concatenate([g.senders + shift for g, shift in zip(graphs_list, shifts)]),
        globals={},
        n_node=np.concatenate([g.n_node for g in graphs_list]),
        n_edge=np.concatenate([g.n_edge for g in graphs_list]),
    )
    return {
        "inputs": inputs,
        "targets": np.concatenate([batch["targets"] for batch in batches]),
        "weights": np.concatenate([batch["weights"] for batch in batches]),
    }
