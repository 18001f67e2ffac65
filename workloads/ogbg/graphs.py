"""The batch container of graph inputs: jraph's `GraphsTuple`, field for field, without jraph.

Upstream hands PyTorch models a `jraph.GraphsTuple` of torch tensors; keeping the
same field names and order means submissions that look inside `batch['inputs']`
(e.g. `batch['inputs'].n_node`) work unchanged.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class GraphsTuple(NamedTuple):
    """Many graphs stored as one disconnected graph.

    nodes     (total_nodes, node_feature_dim)
    edges     (total_edges, edge_feature_dim)
    receivers (total_edges,)  index of each edge's target node
    senders   (total_edges,)  index of each edge's source node
    globals   per-graph features; the pipeline sends none ({}), as upstream
    n_node    (num_graphs,)   nodes of each graph, in order
    n_edge    (num_graphs,)   edges of each graph, in order
    """

    nodes: Any
    edges: Any
    receivers: Any
    senders: Any
    globals: Any
    n_node: Any
    n_edge: Any
