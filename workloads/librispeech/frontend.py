"""The LibriSpeech models' in-model frontend: waveform -> normalised log-mel filterbank (reference §4.6).

Upstream: `MelFilterbankFrontend` in
algoperf/workloads/librispeech_conformer/librispeech_pytorch/preprocessor.py (a port of
init2winit's librispeech_preprocessor.py), which both the Conformer and the DeepSpeech models
build as `self.preprocessor` with the LIBRISPEECH_MEAN_VECTOR / STD_VECTOR below.

API (shared by workloads/librispeech_conformer and workloads/librispeech_deepspeech):

    MelFilterbankFrontend(config: Optional[PreprocessorConfig] = None, use_divide_stream: bool = True,
                          per_bin_mean=LIBRISPEECH_MEAN_VECTOR, per_bin_stddev=LIBRISPEECH_STD_VECTOR)
    .forward(inputs (B, S) float32 samples, input_paddings (B, S) 1.0 = padding)
        -> (features (B, T, 80) float32, paddings (B, T) float32)
    .num_frames(num_samples: int) -> int     T for S samples: (S - 401) // 160 + 1

with PreprocessorConfig() the reference's numbers; per_bin_mean=None / per_bin_stddev=None give
no normalisation (mean 0, stddev 1), upstream's default when the vectors are not passed.

What forward computes, per utterance (B omitted):

    x = inputs * (1 - input_paddings) * 2^-15        int16-range samples to [-1, 1)
    frames of 401 samples every 160 (25 ms + 1 sample for pre-emphasis, 10 ms step; no end
      padding, so T = (S - 401) // 160 + 1: 1998 frames for the 320,000-sample batches)
    HTK pre-emphasis, 401 -> 400 samples: y[0] = 0.03 x[0], y[i] = x[i] - 0.97 x[i-1] for
      i = 1..399 (the 401st sample of each frame is never used)
    * Hann window of 400: periodic, since tf.signal.hann_window is periodic for even lengths
    |rFFT_512|^2: 257 power bins (512 is the next power of two above 401)
    @ (257, 80) mel matrix: tf.signal.linear_to_mel_weight_matrix (HTK mel, triangles
      125-7600 Hz, DC row zero)
    log(max(., 1e-5)), then (. - per_bin_mean) / per_bin_stddev
    paddings: a frame is padding (1) only when every one of its 401 samples is padding

Buffer names and nesting (`stft.window`, `_normalizer_mean`, `_normalizer_stddev`, each shaped
as upstream's) are upstream's, so state dicts keep upstream's keys; the mel matrix, which
upstream rebuilds on every call, is computed once here and is not part of the state dict.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import torch
from torch import nn

# HTK's mel scale, mel = 1127 ln(1 + f / 700), as tf.signal's mel_ops.
MEL_BREAK_FREQUENCY_HERTZ = 700.0
MEL_HIGH_FREQUENCY_Q = 1127.0

# Per-bin mean and standard deviation of the un-normalised log-mel features over LibriSpeech's
# training set: the reference's constants (init2winit's), as float32 values.
LIBRISPEECH_MEAN_VECTOR = (
    -7.6047816276550293, -7.1206226348876953, -6.8864245414733887, -6.8705768585205078, -6.9667720794677734,
    -7.1084094047546387, -6.9528026580810547, -6.783994197845459, -6.6195521354675293, -6.4876265525817871,
    -6.4120659828186035, -6.394047737121582, -6.4244871139526367, -6.3993711471557617, -6.5158271789550781,
    -6.7137999534606934, -6.8476877212524414, -6.9885001182556152, -6.9221386909484863, -7.146148681640625,
    -7.2040400505065918, -7.0537552833557129, -7.3140382766723633, -7.1223249435424805, -7.30251407623291,
    -7.1212143898010254, -7.2425732612609863, -7.1730537414550781, -7.0979413986206055, -7.088747501373291,
    -6.9849910736083984, -6.8787732124328613, -6.7602753639221191, -6.6300945281982422, -6.5145769119262695,
    -6.4245057106018066, -6.356513500213623, -6.31787633895874, -6.2660770416259766, -6.2468328475952148,
    -6.2821526527404785, -6.1908388137817383, -6.2484354972839355, -6.1472640037536621, -6.0924725532531738,
    -6.0171003341674805, -5.9250402450561523, -5.8535833358764648, -5.8209109306335449, -5.8118929862976074,
    -5.80783748626709, -5.7714629173278809, -5.7453732490539551, -5.7705655097961426, -5.7765641212463379,
    -5.7831673622131348, -5.7954087257385254, -5.7994823455810547, -5.8023476600646973, -5.8047118186950684,
    -5.8168182373046875, -5.8844799995422363, -5.9727106094360352, -6.0444660186767578, -6.1284866333007812,
    -6.2257585525512695, -6.3157496452331543, -6.39061164855957, -6.4928598403930664, -6.5498456954956055,
    -6.6054320335388184, -6.6508378982543945, -6.66917610168457, -6.6726889610290527, -6.684234619140625,
    -6.6974577903747559, -6.75471830368042, -6.7949142456054688, -6.8634209632873535, -6.94186544418335,
)
LIBRISPEECH_STD_VECTOR = (
    3.4353282451629639, 3.5962932109832764, 3.7012472152709961, 3.7369205951690674, 3.7535104751586914,
    3.693629264831543, 3.6922497749328613, 3.7641522884368896, 3.8419716358184814, 3.8999848365783691,
    3.9294240474700928, 3.9317409992218018, 3.9139585494995117, 3.9031598567962646, 3.8691999912261963,
    3.8155081272125244, 3.7644970417022705, 3.7099106311798096, 3.6965086460113525, 3.6003766059875488,
    3.5493226051330566, 3.5465121269226074, 3.45003604888916, 3.4712812900543213, 3.4084610939025879,
    3.4408135414123535, 3.4104881286621094, 3.4217638969421387, 3.4312851428985596, 3.4199209213256836,
    3.4305806159973145, 3.4382665157318115, 3.4580366611480713, 3.4817991256713867, 3.4958710670471191,
    3.5036792755126953, 3.5047574043273926, 3.4988734722137451, 3.493056058883667, 3.4822943210601807,
    3.459430456161499, 3.4612770080566406, 3.4559063911437988, 3.4755423069000244, 3.4971549510955811,
    3.5326557159423828, 3.5705199241638184, 3.5920312404632568, 3.596907377243042, 3.5913500785827637,
    3.5865931510925293, 3.5826809406280518, 3.5837743282318115, 3.5895791053771973, 3.5819313526153564,
    3.5837869644165039, 3.5861184597015381, 3.5889589786529541, 3.592214822769165, 3.5939455032348633,
    3.5856630802154541, 3.5884113311767578, 3.5921022891998291, 3.5870490074157715, 3.5806570053100586,
    3.5731067657470703, 3.5617532730102539, 3.54980731010437, 3.5527374744415283, 3.5475366115570068,
    3.5387849807739258, 3.5256178379058838, 3.5031836032867432, 3.4922726154327393, 3.4879646301269531,
    3.4725594520568848, 3.4558389186859131, 3.4351828098297119, 3.4284293651580811, 3.4299170970916748,
)


@dataclasses.dataclass(frozen=True)
class PreprocessorConfig:
    """The reference's frontend settings (upstream's PreprocessorConfig; unused knobs left out)."""

    sample_rate: int = 16_000
    frame_size_ms: float = 25.0
    frame_step_ms: float = 10.0
    compute_energy: bool = True  # |X|^2 rather than |X|
    window_fn: Optional[str] = "HANNING"  # or None: no window
    pad_end: bool = False
    preemph: float = 0.97
    preemph_htk_flavor: bool = True
    num_bins: int = 80
    lower_edge_hertz: float = 125.0
    upper_edge_hertz: float = 7600.0
    output_floor: float = 1e-5  # log floor of the mel energies


def hertz_to_mel(frequencies_hertz):
    """HTK mel of a float or a tensor."""
    if isinstance(frequencies_hertz, torch.Tensor):
        return MEL_HIGH_FREQUENCY_Q * torch.log(1.0 + frequencies_hertz / MEL_BREAK_FREQUENCY_HERTZ)
    return MEL_HIGH_FREQUENCY_Q * math.log(1.0 + frequencies_hertz / MEL_BREAK_FREQUENCY_HERTZ)


def linear_to_mel_weight_matrix(
    num_mel_bins: int = 20,
    num_spectrogram_bins: int = 129,
    sample_rate: float = 8000,
    lower_edge_hertz: float = 125.0,
    upper_edge_hertz: float = 3800.0,
    dtype: torch.dtype = torch.float32,
    device: Optional[torch.device] = None,
) -> torch.Tensor:
    """tf.signal.linear_to_mel_weight_matrix: (num_spectrogram_bins, num_mel_bins) triangle weights.

    The spectrogram bins sit at linspace(0, nyquist, num_spectrogram_bins); num_mel_bins + 2
    edges are evenly spaced in mel between the two edge frequencies, and band m rises linearly
    (in mel) from edge m to edge m+1 and falls to edge m+2. The DC bin gets no weight (HTK).
    """
    if num_mel_bins <= 0:
        raise ValueError(f"num_mel_bins must be positive, got {num_mel_bins}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if not 0.0 <= lower_edge_hertz < upper_edge_hertz:
        raise ValueError(f"need 0 <= lower_edge_hertz < upper_edge_hertz, got {lower_edge_hertz}, {upper_edge_hertz}")
    if upper_edge_hertz > sample_rate / 2:
        raise ValueError(f"upper_edge_hertz {upper_edge_hertz} is above the Nyquist frequency {sample_rate / 2}")

    frequencies = torch.linspace(0.0, sample_rate / 2.0, num_spectrogram_bins, dtype=dtype, device=device)
    bins_mel = hertz_to_mel(frequencies[1:])[:, None]  # (F - 1, 1), DC left out
    edges = torch.linspace(
        hertz_to_mel(float(lower_edge_hertz)),
        hertz_to_mel(float(upper_edge_hertz)),
        num_mel_bins + 2,
        dtype=dtype,
        device=device,
    )
    lower, center, upper = edges[:-2][None, :], edges[1:-1][None, :], edges[2:][None, :]  # (1, M) each
    rising = (bins_mel - lower) / (center - lower)
    falling = (upper - bins_mel) / (upper - center)
    weights = torch.minimum(rising, falling).clamp(min=0.0)  # (F - 1, M)
    return torch.cat([weights.new_zeros(1, num_mel_bins), weights], dim=0)  # (F, M)


def hann_window(length: int, dtype: torch.dtype = torch.float32, device: Optional[torch.device] = None) -> torch.Tensor:
    """tf.signal.hann_window's rule as upstream applies it: periodic for even lengths, symmetric for odd."""
    return torch.hann_window(length, periodic=length % 2 == 0, dtype=dtype, device=device)


