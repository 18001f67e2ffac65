"""The benchmark's test items: one training run per (workload, study, trial).

Collected only when `--algoperf-submission` is given; ids read
`test_time_to_target[mnist-study0-trial1]`. A trial an earlier run of the same command finished
is reported from its stored result instead of running again (see resume.py).
"""

from __future__ import annotations

import pytest

from pytest_algoperf import resume, runner
from pytest_algoperf.call_monitor import CallMonitor
from pytest_algoperf.item_properties import flat_properties
from pytest_algoperf.session import RECORD_PROPERTY
from pytest_algoperf.verdict import failure_message, record_failure_message, trial_record


def test_time_to_target(request, algoperf_trial, algoperf_session, algoperf_trial_history, algoperf_trial_dir):
    """Trains to the validation target within the workload's runtime budget."""
    if algoperf_trial_history.state == resume.FINISHED:
        record = resume.reused_record(algoperf_trial_history)
        request.node.user_properties += [(RECORD_PROPERTY, record)] + flat_properties(record)
        message = record_failure_message(record)
        if message is not None:
            pytest.fail(f"(reused result) {message}", pytrace=False)
        return
    # Requested here, not as arguments: a reused trial needs no data, model or device.
    workload = request.getfixturevalue("algoperf_workload")
    run_trial = request.getfixturevalue("algoperf_run_trial")
    settings = algoperf_session.settings
    budget = runner.max_allowed_runtime(workload.max_allowed_runtime_sec, settings.ruleset, settings.benchmark_version, settings.budget_scale)
    outcome = run_trial(budget, settings.max_steps, CallMonitor(timeout=settings.timeout) if settings.timeout else None)
    development_run = settings.is_development_run or workload.on_subset_data
    record = trial_record(algoperf_trial, workload, outcome, budget, development_run)
    request.node.user_properties += [(RECORD_PROPERTY, record)] + flat_properties(record)
    if algoperf_session.ranks.is_writer:
        resume.mark_finished(algoperf_trial_dir, record)
    message = failure_message(record, outcome)
    if message is not None:
        pytest.fail(message, pytrace=False)
