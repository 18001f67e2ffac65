"""The CIFAR-10 ResNet-18: reference parameter count, names and types, initialisation, shapes."""

from __future__ import annotations

import collections

import pytest
import torch
from torch import nn

from pytest_algoperf.api.param_utils import ParameterType, pytorch_param_shapes, pytorch_param_types
from workloads.cifar.model import resnet18
from workloads.imagenet_resnet.model import BasicBlock

# Reference §4.10 / §4.1 count. Types by upstream's names: 20 convs (stem, 2 per block x 8, 3 shortcut
# convs), 20 BNs, and the classifier's WEIGHT + BIAS.
NUM_PARAMS = 11_173_962
TYPES = {
    ParameterType.CONV_WEIGHT: 20,
    ParameterType.BATCH_NORM_SCALE: 20,
    ParameterType.BATCH_NORM_BIAS: 20,
    ParameterType.WEIGHT: 1,
    ParameterType.BIAS: 1,
}


@pytest.fixture(autouse=True, scope="module")
def two_torch_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return resnet18()


def _meta_model() -> nn.Module:
    with torch.device("meta"):
        return resnet18()


def test_parameter_count_and_types_without_allocating():
    model = _meta_model()
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMS
    assert collections.Counter(pytorch_param_types(pytorch_param_shapes(model)).values()) == TYPES


def test_upstreams_parameter_names_and_shapes():
    shapes = {name: tuple(p.shape) for name, p in _meta_model().named_parameters()}
    assert shapes["conv1.weight"] == (64, 3, 3, 3)  # 3x3 stem, not ImageNet's 7x7
    assert shapes["layer1.0.conv1.weight"] == (64, 64, 3, 3)
    assert shapes["layer1.1.bn2.weight"] == (64,)
    assert not any(name.startswith("layer1.0.downsample") for name in shapes)  # 64 -> 64, stride 1
    assert shapes["layer2.0.conv1.weight"] == (128, 64, 3, 3)
    assert shapes["layer2.0.downsample.conv.weight"] == (128, 64, 1, 1)
    assert shapes["layer4.0.downsample.bn.bias"] == (512,)
    assert (shapes["fc.weight"], shapes["fc.bias"]) == ((10, 512), (10,))
    names = list(shapes)
    assert names[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"] and names[-2:] == ["fc.weight", "fc.bias"]
    types = pytorch_param_types(pytorch_param_shapes(_meta_model()))
    assert types["layer2.0.downsample.bn.weight"] == ParameterType.BATCH_NORM_SCALE


def test_architecture_has_no_max_pool_and_relu_everywhere():
    model = _meta_model()
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AdaptiveAvgPool2d)) for m in model.modules())
    assert model.conv1.stride == (1, 1) and model.conv1.padding == (1, 1)
    activations = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.SiLU, nn.GELU))]
    assert len(activations) == 9 and all(type(m) is nn.ReLU and m.inplace for m in activations)


def test_initialisation(model):
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 8
    last_bns = {id(block.bn2) for block in blocks}
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            expected = 0.0 if id(module) in last_bns else 1.0
            assert torch.all(module.weight == expected) and torch.all(module.bias == 0)
    assert model.fc.weight.std().item() == pytest.approx(0.01, rel=0.05)  # 5,120 samples
    assert torch.all(model.fc.bias == 0)
    assert model.layer3[1].conv1.weight.std().item() == pytest.approx((1 / (256 * 9)) ** 0.5, rel=0.02)


def test_output_shape_and_seed_reproducibility(model):
    torch.manual_seed(0)
    again = resnet18()
    assert all(torch.equal(a, b) for a, b in zip(again.parameters(), model.parameters()))
    model.train()
    logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    logits.sum().backward()
    assert model.fc.weight.grad is not None and model.conv1.weight.grad is not None
    model.zero_grad()
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
