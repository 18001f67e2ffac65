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
               "studies": [{"study": int, "time_to_target_sec": float | null, "trial": int | null,
                            "status": str}]}
      },
      "score": float | null             # this submission's benchmark score, when computed
    }

The score is computed when the session scores the run among reference logs (`--algoperf-compare`);
otherwise it is null (one submission alone always scores 1 on the workloads it reached).
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
    }


def write(session: BenchmarkSession, rows: List[Dict[str, Any]], result) -> None:
    write_atomically(session.session_file(SUMMARY_JSON), json.dumps(build(session, rows, result), indent=2) + "\n")
