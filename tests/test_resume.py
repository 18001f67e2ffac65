"""Preemption: a trial killed mid-run resumes from its checkpoint with the clock intact; reruns reuse and refuse."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_algoperf import resume, trial_checkpoints
from pytest_algoperf.results import TRIAL_OUTCOME_FILE, TRIAL_RUNNING_FILE

ROOT = Path(__file__).resolve().parents[1]
MAX_STEPS = 1200
# The baseline, at most 100 steps a second however fast the machine: the run outlasts MNIST's 10 s eval
# period, so it has a checkpoint after step 1 to be killed after.
PACED_UPDATES = """

import time as _time

_unpaced_update_params = update_params


def update_params(*args, **kwargs):
    _time.sleep(0.01)
    return _unpaced_update_params(*args, **kwargs)
"""
TRIAL = Path("study_0") / "mnist_pytorch" / "trial_1"


def _command(submission: Path, data_dir: Path, results_dir: Path, *extra: str) -> list:
    return [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-k", "mnist",
        f"--algoperf-submission={submission}", f"--algoperf-data-dir={data_dir}", f"--algoperf-results-dir={results_dir}",
        "--algoperf-studies=1", "--algoperf-trials=1", f"--algoperf-max-steps={MAX_STEPS}",
        "--algoperf-budget-scale=20",  # a loaded machine must not end the run on the budget before MAX_STEPS
        "--algoperf-experiment=paced", *extra,
    ]


def _run(command: list, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


def _eval_rows(trial_dir: Path) -> list:
    return list(csv.DictReader((trial_dir / "eval_measurements.csv").open()))


def _kill_after_an_intermediate_checkpoint(command: list, cwd: Path, trial_dir: Path) -> int:
    """Starts the run, SIGKILLs it once a checkpoint after step 1 exists; returns that checkpoint's step."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            steps = [int(path.name.split("_")[1]) for path in trial_checkpoints.checkpoint_files(trial_dir)]
            if any(1 < step < MAX_STEPS for step in steps):
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return max(steps)
            if process.poll() is not None:
                pytest.fail("the run ended before it could be killed after an intermediate checkpoint")
            time.sleep(0.05)
        pytest.fail("no intermediate checkpoint appeared within 300 s")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def preempted_and_resumed(mnist_data_dir, tmp_path_factory):
    """One uninterrupted run, and the same trial killed after an intermediate checkpoint, then rerun twice."""
    base = tmp_path_factory.mktemp("resume")
    submission = base / "nadamw"
    shutil.copytree(ROOT / "submissions" / "nadamw", submission)
    module = submission / "submission.py"
    module.write_text(module.read_text() + PACED_UPDATES)
    # The uninterrupted run alongside: both processes train the same steps, whatever their speed.
    reference = subprocess.Popen(_command(submission, mnist_data_dir, base / "reference"), cwd=base,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results = base / "preempted"
    command = _command(submission, mnist_data_dir, results)
    trial_dir = results / "paced" / TRIAL
    killed_at = _kill_after_an_intermediate_checkpoint(command, base, trial_dir)
    rows_when_killed = _eval_rows(trial_dir)
    resumed = _run(command, base)
    rerun = _run(command, base)
    reference_output = reference.communicate(timeout=600)[0]
    assert reference.returncode == 0, reference_output
    return {
        "base": base, "submission": submission, "command": command, "killed_at": killed_at, "rows_when_killed": rows_when_killed,
        "reference_dir": base / "reference" / "paced" / TRIAL, "trial_dir": trial_dir,
        "resumed": resumed, "rerun": rerun,
    }


def test_a_killed_trial_resumes_with_continuous_steps_and_times(preempted_and_resumed):
    run = preempted_and_resumed
    assert run["resumed"].returncode == 0, run["resumed"].stdout + run["resumed"].stderr
    rows = _eval_rows(run["trial_dir"])
    steps = [int(row["global_step"]) for row in rows]
    assert steps == sorted(set(steps)), "no eval row is duplicated or out of order"
    assert steps[-1] == MAX_STEPS
    before = [row for row in rows if row["preemption_count"] == "0"]
    after = [row for row in rows if row["preemption_count"] == "1"]
    assert before and after and set(row["preemption_count"] for row in rows) == {"0", "1"}
    assert int(before[-1]["global_step"]) == run["killed_at"], "the rows before the kill end at the checkpoint resumed from"
    assert int(after[0]["global_step"]) > run["killed_at"]
    times = [float(row["accumulated_submission_time"]) for row in rows]
    assert times == sorted(times), "the submission clock continues where the checkpoint left it"
    assert float(after[0]["accumulated_submission_time"]) > float(before[-1]["accumulated_submission_time"])
    assert (run["trial_dir"] / "meta_data_1.json").is_file() and (run["trial_dir"] / "flags_1.json").is_file()
    record = json.loads((run["trial_dir"] / TRIAL_OUTCOME_FILE).read_text())
    assert record["preemption_count"] == 1 and record["steps"] == MAX_STEPS
    assert not (run["trial_dir"] / TRIAL_RUNNING_FILE).exists()
    assert "resumed after preemption: mnist-study0-trial1" in run["resumed"].stdout


def test_a_resumed_trial_ends_where_the_uninterrupted_one_does(preempted_and_resumed):
    run = preempted_and_resumed
    resumed_final, reference_final = _eval_rows(run["trial_dir"])[-1], _eval_rows(run["reference_dir"])[-1]
    reference_record = json.loads((run["reference_dir"] / TRIAL_OUTCOME_FILE).read_text())
    resumed_record = json.loads((run["trial_dir"] / TRIAL_OUTCOME_FILE).read_text())
    assert resumed_record["status"] == reference_record["status"] and resumed_record["steps"] == reference_record["steps"]
    # Same data order, rngs and optimizer state after the resume: the same model at the last step. (Not
    # train/*: eval_train is a shuffled stream that each eval continues, as upstream's, so it depends on
    # how many evals ran before, which the wall clock decides.)
    for metric in ("validation/accuracy", "validation/loss", "test/accuracy", "test/loss"):
        assert math.isclose(float(resumed_final[metric]), float(reference_final[metric]), rel_tol=1e-6), metric


def test_the_killed_trial_was_marked_interrupted_and_left_out_of_scoring(preempted_and_resumed, tmp_path):
    run = preempted_and_resumed
    assert len(run["rows_when_killed"]) >= 2
    # The same state as right after the kill, rebuilt: the marker is what tells the scorer.
    copy = tmp_path / "nadamw" / TRIAL
    copy.mkdir(parents=True)
    (copy / TRIAL_RUNNING_FILE).write_text("{}")
    with (copy / "eval_measurements.csv").open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(run["rows_when_killed"][0]))
        writer.writeheader()
        writer.writerows(run["rows_when_killed"])
    scored = subprocess.run([sys.executable, "-m", "scoring", str(tmp_path), "--strict"], capture_output=True, text=True, cwd=ROOT)
    assert scored.returncode != 0 and "interrupted" in scored.stdout + scored.stderr


