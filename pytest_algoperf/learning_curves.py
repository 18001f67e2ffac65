"""Learning curves: a workload's target metric against accumulated submission time, with its target.

The data and the drawing are kept apart. `trial_curve` reads one trial's ``eval_measurements.csv``
into a DataFrame (one row per eval: ``global_step``, ``time`` -- the logs' ``score`` column, the
accumulated submission time --, ``train`` and ``validation`` values of the workload's target
metric, and ``reached``); `log_tree_curves` stacks the trials of a log tree. `target_mark` is the
first eval meeting the target, by the scorer's rule (scoring.time_to_target.reached_target, so the
curve's marker and the time-to-target table always agree). The ``draw_*`` functions turn such
frames into PNGs.

matplotlib is imported on first drawing only; each figure has its own Agg canvas, without pyplot,
as in scoring/plots.py, so drawing needs no display and leaves the calling process's backend alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from pytest_algoperf.results import write_file_atomically
from scoring.layout import find_submissions, find_trial_logs
from scoring.problems import Problems
from scoring.time_to_target import TIME_COLUMN, reached_target
from scoring.versions import BenchmarkVersion, WorkloadTarget

TRIAL_PLOT = "learning_curve.png"  # beside the trial's logs
SESSION_PLOT_DIR = "learning_curves"  # results/<experiment>/learning_curves/<workload>.png
CURVE_COLUMNS = ("global_step", "time", "train", "validation", "reached")
TRIAL_KEYS = ("submission", "study", "trial")
# Matplotlib's default cycle: one colour per study (or per submission in a comparison).
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
DPI = 100


# --- data ----------------------------------------------------------------------------------------


def trial_curve(measurements: str | os.PathLike[str], workload: str, version: BenchmarkVersion) -> pd.DataFrame:
    """One trial's evals: global_step, time (submission seconds), train, validation, reached.

    ``train`` and ``validation`` hold the workload's target metric (NaN where the log lacks it);
    ``reached`` says whether that eval meets the validation target, as the scorer decides it.
    """
    target = version.target(workload)
    logged = pd.read_csv(measurements)
    curve = pd.DataFrame({
        "global_step": _column(logged, "global_step"),
        "time": _column(logged, TIME_COLUMN),
        "train": _column(logged, f"train/{target.metric}"),
        "validation": _column(logged, target.validation_column),
    })
    as_evals = pd.DataFrame({
        "workload": pd.Categorical([workload] * len(curve)),
        target.validation_column: curve["validation"].to_numpy(),
    })
    curve["reached"] = reached_target(as_evals, version) if len(curve) else np.zeros(0, dtype=bool)
    return curve


def target_mark(curve: pd.DataFrame) -> Optional[pd.Series]:
    """The first eval that meets the target (its time is the trial's time to target), or None."""
    reached = curve[curve["reached"]]
    return None if reached.empty else reached.iloc[0]


def log_tree_curves(log_dir: str | os.PathLike[str], workload: str, version: BenchmarkVersion,
                    self_tuning: bool = False, name: Optional[str] = None) -> pd.DataFrame:
    """The curves of every trial of ``workload`` in a log tree, stacked.

    ``log_dir`` is one submission's directory (holding ``study_*``) or any tree the scorer reads.
    Adds ``submission`` (``name`` if given, as the session names its references: ``<name>`` for a
    tree of one submission, ``<name>/<submission>`` for several), ``study`` and ``trial`` (numbers)
    and ``interrupted`` (the trial's running marker is still there). Trials without a readable
    log are left out.
    """
    submissions = find_submissions(log_dir, self_tuning)
    frames = []
    for submission, directories in submissions.items():
        label = submission if name is None else (name if len(submissions) == 1 else f"{name}/{submission}")
        for trial in find_trial_logs(submission, directories, Problems()):
            if trial.workload != workload:
                continue
            try:
                curve = trial_curve(trial.path, workload, version)
            except (FileNotFoundError, pd.errors.EmptyDataError, pd.errors.ParserError):
                continue
            if curve.empty:
                continue
            curve.insert(0, "submission", label)
            curve.insert(1, "study", _number(trial.study))
            curve.insert(2, "trial", _number(trial.trial))
            curve["interrupted"] = trial.was_interrupted()
            frames.append(curve)
    if not frames:
        return pd.DataFrame(columns=[*TRIAL_KEYS, *CURVE_COLUMNS, "interrupted"])
    return pd.concat(frames, ignore_index=True)


def _column(frame: pd.DataFrame, name: str) -> np.ndarray:
    if name not in frame:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)


def _number(directory_name: str) -> int:
    return int(directory_name.rsplit("_", 1)[-1])


# --- drawing -------------------------------------------------------------------------------------


def draw_trial(curve: pd.DataFrame, target: WorkloadTarget, path: Path, title: str = "") -> Path:
    """One trial: validation and train metric over submission time, the target, the time to target."""
    figure, (axes,) = _figure(1, width=8.5, height=4.5)
    colour = COLOURS[0]
    axes.plot(curve["time"], curve["validation"], color=colour, marker="o", markersize=3, linewidth=1.8,
              label=target.validation_column)
    if curve["train"].notna().any():
        axes.plot(curve["time"], curve["train"], color=colour, linestyle="--", linewidth=1.2, alpha=0.7,
                  marker=".", markersize=4, label=f"train/{target.metric}")
    _target_line(axes, target, label=True)
    mark = target_mark(curve)
    if mark is not None:
        axes.axvline(mark["time"], color="black", linestyle=":", linewidth=1)
        axes.plot([mark["time"]], [mark["validation"]], marker="*", markersize=14, color="black", linestyle="none",
                  label=f"time to target\n{mark['time']:.1f} s (step {int(mark['global_step'])})")
    _label(axes, target, title)
    _legend(figure, axes.get_legend_handles_labels()[0])
    return _save(figure, path)


