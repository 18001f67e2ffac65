"""Gathering many variable-length row ranges at once, the core of graph batching without Python loops."""

from __future__ import annotations

import numpy as np


def exclusive_cumsum(counts: np.ndarray) -> np.ndarray:
    """[3, 1, 2] -> [0, 3, 4]: where each range starts in the concatenated output."""
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return starts


def concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The indices start[i], ..., start[i] + length[i] - 1 of every range, concatenated in order.

    concat_ranges([10, 4], [3, 2]) -> [10, 11, 12, 4, 5]
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    shift = np.asarray(starts, dtype=np.int64) - exclusive_cumsum(lengths)
    return np.repeat(shift, lengths) + np.arange(total, dtype=np.int64)
