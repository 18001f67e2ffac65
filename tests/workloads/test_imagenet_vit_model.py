"""The ImageNet ViT-S/16 and its variants: parameter counts, names and types, init, position embedding, structure, dropout."""

from __future__ import annotations

import collections
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_algoperf.api.init_utils import TRUNCATED_NORMAL_STDDEV
from pytest_algoperf.api.param_utils import ParameterType, pytorch_param_shapes, pytorch_param_types
from workloads.imagenet_vit.model import VARIANT_MODEL_KWARGS, ViT, posemb_sincos_2d, vit_s16

# Reference §4.5 / §5 counts. Base: patch conv 3*16*16*384 + 384 = 295,296; per block two LayerNorms
# (1,536), four 384x384 attention Linears (591,360) and the MLP 384->1536->384 (1,181,568), times 12 =
# 21,293,568; encoder_norm 768; pre_logits 147,840; head 385,000. GLU adds a 1536x1536 Linear per block
# (12 x 2,360,832), post-LN drops encoder_norm (768), MAP adds probe 384 + q/kv/out projections 591,360
# + LayerNorm 768 + MLP 1,181,568.
NUM_PARAMS = {
    "imagenet_vit": 22_122_472,
    "imagenet_vit_glu": 50_452_456,
    "imagenet_vit_post_ln": 22_121_704,
    "imagenet_vit_map": 23_896_552,
}

# Types by upstream's names under the first-match rules of reference §2.3 ('bn' never occurs):
#   encoder.net.<i>.layer_norm0/2.{weight,bias}, encoder.encoder_norm, map.layer_norm  -> 'norm' -> LAYER_NORM_*
#   conv_patch_extract.weight -> 'conv' -> CONV_WEIGHT; conv_patch_extract.bias -> 'conv' -> BIAS
#   ...self_attention1.{query,key,value,out}.weight -> 'attention' then 'query'/'key'/'value'/'out' ->
#   ATTENTION_Q/K/V/OUT; their biases -> ATTENTION_BIAS ('bias' is checked first)
#   mlp3.linear1/linear2/glu_linear, pre_logits, head -> no keyword ('linear' has no 'ln') -> WEIGHT / BIAS
#   map.probe -> WEIGHT; map.mha.{q,kv,out}_proj -> 'mha' contains neither 'attn' nor 'attention', so they
#   fall through to WEIGHT / BIAS too (not ATTENTION_Q / ATTENTION_KV), a quirk of upstream's names.
# Base: WEIGHT = 12 x 2 MLP + pre_logits + head = 26; BIAS = those 26 + the conv bias = 27;
# LayerNorm 12 x 2 + encoder_norm = 25 each; attention 12 per projection, 48 biases.
BASE_TYPES = {
    ParameterType.WEIGHT: 26,
    ParameterType.BIAS: 27,
    ParameterType.CONV_WEIGHT: 1,
    ParameterType.LAYER_NORM_SCALE: 25,
    ParameterType.LAYER_NORM_BIAS: 25,
    ParameterType.ATTENTION_Q: 12,
    ParameterType.ATTENTION_K: 12,
    ParameterType.ATTENTION_V: 12,
    ParameterType.ATTENTION_OUT: 12,
    ParameterType.ATTENTION_BIAS: 48,
}
TYPE_CHANGES = {
    "imagenet_vit": {},
    "imagenet_vit_glu": {ParameterType.WEIGHT: +12, ParameterType.BIAS: +12},  # glu_linear per block
    "imagenet_vit_post_ln": {ParameterType.LAYER_NORM_SCALE: -1, ParameterType.LAYER_NORM_BIAS: -1},
    # probe + 3 projections + 2 MLP Linears; 3 + 2 biases; map.layer_norm
    "imagenet_vit_map": {
        ParameterType.WEIGHT: +6,
        ParameterType.BIAS: +5,
        ParameterType.LAYER_NORM_SCALE: +1,
        ParameterType.LAYER_NORM_BIAS: +1,
    },
}
# A ViT small enough to run in milliseconds: 2x3 patches of 8x8, width 32, 4 heads.
TINY = dict(num_classes=10, patch_size=(8, 8), width=32, depth=2, mlp_dim=48, num_heads=4)


@pytest.fixture(autouse=True, scope="module")
def two_torch_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    yield
    torch.set_num_threads(threads)


def _meta_model(name: str) -> nn.Module:
    with torch.device("meta"):
        return vit_s16(**VARIANT_MODEL_KWARGS[name])


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(0)
    return vit_s16()


