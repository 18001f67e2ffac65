"""Throughput of the finewebedu_lm input pipeline and of its preparation's tokenization, per CPU core.

Measures on one thread of one process, in tokens per second of CPU time of this process (the honest
per-core figure on a busy machine) and per wall second:
  tokenize        what each --workers process of prepare.py does with a work unit: read the parquet
                  `text` column, GPT-2 BPE + EOS per document, write the unit's token and offset files.
                  The text is Debian's licence texts (sample_data.py) repeated to --megabytes of text;
  assemble        prepare.py's last step: gathering the documents in permuted order into a stream;
  train batches   numpy_batches("train") at the per-GPU batch: shuffle buffer, one gather of the
                  batch's 1,025-token windows from the memmapped stream, the int32/int64 casts, then
                  torch_batches to CPU tensors (the host side of a step, less the pinned copy);
  eval batches    numpy_batches("validation") at the eval batch size of 256, padded and weighted.
The training stream is a random token file of --windows windows written to a temporary dir, so it
sits in the page cache: these are the pipeline's own costs, not the disk's. (On the real 18 GB
train stream the shuffle buffer keeps reads within 1,000 consecutive windows, 2 MB, so the disk
sees nearly sequential reads of 64 x 2 KB per step.)

What a GPU needs: the A100 benchmark's runs take about 0.41 s per step at a global batch of 64
sequences on 4 A100s (reference LM_AND_A100.md §4.12), i.e. 16 sequences, 16 x 1,024 = 16,384
predicted tokens, per GPU per step: about 40,000 tokens/s per GPU. Cores one GPU needs = that rate
/ (tokens per CPU second).

Usage: python benchmarks/finewebedu_lm_input_pipeline.py [--quick] [--megabytes 4] [--windows 20000] [--batch 64] [--batches 300]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path
from typing import Callable, Tuple

import numpy as np
import torch

from workloads.data_manifest import write_manifest
from workloads.finewebedu_lm import input_pipeline, prepare, sample_data

STEP_SECONDS = 0.41  # 4 x A100, global batch 64 (JAX 0.437 s, PyTorch 0.39-0.43 s)
SEQUENCES_PER_GPU = 64 // 4
TOKENS_PER_GPU_SECOND = SEQUENCES_PER_GPU * input_pipeline.SEQUENCE_LENGTH / STEP_SECONDS
FULL_SET_TOKENS = 9.95e9  # sample-10BT in GPT-2 tokens, one EOS per document
VCPUS_PER_GPU = 6  # the hosts of record


def timed(work: Callable[[], object], count: float) -> Tuple[float, float]:
    """(per wall second, per CPU second) of `count` items done by work()."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return count / (time.perf_counter() - wall), count / max(time.process_time() - cpu, 1e-9)


def tokenization(scratch: Path, megabytes: float) -> None:
    one_copy = sum(len(text.encode("utf-8")) for _, text in sample_data.license_texts())
    copies = max(1, round(megabytes * 1e6 / one_copy))
    sample_data.write_raw_dir(scratch / "raw", copies=copies)
    shard = prepare.find_shards(scratch / "raw")[0]
    unit = prepare.plan_units([shard], rows_per_unit=10**9)[0]
    work = scratch / "work"
    work.mkdir()
    result = []
    job = (unit["shard"], unit["row_groups"], str(work), unit["key"], unit["identity"], None)
    prepare.gpt2.load_encoding()  # the ranks are loaded once per worker, not per unit
    wall, cpu = timed(lambda: result.append(prepare.tokenize_unit(*job)), 1)
    _, documents, tokens = result[0]
    text_mb = copies * one_copy / 1e6
    print(f"tokenize ({documents:,} documents, {text_mb:.1f} MB of text, {tokens:,} tokens):")
    print(f"  {tokens * cpu:>12,.0f} tokens per CPU second ({text_mb * cpu:.1f} MB of text), {tokens * wall:,.0f} per wall second")
    print(f"  sample-10BT's ~{FULL_SET_TOKENS / 1e9:.2f} B tokens: {FULL_SET_TOKENS / (tokens * cpu) / 3600:.1f} core-hours "
          f"(about {FULL_SET_TOKENS / (tokens * cpu) / 60 / 16:.0f} min with --workers 16)")
    corpus = prepare._Corpus(work, [unit])
    order = np.random.default_rng(0).permutation(len(corpus))
    wall, cpu = timed(lambda: prepare.write_stream(corpus, order, scratch / "assembled.npy"), tokens)
    print(f"assemble (permuted gather into one stream): {cpu:,.0f} tokens per CPU second, {wall:,.0f} per wall second")


