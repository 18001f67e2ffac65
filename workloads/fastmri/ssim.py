"""The fastMRI target metric: structural similarity per slice, as the reference computes it (reference §4.3).

SSIM (Wang et al. 2004, IEEE TIP 13:600) with the settings of the fastMRI paper
(arXiv:1811.08839), which are scikit-image's `structural_similarity` defaults:
  * local statistics over a 7x7 uniform window, images padded symmetrically
    (edge pixel repeated, scipy's 'reflect') so the map keeps the image size;
  * sample (co)variances: the window's biased estimates times 49 / 48;
  * C1 = (0.01 L)^2, C2 = (0.03 L)^2 with L the data range, here the maximum
    of the slice's whole volume (a padding row's 0 becomes 1, so it stays finite);
  * the score is the mean of the map over its interior: the 3-pixel border,
    where the window would reach into the padding, is dropped;
then each score is clipped to [-1, 1], SSIM's theoretical range. Slices are
compared on their original scale: the normalised model output and target are
multiplied back by the slice's std and shifted by its mean first.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

WIN_SIZE = 7
K1 = 0.01
K2 = 0.03
_RADIUS = (WIN_SIZE - 1) // 2  # 3: the border the window overhangs


def _symmetric_pad(images: torch.Tensor, pad: int) -> torch.Tensor:
    """(B, H, W) -> (B, H + 2 pad, W + 2 pad), mirroring with the edge pixel repeated (numpy 'symmetric')."""
    images = torch.cat([images[:, :pad].flip(1), images, images[:, -pad:].flip(1)], dim=1)
    return torch.cat([images[:, :, :pad].flip(2), images, images[:, :, -pad:].flip(2)], dim=2)


def _uniform_filter(images: torch.Tensor) -> torch.Tensor:
    """The mean over the 7x7 window centred on every pixel; (B, H, W) -> (B, H, W).

    Separable, as the reference: a 7-wide mean along each row, then along each column.
    """
    padded = _symmetric_pad(images, _RADIUS)[:, None]  # (B, 1, H + 6, W + 6)
    rows = F.avg_pool2d(padded, kernel_size=(1, WIN_SIZE), stride=1)  # (B, 1, H + 6, W)
    return F.avg_pool2d(rows, kernel_size=(WIN_SIZE, 1), stride=1)[:, 0]  # (B, H, W)


def ssim_map(images1: torch.Tensor, images2: torch.Tensor, data_range: torch.Tensor) -> torch.Tensor:
    """The local SSIM of every pixel; images (B, H, W), data_range (B,) -> (B, H, W)."""
    num_points = WIN_SIZE**2
    cov_norm = num_points / (num_points - 1)  # unbiased (sample) covariance over the window

    ux = _uniform_filter(images1)
    uy = _uniform_filter(images2)
    vx = cov_norm * (_uniform_filter(images1 * images1) - ux * ux)
    vy = cov_norm * (_uniform_filter(images2 * images2) - uy * uy)
    vxy = cov_norm * (_uniform_filter(images1 * images2) - ux * uy)

    data_range = data_range.to(images1.dtype)[:, None, None]
    c1 = (K1 * data_range) ** 2
    c2 = (K2 * data_range) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))


def structural_similarity(images1: torch.Tensor, images2: torch.Tensor, data_range: torch.Tensor) -> torch.Tensor:
    """Mean SSIM per image over the interior of the map; (B, H, W) -> (B,)."""
    interior = ssim_map(images1, images2, data_range)[:, _RADIUS:-_RADIUS, _RADIUS:-_RADIUS]
    return interior.mean(dim=(1, 2))


def ssim(
    outputs: torch.Tensor,
    targets: torch.Tensor,
    mean: Optional[torch.Tensor] = None,
    std: Optional[torch.Tensor] = None,
    volume_max: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Per-slice SSIM of de-normalised outputs against targets, clipped to [-1, 1].

    outputs, targets (B, H, W) normalised slices; mean, std, volume_max (B,)
    per slice (defaults 0, 1, 1). Returns (B,).
    """
    batch = outputs.shape[0]
    ones = torch.ones(batch, dtype=outputs.dtype, device=outputs.device)
    mean = torch.zeros_like(ones) if mean is None else mean
    std = ones if std is None else std
    volume_max = ones if volume_max is None else volume_max
    data_range = torch.where(volume_max == 0, torch.ones_like(volume_max), volume_max)

    mean = mean.to(outputs.dtype)[:, None, None]
    std = std.to(outputs.dtype)[:, None, None]
    scores = structural_similarity(outputs * std + mean, targets * std + mean, data_range)
    return scores.clamp(-1.0, 1.0)


def summed_ssim(
    outputs: torch.Tensor,
    targets: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    volume_max: torch.Tensor,
    weights: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Sum of the per-slice SSIM over the real slices of an eval batch (weight > 0); padding rows count nothing.

    The reference keeps the first sum(weights) rows; padding always comes last in
    a batch, so keeping the rows of positive weight selects the same slices.
    """
    if weights is not None:
        keep = weights > 0
        outputs, targets, mean, std, volume_max = (t[keep] for t in (outputs, targets, mean, std, volume_max))
    return ssim(outputs, targets, mean, std, volume_max).sum()