def test_a_finished_trial_is_reused_not_rerun(preempted_and_resumed):
    rerun = preempted_and_resumed["rerun"]
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "1 passed" in rerun.stdout
    assert "reused 1 trial(s) an earlier run finished: mnist-study0-trial1" in rerun.stdout
    assert "resumed after preemption" not in rerun.stdout  # a reused record is reported, not counted again


def test_a_rerun_with_an_edited_submission_is_refused(preempted_and_resumed):
    run = preempted_and_resumed
    module = run["submission"] / "submission.py"
    module.write_text(module.read_text() + "\n# tuned\n")
    refused = _run(run["command"], run["base"])
    output = refused.stdout + refused.stderr
    assert refused.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert "submission hash" in output and "--algoperf-overwrite" in output and "--algoperf-experiment" in output
    elsewhere = _run(run["command"] + ["--algoperf-experiment=tuned", "--algoperf-max-steps=3"], run["base"])
    assert (run["base"] / "preempted" / "tuned" / TRIAL / TRIAL_OUTCOME_FILE).is_file()
    assert elsewhere.returncode == 0, elsewhere.stdout + elsewhere.stderr
    overwritten = _run(run["command"] + ["--algoperf-overwrite", "--algoperf-max-steps=3"], run["base"])
    assert overwritten.returncode == 0, overwritten.stdout + overwritten.stderr
    # Started over in the same folder: one short run, no trace of the preempted one.
    assert {row["preemption_count"] for row in _eval_rows(run["trial_dir"])} == {"0"}
    assert not (run["trial_dir"] / "meta_data_1.json").exists()
    record = json.loads((run["trial_dir"] / TRIAL_OUTCOME_FILE).read_text())
    assert record["preemption_count"] == 0 and record["steps"] == 3


