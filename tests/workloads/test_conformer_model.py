"""The LibriSpeech Conformer and its variants: counts, names and types, init, shapes, paddings, masked
batch norm, attention, activations, dropout rates."""

from __future__ import annotations

import collections
import functools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_algoperf.api.param_utils import ParameterType, pytorch_param_shapes, pytorch_param_types
from pytest_algoperf.api.pytorch_utils import update_batch_norm_fn
from workloads.librispeech_conformer.model import (
    VARIANT_MODEL_KWARGS,
    BatchNorm,
    ConformerBlock,
    ConformerConfig,
    ConformerEncoderDecoder,
    MHSAwithQS,
    QueryScaler,
    conformer,
)

# Reference §4.1 / §5. Subsample: conv1 512*9 + 512 = 5,120, conv2 512*512*9 + 512 = 2,359,808, linear
# 10,240*512 + 512 = 5,243,392. Per block: two feed-forward modules of LN 1,024 + 512->2048 1,050,624 +
# 2048->512 1,049,088; attention LN 1,024 + in_proj 787,968 + out_proj 262,656 + query scale 64; conv
# module LN 1,024 + lin1/lin2/lin3 3 x 262,656 + depthwise 512*5 + BN 1,024; post-LN 1,024: 6,046,784,
# times 4. Final LN 1,024 + lin 525,312. The layernorm variant drops the 4 post-LNs (4 x 1,024).
NUM_PARAMS = {
    "librispeech_conformer": 32_321_792,
    "librispeech_conformer_attention_temperature": 32_321_792,
    "librispeech_conformer_layernorm": 32_317_696,
    "librispeech_conformer_gelu": 32_321_792,
}

# Types by upstream's names under the first-match rules of reference §2.3:
#   conformers.<i>.conv.bn.{scale,bias} -> 'bn' -> BATCH_NORM_SCALE / BATCH_NORM_BIAS (4 each)
#   every LayerNorm is `ln` ({ff1,ff2,mhsa,conv}.ln, the post-LN conformers.<i>.ln, the final ln) -> 'ln'
#     -> LAYER_NORM_*: 5 per block + 1 = 21 (17 without the post-LNs)
#   the conv module's lin1/lin2/lin3 and the depthwise conv1 sit under `conv.` -> 'conv' -> CONV_WEIGHT for
#     the 4 weights (their biases -> BIAS), and subsample.conv{1,2}.kernel -> CONV_WEIGHT: 4 x 4 + 2 = 18
#   mhsa.self_attention.in_proj.weight -> ATTENTION_QKV; out_proj.weight -> 'out' -> ATTENTION_OUT;
#     both biases -> ATTENTION_BIAS (8); qs.scale -> 'attention' then 'scale' -> WEIGHT
#   ff{1,2}.linear{1,2} ('linear' contains no 'ln'), subsample.linear and lin -> WEIGHT / BIAS
# WEIGHT = 4 x (4 feed-forward + 1 query scale) + subsample.linear + lin = 22; BIAS = 4 x (4 feed-forward
# + 3 conv-module Linears) + subsample.conv{1,2}.bias + subsample.linear + lin = 32.
BASE_TYPES = {
    ParameterType.WEIGHT: 22,
    ParameterType.BIAS: 32,
    ParameterType.CONV_WEIGHT: 18,
    ParameterType.LAYER_NORM_SCALE: 21,
    ParameterType.LAYER_NORM_BIAS: 21,
    ParameterType.BATCH_NORM_SCALE: 4,
    ParameterType.BATCH_NORM_BIAS: 4,
    ParameterType.ATTENTION_QKV: 4,
    ParameterType.ATTENTION_OUT: 4,
    ParameterType.ATTENTION_BIAS: 8,
}
LAYERNORM_TYPES = {**BASE_TYPES, ParameterType.LAYER_NORM_SCALE: 17, ParameterType.LAYER_NORM_BIAS: 17}

TINY = dict(encoder_dim=16, num_attention_heads=2, num_encoder_layers=1, vocab_size=8)


def _meta_model(name: str) -> nn.Module:
    with torch.device("meta"):
        return conformer(**VARIANT_MODEL_KWARGS[name])


