"""The WMT Transformer: reference sizes and parameter types per variant, masks, packing and cached decoding."""

from __future__ import annotations

import collections
import dataclasses

import pytest
import torch

from pytest_algoperf.api import random_utils as prng
from pytest_algoperf.api.param_utils import ParameterType, pytorch_param_shapes, pytorch_param_types
from workloads.registry import get_workload
from workloads.wmt.model import Transformer, TransformerConfig

P = ParameterType
# Counts from reference §4.1 / §5. Types by the §2.3 name rules: per encoder layer in_proj (QKV),
# out_proj, linear1/2 (+ linear_glu), norm1/2; per decoder layer also multihead_attn q_proj (Q),
# kv_proj (KV), out_proj and norm3; final encoder/decoder norms only with pre-LN.
BASE_TYPES = {P.EMBEDDING: 1, P.ATTENTION_QKV: 12, P.ATTENTION_Q: 6, P.ATTENTION_KV: 6, P.ATTENTION_OUT: 18,
              P.WEIGHT: 24, P.BIAS: 24, P.LAYER_NORM_SCALE: 32, P.LAYER_NORM_BIAS: 32}
EXPECTED = {
    "wmt": (133_521_408, BASE_TYPES),
    "wmt_post_ln": (133_517_312, {**BASE_TYPES, P.LAYER_NORM_SCALE: 30, P.LAYER_NORM_BIAS: 30}),
    "wmt_attention_temp": (133_521_408, BASE_TYPES),
    "wmt_glu_tanh": (146_116_608, {**BASE_TYPES, P.WEIGHT: 36, P.BIAS: 36}),
}
TINY = TransformerConfig(vocab_size=50, d_model=16, num_heads=2, d_hidden=24, num_layers=2, max_length=24)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_variant_has_the_reference_size_and_parameter_types(name):
    workload = get_workload(name)
    with torch.device("meta"):  # the real thing, without allocating 0.5 GB per variant
        model = Transformer(workload.model_config)
    count, types = EXPECTED[name]
    assert sum(p.numel() for p in model.parameters()) == count
    assert collections.Counter(pytorch_param_types(pytorch_param_shapes(model)).values()) == types
    assert workload.is_output_params("shared_embedding.weight")
    assert not workload.is_output_params("decoder.decoder.norm.weight")


def test_init_model_fn_builds_the_reference_model_with_the_reference_init():
    workload = get_workload("wmt")
    model, state = workload.init_model_fn(prng.PRNGKey(0))
    assert state is None
    names = workload.param_shapes
    assert names["shared_embedding.weight"].shape_tuple == (32_000, 1024)
    assert names["encoder.encoder.layers.0.self_attn.in_proj.weight"].shape_tuple == (3072, 1024)
    assert names["decoder.decoder.layers.5.multihead_attn.kv_proj.weight"].shape_tuple == (2048, 1024)
    assert workload.model_params_types["decoder.decoder.layers.5.multihead_attn.q_proj.weight"] == P.ATTENTION_Q
    with torch.no_grad():
        assert model.shared_embedding.weight.std().item() == pytest.approx(1.0, abs=0.01)  # nn.Embedding's N(0, 1)
        in_proj = model.encoder.encoder.layers[0].self_attn.in_proj.weight
        bound = (6 / (1024 + 3072)) ** 0.5  # Xavier-uniform bound
        assert in_proj.abs().max().item() <= bound and in_proj.abs().max().item() > 0.99 * bound
        assert model.decoder.decoder.layers[0].linear1.bias.abs().max().item() < 1e-4  # N(0, 1e-6) biases
    # The embedding is one table for source, target and output projection.
    assert model.encoder.shared_embedding is model.decoder.shared_embedding is model.shared_embedding
    assert "encoder.shared_embedding.weight" in model.state_dict()  # state-dict keys as the reference's


def _tiny(**changes) -> Transformer:
    torch.manual_seed(0)
    return Transformer(dataclasses.replace(TINY, **changes)).eval()


@pytest.mark.parametrize("changes", [{}, {"pre_ln": False}, {"glu": True, "activation": "tanh"}, {"attention_temp": 4.0}])
def test_padding_does_not_change_the_logits_of_real_tokens(changes):
    model = _tiny(**changes)
    src = torch.tensor([[5, 6, 7, 2]])
    tgt = torch.tensor([[8, 9, 2]])
    with torch.no_grad():
        short = model(src, tgt, dropout_rate=0.0)
        padded = model(torch.nn.functional.pad(src, (0, 4)), torch.nn.functional.pad(tgt, (0, 5)), dropout_rate=0.0)
    assert torch.isfinite(padded).all()  # fully masked padding rows stay finite
    torch.testing.assert_close(padded[:, :3], short, rtol=1e-5, atol=1e-5)


