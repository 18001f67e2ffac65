"""The OGBG model: an encode-process-decode graph network (reference §4.8); 3,554,176 parameters.

Encode: per-node and per-edge Linear embedders; the per-graph globals start as zeros.
Process: `num_message_passing_steps` GraphNetwork blocks (Battaglia et al. 2018,
arXiv:1806.01261, Algorithm 1) that update, in turn,
  edges   from [edge, sender node, receiver node, graph globals],
  nodes   from [node, sum of edges it sends, sum of edges it receives, graph globals],
  globals from [sum of the graph's nodes, sum of the graph's edges, globals];
each update is an MLP of Linear -> LayerNorm -> activation -> dropout blocks.
Decode: a Linear from the final globals to the 128 task logits.

Attribute names (`node_embedder`, `graph_network.<i>.update_edge_fn.dense_0`,
`norm_0`, `decoder`, ...) are upstream's: the parameter-type rules read them
(the embedders' weights count as EMBEDDING, the norms as LAYER_NORM) and
`is_output_params` names the decoder. Construction order is upstream's too, so
the same seed gives the same initial weights.
"""

from __future__ import annotations

import functools
from typing import Callable, Dict, NamedTuple, Sequence

import torch
from torch import nn

from pytest_algoperf.api.init_utils import pytorch_default_init
from pytest_algoperf.api.pytorch_utils import CustomDropout, SequentialWithDropout
from workloads.ogbg.graphs import GraphsTuple

DROPOUT_RATE = 0.1  # upstream's default when model_fn gets no rate
NODE_FEATURE_DIM = 9  # OGB atom features: atomic number, chirality, degree, charge, #H, radicals, hybridisation, aromatic, ring
EDGE_FEATURE_DIM = 3  # OGB bond features: bond type, stereo, conjugated
LAYER_NORM_EPS = 1e-6  # as the Flax model the reference was ported from

ACTIVATIONS: Dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": functools.partial(nn.GELU, approximate="tanh"),  # jax.nn.gelu's default form
    "silu": nn.SiLU,
}


def make_mlp(in_dim: int, hidden_dims: Sequence[int], activation: Callable[[], nn.Module]) -> SequentialWithDropout:
    """[Linear -> LayerNorm -> activation -> dropout] per hidden width; the dropout rate comes per call."""
    layers = SequentialWithDropout()
    for index, width in enumerate(hidden_dims):
        layers.add_module(f"dense_{index}", nn.Linear(in_dim, width))
        layers.add_module(f"norm_{index}", nn.LayerNorm(width, eps=LAYER_NORM_EPS))
        layers.add_module(f"activation_fn_{index}", activation())
        layers.add_module(f"dropout_{index}", CustomDropout())
        in_dim = width
    return layers


class Topology(NamedTuple):
    """Index tensors shared by every message-passing step of one batch."""

    senders: torch.Tensor  # (E,) node index
    receivers: torch.Tensor  # (E,) node index
    node_graph: torch.Tensor  # (N,) graph index of every node
    edge_graph: torch.Tensor  # (E,) graph index of every edge
    num_graphs: int


def segment_sum(values: torch.Tensor, segment_ids: torch.Tensor, num_segments: int) -> torch.Tensor:
    """Sums rows of `values` (R, D) into `num_segments` rows by `segment_ids` (R,)."""
    out = values.new_zeros((num_segments, values.shape[1]))
    # scatter_add_ with a broadcast (not copied) index, as upstream; index_add_ computes the same but its
    # CPU kernel slows down badly on busy multi-threaded hosts.
    return out.scatter_add_(0, segment_ids[:, None].expand_as(values), values)


