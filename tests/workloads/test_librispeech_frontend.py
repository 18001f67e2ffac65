"""The shared LibriSpeech frontend (log-mel features) and SpecAugment, against hand-worked values and numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from workloads.librispeech.frontend import (
    LIBRISPEECH_MEAN_VECTOR,
    LIBRISPEECH_STD_VECTOR,
    MelFilterbankFrontend,
    hertz_to_mel,
    linear_to_mel_weight_matrix,
)
from workloads.librispeech.spec_augment import SpecAugment

SAMPLE_RATE = 16_000
FRAME, STEP, FFT = 401, 160, 512  # 25 ms + 1 pre-emphasis sample, 10 ms, next power of two


def mel(f):
    return 1127.0 * np.log(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def numpy_mel_matrix(num_bins=80, num_fft_bins=257, low=125.0, high=7600.0):
    """tf.signal.linear_to_mel_weight_matrix written out bin by bin, in float64."""
    bin_mel = mel(np.linspace(0.0, SAMPLE_RATE / 2, num_fft_bins))
    edges = np.linspace(mel(low), mel(high), num_bins + 2)
    weights = np.zeros((num_fft_bins, num_bins))
    for f in range(1, num_fft_bins):  # the DC bin gets no weight
        for m in range(num_bins):
            left, center, right = edges[m], edges[m + 1], edges[m + 2]
            up = (bin_mel[f] - left) / (center - left)
            down = (right - bin_mel[f]) / (right - center)
            weights[f, m] = max(0.0, min(up, down))
    return weights


def numpy_frontend(audio, paddings, normalise=True):
    """The reference pipeline in float64 numpy, from its description (frontend docstring, reference §4.6)."""
    x = audio.astype(np.float64) * (1.0 - paddings) * 2.0**-15
    num_frames = (x.shape[1] - FRAME) // STEP + 1
    starts = STEP * np.arange(num_frames)
    frames = np.stack([x[:, s:s + FRAME] for s in starts], axis=1)  # (B, T, 401)
    emphasised = np.concatenate([0.03 * frames[..., :1], frames[..., 1:400] - 0.97 * frames[..., :399]], axis=-1)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)  # periodic Hann
    power = np.abs(np.fft.rfft(emphasised * window, FFT, axis=-1)) ** 2  # (B, T, 257)
    features = np.log(np.maximum(power @ numpy_mel_matrix(), 1e-5))
    if normalise:
        features = (features - np.array(LIBRISPEECH_MEAN_VECTOR)) / np.array(LIBRISPEECH_STD_VECTOR)
    frame_paddings = np.stack([paddings[:, s:s + FRAME].min(axis=1) for s in starts], axis=1)
    return features, frame_paddings


@pytest.fixture(scope="module")
def frontend():
    return MelFilterbankFrontend()


# --- constants and structure ---------------------------------------------------------------------


def test_normalisation_constants_are_the_references():
    assert len(LIBRISPEECH_MEAN_VECTOR) == len(LIBRISPEECH_STD_VECTOR) == 80
    # First, a middle and the last value of each vector, as upstream's preprocessor.py lists them.
    assert LIBRISPEECH_MEAN_VECTOR[0] == -7.6047816276550293
    assert LIBRISPEECH_MEAN_VECTOR[40] == -6.2821526527404785
    assert LIBRISPEECH_MEAN_VECTOR[79] == -6.94186544418335
    assert LIBRISPEECH_STD_VECTOR[0] == 3.4353282451629639
    assert LIBRISPEECH_STD_VECTOR[40] == 3.459430456161499
    assert LIBRISPEECH_STD_VECTOR[79] == 3.4299170970916748
    # Every value is a float32 number printed in full (a mistyped digit would almost never be).
    for value in (*LIBRISPEECH_MEAN_VECTOR, *LIBRISPEECH_STD_VECTOR):
        assert float(np.float32(value)) == value


def test_buffers_keep_upstreams_state_dict_keys_and_shapes(frontend):
    shapes = {k: tuple(v.shape) for k, v in frontend.state_dict().items()}
    assert shapes == {"_normalizer_mean": (1, 1, 80, 1), "_normalizer_stddev": (1, 1, 80, 1), "stft.window": (1, 1, 400, 1)}
    assert frontend.stft.frame_size == FRAME and frontend.stft.frame_step == STEP and frontend.stft.fft_size == FFT


def test_window_is_the_periodic_hann_of_400(frontend):
    n = torch.arange(400, dtype=torch.float64)
    expected = 0.5 - 0.5 * torch.cos(2 * math.pi * n / 400)  # periodic: w[0] = 0, w[200] = 1, no trailing 0
    torch.testing.assert_close(frontend.stft.window.reshape(-1).double(), expected, atol=1e-6, rtol=0)


# --- the mel matrix ------------------------------------------------------------------------------


def test_mel_matrix_matches_the_tf_formula():
    torch_matrix = linear_to_mel_weight_matrix(80, 257, SAMPLE_RATE, 125.0, 7600.0).double().numpy()
    np.testing.assert_allclose(torch_matrix, numpy_mel_matrix(), atol=2e-5)
    assert torch_matrix.shape == (257, 80)
    assert (torch_matrix[0] == 0).all()  # DC excluded (HTK)
    # 125 Hz starts band 0: FFT bins below it (k * 31.25 Hz, k < 4) get nothing, bin 4 sits on the edge
    # (zero up to float32 rounding), bin 5 is inside; 7600 Hz ends band 79.
    assert (torch_matrix[:4] == 0).all() and abs(torch_matrix[4]).max() < 1e-5 and torch_matrix[5, 0] > 0.1
    assert (torch_matrix[int(7600 / 31.25) + 1:] == 0).all()


def test_mel_scale_is_htk():
    assert hertz_to_mel(700.0) == pytest.approx(1127.0 * math.log(2.0))
    assert float(hertz_to_mel(torch.tensor(700.0))) == pytest.approx(1127.0 * math.log(2.0), rel=1e-6)


def test_mel_matrix_rejects_bad_edges():
    with pytest.raises(ValueError, match="Nyquist"):
        linear_to_mel_weight_matrix(80, 257, SAMPLE_RATE, 125.0, 9000.0)
    with pytest.raises(ValueError, match="lower_edge_hertz"):
        linear_to_mel_weight_matrix(80, 257, SAMPLE_RATE, 7600.0, 125.0)


# --- framing, pre-emphasis, energy ------------------------------------------------------------


@pytest.mark.parametrize("num_samples,num_frames", [(401, 1), (560, 1), (561, 2), (16_000, 98), (320_000, 1998)])
def test_frame_count(frontend, num_samples, num_frames):
    # T = (S - 401) // 160 + 1: frames start every 160 samples while a whole 401-sample frame fits.
    assert frontend.num_frames(num_samples) == num_frames
    features, paddings = frontend(torch.zeros(1, num_samples), torch.zeros(1, num_samples))
    assert features.shape == (1, num_frames, 80) and paddings.shape == (1, num_frames)


def test_constant_signal_hand_worked_energy(frontend):
    # A constant c: HTK pre-emphasis gives 0.03 c' at every one of the 400 samples (c' = c 2^-15, the
    # first as (1 - 0.97) c', the others c' - 0.97 c'); the periodic Hann of 400 sums to 200; so the DC
    # power bin is (0.03 c' 200)^2 = (6 c')^2.
    c = 16_384.0  # c' = 0.5
    power, _ = frontend.stft(torch.full((1, 1000), c), None)
    assert power.shape == (1, 4, 257)
    torch.testing.assert_close(power[..., 0], torch.full((1, 4), 9.0), rtol=1e-5, atol=0)


def test_the_401st_sample_of_a_frame_is_not_used(frontend):
    # Frame 0 covers samples 0..400 but HTK pre-emphasis reads only 0..399.
    audio = torch.randn(1, 800) * 1000
    changed = audio.clone()
    changed[0, 400] += 5000.0
    before, _ = frontend.stft(audio, None)
    after, _ = frontend.stft(changed, None)
    torch.testing.assert_close(before[:, 0], after[:, 0], rtol=0, atol=0)
    assert not torch.equal(before[:, 1], after[:, 1])  # frame 1 (samples 160..560) does use it


@pytest.mark.parametrize("bin_index", [30, 50, 70])
def test_a_sine_lands_in_its_mel_bin(bin_index):
    raw = MelFilterbankFrontend(per_bin_mean=None, per_bin_stddev=None)
    centers = np.linspace(mel(125.0), mel(7600.0), 82)[1:-1]
    frequency = 700.0 * (math.exp(centers[bin_index] / 1127.0) - 1.0)  # the band's peak
    t = torch.arange(8000, dtype=torch.float64) / SAMPLE_RATE
    audio = (10_000 * torch.sin(2 * math.pi * frequency * t)).float()[None]
    features, _ = raw(audio, torch.zeros_like(audio))
    assert (features.argmax(dim=-1) == bin_index).all()


def test_silence_sits_on_the_log_floor(frontend):
    features, _ = frontend(torch.zeros(1, 1000), torch.zeros(1, 1000))
    expected = (math.log(1e-5) - torch.tensor(LIBRISPEECH_MEAN_VECTOR)) / torch.tensor(LIBRISPEECH_STD_VECTOR)
    torch.testing.assert_close(features[0], expected.expand(4, 80), rtol=1e-6, atol=1e-6)


# --- paddings -----------------------------------------------------------------------------------


def test_frame_is_padding_only_when_all_its_samples_are(frontend):
    paddings = torch.zeros(1, 2000)
    paddings[0, 1000:] = 1.0  # samples 1000.. padded
    _, frame_paddings = frontend(torch.randn(1, 2000), paddings)
    # Frame t covers [160 t, 160 t + 401): all padding iff 160 t >= 1000, i.e. t >= 7; 10 frames in all.
    assert frame_paddings.tolist() == [[0.0] * 7 + [1.0] * 3]


def test_padded_samples_do_not_reach_the_features(frontend):
    audio = torch.randn(2, 3000) * 3000
    paddings = torch.zeros(2, 3000)
    paddings[1, 1700:] = 1.0
    noisy = audio.clone()
    noisy[1, 1700:] = 30_000.0
    torch.testing.assert_close(frontend(audio, paddings)[0], frontend(noisy, paddings)[0], rtol=0, atol=0)


def test_whole_pipeline_matches_numpy(frontend):
    generator = torch.Generator().manual_seed(0)
    audio = torch.randn(2, 4000, generator=generator) * 4000  # int16-like amplitudes
    paddings = torch.zeros(2, 4000)
    paddings[1, 2500:] = 1.0
    features, frame_paddings = frontend(audio, paddings)
    expected, expected_paddings = numpy_frontend(audio.double().numpy(), paddings.double().numpy())
    assert features.shape == (2, 23, 80)
    np.testing.assert_allclose(features.double().numpy(), expected, atol=2e-4, rtol=0)
    np.testing.assert_array_equal(frame_paddings.numpy(), expected_paddings)


# --- SpecAugment --------------------------------------------------------------------------------

REFERENCE_SPECAUG = dict(
    freq_mask_count=2,
    freq_mask_max_bins=27,
    time_mask_count=10,
    time_mask_max_frames=40,
    time_mask_max_ratio=0.05,
    time_masks_per_frame=0.0,
    use_dynamic_time_mask_max_frames=True,
)


def spans(keep_row):
    """[start, stop) of each run of zeros in a 1-D 0/1 tensor."""
    runs, start = [], None
    for i, value in enumerate(keep_row.tolist() + [1.0]):
        if value == 0 and start is None:
            start = i
        elif value != 0 and start is not None:
            runs.append((start, i))
            start = None
    return runs


def test_specaugment_is_identity_in_eval_mode():
    augment = SpecAugment(**REFERENCE_SPECAUG).eval()
    features = torch.randn(2, 50, 80)
    out, paddings = augment(features, torch.zeros(2, 50))
    assert out is features


def test_specaugment_zeroes_whole_frames_and_whole_bins_inside_the_valid_frames():
    torch.manual_seed(0)
    augment = SpecAugment(**REFERENCE_SPECAUG)
    paddings = torch.zeros(4, 500)
    paddings[1, 300:] = 1.0
    paddings[2, 40:] = 1.0
    out, out_paddings = augment(torch.ones(4, 500, 80), paddings)
    assert torch.equal(out_paddings, paddings)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    time_masked = (out == 0).all(dim=2)  # (B, T) frames zero in every bin
    freq_masked = (out == 0).all(dim=1)  # (B, F) bins zero in every frame
    # Every zero is explained by a masked frame or a masked bin.
    assert torch.equal(out == 0, time_masked[:, :, None] | freq_masked[:, None, :])
    for row, valid in enumerate([500, 300, 40, 500]):
        assert not time_masked[row, valid:].any()  # padded frames untouched
        # 10 masks of at most floor(0.05 L) frames; 2 masks of at most 26 bins.
        assert time_masked[row].sum() <= 10 * int(0.05 * valid)
        assert freq_masked[row].sum() <= 2 * 26
    assert time_masked[0].any() and freq_masked.any(dim=1).all()


def test_one_mask_never_exceeds_its_maximum():
    torch.manual_seed(1)
    lengths = torch.tensor([500.0] * 2000)
    time_keep = SpecAugment.keep_mask(lengths, 500, None, multiplicity=1, max_ratio=0.05)
    time_sizes = (time_keep == 0).sum(dim=1)
    assert time_sizes.max() == 24  # floor(u * 25) <= 24 for u < 1, reached in 2000 draws
    freq_keep = SpecAugment.keep_mask(torch.full((2000,), 80.0), 80, 27, multiplicity=1)
    freq_sizes = (freq_keep == 0).sum(dim=1)
    assert freq_sizes.max() == 26
    for row in range(20):  # each single mask is one contiguous span
        assert len(spans(freq_keep[row])) == int(freq_sizes[row] > 0)


def test_fixed_maximum_frames_and_the_ratio_cap():
    torch.manual_seed(2)
    # Without the dynamic maximum, lengths are floor(u * max_frames) but never above 5% of the utterance.
    keep = SpecAugment.keep_mask(torch.tensor([100.0] * 500), 100, 40, multiplicity=1, max_ratio=0.05)
    assert (keep == 0).sum(dim=1).max() == 5
    short = SpecAugment.keep_mask(torch.tensor([10.0] * 500), 10, 40, multiplicity=1, max_ratio=0.05)
    assert (short == 0).sum(dim=1).max() == 1  # the cap is at least one frame


def test_specaugment_draws_as_upstream():
    # Upstream's draws, in order: time lengths u (B, 10), time starts v (B, 10), then bin lengths and
    # starts (B, 2) each, all from the global RNG; length = min(floor(u * max), cap), start =
    # floor(v * (range - length + 1)).
    augment = SpecAugment(**REFERENCE_SPECAUG)
    paddings = torch.zeros(3, 200)
    paddings[1, 120:] = 1.0
    paddings[2, 7:] = 1.0
    torch.manual_seed(3)
    out, _ = augment(torch.ones(3, 200, 80), paddings)
    torch.manual_seed(3)
    u_t, v_t, u_f, v_f = torch.rand(3, 10), torch.rand(3, 10), torch.rand(3, 2), torch.rand(3, 2)
    expected = torch.ones(3, 200, 80)
    for b, valid in enumerate([200, 120, 7]):
        for m in range(10):
            length = min(int(float(valid * 0.05) * float(u_t[b, m])), max(int(0.05 * valid), 1))
            start = int(float(v_t[b, m]) * (valid - length + 1))
            expected[b, start:start + length, :] = 0
        for m in range(2):
            length = min(int(27.0 * float(u_f[b, m])), 80)
            start = int(float(v_f[b, m]) * (80 - length + 1))
            expected[b, :, start:start + length] = 0
    assert torch.equal(out, expected)


def test_masks_per_frame_limits_the_number_of_time_masks():
    torch.manual_seed(4)
    lengths = torch.tensor([100.0, 20.0])
    # 0.05 masks per frame: 5 of the 10 masks may count for 100 frames, 1 for 20.
    keep = SpecAugment.keep_mask(lengths, 100, 10, multiplicity=10, max_ratio=1.0, masks_per_frame=0.05)
    torch.manual_seed(4)
    u, v = torch.rand(2, 10), torch.rand(2, 10)
    for b, (valid, counted) in enumerate([(100, 5), (20, 1)]):
        expected = torch.ones(100)
        for m in range(counted):
            length = min(int(10 * float(u[b, m])), valid)
            start = int(float(v[b, m]) * (valid - length + 1))
            expected[start:start + length] = 0
        assert torch.equal(keep[b], expected)
