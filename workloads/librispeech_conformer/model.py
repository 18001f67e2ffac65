"""The LibriSpeech Conformer (Gulati et al. 2020, arXiv:2005.08100) as in the reference (§4.6).

Upstream: algoperf/workloads/librispeech_conformer/librispeech_pytorch/models.py (a port of
init2winit's conformer.py), configured by librispeech_pytorch/workload.py's init_model_fn.
32,321,792 parameters.

    (B, S) int16-valued float32 audio, (B, S) paddings (1.0 = padding); S = 320,000 in the benchmark
      preprocessor: log-mel frontend (workloads/librispeech/frontend.py)   (B, T0, 80), T0 = (S - 401) // 160 + 1
      specaug: SpecAugment, training only                                   (B, T0, 80)
      subsample:
        conv1, conv2: 3x3 conv, stride 2, "SAME", ReLU, 1 -> 512 -> 512     (B, 512, T, 20), T = ceil(ceil(T0 / 2) / 2)
        per frame, flatten 20 bins x 512 channels (bin-major), linear 10,240 -> 512,
        + sinusoidal position embedding, dropout(input rate)               (B, T, 512)
      conformers: 4 blocks, each
        x + 1/2 ff1(x)     ln -> linear1 512 -> 2048 -> swish -> dropout1 (0.0) -> mask -> linear2 -> mask -> dropout
        x + mhsa(x)        ln -> in_proj 512 -> 3 x 512; 8 heads of 64; queries scaled per dim by
                           qs (1.442695041 softplus(scale), 1.0 at init); softmax(q k^T / 8) v over the
                           non-padded keys; x attention_temperature; out_proj; dropout
        x + conv(x)        ln -> GLU(lin1(x), lin2(x)) -> mask -> depthwise conv1 (k 5, "same", no bias)
                           -> bn (masked batch norm) -> swish -> lin3 -> dropout
        x + 1/2 ff2(x)
        ln (post-LN; absent in the layernorm variant)                      (B, T, 512)
      ln, lin: LayerNorm, Linear 512 -> 1024                               (B, T, 1024)
    -> (logits (B, T, 1024), output_paddings (B, T)); S = 320,000 gives T0 = 1998, T = 500

Shorter inputs work the same way (the frontend needs S >= 401); T follows the formulas above.

The variants (VARIANT_MODEL_KWARGS, ConformerConfig fields; §5):
  * librispeech_conformer_attention_temperature: attention output x 1.6 (before out_proj);
  * librispeech_conformer_layernorm: no per-block final LayerNorm; 32,317,696 parameters;
  * librispeech_conformer_gelu: GELU instead of swish: the tanh approximation in the feed-forward
    modules, exact (erf) GELU in the convolution modules, as upstream v0.6 writes it.

Norms: LayerNorm stores `scale` (init 0) and multiplies by 1 + scale, eps 1e-6. The batch norm
stores its gamma as `scale` too (used as 1 + scale), eps 1e-3, momentum 0.001 on the running
statistics (running = 0.999 running + 0.001 batch), and in training takes its statistics
(biased variance) over the non-padded frames only; padded frames come out as zero. It marks
itself `_is_custom_batch_norm`, so pytorch_utils.update_batch_norm_fn can freeze it (momentum 0).
The reference does not synchronise these statistics across DDP ranks in training; its workload
averages the whole state dict across ranks before every eval (workloads/parallel.py's
sync_model_state_for_eval).

Module, parameter and buffer names are upstream's (`subsample.conv1.kernel`,
`conformers.<i>.mhsa.self_attention.in_proj`, `.qs.scale`, `conformers.<i>.conv.bn.scale`, `lin`,
...), so the parameter-type rules of §2.3 give upstream's types and state dicts have upstream's
keys. Modules are registered in upstream's order and `initialize` visits them in that order, so
one seed gives upstream's initial weights: the subsampling kernels are xavier-uniform when built,
then every nn.Linear and nn.Conv1d gets a xavier-uniform weight and a zero bias. Nothing is lazy.

Dropout is functional, its rates arguments of forward (upstream v0.6 takes one `dropout_rate`,
default 0.1, for the input and every residual branch); `input_dropout_rate` and
`conv_residual_dropout_rate` (None: dropout_rate) reproduce v0.5, whose model fixed the rates at
construction: input 0.1 (aux_dropout_rate), attention/feed-forward residual 0.1 and
convolution residual 0.0 by default, all three residual rates = dropout_rate when one was given.
Attention probabilities and the feed-forward inner dropout stay at the config's 0.0.

Attention runs through F.scaled_dot_product_attention with a boolean key mask; upstream's
init_model_fn turns off cudnn.benchmark and the flash and memory-efficient kernels (math only)
"to avoid OOM errors". With the math kernel an example whose frames are all padding gets zeros
from attention rather than NaN (torch >= 2.5).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from workloads.librispeech.frontend import (
    LIBRISPEECH_MEAN_VECTOR,
    LIBRISPEECH_STD_VECTOR,
    MelFilterbankFrontend,
    PreprocessorConfig,
)
from workloads.librispeech.layers import LayerNorm, initialize
from workloads.librispeech.spec_augment import SpecAugment

DROPOUT_RATE = 0.1  # upstream v0.6's default rate: input and every residual branch
# v0.5's model, built with no rates given, applied none on the convolution residual branch.
V05_CONV_RESIDUAL_DROPOUT_RATE = 0.0
QUERY_SCALE_NORMALISER = 1.442695041  # 1 / softplus(0) = 1 / ln 2, so the query scale starts at 1.0


@dataclasses.dataclass(frozen=True)
class ConformerConfig:
    """upstream's ConformerConfig (v0.6 fields and defaults)."""

    vocab_size: int = 1024
    encoder_dim: int = 512
    num_attention_heads: int = 8
    num_encoder_layers: int = 4
    attention_dropout_rate: float = 0.0  # on the attention probabilities
    feed_forward_dropout_rate: float = 0.0  # after the feed-forward activation
    convolution_kernel_size: int = 5
    feed_forward_expansion_factor: int = 4
    freq_mask_count: int = 2
    freq_mask_max_bins: int = 27
    time_mask_count: int = 10
    time_mask_max_frames: int = 40  # unused: the dynamic maximum below replaces it
    time_mask_max_ratio: float = 0.05
    time_masks_per_frame: float = 0.0
    use_dynamic_time_mask_max_frames: bool = True
    batch_norm_momentum: float = 1 - 0.999
    batch_norm_epsilon: float = 0.001
    use_specaug: bool = True
    attention_temperature: float = 1.0
    activation_function_name: str = "swish"  # or "gelu"
    use_post_layer_norm: bool = True


