"""The OGBG graph network: reference parameter counts, names and types per variant; message passing checked by hand."""

from __future__ import annotations

import collections

import pytest
import torch

from pytest_algoperf.api import random_utils as prng
from pytest_algoperf.api.param_utils import ParameterType
from pytest_algoperf.api.spec import ForwardPassMode
from workloads.ogbg.graphs import GraphsTuple
from workloads.ogbg.model import GNN
from workloads.registry import get_workload

BASE_TYPES = {
    ParameterType.WEIGHT: 16, ParameterType.BIAS: 18, ParameterType.LAYER_NORM_SCALE: 15,
    ParameterType.LAYER_NORM_BIAS: 15, ParameterType.EMBEDDING: 2,
}

MODEL_SIZE_TYPES = {
    ParameterType.WEIGHT: 19, ParameterType.BIAS: 21, ParameterType.LAYER_NORM_SCALE: 18,
    ParameterType.LAYER_NORM_BIAS: 18, ParameterType.EMBEDDING: 2,
}


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Small graphs run fastest on one thread; on a busy shared host, more threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    "name, num_params, types, activation",
    [
        ("ogbg", 3_554_176, BASE_TYPES, torch.nn.ReLU),
        ("ogbg_gelu", 3_554_176, BASE_TYPES, torch.nn.GELU),
        ("ogbg_silu", 3_554_176, BASE_TYPES, torch.nn.SiLU),
        ("ogbg_model_size", 2_571_648, MODEL_SIZE_TYPES, torch.nn.ReLU),
    ],
)
def test_parameter_count_types_and_activation_per_variant(name, num_params, types, activation):
    workload = get_workload(name)
    model, model_state = workload.init_model_fn(prng.PRNGKey(0))
    assert model_state is None
    assert sum(p.numel() for p in model.parameters()) == num_params
    assert collections.Counter(workload.model_params_types.values()) == types
    assert isinstance(model.graph_network[0].update_edge_fn.activation_fn_0, activation)
    if name == "ogbg_gelu":
        assert model.graph_network[0].update_edge_fn.activation_fn_0.approximate == "tanh"
    assert workload.is_output_params("decoder.weight") and workload.is_output_params("decoder.bias")
    assert not workload.is_output_params("node_embedder.weight")


def test_parameter_names_and_shapes_are_upstreams():
    workload = get_workload("ogbg")
    workload.init_model_fn(prng.PRNGKey(0))
    shapes = {name: tuple(shape.shape_tuple) for name, shape in workload.param_shapes.items()}
    types = workload.model_params_types
    assert shapes["node_embedder.weight"] == (256, 9) and types["node_embedder.weight"] == ParameterType.EMBEDDING
    assert shapes["edge_embedder.weight"] == (256, 3) and types["edge_embedder.bias"] == ParameterType.BIAS
    # First step: edges see [edge 256, sender 256, receiver 256, zero globals 128].
    assert shapes["graph_network.0.update_edge_fn.dense_0.weight"] == (256, 896)
    assert shapes["graph_network.0.update_global_fn.dense_0.weight"] == (256, 640)
    assert shapes["graph_network.4.update_node_fn.dense_0.weight"] == (256, 1024)
    assert types["graph_network.4.update_global_fn.norm_0.weight"] == ParameterType.LAYER_NORM_SCALE
    assert types["graph_network.4.update_global_fn.norm_0.bias"] == ParameterType.LAYER_NORM_BIAS
    assert shapes["decoder.weight"] == (128, 256)
    assert len(shapes) == 66


def test_init_is_seeded_lecun_normal_with_zero_bias():
    first, _ = get_workload("ogbg").init_model_fn(prng.PRNGKey(0))
    again, _ = get_workload("ogbg").init_model_fn(prng.PRNGKey(0))
    other, _ = get_workload("ogbg").init_model_fn(prng.PRNGKey(1))
    torch.testing.assert_close(first.state_dict(), again.state_dict())
    assert not torch.equal(first.decoder.weight, other.decoder.weight)
    weight = first.graph_network[1].update_edge_fn.dense_0.weight  # fan_in 1024
    std = (1 / 1024) ** 0.5 / 0.87962566103423978
    assert weight.abs().max() <= 2 * std + 1e-6
    assert weight.std().item() == pytest.approx((1 / 1024) ** 0.5, rel=0.05)
    assert torch.count_nonzero(first.graph_network[1].update_edge_fn.dense_0.bias) == 0
    assert torch.equal(first.graph_network[1].update_edge_fn.norm_0.weight, torch.ones(256))


def _graph(nodes, edges, senders, receivers, n_node, n_edge) -> GraphsTuple:
    return GraphsTuple(
        torch.tensor(nodes, dtype=torch.float32), torch.tensor(edges, dtype=torch.float32),
        torch.tensor(receivers), torch.tensor(senders), {}, torch.tensor(n_node), torch.tensor(n_edge),
    )