def _audio(num_samples: int = 16_000, padded_from: int = 8_000, seed: int = 0):
    """Two utterances of int16-like noise, the second padded from `padded_from` on."""
    generator = torch.Generator().manual_seed(seed)
    audio = torch.randn(2, num_samples, generator=generator) * 3000
    paddings = torch.zeros(2, num_samples)
    paddings[1, padded_from:] = 1.0
    return audio, paddings


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return conformer().eval()


# --- counts, names, types -----------------------------------------------------------------------


def test_every_variant_is_listed():
    assert set(VARIANT_MODEL_KWARGS) == set(NUM_PARAMS)


@pytest.mark.parametrize("name", sorted(NUM_PARAMS))
def test_parameter_count(name):
    assert sum(p.numel() for p in _meta_model(name).parameters()) == NUM_PARAMS[name]


@pytest.mark.parametrize("name", sorted(NUM_PARAMS))
def test_parameter_types(name):
    types = pytorch_param_types(pytorch_param_shapes(_meta_model(name)))
    expected = LAYERNORM_TYPES if name == "librispeech_conformer_layernorm" else BASE_TYPES
    assert dict(collections.Counter(types.values())) == expected


def test_upstream_names_and_types():
    types = pytorch_param_types(pytorch_param_shapes(_meta_model("librispeech_conformer")))
    assert {name: types[name] for name in [
        "subsample.conv1.kernel", "subsample.conv1.bias", "subsample.linear.weight",
        "conformers.0.ff1.ln.scale", "conformers.0.ff1.linear1.weight", "conformers.0.ff2.linear2.bias",
        "conformers.0.mhsa.self_attention.in_proj.weight", "conformers.0.mhsa.self_attention.out_proj.weight",
        "conformers.0.mhsa.self_attention.out_proj.bias", "conformers.0.mhsa.self_attention.qs.scale",
        "conformers.0.conv.lin1.weight", "conformers.0.conv.conv1.weight", "conformers.0.conv.bn.scale",
        "conformers.0.conv.bn.bias", "conformers.3.ln.scale", "ln.bias", "lin.weight", "lin.bias",
    ]} == {
        "subsample.conv1.kernel": ParameterType.CONV_WEIGHT,
        "subsample.conv1.bias": ParameterType.BIAS,
        "subsample.linear.weight": ParameterType.WEIGHT,
        "conformers.0.ff1.ln.scale": ParameterType.LAYER_NORM_SCALE,
        "conformers.0.ff1.linear1.weight": ParameterType.WEIGHT,
        "conformers.0.ff2.linear2.bias": ParameterType.BIAS,
        "conformers.0.mhsa.self_attention.in_proj.weight": ParameterType.ATTENTION_QKV,
        "conformers.0.mhsa.self_attention.out_proj.weight": ParameterType.ATTENTION_OUT,
        "conformers.0.mhsa.self_attention.out_proj.bias": ParameterType.ATTENTION_BIAS,
        "conformers.0.mhsa.self_attention.qs.scale": ParameterType.WEIGHT,
        "conformers.0.conv.lin1.weight": ParameterType.CONV_WEIGHT,
        "conformers.0.conv.conv1.weight": ParameterType.CONV_WEIGHT,
        "conformers.0.conv.bn.scale": ParameterType.BATCH_NORM_SCALE,
        "conformers.0.conv.bn.bias": ParameterType.BATCH_NORM_BIAS,
        "conformers.3.ln.scale": ParameterType.LAYER_NORM_SCALE,
        "ln.bias": ParameterType.LAYER_NORM_BIAS,
        "lin.weight": ParameterType.WEIGHT,
        "lin.bias": ParameterType.BIAS,
    }


