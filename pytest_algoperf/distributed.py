"""A benchmark session over the processes `torchrun` starts: one DDP trial per item, as upstream runs it.

    torchrun --standalone --nproc_per_node=N -m pytest --algoperf-submission=PATH -k wmt

Every rank collects the same items in the same order and runs each one as one rank of one DDP trial
(reference §3.7: a process group, NCCL on CUDA and gloo on CPU, one device per rank; the workloads
shard their pipelines and all-reduce their eval results, see workloads/parallel.py).

What this module adds to the items:
  * exactly one writer: global rank 0 writes trial folders and session files and prints the report;
    the other ranks run with pytest's terminal output turned off;
  * one verdict: after an item's set-up and again after its run, the ranks exchange their outcomes
    through the launcher's key-value store (which works even when the process group is stuck) and
    every rank reports the same one — a failure on any rank fails the item on all, with that rank's
    message;
  * no hanging: while an item runs, a watcher thread reads the store, and when another rank has failed
    it aborts this rank's process group, which ends a blocked NCCL collective at once; a gloo
    collective ends when `--algoperf-ddp-timeout` runs out;
  * when every rank failed the same way (a submission bug hits all of them at the same step), the
    ranks are still in step and the session goes on. When one rank failed while the others waited,
    their collectives no longer pair up, so the session stops after that item, saying so; rerunning
    the same command continues it (finished trials are reused, see resume.py).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import threading
import time
from typing import Any, Callable, Dict, List, Optional

import pytest

WATCH_INTERVAL_SEC = 0.5
AGREED_PHASES = ("setup", "call")


@dataclasses.dataclass(frozen=True)
class Ranks:
    """This process's place among the session's processes (one process, rank 0, without torchrun)."""

    rank: int = 0
    world_size: int = 1
    distributed: bool = False

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def from_writer(self, read: Callable[[], Any]) -> Any:
        """`read()` on the writer rank, the same value on every rank (e.g. what a trial folder holds)."""
        if not self.distributed:
            return read()
        import torch.distributed as dist

        box = [read() if self.is_writer else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> List[Any]:
        """Every rank's `value`, in rank order."""
        if not self.distributed:
            return [value]
        import torch.distributed as dist

        gathered: List[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered

    def first_problem(self, problem: Optional[str]) -> Optional[str]:
        """The first rank's problem when any rank has one, so every rank takes the same decision."""
        return next((found for found in self.gather(problem) if found is not None), None)


SINGLE_PROCESS = Ranks()


def session_ranks() -> Ranks:
    """From torchrun's environment: DDP exactly when LOCAL_RANK is set, as upstream's `pytorch_setup`."""
    if "LOCAL_RANK" not in os.environ:
        return SINGLE_PROCESS
    return Ranks(rank=int(os.environ.get("RANK", 0)), world_size=int(os.environ.get("WORLD_SIZE", 1)), distributed=True)


def start_process_group(timeout_sec: float) -> None:
    """NCCL on CUDA, gloo on CPU; this rank's GPU is LOCAL_RANK, as upstream's `pytorch_init`."""
    import torch
    import torch.distributed as dist
    if dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_sec))


def stop_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def end_session(exit_status: int, in_step: bool, meet: Callable[[], None] = lambda: None) -> None:
    """Leaves the process group together (when the ranks are still in step; otherwise `meet` brings
    them together), then exits with pytest's status without the interpreter's
    final teardown: gloo's worker threads outlive `destroy_process_group`, and one that frees a finished
    all-reduce while the interpreter shuts down aborts the process now and then (exit code -6 after
    a session that passed)."""
    import atexit
    import sys

    import torch.distributed as dist

    try:
        if in_step and dist.is_initialized():
            dist.barrier()
        else:
            meet()
        stop_process_group()
    except Exception:  # an aborted group: nothing left to leave
        pass

    def exit_now() -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_status)

    atexit.register(exit_now)  # registered last, so it runs first


def _abort_process_group() -> None:
    import torch.distributed as dist

    abort = getattr(dist.distributed_c10d, "_abort_process_group", None)
    if abort is not None and dist.is_initialized():
        abort()


def _post(outcome: str, message: str) -> str:
    return json.dumps({"outcome": outcome, "message": message, "time": time.time()})


