"""The benchmark's test items: one training run per (workload, study, trial).

Collected only when `--algoperf-submission` is given; ids read
`test_time_to_target[mnist-study0-trial1]`.
"""

from __future__ import annotations

import pytest

from pytest_algoperf import runner
from pytest_algoperf.call_monitor import CallMonitor
from pytest_algoperf.session import RECORD_PROPERTY
from pytest_algoperf.verdict import failure_message, trial_record


def test_time_to_target(
    request,
    algoperf_trial,
    algoperf_session,
    algoperf_workload,
    algoperf_submission,
    algoperf_hyperparameters,
    algoperf_rngs,
    algoperf_batch_sizes,
    algoperf_input_queue,
    algoperf_model,
    algoperf_trial_logger,
    algoperf_device,
    algoperf_data_dir,
):
    """Trains to the validation target within the workload's runtime budget."""
    settings = algoperf_session.settings
    budget = runner.max_allowed_runtime(
        algoperf_workload.max_allowed_runtime_sec, settings.ruleset, settings.benchmark_version, settings.budget_scale
    )
    model, model_state = algoperf_model
    outcome = runner.run_trial(
        algoperf_workload,
        algoperf_submission,
        algoperf_hyperparameters,
        model,
        model_state,
        algoperf_input_queue,
        algoperf_rngs,
        runner.TrialSettings(
            ruleset=settings.ruleset,
            data_dir=algoperf_data_dir,
            max_allowed_runtime_sec=budget,
            global_eval_batch_size=algoperf_batch_sizes[1],
            max_global_steps=settings.max_steps,
        ),
        logger=algoperf_trial_logger,
        clock=runner.synchronized_clock(algoperf_device),
        monitor=CallMonitor(timeout=settings.timeout) if settings.timeout else None,
    )
    development_run = settings.is_development_run or algoperf_workload.on_subset_data
    record = trial_record(algoperf_trial, algoperf_workload, outcome, budget, development_run)
    request.node.user_properties.append((RECORD_PROPERTY, record))
    message = failure_message(record, outcome, algoperf_workload.higher_is_better)
    if message is not None:
        pytest.fail(message, pytrace=False)
