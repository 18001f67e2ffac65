"""The finewebedu_lm model: a decoder-only Transformer language model (reference LM_AND_A100 §4.12).

Upstream: algoperf/workloads/finewebedu_lm/finewebedu_lm_pytorch/models.py (after plainLM), built by
the workload with the sizes of `ModelConfig()`. 252,815,372 parameters (201,352,204 without the tied
embedding table); untied it would be 304,278,540.

Shapes: B batch, L length (<= seq_len), D model_dim, H heads, E = D / H head size, F hidden size of
the MLP, V vocabulary. At the reference sizes D = 1024, H = 8, E = 128, F = 4096, V = 50,257.

    (B, L) token ids
      embed_tokens (no position table: positions enter through RoPE)            (B, L, D)
      num_layers pre-norm blocks:
        x + attn(attn_norm(x))
            w_qkv: D -> 3D, split into q, k, v, each (B, L, H, E)
            RoPE on q and k, interleaved pairs (2i, 2i+1), theta 500,000
            QK-norm: q and k divided by their L2 norm over E; q times the learnable attn_scale
            causal softmax(q k^T) v with no further scaling, so logits are attn_scale * cos(q, k)
            w_out: D -> D
        x + mlp(mlp_norm(x))
            fc1: D -> 2F, GLU a * sigmoid(b) over the two halves, fc2: F -> D
      out_norm                                                                  (B, L, D)
      lm_head, the embedding table itself (tied), no logit scaling              (B, L, V) logits

Every norm is nn.RMSNorm (eps 1e-6, learnable scale, no bias); no Linear has a bias; there is no
dropout anywhere (model_fn's dropout_rate is ignored upstream).

Init (`init_weights`): every Linear weight and the embedding N(0, 0.02^2); then the residual-branch
outputs w_out and fc2 re-drawn with std 0.02 / sqrt(2 * num_layers) (0.0040825 at 12 layers);
RMSNorm scales 1; attn_scale log2(seq_len^2 - seq_len); lm_head tied to the embedding afterwards.
Modules are registered and drawn in upstream's order, including the draws whose values the
whole-model init overwrites, so the same seed gives the same weights as upstream's code.
`reinit_weights` is what a second upstream init_model_fn on the same workload does.

Module and parameter names are upstream's (`embed_tokens`, `layers.<i>.attn.w_qkv`, `attn.w_out`,
`attn.attn_scale`, `attn_norm`, `mlp.fc1`, `mlp.fc2`, `mlp_norm`, `out_norm`, `lm_head`): the
parameter-type rules read 'embed', 'norm', 'attn', 'qkv' and 'out' in them. Everything is float32;
the workload decides about autocast and places the model on its device.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

INIT_STD = 0.02  # GPT-2's init, which plainLM and upstream use for every Linear and the embedding


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 50_257  # GPT-2 byte-level BPE, EOS = 50256
    seq_len: int = 1024  # tokens per training sequence; also sizes the RoPE table and attn_scale's init
    model_dim: int = 1024
    num_heads: int = 8  # head size 128
    num_layers: int = 12
    expanded_model_dim: int = 4096  # MLP hidden size before rounding; fc1 is twice as wide (GLU)
    multiple_of: int = 256  # the hidden size is rounded up to a multiple of this; 4096 stays 4096
    rmsnorm_eps: float = 1e-6
    qknorm_eps: float = 1e-6
    tie_embeddings: bool = True
    rope_theta: float = 500_000.0  # upstream passes 500000 to its RoPE table (Llama 3's base)

    def __post_init__(self) -> None:
        if self.model_dim % self.num_heads:
            raise ValueError(f"model_dim {self.model_dim} is not divisible by {self.num_heads} heads")
        if self.head_dim % 2:
            raise ValueError(f"RoPE rotates pairs of features, so the head size must be even, got {self.head_dim}")

    @property
    def head_dim(self) -> int:
        return self.model_dim // self.num_heads

    @property
    def hidden_dim(self) -> int:
        return self.multiple_of * math.ceil(self.expanded_model_dim / self.multiple_of)

    @property
    def initial_attn_scale(self) -> float:
        # log2(L^2 - L), the scale for a query-key cosine at the training length (19.99859 at L = 1024)
        return math.log2(self.seq_len**2 - self.seq_len)

    @property
    def residual_init_std(self) -> float:
        # two residual branches per layer, so their outputs' init shrinks with sqrt(2 * layers)
        return INIT_STD / math.sqrt(2 * self.num_layers)


def rope_table(head_dim: int, seq_len: int, theta: float) -> torch.Tensor:
    """(1, seq_len, 1, head_dim / 2, 2): cos and sin of position * theta^(-2i / head_dim).

    Computed in float32 on the CPU, as upstream's table is, then placed on the default device, so
    the table has the same bits wherever the model is built.
    """
    exponents = torch.arange(0, head_dim, 2, dtype=torch.float32, device="cpu") / head_dim  # (E/2,) = 2i / E
    inverse_frequency = 1.0 / theta**exponents  # (E/2,)
    positions = torch.arange(seq_len, dtype=torch.float32, device="cpu")  # (L,)
    angles = torch.outer(positions, inverse_frequency)  # (L, E/2)
    table = torch.stack([angles.cos(), angles.sin()], dim=-1)  # (L, E/2, 2)
    return table[None, :, None].to(torch.get_default_device())


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate each feature pair (2i, 2i+1) of x (B, L, H, E) by its angle in `table` (1, L, 1, E/2, 2).

    The "complex-like" interleaved convention (not rotate-half); computed in float32 and cast back.
    """
    pairs = x.float().unflatten(-1, (-1, 2))  # (B, L, H, E/2, 2)
    even, odd = pairs[..., 0], pairs[..., 1]
    cos, sin = table[..., 0], table[..., 1]  # (1, L, 1, E/2)
    rotated = torch.stack([even * cos - odd * sin, odd * cos + even * sin], dim=-1)  # (B, L, H, E/2, 2)
    return rotated.flatten(-2).type_as(x)  # (B, L, H, E)


