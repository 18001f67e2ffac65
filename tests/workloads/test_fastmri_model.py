"""The fastMRI U-Net and its variants: reference parameter counts, names and types, initialisation, shapes, dropout."""

from __future__ import annotations

import collections

import pytest
import torch
from torch import nn

from pytest_algoperf.api import random_utils as prng
from pytest_algoperf.api.param_utils import ParameterType, pytorch_param_shapes, pytorch_param_types
from pytest_algoperf.api.spec import ForwardPassMode
from workloads.registry import get_workload

# Reference §4.1 / §5 counts, and the types upstream's names give (reference §2.3): every name contains
# 'conv' (`down_sample_layers`, `up_conv`, `conv_layers`, ...), so the layernorm variant's GroupNorm
# scales count as CONV_WEIGHT and its offsets as BIAS; the only other bias is the output conv's.
EXPECTED = {
    "fastmri": (7_756_097, {ParameterType.CONV_WEIGHT: 23, ParameterType.BIAS: 1}),
    "fastmri_tanh": (7_756_097, {ParameterType.CONV_WEIGHT: 23, ParameterType.BIAS: 1}),
    "fastmri_model_size": (7_692_929, {ParameterType.CONV_WEIGHT: 18, ParameterType.BIAS: 1}),
    "fastmri_layernorm": (7_761_985, {ParameterType.CONV_WEIGHT: 41, ParameterType.BIAS: 19}),
}


@pytest.fixture(autouse=True, scope="module")
def two_torch_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    yield
    torch.set_num_threads(threads)


def _meta_model(name: str) -> nn.Module:
    with torch.device("meta"):
        return get_workload(name).build_model()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_parameter_count_and_types_without_allocating(name):
    model = _meta_model(name)
    count, types = EXPECTED[name]
    assert sum(p.numel() for p in model.parameters()) == count
    assert collections.Counter(pytorch_param_types(pytorch_param_shapes(model)).values()) == types


def test_base_model_has_upstreams_parameter_names_and_shapes():
    shapes = {name: tuple(p.shape) for name, p in _meta_model("fastmri").named_parameters()}
    assert shapes["down_sample_layers.0.conv_layers.0.weight"] == (32, 1, 3, 3)
    assert shapes["down_sample_layers.3.conv_layers.4.weight"] == (256, 256, 3, 3)
    assert shapes["conv.conv_layers.0.weight"] == (512, 256, 3, 3)  # the bottleneck
    assert shapes["up_transpose_conv.0.layers.0.weight"] == (512, 256, 2, 2)  # ConvTranspose2d: (in, out, k, k)
    assert shapes["up_conv.0.conv_layers.0.weight"] == (256, 512, 3, 3)  # after concatenating the skip
    assert shapes["up_conv.3.0.conv_layers.4.weight"] == (32, 32, 3, 3)
    assert (shapes["up_conv.3.1.weight"], shapes["up_conv.3.1.bias"]) == ((1, 32, 1, 1), (1,))
    # Upstream's registration order: down path, bottleneck, up convs, then the transposed convs.
    assert list(shapes)[0] == "down_sample_layers.0.conv_layers.0.weight"
    assert list(shapes)[-1] == "up_transpose_conv.3.layers.0.weight"
    assert len(shapes) == 24 and not any("bias" in name for name in shapes if name != "up_conv.3.1.bias")


def test_variants_change_what_upstreams_variants_change():
    model_size = {name: tuple(p.shape) for name, p in _meta_model("fastmri_model_size").named_parameters()}
    assert model_size["down_sample_layers.0.conv_layers.0.weight"] == (64, 1, 3, 3)
    assert model_size["conv.conv_layers.0.weight"] == (512, 256, 3, 3)
    assert model_size["up_conv.2.1.weight"] == (1, 64, 1, 1) and not any(n.startswith("up_conv.3") for n in model_size)

    layernorm = _meta_model("fastmri_layernorm")
    types = pytorch_param_types(pytorch_param_shapes(layernorm))
    assert types["down_sample_layers.0.conv_layers.1.weight"] == ParameterType.CONV_WEIGHT
    assert types["up_conv.3.0.conv_layers.5.bias"] == ParameterType.BIAS
    group_norms = [m for m in layernorm.modules() if isinstance(m, nn.GroupNorm)]
    assert len(group_norms) == 18 and all(m.num_groups == 1 and m.eps == 1e-6 and m.affine for m in group_norms)
    # The transposed-conv blocks keep their InstanceNorm, as upstream's.
    assert all(isinstance(block.layers[1], nn.InstanceNorm2d) for block in layernorm.up_transpose_conv)

    base = _meta_model("fastmri")
    assert not any(isinstance(m, nn.GroupNorm) for m in base.modules())
    assert all(not m.affine and not m.track_running_stats for m in base.modules() if isinstance(m, nn.InstanceNorm2d))
    leaky = [m for m in base.modules() if isinstance(m, nn.LeakyReLU)]
    assert leaky and all(m.negative_slope == 0.2 for m in leaky)

    tanh = _meta_model("fastmri_tanh")
    assert not any(isinstance(m, nn.LeakyReLU) for m in tanh.modules())
    assert isinstance(tanh.up_transpose_conv[0].layers[2], nn.Tanh) and isinstance(tanh.conv.conv_layers[6], nn.Tanh)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_output_params_are_upstreams_keys(name):
    workload = get_workload(name)
    assert workload.is_output_params("up_conv.3.1.weight") and workload.is_output_params("up_conv.3.1.bias")
    assert not workload.is_output_params("up_conv.3.0.conv_layers.4.weight")
    # Upstream quirk kept: the 3-level model's output layer is up_conv.2.1, which upstream does not name.
    assert not workload.is_output_params("up_conv.2.1.weight")


