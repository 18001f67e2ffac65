"""The CI gate's test items: one short checked run per workload (`--algoperf-smoke`).

Ids read `test_smoke[ogbg-study0-trial1]`. Each item checks the submission's
API, its batch sizes, the rules a program can check, and that its optimizer
state checkpoints; it trains a few steps with two evals on tiny data that the
workload's real preparation command made.
"""

from __future__ import annotations

import math

import pytest

from pytest_algoperf import rules
from pytest_algoperf.api_check import signature_problems
from pytest_algoperf.call_monitor import CallMonitor
from pytest_algoperf.checkpointing import checkpoint_round_trip
from pytest_algoperf.session import RECORD_PROPERTY
from pytest_algoperf.smoke import SMOKE_CALL_TIMEOUT_SEC, untimed_work_problems
from workloads.registry import WORKLOADS


def _static_checks(submission) -> tuple:
    """(problems that fail the item, warnings for the session summary) from reading the submission's source."""
    problems = [f"API: {problem}" for problem in signature_problems(submission.module)]
    findings = rules.workload_identification_findings(submission.source, WORKLOADS)
    where = submission.paths.module_file.name
    if findings.failures:
        problems.append(str(rules.RuleViolation("no-workload-identification", where, "; ".join(findings.failures))))
    warnings = [rules.rule_warning("no-workload-identification", where, finding) for finding in findings.warnings]
    return problems, warnings


def test_smoke(
    request,
    algoperf_trial,
    algoperf_session,
    algoperf_workload,
    algoperf_submission,
    algoperf_hyperparameters,
    algoperf_batch_sizes,
    algoperf_input_queue,
    algoperf_model,
    algoperf_run_trial,
):
    """The submission trains, evaluates and checkpoints on this workload without breaking the API or the rules."""
    settings = algoperf_session.settings
    problems, warnings = _static_checks(algoperf_submission)
    # Timings are heuristics (a loaded machine is slow too): they warn rather than fail.
    warnings += [
        rules.rule_warning("no-untimed-work", algoperf_submission.paths.module_file.name, finding)
        for finding in untimed_work_problems(algoperf_submission.import_seconds, request.node.algoperf_batch_size_seconds)
    ]

    monitor = CallMonitor(timeout=settings.timeout or SMOKE_CALL_TIMEOUT_SEC, strict=True)
    monitor.watch(algoperf_workload, algoperf_hyperparameters, algoperf_model[0], algoperf_input_queue)
    outcome = algoperf_run_trial(math.inf, settings.smoke_steps, monitor)
    notes = []
    if outcome.failure is not None:
        problems.append(f"submission error after {outcome.global_step} steps: {outcome.failure}")
    else:
        checkpoint_problems, notes = checkpoint_round_trip(outcome.optimizer_state)
        problems += checkpoint_problems
    request.node.user_properties.append((RECORD_PROPERTY, {
        "kind": "smoke",
        "id": algoperf_trial.id,
        "workload": algoperf_trial.workload,
        "steps": outcome.global_step,
        "evals": len(outcome.eval_results),
        "batch_size": algoperf_batch_sizes[0],
        "peak_memory_mb": monitor.peak_step_memory_bytes / 2**20,
        "status": "error" if problems else "passed",
        "notes": notes,
        "warnings": warnings,
    }))
    if problems:
        pytest.fail(" | ".join(problems), pytrace=False)
