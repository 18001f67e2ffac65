"""Throughput of the OGBG input pipeline (molecules/s per CPU core) and, on a GPU, the training step time.

Usage: python benchmarks/ogbg_input_pipeline.py [--data-dir data] [--batches 300]
Reads prepared data (python -m workloads.ogbg.prepare --data-dir data --download) when
there is some, and otherwise prepares random molecule-shaped graphs of molpcba's sizes.
The pipeline is timed on one thread, without the background prefetch, so the
figure is per core. With CUDA, the training step (forward, backward, NAdamW
update) is timed at the baseline's batch of 512 molecules, and again with the
input queue feeding it, so one sees whether the pipeline keeps the GPU busy.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pytest_algoperf.api import random_utils as prng
from workloads.ogbg import input_pipeline, prepare
from workloads.ogbg.prepared_data import load_split
from workloads.ogbg.synthetic import random_molecules

REFERENCE_BATCH_SIZE = 512  # the baseline's global batch (reference §1.1)
EVAL_BATCH_SIZE = 32_768


def real_molecules(batch) -> int:
    """Graphs before the padding graph (the last graph that has nodes)."""
    n_node = np.asarray(batch["inputs"].n_node)
    return int(np.flatnonzero(n_node)[-1])


def molecules_per_second(batches, count: int) -> float:
    next(batches)  # epoch set-up and first-touch costs are one-offs
    molecules = 0
    start = time.perf_counter()
    for _ in range(count):
        molecules += real_molecules(next(batches))
    return molecules / (time.perf_counter() - start)


def pipeline_report(dataset_dir: Path, num_batches: int) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one core: the figures are per core
    train = load_split(dataset_dir, "train")
    for label, batches in (
        ("numpy batches", input_pipeline.train_batches(train, REFERENCE_BATCH_SIZE, prng.PRNGKey(0))),
        ("torch batches", input_pipeline.device_batches(
            input_pipeline.train_batches(train, REFERENCE_BATCH_SIZE, prng.PRNGKey(0)), torch.device("cpu"), background=False)),
    ):
        rate = molecules_per_second(batches, num_batches)
        print(f"train, batch {REFERENCE_BATCH_SIZE}, {label}: {rate:>10,.0f} molecules/s per core ({rate / REFERENCE_BATCH_SIZE:,.0f} batches/s)")
    validation = load_split(dataset_dir, "validation")
    start = time.perf_counter()
    passes = list(input_pipeline.eval_batches(validation, np.arange(validation.num_graphs), EVAL_BATCH_SIZE))
    elapsed = time.perf_counter() - start
    print(f"eval pass, batch {EVAL_BATCH_SIZE}: {validation.num_graphs / elapsed:>10,.0f} molecules/s per core ({len(passes)} batches)")
    torch.set_num_threads(threads)


def step_time_report(data_dir: Path, num_steps: int) -> None:
    from pytest_algoperf.api.upstream_names import install_upstream_aliases

    install_upstream_aliases()
    from submissions.nadamw import submission
    from workloads.registry import get_workload

    for name in ("ogbg", "ogbg_model_size"):
        workload = get_workload(name)
        workload.use_prepared_data(str(data_dir))
        model, _ = workload.init_model_fn(prng.PRNGKey(0))
        hyperparameters = submission_hyperparameters()
        optimizer_state = submission.init_optimizer_state(workload, model, None, hyperparameters, prng.PRNGKey(1))
        queue = workload._build_input_queue(prng.PRNGKey(2), "train", str(data_dir), REFERENCE_BATCH_SIZE)
        fixed = next(queue)

        def step(batch) -> None:
            submission.update_params(workload, model, workload.model_params_types, None, hyperparameters, batch,
                                     workload.loss_type, optimizer_state, [], 0, prng.PRNGKey(3))

        for label, batch_source in (("one batch, reused", lambda: fixed), ("input queue", lambda: next(queue))):
            for _ in range(10):  # warm-up: cuBLAS handles, allocator pools
                step(batch_source())
            torch.cuda.synchronize()
            times = []
            for _ in range(num_steps):
                start = time.perf_counter()
                step(batch_source())
                torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
            print(f"{name} training step, batch {REFERENCE_BATCH_SIZE}, {label}: "
                  f"median {statistics.median(times) * 1e3:.2f} ms, p90 {sorted(times)[int(0.9 * len(times))] * 1e3:.2f} ms "
                  f"on {torch.cuda.get_device_name()}")


def submission_hyperparameters():
    import collections
    import json

    point = json.loads((Path(__file__).resolve().parents[1] / "submissions" / "nadamw" / "tuning_search_space.json").read_text())[0]
    return collections.namedtuple("Hyperparameters", point)(**point)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data", help="a data dir with prepared ogbg data (else random molecules are used)")
    parser.add_argument("--synthetic-molecules", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(args.data_dir)
        if not (data_dir / prepare.DATASET_NAME / "manifest.json").is_file():
            data_dir = Path(scratch)
            print(f"no prepared data in {args.data_dir}: using {args.synthetic_molecules:,} random molecules of molpcba's sizes")
            prepare.write_dataset(random_molecules(args.synthetic_molecules), data_dir / prepare.DATASET_NAME, source="synthetic")
        pipeline_report(data_dir / prepare.DATASET_NAME, args.batches)
        if torch.cuda.is_available():
            step_time_report(data_dir, args.steps)
        else:
            print("no CUDA device: training step time not measured")


if __name__ == "__main__":
    main()
