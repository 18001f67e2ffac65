"""Rerunning a benchmark command continues it: finished trials are reused, interrupted ones resume.

Per trial folder, at the start of its item:

    trial_outcome.json, no trial_running.json   finished: its stored result is reported (marked
                                                reused) and scored; the trial does not run again
    trial_running.json and a checkpoint          interrupted: the trial resumes from the checkpoint
    anything else (nothing, no checkpoint yet,   the trial starts over in an emptied folder
    a trial that ended in a submission error)

`--algoperf-overwrite` starts every trial over. Only time-to-target sessions resume; smoke and
step-time sessions always run afresh. That the folder's results came from the same submission and
settings is checked once per session (experiment_record.py), before any trial starts.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from pytest_algoperf import trial_checkpoints
from pytest_algoperf.results import TRIAL_OUTCOME_FILE, TRIAL_RUNNING_FILE, write_json

FRESH, FINISHED, INTERRUPTED = "fresh", "finished", "interrupted"


@dataclasses.dataclass(frozen=True)
class TrialHistory:
    state: str  # FRESH, FINISHED or INTERRUPTED
    record: Optional[Dict[str, Any]] = None  # FINISHED: the stored trial record
    checkpoint_file: Optional[str] = None  # INTERRUPTED: the checkpoint to resume from


def _stored_record(directory: Path) -> Optional[Dict[str, Any]]:
    try:
        return json.loads((directory / TRIAL_OUTCOME_FILE).read_text())
    except (OSError, ValueError):
        return None


def trial_history(directory: Path) -> TrialHistory:
    """What the folder holds of an earlier run of this trial."""
    directory = Path(directory)
    running = (directory / TRIAL_RUNNING_FILE).is_file()
    record = _stored_record(directory)
    if not running and record is not None and record.get("status") != "error":
        return TrialHistory(FINISHED, record=record)
    checkpoints = trial_checkpoints.checkpoint_files(directory)
    if running and checkpoints:
        return TrialHistory(INTERRUPTED, checkpoint_file=str(checkpoints[-1]))
    return TrialHistory(FRESH)


def load_checkpoint(history: TrialHistory, device: Any, warn: Callable[[str], None]) -> Optional[Dict[str, Any]]:
    """The interrupted trial's newest loadable checkpoint (None when none loads: the trial starts over)."""
    if history.state != INTERRUPTED:
        return None
    return trial_checkpoints.load_latest(Path(history.checkpoint_file).parent, device, warn)


def mark_running(directory: Path, preemption_count: int) -> None:
    write_json(Path(directory) / TRIAL_RUNNING_FILE, {"started": time.time(), "preemption_count": preemption_count})


def mark_finished(directory: Path, record: Dict[str, Any]) -> None:
    """The outcome first, then the marker goes: a kill in between leaves a trial that resumes, never a half one."""
    write_json(Path(directory) / TRIAL_OUTCOME_FILE, record)
    (Path(directory) / TRIAL_RUNNING_FILE).unlink(missing_ok=True)


def reused_record(history: TrialHistory) -> Dict[str, Any]:
    return {**history.record, "reused": True}
