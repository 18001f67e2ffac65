"""Throughput of the LibriSpeech input pipeline and of its preparation's FLAC decoding, per CPU core.

Measures on one thread of one process, in utterances per second of CPU time of this process (the
honest per-core figure on a busy machine) and per wall second:
  streaming       the main process of prepare.py: gunzip + untar of an archive (FLAC bytes to memory);
  FLAC decode     what each --workers process of prepare.py does per utterance: soundfile's decode
                  of the FLAC bytes (held in memory) + the int64 .npy write;
  npy load        reading an utterance's two .npy files (np.load), what a DataLoader worker does;
  collate         padding a per-GPU batch to (B, 320,000) / (B, 256) float32 with paddings;
  train batches   the whole training path: build_input_iterator("train") with no worker processes
                  (load + pad + collate in this process), at the per-GPU batch.

What a GPU needs: the A100 benchmark (4 x A100, global batch 256, so 64 utterances per GPU) sets
its budgets from JAX step times of 0.599 s for the Conformer and 0.981 s for DeepSpeech
(reference LM_AND_A100.md), i.e. about 107 and 65 utterances/s per A100. Cores one GPU needs =
that rate / (utterances per CPU second); the hosts of record have 6 vCPUs per GPU.

Utterances: the sample archives (workloads/librispeech/sample_data.py; needs the Debian speech
packages) with prompts joined to --seconds each (LibriSpeech's average is 12.3 s), prepared into
a temporary dir. Freshly written files sit in the page cache, so the figures are the pipeline's
own cost, not the disk's: at 12.3 s an utterance is 1.6 MB of int64 samples, so 107 utterances/s
need 170 MB/s per GPU from disk (a quarter of that with prepare's --audio-dtype int16).
--data-dir takes a prepared data dir instead (its train split).

Usage: python benchmarks/librispeech_input_pipeline.py [--data-dir DIR] [--utterances 80] [--seconds 12.3] [--batch 64] [--batches 3]
"""

from __future__ import annotations

import argparse
import tarfile
import tempfile
import time
from pathlib import Path
from typing import List, Tuple

import torch

from workloads.librispeech import input_pipeline, prepare, sample_data
from workloads.parallel import World

A100_UTTERANCES_PER_SEC = {"Conformer": 64 / 0.599, "DeepSpeech": 64 / 0.981}  # per-GPU batch / A100 JAX step time
VCPUS_PER_GPU = 6
FULL_SET_UTTERANCES = sum(prepare.RAW_COUNTS.values())  # every utterance the preparation decodes
ARCHIVE_GB = 6.3 + 23 + 30 + 0.337 + 0.314 + 0.346  # the six archives as OpenSLR lists them


def sample_dataset(directory: Path, utterances: int, seconds: float) -> Path:
    counts = {subset: 1 for subset in input_pipeline.SUBSETS}
    counts["train-clean-100"] = utterances
    sample_data.write_raw_dir(directory / "raw", counts, seconds=seconds)
    prepare.prepare(directory / "raw", directory / "data", subset=True, workers=1)
    return directory / "data" / input_pipeline.DATASET_NAME


def flac_bytes(raw: Path) -> List[Tuple[str, bytes]]:
    with tarfile.open(raw / "train-clean-100.tar.gz") as tar:
        return [(Path(m.name).stem, tar.extractfile(m).read()) for m in tar if m.name.endswith(".flac")]


def timed(work, count: int) -> Tuple[float, float]:
    """(per wall second, per CPU second) of `count` items done by work()."""
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return count / (time.perf_counter() - wall), count / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="a prepared data dir (default: sample archives prepared in a temporary dir)")
    parser.add_argument("--utterances", type=int, default=80, help="train-clean-100 utterances of the sample set")
    parser.add_argument("--seconds", type=float, default=12.3, help="length of each sample utterance (LibriSpeech's mean: 12.3 s)")
    parser.add_argument("--batch", type=int, default=64, help="per-GPU batch (256 over 4 A100s)")
    parser.add_argument("--batches", type=int, default=3, help="train batches timed")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        if args.data_dir:
            dataset_dir = Path(args.data_dir).expanduser() / input_pipeline.DATASET_NAME
        else:
            dataset_dir = sample_dataset(scratch, args.utterances, args.seconds)
            flacs = flac_bytes(scratch / "raw")
            out = scratch / "decoded"
            out.mkdir()
            archive = scratch / "raw" / "train-clean-100.tar.gz"
            megabytes = archive.stat().st_size / 1e6
            _, streamed = timed(lambda: list(prepare._archive_members(archive, "train-clean-100")), 1)
            print(f"archive streaming (gunzip + untar, the main process): {streamed * megabytes:,.0f} MB per CPU second; the "
                  f"{ARCHIVE_GB:.0f} GB of archives take {ARCHIVE_GB * 1e3 / (streamed * megabytes) / 60:,.0f} min")
            results = []
            wall, cpu = timed(lambda: results.extend(prepare.decode_utterance(u, data, str(out), "int64") for u, data in flacs), len(flacs))
            audio_seconds = sum(samples for _, samples, _ in results) / input_pipeline.SAMPLE_RATE
            print(f"{len(flacs)} utterances of {audio_seconds / len(flacs):.1f} s on average")
            print(f"FLAC decode + npy write:     {cpu:>8,.1f} utterances per CPU second ({cpu * audio_seconds / len(flacs):,.0f} s of "
                  f"audio per CPU second), {wall:,.1f} per wall second")
            print(f"  the full set's {FULL_SET_UTTERANCES:,} utterances: {FULL_SET_UTTERANCES / cpu / 3600:,.1f} core-hours of decoding "
                  "(with a few --workers the archive stream and the disk, 440 GB of int64 samples, set the pace)")
        dataset = input_pipeline.LibriSpeechDataset(dataset_dir, "train")
        indices = [i % len(dataset) for i in range(max(args.batch, len(dataset)))]
        items = []
        wall, cpu = timed(lambda: items.extend(dataset[i] for i in indices), len(indices))
        print(f"npy load (audio + targets):  {cpu:>8,.1f} utterances per CPU second, {wall:,.1f} per wall second")
        batch_items = items[: args.batch]
        wall, cpu = timed(lambda: [input_pipeline.collate(batch_items) for _ in range(3)], 3 * len(batch_items))
        print(f"pad + collate, batch {args.batch}:     {cpu:>8,.1f} utterances per CPU second, {wall:,.1f} per wall second")
        world = World(use_ddp=False, rank=0, device=torch.device("cpu"), num_devices=0)
        stream = input_pipeline.build_input_iterator(dataset_dir, "train", [0, 0], args.batch, world)
        next(stream)  # the loader's start-up is a one-off
        wall, train_cpu = timed(lambda: [next(stream) for _ in range(args.batches)], args.batches * args.batch)
        print(f"train batches of {args.batch}:         {train_cpu:>8,.1f} utterances per CPU second, {wall:,.1f} per wall second")
        for model, rate in A100_UTTERANCES_PER_SEC.items():
            print(f"one A100 training the {model} takes {rate:,.0f} utterances/s: {rate / train_cpu:.2f} cores "
                  f"(of {VCPUS_PER_GPU} per GPU) at {train_cpu:,.0f} utterances per CPU second")


if __name__ == "__main__":
    main()
