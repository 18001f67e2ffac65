"""SpecAugment (Park et al. 2019, arXiv:1904.08779) with the reference's masks (reference §4.6, §4.7).

Upstream: `SpecAug` in
algoperf/workloads/librispeech_conformer/librispeech_pytorch/spectrum_augmenter.py (a port of
init2winit's spectrum_augmenter.py), shared by the Conformer and DeepSpeech models.

API (shared by workloads/librispeech_conformer and workloads/librispeech_deepspeech):

    SpecAugment(*, freq_mask_count=1, freq_mask_max_bins=15, time_mask_count=1,
                time_mask_max_frames=50, time_mask_max_ratio=1.0, time_masks_per_frame=0.0,
                use_dynamic_time_mask_max_frames=False)
    .forward(features (B, T, F), paddings (B, T)) -> (features (B, T, F), paddings (B, T) unchanged)

Upstream's argument names and defaults; keyword-only here. Both LibriSpeech models use
freq_mask_count=2, freq_mask_max_bins=27, time_mask_count=10, time_mask_max_frames=40 (unused:
see below), time_mask_max_ratio=0.05, time_masks_per_frame=0.0,
use_dynamic_time_mask_max_frames=True (DeepSpeech's norm_and_spec_aug variant: 4 and 15 masks).

The module masks only in training mode (`self.training`); in eval mode it returns its input.
Upstream's SpecAug masks whenever it is called and its models call it only when
`self.training and config.use_specaug`; the models here keep that condition too, so the result
is the same.

Masks, per example, with L = number of non-padded frames (sum of 1 - paddings):

  * time: time_mask_count masks, each of a length drawn as floor(u * max_frames), u ~ U[0, 1),
    where max_frames is time_mask_max_frames, or L * time_mask_max_ratio when
    use_dynamic_time_mask_max_frames (the reference: up to 5% of the utterance per mask); the
    length is then capped at max(floor(time_mask_max_ratio * L), 1). The start is
    floor(v * (L - length + 1)), v ~ U[0, 1), so every mask lies inside the valid frames. Masked
    frames are zeroed in every bin; padded frames are left as they are. time_masks_per_frame > 0
    keeps mask m (m = 0, 1, ...) only while m < time_masks_per_frame * L.
  * frequency: freq_mask_count masks over the F bins, lengths floor(u * freq_mask_max_bins)
    (capped at F), starts floor(v * (F - length + 1)); masked bins are zeroed in every frame.

Masks may overlap; a mask of length 0 masks nothing. The draws come from torch's global RNG on
the features' device, in upstream's order and shapes: time lengths (B, time_mask_count), time
starts, frequency lengths (B, freq_mask_count), frequency starts. So a seeded run draws the same
masks as upstream's module.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import nn


class SpecAugment(nn.Module):
    """Zeroes random time spans and frequency bands of (B, T, F) features during training."""

    def __init__(
        self,
        *,
        freq_mask_count: int = 1,
        freq_mask_max_bins: int = 15,
        time_mask_count: int = 1,
        time_mask_max_frames: int = 50,
        time_mask_max_ratio: float = 1.0,
        time_masks_per_frame: float = 0.0,
        use_dynamic_time_mask_max_frames: bool = False,
    ):
        super().__init__()
        self.freq_mask_count = freq_mask_count
        self.freq_mask_max_bins = freq_mask_max_bins
        self.time_mask_count = time_mask_count
        self.time_mask_max_frames = time_mask_max_frames
        self.time_mask_max_ratio = time_mask_max_ratio
        self.time_masks_per_frame = time_masks_per_frame
        self.use_dynamic_time_mask_max_frames = use_dynamic_time_mask_max_frames

    @staticmethod
    def keep_mask(
        choose_range: torch.Tensor,
        mask_size: int,
        max_length: Optional[float],
        multiplicity: int,
        max_ratio: float = 1.0,
        masks_per_frame: float = 0.0,
    ) -> torch.Tensor:
        """(B, mask_size) float: 0 where one of `multiplicity` random spans covers a position, else 1.

        choose_range (B,): how many leading positions each span may fall in (valid frames, or F).
        max_length: a fixed upper length; None or 0 draws up to choose_range * max_ratio instead.
        """
        batch_size = choose_range.shape[0]
        device = choose_range.device
        if max_length and max_length > 0:
            max_len = torch.full((batch_size,), float(max_length), device=device)
        else:
            max_len = choose_range * max_ratio
        draw = torch.rand(batch_size, multiplicity, device=device)
        length = (max_len[:, None] * draw).long()  # (B, M), truncation = floor for these non-negative values
        # Short utterances can still draw long masks (the draw is relative to max_len); cap them.
        span_range = choose_range[:, None].expand(batch_size, multiplicity)
        bound = (max_ratio * span_range).long().clamp(min=1)
        length = torch.minimum(length, bound)
        start = (torch.rand(batch_size, multiplicity, device=device) * (span_range - length + 1)).long()
        end = start + length - 1  # inclusive; end < start when length is 0
        position = torch.arange(mask_size, device=device)[None, None, :]  # (1, 1, mask_size)
        covered = (position >= start[..., None]) & (position <= end[..., None])  # (B, M, mask_size)
        if masks_per_frame > 0:
            counted = torch.arange(multiplicity, device=device)[None, :] < masks_per_frame * choose_range[:, None]
            covered = covered & counted[..., None]
        return 1.0 - covered.any(dim=1).float()

    def time_mask(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        max_frames = self.time_mask_max_frames
        if (max_frames == 0 and not self.use_dynamic_time_mask_max_frames) or self.time_mask_max_ratio <= 0.0:
            return features
        if self.time_mask_count == 0:
            return features
        keep = self.keep_mask(
            lengths,
            mask_size=features.shape[1],
            max_length=None if self.use_dynamic_time_mask_max_frames else max_frames,
            multiplicity=self.time_mask_count,
            max_ratio=self.time_mask_max_ratio,
            masks_per_frame=self.time_masks_per_frame,
        )  # (B, T)
        return features * keep[:, :, None].to(features.dtype)

    def frequency_mask(self, features: torch.Tensor) -> torch.Tensor:
        if self.freq_mask_max_bins == 0 or self.freq_mask_count == 0:
            return features
        batch_size, _, num_bins = features.shape
        keep = self.keep_mask(
            torch.full((batch_size,), float(num_bins), device=features.device),
            mask_size=num_bins,
            max_length=self.freq_mask_max_bins,
            multiplicity=self.freq_mask_count,
        )  # (B, F)
        return features * keep[:, None, :].to(features.dtype)

    def forward(self, features: torch.Tensor, paddings: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        # features: (B, T, F); paddings: (B, T), 1.0 = padding
        if not self.training:
            return features, paddings
        lengths = (1 - paddings).sum(dim=1).long()  # (B,) valid frames
        features = self.time_mask(features, lengths)
        features = self.frequency_mask(features)
        return features, paddings
