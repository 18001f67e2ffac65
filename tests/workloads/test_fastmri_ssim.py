"""The fastMRI SSIM against scikit-image's `structural_similarity` on real photographs, and the cases worked by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import data
from skimage.metrics import structural_similarity

from workloads.fastmri.ssim import ssim, ssim_map, summed_ssim

# scikit-image configured to the reference's definition: 7x7 uniform window, sample covariance, K1/K2.
SKIMAGE_SETTINGS = dict(win_size=7, use_sample_covariance=True, gaussian_weights=False, K1=0.01, K2=0.03)


def _slice_pairs() -> tuple:
    """Three 96x80 (target, reconstruction) pairs cut from scikit-image's bundled photographs, in [0, 1]."""
    camera = data.camera().astype(np.float64) / 255
    moon = data.moon().astype(np.float64) / 255
    rng = np.random.default_rng(0)
    targets = np.stack([camera[200:296, 150:230], moon[100:196, 300:380], camera[350:446, 100:180]])
    outputs = np.stack([
        targets[0] + rng.normal(0, 0.05, targets[0].shape),  # noisy
        ndimage.uniform_filter(targets[1], size=5),  # blurred
        camera[352:448, 97:177],  # shifted by a few pixels
    ])
    return targets, outputs


def _normalised(images: np.ndarray) -> tuple:
    """As the fastMRI pipeline stores slices: (x - mean) / std per slice, with the mean and std kept."""
    mean = images.mean(axis=(1, 2))
    std = images.std(axis=(1, 2))
    return (images - mean[:, None, None]) / std[:, None, None], mean, std


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-10), (torch.float32, 2e-5)])
def test_matches_scikit_image_on_real_images(dtype, tolerance):
    targets, outputs = _slice_pairs()
    volume_max = np.array([1.0, 0.9, 1.2])
    expected = [
        structural_similarity(t, o, data_range=r, **SKIMAGE_SETTINGS) for t, o, r in zip(targets, outputs, volume_max)
    ]
    normal_targets, mean, std = _normalised(targets)
    normal_outputs = (outputs - mean[:, None, None]) / std[:, None, None]
    got = ssim(*(torch.tensor(a, dtype=dtype) for a in (normal_outputs, normal_targets, mean, std, volume_max)))
    assert got.dtype == dtype and got.shape == (3,)
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=tolerance)
    assert 0.1 < min(expected) and max(expected) < 0.95  # the cases are neither trivial nor hopeless


def test_the_whole_map_matches_scikit_images_border_included():
    # The reference pads symmetrically (edge repeated), which is scipy's 'reflect': the border matches too,
    # although the score drops it.
    targets, outputs = _slice_pairs()
    _, expected = structural_similarity(targets[0], outputs[0], data_range=1.0, full=True, **SKIMAGE_SETTINGS)
    got = ssim_map(torch.tensor(targets[:1]), torch.tensor(outputs[:1]), torch.tensor([1.0]))[0]
    np.testing.assert_allclose(got.numpy(), expected, rtol=0, atol=1e-10)
    assert torch.tensor(expected[3:-3, 3:-3]).mean().item() == pytest.approx(
        ssim(torch.tensor(outputs[:1]), torch.tensor(targets[:1])).item(), abs=1e-12
    )


def test_identical_images_score_exactly_one():
    targets, _ = _slice_pairs()
    images = torch.tensor(targets, dtype=torch.float32)
    assert ssim(images, images, volume_max=torch.full((3,), 1.0)).tolist() == [1.0, 1.0, 1.0]


def test_defaults_are_mean_zero_std_one_and_range_one():
    targets, outputs = _slice_pairs()
    t, o = torch.tensor(targets), torch.tensor(outputs)
    ones, zeros = torch.ones(3, dtype=t.dtype), torch.zeros(3, dtype=t.dtype)
    torch.testing.assert_close(ssim(o, t), ssim(o, t, zeros, ones, ones))


def test_a_zero_volume_max_counts_as_range_one():
    targets, outputs = _slice_pairs()
    t, o = torch.tensor(targets), torch.tensor(outputs)
    torch.testing.assert_close(ssim(o, t, volume_max=torch.zeros(3, dtype=t.dtype)), ssim(o, t))
    # A padding row (all zeros, mean 0, std 0, volume_max 0) stays finite instead of 0 / 0.
    blank = torch.zeros(1, 16, 16)
    assert ssim(blank, blank, torch.zeros(1), torch.zeros(1), torch.zeros(1)).tolist() == [1.0]


def test_images_are_compared_on_their_original_scale():
    # The constants C1, C2 are absolute: the same normalised pair scores differently at another mean / std.
    targets, outputs = _slice_pairs()
    t, o = torch.tensor(targets[:1]), torch.tensor(outputs[:1])
    mean, std, volume_max = torch.tensor([0.3]), torch.tensor([0.01]), torch.tensor([1.0])
    expected = structural_similarity(targets[0] * 0.01 + 0.3, outputs[0] * 0.01 + 0.3, data_range=1.0, **SKIMAGE_SETTINGS)
    assert ssim(o, t, mean, std, volume_max).item() == pytest.approx(expected, abs=1e-10)
    assert abs(expected - ssim(o, t).item()) > 0.01


def test_scores_are_clipped_to_ssims_range(monkeypatch):
    import workloads.fastmri.ssim as ssim_module

    monkeypatch.setattr(ssim_module, "structural_similarity", lambda a, b, r: torch.tensor([1.5, -3.0, 0.25]))
    blank = torch.zeros(3, 8, 8)
    assert ssim_module.ssim(blank, blank).tolist() == [1.0, -1.0, 0.25]


def test_padded_rows_are_excluded_from_the_sum():
    targets, outputs = _slice_pairs()
    t, o = torch.tensor(targets), torch.tensor(outputs)
    mean, std, volume_max = torch.zeros(3, dtype=t.dtype), torch.ones(3, dtype=t.dtype), torch.ones(3, dtype=t.dtype)
    per_slice = ssim(o, t, mean, std, volume_max)
    # The last row is padding: whatever it holds, even NaN, it adds nothing.
    o[2] = float("nan")
    total = summed_ssim(o, t, mean, std, volume_max, weights=torch.tensor([1.0, 1.0, 0.0]))
    assert total.item() == pytest.approx(per_slice[:2].sum().item(), abs=1e-12)
    assert summed_ssim(o[:2], t[:2], mean[:2], std[:2], volume_max[:2]).item() == pytest.approx(total.item(), abs=1e-12)
