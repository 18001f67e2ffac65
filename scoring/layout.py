"""Where the logs are: AlgoPerf's directory layout, and finding submissions and trials in it.

The layout (spec §3.5, §6.1)::

    <ruleset>/<submission>/study_<s>/<workload>_<framework>/trial_<k>/eval_measurements.csv

with three irregularities found in real log trees:

* the runner's ``--append_timestamp`` creates ``<submission>-YYYY-MM-DD-HH-MM-SS`` beside
  ``<submission>``; all of them are one submission (their trials stay distinct);
* a directory in a study that is not ``<workload>_jax``/``<workload>_pytorch`` (some v0.5 logs have
  stray ``trial_*`` directories there) contributes nothing; it is reported and skipped;
* a tree may hold both rulesets side by side (``external_tuning/`` and ``self_tuning/``).

Everything is visited in natural order (study_2 before study_10), which also fixes the order of
trials that the fewest-evals pick falls back on when two trials tie (spec §6.2).

Our harness adds one file of its own: ``trial_running.json`` sits in a trial directory from the
moment the trial starts until it has finished, so a trial directory holding it was interrupted
(preempted, killed) and its measurements stop short. Upstream's logs never have it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .problems import Problems

MEASUREMENTS_FILE = "eval_measurements.csv"
# The same name as pytest_algoperf.results.TRIAL_RUNNING_FILE, which the harness writes and removes;
# repeated here because scoring imports nothing of the plugin (it must run without torch).
TRIAL_RUNNING_FILE = "trial_running.json"
INTERRUPTED = f"trial interrupted before it finished ({TRIAL_RUNNING_FILE} present)"
# Appended by the reference runner's --append_timestamp flag ("-%Y-%m-%d-%H-%M-%S").
TIMESTAMP_SUFFIX = re.compile(r"-\d{4}(?:-\d{2}){5}$")
WORKLOAD_DIR = re.compile(r"(?P<workload>.+)_(?P<framework>jax|pytorch)")
STUDY_DIR = re.compile(r"study_\d+")
TRIAL_DIR = re.compile(r"trial_\d+")
RULESET_DIRS = {False: "external_tuning", True: "self_tuning"}
# Folders the harness writes beside an experiment's studies (pytest_algoperf.summary.SCORING_DIR,
# pytest_algoperf.learning_curves.SESSION_PLOT_DIR): never logs, so not reported as stray.
HARNESS_DIRS = frozenset({"scoring", "learning_curves"})


class LogLayoutError(ValueError):
    """A directory holds no AlgoPerf logs in any layout we understand."""


@dataclass(frozen=True)
class TrialLog:
    """One trial's measurements file and where it sits in the layout."""

    submission: str
    experiment: str  # the experiment directory's own name (with its timestamp, if any)
    study: str
    workload: str  # without the framework suffix
    framework: str
    trial: str
    path: str  # .../trial_<k>/eval_measurements.csv

    @property
    def directory(self) -> str:
        return os.path.dirname(self.path)

    def was_interrupted(self) -> bool:
        """Whether the harness's running marker is still in the trial directory (see above)."""
        return os.path.exists(os.path.join(self.directory, TRIAL_RUNNING_FILE))


def strip_framework(directory_name: str) -> str:
    """``imagenet_resnet_jax`` -> ``imagenet_resnet`` (scores compare across frameworks)."""
    match = WORKLOAD_DIR.fullmatch(directory_name)
    return match["workload"] if match else directory_name


def submission_name(directory: Path) -> str:
    return TIMESTAMP_SUFFIX.sub("", directory.name)


def is_submission_dir(directory: str | os.PathLike[str]) -> bool:
    """A submission (experiment) directory is one that holds ``study_<s>`` directories."""
    return any(STUDY_DIR.fullmatch(name) for name in _subdirectories(directory))