def _two_molecules() -> GraphsTuple:
    # Molecule 0: atoms 0-1-2 (bonds both ways); molecule 1: atoms 3-4 (one bond both ways).
    generator = torch.Generator().manual_seed(0)
    nodes = torch.randint(0, 5, (5, 9), generator=generator).tolist()
    edges = torch.randint(0, 3, (6, 3), generator=generator).tolist()
    return _graph(nodes, edges, senders=[0, 1, 1, 2, 3, 4], receivers=[1, 2, 0, 1, 4, 3], n_node=[3, 2], n_edge=[4, 2])


def _by_hand(model: GNN, graph: GraphsTuple) -> torch.Tensor:
    """Algorithm 1 of the graph-nets paper, one edge and one node at a time."""
    senders, receivers = graph.senders.tolist(), graph.receivers.tolist()
    node_graph = [g for g, count in enumerate(graph.n_node.tolist()) for _ in range(count)]
    edge_graph = [g for g, count in enumerate(graph.n_edge.tolist()) for _ in range(count)]
    nodes = model.node_embedder(graph.nodes)
    edges = model.edge_embedder(graph.edges)
    globals_ = torch.zeros(len(graph.n_node), 128)
    for step in model.graph_network:
        edges = torch.stack([
            step.update_edge_fn(torch.cat([edges[e], nodes[senders[e]], nodes[receivers[e]], globals_[edge_graph[e]]])[None], 0.0)[0]
            for e in range(len(senders))
        ])
        width = edges.shape[1]
        new_nodes = []
        for v in range(len(nodes)):
            sent = sum((edges[e] for e in range(len(senders)) if senders[e] == v), torch.zeros(width))
            received = sum((edges[e] for e in range(len(senders)) if receivers[e] == v), torch.zeros(width))
            new_nodes.append(step.update_node_fn(torch.cat([nodes[v], sent, received, globals_[node_graph[v]]])[None], 0.0)[0])
        nodes = torch.stack(new_nodes)
        globals_ = torch.stack([
            step.update_global_fn(torch.cat([
                sum(nodes[v] for v in range(len(nodes)) if node_graph[v] == g),
                sum(edges[e] for e in range(len(senders)) if edge_graph[e] == g),
                globals_[g],
            ])[None], 0.0)[0]
            for g in range(len(graph.n_node))
        ])
    return model.decoder(globals_)


@pytest.mark.parametrize("name", ["ogbg", "ogbg_model_size"])
def test_message_passing_matches_the_algorithm_done_by_hand(name):
    workload = get_workload(name)
    model, _ = workload.init_model_fn(prng.PRNGKey(3))
    graph = _two_molecules()
    logits, _ = workload.model_fn(model, {"inputs": graph}, None, ForwardPassMode.EVAL, None, False)
    assert logits.shape == (2, 128) and not logits.requires_grad
    with torch.no_grad():
        torch.testing.assert_close(logits, _by_hand(model.eval(), graph), rtol=1e-4, atol=1e-5)


def test_molecules_do_not_see_each_other_or_the_padding():
    workload = get_workload("ogbg")
    model, _ = workload.init_model_fn(prng.PRNGKey(0))
    both = _two_molecules()
    alone = _graph(both.nodes[3:].tolist(), both.edges[4:].tolist(), [0, 1], [1, 0], [2], [2])
    # The second molecule, then a padding graph of 3 nodes whose 4 edges point at its first node, then an empty graph.
    padded = _graph(
        both.nodes[3:].tolist() + [[0.0] * 9] * 3, both.edges[4:].tolist() + [[0.0] * 3] * 4,
        [0, 1, 2, 2, 2, 2], [1, 0, 2, 2, 2, 2], [2, 3, 0], [2, 4, 0],
    )
    outputs = [workload.model_fn(model, {"inputs": g}, None, ForwardPassMode.EVAL, None, False)[0] for g in (both, alone, padded)]
    torch.testing.assert_close(outputs[0][1], outputs[1][0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(outputs[0][1], outputs[2][0], rtol=1e-5, atol=1e-5)


def test_dropout_rate_is_chosen_per_call_with_upstreams_default():
    workload = get_workload("ogbg")
    model, _ = workload.init_model_fn(prng.PRNGKey(0))
    batch = {"inputs": _two_molecules()}
    evaluated, _ = workload.model_fn(model, batch, None, ForwardPassMode.EVAL, None, False)
    without_dropout, _ = workload.model_fn(model, batch, None, ForwardPassMode.TRAIN, None, True, dropout_rate=0.0)
    assert model.training and without_dropout.requires_grad
    torch.testing.assert_close(without_dropout.detach(), evaluated)
    default, _ = workload.model_fn(model, batch, None, ForwardPassMode.TRAIN, None, True)  # 0.1
    assert not torch.allclose(default.detach(), evaluated)
    workload.fix_dropout_at_init(0.0, None)  # a v0.5-API run chose no dropout at init
    fixed, _ = workload.model_fn(model, batch, None, ForwardPassMode.TRAIN, None, True)
    torch.testing.assert_close(fixed.detach(), evaluated)
    with pytest.raises(ValueError, match="model_state to be None"):
        workload.model_fn(model, batch, {"bn": 1}, ForwardPassMode.EVAL, None, False)
