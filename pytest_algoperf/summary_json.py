"""`results/<experiment>/summary.json`: one machine-readable summary of a time-to-target session.

Schema (version 1; times in seconds of submission time, `null` where a target was never reached,
since JSON has no infinity):

    {
      "schema": "pytest-algoperf/summary", "schema_version": 1,
      "experiment": str, "submission": str (path), "submission_hash": str,
      "ruleset": "external" | "self", "benchmark_version": str, "development_run": bool,
      "items": [                        # one per trial item this session ran or reused, by id
        {"id": "mnist-study0-trial1", "workload": str, "study": int, "trial": int,
         "status": "reached" | "not reached" | "diverged" | "error" | "unscored",
         "time_to_target_sec": float | null, "steps": int, "evals": int,
         "best_validation_metric": float | null, "target": "validation/accuracy > 0.97",
         "budget_sec": float, "stop_reason": str, "reused": bool}
      ],
      "outcomes": {status: count},      # over the items
      "workloads": {                    # the time-to-target table, scored by scoring/ from the logs
        name: {"median_time_to_target_sec": float | null,
               "median_time_to_target_interval_sec": [low, high] | null,
               "speedup": null | {"value": float | null, "interval": [low, high] | null,
                                  "verdict": "faster" | "slower" | "not significant" | "too few studies" | "missing",
                                  "p_value": float | null, "smallest_p": float | null},
               "studies": [{"study": int, "time_to_target_sec": float | null, "trial": int | null,
                            "status": str}]}
      },
      "score": float | null,            # this submission's benchmark score, when computed
      "score_interval": [low, high] | null,
      "speedup_base": str | null,       # the reference submission the speedups are against
      "speedup": float | null,          # geometric mean over the base workloads of t_this / t_base
      "speedup_interval": [low, high] | null,
      "bootstrap": null | {"confidence": 0.95, "samples": int, "seed": int}
    }

The score is computed when the session scores the run among reference logs (`--algoperf-compare`);
otherwise it is null (one submission alone always scores 1 on the workloads it reached). With
reference logs the session also computes percentile bootstrap intervals (scoring/bootstrap.py:
studies resampled, and under external tuning the trials within each) and speedups against the
reference (scoring/speedups.py: below 1 = faster, never reached counted as budget + 1 s; the
verdict says whether the interval excludes 1, the p-value is an exact permutation test over the
study times for "no difference" and `smallest_p` the lowest p-value the study counts allow). An
interval end of `null` is infinity: the target was not reached in at least 2.5% of the bootstrap
replicates. Without reference logs all of these are null. The interval and speedup keys were
added within version 1: readers of version 1 that do not know them can ignore them.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from typing import Any, Dict, List, Optional

from pytest_algoperf.results import write_atomically
from pytest_algoperf.session import BenchmarkSession

SUMMARY_JSON = "summary.json"
SCHEMA = "pytest-algoperf/summary"
SCHEMA_VERSION = 1


def _seconds(value: Optional[float]) -> Optional[float]:
    return None if value is None or math.isnan(value) or math.isinf(value) else float(value)


def _interval(low: Any, high: Any) -> Optional[List[Optional[float]]]:
    """[low, high] in JSON: null for infinity, the whole interval null when not computed."""
    if low is None or high is None or (math.isnan(low) and math.isnan(high)):
        return None
    return [_seconds(low), _seconds(high)]


def _number(value: Any) -> Optional[float]:
    return None if value is None or math.isnan(value) else float(value)


def _workload_statistics(session: BenchmarkSession, result, name: str) -> Dict[str, Any]:
    me = session.experiment
    interval = None
    if result.intervals is not None:
        times = result.intervals.time_to_target
        row = times[(times["submission"] == me) & (times["workload"] == name)]
        if not row.empty:
            interval = _interval(row["low"].iloc[0], row["high"].iloc[0])
    speedup = None
    table = result.workload_speedups
    if table is not None:
        row = table[(table["submission"] == me) & (table["workload"] == name)]
        if not row.empty:
            first = row.iloc[0]
            speedup = {"value": _number(first["speedup"]), "interval": None, "verdict": None, "p_value": None, "smallest_p": None}
            if "verdict" in row:
                speedup.update(interval=_interval(first["low"], first["high"]), verdict=first["verdict"],
                               p_value=_number(first["p_value"]), smallest_p=_number(first["smallest_p"]))
    return {"median_time_to_target_interval_sec": interval, "speedup": speedup}


def _comparison(session: BenchmarkSession, result) -> Dict[str, Any]:
    me = session.experiment
    fields = {"score_interval": None, "speedup_base": None, "speedup": None, "speedup_interval": None, "bootstrap": None}
    intervals = result.intervals
    if intervals is not None:
        scores = intervals.scores.set_index("submission")
        if me in scores.index:
            fields["score_interval"] = [float(scores.at[me, "low"]), float(scores.at[me, "high"])]
        settings = intervals.settings
        fields["bootstrap"] = {"confidence": settings.confidence, "samples": int(settings.samples), "seed": int(settings.seed)}
    if result.speedups is not None:
        fields["speedup_base"] = result.speedups.name.removeprefix("speedup_vs_")
        fields["speedup"] = _number(result.speedups.get(me, math.nan))
        if intervals is not None and intervals.speedups is not None:
            geo = intervals.speedups.set_index("submission")
            if me in geo.index:
                fields["speedup_interval"] = _interval(geo.at[me, "low"], geo.at[me, "high"])
    return fields


def _item(record: Dict[str, Any]) -> Dict[str, Any]:
    comparison = ">" if record["higher_is_better"] else "<"
    return {
        "id": record["id"],
        "workload": record["workload"],
        "study": record["study"],
        "trial": record["trial"],
        "status": record["status"],
        "time_to_target_sec": _seconds(record["time_to_target"]),
        "steps": record["steps"],
        "evals": record["evals"],
        "best_validation_metric": record["best_validation_metric"],
        "target": f"validation/{record['target_metric']} {comparison} {record['validation_target']}",
        "budget_sec": record["budget_sec"],
        "stop_reason": record["stop_reason"],
        "reused": bool(record.get("reused", False)),
    }


def build(session: BenchmarkSession, rows: List[Dict[str, Any]], result) -> Dict[str, Any]:
    """The summary of a session from its records, its time-to-target rows (summary.summary_rows) and
    its ScoringResult."""
    items = [_item(record) for _, record in sorted(session.records.items())]
    workloads: Dict[str, Dict[str, Any]] = {}
    for name in sorted({row["workload"] for row in rows}):
        studies = [row for row in rows if row["workload"] == name]
        workloads[name] = {
            "median_time_to_target_sec": _seconds(statistics.median(row["time_to_target_s"] for row in studies)),
            **_workload_statistics(session, result, name),
            "studies": [
                {"study": row["study"], "time_to_target_sec": _seconds(row["time_to_target_s"]), "trial": row["trial"],
                 "status": row["status"]}
                for row in studies
            ],
        }
    score = None
    if session.settings.compare and session.experiment in result.scores.index:
        score = float(result.scores[session.experiment])
    settings = session.settings
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "experiment": session.experiment,
        "submission": str(session.paths.module_file),
        "submission_hash": session.submission_hash,
        "ruleset": settings.ruleset,
        "benchmark_version": settings.benchmark_version,
        "development_run": settings.is_development_run,
        "items": items,
        "outcomes": dict(sorted(Counter(item["status"] for item in items).items())),
        "workloads": workloads,
        "score": score,
        **_comparison(session, result),
    }


def write(session: BenchmarkSession, rows: List[Dict[str, Any]], result) -> None:
    write_atomically(session.session_file(SUMMARY_JSON), json.dumps(build(session, rows, result), indent=2) + "\n")
