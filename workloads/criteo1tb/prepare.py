"""Prepare Criteo 1TB for the criteo1tb workloads: raw TSV click logs -> memory-mappable float32 chunks.

The raw data are Criteo's 24 days of click logs, `day_0` ... `day_23` (about 1.1 TB
unpacked; https://ailab.criteo.com/download-criteo-1tb-click-logs-dataset/). Put them in
RAW_DIR (default DATA_DIR/criteo1tb_raw) in any of the forms the reference's setup
passes through, one form per day:
  day_<d>.gz       as downloaded;
  day_<d>          unpacked;
  day_<d>_<NN>     already split into 5,000,000-line files, as the reference's setup
                   leaves them (`split -a 2 -d -l 5000000 day_<d> day_<d>_`).
Whole days are cut into 5,000,000-line chunks here, named as `split` would name them.
Every chunk is parsed, hashed and transformed exactly as the reference's TensorFlow
parser does (features.py) and stored as float32 arrays (prepared_data.py); the
manifest is written last. Conversion runs one process per raw file (--workers).

A dump smaller than the full 24 days (smoke tests, CI) must be marked with --subset:
its runs evaluate on whatever it holds and are never scored. It needs day 23 with at
least 20 chunks (19 test + validation) and at least one training day.

Usage: python -m workloads.criteo1tb.prepare --data-dir DIR [--raw-dir RAW_DIR] [--workers N] [--subset]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import gzip
import os
import re
import sys
import time
from pathlib import Path
from typing import BinaryIO, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from workloads.criteo1tb import prepared_data
from workloads.criteo1tb.features import parse_block
from workloads.criteo1tb.prepared_data import (
    EVAL_DAY,
    LINES_PER_FILE,
    NUM_EVAL_DAY_CHUNKS,
    NUM_TEST_CHUNKS,
    RAW_DIR_NAME,
    REFERENCE_COUNTS,
    TRAIN_DAYS,
    Chunk,
    chunk_files,
    chunk_name,
)
from workloads.criteo1tb.tsv_format import RawFormatError
from workloads.data_manifest import MANIFEST_NAME, write_manifest

BLOCK_BYTES = 16 << 20  # raw text parsed per step: about 65,000 lines
_SPLIT_FILE = re.compile(r"day_(\d+)_(\d+)")
_DAY_FILE = re.compile(r"day_(\d+)(\.gz)?")
_PARTIAL = ".partial"


class PreparationError(Exception):
    """The raw data cannot become a valid criteo1tb data dir; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class RawSource:
    path: Path
    day: int
    index: Optional[int] = None  # chunk index of an already split file; None for a whole day

    @property
    def label(self) -> str:
        return self.path.name


def find_raw_sources(raw_dir: Path) -> Dict[int, List[RawSource]]:
    """Raw files per day; split files win over a whole day, an unpacked day over its .gz."""
    split_files: Dict[int, List[RawSource]] = {}
    whole_days: Dict[int, RawSource] = {}
    if not raw_dir.is_dir():
        raise PreparationError(f"raw data dir {raw_dir} does not exist; put day_0 ... day_23 there (or pass --raw-dir)")
    for path in sorted(raw_dir.iterdir()):
        if (match := _SPLIT_FILE.fullmatch(path.name)) is not None:
            day = int(match.group(1))
            split_files.setdefault(day, []).append(RawSource(path, day, int(match.group(2))))
        elif (match := _DAY_FILE.fullmatch(path.name)) is not None:
            day = int(match.group(1))
            if day not in whole_days or whole_days[day].path.suffix == ".gz":
                whole_days[day] = RawSource(path, day)
    sources = {day: sorted(files, key=lambda source: source.index) for day, files in split_files.items()}
    for day, source in whole_days.items():
        sources.setdefault(day, [source])
    return sources


