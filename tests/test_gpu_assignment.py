"""GPUs of xdist workers: the mapping as pure functions, then pytester runs with a pretended GPU count."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pytest_algoperf import gpu_assignment
from pytest_algoperf.gpu_assignment import GpuAssignment, plan_worker_gpus, visible_gpus

ROOT = Path(__file__).resolve().parents[1]
NADAMW = ROOT / "submissions" / "nadamw"


# --- the mapping ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "count, parent, expected",
    [
        (4, None, ["0", "1", "2", "3"]),
        (0, None, []),
        (2, "4,5", ["4", "5"]),  # SLURM's allocation: device numbers of the whole node
        (2, "GPU-1a2b, GPU-3c4d", ["GPU-1a2b", "GPU-3c4d"]),
        (1, "3,foo,5", ["3"]),  # CUDA stops at the first entry it cannot read
        (0, "", []),
    ],
)
def test_visible_gpus_follow_the_parents_cuda_visible_devices(count, parent, expected):
    assert visible_gpus(count, parent) == expected


@pytest.mark.parametrize(
    "workers, per_trial, count, parent, expected",
    [
        (4, 1, 4, None, ["0", "1", "2", "3"]),
        (2, 1, 4, None, ["0", "1"]),
        (2, 2, 4, None, ["0,1", "2,3"]),
        (2, 2, 4, "4,5,6,7", ["4,5", "6,7"]),
        (3, 1, 8, "1,3,5,7,9,11,13,15", ["1", "3", "5"]),
        (0, 1, 4, None, []),  # no xdist
        (4, 1, 0, None, []),  # a CPU machine: nothing to assign
        (4, 3, 0, None, []),
    ],
)
def test_workers_get_disjoint_groups(workers, per_trial, count, parent, expected):
    groups = plan_worker_gpus(workers, per_trial, count, parent)
    assert groups == expected
    entries = [entry for group in groups for entry in group.split(",")]
    assert len(entries) == len(set(entries)) == workers * per_trial * bool(count)


@pytest.mark.parametrize(
    "workers, per_trial, count, message",
    [
        (5, 1, 4, "-n 5 workers x --algoperf-gpus-per-trial=1 need 5 GPUs, but 4 are visible (0,1,2,3); pass -n 4 (or -n auto*"),
        (3, 2, 4, "-n 3 workers x --algoperf-gpus-per-trial=2 need 6 GPUs, but 4 are visible (0,1,2,3); pass -n 2 or a smaller --algoperf-gpus-per-trial*"),
        (1, 2, 1, "-n 1 workers x --algoperf-gpus-per-trial=2 need 2 GPUs, but 1 are visible (0); pass -n 1 or a smaller*"),
    ],
)
def test_more_gpus_than_visible_is_a_usage_error(workers, per_trial, count, message):
    with pytest.raises(pytest.UsageError) as error:
        plan_worker_gpus(workers, per_trial, count, None)
    assert error.match(message.replace("(", r"\(").replace(")", r"\)").replace("*", ".*"))


def test_xdist_under_torchrun_is_a_usage_error():
    with pytest.raises(pytest.UsageError, match="-n 2 under torchrun.*Drop -n"):
        plan_worker_gpus(2, 1, 4, None, under_torchrun=True)
    assert plan_worker_gpus(0, 1, 4, None, under_torchrun=True) == []  # torchrun alone: its own devices


def test_a_crashed_workers_gpus_go_to_its_replacement():
    assignment = GpuAssignment(["0", "1", "2"])
    assert [assignment.take(worker) for worker in ("gw0", "gw1", "gw2")] == ["0", "1", "2"]
    assignment.release("gw1")
    assert assignment.take("gw3") == "1"  # xdist names the replacement gw3


# --- the plugin -------------------------------------------------------------------------------


def _args(tmp_path: Path, *extra: str) -> list:
    return ["-p", "no:cacheprovider", f"--algoperf-submission={NADAMW}", f"--algoperf-data-dir={tmp_path}",
            f"--algoperf-results-dir={tmp_path}", *extra]


def test_too_many_workers_stop_before_any_worker_starts(pytester, tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_assignment, "gpu_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    result = pytester.runpytest(*_args(tmp_path, "-n", "3", "-k", "mnist"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: -n 3 workers x --algoperf-gpus-per-trial=1 need 3 GPUs, but 2 are visible (0,1); pass -n 2*"])


def test_more_than_one_gpu_per_trial_on_a_cpu_is_a_note(pytester, tmp_path, monkeypatch):
    monkeypatch.setattr(gpu_assignment, "gpu_count", lambda: 0)
    result = pytester.runpytest(*_args(tmp_path, "--collect-only", "-k", "mnist", "--algoperf-gpus-per-trial=2"))
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["algoperf: note: no GPUs here, --algoperf-gpus-per-trial=2 has no effect"])


# Test-only: the controller pretends to have FAKE_GPU_COUNT GPUs; every worker writes what it sees.
PROBE_CONFTEST = """
    import os
    from pathlib import Path

    import pytest

    from pytest_algoperf import gpu_assignment

    gpu_assignment.gpu_count = lambda: int(os.environ["FAKE_GPU_COUNT"])


    @pytest.hookimpl(trylast=True)
    def pytest_configure(config):
        if hasattr(config, "workerinput"):
            seen = Path(os.environ["SEEN_DIR"]) / (config.workerinput["workerid"] + ".txt")
            seen.write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"))
"""


def test_each_xdist_worker_sees_its_own_gpus(pytester, tmp_path, monkeypatch):
    pytester.makeconftest(textwrap.dedent(PROBE_CONFTEST))
    seen = tmp_path / "seen"
    seen.mkdir()
    monkeypatch.setenv("FAKE_GPU_COUNT", "4")
    monkeypatch.setenv("SEEN_DIR", str(seen))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")  # as SLURM sets it for a job on half a node
    monkeypatch.delenv("PYTEST_XDIST_AUTO_NUM_WORKERS", raising=False)
    # -n auto: one worker per group of two GPUs; -k deselects every trial, the workers only start.
    result = pytester.runpytest_subprocess(*_args(tmp_path, "-n", "auto", "--algoperf-gpus-per-trial=2", "-k", "no_such_item"))
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED, result.stdout.str()
    result.stdout.fnmatch_lines([
        "algoperf: xdist workers' GPUs (CUDA_VISIBLE_DEVICES): 4,5 | 6,7",
        "algoperf: each trial drives its 2 GPUs through DataParallel in one process (DDP needs torchrun)",
        "created: 2/2 workers",
    ])
    assert {path.stem: path.read_text() for path in seen.iterdir()} == {"gw0": "4,5", "gw1": "6,7"}
