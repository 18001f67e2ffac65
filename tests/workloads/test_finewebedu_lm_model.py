"""The finewebedu_lm Transformer: names, shapes, count and types; RoPE, QK-norm, GLU, causality; init."""

from __future__ import annotations

import collections
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_algoperf.api.param_utils import ParameterType, pytorch_param_shapes, pytorch_param_types
from workloads.finewebedu_lm.model import (
    MLP,
    ModelConfig,
    Transformer,
    apply_rope,
    init_weights,
    qk_norm,
    reinit_weights,
    rope_table,
)

P = ParameterType
# Reference §4.12 "Parameter count": per block 3,145,728 (qkv) + 1,048,576 (out) + 8,388,608 (fc1)
# + 4,194,304 (fc2) + 2,048 (norms) + 1 (attn_scale) = 16,779,265; total 51,463,168 (tied table)
# + 12 x 16,779,265 + 1,024 (out_norm).
NUM_PARAMS = 252_815_372
NUM_NON_EMBEDDING_PARAMS = 201_352_204
NUM_PARAMS_UNTIED = 304_278_540  # plus a separate 50,257 x 1,024 lm_head
# Types by the §2.3 first-match rules: attn_norm / mlp_norm / out_norm -> 'norm' -> LAYER_NORM_SCALE;
# embed_tokens -> 'embed' -> EMBEDDING; attn.w_qkv -> 'attn' then 'qkv' -> ATTENTION_QKV; attn.w_out ->
# 'out' + 'weight' -> ATTENTION_OUT; attn.attn_scale -> 'scale' -> WEIGHT; mlp.fc1/fc2 -> WEIGHT.
TYPES = {P.EMBEDDING: 1, P.ATTENTION_QKV: 12, P.ATTENTION_OUT: 12, P.WEIGHT: 12 + 24, P.LAYER_NORM_SCALE: 25}
# Small enough for milliseconds: head size 32, hidden size 256 (already a multiple of 256).
SMALL = ModelConfig(vocab_size=97, seq_len=16, model_dim=64, num_heads=2, num_layers=2, expanded_model_dim=256)
ATTN_SCALE_1024 = 19.99859  # log2(1024^2 - 1024), the reference's value


@pytest.fixture(autouse=True, scope="module")
def two_torch_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def meta_model():
    with torch.device("meta"):  # the reference sizes without allocating 1 GB
        return Transformer(ModelConfig())


@pytest.fixture(scope="module")
def full_model():
    torch.manual_seed(0)
    return Transformer(ModelConfig())


def _small(seed: int = 0, config: ModelConfig = SMALL) -> Transformer:
    torch.manual_seed(seed)
    return Transformer(config)


def test_reference_config_has_upstream_names_shapes_and_count(meta_model):
    expected = {"embed_tokens.weight": (50_257, 1024), "out_norm.weight": (1024,)}
    for i in range(12):
        expected |= {
            f"layers.{i}.attn.w_qkv.weight": (3072, 1024),
            f"layers.{i}.attn.w_out.weight": (1024, 1024),
            f"layers.{i}.attn.attn_scale": (),
            f"layers.{i}.attn_norm.weight": (1024,),
            f"layers.{i}.mlp.fc1.weight": (8192, 1024),
            f"layers.{i}.mlp.fc2.weight": (1024, 4096),
            f"layers.{i}.mlp_norm.weight": (1024,),
        }
    shapes = {name: tuple(p.shape) for name, p in meta_model.named_parameters()}
    assert len(shapes) == 86
    assert shapes == expected
    total = sum(p.numel() for p in meta_model.parameters())
    assert total == NUM_PARAMS
    assert total - meta_model.embed_tokens.weight.numel() == NUM_NON_EMBEDDING_PARAMS
    assert all(p.dtype == torch.float32 for p in meta_model.parameters())
    # The head is the embedding table itself, so named_parameters lists it once (as embed_tokens).
    assert meta_model.lm_head.weight is meta_model.embed_tokens.weight
    assert meta_model.lm_head.bias is None
    # The RoPE table is a buffer that is not saved.
    assert tuple(meta_model.freqs_cis.shape) == (1, 1024, 1, 64, 2)
    assert "freqs_cis" not in meta_model.state_dict()
    with torch.device("meta"):
        untied = Transformer(ModelConfig(tie_embeddings=False))
    assert untied.lm_head.weight is not untied.embed_tokens.weight
    assert sum(p.numel() for p in untied.parameters()) == NUM_PARAMS_UNTIED