def _tiny(**kwargs) -> ViT:
    torch.manual_seed(0)
    model = ViT(**TINY, **kwargs)
    with torch.no_grad():  # a nonzero head, so the logits show what the body computes
        model.head.weight.normal_()
    return model


def test_every_variant_has_a_model_entry():
    assert set(VARIANT_MODEL_KWARGS) == set(NUM_PARAMS) == set(TYPE_CHANGES)


@pytest.mark.parametrize("name", sorted(NUM_PARAMS))
def test_parameter_count_and_types_without_allocating(name):
    model = _meta_model(name)
    assert sum(p.numel() for p in model.parameters()) == NUM_PARAMS[name]
    expected = collections.Counter(BASE_TYPES)
    expected.update(TYPE_CHANGES[name])
    assert collections.Counter(pytorch_param_types(pytorch_param_shapes(model)).values()) == expected


def test_base_model_has_upstreams_parameter_names_and_shapes():
    model = _meta_model("imagenet_vit")
    shapes = {name: tuple(p.shape) for name, p in model.named_parameters()}
    assert shapes["conv_patch_extract.weight"] == (384, 3, 16, 16)
    assert shapes["encoder.net.0.layer_norm0.weight"] == (384,)
    for projection in ("query", "key", "value", "out"):
        assert shapes[f"encoder.net.11.self_attention1.{projection}.weight"] == (384, 384)
    assert shapes["encoder.net.5.mlp3.linear1.weight"] == (1536, 384)
    assert shapes["encoder.net.5.mlp3.linear2.weight"] == (384, 1536)
    assert shapes["encoder.encoder_norm.weight"] == (384,)
    assert shapes["pre_logits.weight"] == (384, 384)
    assert (shapes["head.weight"], shapes["head.bias"]) == ((1000, 384), (1000,))
    assert not any("glu_linear" in name or name.startswith("map.") for name in shapes)
    # Upstream's registration order: pre_logits first, then the patch conv, the encoder, the head.
    names = list(shapes)
    assert names[:4] == ["pre_logits.weight", "pre_logits.bias", "conv_patch_extract.weight", "conv_patch_extract.bias"]
    assert names[-4:] == ["encoder.encoder_norm.weight", "encoder.encoder_norm.bias", "head.weight", "head.bias"]

    types = pytorch_param_types(pytorch_param_shapes(model))
    assert types["encoder.net.0.self_attention1.key.weight"] == ParameterType.ATTENTION_K
    assert types["encoder.net.0.self_attention1.out.bias"] == ParameterType.ATTENTION_BIAS
    assert types["encoder.net.0.mlp3.linear1.weight"] == ParameterType.WEIGHT
    assert types["conv_patch_extract.bias"] == ParameterType.BIAS


def test_variants_differ_in_upstreams_places():
    def shapes(name):
        return {n: tuple(p.shape) for n, p in _meta_model(name).named_parameters()}

    base, glu, post_ln, map_ = (shapes(f"imagenet_vit{suffix}") for suffix in ("", "_glu", "_post_ln", "_map"))
    glu_names = {f"encoder.net.{i}.mlp3.glu_linear.{p}" for i in range(12) for p in ("weight", "bias")}
    assert set(glu) - set(base) == glu_names
    assert glu["encoder.net.0.mlp3.glu_linear.weight"] == (1536, 1536)
    assert set(base) - set(post_ln) == {"encoder.encoder_norm.weight", "encoder.encoder_norm.bias"}
    assert set(post_ln) <= set(base)
    extra = {n: s for n, s in map_.items() if n not in base}
    assert extra == {
        "map.probe": (1, 1, 384),
        "map.mha.q_proj.weight": (384, 384),
        "map.mha.q_proj.bias": (384,),
        "map.mha.kv_proj.weight": (768, 384),
        "map.mha.kv_proj.bias": (768,),
        "map.mha.out_proj.weight": (384, 384),
        "map.mha.out_proj.bias": (384,),
        "map.layer_norm.weight": (384,),
        "map.layer_norm.bias": (384,),
        "map.mlp.linear1.weight": (1536, 384),
        "map.mlp.linear1.bias": (1536,),
        "map.mlp.linear2.weight": (384, 1536),
        "map.mlp.linear2.bias": (384,),
    }
    assert list(map_)[-13] == "map.probe"  # the MAP head is registered after `head`, as upstream


def _xavier_bound(weight: torch.Tensor) -> float:
    fan_out, fan_in = weight.shape[0], weight[0].numel()
    return math.sqrt(6.0 / (fan_in + fan_out))


