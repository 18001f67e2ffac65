"""The session's time-to-target table: per workload, per study, and the median over studies.

Times come from scoring the run's own result logs with the published rules
(`scoring/`), so the table and `python -m scoring` always agree; the trial
records of this session add steps and statuses. With reference logs
(`--algoperf-compare`) the same scoring gives this run's benchmark score among them, with
its bootstrap interval, and per workload its speedup against a reference (the first
`--algoperf-compare` dir, or `--algoperf-speedup-base`) with interval, verdict and p-value.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Dict, List, Optional

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

    settings = session.settings
    log_dirs = {session.experiment: session.experiment_dir}
    for reference in settings.compare:
        log_dirs.setdefault(reference.name, reference)
    compared = bool(settings.compare)
    return score_log_dirs(
        log_dirs, version=settings.benchmark_version, self_tuning=settings.ruleset == "self",
        speedup_base=speedup_base(session) if compared else None, intervals=compared,
    )


def speedup_base(session: BenchmarkSession) -> Optional[str]:
    """The reference the speedups are against: --algoperf-speedup-base, else the first compare dir's
    submission (None when that dir holds several: which one is then the user's choice)."""
    from pytest_algoperf.options import reference_names

    settings = session.settings
    if settings.speedup_base is not None:
        return settings.speedup_base
    names = reference_names(settings.compare[:1], settings.ruleset == "self")
    return names[0] if len(names) == 1 and names[0] != session.experiment else None


def comparison_lines(session: BenchmarkSession, result) -> List[str]:
    """This run among the references: its score with interval, its speedup per workload."""
    me = session.experiment
    lines = []
    intervals = result.intervals
    if intervals is not None:
        confidence = f"{100 * intervals.settings.confidence:g}%"
        scores = intervals.scores.set_index("submission")
        if me in scores.index:
            lines.append(f"score of {me}: {scores.at[me, 'score']:.4f}, {confidence} interval "
                         f"[{scores.at[me, 'low']:.4f}, {scores.at[me, 'high']:.4f}] "
                         f"({intervals.settings.samples} bootstrap replicates, seed {intervals.settings.seed})")
        else:
            lines.append(f"no benchmark score for {me}: it has no logs of the {result.version.name} base workloads")
    table = result.workload_speedups
    if table is None:
        lines.append("no speedups: the first --algoperf-compare dir does not hold exactly one other submission; "
                     "name the reference to compare with by --algoperf-speedup-base=NAME")
        return lines
    base = result.speedups.name.removeprefix("speedup_vs_")
    mine = table[table["submission"] == me]
    lines += ["", f"speedup of {me} vs {base} per workload (t_{me} / t_{base}; below 1 = faster):"]
    header = f"  {'workload':<24} {'time (s)':>9} {'base (s)':>9} {'speedup':>8}"
    if "verdict" in mine:
        header += f"  {'interval':>18}  {'verdict':<15} {'p':>6}"
    lines.append(header)
    for row in mine.itertuples(index=False):
        line = f"  {row.workload:<24} {_format_time(row.time):>9} {_format_time(row.base_time):>9} {_ratio(row.speedup):>8}"
        if "verdict" in mine:
            interval = "-" if math.isnan(row.low) else f"[{row.low:.3f}, {row.high:.3f}]"
            p_value = "-" if math.isnan(row.p_value) else f"{row.p_value:.3g}"
            line += f"  {interval:>18}  {row.verdict:<15} {p_value:>6}"
        lines.append(line)
    overall = result.speedups.get(me, math.nan)
    if intervals is not None and intervals.speedups is not None:
        geo = intervals.speedups.set_index("submission")
        if me in geo.index and not math.isnan(geo.at[me, "low"]):
            overall_text = f"{overall:.4f} [{geo.at[me, 'low']:.4f}, {geo.at[me, 'high']:.4f}]"
        else:
            overall_text = _ratio(overall)
    else:
        overall_text = _ratio(overall)
    if math.isnan(overall):
        overall_text = "- (it needs times of every base workload from both)"
    lines.append(f"  geometric mean over the {result.version.name} base workloads: {overall_text}")
    smallest = mine["smallest_p"].dropna() if "smallest_p" in mine else mine.iloc[0:0]
    if not smallest.empty and smallest.min() >= 0.01:
        lines.append(f"  note: with these study counts no p-value can fall below {smallest.min():.3g}; "
                     f"p < 0.01 takes 5 studies on each side (--algoperf-studies=5)")
    return lines


def _ratio(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"


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
    if math.isnan(value):
        return "-"
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
