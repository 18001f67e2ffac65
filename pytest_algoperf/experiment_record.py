"""The experiment record: what an experiment folder's results were made with, so none get mixed.

`<results_dir>/<experiment>/experiment.json` holds the submission's hash, the hardware and the
settings that change results. A later session writing into the same folder (a resumed run, another
shard of it) must have the same record; if it does not, its trials would be scored together with
trials that do not belong with them, so the session is refused with a message naming every
difference and both ways out. Pure functions: the session decides when to call them.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List

import pytest

from pytest_algoperf.results import write_json

if TYPE_CHECKING:
    from pytest_algoperf.options import Settings

RECORD_FILE = "experiment.json"
FORMAT_VERSION = 1

# The settings a trial's results depend on, each with the words a difference is named by. Left
# out, because the same trial comes out the same whatever they are: where things live
# (results_dir, data_dir, experiment), how the work is spread (shard, xdist workers), how long a
# call may hang (timeout, ddp timeout), how often a trial checkpoints off the clock (a resumed
# trial continues exactly), overwrite, reference logs to compare against and the one speedups
# are against (compare, speedup_base), whether workload variants are collected (variants: which
# items run, not what one gives), and the number of studies (study s's seed is derived from s
# alone, so more studies extend the others).
RESULT_SETTINGS = {
    "mode": "mode (smoke, time-to-target or step-time)",  # smoke trials train on tiny data
    "ruleset": "ruleset (--algoperf-ruleset)",  # search space or none, budgets
    "benchmark_version": "benchmark version (--algoperf-benchmark-version)",  # targets, budgets
    "seed": "base seed (--algoperf-seed)",  # every trial's seed and the Halton order
    "seed_scope": "seed scope (--algoperf-seeds)",  # one seed per study or per trial
    # The Halton points are shuffled as a whole, so trial k's hyperparameters depend on the count.
    "trials": "trials per study (--algoperf-trials)",
    "budget_scale": "budget scale (--algoperf-budget-scale)",  # where a trial stops
    "max_steps": "max steps (--algoperf-max-steps)",  # where a trial stops
    "smoke_steps": "smoke steps (--algoperf-smoke-steps)",  # where a smoke trial stops
    "torch_compile": "torch.compile (--algoperf-torch-compile)",  # step time, and the numerics
    "precision": "precision (--algoperf-precision)",  # finewebedu_lm's float32 or bf16 autocast
    # Without it a trial trains on past a non-finite loss, and its logs go on to the budget.
    "stop_diverged": "stop diverged (--algoperf-stop-diverged)",
}
LABELS = {
    "format_version": "record format",
    "submission_hash": "submission hash",
    "hardware": "hardware",
    "world_size": "processes per trial (DDP world size)",
    **RESULT_SETTINGS,
}


def describe(settings: Settings, submission_hash: str, hardware: str, world_size: int = 1) -> Dict[str, Any]:
    """The record of this session: `settings` is the plugin's `Settings`; `hardware` says what the
    trials run on (e.g. "4x NVIDIA A100-SXM4-40GB"); `world_size` is the number of DDP processes
    per trial (1 without torchrun)."""
    values = {name: getattr(settings, name) for name in RESULT_SETTINGS}
    if values["mode"] != "smoke":
        values["smoke_steps"] = None  # only smoke sessions use it
    record = {
        "format_version": FORMAT_VERSION,
        "submission_hash": submission_hash,
        "hardware": hardware,
        "world_size": world_size,
        **values,
    }
    # As it reads back from the file: tuples become lists, Paths strings.
    return json.loads(json.dumps(record, default=str))


_MISSING = object()


def differences(stored: Dict[str, Any], current: Dict[str, Any]) -> List[str]:
    """One readable line per key whose value differs, known keys first; a key only one side has
    counts as a difference (it was written by another version of the plugin)."""
    keys = list(LABELS) + sorted((set(stored) | set(current)) - set(LABELS))
    lines = []
    for key in keys:
        before, now = stored.get(key, _MISSING), current.get(key, _MISSING)
        if (before is _MISSING and now is _MISSING) or before == now:
            continue
        label = LABELS.get(key, key)
        if key == "submission_hash" and before is not _MISSING and now is not _MISSING:
            lines.append(f"{label}: results were made with {before}, this run has {now} "
                         f"(the submission or its search space changed)")
        else:
            lines.append(f"{label}: {_shown(before, 'not recorded')} before, {_shown(now, 'not set')} now")
    return lines


def _shown(value: Any, missing: str) -> str:
    return missing if value is _MISSING else repr(value)


def check_or_record(experiment_dir: Path, record: Dict[str, Any], overwrite: bool) -> None:
    """Write the record into a new experiment folder, or check it against the one already there.

    Same record: nothing happens. Another one: `pytest.UsageError` naming every difference, unless
    `overwrite`, which rewrites the record; deleting the old trial folders is then the caller's
    job, before any trial runs. Several processes (rank 0 of several shards) may call this at the
    same time: the file appears at once, complete, and only the first of them creates it, so
    sessions racing with different records are refused too.
    """
    path = Path(experiment_dir) / RECORD_FILE
    current = json.loads(json.dumps(record, default=str))
    if not path.exists() and _create(path, current):
        return
    try:
        stored = json.loads(path.read_text())
        if not isinstance(stored, dict):
            raise ValueError("it does not hold a JSON object")
    except ValueError as error:  # json.JSONDecodeError is one
        if overwrite:
            write_json(path, current)
            return
        raise pytest.UsageError(
            f"{path} is not a valid experiment record ({error}). It says which submission and "
            f"settings the results in {path.parent} were made with; rerun with "
            f"--algoperf-overwrite to start the trials over, or write this run elsewhere with "
            f"--algoperf-experiment=NAME"
        ) from None
    changed = differences(stored, current)
    if not changed:
        return
    if overwrite:
        write_json(path, current)
        return
    raise pytest.UsageError(
        f"{path.parent} holds results made with another submission or settings; this run's "
        f"trials would be scored together with them:\n  " + "\n  ".join(changed) + "\n"
        f"Rerun with --algoperf-overwrite to start the trials over (each trial's folder is emptied "
        f"when it runs again), or keep them and write this run elsewhere with --algoperf-experiment=NAME."
    )


def _create(path: Path, record: Dict[str, Any]) -> bool:
    """Write `path` only if it does not exist yet; False if another process got there first."""
    staged = path.with_name(f".{path.name}.{uuid.uuid4().hex}")  # unique across hosts too
    write_json(staged, record)
    try:
        os.link(staged, path)  # atomic, and fails if the file exists
        return True
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: last writer wins
        if path.exists():
            return False
        os.replace(staged, path)
        return True
    finally:
        staged.unlink(missing_ok=True)


def check_session_record(session: Any) -> None:
    """The session's record against its experiment folder's (a `BenchmarkSession`; UsageError on a mismatch).

    Devices per trial: the torchrun world under DDP, the GPUs each xdist worker gets on CUDA, else one.
    """
    import torch

    from pytest_algoperf.system_info import hardware_identity

    settings = session.settings
    if session.ranks.distributed:
        devices_per_trial = session.ranks.world_size
    else:
        devices_per_trial = settings.gpus_per_trial if torch.cuda.is_available() else 1
    record = describe(settings, session.submission_hash, hardware_identity(), world_size=devices_per_trial)
    check_or_record(session.experiment_dir, record, settings.overwrite)