def qk_norm(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x divided by its L2 norm over the last dimension, then eps added to every element.

    This is the final upstream PyTorch file's `x / norm(x) + eps` (operator precedence puts eps
    outside the division). Upstream's JAX model and a fork's PyTorch copy divide by (norm + eps)
    instead; the two differ by about 1e-6 per element, and which one the benchmark runs used is
    unconfirmed (reference §4.12, "Quirk (operator precedence)").
    """
    return x / torch.norm(x, dim=-1, keepdim=True) + eps


class Attention(nn.Module):
    """Causal multi-head attention on RoPE-rotated, L2-normalised queries and keys."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_dim = config.head_dim
        self.eps = config.qknorm_eps
        self.w_qkv = nn.Linear(config.model_dim, 3 * config.model_dim, bias=False)  # [q | k | v]
        self.w_out = nn.Linear(config.model_dim, config.model_dim, bias=False)
        # Upstream draws these here as well (q, k and v blocks one at a time); init_weights draws
        # them again, so the values die, but the draws move the generator and so stay.
        for block in self.w_qkv.weight.chunk(3, dim=0):
            nn.init.normal_(block, std=INIT_STD)
        nn.init.normal_(self.w_out.weight, std=INIT_STD)
        # one learnable scalar per layer: the inverse temperature of the cosine attention logits
        self.attn_scale = nn.Parameter(torch.tensor(config.initial_attn_scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        # x: (B, L, D), rope: (1, L, 1, E/2, 2) -> (B, L, D)
        batch, length, dim = x.shape
        q, k, v = self.w_qkv(x).split(dim, dim=-1)  # each (B, L, D)
        q, k, v = (t.view(batch, length, self.num_heads, self.head_dim) for t in (q, k, v))  # (B, L, H, E)
        q, k = apply_rope(q, rope), apply_rope(k, rope)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, L, E)
        q = qk_norm(q, self.eps) * self.attn_scale
        k = qk_norm(k, self.eps)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0)  # (B, H, L, E)
        return self.w_out(out.transpose(1, 2).reshape(batch, length, dim))


