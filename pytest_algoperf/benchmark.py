"""The benchmark's test items: one training run per (workload, study, trial).

Collected only when `--algoperf-submission` is given; ids read
`test_time_to_target[mnist-study0-trial1]`.
"""

from __future__ import annotations

import pytest

from pytest_algoperf import runner
from pytest_algoperf.call_monitor import CallMonitor
from pytest_algoperf.results import TRIAL_OUTCOME_FILE, write_json
from pytest_algoperf.session import RECORD_PROPERTY
from pytest_algoperf.verdict import failure_message, trial_record


def test_time_to_target(request, algoperf_trial, algoperf_session, algoperf_workload, algoperf_run_trial, algoperf_trial_logger):
    """Trains to the validation target within the workload's runtime budget."""
    settings = algoperf_session.settings
    budget = runner.max_allowed_runtime(
        algoperf_workload.max_allowed_runtime_sec, settings.ruleset, settings.benchmark_version, settings.budget_scale
    )
    outcome = algoperf_run_trial(budget, settings.max_steps, CallMonitor(timeout=settings.timeout) if settings.timeout else None)
    development_run = settings.is_development_run or algoperf_workload.on_subset_data
    record = trial_record(algoperf_trial, algoperf_workload, outcome, budget, development_run)
    request.node.user_properties.append((RECORD_PROPERTY, record))
    write_json(algoperf_trial_logger.directory / TRIAL_OUTCOME_FILE, record)
    message = failure_message(record, outcome, algoperf_workload.higher_is_better)
    if message is not None:
        pytest.fail(message, pytrace=False)
