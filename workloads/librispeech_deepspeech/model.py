"""The LibriSpeech DeepSpeech model (Amodei et al. 2015, arXiv:1512.02595) as in the reference (§4.7).

Upstream: algoperf/workloads/librispeech_deepspeech/librispeech_pytorch/models.py, configured by
librispeech_deepspeech/librispeech_pytorch/workload.py. 18,393,600 parameters.

    (B, N) audio samples, paddings (B, N) (1.0 = padding)
      preprocessor: log-mel frontend, 25 ms frames every 10 ms       (B, T, 80)   T = (N - 401) // 160 + 1
      specaug (training only): 2 frequency masks, 10 time masks      (B, T, 80)
      subsample:
        conv1, conv2: 3x3 stride-2 convs, TF "SAME" padding, 1 -> 512 -> 512 channels,
          ReLU, padded frames zeroed                                 (B, 512, T', 20)   T' = ceil(ceil(T / 2) / 2)
        channels last, flattened; lin 10,240 -> 512; dropout         (B, T', 512)
      lstms: 6 x  x + lstm(norm(x)), a bidirectional LSTM (256 per direction) on packed
        sequences, so padded frames never reach the real ones       (B, T', 512)
      ffns: 3 x  x + dropout(mask(ReLU(lin(norm(x))))), 512 -> 512   (B, T', 512)
      ln: decoder LayerNorm                                          (B, T', 512)
      lin: 512 -> 1024 (the SentencePiece vocabulary; CTC blank = 0)
    (B, T', 1024) logits, paddings (B, T') (every other frame's padding, twice)

`norm` is a BatchNorm over the real (non-padded) frames of the batch, its statistics summed across DDP
ranks, or a LayerNorm (`layernorm_everywhere`). Counts: conv1 5,120; conv2 2,359,808; subsample.lin
5,243,392; per LSTM block 2 directions x (1024 x (512 + 256) + 2 x 1024 biases) = 1,576,960 plus its
norm's 1,024; per FFN 262,656 + 1,024; ln 1,024; lin 525,312. The variants change
(VARIANT_MODEL_KWARGS):
  * librispeech_deepspeech_tanh: tanh instead of ReLU, in the subsampling convs and the FFNs;
  * librispeech_deepspeech_no_resnet: x = block(x), no residual connections;
  * librispeech_deepspeech_norm_and_spec_aug: LayerNorm in every block instead of BatchNorm, no
    decoder LayerNorm (18,392,576 parameters), SpecAugment with 4 frequency and 15 time masks.

Module and parameter names are upstream's: `subsample.conv1.kernel` / `.bias`, `subsample.lin`,
`lstms.<i>.bn_normalization_layer.{weight,bias}` (LayerNorm: `normalization_layer.{scale,bias}`),
`lstms.<i>.lstm.{weight,bias}_{ih,hh}_l0[_reverse]`, `ffns.<i>.bn_normalization_layer`, `ffns.<i>.lin`,
`ln.{scale,bias}`, `lin`. The parameter-type rules read 'conv', 'bn' and 'norm'/'ln' in them (the LSTM
and Linear weights are plain WEIGHT), and `is_output_params` names `lin.weight` and `lin.bias`.

Initialisation, in upstream's order so that one seed gives upstream's initial weights (`deepspeech`):
construction (conv kernels xavier-uniform with zero biases, LSTMs torch's U(-1/16, 1/16), the final
`lin` torch's default; norms scale 0, used as 1 + scale), upstream's dummy batch drawn from the RNG, the
lazy Linears materialised in forward order (subsample.lin, then each FFN's; torch's default init), then
`initialize`: xavier-uniform weights and zero biases for every Linear. Upstream materialises the lazy
layers by a forward pass on a (2, 320000) batch; `materialize_lazy_layers` feeds each one a single row
of its known width instead (10,240 = 512 channels x 20 bins, or 512), which fixes the same shapes and
draws the same random numbers in the same order, without its ~60 GMAC forward.

Dropout is functional, its rate an argument of forward, as upstream v0.6's model: `dropout_rate`
(default DROPOUT_RATE, 0.1) after the subsampling Linear and at the end of each FFN;
`input_dropout_rate` (None: the same) sets the first separately, as v0.5's input_dropout_rate
(aux_dropout_rate) did.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from workloads.librispeech.layers import LayerNorm, initialize

DROPOUT_RATE = 0.1  # upstream's default when model_fn gets no rate
MAX_INPUT_LENGTH = 320_000  # samples (20 s at 16 kHz), the longest utterance kept; upstream's dummy batch length
BATCH_NORM_MOMENTUM = 1 - 0.999  # weight of each new batch statistic in the running averages
BATCH_NORM_EPSILON = 1e-3
NUM_MEL_BINS = 80  # features per frame from the frontend
SUBSAMPLING_STRIDE = 2  # each subsampling conv halves frames and frequency bins
SUBSAMPLING_KERNEL = 3

# SpecAugment's settings, shared with the Conformer (reference §4.6); the variants change the counts.
SPEC_AUGMENT_KWARGS = dict(
    freq_mask_max_bins=27,
    time_mask_max_frames=40,  # unused: the dynamic bound, 5% of each utterance, applies instead
    time_mask_max_ratio=0.05,
    time_masks_per_frame=0.0,
    use_dynamic_time_mask_max_frames=True,
)

# What each registered variant changes in the model (keyword arguments of `deepspeech`).
VARIANT_MODEL_KWARGS: Dict[str, dict] = {
    "librispeech_deepspeech": {},
    "librispeech_deepspeech_tanh": {"use_tanh": True},
    "librispeech_deepspeech_no_resnet": {"enable_residual_connections": False},
    "librispeech_deepspeech_norm_and_spec_aug": {
        "layernorm_everywhere": True,
        "enable_decoder_layer_norm": False,
        "freq_mask_count": 4,
        "time_mask_count": 15,
    },
}


def _activation(x: torch.Tensor, use_tanh: bool) -> torch.Tensor:
    return torch.tanh(x) if use_tanh else F.relu(x)


def subsampled_length(length: int) -> int:
    """Frames (or bins) after one stride-2 "SAME" conv: ceil(length / 2)."""
    return -(-length // SUBSAMPLING_STRIDE)


def _same_padding(length: int) -> Tuple[int, int]:
    """TensorFlow's "SAME" padding (before, after) of one axis for the 3x3 stride-2 conv; the odd one goes after."""
    remainder = length % SUBSAMPLING_STRIDE
    total = max(SUBSAMPLING_KERNEL - (SUBSAMPLING_STRIDE if remainder == 0 else remainder), 0)
    return total // 2, total - total // 2


