"""The reference WMT Transformer (reference §4.9): an encoder-decoder of 6 + 6 layers, d_model 1024.

One embedding table is shared by the source, the target and the output
projection; positions are fixed sinusoids. Attention projections carry no
bias and run through `scaled_dot_product_attention`. Module and parameter
names are the reference's (`shared_embedding`, `self_attn.in_proj`,
`multihead_attn.q_proj` / `kv_proj`, `norm1..3`, `linear1/2`, `linear_glu`),
because submissions may treat parameters by the types those names give
(ATTENTION_QKV, ATTENTION_Q, ATTENTION_KV, EMBEDDING, ...).

Base model: 133,521,408 parameters; post-LN variant 133,517,312 (no final
encoder/decoder norms); GLU + tanh variant 146,116,608 (one extra
1024x1024 Linear per layer).

Dropout is functional (no Dropout modules), so the rates are arguments of
forward: `dropout_rate` for embeddings, residual branches and the feed-forward
block, and `attention_dropout_rate` for the attention probabilities; None there
means "same as dropout_rate", the v0.6 behaviour.

Shapes: B batch, S source length, T target length, D d_model, H heads,
E = D / H head size, V vocabulary.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

DROPOUT_RATE = 0.1  # the reference default, used when model_fn gets no dropout rate
# v0.5 runs fixed dropout at init_model_fn time, and upstream's v0.5 Transformer
# took `aux_dropout_rate` as its attention dropout (on the attention
# probabilities, in encoder and decoder self-attention and in cross-attention),
# falling back to 0.1 when the hyperparameters gave none. v0.6 has a single rate.
V05_ATTENTION_DROPOUT_RATE = 0.1
# Additive attention mask value. Finite (not -inf) on purpose: a padding query
# row has every key masked, and -inf there would turn its softmax into NaN.
MASK_VALUE = -1e10


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    vocab_size: int = 32_000  # the SentencePiece vocabulary the reference trains
    d_model: int = 1024
    num_heads: int = 16
    d_hidden: int = 1024  # feed-forward width; the reference keeps it equal to d_model
    num_layers: int = 6  # in the encoder and again in the decoder
    max_length: int = 256  # longest sequence (and sinusoid table) the reference uses
    pre_ln: bool = True
    attention_temp: float = 1.0  # queries are multiplied by this before attention
    activation: str = "relu"
    glu: bool = False
    layer_norm_eps: float = 1e-6


ACTIVATIONS: Dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"relu": F.relu, "tanh": torch.tanh}


def attention_bias(
    query_tokens: torch.Tensor,
    key_tokens: torch.Tensor,
    query_segments: Optional[torch.Tensor] = None,
    key_segments: Optional[torch.Tensor] = None,
    causal: bool = False,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """(B, 1, Tq, Tk) additive mask: 0 where a query may attend to a key, MASK_VALUE elsewhere.

    A pair is allowed when both tokens are real (id > 0), they belong to the same
    packed segment (when segments are given) and, if causal, the key does not
    lie in the future. One mask serves all heads by broadcasting.
    """
    allowed = (query_tokens > 0).unsqueeze(-1) & (key_tokens > 0).unsqueeze(-2)  # (B, Tq, Tk)
    if query_segments is not None and key_segments is not None:
        allowed = allowed & (query_segments.unsqueeze(-1) == key_segments.unsqueeze(-2))
    if causal:
        length = query_tokens.shape[-1]
        allowed = allowed & torch.ones(length, length, dtype=torch.bool, device=query_tokens.device).tril()
    bias = torch.zeros(allowed.shape, dtype=dtype, device=query_tokens.device)
    return bias.masked_fill_(~allowed, MASK_VALUE).unsqueeze(1)


def shift_right(tokens: torch.Tensor) -> torch.Tensor:
    """Decoder inputs: (B, T) targets moved one step right, a 0 entering at the front.

    As in the reference PyTorch model the whole packed row shifts, so a segment's
    first input is the previous segment's EOS rather than 0 (the segment mask
    still keeps the two examples apart in attention).
    """
    return F.pad(tokens, (1, 0))[:, :-1]


class PositionalEncoding(nn.Module):
    """Fixed sinusoids: sin in the first D/2 features, cos in the last D/2."""

    def __init__(self, d_model: int, max_length: int) -> None:
        super().__init__()
        half = d_model // 2
        position = torch.arange(max_length, dtype=torch.float32).unsqueeze(1)  # (L, 1)
        # Frequencies from 1 down to 1/10000 over the D/2 features, as the reference spaces them.
        inverse_frequency = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(10_000.0) / (half - 1)))
        table = torch.zeros(1, max_length, d_model)
        table[0, :, :half] = torch.sin(position * inverse_frequency)
        table[0, :, half : 2 * half] = torch.cos(position * inverse_frequency)
        self.register_buffer("pe", table)  # (1, L, D); a buffer, so it is saved but never trained

    def forward(self, x: torch.Tensor, positions: Optional[torch.Tensor] = None, dropout_rate: float = 0.0) -> torch.Tensor:
        # x: (B, T, D); positions: (B, T) for packed rows, else 0..T-1
        table = self.pe[:, : x.shape[1]] if positions is None else self.pe[0, positions]
        return F.dropout(x + table, dropout_rate, self.training)

    def at(self, x: torch.Tensor, position: int) -> torch.Tensor:
        """One decoding step: x (N, 1, D) at a single position."""
        return x + self.pe[:, position : position + 1]


class MultiheadAttention(nn.Module):
    """Bias-free multi-head attention: fused `in_proj` for self-attention, `q_proj` + `kv_proj` for cross-attention."""

    def __init__(self, d_model: int, num_heads: int, self_attention: bool, attention_temp: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_size = d_model // num_heads
        if self.head_size * num_heads != d_model:
            raise ValueError(f"d_model {d_model} is not divisible by {num_heads} heads.")
        self.self_attention = self_attention
        self.attention_temp = attention_temp
        if self_attention:
            self.in_proj = nn.Linear(d_model, 3 * d_model, bias=False)  # [q | k | v]
        else:
            self.q_proj = nn.Linear(d_model, d_model, bias=False)
            self.kv_proj = nn.Linear(d_model, 2 * d_model, bias=False)  # [k | v]
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape  # (B, T, D) -> (B, H, T, E)
        return x.view(batch, length, self.num_heads, self.head_size).transpose(1, 2)

    def project_memory(self, memory: torch.Tensor):
        """Cross-attention keys and values of the encoder output, each (B, H, S, E)."""
        key, value = self.kv_proj(memory).chunk(2, dim=-1)
        return self.split_heads(key), self.split_heads(value)

    def attend(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               bias: Optional[torch.Tensor], dropout_rate: float) -> torch.Tensor:
        # query (B, H, Tq, E), key/value (B, H, Tk, E) -> (B, Tq, D)
        output = F.scaled_dot_product_attention(
            query * self.attention_temp, key, value, attn_mask=bias, dropout_p=dropout_rate if self.training else 0.0
        )
        batch, _, length, _ = output.shape
        return self.out_proj(output.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_size))

    def forward(self, x: torch.Tensor, memory: Optional[torch.Tensor] = None,
                bias: Optional[torch.Tensor] = None, dropout_rate: float = 0.0) -> torch.Tensor:
        if self.self_attention:
            query, key, value = (self.split_heads(part) for part in self.in_proj(x).chunk(3, dim=-1))
        else:
            query = self.split_heads(self.q_proj(x))
            key, value = self.project_memory(memory)
        return self.attend(query, key, value, bias, dropout_rate)


def _attention_rate(dropout_rate: float, attention_dropout_rate: Optional[float]) -> float:
    """The attention-probability dropout: its own rate when given (v0.5 runs), else the general one (v0.6)."""
    return dropout_rate if attention_dropout_rate is None else attention_dropout_rate


def feed_forward(layer: nn.Module, x: torch.Tensor, dropout_rate: float) -> torch.Tensor:
    """A layer's feed-forward block; its Linears sit on the layer itself, under the reference's names."""
    hidden = layer.activation(layer.linear1(x))  # (.., D) -> (.., D_hidden)
    if layer.glu:
        hidden = hidden * layer.linear_glu(x)
    hidden = F.dropout(hidden, dropout_rate, layer.training)
    return F.dropout(layer.linear2(hidden), dropout_rate, layer.training)


def _add_feed_forward(layer: nn.Module, config: TransformerConfig) -> None:
    layer.linear1 = nn.Linear(config.d_model, config.d_hidden)
    layer.glu = config.glu
    if config.glu:
        layer.linear_glu = nn.Linear(config.d_model, config.d_hidden)
    layer.linear2 = nn.Linear(config.d_hidden, config.d_model)
    layer.activation = ACTIVATIONS[config.activation]


class TransformerEncoderLayer(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.pre_ln = config.pre_ln
        self.self_attn = MultiheadAttention(config.d_model, config.num_heads, True, config.attention_temp)
        _add_feed_forward(self, config)
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)

    def _attention(self, x, bias, dropout_rate, attention_dropout_rate):
        attended = self.self_attn(x, bias=bias, dropout_rate=attention_dropout_rate)
        return F.dropout(attended, dropout_rate, self.training)

    def forward(self, x: torch.Tensor, bias: torch.Tensor, dropout_rate: float,
                attention_dropout_rate: Optional[float] = None) -> torch.Tensor:
        # x: (B, S, D)
        attention_rate = _attention_rate(dropout_rate, attention_dropout_rate)
        if self.pre_ln:
            x = x + self._attention(self.norm1(x), bias, dropout_rate, attention_rate)
            return x + feed_forward(self, self.norm2(x), dropout_rate)
        x = self.norm1(x + self._attention(x, bias, dropout_rate, attention_rate))
        return self.norm2(x + feed_forward(self, x, dropout_rate))


@dataclasses.dataclass
class LayerCache:
    """What one decoder layer keeps between decoding steps."""

    keys: torch.Tensor  # (N, H, max_len, E) self-attention keys, filled up to the current step
    values: torch.Tensor  # (N, H, max_len, E)
    memory_keys: torch.Tensor  # (N, H, S, E) cross-attention keys: fixed for the whole search
    memory_values: torch.Tensor


class TransformerDecoderLayer(nn.Module):
    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.pre_ln = config.pre_ln
        self.self_attn = MultiheadAttention(config.d_model, config.num_heads, True, config.attention_temp)
        self.multihead_attn = MultiheadAttention(config.d_model, config.num_heads, False, config.attention_temp)
        _add_feed_forward(self, config)
        self.norm1 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.norm2 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.norm3 = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)

    def _residual_blocks(self, x, self_attention, cross_attention, dropout_rate):
        """The three sub-blocks in pre- or post-LN order; the attentions are passed as functions."""
        def drop(y):
            return F.dropout(y, dropout_rate, self.training)

        if self.pre_ln:
            x = x + drop(self_attention(self.norm1(x)))
            x = x + drop(cross_attention(self.norm2(x)))
            return x + feed_forward(self, self.norm3(x), dropout_rate)
        x = self.norm1(x + drop(self_attention(x)))
        x = self.norm2(x + drop(cross_attention(x)))
        return self.norm3(x + feed_forward(self, x, dropout_rate))

    def forward(self, x: torch.Tensor, memory: torch.Tensor, self_bias: torch.Tensor,
                memory_bias: torch.Tensor, dropout_rate: float,
                attention_dropout_rate: Optional[float] = None) -> torch.Tensor:
        # x: (B, T, D), memory: (B, S, D)
        # Both the self- and the cross-attention use the attention rate, as upstream's v0.5 model did.
        attention_rate = _attention_rate(dropout_rate, attention_dropout_rate)
        return self._residual_blocks(
            x,
            lambda y: self.self_attn(y, bias=self_bias, dropout_rate=attention_rate),
            lambda y: self.multihead_attn(y, memory, bias=memory_bias, dropout_rate=attention_rate),
            dropout_rate,
        )

    def decode_step(self, x: torch.Tensor, cache: LayerCache, position: int, memory_bias: torch.Tensor) -> torch.Tensor:
        """x: (N, 1, D) for the token at `position`; attends to the cached steps 0..position."""

        def cached_self_attention(y):
            query, key, value = (self.self_attn.split_heads(part) for part in self.self_attn.in_proj(y).chunk(3, dim=-1))
            cache.keys[:, :, position : position + 1] = key
            cache.values[:, :, position : position + 1] = value
            # Only the filled steps are read, which equals masking the unfilled ones.
            return self.self_attn.attend(query, cache.keys[:, :, : position + 1], cache.values[:, :, : position + 1], None, 0.0)

        def cached_cross_attention(y):
            query = self.multihead_attn.split_heads(self.multihead_attn.q_proj(y))
            return self.multihead_attn.attend(query, cache.memory_keys, cache.memory_values, memory_bias, 0.0)

        return self._residual_blocks(x, cached_self_attention, cached_cross_attention, 0.0)


class TransformerEncoder(nn.Module):
    """The encoder's layer stack and (pre-LN only) its final norm."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TransformerEncoderLayer(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps) if config.pre_ln else None

    def forward(self, x: torch.Tensor, bias: torch.Tensor, dropout_rate: float,
                attention_dropout_rate: Optional[float] = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, bias, dropout_rate, attention_dropout_rate)
        return x if self.norm is None else self.norm(x)


