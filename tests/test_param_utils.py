"""AlgoPerf's parameter-type rules (§2.3): first matching substring rule wins."""

import pytest

from pytest_algoperf.api.param_utils import ParameterType as T
from pytest_algoperf.api.param_utils import ShapeTuple, parameter_type_of


@pytest.mark.parametrize(
    "name, expected",
    [
        ("layer1.bn.weight", T.BATCH_NORM_SCALE),
        ("bn1.bias", T.BATCH_NORM_BIAS),
        ("encoder.layer_norm.weight", T.LAYER_NORM_SCALE),
        ("ln_f.bias", T.LAYER_NORM_BIAS),
        ("conv1.weight", T.CONV_WEIGHT),
        ("conv1.bias", T.BIAS),
        ("shared_embedding.weight", T.EMBEDDING),
        ("embedding_chunk_0", T.WEIGHT),  # upstream quirk: no 'weight' in the name
        ("self_attn.in_proj.weight", T.ATTENTION_QKV),
        ("cross_attn.kv_proj.weight", T.ATTENTION_KV),
        ("cross_attn.q_proj.weight", T.ATTENTION_Q),
        ("attention.key.weight", T.ATTENTION_K),
        ("attention.value.weight", T.ATTENTION_V),
        ("self_attn.out_proj.weight", T.ATTENTION_OUT),
        ("self_attn.in_proj.bias", T.ATTENTION_BIAS),
        ("net.layer1.bias", T.BIAS),
        ("net.layer1.weight", T.WEIGHT),
    ],
)
def test_parameter_types_by_name(name, expected):
    assert parameter_type_of(name) == expected


def test_unrecognised_names_raise():
    with pytest.raises(ValueError, match="Unrecognized attention parameter"):
        parameter_type_of("attn.mystery")
    with pytest.raises(ValueError, match="normalization"):
        parameter_type_of("bn.running")


def test_shape_tuples_compare_by_dims():
    assert ShapeTuple((2, 3)) == ShapeTuple([2, 3]) and ShapeTuple((2, 3)) != ShapeTuple((3, 2))