def test_initialisation(base):
    assert torch.all(base.head.weight == 0) and torch.all(base.head.bias == 0)
    blocks = list(base.encoder.net)
    for block in (blocks[0], blocks[-1]):
        for linear in (block.self_attention1.query, block.self_attention1.key, block.self_attention1.value,
                       block.self_attention1.out, block.mlp3.linear1, block.mlp3.linear2):
            bound = _xavier_bound(linear.weight)
            assert linear.weight.abs().max().item() <= bound
            assert linear.weight.abs().max().item() > 0.99 * bound  # uniform over the whole interval
    for block in blocks:
        for projection in ("query", "key", "value", "out"):
            assert torch.all(getattr(block.self_attention1, projection).bias == 0)
    # MLP biases N(0, 1e-6): 12 x (1536 + 384) draws
    mlp_biases = torch.cat([torch.cat([b.mlp3.linear1.bias, b.mlp3.linear2.bias]) for b in blocks])
    assert mlp_biases.std().item() == pytest.approx(1e-6, rel=0.03)
    assert abs(mlp_biases.mean().item()) < 3e-8
    xavier_std = _xavier_bound(blocks[0].mlp3.linear1.weight) / math.sqrt(3)  # a uniform's std
    assert blocks[0].mlp3.linear1.weight.std().item() == pytest.approx(xavier_std, rel=0.01)
    # Patch conv and pre_logits: pytorch_default_init, LeCun normal truncated at 2 std (then std sqrt(1 / fan_in)).
    for module, fan_in in ((base.conv_patch_extract, 3 * 16 * 16), (base.pre_logits, 384)):
        assert module.weight.abs().max().item() <= 2 * math.sqrt(1 / fan_in) / TRUNCATED_NORMAL_STDDEV
        assert module.weight.std().item() == pytest.approx(math.sqrt(1 / fan_in), rel=0.02)
        assert torch.all(module.bias == 0)
    for norm in (blocks[0].layer_norm0, base.encoder.encoder_norm):
        assert norm.eps == 1e-6 and torch.all(norm.weight == 1) and torch.all(norm.bias == 0)


def test_map_head_initialisation():
    torch.manual_seed(0)
    head = ViT(**{**TINY, "width": 64, "mlp_dim": 256}, use_map=True).map
    # probe: xavier over a (1, 1, 64) tensor, whose fans are both 64; projections as the MLP's Linears
    assert 0.9 * math.sqrt(6.0 / 128) < head.probe.abs().max().item() <= math.sqrt(6.0 / 128)
    for linear in (head.mha.q_proj, head.mha.kv_proj, head.mha.out_proj, head.mlp.linear1, head.mlp.linear2):
        assert linear.weight.abs().max().item() <= _xavier_bound(linear.weight)
    biases = torch.cat([head.mha.q_proj.bias, head.mha.kv_proj.bias, head.mha.out_proj.bias, head.mlp.linear1.bias])
    assert biases.std().item() == pytest.approx(1e-6, rel=0.1)


def test_same_seed_same_weights():
    for kwargs in ({}, {"use_glu": True}, {"use_map": True}):
        first, again = _tiny(**kwargs), _tiny(**kwargs)
        assert all(torch.equal(a, b) for a, b in zip(first.parameters(), again.parameters()))


def test_position_embedding_is_the_sincos_formula():
    pe = posemb_sincos_2d(14, 14, 384)
    assert pe.shape == (1, 196, 384) and pe.dtype == torch.float32
    # omega_i = 10000^(-i / 95) for i = 0..95; the token at (row r, column c) is row-major index 14 r + c
    # and holds [sin(c omega), cos(c omega), sin(r omega), cos(r omega)].
    token = pe[0, 14 * 1 + 2]  # row 1, column 2
    assert token[0].item() == pytest.approx(0.9092974, abs=1e-6)  # sin(2 * 1)
    assert token[96].item() == pytest.approx(-0.4161468, abs=1e-6)  # cos(2)
    assert token[192].item() == pytest.approx(0.8414710, abs=1e-6)  # sin(1)
    assert token[288].item() == pytest.approx(0.5403023, abs=1e-6)  # cos(1)
    assert token[95].item() == pytest.approx(2e-4, rel=1e-4)  # sin(2 * 10000^-1)
    omega_1 = 10000 ** (-1 / 95)  # 0.90760...
    assert token[1].item() == pytest.approx(math.sin(2 * omega_1), abs=1e-6)
    assert token[193].item() == pytest.approx(math.sin(omega_1), abs=1e-6)
    last = pe[0, 14 * 13 + 5]  # row 13, column 5
    assert last[10].item() == pytest.approx(math.sin(5 * 10000 ** (-10 / 95)), abs=1e-5)
    assert last[96 + 192 + 10].item() == pytest.approx(math.cos(13 * 10000 ** (-10 / 95)), abs=1e-5)
    assert torch.equal(pe[0, 0], torch.tensor([0.0] * 96 + [1.0] * 96 + [0.0] * 96 + [1.0] * 96))
    with pytest.raises(ValueError, match="divisible by 4"):
        posemb_sincos_2d(2, 2, 6)


