"""Per-trial result files in AlgoPerf's layout and formats (reference §3.5), written atomically.

    <results_dir>/<experiment>/study_<s>/<workload>_pytorch/trial_<k>/
        hparams.json  meta_data_0.json  flags_0.json  eval_measurements.csv  measurements.csv

Every file is written to a temporary name and renamed into place, so an
interrupted run leaves either the previous complete file or the new one.
"""

from __future__ import annotations

import csv
import functools
import inspect
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Dict, Iterable, List, Optional

FRAMEWORK = "pytorch"
EVAL_MEASUREMENTS = "eval_measurements.csv"
MEASUREMENTS = "measurements.csv"
TRIAL_OUTCOME_FILE = "trial_outcome.json"  # our own: status (reached, not reached, diverged, error), stop reason, divergence
# Our own: present from a trial's start until its outcome is written, so an interrupted trial is known
# as one (the scorer leaves it out; scoring/layout.py reads the same name).
TRIAL_RUNNING_FILE = "trial_running.json"


def experiment_dir(results_dir: Path, experiment: str) -> Path:
    return Path(results_dir) / experiment


def trial_dir(results_dir: Path, experiment: str, study: int, workload: str, trial: int) -> Path:
    return experiment_dir(results_dir, experiment) / f"study_{study}" / f"{workload}_{FRAMEWORK}" / f"trial_{trial}"


def write_atomically(path: Path, text: str) -> None:
    write_file_atomically(path, lambda out: out.write(text.encode()))


def write_file_atomically(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """`write(binary file)` into a temporary name beside `path`, synced, then renamed into place:
    readers (and a run killed mid-write) see the previous file or the new one, never part of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: Path, payload: Any) -> None:
    write_atomically(path, json.dumps(payload, indent=2, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "name"):
        return value.name
    return str(value)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    return str(value)


def rows_to_csv(rows: List[Dict[str, Any]]) -> str:
    """Columns sorted alphabetically over the union of keys, as upstream's logger creates them."""
    columns = sorted({key for row in rows for key in row})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(row.get(column)) for column in columns])
    return buffer.getvalue()


class TrialLogger:
    """Upstream's MetricLogger for one trial: `append_scalar_metrics` as submissions call it.

    Rows logged by the submission during training are kept in memory and
    flushed with the next eval (off the clock), so logging costs the
    submission no disk I/O inside its timed step.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.measurements: List[Dict[str, Any]] = []
        self.eval_measurements: List[Dict[str, Any]] = []
        self.non_finite_loss_step: Optional[int] = None

    def append_scalar_metrics(
        self, metrics: Dict[str, Any], global_step: int, preemption_count: Optional[int] = None, is_eval: bool = False
    ) -> None:
        row = {key: (value.item() if hasattr(value, "item") else value) for key, value in metrics.items()}
        row["global_step"] = global_step
        if preemption_count is not None:
            row["preemption_count"] = preemption_count
        self._note_loss(row)
        self.measurements.append(row)
        if is_eval:
            self.eval_measurements.append(row)
            self.flush()

    def _note_loss(self, row: Dict[str, Any]) -> None:
        """Remembers the first step whose logged loss is not finite (a divergence the evals may not show)."""
        loss = row.get("loss")
        if self.non_finite_loss_step is None and isinstance(loss, float) and not math.isfinite(loss):
            self.non_finite_loss_step = row["global_step"]

    def rows(self) -> Dict[str, List[Dict[str, Any]]]:
        """Everything logged so far, as a checkpoint keeps it."""
        return {"measurements": list(self.measurements), "eval_measurements": list(self.eval_measurements)}

    def restore_rows(self, measurements: List[Dict[str, Any]], eval_measurements: List[Dict[str, Any]]) -> None:
        """A resumed trial's logs are the checkpoint's rows: rows written after it (the run went on before
        it was killed) are dropped from the files, so none is duplicated when the trial repeats those steps."""
        self.measurements = list(measurements)
        self.eval_measurements = list(eval_measurements)
        self.non_finite_loss_step = None
        for row in self.measurements:
            self._note_loss(row)
        for name in (EVAL_MEASUREMENTS, MEASUREMENTS):
            (self.directory / name).unlink(missing_ok=True)
        self.flush()

    def flush(self) -> None:
        if self.eval_measurements:
            write_atomically(self.directory / EVAL_MEASUREMENTS, rows_to_csv(self.eval_measurements))
        if self.measurements:
            write_atomically(self.directory / MEASUREMENTS, rows_to_csv(self.measurements))

    def write_hparams(self, hyperparameters: Optional[Dict[str, Any]]) -> None:
        if hyperparameters is not None:
            write_json(self.directory / "hparams.json", hyperparameters)

    def write_run_description(self, meta_data: Dict[str, Any], flags: Dict[str, Any], preemption_count: int = 0) -> None:
        write_json(self.directory / f"meta_data_{preemption_count}.json", meta_data)
        write_json(self.directory / f"flags_{preemption_count}.json", flags)


def read_hparams(directory: Path) -> Optional[Dict[str, Any]]:
    path = Path(directory) / "hparams.json"
    return json.loads(path.read_text()) if path.is_file() else None


# Upstream leaves these two out by name: they are dicts, and raise before the model exists.
SKIPPED_WORKLOAD_PROPERTIES = ("param_shapes", "model_params_types")
_PROPERTY_TYPES = (property, functools.cached_property)


def _is_property(cls: type, name: str) -> bool:
    return isinstance(inspect.getattr_static(cls, name, None), _PROPERTY_TYPES)


@functools.lru_cache(maxsize=None)
def _base_class_attributes() -> frozenset:
    """Non-property names our own workload base classes define, declare or set in __init__ (name,
    benchmark_version, metrics_logger, REFERENCE_COUNTS, ...): this plugin's
    bookkeeping, which upstream's workloads do not have. A workload that sets one of the base's
    properties as a plain value (`eval_batch_size = 128`) still has it logged."""
    from pytest_algoperf.api.spec import Workload
    from workloads.base import BenchmarkWorkload

    names = set()
    for cls in (BenchmarkWorkload, Workload):
        names.update(vars(cls), getattr(cls, "__annotations__", {}), cls.__init__.__code__.co_names)
    return frozenset(name for name in names if not _is_property(BenchmarkWorkload, name))


def workload_properties(workload: Any) -> Dict[str, Any]:
    """The workload's public primitive values as `workload.<name>`, sorted by name (upstream's meta_data keys).

    Properties, and plain attributes of the instance or its classes (e.g. criteo's embed_dim), whose value
    is a bool, int, float, str or None (so never a method). Left out: private names, ALL_CAPS constants
    and the attributes our base classes add (see _base_class_attributes).
    """
    properties: Dict[str, Any] = {}
    for name in dir(workload):  # sorted, as upstream iterates
        if name.startswith("_") or name in SKIPPED_WORKLOAD_PROPERTIES:
            continue
        if not _is_property(type(workload), name) and (name.isupper() or name in _base_class_attributes()):
            continue
        try:
            value = getattr(workload, name)
        except Exception:
            # Upstream's logger then writes the previous key's value again (a quirk); null says what is known.
            value = None
        if value is None or isinstance(value, (bool, int, float, str)):
            properties[f"workload.{name}"] = value
    return properties


def clear_trial_dir(directory: Path, keep: Iterable[str] = ()) -> None:
    """Removes a previous run's files from a trial dir (a rerun replaces the trial)."""
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        if path.is_file() and path.name not in set(keep):
            path.unlink()