def test_parameter_types_follow_the_name_rules(meta_model):
    types = pytorch_param_types(pytorch_param_shapes(meta_model))
    assert collections.Counter(types.values()) == TYPES
    assert types["layers.3.attn.w_qkv.weight"] == P.ATTENTION_QKV
    assert types["layers.3.attn.attn_scale"] == P.WEIGHT


def test_mlp_hidden_size_is_rounded_up_to_multiple_of():
    with torch.device("meta"):
        mlp = MLP(ModelConfig(model_dim=64, num_heads=2, expanded_model_dim=100, multiple_of=64))
    assert tuple(mlp.fc1.weight.shape) == (2 * 128, 64)
    assert tuple(mlp.fc2.weight.shape) == (64, 128)
    assert ModelConfig().hidden_dim == 4096


def test_rope_rotates_interleaved_pairs_by_position_times_frequency():
    table = rope_table(head_dim=8, seq_len=16, theta=500_000.0)
    assert table.shape == (1, 16, 1, 4, 2) and table.dtype == torch.float32
    # position 5, pair i = 1 of an 8-wide head: angle 5 * 500000^(-2/8) = 5 / 26.591... = 0.188030
    angle = 5 * 500_000.0 ** (-2 * 1 / 8)
    assert angle == pytest.approx(0.188030, abs=1e-6)
    assert table[0, 5, 0, 1].tolist() == pytest.approx([math.cos(angle), math.sin(angle)], abs=1e-6)
    # Feature 2 (the even member of pair 1) turns into features 2 and 3 only: its partner is 3, as
    # in the interleaved convention, not 2 + 8/2 = 6 as in rotate-half.
    x = torch.zeros(1, 16, 1, 8)
    x[0, 5, 0, 2] = 1.0
    x[0, 5, 0, 7] = 2.0  # the odd member of pair 3: it turns into (-2 sin, 2 cos) on features 6, 7
    angle3 = 5 * 500_000.0 ** (-2 * 3 / 8)
    expected = [0.0, 0.0, math.cos(angle), math.sin(angle), 0.0, 0.0, -2 * math.sin(angle3), 2 * math.cos(angle3)]
    assert apply_rope(x, table)[0, 5, 0].tolist() == pytest.approx(expected, abs=1e-6)
    # Position 0 is not rotated.
    y = torch.randn(1, 16, 1, 8)
    assert torch.equal(apply_rope(y, table)[0, 0], y[0, 0])


def test_rope_makes_query_key_products_depend_only_on_the_offset():
    torch.manual_seed(0)
    table = rope_table(head_dim=8, seq_len=16, theta=10.0)  # a small base, so every pair turns visibly
    q, k = torch.randn(8), torch.randn(8)
    rq = apply_rope(q.expand(1, 16, 1, 8), table)[0, :, 0]  # (16, 8): q placed at every position
    rk = apply_rope(k.expand(1, 16, 1, 8), table)[0, :, 0]
    gram = rq @ rk.T  # (16, 16): [m, n] = q at m dot k at n
    for offset in (-3, 0, 5):
        diagonal = torch.diagonal(gram, offset)
        assert torch.allclose(diagonal, diagonal[0].expand_as(diagonal), atol=1e-5)
    assert abs(gram[0, 0] - gram[5, 0]) > 1e-2  # ... and it does depend on the offset
    assert torch.allclose(rq.norm(dim=-1), q.norm().expand(16), atol=1e-5)  # a rotation


