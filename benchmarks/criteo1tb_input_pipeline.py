"""Throughput of the Criteo 1TB data path, per CPU core, and the training step time on a GPU.

Measures
  1. preparation: raw TSV lines -> prepared float32 rows (parse, FarmHash, log), one process;
  2. the training input pipeline at the baseline's batch of 262,144 rows, on one thread:
     numpy batches (row assembly from the memory-mapped chunks) and torch batches on the CPU;
  3. with CUDA: torch batches on the GPU (pinned buffers, background prefetch) and the time of one
     NAdamW training step of the full criteo1tb model at batch 262,144.

Without --data-dir it writes a synthetic prepared dump (--rows rows) in a temporary dir; freshly
written files sit in the page cache, so the figure is the pipeline's own cost, not the disk's
(at 156 bytes a row, 1,000,000 rows/s need 156 MB/s from disk).

Usage: python benchmarks/criteo1tb_input_pipeline.py [--data-dir DIR] [--rows 2000000] [--batches 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import namedtuple
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from workloads.criteo1tb import input_pipeline, prepared_data
from workloads.criteo1tb.features import NUM_INPUTS
from workloads.criteo1tb.prepare import ChunkWriter, RawSource, convert_source
from workloads.criteo1tb.prepared_data import chunk_name
from workloads.criteo1tb.sample_data import random_lines, write_day

BATCH_SIZE = 262_144  # the NAdamW baseline's criteo1tb batch
ROOT = Path(__file__).resolve().parents[1]


def synthetic_dataset(directory: Path, rows: int, rows_per_chunk: int = 500_000) -> Path:
    """Random rows in the prepared layout: training chunks of day 0, and the 20 day-23 chunks an index needs."""
    dataset_dir = directory / prepared_data.DATASET_NAME
    dataset_dir.mkdir(parents=True)
    rng = np.random.default_rng(0)
    chunks = []
    names = [chunk_name(0, i) for i in range(-(-rows // rows_per_chunk))] + [chunk_name(23, i) for i in range(20)]
    remaining = rows
    for name in names:
        count = min(rows_per_chunk, remaining) if name.startswith("day_0_") else 10
        remaining -= count if name.startswith("day_0_") else 0
        inputs = np.empty((count, NUM_INPUTS), dtype=np.float32)
        inputs[:, :13] = rng.random((count, 13), dtype=np.float32) * 5
        inputs[:, 13:] = rng.integers(0, 40_000_000, size=(count, 26)).astype(np.float32)
        writer = ChunkWriter(dataset_dir, name)
        writer.write(inputs, (rng.random(count) < 0.03).astype(np.float32))
        chunks.append(writer.close())
    prepared_data.write_index(dataset_dir, chunks, prepared_data.LINES_PER_FILE, source="synthetic")
    return dataset_dir


def preparation_rate(directory: Path, lines: int) -> float:
    raw = write_day(directory / "day_0", random_lines(lines, seed=0))
    out = directory / "prepared"
    out.mkdir()
    start = time.perf_counter()
    chunks = convert_source(RawSource(raw, 0), out)
    return sum(chunk.rows for chunk in chunks) / (time.perf_counter() - start)


def rows_per_second(batches, batch_size: int, count: int) -> float:
    next(batches)  # opening the first maps and the first page faults are a one-off
    start = time.perf_counter()
    for _ in range(count):
        next(batches)
    return batch_size * count / (time.perf_counter() - start)


def training_step_ms(dataset_dir: Path, steps: int) -> Optional[float]:
    """One NAdamW step of the full criteo1tb model at batch 262,144 on the GPU, in milliseconds."""
    if not torch.cuda.is_available():
        return None
    from pytest_algoperf.api import random_utils as prng
    from pytest_algoperf.api.upstream_names import install_upstream_aliases
    from workloads.registry import get_workload

    install_upstream_aliases()  # the baseline imports `algoperf.spec`
    from submissions.nadamw import submission

    workload = get_workload("criteo1tb")
    point = json.loads((ROOT / "submissions" / "nadamw" / "tuning_search_space.json").read_text())[0]
    hyperparameters = namedtuple("Hyperparameters", point)(**point)
    model, model_state = workload.init_model_fn(prng.PRNGKey(0))
    optimizer_state = submission.init_optimizer_state(workload, model, model_state, hyperparameters, prng.PRNGKey(1))
    queue = workload._build_input_queue(prng.PRNGKey(2), "train", str(dataset_dir.parent), BATCH_SIZE)
    types = workload.model_params_types
    for step in range(steps + 2):  # two warm-up steps
        if step == 2:
            torch.cuda.synchronize()
            start = time.perf_counter()
        batch = submission.data_selection(workload, queue, optimizer_state, model, model_state, hyperparameters, step, None)
        optimizer_state, model, model_state = submission.update_params(
            workload, model, types, model_state, hyperparameters, batch, workload.loss_type, optimizer_state, [], step, None
        )
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="a prepared data dir (default: a synthetic dump in a temporary dir)")
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the synthetic dump")
    parser.add_argument("--batches", type=int, default=20, help="batches timed per measurement")
    parser.add_argument("--raw-lines", type=int, default=200_000, help="raw lines for the preparation rate")
    parser.add_argument("--steps", type=int, default=10, help="training steps timed on a GPU")
    args = parser.parse_args()
    torch.set_num_threads(1)  # figures are per core
    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        print(f"preparation (TSV -> float32 rows): {preparation_rate(scratch_dir, args.raw_lines):>12,.0f} rows/s per core")
        if args.data_dir:
            dataset_dir = Path(args.data_dir).expanduser() / prepared_data.DATASET_NAME
        else:
            dataset_dir = synthetic_dataset(scratch_dir / "data", args.rows)
        numpy_batches = (batch for batch, _ in input_pipeline.numpy_batches(dataset_dir, "train", BATCH_SIZE, seed=0))
        rate = rows_per_second(numpy_batches, BATCH_SIZE, args.batches)
        print(f"train batches of {BATCH_SIZE:,} (numpy):       {rate:>12,.0f} rows/s per core")
        cpu = input_pipeline.torch_batches(dataset_dir, "train", BATCH_SIZE, 0, torch.device("cpu"))
        print(f"train batches of {BATCH_SIZE:,} (torch, CPU):  {rows_per_second(cpu, BATCH_SIZE, args.batches):>12,.0f} rows/s per core")
        if torch.cuda.is_available():
            gpu = input_pipeline.torch_batches(dataset_dir, "train", BATCH_SIZE, 0, torch.device("cuda"))
            rate = rows_per_second(gpu, BATCH_SIZE, args.batches)
            torch.cuda.synchronize()
            print(f"train batches of {BATCH_SIZE:,} (torch, GPU):  {rate:>12,.0f} rows/s (pinned, prefetched)")
            step = training_step_ms(dataset_dir, args.steps)
            print(f"NAdamW training step, criteo1tb, batch {BATCH_SIZE:,}: {step:.1f} ms on {torch.cuda.get_device_name()}")
        else:
            print("no CUDA device: GPU transfer and training step time not measured")


if __name__ == "__main__":
    main()
