"""Real AlgoPerf submissions run unchanged: upstream import names, v0.5 and v0.6 APIs."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from pytest_algoperf.submission_loading import SubmissionError, load_submission

V05_SUBMISSION = '''
"""Written against the v0.5 API: algorithmic_efficiency imports, no prepare_for_eval, no train_state."""
import torch
from algorithmic_efficiency import spec
from algorithmic_efficiency.pytorch_utils import pytorch_setup
from algorithmic_efficiency import random_utils as prng

USE_PYTORCH_DDP, RANK, DEVICE, N_GPUS = pytorch_setup()

def get_batch_size(workload_name):
    return 16

def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    return {"optimizer": torch.optim.SGD(model_params.parameters(), lr=hyperparameters.learning_rate)}

def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters,
                  batch, loss_type, optimizer_state, eval_results, global_step, rng):
    assert loss_type == spec.LossType.SOFTMAX_CROSS_ENTROPY
    current_param_container.train()
    optimizer_state["optimizer"].zero_grad()
    logits, new_state = workload.model_fn(current_param_container, batch, model_state,
                                          spec.ForwardPassMode.TRAIN, rng, update_batch_norm=True)
    loss_dict = workload.loss_fn(batch["targets"], logits, batch.get("weights"))
    (loss_dict["summed"] / loss_dict["n_valid_examples"]).backward()
    optimizer_state["optimizer"].step()
    return optimizer_state, current_param_container, new_state

def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state,
                   hyperparameters, global_step, rng):
    return next(input_queue)
'''


def test_upstream_import_names_resolve_to_this_package():
    code = textwrap.dedent('''
        from pytest_algoperf.api.upstream_names import install_upstream_aliases
        install_upstream_aliases()
        import algoperf.spec, algorithmic_efficiency.random_utils, pytest_algoperf.spec, pytest_algoperf.random_utils
        from algoperf import halton, param_utils, init_utils, data_utils
        assert algoperf.spec is pytest_algoperf.spec
        assert algorithmic_efficiency.random_utils is pytest_algoperf.random_utils
        print("ok")
    ''')
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr


def test_a_real_installed_algoperf_package_is_never_shadowed(tmp_path):
    fake = tmp_path / "algoperf"
    fake.mkdir()
    (fake / "__init__.py").write_text("REAL = True\n")
    (fake / "spec.py").write_text("WHICH = 'installed'\n")
    code = textwrap.dedent('''
        from pytest_algoperf.api.upstream_names import install_upstream_aliases
        install_upstream_aliases()
        import algoperf, algoperf.spec
        assert algoperf.REAL and algoperf.spec.WHICH == "installed"
        print("ok")
    ''')
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path), "PATH": ""})
    assert result.stdout.strip() == "ok", result.stderr


def test_v05_submission_is_recognised(tmp_path):
    path = tmp_path / "v05.py"
    path.write_text(V05_SUBMISSION)
    submission = load_submission(path)
    assert submission.api_version == "v0.5"
    assert not submission.has_prepare_for_eval and not submission.update_params_takes_train_state


def test_variants_fall_back_to_the_base_batch_size(tmp_path):
    path = tmp_path / "sizes.py"
    path.write_text(V05_SUBMISSION.replace(
        "def get_batch_size(workload_name):\n    return 16",
        "def get_batch_size(workload_name):\n    if workload_name != 'ogbg':\n        raise ValueError(workload_name)\n    return 512",
    ))
    submission = load_submission(path)
    assert submission.batch_size("ogbg_gelu", "ogbg") == 512
    with pytest.raises(SubmissionError, match="get_batch_size has no batch size for 'wmt'"):
        submission.batch_size("wmt", "wmt")


def test_v05_and_v06_submissions_train_and_evaluate_on_mnist(pytester, mnist_data_dir, tmp_path, project_root):
    v05 = pytester.mkdir("v05")
    (v05 / "submission.py").write_text(V05_SUBMISSION)
    (v05 / "tuning_search_space.json").write_text('{"learning_rate": {"min": 0.01, "max": 0.1, "scaling": "log"}}')
    common = [f"--algoperf-data-dir={mnist_data_dir}", f"--algoperf-results-dir={tmp_path}", "--algoperf-studies=1",
              "--algoperf-max-steps=5", "-p", "no:cacheprovider", "-k", "mnist"]
    result = pytester.runpytest(f"--algoperf-submission={v05}", "--algoperf-trials=2", *common)
    result.assert_outcomes(passed=2)
    v06 = project_root / "submissions" / "nadamw_self_tuning"
    result = pytester.runpytest(f"--algoperf-submission={v06}", "--algoperf-ruleset=self", *common)
    result.assert_outcomes(passed=1)


DROPOUT_PROBE = '''
"""Records the dropout rates the workload was fixed with, to check what a v0.5 run sets up."""
import json, os
from pytest_algoperf.baselines import baseline_module
base = baseline_module("nadamw")
get_batch_size, init_optimizer_state, data_selection = base.get_batch_size, base.init_optimizer_state, base.data_selection

def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters, batch,
                  loss_type, optimizer_state, eval_results, global_step, rng):
    with open(os.environ["DROPOUT_PROBE"], "w") as out:
        json.dump([workload._init_dropout_rate, workload._init_aux_dropout_rate], out)
    return base.update_params(workload, current_param_container, current_params_types, model_state, hyperparameters,
                              batch, loss_type, optimizer_state, eval_results, global_step, rng)
'''


@pytest.mark.parametrize("version, expected", [("v0.5", [0.0, 0.3]), ("v0.6", [None, None])])
def test_a_v05_run_fixes_dropout_at_model_init_from_the_hyperparameters(pytester, mnist_data_dir, tmp_path, monkeypatch, version, expected):
    """v0.5's runner built the model with the trial's dropout_rate and aux_dropout_rate; v0.6 leaves it to model_fn."""
    probe = tmp_path / "probe.json"
    monkeypatch.setenv("DROPOUT_PROBE", str(probe))
    folder = pytester.mkdir("dropout_probe")
    (folder / "submission.py").write_text(DROPOUT_PROBE)
    (folder / "tuning_search_space.json").write_text(
        '[{"dropout_rate": 0.0, "aux_dropout_rate": 0.3, "label_smoothing": 0.0, "learning_rate": 0.001, '
        '"one_minus_beta1": 0.1, "beta2": 0.999, "weight_decay": 0.0, "warmup_factor": 0.1}]'
    )
    result = pytester.runpytest(
        f"--algoperf-submission={folder}", f"--algoperf-data-dir={mnist_data_dir}", f"--algoperf-results-dir={tmp_path}",
        f"--algoperf-benchmark-version={version}", "--algoperf-studies=1", "--algoperf-max-steps=1", "-k", "mnist",
        "-p", "no:cacheprovider",
    )
    result.assert_outcomes(passed=1)
    assert json.loads(probe.read_text()) == expected