def test_state_dict_buffers_are_upstreams():
    buffers = {k for k, _ in _meta_model("librispeech_conformer").named_buffers()}
    assert {k for k in buffers if not k.startswith("conformers.")} == {
        "preprocessor._normalizer_mean", "preprocessor._normalizer_stddev", "preprocessor.stft.window",
        "preprocessor.mel_weights",  # not persistent: absent from the state dict
        "subsample.conv1.paddings_kernel", "subsample.conv2.paddings_kernel", "subsample.pos_encode.inv_timescales",
    }
    assert {k for k in buffers if k.startswith("conformers.0.")} == {
        "conformers.0.conv.bn.running_mean", "conformers.0.conv.bn.running_var", "conformers.0.conv.bn.dim",
    }
    assert "preprocessor.mel_weights" not in _meta_model("librispeech_conformer").state_dict()


# --- init ----------------------------------------------------------------------------------------


def _xavier_bound(weight: torch.Tensor) -> float:
    receptive = weight[0][0].numel()
    fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
    return math.sqrt(6.0 / (fan_in + fan_out))


def test_init_xavier_uniform_weights_zero_biases_zero_norm_scales(model):
    weights = {n: p for n, p in model.named_parameters()}
    xavier = [n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv1d))]
    assert len(xavier) == 1 + 4 * (4 + 2 + 4) + 1  # subsample.linear; per block ff 4, attention 2, conv 4; lin
    for name in xavier + ["subsample.conv1", "subsample.conv2"]:
        weight = weights.get(f"{name}.weight", weights.get(f"{name}.kernel"))
        bound = _xavier_bound(weight)
        assert weight.abs().max() <= bound
        # U(-a, a) has standard deviation a / sqrt(3).
        assert weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1), name
        bias = weights.get(f"{name}.bias")
        assert bias is None or not bias.any(), name
    assert "conformers.0.conv.conv1.bias" not in weights  # depthwise conv: no bias
    for name, p in weights.items():
        if name.endswith(".scale") or (name.endswith(".bias") and (".ln." in name or ".bn." in name or name == "ln.bias")):
            assert not p.any(), name  # LayerNorm/BN as 1 + scale, query scale softplus(0) -> 1.0
    bn = model.conformers[0].conv.bn
    assert not bn.running_mean.any() and torch.equal(bn.running_var, torch.ones(512))


def test_same_seed_same_weights(model):
    torch.manual_seed(0)
    again = conformer()
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name


# --- forward ---------------------------------------------------------------------------------------


def test_forward_shapes_and_paddings(model):
    audio, paddings = _audio()
    with torch.no_grad():
        logits, out_paddings = model(audio, paddings)
    # 16,000 samples: (16000 - 401) // 160 + 1 = 98 frames, ceil(98 / 2) = 49, ceil(49 / 2) = 25.
    # Row 1 keeps 8,000 samples: frame t is padding iff 160 t >= 8000, t >= 50; after the first stride-2
    # subsampling frame i is padding iff 2 i >= 50 (i >= 25 of 49), after the second iff 2 k >= 25,
    # k >= 13: 12 padded frames of 25.
    assert logits.shape == (2, 25, 1024) and logits.dtype == torch.float32
    assert out_paddings.tolist() == [[0.0] * 25, [0.0] * 13 + [1.0] * 12]
    assert torch.isfinite(logits).all()


def test_full_length_batch_gives_500_frames(model):
    assert model.preprocessor.num_frames(320_000) == 1998  # then 999, then 500 after the two convs


def test_padded_samples_and_other_rows_do_not_matter_in_eval(model):
    audio, paddings = _audio()
    noisy = audio.clone()
    noisy[1, 8000:] = 20_000.0
    with torch.no_grad():
        logits, _ = model(audio, paddings)
        logits_noisy, _ = model(noisy, paddings)
        alone, _ = model(audio[1:], paddings[1:])
    torch.testing.assert_close(logits, logits_noisy, rtol=0, atol=0)
    torch.testing.assert_close(alone[0], logits[1], rtol=1e-4, atol=1e-4)


def test_an_all_padding_row_stays_finite(model):
    audio, paddings = _audio(padded_from=0)
    with torch.no_grad():
        logits, out_paddings = model(audio, paddings)
    assert out_paddings[1].all() and torch.isfinite(logits).all()


# --- parts -------------------------------------------------------------------------------------------


