"""What a smoke run is: a few steps and evals on tiny data, with every check switched on."""

from __future__ import annotations

import time
from typing import Any, List, Tuple

SMOKE_STEPS = 5  # default of --algoperf-smoke-steps: enough updates to catch early divergence; evals follow step 1 and the last
EVAL_BATCH_MULTIPLE = 8
SMOKE_CALL_TIMEOUT_SEC = 300.0  # per submission call unless --algoperf-timeout says otherwise


def reduced_batch_sizes(
    train_size: int, eval_size: int, largest_eval_split: int, devices: int, cap: int
) -> Tuple[int, int]:
    """The smoke run's batch sizes: training capped at `cap`, the workload's `SMOKE_BATCH_SIZE`; eval
    just big enough that one batch covers the largest tiny eval split, in steps of at most `cap`
    (eval batches are padded to full size, and every padded row costs a pass through the model).
    Both stay multiples of the devices a batch is split across."""
    multiple = min(cap, EVAL_BATCH_MULTIPLE)
    covering = -(-largest_eval_split // multiple) * multiple

    def whole_devices(size: int) -> int:
        return max(devices, size // devices * devices)

    return whole_devices(min(train_size, cap)), whole_devices(min(eval_size, covering))


def timed(call: Any, *args: Any) -> Tuple[Any, float]:
    start = time.perf_counter()
    result = call(*args)
    return result, time.perf_counter() - start


def untimed_work_problems(import_seconds: float, batch_size_seconds: float) -> List[str]:
    from pytest_algoperf import rules

    problems = []
    if import_seconds > rules.IMPORT_SECONDS_LIMIT:
        problems.append(f"importing the submission took {import_seconds:.1f} s (limit {rules.IMPORT_SECONDS_LIMIT:g} s)")
    if batch_size_seconds > rules.GET_BATCH_SIZE_SECONDS_LIMIT:
        problems.append(f"get_batch_size took {batch_size_seconds:.2f} s (limit {rules.GET_BATCH_SIZE_SECONDS_LIMIT:g} s)")
    return problems
