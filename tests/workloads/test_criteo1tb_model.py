"""DLRM-small and its variants: parameter counts, names and types, initialisation, interactions, lookups."""

from __future__ import annotations

import collections
import math

import pytest
import torch

from pytest_algoperf.api import random_utils as prng
from pytest_algoperf.api.param_utils import ParameterType, pytorch_param_shapes, pytorch_param_types
from pytest_algoperf.api.spec import ForwardPassMode
from workloads.criteo1tb.model import DLRMResNet, DlrmSmall, DotInteract
from workloads.registry import get_workload

# Reference §4.1 / §5 counts, and the AlgoPerf parameter types the names give (reference §2.3).
EXPECTED = {
    "criteo1tb": (539_267_457, {ParameterType.WEIGHT: 12, ParameterType.BIAS: 8}),
    "criteo1tb_embed_init": (539_267_457, {ParameterType.WEIGHT: 12, ParameterType.BIAS: 8}),
    "criteo1tb_test": (10_785_153, {ParameterType.WEIGHT: 12, ParameterType.BIAS: 8}),
    "criteo1tb_resnet": (538_121_473, {ParameterType.WEIGHT: 12, ParameterType.BIAS: 8}),
    # LayerNorms inside bot_mlp/top_mlp have index names ('top_mlp.2.weight') and count as WEIGHT/BIAS;
    # only `embed_ln` has 'ln' in its name.
    "criteo1tb_layernorm": (
        539_275_137,
        {ParameterType.WEIGHT: 19, ParameterType.BIAS: 15, ParameterType.LAYER_NORM_SCALE: 1, ParameterType.LAYER_NORM_BIAS: 1},
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parameter_count_and_types_without_allocating(name):
    with torch.device("meta"):
        model = get_workload(name).build_model()
    count, types = EXPECTED[name]
    assert sum(p.numel() for p in model.parameters()) == count
    assert collections.Counter(pytorch_param_types(pytorch_param_shapes(model)).values()) == types


def test_base_model_has_upstreams_parameter_names_and_shapes():
    with torch.device("meta"):
        model = get_workload("criteo1tb").build_model()
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert [name for name in shapes if name.startswith("embedding")] == [f"embedding_chunk_{i}" for i in range(4)]
    assert shapes["embedding_chunk_3"] == (1_048_576, 128)
    assert [shapes[f"bot_mlp.{i}.weight"] for i in (0, 2, 4)] == [(512, 13), (256, 512), (128, 256)]
    # Top MLP: 506 = 128 bottom features + 378 pairwise products of 27 vectors; dropout sits at index 8.
    assert [shapes[f"top_mlp.{i}.weight"] for i in (0, 2, 4, 6, 9)] == [(1024, 506), (1024, 1024), (512, 1024), (256, 512), (1, 256)]
    types = pytorch_param_types(pytorch_param_shapes(model))
    assert types["embedding_chunk_0"] == ParameterType.WEIGHT  # upstream quirk: no 'weight' in the name


def test_resnet_variant_names_its_blocks_like_upstream():
    with torch.device("meta"):
        model = get_workload("criteo1tb_resnet").build_model()
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes["bot_mlp.0.module.0.weight"] == (256, 13)
    assert shapes["top_mlp.0.module.0.weight"] == (256, 256 + 26 * 128)
    assert shapes["top_mlp.4.module.0.weight"] == (1, 256)


def test_output_params_are_upstreams_keys():
    workload = get_workload("criteo1tb")
    assert workload.is_output_params("top_mlp.4.weight") and workload.is_output_params("top_mlp.4.bias")
    assert not workload.is_output_params("top_mlp.9.weight")


def test_initialisation_follows_the_reference():
    torch.manual_seed(0)
    model = DlrmSmall(vocab_size=65_536)
    table = torch.cat([getattr(model, f"embedding_chunk_{i}") for i in range(4)]).detach()
    assert table.min() >= 0 and table.max() < 1 / 256  # uniform [0, 1) / sqrt(65,536)
    assert table.mean().item() == pytest.approx(0.5 / 256, rel=0.01)
    first = model.bot_mlp[0]
    assert first.weight.abs().max() <= math.sqrt(6 / (13 + 512))  # Glorot uniform
    assert first.bias.std().item() == pytest.approx(math.sqrt(1 / 512), rel=0.15)
    assert model.top_mlp[2].weight.std().item() == pytest.approx(math.sqrt(2 / 2048), rel=0.02)  # Glorot normal
    wide = DlrmSmall(vocab_size=65_536, embedding_init_multiplier=1.0)
    assert wide.embedding_chunk_0.max() > 0.99  # criteo1tb_embed_init: uniform [0, 1)


def test_same_seed_same_model_through_init_model_fn():
    workload = get_workload("criteo1tb_test")
    first, state = workload.init_model_fn(prng.PRNGKey(3))
    second, _ = get_workload("criteo1tb_test").init_model_fn(prng.PRNGKey(3))
    assert state is None
    torch.testing.assert_close(first.state_dict(), second.state_dict())
    assert workload.model_params_types["bot_mlp.0.bias"] == ParameterType.BIAS


def test_dot_interaction_is_the_upper_triangle_with_diagonal():
    interact = DotInteract(num_sparse_features=2)
    dense = torch.tensor([[1.0, 2.0]])
    sparse = torch.tensor([[[3.0, 0.0], [1.0, 1.0]]])
    # Vectors d=(1,2), a=(3,0), b=(1,1): d.d=5, d.a=3, d.b=3, a.a=9, a.b=3, b.b=2.
    assert interact(dense, sparse).tolist() == [[1.0, 2.0, 5.0, 3.0, 3.0, 9.0, 3.0, 2.0]]


def test_category_ids_wrap_modulo_the_vocabulary():
    model = DlrmSmall(vocab_size=8, mlp_bottom_dims=(4, 4, 2), mlp_top_dims=(4, 1), embed_dim=2)
    with torch.no_grad():
        for index in range(4):
            chunk = getattr(model, f"embedding_chunk_{index}")
            chunk.copy_(torch.arange(2 * index, 2 * index + 2, dtype=torch.float32)[:, None].expand(2, 2))
    seen = {}
    model.dot_interact.register_forward_hook(lambda module, args, out: seen.update(sparse=args[1]))
    ids = torch.tensor([[13.0] + [2.0] * 25])  # 13 mod 8 = 5: the second row of chunk 2
    model(torch.cat([torch.zeros(1, 13), ids], dim=1))
    assert seen["sparse"][0, 0].tolist() == [5.0, 5.0] and seen["sparse"][0, 1].tolist() == [2.0, 2.0]


def test_dropout_rate_is_chosen_per_call_and_off_in_eval():
    workload = get_workload("criteo1tb_test")
    model, _ = workload.init_model_fn(prng.PRNGKey(0))
    batch = {"inputs": torch.cat([torch.rand(64, 13), torch.randint(0, 10**6, (64, 26)).float()], dim=1)}
    evaluated, _ = workload.model_fn(model, batch, None, ForwardPassMode.EVAL, None, False, dropout_rate=0.5)
    again, _ = workload.model_fn(model, batch, None, ForwardPassMode.EVAL, None, False)
    assert torch.equal(evaluated, again) and not evaluated.requires_grad and evaluated.shape == (64, 1)
    trained, _ = workload.model_fn(model, batch, None, ForwardPassMode.TRAIN, None, True, dropout_rate=0.5)
    assert trained.requires_grad and not torch.allclose(trained, evaluated)
    undropped, _ = workload.model_fn(model, batch, None, ForwardPassMode.TRAIN, None, True, dropout_rate=0.0)
    torch.testing.assert_close(undropped, evaluated)


def test_layer_norm_and_residual_models_run_forward_and_backward():
    inputs = torch.cat([torch.rand(4, 13), torch.randint(0, 10**6, (4, 26)).float()], dim=1)
    for model in (DlrmSmall(vocab_size=64, use_layer_norm=True), DLRMResNet(vocab_size=64)):
        logits = model(inputs, dropout_rate=0.1)
        logits.sum().backward()
        assert logits.shape == (4, 1) and model.embedding_chunk_0.grad is not None


def test_chunked_lookup_gives_the_concatenated_tables_rows_and_gradients():
    """The lookup reads each id from its chunk; upstream concatenates the chunks first. Same values, same grads."""
    import torch.nn.functional as F

    from workloads.criteo1tb import model as criteo_model

    torch.manual_seed(0)
    holder = torch.nn.Module()
    criteo_model._init_embedding_chunks(holder, 4000, 8, 0.5)
    ids = torch.randint(-10_000, 10_000, (16, 26)).float()
    chunks = [getattr(holder, f"embedding_chunk_{i}") for i in range(criteo_model.NUM_EMBEDDING_CHUNKS)]
    ours = criteo_model._lookup(holder, ids, 4000)
    ours.square().sum().backward()
    ours_grads = [chunk.grad.clone() for chunk in chunks]
    for chunk in chunks:
        chunk.grad = None
    reference = F.embedding(ids.to(torch.int32) % 4000, torch.cat(chunks, dim=0))
    reference.square().sum().backward()
    assert torch.equal(ours, reference)
    assert all(torch.equal(mine, chunk.grad) for mine, chunk in zip(ours_grads, chunks))
