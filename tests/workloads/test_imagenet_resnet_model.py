"""The ImageNet ResNet-50 and its variants: parameter count, names and types, initialisation, activations, shapes."""

from __future__ import annotations

import collections
import math

import pytest
import torch
from torch import nn

from pytest_algoperf.api.init_utils import TRUNCATED_NORMAL_STDDEV
from pytest_algoperf.api.param_utils import ParameterType, pytorch_param_shapes, pytorch_param_types
from workloads.imagenet_resnet.model import VARIANT_MODEL_KWARGS, Bottleneck, resnet50

# Reference §4.4 count; no variant changes a shape. Types by upstream's names (reference §2.3): 53 convs
# (stem, 3 per bottleneck x 16, 4 shortcut convs) and 53 BNs, each read by 'conv' / 'bn' in the name
# (`downsample.conv`, `downsample.bn`); the classifier is a plain WEIGHT + BIAS.
NUM_PARAMS = 25_557_032
TYPES = {
    ParameterType.CONV_WEIGHT: 53,
    ParameterType.BATCH_NORM_SCALE: 53,
    ParameterType.BATCH_NORM_BIAS: 53,
    ParameterType.WEIGHT: 1,
    ParameterType.BIAS: 1,
}
ACTIVATION = {
    "imagenet_resnet": nn.ReLU,
    "imagenet_resnet_silu": nn.SiLU,
    "imagenet_resnet_gelu": nn.GELU,
    "imagenet_resnet_large_bn_init": nn.ReLU,
}
BN_INIT_SCALE = {"imagenet_resnet": 0.0, "imagenet_resnet_large_bn_init": 8.0}


@pytest.fixture(autouse=True, scope="module")
def two_torch_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    yield
    torch.set_num_threads(threads)


def _meta_model(name: str) -> nn.Module:
    with torch.device("meta"):
        return resnet50(**VARIANT_MODEL_KWARGS[name])


@pytest.fixture(scope="module")
def built():
    """The two variants whose initial values differ, built for real once."""
    models = {}
    for name in BN_INIT_SCALE:
        torch.manual_seed(0)
        models[name] = resnet50(**VARIANT_MODEL_KWARGS[name])
    return models


def test_every_variant_has_a_model_entry():
    assert set(VARIANT_MODEL_KWARGS) == set(ACTIVATION)


@pytest.mark.parametrize("name", sorted(ACTIVATION))
def test_parameter_count_and_types_without_allocating(name):
    model = _meta_model(name)
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMS
    assert collections.Counter(pytorch_param_types(pytorch_param_shapes(model)).values()) == TYPES


def test_base_model_has_upstreams_parameter_names_and_shapes():
    shapes = {name: tuple(p.shape) for name, p in _meta_model("imagenet_resnet").named_parameters()}
    assert shapes["conv1.weight"] == (64, 3, 7, 7)
    assert shapes["bn1.weight"] == shapes["bn1.bias"] == (64,)
    assert shapes["layer1.0.conv1.weight"] == (64, 64, 1, 1)
    assert shapes["layer1.0.downsample.conv.weight"] == (256, 64, 1, 1)  # channels change, no stride
    assert shapes["layer2.0.conv2.weight"] == (128, 128, 3, 3)  # the strided conv
    assert shapes["layer2.0.downsample.conv.weight"] == (512, 256, 1, 1)
    assert shapes["layer3.5.bn3.weight"] == (1024,)
    assert shapes["layer4.2.conv3.weight"] == (2048, 512, 1, 1)
    assert (shapes["fc.weight"], shapes["fc.bias"]) == ((1000, 2048), (1000,))
    assert sum(1 for name in shapes if name.endswith("downsample.conv.weight")) == 4
    # Upstream's registration order: the stem, the blocks (shortcut after bn3), then the classifier.
    names = list(shapes)
    assert names[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"] and names[-2:] == ["fc.weight", "fc.bias"]
    assert names.index("layer1.0.bn3.bias") + 1 == names.index("layer1.0.downsample.conv.weight")

    types = pytorch_param_types(pytorch_param_shapes(_meta_model("imagenet_resnet")))
    assert types["layer1.0.downsample.bn.weight"] == ParameterType.BATCH_NORM_SCALE
    assert types["layer1.0.downsample.conv.weight"] == ParameterType.CONV_WEIGHT
    assert (types["fc.weight"], types["fc.bias"]) == (ParameterType.WEIGHT, ParameterType.BIAS)


@pytest.mark.parametrize("name", sorted(ACTIVATION))
def test_each_variant_uses_its_activation(name):
    model = _meta_model(name)
    activations = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.SiLU, nn.GELU))]
    assert len(activations) == 17  # the stem's and one per bottleneck
    assert all(type(m) is ACTIVATION[name] for m in activations)
    if ACTIVATION[name] is nn.GELU:
        assert all(m.approximate == "tanh" for m in activations)
    else:
        assert all(m.inplace for m in activations)


@pytest.mark.parametrize("name", sorted(BN_INIT_SCALE))
def test_initialisation(built, name):
    model = built[name]
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert len(blocks) == 16
    last_bns = {id(block.bn3) for block in blocks}
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            expected = BN_INIT_SCALE[name] if id(module) in last_bns else 1.0
            assert torch.all(module.weight == expected) and torch.all(module.bias == 0)
    assert model.fc.weight.std().item() == pytest.approx(0.01, rel=0.01)
    assert torch.all(model.fc.bias == 0)
    # Convs: LeCun-normal truncated at two standard deviations (pytorch_default_init).
    fan_in = 3 * 7 * 7
    bound = 2 * math.sqrt(1 / fan_in) / TRUNCATED_NORMAL_STDDEV
    assert model.conv1.weight.abs().max().item() <= bound
    assert model.layer4[0].conv2.weight.std().item() == pytest.approx(math.sqrt(1 / (512 * 9)), rel=0.02)


def test_same_seed_same_weights_and_output_shape(built):
    torch.manual_seed(0)
    again = resnet50()
    base = built["imagenet_resnet"]
    assert all(torch.equal(a, b) for a, b in zip(again.parameters(), base.parameters()))
    base.eval()
    with torch.no_grad():
        logits = base(torch.randn(1, 3, 64, 64))
    assert logits.shape == (1, 1000) and torch.isfinite(logits).all()


def test_train_mode_forward_and_backward_reach_every_parameter(built):
    model = built["imagenet_resnet_large_bn_init"]  # nonzero last-BN gammas: gradients reach every conv
    model.train()
    model.zero_grad()
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.zero_grad()


def test_unknown_activation_is_rejected():
    with torch.device("meta"), pytest.raises(ValueError, match="Unknown activation 'tanh'"):
        resnet50(activation="tanh")