# --- checkpoint files ----------------------------------------------------------------------------


def _payload(step: int) -> dict:
    import torch

    return {"global_step": step, "model_params": {"w": torch.full((3,), float(step))}}


def test_a_kill_during_a_checkpoint_write_leaves_the_previous_one(tmp_path, monkeypatch):
    import torch

    trial_checkpoints.save(tmp_path, _payload(10))

    def dies_halfway(payload, handle):
        handle.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt  # what a SIGINT/SIGTERM mid-write raises

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        trial_checkpoints.save(tmp_path, _payload(20))
    monkeypatch.undo()
    assert [path.name for path in tmp_path.iterdir()] == ["checkpoint_10"]
    # A temporary file a SIGKILL left behind is never taken for a checkpoint.
    (tmp_path / ".checkpoint_30.abc.tmp").write_bytes(b"partial")
    assert trial_checkpoints.load_latest(tmp_path, "cpu")["global_step"] == 10


def test_a_checkpoint_that_does_not_load_falls_back_to_the_one_before(tmp_path):
    trial_checkpoints.save(tmp_path, _payload(10))
    trial_checkpoints.save(tmp_path, _payload(20))
    trial_checkpoints.checkpoint_path(tmp_path, 20).write_bytes(b"truncated")
    warnings = []
    assert trial_checkpoints.load_latest(tmp_path, "cpu", warn=warnings.append)["global_step"] == 10
    assert len(warnings) == 1 and "checkpoint_20" in warnings[0] and "the checkpoint before it" in warnings[0]


def test_only_the_latest_two_checkpoints_are_kept(tmp_path):
    for step in (1, 5, 9, 13):
        trial_checkpoints.save(tmp_path, _payload(step))
    assert [path.name for path in trial_checkpoints.checkpoint_files(tmp_path)] == ["checkpoint_9", "checkpoint_13"]


@pytest.mark.parametrize("text, evals, seconds", [("1", 1, None), ("3", 3, None), ("0", None, None), ("1800s", None, 1800.0)])
def test_checkpoint_schedules(text, evals, seconds):
    schedule = trial_checkpoints.CheckpointSchedule.parse(text)
    assert (schedule.every_evals, schedule.every_seconds) == (evals, seconds)
    assert schedule.enabled == (text != "0")


def test_a_bad_checkpoint_schedule_names_the_forms():
    with pytest.raises(ValueError, match=r"N \(every N-th eval\), Ns"):
        trial_checkpoints.CheckpointSchedule.parse("often")


def test_the_schedule_is_due_by_evals_or_by_wall_time():
    assert trial_checkpoints.CheckpointSchedule.parse("2").is_due(2, 0.0)
    assert not trial_checkpoints.CheckpointSchedule.parse("2").is_due(1, 1e9)
    assert trial_checkpoints.CheckpointSchedule.parse("60s").is_due(1, 61.0)
    assert not trial_checkpoints.CheckpointSchedule.parse("60s").is_due(5, 59.0)


# --- what a trial folder says about the trial ------------------------------------------------------


def test_trial_history_reads_the_folder(tmp_path):
    assert resume.trial_history(tmp_path / "absent").state == resume.FRESH
    resume.mark_running(tmp_path, 0)
    assert resume.trial_history(tmp_path).state == resume.FRESH  # killed before its first checkpoint
    trial_checkpoints.save(tmp_path, _payload(7))
    history = resume.trial_history(tmp_path)
    assert history.state == resume.INTERRUPTED and history.checkpoint_file.endswith("checkpoint_7")
    resume.mark_finished(tmp_path, {"status": "not reached"})
    assert resume.trial_history(tmp_path).state == resume.FINISHED
    resume.mark_finished(tmp_path, {"status": "error"})
    assert resume.trial_history(tmp_path).state == resume.FRESH  # a submission error runs again
