"""Throughput of the WMT input pipeline per CPU core, and (with a GPU) the training step time at batch 128.

The pipeline is measured on a prepared data dir, or, without one, on synthetic
token arrays whose sentence lengths follow WMT17 de-en under the 32k
SentencePiece vocabulary (about 30 tokens per side, long tail, at most 256).
To keep one GPU busy the pipeline must deliver a 128-row packed batch faster
than the GPU trains on one.

Usage: python benchmarks/wmt_input_pipeline.py [--data-dir DIR] [--batches 50] [--gpu-steps 20]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from pytest_algoperf.api import random_utils as prng
from workloads.registry import get_workload
from workloads.wmt import input_pipeline, prepare
from workloads.wmt.token_arrays import RaggedTokens, TokenizedPairs, write_split

BATCH_SIZE = 128  # the baseline's WMT batch size and the eval batch size
SYNTHETIC_PAIRS = 200_000
# log-normal sentence lengths in tokens: median ~27, mean ~31, as WMT17 de-en has under 32k pieces
LENGTH_MEDIAN, LENGTH_SIGMA = 27, 0.55


def synthetic_data_dir(root: Path, num_pairs: int = SYNTHETIC_PAIRS) -> Path:
    """A data dir in the prepared layout, with random ids and realistic lengths (no vocabulary needed)."""
    rng = np.random.default_rng(0)
    dataset_dir = root / "wmt"
    dataset_dir.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", num_pairs), ("validation", 3_000), ("test", 3_003)):
        sides = []
        for _ in range(2):
            lengths = np.clip(rng.lognormal(np.log(LENGTH_MEDIAN), LENGTH_SIGMA, count).astype(np.int64), 2, prepare.MAX_LENGTH)
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            tokens = rng.integers(3, 32_000, offsets[-1]).astype(np.uint16)
            tokens[offsets[1:] - 1] = 2  # every sentence ends with EOS
            sides.append(RaggedTokens(tokens, offsets))
        write_split(dataset_dir, split, TokenizedPairs(*sides))
    (dataset_dir / prepare.METADATA_NAME).write_text(json.dumps({"max_length": prepare.MAX_LENGTH, "vocab_size": 32_000}))
    return dataset_dir


def pipeline_rates(dataset_dir: Path, num_batches: int) -> None:
    data = input_pipeline.open_prepared(str(dataset_dir))
    for split in ("train", "validation"):
        batches = input_pipeline.numpy_batches(data, split, BATCH_SIZE, seed=0, repeat=True)
        next(batches)  # opening the arrays is a one-off, not throughput
        start = time.perf_counter()
        sentences = 0
        for _ in range(num_batches):
            batch = next(batches)
            sentences += int(batch["targets_segmentation"].max(axis=1).sum()) if split == "train" else int(batch["weights"][:, 0].sum())
        seconds = time.perf_counter() - start
        print(f"{split:>10}: {num_batches * BATCH_SIZE / seconds:>9,.0f} rows/s, {sentences / seconds:>9,.0f} sentence pairs/s "
              f"per core ({num_batches / seconds:,.1f} batches of {BATCH_SIZE}/s)")


def gpu_step_time(data_dir: Path, steps: int) -> None:
    """Seconds per NAdamW training step of the compiled base model at batch 128, as the baseline trains."""
    from pytest_algoperf.api.upstream_names import install_upstream_aliases
    from pytest_algoperf.compilation import compile_like_upstream
    from pytest_algoperf.api.halton import hyperparameters_from_dict

    install_upstream_aliases()
    from submissions.nadamw import submission

    workload = get_workload("wmt")
    model, _ = workload.init_model_fn(prng.PRNGKey(0))
    model = compile_like_upstream(workload, model, "wmt")
    points = json.loads((Path(submission.__file__).parent / "tuning_search_space.json").read_text())
    hyperparameters = hyperparameters_from_dict(points[0])  # the baseline's first tuning point
    state = submission.init_optimizer_state(workload, model, None, hyperparameters, prng.PRNGKey(1))
    queue = workload._build_input_queue(prng.PRNGKey(2), "train", str(data_dir), BATCH_SIZE)

    def step(index: int) -> None:
        nonlocal state, model
        state, model, _ = submission.update_params(workload, model, workload.model_params_types, None, hyperparameters,
                                                   next(queue), workload.loss_type, state, [], index, None)

    for index in range(3):  # compilation and warm-up
        step(index)
    torch.cuda.synchronize()
    start = time.perf_counter()
    for index in range(steps):
        step(3 + index)
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    print(f"training step at batch {BATCH_SIZE} on {torch.cuda.get_device_name()}: {seconds * 1000:.1f} ms "
          f"({BATCH_SIZE / seconds:,.0f} rows/s needed from the pipeline)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="a data dir prepared by python -m workloads.wmt.prepare (default: synthetic)")
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--gpu-steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core: the figures are per core
    with tempfile.TemporaryDirectory(prefix="wmt_bench_") as scratch:
        if args.data_dir:
            data_dir = Path(args.data_dir)
        else:
            print(f"synthetic data: {SYNTHETIC_PAIRS:,} training pairs with WMT-like lengths")
            data_dir = Path(scratch)
            synthetic_data_dir(data_dir)
        pipeline_rates(data_dir / "wmt", args.batches)
        if torch.cuda.is_available():
            gpu_step_time(data_dir, args.gpu_steps)
        else:
            print("no GPU: training step time not measured")


if __name__ == "__main__":
    main()