def test_full_size_forward_gives_zero_logits_at_init(base):
    base.eval()
    with torch.no_grad():
        logits = base(torch.randn(1, 3, 224, 224))
    assert logits.shape == (1, 1000)
    assert torch.all(logits == 0)  # the zero head: every image starts at uniform class probabilities


def test_pre_ln_and_post_ln_blocks():
    torch.manual_seed(0)
    pre, post = ViT(**TINY).encoder.net[0], ViT(**TINY, use_post_layer_norm=True).encoder.net[0]
    x = 3 * torch.randn(2, 6, 32) + 1
    with torch.no_grad():
        pre_out, post_out = pre(x, 0.0, 0.0), post(x, 0.0, 0.0)
        expected = x + pre.self_attention1(pre.layer_norm0(x), 0.0)
        expected = expected + pre.mlp3(pre.layer_norm2(expected), 0.0)
    torch.testing.assert_close(pre_out, expected)
    # post-LN blocks end in layer_norm2 (weight 1, bias 0): every token comes out normalised
    torch.testing.assert_close(post_out.mean(-1), torch.zeros(2, 6), atol=1e-5, rtol=0)
    assert pre_out.std(-1).min() > 1.5  # the pre-LN residual stream keeps the input's scale
    assert ViT(**TINY, use_post_layer_norm=True).encoder.encoder_norm is None


def test_glu_multiplies_the_activation_by_its_projection():
    model = _tiny(use_glu=True)
    mlp = model.encoder.net[0].mlp3
    x = torch.randn(2, 6, 32)
    with torch.no_grad():
        hidden = F.gelu(mlp.linear1(x), approximate="tanh")
        expected = mlp.linear2(hidden * mlp.glu_linear(hidden))
        torch.testing.assert_close(mlp(x, 0.0), expected)


def test_map_head_pools_by_attention():
    model = _tiny(use_map=True)
    head = model.map
    # With all tokens equal the softmax is uniform whatever the probe, so attention returns that token's value.
    token = torch.randn(32)
    x = token.expand(2, 6, 32)
    with torch.no_grad():
        value = head.mha.kv_proj(token)[32:]
        pooled = head.mha.out_proj(value)
        expected = pooled + head.mlp(head.layer_norm(pooled), 0.0)
        torch.testing.assert_close(head(x, 0.0), expected.expand(2, 32))
        # ... and the model uses it instead of the mean over tokens
        images = torch.randn(2, 3, 16, 24)
        features = model.encoder(model.conv_patch_extract(images).flatten(2).transpose(1, 2)
                                 + posemb_sincos_2d(2, 3, 32), 0.0, 0.0)
        torch.testing.assert_close(model(images), model.head(torch.tanh(model.pre_logits(head(features, 0.0)))))


def test_dropout_only_in_train_mode():
    images = torch.randn(2, 3, 16, 24)
    for kwargs in ({}, {"use_map": True}):
        model = _tiny(**kwargs)
        model.eval()
        with torch.no_grad():
            reference = model(images)
            torch.testing.assert_close(model(images, dropout_rate=0.5), reference)
            model.train()
            torch.testing.assert_close(model(images, dropout_rate=0.0), reference)
            torch.manual_seed(1)
            noisy = model(images, dropout_rate=0.5)
            assert not torch.allclose(noisy, reference)
            # the attention probabilities (and the MAP head) have their own rate: v0.5 had none there
            assert not torch.allclose(model(images, dropout_rate=0.0, attention_dropout_rate=0.5), reference)
            torch.manual_seed(1)
            torch.testing.assert_close(model(images, dropout_rate=0.5, attention_dropout_rate=0.5), noisy)


def test_train_mode_backward_reaches_every_parameter():
    model = _tiny(use_map=True)
    model.train()
    model(torch.randn(2, 3, 16, 24), dropout_rate=0.1).square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