def experiment_dirs(submission_dir: str | os.PathLike[str]) -> list[Path]:
    """The directory itself and its timestamp-suffixed siblings, which belong to it too."""
    submission_dir = Path(submission_dir)
    if TIMESTAMP_SUFFIX.search(submission_dir.name) or not submission_dir.parent.is_dir():
        return [submission_dir]
    siblings = [submission_dir.parent / name for name in _subdirectories(submission_dir.parent)
                if name.startswith(submission_dir.name)
                and TIMESTAMP_SUFFIX.fullmatch(name[len(submission_dir.name):])]
    return [submission_dir] + siblings


def find_submissions(log_dir: str | os.PathLike[str], self_tuning: bool = False,
                     problems: Problems | None = None) -> dict[str, list[Path]]:
    """Map submission name -> its experiment directories, for any of the accepted LOGDIRs.

    ``log_dir`` may be one submission's directory (it holds ``study_*``), a ruleset directory
    holding several submissions, or a tree holding ``external_tuning/`` and ``self_tuning/``
    (``self_tuning`` picks which).
    """
    problems = problems if problems is not None else Problems()
    log_dir = Path(log_dir).resolve()  # "." must still be named after the directory
    if not log_dir.is_dir():
        raise LogLayoutError(f"{log_dir}: not a directory")
    if is_submission_dir(log_dir):
        return {submission_name(log_dir): experiment_dirs(log_dir)}
    children = _subdirectories(log_dir)
    if any(name in RULESET_DIRS.values() for name in children):
        ruleset = RULESET_DIRS[self_tuning]
        if ruleset not in children:
            other = "--self-tuning" if not self_tuning else "no --self-tuning"
            raise LogLayoutError(f"{log_dir}: has no {ruleset}/ directory (try {other})")
        return find_submissions(log_dir / ruleset, self_tuning, problems)
    submissions: dict[str, list[Path]] = {}
    for name in children:
        child = log_dir / name
        if is_submission_dir(child):
            submissions.setdefault(submission_name(child), []).append(child)
        else:
            problems.add(child, "no study_* directories; not a submission, ignored")
    if not submissions:
        raise LogLayoutError(
            f"{log_dir}: no AlgoPerf logs found. Expected a submission directory holding "
            f"study_<s>/<workload>_<framework>/trial_<k>/{MEASUREMENTS_FILE}, a directory of such "
            f"submissions, or one holding external_tuning/ and self_tuning/")
    return submissions


def find_trial_logs(submission: str, directories: list[Path],
                    problems: Problems) -> list[TrialLog]:
    """Every trial's measurements file of one submission, in natural order.

    A trial directory without the file is reported when the file is read, as are files that turn
    out empty or unreadable. (Paths are joined as strings: a tree has thousands of them.)
    """
    trials = []
    for experiment in map(str, directories):
        experiment_name = os.path.basename(experiment)
        for study in _subdirectories(experiment):
            study_dir = os.path.join(experiment, study)
            if not STUDY_DIR.fullmatch(study):
                if study not in HARNESS_DIRS:
                    problems.add(study_dir, "not a study_<s> directory, ignored")
                continue
            workload_dirs = _subdirectories(study_dir)
            if not workload_dirs:
                problems.add(study_dir, "no <workload>_<framework> directories")
            for workload_dir in workload_dirs:
                where = os.path.join(study_dir, workload_dir)
                match = WORKLOAD_DIR.fullmatch(workload_dir)
                if match is None:
                    problems.add(where, "not a <workload>_jax or <workload>_pytorch directory, "
                                        "ignored")
                    continue
                trial_names = [name for name in _subdirectories(where) if TRIAL_DIR.fullmatch(name)]
                if not trial_names:
                    problems.add(where, "no trial_<k> directories")
                for trial in trial_names:
                    trials.append(TrialLog(submission, experiment_name, study, match["workload"],
                                           match["framework"], trial,
                                           os.path.join(where, trial, MEASUREMENTS_FILE)))
    return trials


def natural_key(name: str) -> tuple:
    """Sort key treating digit runs as numbers: trial_2 < trial_10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _subdirectories(directory: str | Path) -> list[str]:
    try:
        with os.scandir(directory) as entries:
            # Hidden directories (.ipynb_checkpoints, .git) are never part of the layout.
            names = [entry.name for entry in entries
                     if entry.is_dir() and not entry.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    return sorted(names, key=natural_key)
