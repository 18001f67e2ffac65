"""Throughput of the MNIST training input pipeline, in examples per second per CPU core.

Usage: python benchmarks/mnist_input_pipeline.py [--data-dir data] [--batches 2000]
(prepare the data first: python -m workloads.mnist.prepare --data-dir data)
"""

from __future__ import annotations

import argparse
import time

import torch

from pytest_algoperf.api import random_utils as prng
from workloads.registry import get_workload


def examples_per_second(data_dir: str, batch_size: int, num_batches: int) -> float:
    workload = get_workload("mnist")
    queue = workload._build_input_queue(prng.PRNGKey(0), "train", data_dir, batch_size)
    next(queue)  # loading and normalising the files is a one-off, not throughput
    start = time.perf_counter()
    for _ in range(num_batches):
        next(queue)
    return batch_size * num_batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--batches", type=int, default=2000)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core: the figure is per core
    for batch_size in (16, 1024):
        rate = examples_per_second(args.data_dir, batch_size, args.batches if batch_size == 16 else args.batches // 20)
        print(f"batch {batch_size:>5}: {rate:>12,.0f} examples/s per core ({rate / batch_size:,.0f} batches/s)")


if __name__ == "__main__":
    main()
