"""Trial checkpoints: what a preempted trial needs to continue exactly where it stopped, written off the clock.

A checkpoint is upstream's (reference §3.7) — one `torch.save` file `checkpoint_<global_step>` in the
trial folder holding `model_params`, `optimizer_state` (each entry's `state_dict()`), `model_state`,
`train_state`, `eval_results`, `global_step` and `preemption_count` — plus what upstream's restore
leaves out, so a resumed trial continues the same run instead of restarting its data and rngs:

    rng_state         torch (CPU and every CUDA device), numpy's and Python's global generators
    batches_drawn     how many batches the trial took from its input queue (replayed on resume)
    outcome           best metric so far, time to target, divergence, skipped evals
    logged_rows       the rows of measurements.csv and eval_measurements.csv so far

Files are written to a temporary name and renamed into place, so a kill during a write leaves
the previous checkpoint usable; the latest two are kept, and a latest one that does not load
falls back to the one before it.
"""

from __future__ import annotations

import dataclasses
import random
import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np

from pytest_algoperf.results import write_file_atomically
from workloads.parallel import unwrap_model


CHECKPOINT_PATTERN = re.compile(r"^checkpoint_(\d+)$")  # upstream's names, found by its restore too
KEEP_LATEST = 2


@dataclasses.dataclass(frozen=True)
class CheckpointSchedule:
    """When a trial checkpoints: after every `every_evals`-th eval, or after the first eval once
    `every_seconds` of wall time passed since the last checkpoint; never when both are None."""

    every_evals: Optional[int] = 1
    every_seconds: Optional[float] = None

    @classmethod
    def parse(cls, text: str) -> "CheckpointSchedule":
        """`N` (every N-th eval), `Ns` (every N seconds of wall time) or `0` (never)."""
        value = str(text).strip()
        try:
            if value.endswith("s"):
                seconds = float(value[:-1])
                if not seconds > 0:
                    raise ValueError
                return cls(every_evals=None, every_seconds=seconds)
            count = int(value)
            if count < 0:
                raise ValueError
        except ValueError:
            raise ValueError("use N (every N-th eval), Ns (every N seconds, e.g. 1800s) or 0 (never)") from None
        return cls(every_evals=count or None, every_seconds=None)

    @property
    def enabled(self) -> bool:
        return self.every_evals is not None or self.every_seconds is not None

    def is_due(self, evals_since_checkpoint: int, seconds_since_checkpoint: float) -> bool:
        if self.every_evals is not None:
            return evals_since_checkpoint >= self.every_evals
        if self.every_seconds is not None:
            return seconds_since_checkpoint >= self.every_seconds
        return False


class CountingQueue:
    """The trial's input queue, counting the batches drawn so a resumed trial can skip them."""

    def __init__(self, queue: Iterator[Any], already_drawn: int = 0) -> None:
        self._queue = queue
        self.batches_drawn = already_drawn

    def __iter__(self) -> "CountingQueue":
        return self

    def __next__(self) -> Any:
        batch = next(self._queue)
        self.batches_drawn += 1
        return batch

    def skip(self, count: int) -> None:
        """Off the clock: draws and drops `count` batches, so the queue continues where the checkpoint left it."""
        for _ in range(count):
            next(self._queue)
        self.batches_drawn += count


def checkpoint_path(directory: Path, global_step: int) -> Path:
    return Path(directory) / f"checkpoint_{global_step}"


def checkpoint_files(directory: Path) -> List[Path]:
    """Complete checkpoints in a trial folder, oldest first (temporary files of interrupted writes are not)."""
    if not Path(directory).is_dir():
        return []
    found = [(int(match.group(1)), path) for path in Path(directory).iterdir() if (match := CHECKPOINT_PATTERN.match(path.name))]
    return [path for _, path in sorted(found)]


def rng_state() -> Dict[str, Any]:
    import torch

    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][: torch.cuda.device_count()])


def optimizer_state_dicts(optimizer_state: Any) -> Dict[str, Any]:
    """Upstream's rule: every entry with a `state_dict()`; the others are not checkpointed."""
    if not isinstance(optimizer_state, dict):
        return {}
    return {key: value.state_dict() for key, value in optimizer_state.items() if hasattr(value, "state_dict")}


def save(directory: Path, payload: Dict[str, Any]) -> Path:
    """Writes `checkpoint_<global_step>` atomically and keeps only the latest KEEP_LATEST."""
    import torch

    path = checkpoint_path(directory, payload["global_step"])
    write_file_atomically(path, lambda out: torch.save(payload, out))
    for old in checkpoint_files(directory)[:-KEEP_LATEST]:
        old.unlink(missing_ok=True)
    return path


def load_latest(directory: Path, device: Any, warn: Callable[[str], None] = lambda message: None) -> Optional[Dict[str, Any]]:
    """The newest checkpoint that loads, or None; one that does not load is named through `warn`."""
    import torch

    for path in reversed(checkpoint_files(directory)):
        try:
            return torch.load(path, map_location=device, weights_only=False)
        except Exception as error:  # a truncated or corrupt file: the one before it still holds
            warn(f"{path} does not load ({type(error).__name__}: {error}); using the checkpoint before it")
    return None


def restore_model_and_optimizer(checkpoint: Dict[str, Any], model: Any, optimizer_state: Any) -> List[str]:
    """Loads the saved parameters into the (unwrapped) model and each optimizer-state entry; returns notes
    for entries the checkpoint has no state for."""
    unwrap_model(model).load_state_dict(checkpoint["model_params"])
    notes = []
    saved = checkpoint["optimizer_state"]
    if isinstance(optimizer_state, dict):
        for key, value in optimizer_state.items():
            if not hasattr(value, "load_state_dict"):
                continue
            if key in saved:
                value.load_state_dict(saved[key])
            else:
                notes.append(f"optimizer_state[{key!r}] is not in the checkpoint and starts fresh")
    return notes