class TransformerDecoder(nn.Module):
    """The decoder's layer stack and (pre-LN only) its final norm."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(TransformerDecoderLayer(config) for _ in range(config.num_layers))
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps) if config.pre_ln else None

    def forward(self, x, memory, self_bias, memory_bias, dropout_rate, attention_dropout_rate=None):
        for layer in self.layers:
            x = layer(x, memory, self_bias, memory_bias, dropout_rate, attention_dropout_rate)
        return x if self.norm is None else self.norm(x)


class Encoder(nn.Module):
    """Source tokens -> memory. `shared_embedding` and `pos_encoder` are the Transformer's, attached after construction."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.encoder = TransformerEncoder(config)

    def forward(self, src: torch.Tensor, inputs_positions: Optional[torch.Tensor] = None,
                inputs_segmentation: Optional[torch.Tensor] = None, dropout_rate: float = 0.0,
                attention_dropout_rate: Optional[float] = None) -> torch.Tensor:
        # src: (B, S) token ids -> (B, S, D)
        x = self.pos_encoder(self.shared_embedding(src), inputs_positions, dropout_rate)
        bias = attention_bias(src, src, inputs_segmentation, inputs_segmentation, dtype=x.dtype)
        return self.encoder(x, bias, dropout_rate, attention_dropout_rate)


