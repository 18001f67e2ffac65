"""scripts/slurm/benchmark.sbatch, run as SLURM would run its array tasks, with a torchrun that records its arguments."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "slurm" / "benchmark.sbatch"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

FAKE_TORCHRUN = """#!/usr/bin/env bash
# Test-only torchrun: its arguments one per line, and what it would hand the ranks.
printf '%s\\n' "$@" > "$TORCHRUN_LOG/$SLURM_ARRAY_TASK_ID.args"
printf '%s\\n' "OMP_NUM_THREADS=$OMP_NUM_THREADS" "PWD=$PWD" > "$TORCHRUN_LOG/$SLURM_ARRAY_TASK_ID.env"
exit "${FAKE_TORCHRUN_EXIT:-0}"
"""


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    directory = tmp_path / "bin"
    directory.mkdir()
    (directory / "torchrun").write_text(FAKE_TORCHRUN)
    (directory / "torchrun").chmod(0o755)
    (tmp_path / "log").mkdir()
    return directory


def _task(tmp_path: Path, fake_bin: Path, task_id: int, first: int, last: int, count: int, **env: str) -> subprocess.CompletedProcess:
    """Runs the script as array task `task_id` of `--array=first-last` (count tasks), outside any real venv."""
    environment = {
        "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "SLURM_SUBMIT_DIR": str(ROOT),
        "SLURM_ARRAY_TASK_ID": str(task_id),
        "SLURM_ARRAY_TASK_MIN": str(first),
        "SLURM_ARRAY_TASK_MAX": str(last),
        "SLURM_ARRAY_TASK_COUNT": str(count),
        "SLURM_CPUS_PER_TASK": "32",
        "VENV": str(tmp_path / "no_venv"),  # the fake torchrun, not the checkout's real one
        "RESULTS_DIR": str(tmp_path / "shared" / "results"),
        "DATA_DIR": str(tmp_path / "shared" / "data"),
        "TORCHRUN_LOG": str(tmp_path / "log"),
        **env,
    }
    return subprocess.run(["bash", str(SCRIPT)], env=environment, capture_output=True, text=True, timeout=30)


def _torchrun_args(tmp_path: Path, task_id: int) -> list:
    return (tmp_path / "log" / f"{task_id}.args").read_text().splitlines()


def _torchrun_env(tmp_path: Path, task_id: int) -> list:
    return (tmp_path / "log" / f"{task_id}.env").read_text().splitlines()


def _option(args: list, name: str) -> list:
    return [arg.split("=", 1)[1] for arg in args if arg.startswith(f"{name}=")]


def test_the_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_the_sbatch_header_asks_for_one_4xa100_node_per_task():
    lines = [line for line in SCRIPT.read_text().splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --nodes=1" in lines and "#SBATCH --gres=gpu:a100:4" in lines
    assert any(line.startswith("#SBATCH --array=0-") for line in lines)
    # sbatch reads #SBATCH lines only up to the first command.
    body = SCRIPT.read_text().split("set -euo pipefail", 1)[1]
    assert "#SBATCH" not in body


@pytest.mark.parametrize("first", [0, 1])  # --array=0-3, and --array=1-4
def test_task_i_runs_shard_i_plus_1_of_n_into_the_shared_results(tmp_path, fake_bin, first):
    count = 4
    for task_id in range(first, first + count):
        result = _task(tmp_path, fake_bin, task_id, first, first + count - 1, count)
        assert result.returncode == 0, result.stderr
    runs = [_torchrun_args(tmp_path, task_id) for task_id in range(first, first + count)]
    assert [_option(args, "--algoperf-shard") for args in runs] == [[f"{k}/{count}"] for k in range(1, count + 1)]
    for task_id, args in zip(range(first, first + count), runs):
        assert args[:4] == ["--standalone", "--nproc_per_node=4", "-m", "pytest"]
        assert _option(args, "--algoperf-results-dir") == [str(tmp_path / "shared" / "results")]
        assert _option(args, "--algoperf-data-dir") == [str(tmp_path / "shared" / "data")]
        assert _option(args, "--algoperf-submission") == ["submissions/nadamw"]
        assert _torchrun_env(tmp_path, task_id) == ["OMP_NUM_THREADS=8", f"PWD={ROOT}"]  # 32 cores over 4 ranks
        assert args[args.index("-m", 4) + 1] == "not dev"  # one argument, the scored workloads
    experiments = {tuple(_option(args, "--algoperf-experiment")) for args in runs}
    assert experiments == {("nadamw_external_a100",)}
    assert (tmp_path / "shared" / "results").is_dir()


def test_variables_come_from_the_environment(tmp_path, fake_bin):
    result = _task(tmp_path, fake_bin, 0, 0, 1, 2, SUBMISSION="submissions/nadamw_self_tuning", RULESET="self",
                   GPUS_PER_NODE="8", EXPERIMENT="run7", EXTRA_ARGS="--algoperf-budget-scale=2 -k wmt")
    assert result.returncode == 0, result.stderr
    args = _torchrun_args(tmp_path, 0)
    assert "--nproc_per_node=8" in args and _option(args, "--algoperf-ruleset") == ["self"]
    assert _option(args, "--algoperf-experiment") == ["run7"] and _option(args, "--algoperf-shard") == ["1/2"]
    assert args[-3:] == ["--algoperf-budget-scale=2", "-k", "wmt"]
    assert _torchrun_env(tmp_path, 0)[0] == "OMP_NUM_THREADS=4"


def test_an_array_with_gaps_is_refused(tmp_path, fake_bin):
    result = _task(tmp_path, fake_bin, 2, 0, 14, 8)  # --array=0-14:2
    assert result.returncode == 2
    assert "has gaps; use a contiguous range such as --array=0-7" in result.stderr
    assert not list((tmp_path / "log").iterdir())


def test_outside_an_array_the_script_says_how_to_submit(tmp_path, fake_bin):
    result = _task(tmp_path, fake_bin, 0, 0, 0, 1, SLURM_ARRAY_TASK_ID="")
    assert result.returncode == 2 and "submit with sbatch --array=0-<N-1>" in result.stderr


def test_the_tasks_exit_status_is_torchruns(tmp_path, fake_bin):
    result = _task(tmp_path, fake_bin, 0, 0, 0, 1, FAKE_TORCHRUN_EXIT="1")
    assert result.returncode == 1
