"""Throughput of the fastMRI input pipeline per CPU core, against what one A100 consumes.

Measures the whole training path for each slice (HDF5 read of k-space and target, the
per-example column mask, the inverse FFT, the crop, the normalisation) on one thread, and
then on a pool of threads, at the baseline's batch of 32 slices. Rates are given per second
of wall time and per second of CPU time of this process; on a busy machine the second is the
honest per-core figure.

What a GPU needs: the reference's PyTorch fastMRI baseline trains at a global batch of 32
slices and takes 0.376 s per step on 4 A100s (data parallel), so each A100 works through
32 / 4 = 8 slices per 0.376 s, about 21 slices/s. The cores one GPU needs are that rate
divided by the per-core rate.

Without --data-dir it writes sample volumes (workloads/fastmri/sample_data.py, needs
`apt-get install mricron-data`) into a temporary dir and prepares them; freshly written files
sit in the page cache, so the figure is the pipeline's own cost, not the disk's (at about
2.3 MB a slice, 1,000 slices/s need 2.3 GB/s from disk).

Usage: python benchmarks/fastmri_input_pipeline.py [--data-dir DIR] [--volumes 4] [--slices 8] [--batches 6] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Tuple

import numpy as np

from workloads.fastmri import input_pipeline, prepare, sample_data

BATCH_SIZE = 32  # the NAdamW baseline's fastmri batch
REFERENCE_STEP_SEC = 0.376  # one PyTorch training step of the reference baseline, 4 x A100, batch 32
REFERENCE_GPUS = 4
SLICES_PER_A100_SEC = BATCH_SIZE / REFERENCE_GPUS / REFERENCE_STEP_SEC


def sample_dataset(directory: Path, volumes: int, slices: int) -> Path:
    raw = sample_data.write_raw_dir(directory / "raw", train_volumes=volumes, val_volumes=2, slices=slices, unpacked=True)
    prepare.prepare(raw, directory / "data", subset=True)
    return directory / "data" / input_pipeline.DATASET_NAME


def timed_batches(dataset_dir: Path, batches: int, threads: int) -> Tuple[float, float]:
    """(slices per wall second, slices per CPU second) of training batches after a warm-up batch."""
    iterator = input_pipeline.numpy_batches(dataset_dir, "train", BATCH_SIZE, seed=0, repeat=True, num_threads=threads)
    next(iterator)  # first opens and the first page faults are a one-off
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(iterator)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    iterator.close()
    return batches * BATCH_SIZE / wall, batches * BATCH_SIZE / cpu


def stage_rates(dataset_dir: Path, count: int) -> Tuple[float, float]:
    """Slices per CPU second of the HDF5 reads alone and of the preprocessing alone (one thread)."""
    volumes = input_pipeline.read_index(dataset_dir)["train"]
    reader = input_pipeline.VolumeReader(dataset_dir, volumes)
    order = input_pipeline.interleave_order([volume.slices for volume in volumes])
    picks = [tuple(order[i % len(order)]) for i in range(count)]
    slices = []
    seconds = 0.0
    for position, index in picks:
        start = time.process_time()
        kspace, target, volume_max = reader.read(int(position), int(index))  # into a reused buffer
        seconds += time.process_time() - start
        slices.append((kspace.copy(), target.copy(), volume_max))
    read_rate = count / seconds
    inputs, targets = np.empty((320, 320), np.float32), np.empty((320, 320), np.float32)
    start = time.process_time()
    for number, (kspace, target, _) in enumerate(slices):
        keep = input_pipeline.draw_mask(kspace.shape[1], input_pipeline.mask_seed_words("train", 0, number))
        input_pipeline.process_slice(kspace, target, keep, inputs, targets)
    reader.close()
    return read_rate, count / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="a prepared data dir (default: sample volumes in a temporary dir)")
    parser.add_argument("--volumes", type=int, default=4, help="training volumes of the sample set")
    parser.add_argument("--slices", type=int, default=8, help="slices per sample volume")
    parser.add_argument("--batches", type=int, default=6, help="batches of 32 timed per measurement")
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1), help="threads of the pooled measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        if args.data_dir:
            dataset_dir = Path(args.data_dir).expanduser() / input_pipeline.DATASET_NAME
        else:
            dataset_dir = sample_dataset(Path(scratch), args.volumes, args.slices)
        read_rate, process_rate = stage_rates(dataset_dir, 2 * BATCH_SIZE)
        print(f"HDF5 read (k-space + target):           {read_rate:>8,.0f} slices per CPU second")
        print(f"mask + FFT + crop + normalise:          {process_rate:>8,.0f} slices per CPU second")
        wall, cpu = timed_batches(dataset_dir, args.batches, threads=1)
        print(f"train batches of {BATCH_SIZE}, one thread:        {wall:>8,.0f} slices/s wall, {cpu:,.0f} per CPU second")
        if args.threads > 1:
            pooled, pooled_cpu = timed_batches(dataset_dir, args.batches, threads=args.threads)
            print(f"train batches of {BATCH_SIZE}, {args.threads} threads:       {pooled:>8,.0f} slices/s wall, "
                  f"{pooled_cpu:,.0f} per CPU second")
        print(f"one A100 consumes {BATCH_SIZE}/{REFERENCE_GPUS} slices per {REFERENCE_STEP_SEC} s step: "
              f"{SLICES_PER_A100_SEC:.1f} slices/s")
        print(f"cores that keep one A100 fed: {SLICES_PER_A100_SEC / cpu:.2f} (at {cpu:,.0f} slices per CPU second)")


if __name__ == "__main__":
    main()
