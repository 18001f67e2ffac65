"""What scoring hands back: the result object, its terminal report and its files.

Files written by :meth:`ScoringResult.write` (names say what they hold):

* ``leaderboard.csv``: rank, submission, score, base workloads credited (and speedup, if asked);
* ``time_to_targets.csv``: submissions x workloads, median over studies (inf: never reached);
* ``time_to_targets_per_study.csv``: per study, the time and the trial that set it;
* ``performance_profiles.csv`` / ``.png`` / ``.pdf``: rho(tau) per submission;
* ``<submission>_summary.csv``: one row per trial (see summary.py);
* ``speedups_per_workload.csv`` (with a speedup base): per other submission and workload, the
  median times, their ratio and, with intervals, its interval, verdict and permutation p-value;
* with intervals (bootstrap.py): ``time_to_target_intervals.csv`` (submission, workload, median,
  low, high), ``score_intervals.csv`` (submission, score, low, high, confidence, samples, seed) and,
  with a speedup base, ``speedup_intervals.csv`` (the geometric mean's);
* ``warnings.txt``: every problem found in the logs, each with its path.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .bootstrap import Intervals
from .layout import TrialLog
from .profiles import MAX_SLOWDOWN, TAUS
from .summary import trial_summary
from .versions import BenchmarkVersion


@dataclass
class ScoringResult:
    """Everything scoring computed for a group of submissions scored together."""

    version: BenchmarkVersion
    self_tuning: bool
    submissions: dict[str, list[Path]]  # name -> its experiment directories
    evals: pd.DataFrame  # the tidy per-eval table (only the columns scoring needs)
    trials: pd.DataFrame  # one row per trial read, with its first eval at target and time
    per_study: pd.DataFrame  # submission, workload, study, time_to_target, experiment, trial, ...
    time_to_target: pd.DataFrame  # submissions x workloads: median over studies
    credited_times: pd.DataFrame  # submissions x base workloads, after the held-out and 4x rules
    performance_profiles: pd.DataFrame  # submissions x tau
    scores: pd.Series  # submission -> benchmark score; empty without base workloads
    speedups: pd.Series | None = None  # submission -> geometric-mean speedup vs a base submission
    # With a speedup base: submission, workload, time, base_time, speedup (+ intervals, verdict, p)
    workload_speedups: pd.DataFrame | None = None
    intervals: Intervals | None = None  # bootstrap intervals, when asked for
    warnings: list[str] = field(default_factory=list)
    # Trials left out because they were interrupted before they finished (each also a warning).
    interrupted_trials: list[TrialLog] = field(default_factory=list)

    @property
    def ruleset(self) -> str:
        return "self-tuning" if self.self_tuning else "external tuning"

    def leaderboard(self) -> pd.DataFrame:
        """Submissions ranked by score (empty when nothing was scored)."""
        if self.scores.empty:
            return pd.DataFrame(columns=["rank", "submission", "score"])
        board = pd.DataFrame({
            "submission": self.scores.index.astype(str),
            "score": self.scores.to_numpy(),
            "base workloads credited": [
                int(np.isfinite(self.credited_times.loc[s]).sum()) for s in self.scores.index],
        })
        if self.speedups is not None:
            board[self.speedups.name] = self.speedups.reindex(self.scores.index).to_numpy()
        board = board.sort_values("score", ascending=False, kind="stable").reset_index(drop=True)
        board.insert(0, "rank", np.arange(1, len(board) + 1))
        return board

    def summary(self, submission: str | None = None) -> pd.DataFrame:
        """The per-trial summary (§6.3), of one submission or of all."""
        table = trial_summary(self.evals, self.trials, self.version)
        if submission is not None:
            table = table[table["submission"] == submission].drop(columns="submission")
        return table.reset_index(drop=True)

    def per_study_table(self, submission: str) -> pd.DataFrame:
        """Workloads x studies of one submission's time to target, plus the median column."""
        mine = self.per_study[self.per_study["submission"].astype(str) == submission]
        table = mine.pivot_table(index="workload", columns="study", values="time_to_target",
                                 observed=True, aggfunc="first")
        table.index = table.index.astype(str)
        table.columns = [str(c) for c in table.columns]
        table["median"] = self.time_to_target.loc[submission].reindex(table.index)
        return table

    def format_text(self) -> str:
        """The terminal report: times per workload and study, leaderboard, warnings."""
        lines = [f"AlgoPerf scoring: benchmark {self.version.name}, {self.ruleset} ruleset"]
        if not self.submissions:
            lines.append("No submissions.")
        for name in self.submissions:
            counts = self.trials[self.trials["submission"].astype(str) == name]
            interrupted = sum(trial.submission == name for trial in self.interrupted_trials)
            lines += ["", f"{name}: time to target (s) per study, median over studies "
                          f"[{counts['study'].nunique()} studies, {len(counts)} trials read"
                          + (f", {interrupted} interrupted left out" if interrupted else "")
                          + "]"]
            if name in self.time_to_target.index:
                lines.append(_indent(_format_times(self._with_time_intervals(
                    self.per_study_table(name), name))))
            else:
                lines.append("  no readable logs")
        board = self.leaderboard()
        if not board.empty:
            lines += ["", f"Leaderboard: score = area under the performance profile, "
                          f"tau in [{TAUS[0]:g}, {TAUS[-1]:g}], "
                          f"{self.version.num_base_workloads} base workloads"
                          + (f", held-out rule with {', '.join(self.version.held_out_workloads)}"
                             if self.version.held_out_workloads else "")]
            lines.append(_indent(self._format_leaderboard(board).to_string(index=False)))
            lines.append(f"  (a time above {MAX_SLOWDOWN}x the fastest earns nothing"
                         + (", nor does a base workload whose held-out variant failed)"
                            if self.version.held_out_workloads else ")"))
        if self.workload_speedups is not None:
            lines += ["", *self._speedup_lines()]
        if self.intervals is not None:
            settings = self.intervals.settings
            lines += ["", f"Intervals: {_percent(settings.confidence)} percentile bootstrap over "
                          f"studies" + ("" if self.self_tuning else " and the trials within each")
                          + f", {settings.samples} replicates, seed {settings.seed}; the point "
                          f"values are the published rules' (method: scoring/bootstrap.py)."]
        if board.empty and self.submissions:
            lines += ["", f"No benchmark score: none of the {self.version.name} base workloads "
                          f"({', '.join(self.version.base_workloads)}) has logs."]
        if self.warnings:
            lines += ["", f"Warnings ({len(self.warnings)}):"]
            lines += [f"  - {warning}" for warning in self.warnings]
        return "\n".join(lines)

    def _with_time_intervals(self, table: pd.DataFrame, submission: str) -> pd.DataFrame:
        if self.intervals is None:
            return table
        times = self.intervals.time_to_target
        mine = times[times["submission"] == submission].set_index("workload")
        shown = table.astype(object)
        shown[f"{_percent(self.intervals.settings.confidence)} interval"] = [
            _interval(mine.at[w, "low"], mine.at[w, "high"], _seconds) if w in mine.index else "-"
            for w in table.index]
        return shown

    def _format_leaderboard(self, board: pd.DataFrame) -> pd.DataFrame:
        shown = board.copy()
        shown["score"] = shown["score"].map(lambda v: f"{v:.4f}")
        if self.intervals is not None and not self.intervals.scores.empty:
            scores = self.intervals.scores.set_index("submission")
            shown.insert(shown.columns.get_loc("score") + 1,
                         f"{_percent(self.intervals.settings.confidence)} interval",
                         [_interval(scores.at[s, "low"], scores.at[s, "high"], _ratio)
                          for s in board["submission"]])
        if self.speedups is not None:
            column = self.speedups.name
            shown[column] = shown[column].map(lambda v: "-" if pd.isna(v) else f"{v:.4f}")
            if self.intervals is not None and self.intervals.speedups is not None:
                speedups = self.intervals.speedups.set_index("submission")
                shown[f"{column} interval"] = [
                    _interval(speedups.at[s, "low"], speedups.at[s, "high"], _ratio)
                    for s in board["submission"]]
        return shown

    def _speedup_lines(self) -> list[str]:
        """The per-workload speedup table, with its statistics and what they can show."""
        table = self.workload_speedups
        base = self.speedups.name.removeprefix("speedup_vs_")
        lines = [f"Speedup per workload vs {base}: t_submission / t_{base}, median times, never "
                 f"reached counted as budget + 1 s (below 1 = faster)"]
        if table.empty:
            return lines + ["  no other submission to compare"]
        shown = pd.DataFrame({
            "submission": table["submission"], "workload": table["workload"],
            "time (s)": table["time"].map(_seconds),
            f"{base} (s)": table["base_time"].map(_seconds),
            "speedup": table["speedup"].map(_ratio)})
        if "verdict" in table:
            shown[f"{_percent(self.intervals.settings.confidence)} interval"] = [
                _interval(low, high, _ratio) for low, high in zip(table["low"], table["high"])]
            shown["verdict"] = table["verdict"]
            shown["p"] = table["p_value"].map(lambda v: "-" if pd.isna(v) else f"{v:.3g}")
        lines.append(_indent(shown.to_string(index=False)))
        if "verdict" in table:
            smallest = table["smallest_p"].dropna()
            lines.append("  (verdict: the bootstrap interval excludes 1; p: exact permutation test "
                         "of the study times for \"no difference\")")
            if not smallest.empty and smallest.min() >= 0.01:
                lines.append(f"  note: with these study counts no p-value can fall below "
                             f"{smallest.min():.3g}, so p < 0.01 is out of reach; it takes 5 "
                             f"studies on each side (smallest p 2/252 = 0.0079)")
        return lines

    def write(self, output_dir: str | os.PathLike[str], plots: bool = True) -> list[Path]:
        """Write the CSVs (and the profile plot) into ``output_dir``; return the paths written."""
        output = Path(output_dir)
        output.mkdir(parents=True, exist_ok=True)
        written = []

        def save(frame: pd.DataFrame, name: str, index: bool = False) -> None:
            frame.to_csv(output / name, index=index)
            written.append(output / name)

        save(self.time_to_target, "time_to_targets.csv", index=True)
        save(self.per_study, "time_to_targets_per_study.csv")
        if not self.scores.empty:
            save(self.leaderboard(), "leaderboard.csv")
            save(self.performance_profiles, "performance_profiles.csv", index=True)
            if plots:
                from .plots import plot_performance_profiles

                title = f"AlgoPerf {self.version.name}, {self.ruleset}"
                written += plot_performance_profiles(self.performance_profiles, self.scores,
                                                     output / "performance_profiles", title)
        summaries = self.summary()
        for name in self.submissions:
            mine = summaries[summaries["submission"] == name].drop(columns="submission")
            save(mine.sort_values(["workload", "study", "experiment", "trial"], kind="stable",
                                  key=_natural_sort_key), f"{_file_safe(name)}_summary.csv")
        if self.workload_speedups is not None:
            save(self.workload_speedups, "speedups_per_workload.csv")
        if self.intervals is not None:
            save(self.intervals.time_to_target, "time_to_target_intervals.csv")
            settings = self.intervals.settings
            if not self.intervals.scores.empty:
                save(self.intervals.scores.assign(confidence=settings.confidence,
                                                  samples=settings.samples, seed=settings.seed),
                     "score_intervals.csv")
            if self.intervals.speedups is not None:
                save(self.intervals.speedups, "speedup_intervals.csv")
        if self.warnings:
            (output / "warnings.txt").write_text("\n".join(self.warnings) + "\n")
            written.append(output / "warnings.txt")
        return written


def _format_times(table: pd.DataFrame) -> str:
    return table.apply(lambda column: column.map(
        lambda value: value if isinstance(value, str) else _seconds(value))).to_string()


def _seconds(value: float) -> str:
    if pd.isna(value):
        return "-"
    return "inf" if math.isinf(value) else f"{value:.0f}"


def _ratio(value: float) -> str:
    return "-" if pd.isna(value) else f"{value:.4f}"


def _interval(low: float, high: float, number) -> str:
    if pd.isna(low) or pd.isna(high):
        return "-"
    return f"[{number(low)}, {number(high)}]"


def _percent(confidence: float) -> str:
    return f"{100 * confidence:g}%"


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _natural_sort_key(column: pd.Series) -> pd.Series:
    # Sort "trial_10" after "trial_2": zero-pad digit runs.
    return column.astype(str).str.replace(r"\d+", lambda m: m.group(0).zfill(9), regex=True)