def _process_group_active() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class BatchNorm(nn.Module):
    """BatchNorm over the real frames of a (B, T, D) batch; padded frames neither count nor get output.

    In training the mean and variance are taken over every non-padded frame of the batch and, when a
    process group is initialised (DDP), of every rank's batch: the sums and the frame count go through
    `torch.distributed.nn.all_reduce`, which gradients pass back through, as upstream. The running
    averages move by `momentum` (0 freezes them: pytorch_utils.update_batch_norm_fn). The scale is
    stored as an offset from 1 (`weight`, init 0).
    """

    _is_custom_batch_norm = True  # for pytorch_utils.update_batch_norm_fn

    def __init__(self, dim: int, momentum: float = BATCH_NORM_MOMENTUM, epsilon: float = BATCH_NORM_EPSILON) -> None:
        super().__init__()
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.weight = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.momentum = momentum
        self.epsilon = epsilon

    def forward(self, inputs: torch.Tensor, paddings: torch.Tensor) -> torch.Tensor:
        # inputs: (B, T, D); paddings: (B, T) -> (B, T, D), zero on padded frames
        padded = (paddings == 1)[:, :, None]  # (B, T, 1)
        if self.training:
            real = inputs.masked_fill(padded, 0.0)
            count = (~padded).sum().to(inputs.dtype)  # real frames
            total = real.sum(dim=(0, 1))  # (D,)
            synced = _process_group_active()
            if synced:
                import torch.distributed.nn as dist_nn

                total = dist_nn.all_reduce(total)
                count = dist_nn.all_reduce(count)
            mean = total / count
            squares = (real - mean).square().masked_fill(padded, 0.0).sum(dim=(0, 1))
            if synced:
                squares = dist_nn.all_reduce(squares)
            var = squares / count  # biased, as the normalisation uses it
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean)
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * var)
        else:
            mean, var = self.running_mean, self.running_var
        normed = (inputs - mean) * ((1 + self.weight) * torch.rsqrt(var + self.epsilon)) + self.bias
        return normed.masked_fill(padded, 0.0)


