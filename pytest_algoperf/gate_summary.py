"""Session tables of the smoke gate and of step-time comparisons."""

from __future__ import annotations

import csv
import io
from typing import Any, Dict, List

from pytest_algoperf.results import write_atomically
from pytest_algoperf.session import BenchmarkSession

SMOKE_CSV = "smoke_summary.csv"
STEP_TIME_CSV = "step_time_summary.csv"


def smoke_rows(session: BenchmarkSession) -> List[Dict[str, Any]]:
    return [
        {key: record[key] for key in ("workload", "status", "steps", "evals", "batch_size", "peak_memory_mb")}
        | {"notes": "; ".join(record["notes"])}
        for record in sorted(session.records.values(), key=lambda r: r["workload"])
        if record.get("kind") == "smoke"
    ]


def smoke_warnings(session: BenchmarkSession) -> List[str]:
    """Every distinct heuristic warning of the session's smoke items, in first-seen order."""
    warnings: Dict[str, None] = {}
    for record in sorted(session.records.values(), key=lambda r: r["workload"]):
        for warning in record.get("warnings", ()):
            warnings.setdefault(warning, None)
    return list(warnings)


def render_smoke(rows: List[Dict[str, Any]], warnings: List[str] = ()) -> str:
    lines = [f"  {'workload':<44} {'status':<7} {'steps':>5} {'evals':>5} {'batch':>5} {'peak MB':>9}  notes"]
    for row in rows:
        lines.append(
            f"  {row['workload']:<44} {row['status']:<7} {row['steps']:>5} {row['evals']:>5} {row['batch_size']:>5} "
            f"{row['peak_memory_mb']:>9.0f}  {row['notes']}"
        )
    lines += [f"  warning: {warning}" for warning in warnings]
    return "\n".join(lines)


def step_time_rows(session: BenchmarkSession) -> List[Dict[str, Any]]:
    by_workload: Dict[str, Dict[str, Any]] = {}
    for record in session.records.values():
        if record.get("kind") == "step_time":
            by_workload.setdefault(record["workload"], {"workload": record["workload"], "batch_size": record["batch_size"]})[
                f"{record['side']}_ms"
            ] = record["median_seconds"] * 1000
    rows = []
    for workload, row in sorted(by_workload.items()):
        submission, baseline = row.get("submission_ms"), row.get("baseline_ms")
        row["ratio"] = submission / baseline if submission is not None and baseline else None
        rows.append(row)
    return rows


def render_step_times(rows: List[Dict[str, Any]]) -> str:
    def cell(value: Any, digits: int) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    lines = [f"  {'workload':<44} {'batch':>7} {'submission ms':>14} {'baseline ms':>12} {'ratio':>7}"]
    for row in rows:
        lines.append(
            f"  {row['workload']:<44} {row['batch_size']:>7} {cell(row.get('submission_ms'), 3):>14} "
            f"{cell(row.get('baseline_ms'), 3):>12} {cell(row['ratio'], 2):>7}"
        )
    lines.append("  ratio = the submission's median update_params time / the NAdamW baseline's, same machine, same batches")
    return "\n".join(lines)


def write_rows(session: BenchmarkSession, name: str, rows: List[Dict[str, Any]]) -> None:
    if not rows:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomically(session.session_file(name), buffer.getvalue())
