"""Generate a synthetic AlgoPerf log tree shaped like the v0.5 external-tuning leaderboard.

The published v0.5 external-tuning logs hold 3,718 ``eval_measurements.csv`` files (51 MB):
11 submissions x 5 studies x 14 workloads (8 base + 6 held-out) x 5 trials, less the trials
that are missing. This generator writes the same shape: every column the runner logs for each
workload (train/*, validation/*, test/*, score, total_duration, accumulated_*_time, global_step,
preemption_count; spec §3.5), in the runner's sorted order; eval counts from each workload's v0.5
budget and eval period; every float written in full as pandas writes the runner's float64 values
(float32 metrics too: 0.4903578006729848), so that rows are 175-290 bytes wide like the published
logs' 190-315; and learning curves of which roughly 40% cross the target, so that scoring has
real work to do. It is deterministic for a given seed.

    python benchmarks/scoring_log_tree.py /tmp/v05_like_tree
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

# v0.5 external-tuning submissions (spec §6.6).
SUBMISSIONS = ("shampoo_submission", "schedule_free_adamw", "generalized_adam", "cyclic_lr",
               "nadamp", "baseline", "amos", "caspr_adaptive", "lawa_queue", "lawa_ema",
               "schedule_free_prodigy")
NUM_STUDIES = 5
NUM_TRIALS = 5
# Of the 3,850 possible trials, the published tree has 3,718.
NUM_FILES = 3718

# workload: (metric columns, target metric, validation target, minimise?, v0.5 budget s,
#            eval period s); held-out variants share their base workload's columns and budget.
_BASE = {
    "criteo1tb": (("loss",), "loss", 0.123735, True, 7703, 120),
    "fastmri": (("loss", "ssim"), "ssim", 0.723653, False, 8859, 80),
    "imagenet_resnet": (("accuracy", "loss"), "accuracy", 0.77431, False, 63008, 510),
    "imagenet_vit": (("accuracy", "loss"), "accuracy", 0.77309, False, 77520, 420),
    "librispeech_conformer": (("ctc_loss", "wer"), "wer", 0.085884, True, 61068, 1440),
    "librispeech_deepspeech": (("ctc_loss", "wer"), "wer", 0.119936, True, 55506, 1440),
    "ogbg": (("accuracy", "loss", "mean_average_precision"), "mean_average_precision", 0.28098,
             False, 18477, 240),
    "wmt": (("accuracy", "bleu", "loss"), "bleu", 30.8491, False, 48151, 840),
}
_HELD_OUT = {
    "criteo1tb_embed_init": ("criteo1tb", 0.129657),
    "fastmri_tanh": ("fastmri", 0.71784),
    "imagenet_resnet_large_bn_init": ("imagenet_resnet", 0.76526),
    "librispeech_conformer_layernorm": ("librispeech_conformer", 0.09731),
    "ogbg_model_size": ("ogbg", 0.269446),
    "wmt_glu_tanh": ("wmt", 29.5779),
}
WORKLOADS = {**_BASE, **{name: _BASE[base][:2] + (target,) + _BASE[base][3:]
                         for name, (base, target) in _HELD_OUT.items()}}


def write_tree(root: Path, seed: int = 0) -> tuple[int, int]:
    """Write the tree under ``root``; return (number of files, total bytes)."""
    rng = np.random.default_rng(seed)
    trials = list(itertools.product(range(len(SUBMISSIONS)), range(NUM_STUDIES), WORKLOADS,
                                    range(1, NUM_TRIALS + 1)))
    missing = set(rng.choice(len(trials), len(trials) - NUM_FILES, replace=False).tolist())
    files = size = 0
    for number, (submission, study, workload, trial) in enumerate(trials):
        if number in missing:
            continue
        framework = "jax" if submission % 2 else "pytorch"
        directory = (root / SUBMISSIONS[submission] / f"study_{study}" / f"{workload}_{framework}"
                     / f"trial_{trial}")
        directory.mkdir(parents=True, exist_ok=True)
        text = _measurements_csv(WORKLOADS[workload], rng)
        (directory / "eval_measurements.csv").write_text(text)
        files += 1
        size += len(text)
    return files, size


def _measurements_csv(spec: tuple, rng: np.random.Generator) -> str:
    metrics, target_metric, target, minimize, budget, period = spec
    # About one eval per period over the budget; the runner stops once both targets are met, so
    # many runs end early. The spread is chosen so that the tree weighs the published 51 MB.
    max_evals = int(budget / period)
    n = max(2, int(max_evals * rng.uniform(0.38, 1.04)))
    index = np.arange(n)
    step_time = rng.uniform(0.05, 1.0)
    score = np.cumsum(np.r_[rng.uniform(20, 300), period * rng.uniform(0.97, 1.03, n - 1)])
    step = np.maximum(1, (score / step_time).astype(np.int64))
    step[0] = 1  # the first eval comes after the first step
    eval_time = np.cumsum(rng.uniform(5, 60, n))
    columns = {
        "accumulated_eval_time": eval_time,
        "accumulated_logging_time": np.cumsum(rng.uniform(0, 0.05, n)),
        "accumulated_submission_time": score,
        "global_step": step,
        "preemption_count": np.zeros(n, dtype=np.int64),
        "score": score,
        "total_duration": score + eval_time + rng.uniform(10, 100),
    }
    # Relative distance to the target: large at first, settling near it; below 0 means reached.
    final_gap = rng.normal(0.005, 0.02)
    gap = final_gap + (0.5 - final_gap) * np.exp(-4 * index / n) + rng.normal(0, 0.002, n)
    for split in ("train", "validation", "test"):
        for metric in metrics:
            scale = target if metric == target_metric else rng.uniform(0.1, 5)
            sign = 1 if (minimize if metric == target_metric else "loss" in metric) else -1
            # The runner's metrics are float32 (train, validation) or float64 (test), written
            # by pandas as float64 in full: 0.4903578006729848, not 0.4903578.
            values = scale * (1 + sign * gap * rng.uniform(0.9, 1.1))
            if split != "test":
                values = values.astype(np.float32).astype(np.float64)
            columns[f"{split}/{metric}"] = values
        if split != "train":
            columns[f"{split}/num_examples"] = np.full(n, rng.integers(3000, 90000))
    names = sorted(columns)
    header = ",".join(names)
    # numpy prints the shortest repr that round-trips, as Python and pandas do.
    formatted = [columns[name].astype(str).tolist() for name in names]
    rows = [",".join(row) for row in zip(*formatted, strict=True)]
    return header + "\n" + "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="directory to create the tree in")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    files, size = write_tree(args.root, args.seed)
    print(f"wrote {files} files, {size / 1e6:.1f} MB under {args.root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
