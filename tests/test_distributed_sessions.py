"""`torchrun -m pytest ...`: each item one DDP trial over the ranks (gloo on CPU), one writer, one verdict."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NADAMW = ROOT / "submissions" / "nadamw"
MAX_STEPS = 150  # enough that training moves the metrics far past the comparison's tolerance
TRIAL = Path("study_0") / "mnist_pytorch" / "trial_1"

# The first trial breaks at step 2: on rank 1 only (rank 0 is then waiting in the gradient all-reduce),
# or on every rank (a plain bug: the ranks stay in step).
BREAKS_IN_THE_FIRST_TRIAL = """

import os as _os

_trials_started = 0
_original_init = init_optimizer_state
_original_update = update_params


def init_optimizer_state(*args, **kwargs):
    global _trials_started
    _trials_started += 1
    return _original_init(*args, **kwargs)


def update_params(*args, **kwargs):
    if _trials_started == 1 and _os.environ.get("RANK") in {ranks} and args[9] == 2:
        raise RuntimeError("broke at step 2")
    return _original_update(*args)
"""


def _pytest_args(data_dir: Path, results_dir: Path, submission: Path, *extra: str) -> list:
    return [
        "-p", "no:cacheprovider", "-k", "mnist", f"--algoperf-submission={submission}", f"--algoperf-data-dir={data_dir}",
        f"--algoperf-results-dir={results_dir}", "--algoperf-studies=1", f"--algoperf-max-steps={MAX_STEPS}",
        "--algoperf-budget-scale=20", *extra,
    ]


def _environment() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _torchrun(cwd: Path, *args: str, processes: int = 2) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "pytest", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600, env=_environment())


def _single(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=_environment())


def _final_eval(trial_dir: Path) -> dict:
    return list(csv.DictReader((trial_dir / "eval_measurements.csv").open()))[-1]


@pytest.fixture(scope="module")
def mnist_runs(mnist_data_dir, tmp_path_factory):
    base = tmp_path_factory.mktemp("ddp")
    args = ("--algoperf-trials=1",)
    single = _single(base, *_pytest_args(mnist_data_dir, base / "single", NADAMW, *args))
    ddp = _torchrun(base, *_pytest_args(mnist_data_dir, base / "ddp", NADAMW, *args))
    return base, single, ddp


def test_two_gloo_ranks_train_mnist_like_one_process_with_the_same_global_batch(mnist_runs):
    base, single, ddp = mnist_runs
    assert single.returncode == 0, single.stdout + single.stderr
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr
    experiment = f"nadamw-max-steps-{MAX_STEPS}"
    one, two = _final_eval(base / "single" / experiment / TRIAL), _final_eval(base / "ddp" / experiment / TRIAL)
    assert one["global_step"] == two["global_step"] == str(MAX_STEPS)
    for metric in ("validation/accuracy", "validation/loss", "test/accuracy", "test/loss", "validation/num_examples"):
        assert math.isclose(float(one[metric]), float(two[metric]), rel_tol=1e-5), metric
    first = list(csv.DictReader((base / "single" / experiment / TRIAL / "eval_measurements.csv").open()))[0]
    assert float(one["validation/accuracy"]) > float(first["validation/accuracy"]) + 0.2, "the runs compared really trained"
    records = [json.loads((base / name / experiment / TRIAL / "trial_outcome.json").read_text()) for name in ("single", "ddp")]
    assert records[0]["status"] == records[1]["status"] == "unscored"


def test_rank_zero_alone_writes_and_reports(mnist_runs):
    base, _, ddp = mnist_runs
    trial_dir = base / "ddp" / f"nadamw-max-steps-{MAX_STEPS}" / TRIAL
    rows = list(csv.DictReader((trial_dir / "eval_measurements.csv").open()))
    steps = [row["global_step"] for row in rows]
    assert steps == sorted(set(steps), key=int), "each eval is logged once, by one process"
    # One report: the header, the result line and the summary table appear once, from rank 0.
    assert ddp.stdout.count("AlgoPerf time to target") == 1
    assert ddp.stdout.count("algoperf: submission") == 1
    assert ddp.stdout.count(" passed") == 1


def _breaking_run(data_dir: Path, tmp_path: Path, ranks: str) -> subprocess.CompletedProcess:
    submission = tmp_path / "breaks"
    shutil.copytree(NADAMW, submission)
    module = submission / "submission.py"
    module.write_text(module.read_text() + BREAKS_IN_THE_FIRST_TRIAL.replace("{ranks}", ranks))
    return _torchrun(
        tmp_path, *_pytest_args(data_dir, tmp_path / "results", submission, "--algoperf-trials=2", "--algoperf-ddp-timeout=15", "-rf")
    )


def test_a_rank_that_fails_alone_fails_the_item_on_every_rank_and_stops_the_session(mnist_data_dir, tmp_path):
    result = _breaking_run(mnist_data_dir, tmp_path, ranks='{"1"}')
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    # Rank 0 waited in a collective (released by the timeout over gloo); both report rank 1's error.
    assert "rank 1 failed: submission error after 2 steps: update_params raised RuntimeError: broke at step 2" in result.stdout, output
    assert "1 failed" in result.stdout and "passed" not in result.stdout.splitlines()[-1], output
    assert "the ranks are out of step; the session stops here. Rerun the same command to continue" in result.stdout, output
    trial = tmp_path / "results" / f"breaks-max-steps-{MAX_STEPS}" / "study_0" / "mnist_pytorch"
    assert json.loads((trial / "trial_1" / "trial_outcome.json").read_text())["status"] == "error"
    assert not (trial / "trial_2").exists()


def test_a_failure_on_every_rank_fails_the_item_and_the_session_goes_on(mnist_data_dir, tmp_path):
    result = _breaking_run(mnist_data_dir, tmp_path, ranks='{"0", "1"}')
    output = result.stdout + result.stderr
    assert "1 failed, 1 passed" in result.stdout, output
    assert "every rank failed: submission error after 2 steps: update_params raised RuntimeError: broke at step 2" in result.stdout
    trial = tmp_path / "results" / f"breaks-max-steps-{MAX_STEPS}" / "study_0" / "mnist_pytorch" / "trial_2"
    second = json.loads((trial / "trial_outcome.json").read_text())
    assert second["status"] == "unscored" and second["steps"] == MAX_STEPS


# --- the verdict the ranks agree on ----------------------------------------------------------------


def _post(outcome: str, message: str = "", at: float = 0.0) -> dict:
    return {"outcome": outcome, "message": message, "time": at}


def test_ranks_that_all_passed_or_all_skipped_keep_their_reports():
    from pytest_algoperf.distributed import agreed_report

    assert agreed_report({0: _post("passed"), 1: _post("passed")}) is None
    assert agreed_report({0: _post("skipped", "no data"), 1: _post("skipped", "no data")}) is None


def test_the_earliest_failure_is_the_cause_every_rank_reports():
    from pytest_algoperf.distributed import agreed_report

    agreed = agreed_report({
        0: _post("failed", "update_params raised RuntimeError: Timed out waiting 20000ms", at=30.0),
        1: _post("failed", "update_params raised RuntimeError: rank one broke", at=10.0),
        2: _post("passed"),
    })
    assert agreed["outcome"] == "failed" and not agreed["in_step"]
    assert agreed["message"] == "rank 1 failed: update_params raised RuntimeError: rank one broke (then rank(s) 0 failed too)"


def test_the_same_failure_on_every_rank_keeps_the_ranks_in_step():
    from pytest_algoperf.distributed import agreed_report

    agreed = agreed_report({0: _post("failed", "boom at step 2", at=2.0), 1: _post("failed", "boom at step 2", at=1.0)})
    assert agreed == {"outcome": "failed", "message": "every rank failed: boom at step 2", "in_step": True}


def test_a_skip_on_some_ranks_only_fails_the_item():
    from pytest_algoperf.distributed import agreed_report

    agreed = agreed_report({0: _post("passed"), 1: _post("skipped", "data missing")})
    assert agreed == {"outcome": "failed", "message": "rank 1 skipped while the other ranks ran: data missing", "in_step": False}
