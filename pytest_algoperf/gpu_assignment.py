"""Under `pytest -n K`, every xdist worker trains on GPUs of its own (`--algoperf-gpus-per-trial`, default 1).

The controller splits the GPUs it sees into K disjoint groups and hands each worker its group in
`workerinput`; the worker sets `CUDA_VISIBLE_DEVICES` first thing in its `pytest_configure`, before
anything initialises CUDA, so its trials see only their own GPUs (as `cuda:0`, ...). A
`CUDA_VISIBLE_DEVICES` the controller inherited (SLURM sets one) is respected: groups are drawn
from its entries, UUIDs included. `-n auto` starts one worker per group.

With more than one GPU per worker, a worker's trial drives its GPUs in one process through
`nn.DataParallel`, as upstream does outside torchrun (workloads/parallel.py); DDP trials need
torchrun, which runs one trial at a time over the node. Nothing changes on a machine without
GPUs, nor under torchrun, which owns the devices of its processes: `-n` together with torchrun is
refused.
"""

from __future__ import annotations

import os
import sys
from typing import Dict, List, Optional

import pytest

from pytest_algoperf.session import SESSION_KEY

WORKERINPUT_KEY = "algoperf_cuda_visible_devices"


def gpu_count() -> int:
    """GPUs this process may use; NVML-based, so the controller creates no CUDA context."""
    import torch

    return torch.cuda.device_count()


def visible_gpus(device_count: int, parent_visible: Optional[str]) -> List[str]:
    """The `CUDA_VISIBLE_DEVICES` entries naming this process's GPUs, in CUDA's order."""
    if parent_visible is None:
        return [str(index) for index in range(device_count)]
    # CUDA reads the list up to its first invalid entry; device_count already stopped there.
    return [entry.strip() for entry in parent_visible.split(",") if entry.strip()][:device_count]


def plan_worker_gpus(
    workers: int, gpus_per_trial: int, device_count: int, parent_visible: Optional[str], under_torchrun: bool = False
) -> List[str]:
    """`CUDA_VISIBLE_DEVICES` of xdist workers 0..workers-1: disjoint groups of `gpus_per_trial` GPUs.

    Empty when there is nothing to assign (no workers, no GPUs); a UsageError when it cannot work.
    """
    if not workers:
        return []
    if under_torchrun:
        raise pytest.UsageError(
            f"-n {workers} under torchrun: torchrun gives each of its processes one GPU and runs one trial across "
            "them, so xdist workers cannot have GPUs of their own. Drop -n (trials then run one after another), "
            "or run pytest -n without torchrun (one trial per worker, each on its own GPUs)."
        )
    visible = visible_gpus(device_count, parent_visible)
    if not visible:
        return []
    needed = workers * gpus_per_trial
    if needed > len(visible):
        raise pytest.UsageError(
            f"-n {workers} workers x --algoperf-gpus-per-trial={gpus_per_trial} need {needed} GPUs, "
            f"but {len(visible)} are visible ({','.join(visible)}); pass -n {max(len(visible) // gpus_per_trial, 1)}"
            + (" or a smaller --algoperf-gpus-per-trial" if gpus_per_trial > 1 else "")
            + " (or -n auto: one worker per GPU group)"
        )
    return [",".join(visible[worker * gpus_per_trial:(worker + 1) * gpus_per_trial]) for worker in range(workers)]


class GpuAssignment:
    """The controller's groups; a crashed worker's group goes to the worker xdist starts in its place."""

    def __init__(self, groups: List[str]) -> None:
        self.groups = groups
        self._holders: Dict[int, str] = {}  # group index -> worker id

    def take(self, worker_id: str) -> str:
        free = next(index for index in range(len(self.groups)) if index not in self._holders)
        self._holders[free] = worker_id
        return self.groups[free]

    def release(self, worker_id: str) -> None:
        self._holders = {index: holder for index, holder in self._holders.items() if holder != worker_id}


ASSIGNMENT_KEY = pytest.StashKey[GpuAssignment]()


def _gpus_per_trial(config: pytest.Config) -> Optional[int]:
    """This session's --algoperf-gpus-per-trial; None when no benchmark session runs."""
    session = config.stash.get(SESSION_KEY, None)
    return session.settings.gpus_per_trial if session is not None else None


def _popen_workers(config: pytest.Config) -> int:
    """Workers xdist starts on this machine (`-n K` or `--tx` popen specs); 0 without xdist."""
    if config.pluginmanager.getplugin("dsession") is None:  # no xdist, -n 0, or --collect-only
        return 0
    import execnet
    from xdist.workermanage import parse_tx_spec_config

    return sum(1 for spec in parse_tx_spec_config(config) if execnet.XSpec(spec).popen)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> Optional[int]:
    """`-n auto` on a machine with GPUs: one worker per group of --algoperf-gpus-per-trial GPUs."""
    from pytest_algoperf.options import read_settings

    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):  # the user's explicit choice wins
        return None
    settings = read_settings(config)  # the session does not exist yet when xdist asks
    if not settings.enabled or "LOCAL_RANK" in os.environ:
        return None
    count = gpu_count()
    return max(count // settings.gpus_per_trial, 1) if count else None


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """On a worker: take the GPUs the controller assigned before any CUDA call could see the others."""
    devices = getattr(config, "workerinput", {}).get(WORKERINPUT_KEY)
    if devices is None:
        return
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        config.issue_config_time_warning(pytest.PytestConfigWarning(
            f"CUDA was initialised before this worker could restrict itself to GPUs {devices} "
            "(a conftest or plugin called CUDA at import); its trials may share a GPU with another worker"
        ), stacklevel=2)
    os.environ["CUDA_VISIBLE_DEVICES"] = devices


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """On the controller, before xdist starts its workers: split the GPUs, or refuse what cannot work."""
    config = session.config
    gpus_per_trial, workers = _gpus_per_trial(config), _popen_workers(config)  # no workers on a worker
    if gpus_per_trial is None or not workers:
        return
    groups = plan_worker_gpus(
        workers, gpus_per_trial, gpu_count(), os.environ.get("CUDA_VISIBLE_DEVICES"), "LOCAL_RANK" in os.environ
    )
    if groups:
        config.stash[ASSIGNMENT_KEY] = GpuAssignment(groups)


def pytest_report_header(config: pytest.Config) -> List[str]:
    gpus_per_trial = _gpus_per_trial(config)
    if gpus_per_trial is None or hasattr(config, "workerinput"):
        return []
    assignment = config.stash.get(ASSIGNMENT_KEY, None)
    if assignment is not None:
        lines = [f"algoperf: xdist workers' GPUs (CUDA_VISIBLE_DEVICES): {' | '.join(assignment.groups)}"]
        if gpus_per_trial > 1:
            lines.append(f"algoperf: each trial drives its {gpus_per_trial} GPUs through DataParallel in one process (DDP needs torchrun)")
        return lines
    if gpus_per_trial > 1 and "LOCAL_RANK" not in os.environ and gpu_count() == 0:
        return [f"algoperf: note: no GPUs here, --algoperf-gpus-per-trial={gpus_per_trial} has no effect"]
    return []


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist, on the controller, before a worker starts: give it the next free group of GPUs."""
    assignment = node.config.stash.get(ASSIGNMENT_KEY, None)
    if assignment is not None and node.gateway.spec.popen:
        node.workerinput[WORKERINPUT_KEY] = assignment.take(node.gateway.id)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    assignment = node.config.stash.get(ASSIGNMENT_KEY, None)
    if assignment is not None:
        assignment.release(node.gateway.id)