def agreed_report(posts: Dict[int, Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The outcome every rank reports, from each rank's own; None when all passed or all skipped alike.

    A failure (or a skip that not every rank took) on any rank fails the item; the earliest failure is
    the cause, since the others usually failed waiting for it. `in_step` says whether the ranks can
    go on together: only when every one of them failed with the same message.
    """
    outcomes = {post["outcome"] for post in posts.values()}
    if outcomes <= {"passed"} or outcomes == {"skipped"}:
        return None
    if outcomes == {"failed"} and len({post["message"] for post in posts.values()}) == 1:
        return {"outcome": "failed", "message": f"every rank failed: {next(iter(posts.values()))['message']}", "in_step": True}
    failed = {rank: post for rank, post in posts.items() if post["outcome"] != "passed"}
    first_rank = min(failed, key=lambda rank: (failed[rank]["outcome"] != "failed", failed[rank]["time"], rank))
    first = failed[first_rank]
    verb = "failed" if first["outcome"] == "failed" else "skipped while the other ranks ran"
    message = f"rank {first_rank} {verb}: {first['message']}"
    others = sorted(rank for rank in failed if rank != first_rank)
    if others:
        message += f" (then rank(s) {', '.join(map(str, others))} failed too)"
    return {"outcome": "failed", "message": message, "in_step": False}


class RankAgreement:
    """Registered on every rank of a torchrun session: one verdict per item, no rank left waiting."""

    def __init__(self, ranks: Ranks, timeout_sec: float, is_benchmark_item) -> None:
        import torch.distributed as dist

        self.ranks = ranks
        self.timeout_sec = timeout_sec
        self.is_benchmark_item = is_benchmark_item
        # The launcher's store outlives every process group made from it.
        self.store = dist.PrefixStore("algoperf-items/", dist.distributed_c10d._get_default_store())
        self._watched: Optional[str] = None
        self._lock = threading.Lock()
        self.exit_status = 0
        self.in_step = True
        threading.Thread(target=self._watch, name="algoperf-rank-watcher", daemon=True).start()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Every rank must run the same items in the same order, or the ranks' collectives would pair up wrongly."""
        import hashlib

        digest = hashlib.sha256("\n".join(item.nodeid for item in session.items).encode()).hexdigest()
        digests = self.ranks.gather(digest)
        if len(set(digests)) > 1:
            pytest.exit(
                "the torchrun ranks collected different items (give every rank the same pytest arguments, "
                f"selection included); item-list digests by rank: {', '.join(d[:12] for d in digests)}",
                returncode=pytest.ExitCode.USAGE_ERROR,
            )

    def _key(self, nodeid: str, phase: str, rank: int) -> str:
        return f"{nodeid}/{phase}/{rank}"

    def _other_ranks(self) -> List[int]:
        return [rank for rank in range(self.ranks.world_size) if rank != self.ranks.rank]

    def _watch(self) -> None:
        """Aborts this rank's process group once another rank posted a failure for the running phase."""
        while True:
            time.sleep(WATCH_INTERVAL_SEC)
            with self._lock:
                watched = self._watched
            if watched is None:
                continue
            try:
                for rank in self._other_ranks():
                    key = f"{watched}/{rank}"
                    if self.store.check([key]) and json.loads(self.store.get(key))["outcome"] != "passed":
                        with self._lock:
                            if self._watched == watched:
                                self._watched = None
                                _abort_process_group()
                        break
            except Exception:  # the store is gone when the session ends
                return

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        if call.when not in AGREED_PHASES or not self.is_benchmark_item(item):
            return report
        with self._lock:
            self._watched = None
        message = "" if report.passed else str(report.longrepr)
        self.store.set(self._key(item.nodeid, call.when, self.ranks.rank), _post(report.outcome, message))
        keys = [self._key(item.nodeid, call.when, rank) for rank in range(self.ranks.world_size)]
        self.store.wait(keys, datetime.timedelta(seconds=self.timeout_sec * 2 + 60))
        posts = {rank: json.loads(self.store.get(key)) for rank, key in enumerate(keys)}
        agreed = agreed_report(posts)
        if agreed is not None:
            report.outcome = agreed["outcome"]
            report.longrepr = agreed["message"]
            if not agreed["in_step"]:
                self.in_step = False
                item.session.shouldstop = (
                    f"{item.nodeid} failed on some ranks while the others waited, so the ranks are out of step; "
                    "the session stops here. Rerun the same command to continue: finished trials are reused"
                )
        if call.when == "setup" and report.passed:
            with self._lock:
                self._watched = f"{item.nodeid}/call"
        return report

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if self.is_benchmark_item(item):
            with self._lock:
                self._watched = f"{item.nodeid}/setup"

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.exit_status = int(exitstatus)

    def meet_at_the_end(self) -> None:
        """Every rank waits here for the others, in the launcher's store (out of step, the process
        group is gone): a rank that exits first makes torchrun stop the rest, which would cut the
        writer rank off before it has reported and written the session's files."""
        self.store.set(f"session-end/{self.ranks.rank}", "1")
        keys = [f"session-end/{rank}" for rank in range(self.ranks.world_size)]
        try:
            self.store.wait(keys, datetime.timedelta(seconds=self.timeout_sec * 2 + 60))
        except Exception:  # a rank that died never arrives: leave after the wait
            pass

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        with self._lock:
            self._watched = None


def silence_terminal(config: pytest.Config) -> None:
    """Ranks other than the writer print nothing: pytest's terminal reporter is blocked there, whether
    it is registered already or not yet (as `-p no:terminal` does)."""
    config.pluginmanager.set_blocked("terminalreporter")