class MLP(nn.Module):
    """fc1 to twice the hidden size, GLU, fc2 back."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(config.model_dim, 2 * config.hidden_dim, bias=False)  # [a | b]
        self.fc2 = nn.Linear(config.hidden_dim, config.model_dim, bias=False)
        # drawn again by init_weights; kept for the generator's sake, as in Attention
        nn.init.normal_(self.fc1.weight, std=INIT_STD)
        nn.init.normal_(self.fc2.weight, std=INIT_STD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, L, D) -> (B, L, D)
        # F.glu is the classic sigmoid GLU, a * sigmoid(b) with a the first half: not SwiGLU, although
        # the workload logs activation='silu' (that field is read by no model).
        return self.fc2(F.glu(self.fc1(x), dim=-1))  # (B, L, 2F) -> (B, L, F) -> (B, L, D)


class Block(nn.Module):
    """Pre-norm residual block: attention, then MLP."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        # registered in upstream's order, which fixes the order of the random draws
        self.attn = Attention(config)
        self.attn_norm = nn.RMSNorm(config.model_dim, eps=config.rmsnorm_eps)
        self.mlp = MLP(config)
        self.mlp_norm = nn.RMSNorm(config.model_dim, eps=config.rmsnorm_eps)

    def forward(self, x: torch.Tensor, rope: torch.Tensor) -> torch.Tensor:
        # x: (B, L, D) -> (B, L, D)
        x = x + self.attn(self.attn_norm(x), rope)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig = ModelConfig()) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.model_dim)
        self.layers = nn.ModuleList([Block(config) for _ in range(config.num_layers)])
        self.out_norm = nn.RMSNorm(config.model_dim, eps=config.rmsnorm_eps)
        # Its own weight until init_weights has drawn it (upstream ties only after the init), then
        # the embedding table: logits = h E^T.
        self.lm_head = nn.Linear(config.model_dim, config.vocab_size, bias=False)
        # recomputable from the config, so not saved in the state dict
        self.register_buffer(
            "freqs_cis", rope_table(config.head_dim, config.seq_len, config.rope_theta), persistent=False
        )
        init_weights(self)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        # inputs: (B, L) int token ids -> (B, L, V) float logits
        length = inputs.shape[1]
        if length > self.config.seq_len:
            raise ValueError(f"sequence of {length} tokens is longer than the model's seq_len {self.config.seq_len}")
        x = self.embed_tokens(inputs)  # (B, L, D)
        rope = self.freqs_cis[:, :length]  # (1, L, 1, E/2, 2)
        for layer in self.layers:
            x = layer(x, rope)
        return self.lm_head(self.out_norm(x))


def init_weights(model: Transformer) -> None:
    """The whole init of a new model: norm scales 1, attn_scale its initial value, then the weights.

    The first two draw no random numbers; the weights are drawn as `reinit_weights` draws them.
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.RMSNorm):
                module.weight.fill_(1.0)
            elif isinstance(module, Attention):
                module.attn_scale.fill_(model.config.initial_attn_scale)
    reinit_weights(model)


def reinit_weights(model: Transformer) -> None:
    """N(0, 0.02^2) for every Linear and the embedding, then the residual-branch outputs re-drawn.

    This alone is what upstream's init_model_fn does when called again on the same workload: it
    leaves attn_scale and the RMSNorm scales as they are and does not reseed. Modules are visited
    in `nn.Module.apply` order, as upstream's `apply(_init_weights)`; on a tied model the shared
    table is drawn twice (as embed_tokens, then as lm_head), and the second draw stays.
    """

    def draw(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=INIT_STD)

    model.apply(draw)
    for layer in model.layers:  # upstream's named_parameters order: w_out, then fc2, layer by layer
        nn.init.normal_(layer.attn.w_out.weight, mean=0.0, std=model.config.residual_init_std)
        nn.init.normal_(layer.mlp.fc2.weight, mean=0.0, std=model.config.residual_init_std)