def test_masked_batch_norm_by_hand():
    bn = BatchNorm(ConformerConfig(encoder_dim=3))
    x = torch.tensor([
        [[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [100.0, -50.0, 7.0]],
        [[2.0, 2.0, 2.0], [-9.0, 40.0, 0.5], [8.0, 8.0, 8.0]],
    ])
    paddings = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    out = bn.train()(x, paddings)
    # Valid frames (1,2,3), (3,2,1), (2,2,2): mean (2,2,2), biased variance (2/3, 0, 2/3).
    mean, var = torch.tensor([2.0, 2.0, 2.0]), torch.tensor([2 / 3, 0.0, 2 / 3])
    expected = (x - mean) / torch.sqrt(var + 1e-3) * (1 - paddings[:, :, None])
    torch.testing.assert_close(out, expected)
    assert (out[0, 2] == 0).all() and (out[1, 1:] == 0).all()
    # Running averages move 0.1% toward the batch statistics.
    torch.testing.assert_close(bn.running_mean, 0.001 * mean)
    torch.testing.assert_close(bn.running_var, 0.999 + 0.001 * var)
    # Eval uses the running statistics, and gamma is 1 + scale.
    with torch.no_grad():
        bn.scale.fill_(1.0)
        bn.bias.fill_(0.5)
    out_eval = bn.eval()(x, paddings)
    expected_eval = ((x - bn.running_mean) * 2.0 / torch.sqrt(bn.running_var + 1e-3) + 0.5) * (1 - paddings[:, :, None])
    torch.testing.assert_close(out_eval, expected_eval)


def test_update_batch_norm_fn_freezes_the_running_statistics():
    bn = BatchNorm(ConformerConfig(encoder_dim=3)).train()
    x, paddings = torch.randn(2, 4, 3), torch.zeros(2, 4)
    bn.apply(functools.partial(update_batch_norm_fn, update_batch_norm=False))
    bn(x, paddings)
    assert not bn.running_mean.any() and torch.equal(bn.running_var, torch.ones(3))
    bn.apply(functools.partial(update_batch_norm_fn, update_batch_norm=True))
    bn(x, paddings)
    assert bn.running_mean.any()


def test_query_scale_starts_at_one():
    qs = QueryScaler(64)
    assert (1.442695041 * F.softplus(qs.scale)).sub(1.0).abs().max() < 1e-9


def _attention_by_hand(module: MHSAwithQS, x, key_padding_mask):
    q, k, v = module.in_proj(x).split(module.embed_dim, dim=2)
    heads, depth = module.num_heads, module.embed_dim // module.num_heads
    q, k, v = (t.reshape(*x.shape[:2], heads, depth).transpose(1, 2) for t in (q, k, v))
    q = q * 1.442695041 * F.softplus(module.qs.scale)
    scores = q @ k.transpose(-1, -2) / math.sqrt(depth)
    scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
    out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(x.shape)
    return module.out_proj(out * module.attention_temperature)


@pytest.mark.parametrize("temperature", [1.0, 1.6])
def test_attention_masks_padded_keys_scales_queries_and_multiplies_by_the_temperature(temperature):
    torch.manual_seed(0)
    module = MHSAwithQS(ConformerConfig(encoder_dim=8, num_attention_heads=2, attention_temperature=temperature))
    with torch.no_grad():
        module.qs.scale.normal_()
    x = torch.randn(2, 5, 8)
    mask = torch.tensor([[False] * 5, [False, False, False, True, True]])
    with torch.no_grad():
        out = module(x, mask)
        torch.testing.assert_close(out, _attention_by_hand(module, x, mask))
        changed = x.clone()
        changed[1, 3:] = 100.0
        torch.testing.assert_close(module(changed, mask)[1, :3], out[1, :3])  # padded keys are ignored
        if temperature != 1.0:
            module.attention_temperature = 1.0
            plain = module(x, mask) - module.out_proj.bias
            torch.testing.assert_close(out - module.out_proj.bias, temperature * plain)


def test_variant_configs():
    models = {name: _meta_model(name) for name in NUM_PARAMS}
    temperatures = {name: m.conformers[0].mhsa.self_attention.attention_temperature for name, m in models.items()}
    assert temperatures == {name: 1.6 if name.endswith("attention_temperature") else 1.0 for name in NUM_PARAMS}
    for name, m in models.items():
        without = name == "librispeech_conformer_layernorm"
        assert all((block.ln is None) == without for block in m.conformers), name
        keys = set(m.state_dict())
        assert ("conformers.0.ln.scale" in keys) != without and "ln.scale" in keys  # the final LN stays


@pytest.mark.parametrize("name,feed_forward,convolution", [
    ("swish", F.silu, F.silu),
    # Upstream v0.6: the tanh approximation in the feed-forward modules, exact GELU in the conv module.
    ("gelu", functools.partial(F.gelu, approximate="tanh"), F.gelu),
])
def test_activations(name, feed_forward, convolution):
    block = ConformerBlock(ConformerConfig(**TINY, activation_function_name=name))
    x = torch.linspace(-4, 4, 101)
    for module in (block.ff1, block.ff2):
        torch.testing.assert_close(module.activation(x), feed_forward(x), rtol=0, atol=0)
    torch.testing.assert_close(block.conv.activation(x), convolution(x), rtol=0, atol=0)
    if name == "gelu":
        assert not torch.equal(F.gelu(x, approximate="tanh"), F.gelu(x))
    with pytest.raises(ValueError, match="swish"):
        ConformerBlock(ConformerConfig(**TINY, activation_function_name="relu"))


# --- dropout and SpecAugment in the whole model ---------------------------------------------------------


def _dropout_rates(monkeypatch, model, **rates):
    seen = []
    real = F.dropout

    def recording(x, p=0.5, training=True, inplace=False):
        seen.append(p)
        return real(x, p, training, inplace)

    monkeypatch.setattr(torch.nn.functional, "dropout", recording)
    model(*_audio(num_samples=2000, padded_from=1500), **rates)
    return seen


def test_dropout_rates_per_call(monkeypatch):
    tiny = conformer(**TINY).train()
    # Order: input (after the position embedding); ff1 inner (config 0.0) and residual; attention
    # residual; conv residual; ff2 inner and residual.
    assert _dropout_rates(monkeypatch, tiny) == [0.1, 0.0, 0.1, 0.1, 0.1, 0.0, 0.1]  # v0.6 default
    assert _dropout_rates(monkeypatch, tiny, dropout_rate=0.3) == [0.3, 0.0, 0.3, 0.3, 0.3, 0.0, 0.3]
    # v0.5's defaults: residual 0.1, convolution residual 0.0, input (aux_dropout_rate) 0.1.
    v05 = dict(dropout_rate=0.1, input_dropout_rate=0.1, conv_residual_dropout_rate=0.0)
    assert _dropout_rates(monkeypatch, tiny, **v05) == [0.1, 0.0, 0.1, 0.1, 0.0, 0.0, 0.1]


def test_specaugment_and_dropout_only_in_training():
    torch.manual_seed(0)
    tiny = conformer(**TINY)
    audio, paddings = _audio(num_samples=8000, padded_from=6000)
    tiny.eval()
    with torch.no_grad():
        first, _ = tiny(audio, paddings)
        second, _ = tiny(audio, paddings)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    tiny.train()
    tiny.config = ConformerConfig(**TINY, use_specaug=False)
    torch.manual_seed(1)
    plain, _ = tiny(audio, paddings, dropout_rate=0.0)
    tiny.config = ConformerConfig(**TINY)
    torch.manual_seed(1)
    augmented, _ = tiny(audio, paddings, dropout_rate=0.0)
    assert not torch.equal(plain, augmented)
    torch.manual_seed(1)
    again, _ = tiny(audio, paddings, dropout_rate=0.0)
    torch.testing.assert_close(augmented, again, rtol=0, atol=0)  # seeded: the same masks


def test_model_defaults_to_the_reference_config():
    with torch.device("meta"):
        model = ConformerEncoderDecoder()
    assert model.config == ConformerConfig()
    assert model.specaug.freq_mask_count == 2 and model.specaug.time_mask_count == 10
    assert model.conformers[0].conv.bn.momentum == pytest.approx(0.001)
