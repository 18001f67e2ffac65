"""The session's time-to-target table: per workload, per study, and the median over studies.

Times come from scoring the run's own result logs with the published rules
(`scoring/`), so the table and `python -m scoring` always agree; the trial
records of this session add steps and statuses.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

from pytest_algoperf.results import write_atomically
from pytest_algoperf.session import BenchmarkSession

SUMMARY_CSV = "time_to_target_summary.csv"
SUMMARY_TEXT = "time_to_target_summary.txt"
COLUMNS = ("workload", "study", "time_to_target_s", "trial", "steps", "trials_reached", "status")


def _study_index(value: Any) -> int:
    text = str(value)
    return int(text.rsplit("_", 1)[-1]) if "_" in text else int(text)


def _trial_index(value: Any) -> Optional[int]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(str(value).rsplit("_", 1)[-1])


def scored_study_times(session: BenchmarkSession) -> Dict[tuple, Dict[str, Any]]:
    """(workload, study) -> {'time': seconds or inf, 'trial': picked trial}, from the result logs."""
    from scoring import score_log_dirs

    result = score_log_dirs(
        {session.experiment: session.experiment_dir},
        version=session.settings.benchmark_version,
        self_tuning=session.settings.ruleset == "self",
    )
    times = {}
    for row in result.per_study.itertuples(index=False):
        times[(row.workload, _study_index(row.study))] = {"time": float(row.time_to_target), "trial": _trial_index(row.trial)}
    return times


def _study_status(statuses: List[str]) -> str:
    if "error" in statuses:
        return "error"
    if statuses and all(status == "unscored" for status in statuses):
        return "unscored"
    return "reached" if "reached" in statuses else "not reached"


def summary_rows(session: BenchmarkSession) -> List[Dict[str, Any]]:
    times = scored_study_times(session)
    grouped: Dict[tuple, List[Dict[str, Any]]] = {}
    for record in session.records.values():
        grouped.setdefault((record["workload"], record["study"]), []).append(record)
    rows = []
    for (workload, study), records in sorted(grouped.items()):
        statuses = [record["status"] for record in records]
        scored = times.get((workload, study), {"time": math.inf, "trial": None})
        picked = next((r for r in records if r["trial"] == scored["trial"]), None)
        rows.append(
            {
                "workload": workload,
                "study": study,
                "time_to_target_s": scored["time"],
                "trial": scored["trial"],
                "steps": picked["steps"] if picked else None,
                "trials_reached": f"{statuses.count('reached')}/{len(records)}",
                "status": _study_status(statuses),
            }
        )
    return rows


def median(values: List[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    if not ordered:
        return math.nan
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _format_time(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2f}"


def render_rows(rows: List[Dict[str, Any]], session: BenchmarkSession) -> str:
    records_by_workload = {r["workload"]: r for r in session.records.values()}
    lines = [f"experiment {session.experiment} ({session.settings.ruleset} tuning, benchmark {session.settings.benchmark_version})"]
    for workload in sorted({row["workload"] for row in rows}):
        record = records_by_workload[workload]
        comparison = ">" if record["target_metric"] != "loss" and record["target_metric"] != "wer" else "<"
        lines.append("")
        lines.append(
            f"{workload}: validation/{record['target_metric']} {comparison} {record['validation_target']} "
            f"within {record['budget_sec']:.0f} s"
        )
        lines.append(f"  {'study':>5}  {'time to target (s)':>18}  {'trial':>5}  {'steps':>8}  {'reached':>7}  status")
        workload_rows = [row for row in rows if row["workload"] == workload]
        for row in workload_rows:
            lines.append(
                f"  {row['study']:>5}  {_format_time(row['time_to_target_s']):>18}  {row['trial'] or '-':>5}  "
                f"{row['steps'] if row['steps'] is not None else '-':>8}  {row['trials_reached']:>7}  {row['status']}"
            )
        lines.append(f"  {'median':>5}  {_format_time(median([row['time_to_target_s'] for row in workload_rows])):>18}")
    lines.append("")
    lines.append(f"result logs: {session.experiment_dir}")
    return "\n".join(lines)


def render(session: BenchmarkSession) -> str:
    return render_rows(summary_rows(session), session)


def write(session: BenchmarkSession) -> None:
    rows = summary_rows(session)
    header = ",".join(COLUMNS)
    body = [",".join("" if row[c] is None else str(row[c]) for c in COLUMNS) for row in rows]
    write_atomically(session.experiment_dir / SUMMARY_CSV, "\n".join([header, *body]) + "\n")
    write_atomically(session.experiment_dir / SUMMARY_TEXT, render_rows(rows, session) + "\n")