def test_rope_keeps_the_input_dtype_and_computes_in_float32():
    table = rope_table(head_dim=8, seq_len=4, theta=500_000.0)
    x = torch.randn(2, 4, 3, 8).to(torch.bfloat16)
    out = apply_rope(x, table)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, apply_rope(x.float(), table).to(torch.bfloat16))


def test_the_model_is_causal():
    model = _small().eval()
    tokens = torch.randint(0, SMALL.vocab_size, (2, 16), generator=torch.Generator().manual_seed(1))
    changed = tokens.clone()
    changed[:, 10] = (changed[:, 10] + 1) % SMALL.vocab_size
    with torch.no_grad():
        before, after = model(tokens), model(changed)
    assert before.shape == (2, 16, SMALL.vocab_size) and before.dtype == torch.float32
    assert torch.allclose(before[:, :10], after[:, :10], atol=1e-6)
    assert (before[:, 10:] - after[:, 10:]).abs().amax(dim=-1).min() > 1e-3  # every later position moves


def test_sequences_longer_than_seq_len_are_refused():
    with pytest.raises(ValueError, match="seq_len 16"):
        _small()(torch.zeros(1, 17, dtype=torch.long))


def test_mlp_is_the_sigmoid_glu_with_the_first_half_as_value():
    model = _small()
    mlp = model.layers[0].mlp
    x = torch.randn(3, 5, SMALL.model_dim)
    with torch.no_grad():
        hidden = mlp.fc1(x)  # (3, 5, 512)
        a, b = hidden[..., : SMALL.hidden_dim], hidden[..., SMALL.hidden_dim :]
        assert torch.allclose(mlp(x), mlp.fc2(a * torch.sigmoid(b)), atol=1e-6)
        assert not torch.allclose(mlp(x), mlp.fc2(b * torch.sigmoid(a)), atol=1e-4)


def test_qk_norm_adds_eps_after_dividing_by_the_norm():
    x = torch.randn(2, 3, 4, 32) * 50
    eps = 1e-2  # large, so the two precedences upstream's files disagree on are far apart
    assert torch.allclose(qk_norm(x, eps) - x / x.norm(dim=-1, keepdim=True), torch.full_like(x, eps), atol=1e-6)
    assert not torch.allclose(qk_norm(x, eps), x / (x.norm(dim=-1, keepdim=True) + eps), atol=1e-4)


