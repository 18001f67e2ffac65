"""Small raw Criteo dumps in the exact official TSV layout, for tests, smoke runs and the benchmark.

The rows are random but shaped like the click logs: labels 0/1 (about 1 in 30
clicks), heavy-tailed non-negative integers with the occasional -1 or -2, 8-hex-digit
categorical values, and empty fields for missing values. The label leans on the
first integer feature so a model has something to learn.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Iterable, List, Mapping, Optional

import numpy as np

from workloads.criteo1tb.tsv_format import NUM_DENSE_FEATURES, NUM_SPARSE_FEATURES

MISSING_RATE = 0.15  # share of empty fields


def random_lines(count: int, seed: int) -> List[str]:
    rng = np.random.RandomState(seed)
    dense = np.floor(rng.exponential(20.0, size=(count, NUM_DENSE_FEATURES)) * rng.exponential(3.0, size=(count, 1)))
    dense = dense.astype(np.int64)
    dense[rng.rand(count, NUM_DENSE_FEATURES) < 0.02] = -1
    dense_missing = rng.rand(count, NUM_DENSE_FEATURES) < MISSING_RATE
    # Categories from a small per-column pool, so values repeat as they do in the logs.
    pools = rng.randint(0, 2**32, size=(NUM_SPARSE_FEATURES, 50), dtype=np.uint64)
    picks = np.minimum(rng.zipf(1.5, size=(count, NUM_SPARSE_FEATURES)) - 1, 49)
    sparse_missing = rng.rand(count, NUM_SPARSE_FEATURES) < MISSING_RATE
    click_odds = 0.02 + 0.2 * (dense[:, 0] > 40)
    labels = (rng.rand(count) < click_odds).astype(int)
    lines = []
    for row in range(count):
        fields = [str(labels[row])]
        fields += ["" if dense_missing[row, j] else str(dense[row, j]) for j in range(NUM_DENSE_FEATURES)]
        fields += [
            "" if sparse_missing[row, j] else f"{int(pools[j, picks[row, j]]):08x}" for j in range(NUM_SPARSE_FEATURES)
        ]
        lines.append("\t".join(fields))
    return lines


def write_day(path: Path, lines: Iterable[str]) -> Path:
    """One raw day file (gzip-compressed when the name ends in .gz), newline-terminated lines."""
    text = "".join(line + "\n" for line in lines).encode("ascii")
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(text)
    else:
        path.write_bytes(text)
    return path


def write_split_day(raw_dir: Path, day: int, lines: List[str], lines_per_file: int) -> List[Path]:
    """A day already cut into `day_<d>_<NN>` files, as `split -a 2 -d -l N` leaves it."""
    paths = []
    for index, start in enumerate(range(0, len(lines), lines_per_file)):
        paths.append(write_day(raw_dir / f"day_{day}_{index:02d}", lines[start : start + lines_per_file]))
    return paths


def write_raw_dump(
    raw_dir: Path,
    lines_per_day: Mapping[int, int],
    seed: int = 0,
    split_days: Optional[Mapping[int, int]] = None,
    gzipped_days: Iterable[int] = (),
) -> Path:
    """Raw day files: whole `day_<d>` (or `day_<d>.gz`), or split ones for the days in `split_days` (day -> lines per file)."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    split_days = split_days or {}
    gzipped = set(gzipped_days)
    for day, count in lines_per_day.items():
        lines = random_lines(count, seed * 1000 + day)
        if day in split_days:
            write_split_day(raw_dir, day, lines, split_days[day])
        else:
            write_day(raw_dir / (f"day_{day}.gz" if day in gzipped else f"day_{day}"), lines)
    return raw_dir
