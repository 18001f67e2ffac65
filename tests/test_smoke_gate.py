"""The CI gate (`--algoperf-smoke`): API, rules and bad-input checks, and every workload with the baseline."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NADAMW = ROOT / "submissions" / "nadamw"
SELF_TUNING = ROOT / "submissions" / "nadamw_self_tuning"

# A self-tuning submission wrapping the baseline; each test swaps in one broken piece.
WRAPPER = '''
import os
import time
import torch
from algoperf import spec
from pytest_algoperf.baselines import baseline_module
base = baseline_module("nadamw_self_tuning")

get_batch_size = base.get_batch_size
init_optimizer_state = base.init_optimizer_state
data_selection = base.data_selection
prepare_for_eval = base.prepare_for_eval

def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters, batch,
                  loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
    BREAK
    return base.update_params(workload, current_param_container, current_params_types, model_state, hyperparameters,
                              batch, loss_type, optimizer_state, eval_results, global_step, rng, train_state)
'''


def _smoke(pytester, submission: Path, tmp_path: Path, *extra: str, subprocess: bool = False):
    run = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    return run(
        "-p", "no:cacheprovider", f"--algoperf-submission={submission}", "--algoperf-ruleset=self", "--algoperf-smoke",
        f"--algoperf-results-dir={tmp_path}", *extra,
    )


def _wrapper(pytester, name: str, body: str, extra_source: str = "") -> Path:
    source = WRAPPER.replace("BREAK", body) + extra_source
    return pytester.makepyfile(**{name: source})


def test_smoke_mode_collects_one_item_per_base_and_development_workload(pytester, tmp_path):
    from workloads.registry import WORKLOADS

    result = _smoke(pytester, SELF_TUNING, tmp_path, "--collect-only", "-q")
    expected = sorted(name for name, entry in WORKLOADS.items() if not entry.is_variant)
    ids = sorted(re.findall(r"test_smoke\[(\w+)-study0-trial1\]", result.stdout.str()))
    assert ids == expected
    with_variants = _smoke(pytester, SELF_TUNING, tmp_path, "--collect-only", "-q", "--algoperf-variants")
    assert len(re.findall(r"test_smoke\[", with_variants.stdout.str())) == len(WORKLOADS)


def test_baseline_passes_the_gate_on_mnist_and_reports_memory(pytester, tmp_path):
    result = _smoke(pytester, SELF_TUNING, tmp_path, "-k", "mnist")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*AlgoPerf smoke gate*", "*workload*status*steps*evals*batch*peak MB*", "*mnist*passed*5*2*8*"])
    assert (tmp_path / "nadamw_self_tuning-smoke" / "smoke_summary.csv").is_file()


@pytest.mark.parametrize(
    "body, message",
    [
        ("batch = dict(batch, inputs=batch['inputs'][:, :, :20])", "*update_params raised RuntimeError*"),
        ("if global_step == 1:\n        raise ValueError('broken')",
         "*submission error after 1 steps: update_params raised ValueError: broken*"),
        ("return optimizer_state, current_param_container", "*update_params returned 2 values, expected (optimizer_state, params, model_state)*"),
        ("[p.data.fill_(float('nan')) for p in current_param_container.parameters()]", "*training diverged in update_params at step 0: parameter * is not finite*"),
        ("if global_step == 2:\n        [p.data.fill_(float('nan')) for p in current_param_container.parameters()]",
         "*training diverged in update_params at step 2: parameter * is not finite*"),
        ("torch.empty(2**42, dtype=torch.uint8).fill_(1)", "*update_params raised RuntimeError*"),
        ("time.sleep(60) if global_step == 1 else None", "*update_params did not return within 2 s at step 1*"),
    ],
    ids=["shape-error", "exception-at-step", "wrong-arity", "nan-loss", "nan-on-third-update", "huge-allocation", "hang"],
)
def test_broken_submissions_fail_with_one_line(pytester, tmp_path, body, message):
    submission = _wrapper(pytester, "broken_submission", body)
    result = _smoke(pytester, submission, tmp_path, "-k", "mnist", "--algoperf-timeout=2")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([message])
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(
    "source, message",
    [
        ("def get_batch_size(workload_name)\n    return 8\n", "*importing * failed: SyntaxError*"),
        ("def get_batch_size(workload_name):\n    return 8\n", "*does not define init_optimizer_state, update_params, data_selection*"),
    ],
    ids=["syntax-error", "missing-functions"],
)
def test_unimportable_or_incomplete_submissions_fail_with_one_line(pytester, tmp_path, source, message):
    submission = pytester.makepyfile(incomplete_submission=source)
    result = _smoke(pytester, submission, tmp_path, "-k", "mnist")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([message])


def test_a_workload_specific_failure_leaves_the_other_items_and_their_results_alone(pytester, tmp_path):
    # Breaks only on image batches (MNIST); the OGBG item must pass and keep its logs.
    submission = _wrapper(pytester, "image_hater", "if getattr(batch['inputs'], 'ndim', 0) == 4:\n        raise ValueError('no images')")
    result = _smoke(pytester, submission, tmp_path, "-k", "mnist or ogbg")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*update_params raised ValueError: no images*"])
    assert (tmp_path / "image_hater-smoke" / "study_0" / "ogbg_pytorch" / "trial_1" / "eval_measurements.csv").is_file()


@pytest.mark.parametrize(
    "body, rule, detail",
    [
        ("workload._build_input_queue(rng, 'validation', '', 8)", "no-input-pipeline-access", "called workload._build_input_queue"),
        ("workload._eval_iters.get('validation')", "no-input-pipeline-access", "evaluation data"),
        ("workload.eval_model(8, current_param_container, model_state, rng, '', None, 0)", "no-input-pipeline-access", "workload.eval_model"),
        ("workload.loss_fn = workload.loss_fn", "workload-unchanged", "workload.loss_fn"),
        ("os.environ['PYTORCH_CUDA_ALLOC_CONF'] = 'expandable_segments:True'", "environment-unchanged", "PYTORCH_CUDA_ALLOC_CONF"),
        ("torch.backends.cudnn.benchmark = not torch.backends.cudnn.benchmark", "environment-unchanged", "cudnn.benchmark"),
        ("torch.set_default_dtype(torch.float64)", "environment-unchanged", "get_default_dtype"),
    ],
    ids=["input-queue", "eval-data", "eval-call", "loss-fn", "env-var", "backends-flag", "default-dtype"],
)
def test_rule_breaking_is_named_with_where_and_why(pytester, tmp_path, body, rule, detail):
    submission = _wrapper(pytester, "rule_breaker", body)
    result = _smoke(pytester, submission, tmp_path, "-k", "mnist")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"*rule '{rule}' broken in update_params at step *{detail}* — *"])


def test_reading_the_workloads_targets_warns_without_failing(pytester, tmp_path):
    body = "if eval_results and eval_results[-1][1]['validation/accuracy'] > workload.validation_target_value:\n        pass"
    submission = _wrapper(pytester, "target_reader", body)
    result = _smoke(pytester, submission, tmp_path, "-k", "mnist")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([
        "*warning: rule 'no-workload-identification' may be broken in target_reader.py: line *: reads workload.validation_target_value in update_params*",
    ])


def test_comparing_with_a_workload_name_fails(pytester, tmp_path):
    submission = _wrapper(pytester, "name_matcher", "hyperparameters = 2 if workload.__module__.endswith('mnist') or 'mnist' == str(rng) else 1")
    result = _smoke(pytester, submission, tmp_path, "-k", "mnist")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*rule 'no-workload-identification' broken in name_matcher.py: line *: compares with the workload name 'mnist' in update_params*"])


def test_workload_identification_is_found_in_the_source(pytester, tmp_path):
    submission = _wrapper(pytester, "identifier", "hyperparameters = 2 if type(workload).__name__ == 'MnistWorkload' else 1")
    result = _smoke(pytester, submission, tmp_path, "-k", "mnist")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*rule 'no-workload-identification' broken in identifier.py: line *: type(workload, ...) in update_params*"])


def test_work_in_get_batch_size_is_a_warning_of_untimed_work(pytester, tmp_path):
    # A timing is a heuristic (a loaded machine is slow too), so it warns in the summary instead of failing.
    slow = "\ndef get_batch_size(workload_name):\n    time.sleep(1.2)\n    return base.get_batch_size(workload_name)\n"
    submission = _wrapper(pytester, "slow_sizes", "pass", extra_source=slow)
    result = _smoke(pytester, submission, tmp_path, "-k", "mnist")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*AlgoPerf smoke gate*", "*warning: rule 'no-untimed-work' may be broken in slow_sizes.py: get_batch_size took 1.2* s*"])


def test_training_inside_init_optimizer_state_is_caught(pytester, tmp_path):
    sneaky = (
        "\ndef init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):\n"
        "    with torch.no_grad():\n"
        "        [p.add_(0.01) for p in model_params.parameters()]\n"
        "    return base.init_optimizer_state(workload, model_params, model_state, hyperparameters, rng)\n"
    )
    submission = _wrapper(pytester, "pretrainer", "pass", extra_source=sneaky)
    result = _smoke(pytester, submission, tmp_path, "-k", "mnist")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*rule 'init-leaves-model-alone' broken in init_optimizer_state at step 0: parameters changed*"])


def test_api_signatures_and_data_selection_keys_are_checked(pytester, tmp_path):
    renamed = (
        "\ndef data_selection(workload, input_queue, optimizer_state, current_param_container, model_state, hyperparameters, step, rng):\n"
        "    batch = next(input_queue)\n"
        "    return {'inputs': batch['inputs'], 'targets': batch['targets']}\n"
    )
    submission = _wrapper(pytester, "renamed", "pass", extra_source=renamed)
    result = _smoke(pytester, submission, tmp_path, "-k", "mnist")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*API: data_selection lacks parameter(s) global_step*data_selection returned a batch without weights*",
    ])


def test_optimizer_state_must_survive_a_checkpoint(pytester, tmp_path):
    unsaveable = (
        "\nclass Unpicklable:\n"
        "    def state_dict(self):\n"
        "        return {'step': lambda: 0}\n"
        "    def load_state_dict(self, state):\n"
        "        pass\n"
        "\ndef init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):\n"
        "    state = base.init_optimizer_state(workload, model_params, model_state, hyperparameters, rng)\n"
        "    state['extra'] = Unpicklable()\n"
        "    return state\n"
    )
    submission = _wrapper(pytester, "unsaveable", "pass", extra_source=unsaveable)
    result = _smoke(pytester, submission, tmp_path, "-k", "mnist")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*optimizer_state[[]'extra'[]] does not survive state_dict() -> torch.save -> load_state_dict()*"])


def test_step_time_compares_the_submission_with_the_baseline(pytester, tmp_path):
    result = pytester.runpytest(
        "-p", "no:cacheprovider", f"--algoperf-submission={NADAMW}", "--algoperf-benchmark-steps",
        f"--algoperf-results-dir={tmp_path}", "-k", "mnist",
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*AlgoPerf update_params time*", "*mnist*16*"])
    rows = list(csv.DictReader((tmp_path / "nadamw-step-time" / "step_time_summary.csv").open()))
    assert list(rows[0]) == ["workload", "batch_size", "submission_ms", "baseline_ms", "ratio"]
    # Both sides were timed and the ratio is theirs; its value is a measurement, never asserted on.
    [row] = rows
    assert row["workload"] == "mnist" and row["batch_size"] == "16"
    submission_ms, baseline_ms, ratio = float(row["submission_ms"]), float(row["baseline_ms"]), float(row["ratio"])
    assert submission_ms > 0 and baseline_ms > 0
    assert ratio == pytest.approx(submission_ms / baseline_ms)


def test_smoke_options_are_validated(pytester, tmp_path):
    for options, message in (
        (["--algoperf-variants"], "--algoperf-variants applies to --algoperf-smoke"),
        (["--algoperf-smoke", "--algoperf-benchmark-steps"], "run them one at a time"),
        (["--algoperf-timeout=0"], "must be a positive number of seconds"),
    ):
        result = pytester.runpytest(f"--algoperf-submission={NADAMW}", *options)
        assert result.ret == pytest.ExitCode.USAGE_ERROR and message in result.stderr.str()


def test_every_registered_workload_passes_the_gate_with_the_baseline(tmp_path):
    """The CI gate on this repository's own baseline: every workload and variant.

    Two sessions run side by side, one per core: the Criteo models (about 10 GB each at full size)
    one after another, then the fastMRI U-Nets and the DeepSpeech models (the costliest steps on a
    CPU, with the Conformers), everything else in the other, so two Criteo models never share the
    memory and the two sessions take about as long.
    """
    import os
    import subprocess
    import sys

    from workloads.registry import WORKLOADS

    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", f"--algoperf-submission={SELF_TUNING}",
               "--algoperf-ruleset=self", "--algoperf-smoke", "--algoperf-variants", f"--algoperf-results-dir={tmp_path}",
               # 1 step: every item's code path once (data, init, a step with every check, prepare_for_eval,
               # an eval) at about a third of the CPU time of the default 5; the 36 items are the suite's
               # longest test. Later steps of each workload run in its plugin test (2 steps, an eval after each).
               "--algoperf-smoke-steps=1"]
    # The Criteo + fastMRI + DeepSpeech session is the long pole: it gets both cores' threads, so it speeds up once the other ends.
    sessions = [
        subprocess.Popen(command + ["-k", selection], cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS=threads),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for selection, threads in (
            ("criteo1tb or fastmri or librispeech_deepspeech", "2"),
            ("not criteo1tb and not fastmri and not librispeech_deepspeech", "1"),
        )
    ]
    outputs = [session.communicate()[0] for session in sessions]
    passed = sum(int(match) for output in outputs for match in re.findall(r"(\d+) passed", output.splitlines()[-1]))
    assert all(session.returncode == 0 for session in sessions), "\n".join(output[-3000:] for output in outputs)
    assert passed == len(WORKLOADS)
