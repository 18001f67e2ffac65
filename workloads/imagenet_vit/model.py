"""The ImageNet ViT model: ViT-S/16 (Dosovitskiy et al. 2020, arXiv:2010.11929) as in the reference (§4.5).

Upstream: algoperf/workloads/imagenet_vit/imagenet_pytorch/models.py, sized by
`decode_variant('S/16')` of imagenet_vit/workload.py. 22,122,472 parameters.

    (B, 3, 224, 224)
      conv_patch_extract: 16x16 conv, stride 16, 3 -> 384              (B, 384, 14, 14)
      flatten row-major to tokens, + fixed 2-D sin-cos position embedding, dropout
                                                                       (B, 196, 384)
      encoder: 12 pre-LN blocks
        x + dropout(self_attention1(layer_norm0(x)))   6 heads of 64, dropout on the probabilities
        x + dropout(mlp3(layer_norm2(x)))               384 -> 1536 -> GELU(tanh) -> dropout -> 384
      encoder_norm (LayerNorm)                                         (B, 196, 384)
      mean over tokens ("gap"; no class token)                         (B, 384)
      pre_logits: Linear 384 -> 384, tanh
      head: Linear 384 -> 1000, zero-initialised
    (B, 1000) logits

Every LayerNorm has eps 1e-6. The variants change:
  * imagenet_vit_glu: the MLP multiplies GELU(linear1(x)) by `glu_linear` of it (a 1536 x 1536
    Linear) before the dropout; 50,452,456 parameters.
  * imagenet_vit_post_ln: each block normalises after its residual sums, x = layer_norm0(x +
    attention(x)), x = layer_norm2(x + mlp(x)), and the encoder has no encoder_norm;
    22,121,704 parameters.
  * imagenet_vit_map: a multi-head attention pooling head (`map`) replaces the mean: a learned
    `probe` token attends over the 196 tokens (q_proj on the probe, kv_proj on the tokens,
    out_proj), then adds a LayerNorm -> MLP branch; 23,896,552 parameters.

Module and parameter names are upstream's (`conv_patch_extract`, `encoder.net.<i>.layer_norm0`,
`self_attention1.query/key/value/out`, `mlp3.linear1/glu_linear/linear2`, `encoder.encoder_norm`,
`pre_logits`, `head`, `map.probe`, `map.mha.q_proj/kv_proj/out_proj`, ...): the parameter-type
rules read 'conv', 'norm', 'attention', 'query', 'key', 'value', 'out' in them, and
`is_output_params` names `head`. Construction order and every init call are upstream's too,
so one seed gives the same initial weights:
  * attention projections: xavier-uniform weights, zero biases;
  * MLP Linears (and the MAP head's projections): xavier-uniform weights, biases N(0, 1e-6);
  * conv_patch_extract and pre_logits: `pytorch_default_init` (truncated LeCun normal, zero bias);
  * head: weight and bias zero; map.probe: xavier-uniform over its (1, 1, 384) shape.

Dropout is functional, its rates arguments of forward, as upstream v0.6's model: `dropout_rate`
(default 0.0) after the position embedding, inside the MLP and on each residual branch, and
`attention_dropout_rate` on the attention probabilities and everywhere inside the MAP head
(None: the same as dropout_rate, upstream v0.6). Upstream's v0.5 model fixed the rate at
construction and applied none there, which V05_ATTENTION_DROPOUT_RATE reproduces.
Attention runs through `scaled_dot_product_attention` (upstream writes out softmax(QK^T / 8) V;
the same function, different rounding and dropout masks).
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from pytest_algoperf.api.init_utils import pytorch_default_init

DROPOUT_RATE = 0.0  # upstream's default when model_fn gets no rate
# v0.5 runs fixed dropout at init_model_fn time; that model had no dropout on the attention
# probabilities (its SelfAttention was built without the rate) nor anywhere in the MAP head.
V05_ATTENTION_DROPOUT_RATE = 0.0
LAYER_NORM_EPS = 1e-6
BIAS_INIT_STD = 1e-6  # the MLP biases' N(0, 1e-6), as the JAX reference's nn.initializers.normal(1e-6)
POSEMB_TEMPERATURE = 10_000.0

# decode_variant('S/16') of upstream's imagenet_vit/workload.py (Table 2 of arXiv:2106.04560).
VIT_S16: Dict[str, object] = {"width": 384, "depth": 12, "mlp_dim": 1536, "num_heads": 6, "patch_size": (16, 16)}

# What each registered variant changes in the model (keyword arguments of `vit_s16`).
VARIANT_MODEL_KWARGS: Dict[str, dict] = {
    "imagenet_vit": {},
    "imagenet_vit_glu": {"use_glu": True},
    "imagenet_vit_post_ln": {"use_post_layer_norm": True},
    "imagenet_vit_map": {"use_map": True},
}


def posemb_sincos_2d(height: int, width: int, dim: int, device: Optional[torch.device] = None) -> torch.Tensor:
    """MoCo v3's fixed 2-D position embedding, (1, height * width, dim), tokens in row-major order.

    With omega_i = 1 / 10000^(i / (dim/4 - 1)), i = 0 .. dim/4 - 1, the token at row r, column c is
    [sin(c omega), cos(c omega), sin(r omega), cos(r omega)].
    """
    if dim % 4 != 0:
        raise ValueError(f"the sin-cos position embedding needs a width divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    omega = 1.0 / POSEMB_TEMPERATURE ** (torch.arange(dim // 4, device=device) / (dim // 4 - 1))  # (dim/4,) float32
    x = cols.flatten()[:, None] * omega[None, :]  # (h w, dim/4)
    y = rows.flatten()[:, None] * omega[None, :]
    return torch.cat((x.sin(), x.cos(), y.sin(), y.cos()), dim=1)[None]  # (1, h w, dim)


def _attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, num_heads: int, dropout_rate: float,
            training: bool) -> torch.Tensor:
    """Multi-head softmax(q k^T / sqrt(head size)) v with dropout on the probabilities; (B, T, D) -> (B, Tq, D)."""
    batch, length, dim = query.shape

    def split(t: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (B, H, T, D / H)
        return t.view(batch, t.shape[1], num_heads, dim // num_heads).transpose(1, 2)

    rate = dropout_rate if training else 0.0
    out = F.scaled_dot_product_attention(split(query), split(key), split(value), dropout_p=rate)  # (B, H, Tq, D / H)
    return out.transpose(1, 2).reshape(batch, length, dim)


class MlpBlock(nn.Module):
    """Linear -> GELU(tanh) (-> times glu_linear of it) -> dropout -> Linear."""

    def __init__(self, width: int, mlp_dim: Optional[int] = None, use_glu: bool = False) -> None:
        super().__init__()
        mlp_dim = mlp_dim or 4 * width
        self.use_glu = use_glu
        self.linear1 = nn.Linear(width, mlp_dim)
        self.act_fnc = nn.GELU(approximate="tanh")  # upstream's form, matching jax.nn.gelu
        self.glu_linear = nn.Linear(mlp_dim, mlp_dim) if use_glu else None
        self.linear2 = nn.Linear(mlp_dim, width)
        for linear in (self.linear1, self.glu_linear, self.linear2):
            if linear is not None:
                nn.init.xavier_uniform_(linear.weight)
                nn.init.normal_(linear.bias, std=BIAS_INIT_STD)

    def forward(self, x: torch.Tensor, dropout_rate: float) -> torch.Tensor:
        # x: (B, T, width) -> (B, T, width)
        hidden = self.act_fnc(self.linear1(x))  # (B, T, mlp_dim)
        if self.use_glu:
            hidden = hidden * self.glu_linear(hidden)
        return self.linear2(F.dropout(hidden, dropout_rate, self.training))


class SelfAttention(nn.Module):
    """Multi-head self-attention with separate query, key, value and output projections."""

    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        if width % num_heads:
            raise ValueError(f"width {width} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.out = nn.Linear(width, width)
        for linear in (self.query, self.key, self.value, self.out):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(self, x: torch.Tensor, dropout_rate: float) -> torch.Tensor:
        # x: (B, T, width) -> (B, T, width)
        attended = _attend(self.query(x), self.key(x), self.value(x), self.num_heads, dropout_rate, self.training)
        return self.out(attended)


class Encoder1DBlock(nn.Module):
    """Attention then MLP, each a residual branch with dropout; pre-LN, or post-LN for that variant."""

    def __init__(self, width: int, mlp_dim: int, num_heads: int, use_glu: bool, use_post_layer_norm: bool) -> None:
        super().__init__()
        self.use_post_layer_norm = use_post_layer_norm
        self.layer_norm0 = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.self_attention1 = SelfAttention(width, num_heads)
        self.layer_norm2 = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.mlp3 = MlpBlock(width, mlp_dim, use_glu)

    def forward(self, x: torch.Tensor, dropout_rate: float, attention_dropout_rate: float) -> torch.Tensor:
        # x: (B, T, width) -> (B, T, width)
        def attention(y):
            return F.dropout(self.self_attention1(y, attention_dropout_rate), dropout_rate, self.training)

        def mlp(y):
            return F.dropout(self.mlp3(y, dropout_rate), dropout_rate, self.training)

        if self.use_post_layer_norm:
            x = self.layer_norm0(x + attention(x))
            return self.layer_norm2(x + mlp(x))
        x = x + attention(self.layer_norm0(x))
        return x + mlp(self.layer_norm2(x))


class Encoder(nn.Module):
    def __init__(self, depth: int, width: int, mlp_dim: int, num_heads: int, use_glu: bool,
                 use_post_layer_norm: bool) -> None:
        super().__init__()
        self.net = nn.ModuleList(
            [Encoder1DBlock(width, mlp_dim, num_heads, use_glu, use_post_layer_norm) for _ in range(depth)]
        )
        # post-LN blocks already end in a LayerNorm
        self.encoder_norm = None if use_post_layer_norm else nn.LayerNorm(width, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor, dropout_rate: float, attention_dropout_rate: float) -> torch.Tensor:
        for block in self.net:
            x = block(x, dropout_rate, attention_dropout_rate)
        return x if self.encoder_norm is None else self.encoder_norm(x)


class PoolingAttention(nn.Module):
    """Upstream's WMT MultiheadAttention in its cross-attention form with biases: q_proj, kv_proj, out_proj."""

    def __init__(self, width: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(width, width)
        self.kv_proj = nn.Linear(width, 2 * width)  # [key | value]
        self.out_proj = nn.Linear(width, width)
        for linear in (self.q_proj, self.kv_proj, self.out_proj):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.normal_(linear.bias, std=BIAS_INIT_STD)

    def forward(self, query: torch.Tensor, memory: torch.Tensor, dropout_rate: float) -> torch.Tensor:
        # query (B, Q, width), memory (B, T, width) -> (B, Q, width)
        key, value = self.kv_proj(memory).chunk(2, dim=-1)
        return self.out_proj(_attend(self.q_proj(query), key, value, self.num_heads, dropout_rate, self.training))


class MAPHead(nn.Module):
    """Multi-head attention pooling: a learned probe attends over the tokens, then a residual LN -> MLP."""

    def __init__(self, width: int, mlp_dim: int, num_heads: int) -> None:
        super().__init__()
        self.probe = nn.Parameter(torch.empty(1, 1, width))
        nn.init.xavier_uniform_(self.probe)  # fans of a (1, 1, width) tensor: width and width
        self.mha = PoolingAttention(width, num_heads)
        self.layer_norm = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.mlp = MlpBlock(width, mlp_dim)

    def forward(self, x: torch.Tensor, dropout_rate: float) -> torch.Tensor:
        # x: (B, T, width) -> (B, width)
        pooled = self.mha(self.probe.expand(x.shape[0], -1, -1), x, dropout_rate)  # (B, 1, width)
        pooled = pooled + self.mlp(self.layer_norm(pooled), dropout_rate)
        return pooled[:, 0]


class ViT(nn.Module):
    channels = 3

    def __init__(
        self,
        num_classes: int = 1000,
        patch_size: Tuple[int, int] = (16, 16),
        width: int = 384,
        depth: int = 12,
        mlp_dim: Optional[int] = 1536,
        num_heads: int = 6,
        use_glu: bool = False,
        use_post_layer_norm: bool = False,
        use_map: bool = False,
    ) -> None:
        super().__init__()
        mlp_dim = mlp_dim or 4 * width
        self.use_map = use_map
        # registered in upstream's order, so the default inits draw from the seed in the same order
        self.pre_logits = nn.Linear(width, width)  # rep_size=True: the representation keeps the width
        self.conv_patch_extract = nn.Conv2d(self.channels, width, patch_size, stride=patch_size, padding="valid")
        self.encoder = Encoder(depth, width, mlp_dim, num_heads, use_glu, use_post_layer_norm)
        self.head = nn.Linear(width, num_classes)
        self.map = MAPHead(width, mlp_dim, num_heads) if use_map else None
        pytorch_default_init(self.conv_patch_extract)
        pytorch_default_init(self.pre_logits)
        nn.init.zeros_(self.head.weight)  # every image starts at uniform class probabilities
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, dropout_rate: float = DROPOUT_RATE,
                attention_dropout_rate: Optional[float] = None) -> torch.Tensor:
        # x: (B, 3, H, W) -> (B, num_classes)
        if attention_dropout_rate is None:
            attention_dropout_rate = dropout_rate
        x = self.conv_patch_extract(x)  # (B, width, H/16, W/16)
        batch, width, height, cols = x.shape
        x = x.reshape(batch, width, height * cols).transpose(1, 2)  # (B, T, width), T = H/16 * W/16
        x = x + posemb_sincos_2d(height, cols, width, x.device)  # the embedding stays float32, as upstream's
        x = F.dropout(x, dropout_rate, self.training)
        x = self.encoder(x, dropout_rate, attention_dropout_rate)  # (B, T, width)
        x = x.mean(dim=1) if self.map is None else self.map(x, attention_dropout_rate)  # (B, width)
        return self.head(torch.tanh(self.pre_logits(x)))


def vit_s16(use_glu: bool = False, use_post_layer_norm: bool = False, use_map: bool = False,
            num_classes: int = 1000) -> ViT:
    """The reference's ViT-S/16, or one of its variants (see VARIANT_MODEL_KWARGS)."""
    return ViT(num_classes, use_glu=use_glu, use_post_layer_norm=use_post_layer_norm, use_map=use_map, **VIT_S16)