# What each registered variant changes in the model (ConformerConfig fields).
VARIANT_MODEL_KWARGS: Dict[str, dict] = {
    "librispeech_conformer": {},
    "librispeech_conformer_attention_temperature": {"attention_temperature": 1.6},
    "librispeech_conformer_layernorm": {"use_post_layer_norm": False},
    "librispeech_conformer_gelu": {"activation_function_name": "gelu"},
}


def activation(name: str, approximate_gelu: bool):
    if name == "swish":
        return F.silu
    if name == "gelu":
        return functools.partial(F.gelu, approximate="tanh") if approximate_gelu else F.gelu
    raise ValueError(f"activation_function_name must be 'swish' or 'gelu', got {name!r}")


# --- subsampling -------------------------------------------------------------------------------


class Conv2dSubsampling(nn.Module):
    """3x3 conv with stride 2 and TF "SAME" padding, ReLU; halves time and bins, and the paddings."""

    def __init__(self, input_channels: int, output_channels: int, filter_stride: Tuple[int, int] = (2, 2)):
        super().__init__()
        self.input_channels = input_channels
        self.output_channels = output_channels
        self.filter_stride = filter_stride
        self.kernel = nn.Parameter(nn.init.xavier_uniform_(torch.empty(output_channels, input_channels, 3, 3)))
        self.bias = nn.Parameter(torch.zeros(output_channels))
        # Picks every stride-th padding flag; a buffer (not a constant) only for upstream's state-dict keys.
        self.register_buffer("paddings_kernel", torch.ones(1, 1, 1))

    def same_padding(self, height: int, width: int) -> Tuple[int, int, int, int]:
        """TF "SAME" for a 3x3 window: ceil(n / stride) outputs, the odd pixel of padding at the end."""

        def split(size: int, stride: int) -> Tuple[int, int]:
            total = max(3 - (stride if size % stride == 0 else size % stride), 0)
            return total // 2, total - total // 2

        (top, bottom), (left, right) = split(height, self.filter_stride[0]), split(width, self.filter_stride[1])
        return left, right, top, bottom

    def forward(self, inputs, paddings):
        # inputs: (B, C_in, T, F); paddings: (B, T)
        x = F.pad(inputs, self.same_padding(*inputs.shape[2:]))
        x = F.relu(F.conv2d(x, self.kernel, self.bias, stride=self.filter_stride))  # (B, C_out, ceil(T/2), ceil(F/2))
        stride = self.filter_stride[0]
        odd = -paddings.shape[1] % stride
        padded = F.pad(paddings[:, None, :], (0, odd))  # (B, 1, T rounded up to the stride)
        out_paddings = F.conv1d(padded, self.paddings_kernel, stride=stride).squeeze(1)  # (B, ceil(T/2))
        return x * (1 - out_paddings[:, None, :, None]), out_paddings