def test_init_is_seeded_lecun_normal_with_zero_bias():
    first, state = get_workload("fastmri").init_model_fn(prng.PRNGKey(0))
    again, _ = get_workload("fastmri").init_model_fn(prng.PRNGKey(0))
    other, _ = get_workload("fastmri").init_model_fn(prng.PRNGKey(1))
    assert state is None
    torch.testing.assert_close(first.state_dict(), again.state_dict(), rtol=0, atol=0)
    assert not torch.equal(first.conv.conv_layers[0].weight, other.conv.conv_layers[0].weight)
    for weight, fan_in in [
        (first.conv.conv_layers[0].weight, 256 * 9),
        (first.up_transpose_conv[0].layers[0].weight, 256 * 4),  # fan_in of a transposed conv: out channels x kernel
    ]:
        std = (1 / fan_in) ** 0.5
        assert weight.abs().max() <= 2 * std / 0.87962566103423978 + 1e-6
        assert weight.std().item() == pytest.approx(std, rel=0.05)
    assert torch.count_nonzero(first.up_conv[3][1].bias) == 0


def test_model_fn_maps_a_reference_sized_slice_to_one_of_the_same_size():
    workload = get_workload("fastmri")
    model, _ = workload.init_model_fn(prng.PRNGKey(0))
    inputs = torch.randn(1, 320, 320, generator=torch.Generator().manual_seed(0))
    outputs, state = workload.model_fn(model, {"inputs": inputs}, None, ForwardPassMode.EVAL, None, False)
    assert outputs.shape == (1, 320, 320) and state is None and not outputs.requires_grad
    assert torch.isfinite(outputs).all() and not model.training


@pytest.mark.parametrize("name", ["fastmri_model_size", "fastmri_layernorm"])
def test_odd_sizes_are_padded_back_to_the_input_size(name):
    # 36 x 44 pools to 18 x 22, 9 x 11, 4 x 5 (floored): the up path reflect-pads the missing row and column.
    workload = get_workload(name)
    model, _ = workload.init_model_fn(prng.PRNGKey(0))
    outputs, _ = workload.model_fn(model, {"inputs": torch.randn(2, 36, 44)}, None, ForwardPassMode.EVAL, None, False)
    assert outputs.shape == (2, 36, 44)


def test_dropout_rate_is_chosen_per_call_with_upstreams_default_of_zero():
    workload = get_workload("fastmri")
    model, _ = workload.init_model_fn(prng.PRNGKey(0))
    batch = {"inputs": torch.randn(2, 32, 32, generator=torch.Generator().manual_seed(1))}
    evaluated, _ = workload.model_fn(model, batch, None, ForwardPassMode.EVAL, None, False)
    # Instance norm keeps no running statistics, so without dropout training mode computes the same.
    trained, _ = workload.model_fn(model, batch, None, ForwardPassMode.TRAIN, None, True)
    assert model.training and trained.requires_grad
    torch.testing.assert_close(trained.detach(), evaluated)
    dropped, _ = workload.model_fn(model, batch, None, ForwardPassMode.TRAIN, None, True, dropout_rate=0.5)
    assert not torch.allclose(dropped.detach(), evaluated)
    workload.fix_dropout_at_init(0.5, None)  # a v0.5-API run chose its rate at init
    fixed, _ = workload.model_fn(model, batch, None, ForwardPassMode.TRAIN, None, True)
    assert not torch.allclose(fixed.detach(), evaluated)
    again, _ = workload.model_fn(model, batch, None, ForwardPassMode.EVAL, None, False)
    torch.testing.assert_close(again, evaluated)  # no dropout in eval