def check_days(sources: Dict[int, List[RawSource]], subset: bool) -> None:
    train_days = [day for day in TRAIN_DAYS if day in sources]
    missing = [day for day in (*TRAIN_DAYS, EVAL_DAY) if day not in sources]
    if EVAL_DAY not in sources or not train_days:
        raise PreparationError(
            f"need day {EVAL_DAY} (validation and test) and at least one of days 0-22 (training); "
            f"missing days: {', '.join(map(str, missing))}"
        )
    if missing and not subset:
        raise PreparationError(
            f"days {', '.join(map(str, missing))} are missing; get all 24 days, or pass --subset to prepare a partial dump "
            "(its runs are never scored)"
        )


# --- conversion of one raw file ----------------------------------------------------------------


def _open_raw(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def line_blocks(handle: BinaryIO, block_bytes: int = BLOCK_BYTES) -> Iterator[bytes]:
    """Runs of whole lines of about `block_bytes` each; a final line without a newline is included."""
    carry = b""
    while True:
        data = handle.read(block_bytes)
        if not data:
            if carry:
                yield carry
            return
        data = carry + data
        cut = data.rfind(b"\n") + 1
        carry = data[cut:]
        if cut:
            yield data[:cut]


class ChunkWriter:
    """Appends rows to a chunk's two arrays; they get their final names only when complete."""

    def __init__(self, dataset_dir: Path, name: str) -> None:
        self.name = name
        self.rows = 0
        self._paths = [dataset_dir / file_name for file_name in chunk_files(name)]
        self._handles = [open(str(path) + _PARTIAL, "wb") for path in self._paths]

    def write(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        self._handles[0].write(np.ascontiguousarray(inputs, dtype="<f4").tobytes())
        self._handles[1].write(np.ascontiguousarray(targets, dtype="<f4").tobytes())
        self.rows += len(targets)

    def close(self) -> Chunk:
        for handle, path in zip(self._handles, self._paths, strict=True):
            handle.close()
            os.replace(str(path) + _PARTIAL, path)
        return Chunk(self.name, self.rows)


def convert_source(source: RawSource, dataset_dir: Path, lines_per_file: int = LINES_PER_FILE) -> List[Chunk]:
    """One raw file -> its chunk(s): a split file keeps its name, a whole day is cut every `lines_per_file` lines."""
    chunks: List[Chunk] = []
    index = source.index if source.index is not None else 0
    writer = ChunkWriter(dataset_dir, chunk_name(source.day, index))
    line_number = 1
    with _open_raw(source.path) as handle:
        for block in line_blocks(handle):
            inputs, targets = parse_block(block, source.label, line_number)
            line_number += len(targets)
            start = 0
            while start < len(targets):
                take = len(targets) - start
                if source.index is None:
                    take = min(take, lines_per_file - writer.rows)
                writer.write(inputs[start : start + take], targets[start : start + take])
                start += take
                if source.index is None and writer.rows == lines_per_file:
                    chunks.append(writer.close())
                    index += 1
                    writer = ChunkWriter(dataset_dir, chunk_name(source.day, index))
    if writer.rows or not chunks:
        chunks.append(writer.close())
    else:
        writer.close()
        for path in chunk_files(writer.name):
            (dataset_dir / path).unlink()
    return chunks


def _convert_job(job: Tuple[RawSource, Path, int]) -> Tuple[RawSource, List[Chunk], float]:
    start = time.perf_counter()
    chunks = convert_source(*job)
    return job[0], chunks, time.perf_counter() - start


# --- the whole preparation ----------------------------------------------------------------------


def _clear_previous(dataset_dir: Path) -> None:
    """A rerun is unfinished until its manifest lands, and keeps no chunk of an earlier raw set."""
    (dataset_dir / MANIFEST_NAME).unlink(missing_ok=True)
    for path in dataset_dir.iterdir():
        if path.name == prepared_data.INDEX_NAME or path.name.endswith((prepared_data.INPUTS_SUFFIX, prepared_data.TARGETS_SUFFIX, _PARTIAL)):
            path.unlink()


def check_chunks(chunks: Sequence[Chunk], subset: bool) -> Dict[str, int]:
    eval_day_chunks = sum(1 for chunk in chunks if chunk.day_and_index[0] == EVAL_DAY)
    if eval_day_chunks <= NUM_TEST_CHUNKS:
        raise PreparationError(
            f"day {EVAL_DAY} gave {eval_day_chunks} chunks; its first {NUM_TEST_CHUNKS} are the test split and the "
            "validation split needs at least one more (a small dump can be cut finer with --lines-per-file)"
        )
    counts = prepared_data.split_counts(chunks)
    if not subset and (counts != REFERENCE_COUNTS or eval_day_chunks != NUM_EVAL_DAY_CHUNKS):
        raise PreparationError(
            f"the raw data gave {counts} examples in {eval_day_chunks} day-{EVAL_DAY} chunks; the reference has "
            f"{REFERENCE_COUNTS} in {NUM_EVAL_DAY_CHUNKS}. Check for truncated raw files, or pass --subset for a partial dump"
        )
    return counts


def prepare(raw_dir: Path, data_dir: Path, subset: bool = False, workers: int = 1, lines_per_file: int = LINES_PER_FILE) -> Path:
    """Converts every raw file, checks the splits, writes the chunk index and then the manifest."""
    sources = find_raw_sources(raw_dir)
    check_days(sources, subset)
    dataset_dir = data_dir / prepared_data.DATASET_NAME
    dataset_dir.mkdir(parents=True, exist_ok=True)
    _clear_previous(dataset_dir)
    jobs = [(source, dataset_dir, lines_per_file) for day in sorted(sources) for source in sources[day]]
    jobs.sort(key=lambda job: job[0].path.stat().st_size, reverse=True)  # largest first balances the workers
    chunks: List[Chunk] = []
    if workers <= 1:
        results: Iterator = map(_convert_job, jobs)
        pool = None
    else:
        pool = concurrent.futures.ProcessPoolExecutor(max_workers=workers)
        results = (future.result() for future in concurrent.futures.as_completed([pool.submit(_convert_job, job) for job in jobs]))
    try:
        for source, converted, seconds in results:
            rows = sum(chunk.rows for chunk in converted)
            print(f"{source.label}: {rows:,} rows in {len(converted)} chunk(s), {rows / max(seconds, 1e-9):,.0f} rows/s")
            chunks.extend(converted)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    counts = check_chunks(chunks, subset)
    index = prepared_data.write_index(dataset_dir, chunks, lines_per_file, source=str(raw_dir))
    files = [name for chunk in chunks for name in chunk_files(chunk.name)] + [index.name]
    return write_manifest(dataset_dir, files, counts, source=f"Criteo 1TB click logs from {raw_dir}", subset=subset)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workloads.criteo1tb.prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True, help="the benchmark data dir; chunks go to DATA_DIR/criteo1tb/")
    parser.add_argument("--raw-dir", help=f"where the raw day files are (default: DATA_DIR/{RAW_DIR_NAME})")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="conversion processes (default: all cores)")
    parser.add_argument("--subset", action="store_true", help="accept a dump smaller than the reference's (never scored)")
    parser.add_argument(
        "--lines-per-file", type=int, default=LINES_PER_FILE,
        help=f"lines per chunk when cutting whole days (the reference's {LINES_PER_FILE:,}; smaller only with --subset)",
    )
    args = parser.parse_args(argv)
    if args.lines_per_file != LINES_PER_FILE and not args.subset:
        parser.error(f"--lines-per-file other than the reference's {LINES_PER_FILE:,} changes the splits; it needs --subset")
    data_dir = Path(args.data_dir).expanduser()
    raw_dir = Path(args.raw_dir).expanduser() if args.raw_dir else data_dir / RAW_DIR_NAME
    try:
        manifest = prepare(raw_dir, data_dir, args.subset, args.workers, args.lines_per_file)
    except (PreparationError, RawFormatError) as error:
        print(f"criteo1tb preparation failed: {error}", file=sys.stderr)
        return 1
    print(f"Criteo 1TB ready in {manifest.parent} ({manifest.name} written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