def next_power_of_two(x: float) -> int:
    return 1 << max(int(math.ceil(math.log2(x))), 0)


def frame_signal(
    x: torch.Tensor, frame_length: int, frame_step: int, pad_end: bool = False, pad_value: float = 0.0
) -> torch.Tensor:
    """(B, S) -> (B, T, frame_length) windows starting every frame_step samples (tf.signal.frame)."""
    if pad_end:
        x = torch.nn.functional.pad(x, (0, pad_end_length(x.shape[1], frame_step, frame_length)), value=pad_value)
    return x.unfold(1, frame_length, frame_step)


def pad_end_length(num_samples: int, frame_step: int, frame_length: int) -> int:
    """Samples to append so that every start position in the signal begins a frame (pad_end=True)."""
    num_frames = -(-num_samples // frame_step)
    return frame_step * (num_frames - 1) + frame_length - num_samples


class PowerSpectrogram(nn.Module):
    """Framing, pre-emphasis, window and |rFFT|^2 (upstream's SpectrogramFrontend, linear output)."""

    def __init__(self, config: PreprocessorConfig, input_scale_factor: float = 1.0):
        super().__init__()
        self.config = config
        self.input_scale_factor = input_scale_factor
        self.frame_step = int(round(config.sample_rate * config.frame_step_ms / 1000.0))  # 160
        # One sample more than the frame for the pre-emphasis filter's history: 401.
        self.frame_size = int(round(config.sample_rate * config.frame_size_ms / 1000.0)) + 1
        self.fft_size = next_power_of_two(self.frame_size)  # 512
        if config.window_fn is None:
            self.window = None
        elif config.window_fn.upper() == "HANNING":
            # (1, 1, 400, 1): upstream's (batch, frame, sample, channel) layout, kept for its state-dict shape.
            self.register_buffer("window", hann_window(self.frame_size - 1).reshape(1, 1, -1, 1))
        else:
            raise ValueError(f"window_fn must be 'HANNING' or None, got {config.window_fn!r}")

    def num_frames(self, num_samples: int) -> int:
        if self.config.pad_end:
            num_samples += pad_end_length(num_samples, self.frame_step, self.frame_size)
        return (num_samples - self.frame_size) // self.frame_step + 1

    def frame_paddings(self, input_paddings: torch.Tensor) -> torch.Tensor:
        """(B, S) -> (B, T): a frame is padding only if all its samples are (min over the window)."""
        framed = frame_signal(input_paddings, self.frame_size, self.frame_step, self.config.pad_end, pad_value=1.0)
        return framed.min(dim=2).values

    def pre_emphasis(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 401) -> (B, T, 400)."""
        p = self.config.preemph
        if p == 0.0:
            return frames[..., :-1]
        if self.config.preemph_htk_flavor:
            # HTK treats the sample before the first as equal to it: y[0] = (1 - p) x[0].
            return torch.cat([frames[..., :1] * (1.0 - p), frames[..., 1:-1] - p * frames[..., :-2]], dim=-1)
        return frames[..., 1:] - p * frames[..., :-1]

    def forward(self, inputs: torch.Tensor, input_paddings: Optional[torch.Tensor]):
        # inputs: (B, S) samples; input_paddings: (B, S), 1.0 = padding
        output_paddings = None
        if input_paddings is not None:
            inputs = inputs * (1.0 - input_paddings)
            output_paddings = self.frame_paddings(input_paddings)  # (B, T)
        frames = frame_signal(inputs * self.input_scale_factor, self.frame_size, self.frame_step, self.config.pad_end)
        signal = self.pre_emphasis(frames)  # (B, T, 400)
        if self.window is not None:
            signal = signal * self.window.reshape(-1)
        spectrum = torch.fft.rfft(signal, n=self.fft_size, dim=-1).abs()  # (B, T, 257)
        if self.config.compute_energy:
            spectrum = spectrum.square()
        return spectrum, output_paddings


class MelFilterbankFrontend(nn.Module):
    """Waveform -> per-bin normalised log-mel features and frame paddings (see the module docstring)."""

    def __init__(
        self,
        config: Optional[PreprocessorConfig] = None,
        use_divide_stream: bool = True,
        per_bin_mean: Optional[Sequence[float]] = LIBRISPEECH_MEAN_VECTOR,
        per_bin_stddev: Optional[Sequence[float]] = LIBRISPEECH_STD_VECTOR,
    ):
        super().__init__()
        self.config = config = config if config is not None else PreprocessorConfig()
        # The stored audio holds int16 sample values; 2^-15 maps them to [-1, 1).
        self.stft = PowerSpectrogram(config, input_scale_factor=2.0**-15 if use_divide_stream else 1.0)
        mean = [0.0] * config.num_bins if per_bin_mean is None else list(per_bin_mean)
        stddev = [1.0] * config.num_bins if per_bin_stddev is None else list(per_bin_stddev)
        if len(mean) != config.num_bins or len(stddev) != config.num_bins:
            raise ValueError(f"per-bin mean and stddev need {config.num_bins} values, got {len(mean)} and {len(stddev)}")
        # (1, 1, 80, 1): upstream's shapes, for its state-dict keys and shapes.
        self.register_buffer("_normalizer_mean", torch.tensor(mean, dtype=torch.float32).reshape(1, 1, -1, 1))
        self.register_buffer("_normalizer_stddev", torch.tensor(stddev, dtype=torch.float32).reshape(1, 1, -1, 1))
        mel = linear_to_mel_weight_matrix(
            num_mel_bins=config.num_bins,
            num_spectrogram_bins=self.stft.fft_size // 2 + 1,
            sample_rate=config.sample_rate,
            lower_edge_hertz=config.lower_edge_hertz,
            upper_edge_hertz=config.upper_edge_hertz,
        )
        self.register_buffer("mel_weights", mel, persistent=False)  # (257, 80)

    def num_frames(self, num_samples: int) -> int:
        """Frames T the forward gives for num_samples samples (1998 for 320,000)."""
        return self.stft.num_frames(num_samples)

    def forward(self, inputs: torch.Tensor, input_paddings: Optional[torch.Tensor]):
        # inputs: (B, S); input_paddings: (B, S)
        spectrum, paddings = self.stft(inputs, input_paddings)  # (B, T, 257), (B, T)
        mel = spectrum @ self.mel_weights  # (B, T, 80)
        log_mel = torch.log(mel.clamp(min=self.config.output_floor))
        mean = self._normalizer_mean.reshape(-1)
        stddev = self._normalizer_stddev.reshape(-1)
        return (log_mel - mean) / stddev, paddings