class AddPositionalEmbedding(nn.Module):
    """Transformer sinusoids: [sin(t w_i), cos(t w_i)], w_i = 10000^(-i / (dim/2 - 1)), i < dim/2."""

    def __init__(self, min_timescale: int = 1, max_timescale: int = 10_000, embedding_dim: int = 512):
        super().__init__()
        self.embedding_dim = embedding_dim
        num_timescales = embedding_dim // 2
        increment = math.log(max_timescale / min_timescale) / (num_timescales - 1)
        inv_timescales = min_timescale * torch.exp(torch.arange(num_timescales, dtype=torch.float32) * -increment)
        self.register_buffer("inv_timescales", inv_timescales[None, None, :])  # (1, 1, dim/2)

    def forward(self, seq_length: int):
        position = torch.arange(seq_length, dtype=torch.float32, device=self.inv_timescales.device)
        angles = position[None, :, None] * self.inv_timescales  # (1, T, dim/2)
        signal = torch.cat([torch.sin(angles), torch.cos(angles)], dim=2)
        if self.embedding_dim % 2:
            signal = F.pad(signal, (0, 1))
        return signal  # (1, T, dim)


class Subsample(nn.Module):
    """Two stride-2 convs (4x fewer frames), flatten, project to the model width, add positions."""

    def __init__(self, encoder_dim: int = 512, num_bins: int = 80):
        super().__init__()
        self.encoder_dim = encoder_dim
        self.conv1 = Conv2dSubsampling(input_channels=1, output_channels=encoder_dim)
        self.conv2 = Conv2dSubsampling(input_channels=encoder_dim, output_channels=encoder_dim)
        # 80 bins -> 40 -> 20 after the two convs, times 512 channels = 10,240 features per frame.
        self.linear = nn.Linear(encoder_dim * num_bins // 4, encoder_dim)
        self.pos_encode = AddPositionalEmbedding(embedding_dim=encoder_dim)

    def forward(self, inputs, input_paddings, dropout_rate: float):
        # inputs: (B, T0, 80); input_paddings: (B, T0)
        x, paddings = self.conv1(inputs[:, None], input_paddings)  # (B, 512, T0/2, 40)
        x, paddings = self.conv2(x, paddings)  # (B, 512, T, 20)
        batch, channels, frames, bins = x.shape
        x = x.permute(0, 2, 3, 1).reshape(batch, frames, bins * channels)  # (B, T, 10240), bin-major
        x = self.linear(x) + self.pos_encode(frames)  # (B, T, 512)
        return F.dropout(x, dropout_rate, self.training), paddings


# --- conformer block -----------------------------------------------------------------------------


class FeedForwardModule(nn.Module):
    def __init__(self, config: ConformerConfig):
        super().__init__()
        hidden = config.encoder_dim * config.feed_forward_expansion_factor
        self.ln = LayerNorm(config.encoder_dim)
        self.linear1 = nn.Linear(config.encoder_dim, hidden)
        self.dropout1 = nn.Dropout(p=config.feed_forward_dropout_rate)
        self.linear2 = nn.Linear(hidden, config.encoder_dim)
        # Upstream v0.6 uses the tanh GELU here (JAX's default) but the exact one in the conv module.
        self.activation = activation(config.activation_function_name, approximate_gelu=True)

    def forward(self, x, padding_mask, dropout_rate: float):
        # x: (B, T, D); padding_mask: (B, T, 1), 1.0 = valid frame
        x = self.dropout1(self.activation(self.linear1(self.ln(x))))  # (B, T, 4D)
        x = self.linear2(x * padding_mask) * padding_mask  # (B, T, D)
        return F.dropout(x, dropout_rate, self.training)


class QueryScaler(nn.Module):
    """Learned per-dimension query scale, 1.442695041 softplus(scale): 1.0 at init, always positive."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.scale = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return x * (QUERY_SCALE_NORMALISER * F.softplus(self.scale))


class MHSAwithQS(nn.Module):
    """Multi-head self-attention with scaled queries and an output temperature."""

    def __init__(self, config: ConformerConfig):
        super().__init__()
        self.embed_dim = config.encoder_dim
        self.num_heads = config.num_attention_heads
        self.attention_dropout_rate = config.attention_dropout_rate
        self.attention_temperature = config.attention_temperature
        self.in_proj = nn.Linear(config.encoder_dim, 3 * config.encoder_dim)
        self.out_proj = nn.Linear(config.encoder_dim, config.encoder_dim)
        self.qs = QueryScaler(config.encoder_dim // config.num_attention_heads)

    def forward(self, x, key_padding_mask):
        # x: (B, T, D); key_padding_mask: (B, T) bool, True = padding
        batch, frames, _ = x.shape
        q, k, v = (t.view(batch, frames, self.num_heads, -1) for t in self.in_proj(x).split(self.embed_dim, dim=2))
        q = self.qs(q)  # (B, T, H, D/H)
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=~key_padding_mask[:, None, None, :],  # (B, 1, 1, T): True = may attend
            dropout_p=self.attention_dropout_rate if self.training else 0.0,
        )  # (B, H, T, D/H); SDPA's own 1/sqrt(D/H) scale applies on top of qs
        out = out.transpose(1, 2).reshape(batch, frames, self.embed_dim)
        return self.out_proj(out * self.attention_temperature)


class MultiHeadedSelfAttention(nn.Module):
    def __init__(self, config: ConformerConfig):
        super().__init__()
        self.ln = LayerNorm(config.encoder_dim)
        self.self_attention = MHSAwithQS(config)

    def forward(self, x, paddings, dropout_rate: float):
        x = self.self_attention(self.ln(x), key_padding_mask=paddings == 1)
        return F.dropout(x, dropout_rate, self.training)


class BatchNorm(nn.Module):
    """Batch norm over the non-padded frames of (B, T, D); gamma stored as `scale`, used as 1 + scale."""

    _is_custom_batch_norm = True  # update_batch_norm_fn freezes its running statistics (momentum 0)

    def __init__(self, config: ConformerConfig):
        super().__init__()
        dim = config.encoder_dim
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.scale = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("dim", torch.tensor([float(dim)]))  # unused; upstream's state-dict key
        self.momentum = config.batch_norm_momentum  # weight of the new batch in the running averages
        self.epsilon = config.batch_norm_epsilon

    def forward(self, x, paddings):
        # x: (B, T, D); paddings: (B, T)
        valid = 1 - paddings[:, :, None]  # (B, T, 1)
        if self.training:
            count = valid.sum()
            masked = x.masked_fill(valid == 0, 0)
            mean = masked.sum(dim=(0, 1)) / count  # (D,)
            var = ((masked - mean).square() * valid).sum(dim=(0, 1)) / count  # biased, as upstream
            # Rebinding (not in-place) keeps autograd away from the buffers, as upstream's assignment.
            self.running_mean = (1 - self.momentum) * self.running_mean + self.momentum * mean.detach()
            self.running_var = (1 - self.momentum) * self.running_var + self.momentum * var.detach()
        else:
            mean, var = self.running_mean, self.running_var
        out = (x - mean) * ((1 + self.scale) * torch.rsqrt(var + self.epsilon)) + self.bias
        return out.masked_fill(valid == 0, 0)


class ConvolutionBlock(nn.Module):
    def __init__(self, config: ConformerConfig):
        super().__init__()
        dim = config.encoder_dim
        self.ln = LayerNorm(dim)
        self.lin1 = nn.Linear(dim, dim)
        self.lin2 = nn.Linear(dim, dim)
        self.conv1 = nn.Conv1d(
            dim, dim, kernel_size=(config.convolution_kernel_size,), stride=(1,), padding="same", bias=False, groups=dim
        )  # depthwise
        self.bn = BatchNorm(config)
        self.lin3 = nn.Linear(dim, dim)
        self.activation = activation(config.activation_function_name, approximate_gelu=False)

    def forward(self, x, paddings, dropout_rate: float):
        # x: (B, T, D); paddings: (B, T)
        x = self.ln(x)
        x = F.glu(torch.cat([self.lin1(x), self.lin2(x)], dim=2))  # lin1(x) * sigmoid(lin2(x)), (B, T, D)
        x = x * (1 - paddings[:, :, None])
        x = self.conv1(x.transpose(1, 2)).transpose(1, 2)  # over time, per channel
        x = self.lin3(self.activation(self.bn(x, paddings)))
        return F.dropout(x, dropout_rate, self.training)


class ConformerBlock(nn.Module):
    def __init__(self, config: ConformerConfig):
        super().__init__()
        self.ff1 = FeedForwardModule(config)
        self.mhsa = MultiHeadedSelfAttention(config)
        self.conv = ConvolutionBlock(config)
        self.ff2 = FeedForwardModule(config)
        self.ln = LayerNorm(config.encoder_dim) if config.use_post_layer_norm else None

    def forward(self, x, paddings, dropout_rate: float, conv_residual_dropout_rate: float):
        # x: (B, T, D); paddings: (B, T)
        padding_mask = 1 - paddings[:, :, None]
        x = x + 0.5 * self.ff1(x, padding_mask, dropout_rate)
        x = x + self.mhsa(x, paddings, dropout_rate)
        x = x + self.conv(x, paddings, conv_residual_dropout_rate)
        x = x + 0.5 * self.ff2(x, padding_mask, dropout_rate)
        return x if self.ln is None else self.ln(x)


# --- the model ----------------------------------------------------------------------------------


class ConformerEncoderDecoder(nn.Module):
    def __init__(self, config: Optional[ConformerConfig] = None):
        super().__init__()
        self.config = config = config if config is not None else ConformerConfig()
        preprocessing_config = PreprocessorConfig()
        self.preprocessor = MelFilterbankFrontend(
            preprocessing_config, per_bin_mean=LIBRISPEECH_MEAN_VECTOR, per_bin_stddev=LIBRISPEECH_STD_VECTOR
        )
        self.specaug = SpecAugment(
            freq_mask_count=config.freq_mask_count,
            freq_mask_max_bins=config.freq_mask_max_bins,
            time_mask_count=config.time_mask_count,
            time_mask_max_frames=config.time_mask_max_frames,
            time_mask_max_ratio=config.time_mask_max_ratio,
            time_masks_per_frame=config.time_masks_per_frame,
            use_dynamic_time_mask_max_frames=config.use_dynamic_time_mask_max_frames,
        )
        self.subsample = Subsample(encoder_dim=config.encoder_dim, num_bins=preprocessing_config.num_bins)
        self.conformers = nn.ModuleList([ConformerBlock(config) for _ in range(config.num_encoder_layers)])
        self.ln = LayerNorm(config.encoder_dim)
        self.lin = nn.Linear(config.encoder_dim, config.vocab_size)

    def forward(
        self,
        inputs: torch.Tensor,
        input_paddings: torch.Tensor,
        dropout_rate: float = DROPOUT_RATE,
        input_dropout_rate: Optional[float] = None,
        conv_residual_dropout_rate: Optional[float] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        # inputs, input_paddings: (B, S) -> logits (B, T, vocab), output_paddings (B, T)
        if input_dropout_rate is None:
            input_dropout_rate = dropout_rate
        if conv_residual_dropout_rate is None:
            conv_residual_dropout_rate = dropout_rate
        x, paddings = self.preprocessor(inputs, input_paddings)  # (B, T0, 80), (B, T0)
        if self.training and self.config.use_specaug:
            x, paddings = self.specaug(x, paddings)
        x, paddings = self.subsample(x, paddings, input_dropout_rate)  # (B, T, D), (B, T)
        for block in self.conformers:
            x = block(x, paddings, dropout_rate, conv_residual_dropout_rate)
        return self.lin(self.ln(x)), paddings


def conformer(use_specaug: bool = True, **config_kwargs) -> ConformerEncoderDecoder:
    """The reference's Conformer, or a variant (config_kwargs from VARIANT_MODEL_KWARGS), initialised.

    Builds on the current default device and draws from torch's global RNG: seed it first
    (upstream's init_model_fn: torch.random.manual_seed(rng[0])).
    """
    model = ConformerEncoderDecoder(ConformerConfig(use_specaug=use_specaug, **config_kwargs))
    initialize(model)
    return model