@dataclasses.dataclass
class DecodingCache:
    """The decoder's state during incremental decoding of N = batch x beam sequences."""

    layers: List[LayerCache]
    memory_bias: torch.Tensor  # (N, 1, 1, S): hides source padding
    position: int = 0  # the next position to decode; a Python int, so no host sync per step

    def reorder(self, index: torch.Tensor) -> None:
        """Keeps the sequences at `index` (N,), e.g. the parents of the surviving beams."""
        filled = self.position
        for layer in self.layers:
            layer.keys[:, :, :filled] = layer.keys[index, :, :filled]
            layer.values[:, :, :filled] = layer.values[index, :, :filled]


class Decoder(nn.Module):
    """Targets + memory -> logits over the shared vocabulary."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.decoder = TransformerDecoder(config)

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        # The output projection is the embedding table, scaled by 1/sqrt(D): (.., D) -> (.., V)
        return hidden @ self.shared_embedding.weight.T / math.sqrt(hidden.shape[-1])

    def forward(self, tgt: torch.Tensor, memory: torch.Tensor, src: torch.Tensor,
                targets_positions: Optional[torch.Tensor] = None, inputs_segmentation: Optional[torch.Tensor] = None,
                targets_segmentation: Optional[torch.Tensor] = None, dropout_rate: float = 0.0,
                attention_dropout_rate: Optional[float] = None) -> torch.Tensor:
        # tgt: (B, T), memory: (B, S, D), src: (B, S) (only for its padding) -> (B, T, V)
        # Masks come from the unshifted targets: position t predicts target t, so it is
        # a real query exactly when target t is a real token.
        segments_given = inputs_segmentation is not None
        self_bias = attention_bias(tgt, tgt, targets_segmentation if segments_given else None,
                                   targets_segmentation if segments_given else None, causal=True, dtype=memory.dtype)
        memory_bias = attention_bias(tgt, src, targets_segmentation if segments_given else None,
                                     inputs_segmentation, dtype=memory.dtype)
        x = self.pos_encoder(self.shared_embedding(shift_right(tgt)), targets_positions, dropout_rate)
        return self._logits(self.decoder(x, memory, self_bias, memory_bias, dropout_rate, attention_dropout_rate))

    def start_decoding(self, memory: torch.Tensor, src: torch.Tensor, max_length: int) -> DecodingCache:
        """An empty cache for decoding up to `max_length` steps against memory (N, S, D) of sources src (N, S)."""
        layers = []
        for layer in self.decoder.layers:
            attention = layer.self_attn
            shape = (memory.shape[0], attention.num_heads, max_length, attention.head_size)
            memory_keys, memory_values = layer.multihead_attn.project_memory(memory)
            layers.append(LayerCache(memory.new_zeros(shape), memory.new_zeros(shape), memory_keys, memory_values))
        memory_bias = torch.zeros(src.shape, dtype=memory.dtype, device=src.device).masked_fill_(src <= 0, MASK_VALUE)
        return DecodingCache(layers, memory_bias[:, None, None, :])

    def decode_step(self, token_ids: torch.Tensor, cache: DecodingCache) -> torch.Tensor:
        """token_ids (N, 1) at position cache.position -> next-token logits (N, V); advances the cache."""
        x = self.pos_encoder.at(self.shared_embedding(token_ids), cache.position)
        for layer, layer_cache in zip(self.decoder.layers, cache.layers):
            x = layer.decode_step(x, layer_cache, cache.position, cache.memory_bias)
        if self.decoder.norm is not None:
            x = self.decoder.norm(x)
        cache.position += 1
        return self._logits(x[:, 0])


class Transformer(nn.Module):
    def __init__(self, config: TransformerConfig = TransformerConfig()) -> None:
        super().__init__()
        self.config = config
        self.pos_encoder = PositionalEncoding(config.d_model, config.max_length)
        self.shared_embedding = nn.Embedding(config.vocab_size, config.d_model)  # default N(0, 1) init
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        # Shared with both halves, registered under them too as in the reference, so
        # state dicts carry the same keys; named_parameters lists the table once.
        for half in (self.encoder, self.decoder):
            half.pos_encoder = self.pos_encoder
            half.shared_embedding = self.shared_embedding
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference init: Xavier-uniform Linear weights, N(0, 1e-6) biases."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.normal_(module.bias, std=1e-6)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor,
                inputs_positions: Optional[torch.Tensor] = None, targets_positions: Optional[torch.Tensor] = None,
                inputs_segmentation: Optional[torch.Tensor] = None, targets_segmentation: Optional[torch.Tensor] = None,
                dropout_rate: float = DROPOUT_RATE, attention_dropout_rate: Optional[float] = None) -> torch.Tensor:
        # src: (B, S), tgt: (B, T) token ids -> logits (B, T, V)
        # attention_dropout_rate None: the attention probabilities drop at dropout_rate too (v0.6).
        memory = self.encoder(src, inputs_positions, inputs_segmentation, dropout_rate, attention_dropout_rate)
        return self.decoder(tgt, memory, src, targets_positions, inputs_segmentation, targets_segmentation,
                            dropout_rate, attention_dropout_rate)