def test_qk_norm_bounds_attention_logits_by_attn_scale(monkeypatch):
    model = _small().eval()
    with torch.no_grad():
        model.layers[0].attn.w_qkv.weight.mul_(1000.0)  # raw q . k would be in the tens of thousands
    captured = []
    sdpa = F.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        captured.append((q, k, kwargs))
        return sdpa(q, k, v, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    tokens = torch.randint(0, SMALL.vocab_size, (2, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        model(tokens)
    assert len(captured) == SMALL.num_layers
    q, k, kwargs = captured[0]
    assert kwargs == {"is_causal": True, "scale": 1.0}
    scale = math.log2(16**2 - 16)  # attn_scale's init at seq_len 16: 7.9069
    assert model.layers[0].attn.attn_scale.item() == pytest.approx(scale, rel=1e-6)
    assert torch.allclose(q.norm(dim=-1), torch.full(q.shape[:-1], scale), rtol=1e-4)
    assert torch.allclose(k.norm(dim=-1), torch.ones(k.shape[:-1]), rtol=1e-4)
    logits = q @ k.transpose(-1, -2)  # (B, H, L, L): what the softmax sees
    assert logits.abs().max() <= scale * (1 + 1e-4)
    assert logits.abs().max() > 0.5 * scale


def test_init_draws_small_weights_and_scales_the_residual_branches():
    model = _small()
    residual_std = 0.02 / math.sqrt(2 * SMALL.num_layers)  # 0.01 at 2 layers
    with torch.no_grad():
        assert model.embed_tokens.weight.std().item() == pytest.approx(0.02, rel=0.1)
        for layer in model.layers:
            assert layer.attn.w_qkv.weight.std().item() == pytest.approx(0.02, rel=0.1)
            assert layer.mlp.fc1.weight.std().item() == pytest.approx(0.02, rel=0.1)
            assert layer.attn.w_out.weight.std().item() == pytest.approx(residual_std, rel=0.1)
            assert layer.mlp.fc2.weight.std().item() == pytest.approx(residual_std, rel=0.1)
            assert torch.equal(layer.attn_norm.weight, torch.ones(64))
            assert torch.equal(layer.mlp_norm.weight, torch.ones(64))
        assert torch.equal(model.out_norm.weight, torch.ones(64))
    assert model.lm_head.weight is model.embed_tokens.weight


def _upstream_weights(seed: int, config: ModelConfig = SMALL) -> dict:
    """The weights upstream's constructor leaves, from its random draws replayed one by one."""
    torch.manual_seed(seed)
    dim, hidden, vocab = config.model_dim, config.hidden_dim, config.vocab_size

    def linear(fan_out, fan_in):  # nn.Linear's own init of a bias-free weight
        weight = torch.empty(fan_out, fan_in)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
        return weight

    embed = torch.empty(vocab, dim).normal_()  # nn.Embedding's own N(0, 1)
    layers = []
    for _ in range(config.num_layers):
        qkv, out = linear(3 * dim, dim), linear(dim, dim)
        for block in qkv.chunk(3):
            block.normal_(0.0, 0.02)
        out.normal_(0.0, 0.02)
        fc1, fc2 = linear(2 * hidden, dim), linear(dim, hidden)
        fc1.normal_(0.0, 0.02)
        fc2.normal_(0.0, 0.02)
        layers.append(dict(qkv=qkv, out=out, fc1=fc1, fc2=fc2))
    head = linear(vocab, dim)
    # the whole-model init: modules children-first, then the residual re-draw
    embed.normal_(0.0, 0.02)
    for layer in layers:
        for name in ("qkv", "out", "fc1", "fc2"):
            layer[name].normal_(0.0, 0.02)
    head.normal_(0.0, 0.02)
    for layer in layers:
        layer["out"].normal_(0.0, 0.02 / math.sqrt(2 * config.num_layers))
        layer["fc2"].normal_(0.0, 0.02 / math.sqrt(2 * config.num_layers))
    weights = {"embed_tokens.weight": embed}  # tied afterwards: the head's draw is discarded
    for i, layer in enumerate(layers):
        weights |= {
            f"layers.{i}.attn.w_qkv.weight": layer["qkv"],
            f"layers.{i}.attn.w_out.weight": layer["out"],
            f"layers.{i}.mlp.fc1.weight": layer["fc1"],
            f"layers.{i}.mlp.fc2.weight": layer["fc2"],
        }
    return weights


def test_same_seed_gives_upstreams_draws_and_the_same_weights():
    model = _small(seed=7)
    params = dict(model.named_parameters())
    for name, expected in _upstream_weights(seed=7).items():
        assert torch.equal(params[name], expected), name
    again = dict(_small(seed=7).named_parameters())
    assert all(torch.equal(params[name], again[name]) for name in params)
    other = dict(_small(seed=8).named_parameters())
    assert not torch.equal(params["layers.1.mlp.fc2.weight"], other["layers.1.mlp.fc2.weight"])


def test_reinit_redraws_weights_but_keeps_attn_scale_and_norm_scales():
    model = _small(seed=0)
    with torch.no_grad():
        for layer in model.layers:
            layer.attn.attn_scale.fill_(3.0)
            layer.attn_norm.weight.fill_(2.0)
    torch.manual_seed(5)
    reinit_weights(model)
    # Expected: under seed 5 the tied table is drawn as embed_tokens, then every block Linear, then
    # again as lm_head (that draw stays), then the residual re-draw.
    torch.manual_seed(5)
    torch.empty(SMALL.vocab_size, SMALL.model_dim).normal_(0.0, 0.02)
    blocks = [
        [torch.empty(shape).normal_(0.0, 0.02) for shape in [(192, 64), (64, 64), (512, 64), (64, 256)]]
        for _ in range(SMALL.num_layers)
    ]
    embed = torch.empty(SMALL.vocab_size, SMALL.model_dim).normal_(0.0, 0.02)
    for block in blocks:
        block[1].normal_(0.0, 0.01)
        block[3].normal_(0.0, 0.01)
    assert torch.equal(model.embed_tokens.weight, embed)
    assert model.lm_head.weight is model.embed_tokens.weight
    for layer, (qkv, out, fc1, fc2) in zip(model.layers, blocks):
        assert torch.equal(layer.attn.w_qkv.weight, qkv) and torch.equal(layer.attn.w_out.weight, out)
        assert torch.equal(layer.mlp.fc1.weight, fc1) and torch.equal(layer.mlp.fc2.weight, fc2)
        assert layer.attn.attn_scale.item() == 3.0
        assert torch.equal(layer.attn_norm.weight, torch.full((64,), 2.0))
    # The full init, in contrast, resets them and draws the same weights.
    torch.manual_seed(5)
    init_weights(model)
    assert model.layers[0].attn.attn_scale.item() == pytest.approx(math.log2(240), rel=1e-6)
    assert torch.equal(model.layers[0].attn_norm.weight, torch.ones(64))
    assert torch.equal(model.embed_tokens.weight, embed)


def test_full_model_init_statistics(full_model):
    residual_std = 0.02 / math.sqrt(24)  # 0.0040825
    assert residual_std == pytest.approx(0.0040825, abs=1e-7)
    with torch.no_grad():
        assert full_model.embed_tokens.weight.std().item() == pytest.approx(0.02, rel=0.01)
        for layer in full_model.layers:
            assert layer.attn.w_qkv.weight.std().item() == pytest.approx(0.02, rel=0.01)
            assert layer.mlp.fc1.weight.std().item() == pytest.approx(0.02, rel=0.01)
            assert layer.attn.w_out.weight.std().item() == pytest.approx(residual_std, rel=0.01)
            assert layer.mlp.fc2.weight.std().item() == pytest.approx(residual_std, rel=0.01)
            assert layer.attn.attn_scale.dtype == torch.float32
            assert layer.attn.attn_scale.item() == torch.tensor(math.log2(1024**2 - 1024), dtype=torch.float32).item()
            assert layer.attn.attn_scale.item() == pytest.approx(ATTN_SCALE_1024, abs=1e-5)
    assert full_model.lm_head.weight is full_model.embed_tokens.weight
    assert next(full_model.parameters()).device.type == "cpu"  # placing it is the workload's job


def test_full_model_initial_loss_is_the_references(full_model):
    # ln V + (0.02^2 * 1024) / 2: logits h E^T with unit-RMS h are N(0, 0.02^2 * 1024) per class.
    expected = math.log(50_257) + 0.02**2 * 1024 / 2
    assert expected == pytest.approx(11.030, abs=1e-3)
    window = torch.randint(0, 50_257, (1, 129), generator=torch.Generator().manual_seed(0))
    inputs, targets = window[:, :-1], window[:, 1:]  # the pipeline's next-token shift
    with torch.no_grad():
        logits = full_model(inputs)  # (1, 128, V)
    assert logits.shape == (1, 128, 50_257) and logits.dtype == torch.float32
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    assert loss.item() == pytest.approx(expected, abs=0.1)
    # The same, averaged over every possible target instead of one sampled per position.
    mean_over_targets = (logits.logsumexp(-1) - logits.mean(-1)).mean()
    assert mean_over_targets.item() == pytest.approx(expected, abs=0.01)
