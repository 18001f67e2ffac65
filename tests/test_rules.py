"""The workload-identification scan: what fails, what only warns, and what is allowed; batch-size types."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from pytest_algoperf.rules import workload_identification_findings
from pytest_algoperf.submission_loading import SubmissionError, _positive_int

NAMES = ("mnist", "ogbg", "wmt")


def _scan(body: str):
    source = textwrap.dedent(f"""
        def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters,
                          batch, loss_type, optimizer_state, eval_results, global_step, rng):
        {textwrap.indent(textwrap.dedent(body), '    ')}
    """)
    return workload_identification_findings(source, NAMES)


@pytest.mark.parametrize("body", [
    "metric = eval_results[-1][1]['validation/' + workload.target_metric_name]",
    "warmup = int(0.05 * workload.step_hint)",
    "late = workload.max_allowed_runtime_sec * 0.9 < eval_results[-1][1]['score']",
    "every = workload.eval_period_time_sec; n = workload.num_train_examples",
    "smoothing = 0.1 if loss_type == 'softmax' else 0.0",
])
def test_reading_what_the_api_hands_every_submission_is_not_identification(body):
    findings = _scan(body)
    assert findings.failures == [] and findings.warnings == []


@pytest.mark.parametrize("body, found", [
    ("if type(workload).__name__ == 'X': pass", "type(workload, ...)"),
    ("if isinstance(workload, object): pass", "isinstance(workload, ...)"),
    ("kind = workload.__class__", "workload.__class__"),
    ("if workload.name: pass", "workload.name"),
    ("lr = 0.1 if dataset == 'ogbg' else 0.01", "compares with the workload name 'ogbg'"),
    ("lr = 0.1 if name in ('wmt', 'other') else 0.01", "compares with the workload name 'wmt'"),
])
def test_branching_on_class_name_or_a_workload_name_fails(body, found):
    findings = _scan(body)
    assert any(found in failure for failure in findings.failures), findings


@pytest.mark.parametrize("body, found", [
    ("goal = workload.validation_target_value", "reads workload.validation_target_value"),
    ("goal = workload.test_target_value", "reads workload.test_target_value"),
    ("if workload.target_metric_name == 'wer': pass", "compares a workload property with 'wer'"),
    ("table = {'mnist': 1}", "the string 'mnist'"),
])
def test_patterns_that_may_be_innocent_only_warn(body, found):
    findings = _scan(body)
    assert findings.failures == [] and any(found in warning for warning in findings.warnings), findings


def test_the_batch_size_functions_may_name_workloads():
    source = "def get_batch_size(workload_name):\n    return 8 if workload_name == 'mnist' else 16\n"
    findings = workload_identification_findings(source, NAMES)
    assert findings.failures == [] and findings.warnings == []


@pytest.mark.parametrize("size", [16, np.int64(16), np.int32(16), np.uint16(16)])
def test_batch_sizes_may_be_any_integer_type(size):
    assert _positive_int("get_batch_size", "mnist", size) == 16


@pytest.mark.parametrize("size", [0, -8, 8.0, 8.5, True, "16", None])
def test_other_batch_sizes_are_rejected_with_what_was_returned(size):
    with pytest.raises(SubmissionError, match=r"get_batch_size\('mnist'\) returned .*, expected a positive integer"):
        _positive_int("get_batch_size", "mnist", size)