class GraphNetwork(nn.Module):
    """One message-passing step: edge, then node, then global update.

    Unlike the paper, nodes aggregate the edges they send and the edges they
    receive separately (both directions are in the batch, so this is symmetric).
    """

    def __init__(self, update_edge_fn: nn.Module, update_node_fn: nn.Module, update_global_fn: nn.Module) -> None:
        super().__init__()
        self.update_edge_fn = update_edge_fn
        self.update_node_fn = update_node_fn
        self.update_global_fn = update_global_fn

    def forward(
        self, nodes: torch.Tensor, edges: torch.Tensor, globals_: torch.Tensor, topology: Topology, dropout_rate: float
    ):
        # nodes (N, Dn), edges (E, De), globals_ (G, Dg)
        num_nodes = nodes.shape[0]
        edge_inputs = torch.cat(
            [edges, nodes[topology.senders], nodes[topology.receivers], globals_[topology.edge_graph]], dim=-1
        )  # (E, De + 2 Dn + Dg)
        edges = self.update_edge_fn(edge_inputs, dropout_rate)  # (E, H)

        node_inputs = torch.cat(
            [
                nodes,
                segment_sum(edges, topology.senders, num_nodes),
                segment_sum(edges, topology.receivers, num_nodes),
                globals_[topology.node_graph],
            ],
            dim=-1,
        )  # (N, Dn + 2 H + Dg)
        nodes = self.update_node_fn(node_inputs, dropout_rate)  # (N, H)

        global_inputs = torch.cat(
            [
                segment_sum(nodes, topology.node_graph, topology.num_graphs),
                segment_sum(edges, topology.edge_graph, topology.num_graphs),
                globals_,
            ],
            dim=-1,
        )  # (G, 2 H + Dg)
        globals_ = self.update_global_fn(global_inputs, dropout_rate)  # (G, H)
        return nodes, edges, globals_


class GNN(nn.Module):
    def __init__(
        self,
        num_outputs: int = 128,
        activation_fn_name: str = "relu",
        latent_dim: int = 256,
        hidden_dims: Sequence[int] = (256,),
        num_message_passing_steps: int = 5,
    ) -> None:
        super().__init__()
        if activation_fn_name not in ACTIVATIONS:
            raise ValueError(f"Unknown activation {activation_fn_name!r}; expected one of {', '.join(ACTIVATIONS)}.")
        activation = ACTIVATIONS[activation_fn_name]
        self.num_outputs = num_outputs
        self.node_embedder = nn.Linear(NODE_FEATURE_DIM, latent_dim)
        self.edge_embedder = nn.Linear(EDGE_FEATURE_DIM, latent_dim)

        width = hidden_dims[-1]
        steps = []
        for step in range(num_message_passing_steps):
            if step == 0:
                # Embedded nodes and edges are latent_dim wide; the zero globals are num_outputs wide.
                edge_in = 3 * latent_dim + num_outputs
                node_in = latent_dim + 2 * width + num_outputs
                global_in = 2 * width + num_outputs
            else:
                edge_in, node_in, global_in = 4 * width, 4 * width, 3 * width
            steps.append(
                GraphNetwork(
                    update_edge_fn=make_mlp(edge_in, hidden_dims, activation),
                    update_node_fn=make_mlp(node_in, hidden_dims, activation),
                    update_global_fn=make_mlp(global_in, hidden_dims, activation),
                )
            )
        self.graph_network = nn.ModuleList(steps)
        self.decoder = nn.Linear(width, num_outputs)

        for module in self.modules():
            if isinstance(module, nn.Linear):
                pytorch_default_init(module)

    def forward(self, graph: GraphsTuple, dropout_rate: float = DROPOUT_RATE) -> torch.Tensor:
        num_graphs = graph.n_node.shape[0]
        nodes = self.node_embedder(graph.nodes)  # (N, latent)
        edges = self.edge_embedder(graph.edges)  # (E, latent)
        globals_ = nodes.new_zeros((num_graphs, self.num_outputs))  # (G, num_outputs)
        graph_ids = torch.arange(num_graphs, device=nodes.device)
        # output_size keeps repeat_interleave from reading the counts back to the host.
        topology = Topology(
            senders=graph.senders,
            receivers=graph.receivers,
            node_graph=torch.repeat_interleave(graph_ids, graph.n_node, output_size=nodes.shape[0]),
            edge_graph=torch.repeat_interleave(graph_ids, graph.n_edge, output_size=edges.shape[0]),
            num_graphs=num_graphs,
        )
        for step in self.graph_network:
            nodes, edges, globals_ = step(nodes, edges, globals_, topology, dropout_rate)
        return self.decoder(globals_)  # (G, num_outputs) logits
