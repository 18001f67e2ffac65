"""Parameter shapes and types by AlgoPerf's naming rules (reference §2.3).

Submissions may treat parameters generically by type (e.g. no weight decay on
norms), so the types must come out exactly as upstream's substring rules give
them; models keep upstream's parameter names for that reason.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable

from pytest_algoperf.api.cross_package_enum import CrossPackageEnum


class ParameterType(CrossPackageEnum):
    WEIGHT = 0
    BIAS = 1
    CONV_WEIGHT = 2
    BATCH_NORM_SCALE = 3
    BATCH_NORM_BIAS = 4
    LAYER_NORM_SCALE = 5
    LAYER_NORM_BIAS = 6
    EMBEDDING = 7
    ATTENTION_Q = 8
    ATTENTION_K = 9
    ATTENTION_V = 10
    ATTENTION_OUT = 11
    ATTENTION_QKV = 12
    ATTENTION_KV = 13
    ATTENTION_BIAS = 14


class ShapeTuple:
    """A parameter shape that compares equal to another with the same dims."""

    def __init__(self, shape_tuple: Iterable[int]) -> None:
        self.shape_tuple = tuple(shape_tuple)

    def __repr__(self) -> str:
        return f"ShapeTuple({self.shape_tuple})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ShapeTuple) and self.shape_tuple == other.shape_tuple

    def __hash__(self) -> int:
        return hash(self.shape_tuple)


def pytorch_param_shapes(model: Any) -> Dict[str, ShapeTuple]:
    return {name: ShapeTuple(param.shape) for name, param in model.named_parameters()}


def _norm_type(name: str, scale: ParameterType, bias: ParameterType) -> ParameterType:
    if "weight" in name or "scale" in name:
        return scale
    if "bias" in name:
        return bias
    raise ValueError(f"Unrecognized normalization parameter {name!r}: expected 'weight', 'scale' or 'bias' in its name.")


def _attention_type(name: str) -> ParameterType:
    if "bias" in name:
        return ParameterType.ATTENTION_BIAS
    if "in_proj" in name or "qkv" in name:  # fused projections: nn.MultiheadAttention's, finewebedu_lm's w_qkv
        return ParameterType.ATTENTION_QKV
    if "kv_proj" in name:
        return ParameterType.ATTENTION_KV
    if "k_proj" in name or "key" in name:
        return ParameterType.ATTENTION_K
    if "q_proj" in name or "query" in name:
        return ParameterType.ATTENTION_Q
    if "v_proj" in name or "value" in name:
        return ParameterType.ATTENTION_V
    if "out" in name and "weight" in name:
        return ParameterType.ATTENTION_OUT
    if "scale" in name:
        return ParameterType.WEIGHT
    raise ValueError(f"Unrecognized attention parameter {name!r}.")


def parameter_type_of(name: str) -> ParameterType:
    """The type of one parameter; the first matching rule wins, as upstream."""
    if "bn" in name:
        return _norm_type(name, ParameterType.BATCH_NORM_SCALE, ParameterType.BATCH_NORM_BIAS)
    if "norm" in name or "ln" in name:
        return _norm_type(name, ParameterType.LAYER_NORM_SCALE, ParameterType.LAYER_NORM_BIAS)
    if "conv" in name:
        return ParameterType.BIAS if "bias" in name else ParameterType.CONV_WEIGHT
    if ("embedding" in name or "embed" in name) and "weight" in name:
        return ParameterType.EMBEDDING
    if "attn" in name or "attention" in name:
        return _attention_type(name)
    if "bias" in name:
        return ParameterType.BIAS
    return ParameterType.WEIGHT


def pytorch_param_types(param_shapes: Dict[str, Any]) -> Dict[str, ParameterType]:
    return {name: parameter_type_of(name) for name in param_shapes}