def pipeline(scratch: Path, windows: int, batch: int, batches: int) -> None:
    dataset_dir = scratch / input_pipeline.DATASET_NAME
    dataset_dir.mkdir()
    rng = np.random.default_rng(0)
    tokens = windows * input_pipeline.WINDOW_LENGTH
    stream = np.lib.format.open_memmap(dataset_dir / input_pipeline.TOKEN_FILES["train"], mode="w+", dtype=np.uint16, shape=(tokens,))
    for start in range(0, tokens, 1 << 24):
        stop = min(start + (1 << 24), tokens)
        stream[start:stop] = rng.integers(0, 50_257, stop - start, dtype=np.uint16)
    stream.flush()
    del stream
    validation_windows = max(4 * input_pipeline.EVAL_BATCH_SIZE, 1)
    np.save(dataset_dir / input_pipeline.TOKEN_FILES["validation"],
            rng.integers(0, 50_257, validation_windows * input_pipeline.WINDOW_LENGTH, dtype=np.uint16))
    write_manifest(dataset_dir, [], {"train": windows, "validation": validation_windows}, source="benchmark", subset=True)
    data = input_pipeline.open_prepared(dataset_dir)
    print(f"training stream: {windows:,} windows ({tokens * 2 / 1e6:,.0f} MB), batches of {batch} x {input_pipeline.WINDOW_LENGTH}")
    cpu_device = torch.device("cpu")
    numpy_train = input_pipeline.numpy_batches(data, "train", batch, seed=0)
    next(numpy_train)
    per_batch = batch * input_pipeline.SEQUENCE_LENGTH
    wall, cpu = timed(lambda: list(itertools.islice(numpy_train, batches)), batches * per_batch)
    print(f"train batches (numpy):          {cpu:>14,.0f} tokens per CPU second, {wall:,.0f} per wall second")
    torch_train = input_pipeline.torch_batches(input_pipeline.numpy_batches(data, "train", batch, seed=0), cpu_device)
    next(torch_train)
    wall, train_cpu = timed(lambda: list(itertools.islice(torch_train, batches)), batches * per_batch)
    print(f"train batches (+ torch):        {train_cpu:>14,.0f} tokens per CPU second, {wall:,.0f} per wall second")
    eval_size = input_pipeline.EVAL_BATCH_SIZE
    wall, cpu = timed(lambda: list(input_pipeline.numpy_batches(data, "validation", eval_size, num_batches=4)), 4 * eval_size * 1024)
    print(f"eval batches of {eval_size} (numpy):   {cpu:>14,.0f} tokens per CPU second, {wall:,.0f} per wall second")
    need = TOKENS_PER_GPU_SECOND
    print(f"one GPU at {SEQUENCES_PER_GPU} sequences per {STEP_SECONDS} s step takes {need:,.0f} tokens/s: "
          f"{need / train_cpu:.4f} cores (of {VCPUS_PER_GPU} per GPU) at {train_cpu:,.0f} tokens per CPU second; "
          f"one core keeps {train_cpu / need:,.0f} such GPUs fed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a few seconds in all")
    parser.add_argument("--megabytes", type=float, help="text tokenized (default 4, --quick 1)")
    parser.add_argument("--windows", type=int, help="windows of the random training stream (default 20,000, --quick 4,000)")
    parser.add_argument("--batch", type=int, default=64, help="sequences per batch (64: the reference's global batch)")
    parser.add_argument("--batches", type=int, help="train batches timed (default 300, --quick 50)")
    args = parser.parse_args()
    megabytes = args.megabytes or (1.0 if args.quick else 4.0)
    windows = args.windows or (4_000 if args.quick else 20_000)
    batches = args.batches or (50 if args.quick else 300)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        tokenization(scratch, megabytes)
        pipeline(scratch, windows, args.batch, batches)


if __name__ == "__main__":
    main()
