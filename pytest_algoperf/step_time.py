"""Step-time items (`--algoperf-benchmark-steps`): update_params of the submission next to the baseline's.

Ids read `test_step_time[mnist-submission]` and `test_step_time[mnist-baseline]`;
pytest-benchmark groups each pair by workload. Both sides train the same model
on the same batches at the submission's batch size, on the same machine, so the
ratio of their median step times is the submission's systems cost, apart from
how many steps its algorithm needs.
"""

from __future__ import annotations

import statistics
import time

import pytest

from pytest_algoperf import runner
from pytest_algoperf.baselines import ruleset_baseline_dir
from pytest_algoperf.fixtures import ready_workload
from pytest_algoperf.seeds import derive_seed
from pytest_algoperf.session import RECORD_PROPERTY
from pytest_algoperf.submission_loading import load_submission
from pytest_algoperf.api.halton import generate_search, load_search_space

WARMUP_STEPS = 2  # first steps pay for lazy initialisation
TIMED_STEPS = 10


@pytest.fixture(scope="session")
def algoperf_baseline(algoperf_session):
    """The NAdamW baseline of the session's ruleset, with its first tuning point."""
    baseline = load_submission(ruleset_baseline_dir(algoperf_session.settings.ruleset))
    point = None
    if baseline.paths.search_space_file is not None and algoperf_session.settings.ruleset == "external":
        point = generate_search(load_search_space(baseline.paths.search_space_file), 1)[0]
    return baseline, point


def _synchronize(device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)


def test_step_time(request, algoperf_step_case, algoperf_session, algoperf_submission, algoperf_baseline,
                   algoperf_data_dir, algoperf_device, benchmark):
    """Median update_params time at the submission's batch size (data selection excluded)."""
    case, settings = algoperf_step_case, algoperf_session.settings
    workload = ready_workload(case.workload, algoperf_session, algoperf_data_dir)
    batch_size = algoperf_submission.batch_size(case.entry.name, case.entry.base)
    side, hyperparameters = (
        (algoperf_submission, algoperf_session.first_point) if case.side == "submission" else algoperf_baseline
    )
    # Same seed for both sides: the same initial model and the same batches.
    rngs = runner.trial_rngs(derive_seed(settings.seed, case.workload, "step_time"), settings.ruleset)
    queue = workload._build_input_queue(rngs.data, "train", algoperf_data_dir, batch_size)
    model, model_state = workload.init_model_fn(rngs.model_init)
    state = {"optimizer": side.init_optimizer_state(workload, model, model_state, hyperparameters, rngs.optimizer_init),
             "model": model, "model_state": model_state, "step": 0}
    durations = []

    def next_batch():
        return (next(queue),), {}

    def step(batch):
        _synchronize(algoperf_device)
        start = time.perf_counter()
        state["optimizer"], state["model"], state["model_state"] = side.update_params(
            workload, state["model"], workload.model_params_types, state["model_state"], hyperparameters, batch,
            workload.loss_type, state["optimizer"], [], state["step"], rngs.loop,
        )
        _synchronize(algoperf_device)
        durations.append(time.perf_counter() - start)
        state["step"] += 1

    for _ in range(WARMUP_STEPS):
        step(next(queue))
    durations.clear()
    benchmark.group = case.workload
    benchmark.extra_info.update({"side": case.side, "batch_size": batch_size})
    benchmark.pedantic(step, setup=next_batch, rounds=TIMED_STEPS, iterations=1)
    while len(durations) < TIMED_STEPS:  # pytest-benchmark runs a single round when disabled (e.g. under xdist)
        step(next(queue))
    request.node.user_properties.append((RECORD_PROPERTY, {
        "kind": "step_time",
        "id": case.id,
        "workload": case.workload,
        "side": case.side,
        "batch_size": batch_size,
        "median_seconds": statistics.median(durations),
    }))