def draw_workload(curves: pd.DataFrame, target: WorkloadTarget, path: Path, title: str = "") -> Path:
    """Every trial of one submission's workload: one colour per study, validation solid, train dashed."""
    figure, (axes,) = _figure(1, width=10, height=5.5)
    _draw_trials(axes, curves, target)
    _label(axes, target, title)
    _legend(figure, _legend_handles(curves, target))
    return _save(figure, path)


def draw_comparison(curves: pd.DataFrame, target: WorkloadTarget, path: Path, title: str = "") -> Path:
    """One panel per submission (this run first, then each reference), on shared axes."""
    submissions = list(dict.fromkeys(curves["submission"]))
    figure, panels = _figure(len(submissions), width=2 + 4.5 * len(submissions), height=4.8)
    for axes, submission in zip(panels, submissions):
        mine = curves[curves["submission"] == submission]
        _draw_trials(axes, mine, target)
        _label(axes, target, f"{submission}: {_trial_count(mine)}")
    if title:
        figure.suptitle(title)
    _legend(figure, _legend_handles(curves, target, counts=False))
    return _save(figure, path)


def _draw_trials(axes, curves: pd.DataFrame, target: WorkloadTarget) -> None:
    studies = sorted(curves["study"].unique())
    for (study, _trial), trial in curves.groupby(["study", "trial"], sort=True):
        colour = COLOURS[studies.index(study) % len(COLOURS)]
        style = ":" if trial["interrupted"].any() else "-"
        axes.plot(trial["time"], trial["validation"], color=colour, linestyle=style, linewidth=1.6, alpha=0.9,
                  marker="o", markersize=2.5)
        if trial["train"].notna().any():
            axes.plot(trial["time"], trial["train"], color=colour, linestyle="--", linewidth=0.9, alpha=0.5,
                      marker=".", markersize=3)
        mark = target_mark(trial)
        if mark is not None:
            axes.plot([mark["time"]], [mark["validation"]], marker="*", markersize=11, color=colour,
                      markeredgecolor="black", markeredgewidth=0.6, linestyle="none")
    _target_line(axes, target, label=False)


def _trial_count(curves: pd.DataFrame) -> str:
    trials, studies = len(curves.groupby(["study", "trial"])), curves["study"].nunique()
    return f"{trials} trial{'s' if trials != 1 else ''} in {studies} stud{'ies' if studies != 1 else 'y'}"


def _legend_handles(curves: pd.DataFrame, target: WorkloadTarget, counts: bool = True) -> list:
    from matplotlib.lines import Line2D

    studies = sorted(curves["study"].unique())
    handles = []
    for index, study in enumerate(studies):
        count = curves.loc[curves["study"] == study, "trial"].nunique()
        label = f"study {study}" + (f" ({count} trial{'s' if count != 1 else ''})" if counts else "")
        handles.append(Line2D([], [], color=COLOURS[index % len(COLOURS)], linewidth=2, label=label))
    handles += [
        Line2D([], [], color="grey", linewidth=1.6, label=target.validation_column),
        Line2D([], [], color="grey", linestyle="--", linewidth=0.9, label=f"train/{target.metric}"),
        Line2D([], [], color="black", linestyle="-.", linewidth=1, label=_target_text(target)),
        Line2D([], [], marker="*", markersize=11, color="grey", markeredgecolor="black", linestyle="none",
               label="time to target"),
    ]
    if curves["interrupted"].any():
        handles.append(Line2D([], [], color="grey", linestyle=":", label="interrupted trial"))
    return handles


def _target_text(target: WorkloadTarget) -> str:
    return f"target {'<=' if target.minimize else '>='} {target.validation_target:g}"


def _target_line(axes, target: WorkloadTarget, label: bool) -> None:
    axes.axhline(target.validation_target, color="black", linestyle="-.", linewidth=1,
                 label=_target_text(target) if label else None)


LEGEND_WIDTH = 2.0  # inches on the right of every figure: the legend never hides a curve


def _figure(panels: int, width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, panels, sharex=True, sharey=True, squeeze=False)[0]
    # Fixed margins: an automatic layout engine would double the drawing time.
    figure.subplots_adjust(left=0.7 / width, right=1 - LEGEND_WIDTH / width, bottom=0.12,
                           top=0.86 if panels > 1 else 0.9, wspace=0.08)
    return figure, list(axes)


def _label(axes, target: WorkloadTarget, title: str) -> None:
    axes.set_xlabel("accumulated submission time (s)")
    if axes.get_subplotspec().is_first_col():
        axes.set_ylabel(f"{target.metric} ({'lower' if target.minimize else 'higher'} is better)")
    axes.grid(alpha=0.35)
    if title:
        axes.set_title(title, fontsize="medium")


def _legend(figure, handles: list) -> None:
    right = figure.subplotpars.right
    figure.legend(handles=handles, loc="upper left", bbox_to_anchor=(right + 0.01, figure.subplotpars.top),
                  fontsize="small", frameon=False)


def _save(figure, path: Path) -> Path:
    # Time starts at 0 on every panel, with a little room after the last eval; panels share their
    # axes, so the right end covers all of them.
    right = max(axes.get_xlim()[1] for axes in figure.axes)
    for axes in figure.axes:
        axes.set_xlim(0, max(right * 1.03, 1e-3))
    path = Path(path)
    write_file_atomically(path, lambda out: figure.savefig(out, format="png", dpi=DPI))
    return path
