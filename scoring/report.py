"""What scoring hands back: the result object, its terminal report and its files.

Files written by :meth:`ScoringResult.write` (names say what they hold):

* ``leaderboard.csv``: rank, submission, score, base workloads credited (and speedup, if asked);
* ``time_to_targets.csv``: submissions x workloads, median over studies (inf: never reached);
* ``time_to_targets_per_study.csv``: per study, the time and the trial that set it;
* ``performance_profiles.csv`` / ``.png`` / ``.pdf``: rho(tau) per submission;
* ``<submission>_summary.csv``: one row per trial (see summary.py);
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
                lines.append(_indent(_format_times(self.per_study_table(name))))
            else:
                lines.append("  no readable logs")
        board = self.leaderboard()
        if not board.empty:
            lines += ["", f"Leaderboard: score = area under the performance profile, "
                          f"tau in [{TAUS[0]:g}, {TAUS[-1]:g}], "
                          f"{self.version.num_base_workloads} base workloads"
                          + (f", held-out rule with {', '.join(self.version.held_out_workloads)}"
                             if self.version.held_out_workloads else "")]
            shown = board.copy()
            shown["score"] = shown["score"].map(lambda v: f"{v:.4f}")
            if self.speedups is not None:
                column = self.speedups.name
                shown[column] = shown[column].map(lambda v: "-" if pd.isna(v) else f"{v:.4f}")
            lines.append(_indent(shown.to_string(index=False)))
            lines.append(f"  (a time above {MAX_SLOWDOWN}x the fastest earns nothing"
                         + (", nor does a base workload whose held-out variant failed)"
                            if self.version.held_out_workloads else ")"))
        elif self.submissions:
            lines += ["", f"No benchmark score: none of the {self.version.name} base workloads "
                          f"({', '.join(self.version.base_workloads)}) has logs."]
        if self.warnings:
            lines += ["", f"Warnings ({len(self.warnings)}):"]
            lines += [f"  - {warning}" for warning in self.warnings]
        return "\n".join(lines)

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
        if self.warnings:
            (output / "warnings.txt").write_text("\n".join(self.warnings) + "\n")
            written.append(output / "warnings.txt")
        return written


def _format_times(table: pd.DataFrame) -> str:
    def cell(value: float) -> str:
        if pd.isna(value):
            return "-"
        return "inf" if math.isinf(value) else f"{value:.0f}"

    return table.apply(lambda column: column.map(cell)).to_string()


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.splitlines())


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def _natural_sort_key(column: pd.Series) -> pd.Series:
    # Sort "trial_10" after "trial_2": zero-pad digit runs.
    return column.astype(str).str.replace(r"\d+", lambda m: m.group(0).zfill(9), regex=True)
