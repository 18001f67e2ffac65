"""Benchmark versions as data: which workloads count, their targets, budgets, eval periods and study rules.

Every version lives in ``scoring/versions/<name>.json``, beside this module; adding a version means
adding a file (it ships as package data of ``scoring.versions``).
A file names the scored base workloads, the held-out workloads (v0.5's "infinite" rule, spec §6.4),
how many studies and trials a submission runs, the self-tuning budget factor, the hardware of record
(``"hardware"``: how many devices of which kind one trial runs on; optional), and one entry per
workload the benchmark knows (its metric and goal, targets, budget, step hint and the eval period a
run uses; a ``null`` test target means the workload has no test split). A variant entry names its
``base`` and inherits from it whatever it does not set itself (metric, goal, budget, step hint, eval
period, and even targets, as ``criteo1tb_test`` does).
Shipped: ``v0.5`` and ``v0.6`` (8x V100) and ``a100`` (4x A100, nine base workloads); the default
is :data:`DEFAULT_VERSION`.
Development workloads (``"development": true``) get time-to-target tables but are never scored.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

# The version a run or a scoring uses unless told otherwise: the published leaderboard's. The A100
# version (a100.json) becomes the default once its leaderboard is the published one.
DEFAULT_VERSION = "v0.6"

# The fields a workload entry may inherit from its base workload (spec §5: "All variants inherit
# data, budgets, eval period, step_hint ... from their base workload. Metric directions as base.")
_INHERITED_FIELDS = ("metric", "goal", "validation_target", "test_target",
                     "max_allowed_runtime_sec", "step_hint")
_OPTIONAL_INHERITED_FIELDS = ("eval_period_time_sec",)  # read by runs only; scoring needs none

_GOALS = ("minimize", "maximize")
# Every key an entry may have: a misspelt one would silently inherit its base's value.
_WORKLOAD_KEYS = set(_INHERITED_FIELDS) | set(_OPTIONAL_INHERITED_FIELDS) | {"base", "development", "note"}


class VersionError(ValueError):
    """A benchmark version is unknown or its file is malformed."""


@dataclass(frozen=True)
class WorkloadTarget:
    """What counts as "done" for one workload, and its budget."""

    name: str
    metric: str  # metric key without split prefix, e.g. "accuracy"
    goal: str  # "minimize" or "maximize"
    validation_target: float
    test_target: float | None  # None: no test split (finewebedu_lm), the test target counts as reached
    max_allowed_runtime_sec: float  # external-tuning budget; self-tuning multiplies it
    step_hint: int
    base: str | None = None  # the base workload of a variant, None for a base workload
    development: bool = False  # mnist, cifar, criteo1tb_test: never part of a score
    eval_period_time_sec: float | None = None  # wall-clock seconds between evals in a run

    @property
    def validation_column(self) -> str:
        return f"validation/{self.metric}"

    @property
    def test_column(self) -> str:
        return f"test/{self.metric}"

    @property
    def minimize(self) -> bool:
        return self.goal == "minimize"


@dataclass(frozen=True)
class Hardware:
    """The machine one trial of a version runs on: its budgets are seconds on this machine."""

    devices: int  # accelerators per trial, e.g. 8
    device: str  # e.g. "NVIDIA V100 16 GB"

    def __str__(self) -> str:
        return f"{self.devices}x {self.device}"


@dataclass(frozen=True)
class BenchmarkVersion:
    """The rules of one benchmark version (e.g. v0.5, v0.6)."""

    name: str
    description: str
    num_studies: int
    num_trials: int  # per study, external tuning; self-tuning runs one trial per study
    self_tuning_budget_factor: float
    base_workloads: tuple[str, ...]
    held_out_workloads: tuple[str, ...]
    workloads: Mapping[str, WorkloadTarget]
    # How that version's runner trains (budget check, per-step rng split, ...); read by the plugin's runner.
    runner: Mapping[str, Any] = field(default_factory=dict)
    hardware: Hardware | None = None  # None: the version file names no hardware of record

    @property
    def num_base_workloads(self) -> int:
        """The fixed divisor of the performance profile (spec §6.3 step 8, quirk 11)."""
        return len(self.base_workloads)

    @property
    def scored_workloads(self) -> tuple[str, ...]:
        """Workloads whose times enter the score: base ones plus the held-out ones."""
        return self.base_workloads + self.held_out_workloads

    def target(self, workload: str) -> WorkloadTarget:
        try:
            return self.workloads[workload]
        except KeyError:
            raise KeyError(f"workload {workload!r} is not part of benchmark version {self.name}; "
                           f"known workloads: {', '.join(sorted(self.workloads))}") from None

    def budget_sec(self, workload: str, self_tuning: bool = False) -> float:
        """The runtime budget of a workload under either ruleset."""
        factor = self.self_tuning_budget_factor if self_tuning else 1
        return factor * self.target(workload).max_allowed_runtime_sec

    def base_of(self, workload: str) -> str:
        """The base workload a variant belongs to (the workload itself for a base workload)."""
        return self.target(workload).base or workload


def available_versions() -> list[str]:
    """Names of the versions shipped with the package, oldest first (['v0.5', 'v0.6', 'a100'])."""
    names = [entry.name[:-len(".json")] for entry in resources.files(__name__).iterdir()
             if entry.name.endswith(".json")]
    return sorted(names, key=_version_sort_key)


def load_version(name_or_path: str | os.PathLike[str]) -> BenchmarkVersion:
    """Load a version by name (``"v0.6"``, ``"0.6"``) or from a JSON file path."""
    path = Path(name_or_path)
    if path.suffix == ".json" and path.is_file():
        text, source = path.read_text(), str(path)
    else:
        name = str(name_or_path)
        name = name if name.startswith("v") or not name[:1].isdigit() else f"v{name}"  # "0.6" -> "v0.6"
        file = resources.files(__name__).joinpath(f"{name}.json")
        if not file.is_file():
            raise VersionError(f"unknown benchmark version {str(name_or_path)!r}; "
                               f"choose one of {', '.join(available_versions())} "
                               f"or pass the path of a version JSON file")
        text, source = file.read_text(), f"scoring/versions/{name}.json"
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise VersionError(f"{source}: not valid JSON: {error}") from None
    return _parse_version(raw, source)


def _parse_version(raw: Mapping[str, Any], source: str) -> BenchmarkVersion:
    try:
        entries = dict(raw["workloads"])
        workloads = {name: _parse_workload(name, entries, source) for name in entries}
        version = BenchmarkVersion(
            name=str(raw["name"]),
            description=str(raw.get("description", "")),
            num_studies=int(raw["num_studies"]),
            num_trials=int(raw["num_trials"]),
            self_tuning_budget_factor=float(raw["self_tuning_budget_factor"]),
            base_workloads=tuple(raw["base_workloads"]),
            held_out_workloads=tuple(raw["held_out_workloads"]),
            workloads=workloads,
            runner=dict(raw.get("runner", {})),
            hardware=_parse_hardware(raw.get("hardware"), source),
        )
    except KeyError as error:
        raise VersionError(f"{source}: missing field {error}") from None
    problems = []
    for name in version.scored_workloads:
        if name not in workloads:
            problems.append(f"scored workload {name!r} has no entry in 'workloads'")
        elif workloads[name].development:
            problems.append(f"scored workload {name!r} is marked as a development workload")
    for name in version.base_workloads:
        if name in workloads and workloads[name].base is not None:
            problems.append(f"base workload {name!r} must not name a base itself")
    for name in version.held_out_workloads:
        if name in workloads and workloads[name].base not in version.base_workloads:
            problems.append(f"held-out workload {name!r} must name one of the base workloads "
                            f"as its 'base'")
    if problems:
        raise VersionError(f"{source}: " + "; ".join(problems))
    return version


def _parse_hardware(raw: Any, source: str) -> Hardware | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or set(raw) != {"devices", "device"}:
        raise VersionError(f"{source}: 'hardware' must be an object with exactly 'devices' (a count) and "
                           f"'device' (a name), e.g. {{\"devices\": 8, \"device\": \"NVIDIA V100 16 GB\"}}")
    devices = raw["devices"]
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise VersionError(f"{source}: 'hardware.devices' must be a whole number of at least 1, got {devices!r}")
    return Hardware(devices=devices, device=str(raw["device"]))


def _parse_workload(name: str, entries: Mapping[str, Any], source: str,
                    seen: tuple[str, ...] = ()) -> WorkloadTarget:
    if name in seen:
        raise VersionError(f"{source}: workload {name!r} inherits from itself")
    if name not in entries:
        raise VersionError(f"{source}: workload {seen[-1]!r} names unknown base {name!r}")
    entry = dict(entries[name])
    unknown = sorted(set(entry) - _WORKLOAD_KEYS)
    if unknown:
        raise VersionError(f"{source}: workload {name!r} has unknown keys {unknown}; "
                           f"allowed: {sorted(_WORKLOAD_KEYS)}")
    base = entry.get("base")
    if base is not None:
        inherited = _parse_workload(base, entries, source, seen + (name,))
        for field in _INHERITED_FIELDS + _OPTIONAL_INHERITED_FIELDS:
            entry.setdefault(field, getattr(inherited, field))
    missing = [field for field in _INHERITED_FIELDS if field not in entry]
    if missing:
        raise VersionError(f"{source}: workload {name!r} lacks {', '.join(missing)}")
    if entry["goal"] not in _GOALS:
        raise VersionError(f"{source}: workload {name!r} has goal {entry['goal']!r}, "
                           f"expected one of {_GOALS}")
    target = WorkloadTarget(
        name=name,
        metric=str(entry["metric"]),
        goal=str(entry["goal"]),
        validation_target=float(entry["validation_target"]),
        test_target=None if entry["test_target"] is None else float(entry["test_target"]),
        max_allowed_runtime_sec=float(entry["max_allowed_runtime_sec"]),
        step_hint=int(entry["step_hint"]),
        base=base,
        development=bool(entry.get("development", False)),
        eval_period_time_sec=None if entry.get("eval_period_time_sec") is None else float(entry["eval_period_time_sec"]),
    )
    if not math.isfinite(target.validation_target):
        raise VersionError(f"{source}: workload {name!r} has a non-finite validation target")
    return target


def _version_sort_key(name: str) -> tuple[int, tuple[int, ...]]:
    """Numbered releases (v0.5, v0.6) in order, then the hardware versions (a100) after them."""
    return (0 if name.startswith("v") else 1, tuple(int(part) for part in re.findall(r"\d+", name)))
