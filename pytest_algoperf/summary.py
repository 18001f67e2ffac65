"""The session's time-to-target table: per workload, per study, and the median over studies.

Times come from scoring the run's own result logs with the published rules
(`scoring/`), so the table and `python -m scoring` always agree; the trial
records of this session add steps and statuses. With reference logs
(`--algoperf-compare`) the same scoring gives this run's benchmark score among them.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Dict, List

from pytest_algoperf import summary_json
from pytest_algoperf.results import write_atomically
from pytest_algoperf.session import BenchmarkSession

SUMMARY_CSV = "time_to_target_summary.csv"
SUMMARY_TEXT = "time_to_target_summary.txt"
SCORING_DIR = "scoring"
COLUMNS = ("workload", "study", "time_to_target_s", "trial", "steps", "trials_reached", "trials_diverged", "status")


def score_session(session: BenchmarkSession):
    """Scores this run's logs, together with the reference logs when there are any."""
    from scoring import score_log_dirs

    log_dirs = {session.experiment: session.experiment_dir}
    for reference in session.settings.compare:
        log_dirs.setdefault(reference.name, reference)
    return score_log_dirs(
        log_dirs, version=session.settings.benchmark_version, self_tuning=session.settings.ruleset == "self"
    )


def _index(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(str(value).rsplit("_", 1)[-1])


def _study_status(statuses: List[str]) -> str:
    if "error" in statuses:
        return "error"
    if statuses and all(status == "unscored" for status in statuses):
        return "unscored"
    return "reached" if "reached" in statuses else "not reached"


def summary_rows(session: BenchmarkSession, result) -> List[Dict[str, Any]]:
    own = result.per_study[result.per_study["submission"] == session.experiment]
    times = {(row.workload, _index(row.study)): (float(row.time_to_target), _index(row.trial)) for row in own.itertuples(index=False)}
    grouped: Dict[tuple, List[Dict[str, Any]]] = {}
    for record in session.records.values():
        grouped.setdefault((record["workload"], record["study"]), []).append(record)
    rows = []
    for (workload, study), records in sorted(grouped.items()):
        statuses = [record["status"] for record in records]
        time_to_target, trial = times.get((workload, study), (math.inf, None))
        picked = next((r for r in records if r["trial"] == trial), None)
        rows.append({
            "workload": workload,
            "study": study,
            "time_to_target_s": time_to_target,
            "trial": trial,
            "steps": picked["steps"] if picked else None,
            "trials_reached": f"{statuses.count('reached')}/{len(records)}",
            "trials_diverged": f"{statuses.count('diverged')}/{len(records)}",
            "status": _study_status(statuses),
        })
    return rows


def _format_time(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.2f}"


def history_lines(session: BenchmarkSession, result) -> List[str]:
    """What of the table comes from earlier runs of the same command, and what it leaves out."""
    lines = []
    reused = sorted(record["id"] for record in session.records.values() if record.get("reused"))
    resumed = sorted(record["id"] for record in session.records.values() if record.get("preemption_count") and not record.get("reused"))
    if reused:
        lines.append(f"reused {len(reused)} trial(s) an earlier run finished: {', '.join(reused)}")
    if resumed:
        lines.append(f"resumed after preemption: {', '.join(resumed)}")
    for trial in result.interrupted_trials:
        if trial.submission == session.experiment:
            lines.append(f"interrupted, left out of the score: {trial.directory} (rerun the command to resume it)")
    return lines


def render_rows(rows: List[Dict[str, Any]], session: BenchmarkSession, result) -> str:
    records_by_workload = {r["workload"]: r for r in session.records.values()}
    settings = session.settings
    lines = [f"experiment {session.experiment} ({settings.ruleset} tuning, benchmark {settings.benchmark_version})"]
    for workload in sorted({row["workload"] for row in rows}):
        record = records_by_workload[workload]
        comparison = ">" if record["higher_is_better"] else "<"
        lines += [
            "",
            f"{workload}: validation/{record['target_metric']} {comparison} {record['validation_target']} within {record['budget_sec']:.0f} s",
            f"  {'study':>5}  {'time to target (s)':>18}  {'trial':>5}  {'steps':>8}  {'reached':>7}  {'diverged':>8}  status",
        ]
        workload_rows = [row for row in rows if row["workload"] == workload]
        for row in workload_rows:
            steps = row["steps"] if row["steps"] is not None else "-"
            lines.append(
                f"  {row['study']:>5}  {_format_time(row['time_to_target_s']):>18}  {row['trial'] or '-':>5}  "
                f"{steps:>8}  {row['trials_reached']:>7}  {row['trials_diverged']:>8}  {row['status']}"
            )
        lines.append(f"  {'median':>5}  {_format_time(statistics.median(row['time_to_target_s'] for row in workload_rows)):>18}")
    notes = history_lines(session, result)
    lines += ([""] + notes if notes else []) + ["", f"result logs: {session.experiment_dir}"]
    return "\n".join(lines)


def write(session: BenchmarkSession, rows: List[Dict[str, Any]], result) -> None:
    header = ",".join(COLUMNS)
    body = [",".join("" if row[c] is None else str(row[c]) for c in COLUMNS) for row in rows]
    write_atomically(session.session_file(SUMMARY_CSV), "\n".join([header, *body]) + "\n")
    write_atomically(session.session_file(SUMMARY_TEXT), render_rows(rows, session, result) + "\n")
    summary_json.write(session, rows, result)
    if session.settings.compare:
        result.write(session.session_file(SCORING_DIR))
