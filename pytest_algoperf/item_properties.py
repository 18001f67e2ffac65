"""Each benchmark item's result as test properties, so `--junitxml` output feeds CI dashboards.

pytest writes an item's `user_properties` into its junit XML `<properties>` (and hands them to
other reporters such as pytest-html). Besides the full trial record (one property holding a dict,
which the session's reporter reads), every trial item carries these flat, dashboard-friendly ones:

    algoperf_status              reached, not_reached, diverged, failed or unscored
    algoperf_time_to_target_sec  seconds of submission time to the validation target ("inf" if never)
    algoperf_steps               training steps taken
    algoperf_best_metric         best validation value of the target metric ("" before any eval)
    algoperf_target              the target as a condition, e.g. "validation/accuracy > 0.97"
    algoperf_budget_sec          the runtime budget the trial trained under
    algoperf_stop_reason         why training stopped (targets reached, budget exhausted, diverged, ...)
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Tuple

PREFIX = "algoperf_"


def flat_properties(record: Dict[str, Any]) -> List[Tuple[str, Any]]:
    """The flat properties of one trial record (verdict.trial_record's dict)."""
    comparison = ">" if record["higher_is_better"] else "<"
    time_to_target = record["time_to_target"]
    best = record["best_validation_metric"]
    return [
        (PREFIX + "status", record["status"]),
        (PREFIX + "time_to_target_sec", "inf" if time_to_target is None or math.isinf(time_to_target) else time_to_target),
        (PREFIX + "steps", record["steps"]),
        (PREFIX + "best_metric", "" if best is None else best),
        (PREFIX + "target", f"validation/{record['target_metric']} {comparison} {record['validation_target']}"),
        (PREFIX + "budget_sec", record["budget_sec"]),
        (PREFIX + "stop_reason", record["stop_reason"]),
    ]