class Conv2dSubsampling(nn.Module):
    """3x3 conv with stride 2 and "SAME" padding, then ReLU or tanh; halves frames and bins, zeroes padded frames."""

    def __init__(self, input_channels: int, output_channels: int, use_tanh: bool = False) -> None:
        super().__init__()
        shape = (output_channels, input_channels, SUBSAMPLING_KERNEL, SUBSAMPLING_KERNEL)
        self.kernel = nn.Parameter(nn.init.xavier_uniform_(torch.empty(shape)))
        self.bias = nn.Parameter(torch.zeros(output_channels))
        self.use_tanh = use_tanh

    def forward(self, inputs: torch.Tensor, paddings: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        # inputs: (B, C_in, T, F); paddings: (B, T) -> (B, C_out, ceil(T/2), ceil(F/2)), (B, ceil(T/2))
        time_before, time_after = _same_padding(inputs.shape[2])
        freq_before, freq_after = _same_padding(inputs.shape[3])
        x = F.pad(inputs, (freq_before, freq_after, time_before, time_after))
        x = _activation(F.conv2d(x, self.kernel, self.bias, stride=SUBSAMPLING_STRIDE), self.use_tanh)
        # Output frame t is centred on input frame 2t and inherits its padding (upstream's stride-2 conv1d
        # with a unit kernel over the paddings).
        out_paddings = paddings[:, ::SUBSAMPLING_STRIDE]
        return x * (1 - out_paddings)[:, None, :, None], out_paddings


class Subsample(nn.Module):
    """Two subsampling convs, then the (channels x bins) of each frame projected to encoder_dim; dropout."""

    def __init__(self, encoder_dim: int, use_tanh: bool = False) -> None:
        super().__init__()
        self.conv1 = Conv2dSubsampling(1, encoder_dim, use_tanh)
        self.conv2 = Conv2dSubsampling(encoder_dim, encoder_dim, use_tanh)
        self.lin = nn.LazyLinear(encoder_dim)  # in-features: encoder_dim x the subsampled bins

    def forward(self, inputs: torch.Tensor, paddings: torch.Tensor, dropout_rate: float):
        # inputs: (B, T, F); paddings: (B, T) -> (B, T', encoder_dim), (B, T')
        x, paddings = self.conv1(inputs[:, None], paddings)  # (B, C, T/2, F/2)
        x, paddings = self.conv2(x, paddings)  # (B, C, T', F')
        batch, channels, frames, bins = x.shape
        x = x.permute(0, 2, 3, 1).reshape(batch, frames, bins * channels)  # (B, T', F' C), channels fastest
        return F.dropout(self.lin(x), dropout_rate, self.training), paddings


class _NormalizedBlock(nn.Module):
    """A block that starts with a masked BatchNorm or a LayerNorm, under upstream's attribute names."""

    def __init__(self, dim: int, layernorm_everywhere: bool, batch_norm_momentum: float,
                 batch_norm_epsilon: float) -> None:
        super().__init__()
        self.layernorm_everywhere = layernorm_everywhere
        if layernorm_everywhere:
            self.normalization_layer = LayerNorm(dim)
        else:
            self.bn_normalization_layer = BatchNorm(dim, batch_norm_momentum, batch_norm_epsilon)

    def normalize(self, x: torch.Tensor, paddings: torch.Tensor) -> torch.Tensor:
        if self.layernorm_everywhere:
            return self.normalization_layer(x)
        return self.bn_normalization_layer(x, paddings)


class BatchRNN(_NormalizedBlock):
    """norm -> LSTM over the real frames only (packed sequences); padded frames come out as zeros."""

    def __init__(self, dim: int, layernorm_everywhere: bool = False, bidirectional: bool = True,
                 batch_norm_momentum: float = BATCH_NORM_MOMENTUM,
                 batch_norm_epsilon: float = BATCH_NORM_EPSILON) -> None:
        super().__init__(dim, layernorm_everywhere, batch_norm_momentum, batch_norm_epsilon)
        # Both directions together keep the width: dim / 2 each.
        hidden_size = dim // 2 if bidirectional else dim
        self.lstm = nn.LSTM(input_size=dim, hidden_size=hidden_size, bidirectional=bidirectional, batch_first=True)

    def forward(self, inputs: torch.Tensor, paddings: torch.Tensor) -> torch.Tensor:
        # inputs: (B, T, D); paddings: (B, T) -> (B, T, D)
        x = self.normalize(inputs, paddings)
        # Packing wants the lengths on the CPU (a device sync, as upstream). An utterance with no real
        # frame (a batch-padding row) runs one frame instead of stopping the batch: its output is all
        # padding anyway.
        lengths = (1 - paddings).sum(dim=1).to(torch.int64).clamp(min=1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        outputs, _ = self.lstm(packed)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=x.shape[1])  # zeros past each length
        return outputs


class FeedForwardModule(_NormalizedBlock):
    """norm -> Linear -> ReLU or tanh -> zero the padded frames -> dropout."""

    def __init__(self, dim: int, layernorm_everywhere: bool = False, use_tanh: bool = False,
                 batch_norm_momentum: float = BATCH_NORM_MOMENTUM,
                 batch_norm_epsilon: float = BATCH_NORM_EPSILON) -> None:
        super().__init__(dim, layernorm_everywhere, batch_norm_momentum, batch_norm_epsilon)
        self.lin = nn.LazyLinear(dim)  # lazy as upstream's, so the RNG draws come in upstream's order
        self.use_tanh = use_tanh

    def forward(self, inputs: torch.Tensor, paddings: torch.Tensor, dropout_rate: float) -> torch.Tensor:
        # inputs: (B, T, D); paddings: (B, T) -> (B, T, D)
        x = _activation(self.lin(self.normalize(inputs, paddings)), self.use_tanh)
        x = x * (1 - paddings)[:, :, None]
        return F.dropout(x, dropout_rate, self.training)


def default_frontend() -> nn.Module:
    """The reference's log-mel frontend with LibriSpeech's per-bin normalisation."""
    from workloads.librispeech.frontend import MelFilterbankFrontend

    return MelFilterbankFrontend()


def default_spec_augment(freq_mask_count: int, time_mask_count: int) -> nn.Module:
    from workloads.librispeech.spec_augment import SpecAugment

    return SpecAugment(freq_mask_count=freq_mask_count, time_mask_count=time_mask_count, **SPEC_AUGMENT_KWARGS)


class DeepspeechEncoderDecoder(nn.Module):
    """Audio -> CTC logits over the vocabulary, with the frame paddings (see the module docstring).

    `frontend` maps (B, N) audio and paddings to (B, T, num_mel_bins) features and (B, T) paddings
    (default: workloads/librispeech/frontend.py's MelFilterbankFrontend); `specaug` masks the features
    in training when `use_specaug` (default: workloads/librispeech/spec_augment.py's SpecAugment with
    `freq_mask_count` and `time_mask_count`, which configure only that default). Build through
    `deepspeech`, which also materialises and initialises the lazy layers.
    """

    def __init__(
        self,
        frontend: Optional[nn.Module] = None,
        specaug: Optional[nn.Module] = None,
        *,
        vocab_size: int = 1024,
        encoder_dim: int = 512,
        num_lstm_layers: int = 6,
        num_ffn_layers: int = 3,
        num_mel_bins: int = NUM_MEL_BINS,
        use_specaug: bool = True,
        freq_mask_count: int = 2,
        time_mask_count: int = 10,
        use_tanh: bool = False,
        enable_residual_connections: bool = True,
        enable_decoder_layer_norm: bool = True,
        layernorm_everywhere: bool = False,
        bidirectional: bool = True,
        batch_norm_momentum: float = BATCH_NORM_MOMENTUM,
        batch_norm_epsilon: float = BATCH_NORM_EPSILON,
    ) -> None:
        super().__init__()
        self.use_specaug = use_specaug
        self.enable_residual_connections = enable_residual_connections
        self.encoder_dim = encoder_dim
        # Width of a subsampled frame, the first lazy Linear's in-features: channels x twice-halved bins.
        self.subsampled_features = encoder_dim * subsampled_length(subsampled_length(num_mel_bins))
        # Registered in upstream's order (specaug, preprocessor, subsample, lstms, ffns, ln, lin).
        self.specaug = specaug if specaug is not None else default_spec_augment(freq_mask_count, time_mask_count)
        self.preprocessor = frontend if frontend is not None else default_frontend()
        self.subsample = Subsample(encoder_dim, use_tanh)
        norm_kwargs = dict(batch_norm_momentum=batch_norm_momentum, batch_norm_epsilon=batch_norm_epsilon)
        self.lstms = nn.ModuleList(
            [BatchRNN(encoder_dim, layernorm_everywhere, bidirectional, **norm_kwargs) for _ in range(num_lstm_layers)]
        )
        self.ffns = nn.ModuleList(
            [FeedForwardModule(encoder_dim, layernorm_everywhere, use_tanh, **norm_kwargs)
             for _ in range(num_ffn_layers)]
        )
        self.ln = LayerNorm(encoder_dim) if enable_decoder_layer_norm else None
        self.lin = nn.Linear(encoder_dim, vocab_size)

    def materialize_lazy_layers(self) -> None:
        """Fixes the lazy Linears' in-features in forward order (subsample.lin, then each FFN's), as a
        forward pass would, by feeding each a single zero row of its input width."""
        device = self.lin.weight.device
        with torch.no_grad():
            self.subsample.lin(torch.zeros(1, self.subsampled_features, device=device))
            for ffn in self.ffns:
                ffn.lin(torch.zeros(1, self.encoder_dim, device=device))

    def forward(
        self,
        inputs: torch.Tensor,
        input_paddings: torch.Tensor,
        dropout_rate: float = DROPOUT_RATE,
        input_dropout_rate: Optional[float] = None,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        # inputs: (B, N) samples; input_paddings: (B, N), 1.0 = padding -> (B, T', vocab), (B, T')
        if input_dropout_rate is None:
            input_dropout_rate = dropout_rate
        outputs, paddings = self.preprocessor(inputs, input_paddings)  # (B, T, F), (B, T)
        if self.training and self.use_specaug:
            outputs, paddings = self.specaug(outputs, paddings)
        outputs, paddings = self.subsample(outputs, paddings, input_dropout_rate)  # (B, T', D), (B, T')
        for lstm in self.lstms:
            branch = lstm(outputs, paddings)
            outputs = outputs + branch if self.enable_residual_connections else branch
        for ffn in self.ffns:
            branch = ffn(outputs, paddings, dropout_rate)
            outputs = outputs + branch if self.enable_residual_connections else branch
        if self.ln is not None:
            outputs = self.ln(outputs)
        return self.lin(outputs), paddings  # (B, T', vocab), (B, T')


def deepspeech(frontend: Optional[nn.Module] = None, specaug: Optional[nn.Module] = None,
               **kwargs) -> DeepspeechEncoderDecoder:
    """The reference's DeepSpeech, or a variant (VARIANT_MODEL_KWARGS), initialised as upstream's
    init_model_fn does after seeding, and like it returned in eval mode."""
    model = DeepspeechEncoderDecoder(frontend, specaug, **kwargs).eval()
    # Upstream's dummy batch, drawn for its place in the random stream only: the lazy layers' default
    # inits and the xavier draws after it then come out as upstream's.
    torch.randn((2, MAX_INPUT_LENGTH), device=model.lin.weight.device)
    model.materialize_lazy_layers()
    initialize(model)
    return model