def test_a_packed_row_equals_its_examples_translated_alone():
    model = _tiny()
    first_src, first_tgt = torch.tensor([4, 5, 2]), torch.tensor([6, 7, 8, 2])
    second_src, second_tgt = torch.tensor([9, 10, 11, 12, 2]), torch.tensor([13, 2])
    packed = {
        "src": torch.cat([first_src, second_src]).unsqueeze(0),
        "tgt": torch.cat([first_tgt, second_tgt]).unsqueeze(0),
        "inputs_positions": torch.tensor([[0, 1, 2, 0, 1, 2, 3, 4]]),
        "targets_positions": torch.tensor([[0, 1, 2, 3, 0, 1]]),
        "inputs_segmentation": torch.tensor([[1, 1, 1, 2, 2, 2, 2, 2]]),
        "targets_segmentation": torch.tensor([[1, 1, 1, 1, 2, 2]]),
    }
    with torch.no_grad():
        together = model(**packed, dropout_rate=0.0)
        first = model(first_src[None], first_tgt[None], dropout_rate=0.0)
        memory = model.encoder(packed["src"], packed["inputs_positions"], packed["inputs_segmentation"])
        second_memory = model.encoder(second_src[None])
        # Another first example: the second segment must not see it.
        other = dict(packed, src=torch.cat([torch.tensor([20, 21, 2]), second_src]).unsqueeze(0),
                     tgt=torch.cat([torch.tensor([22, 23, 24, 2]), second_tgt]).unsqueeze(0))
        together_other = model(**other, dropout_rate=0.0)
    torch.testing.assert_close(together[:, :4], first, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(memory[:, 3:], second_memory, rtol=1e-5, atol=1e-5)
    # (The decoder's second segment starts from the first segment's EOS rather than 0, since the
    # reference PyTorch model shifts the whole row; EOS is the same whatever the first example.)
    torch.testing.assert_close(together_other[:, 4:], together[:, 4:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("changes", [{}, {"pre_ln": False}, {"glu": True, "activation": "tanh"}])
def test_cached_decoding_reproduces_the_full_forward_pass(changes):
    model = _tiny(**changes)
    src = torch.tensor([[5, 6, 7, 8, 2, 0], [9, 10, 2, 0, 0, 0]])
    tgt = torch.tensor([[11, 12, 13, 2], [14, 15, 16, 17]])
    with torch.no_grad():
        full = model(src, tgt, dropout_rate=0.0)  # (B, T, V), decoder inputs = tgt shifted right
        cache = model.decoder.start_decoding(model.encoder(src), src, max_length=8)
        inputs = torch.nn.functional.pad(tgt, (1, 0))[:, :-1]
        stepwise = torch.stack([model.decoder.decode_step(inputs[:, t : t + 1], cache) for t in range(tgt.shape[1])], dim=1)
    torch.testing.assert_close(stepwise, full, rtol=1e-4, atol=1e-5)
    assert cache.position == 4


def test_reordering_the_cache_follows_the_chosen_parents():
    model = _tiny()
    src = torch.tensor([[5, 6, 2], [7, 8, 2]])
    with torch.no_grad():
        cache = model.decoder.start_decoding(model.encoder(src), src, max_length=4)
        model.decoder.decode_step(torch.tensor([[3], [4]]), cache)
        keys_before = cache.layers[0].keys.clone()
        cache.reorder(torch.tensor([1, 1]))
    torch.testing.assert_close(cache.layers[0].keys[0, :, :1], keys_before[1, :, :1])


def test_attention_temperature_multiplies_the_queries():
    hot, cold = _tiny(attention_temp=4.0), _tiny()
    attention_hot = hot.encoder.encoder.layers[0].self_attn
    attention_cold = cold.encoder.encoder.layers[0].self_attn
    x = torch.randn(1, 3, 16)
    with torch.no_grad():
        query, key, value = (attention_cold.split_heads(p) for p in attention_cold.in_proj(x).chunk(3, dim=-1))
        expected = attention_cold.attend(4.0 * query, key, value, None, 0.0)
        torch.testing.assert_close(attention_hot(x), expected)


def test_dropout_applies_only_in_train_mode():
    model = _tiny()
    src, tgt = torch.tensor([[5, 6, 2]]), torch.tensor([[7, 2]])
    with torch.no_grad():
        assert torch.equal(model(src, tgt, dropout_rate=0.5), model(src, tgt, dropout_rate=0.0))
        model.train()
        assert not torch.equal(model(src, tgt, dropout_rate=0.5), model(src, tgt, dropout_rate=0.0))
