"""fastMRI as plugin items: simulated single-coil k-space of a real T1 scan, prepared by the real
command, trained by the NAdamW baseline and by an upstream-API submission, two steps and evals on CPU."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from workloads.fastmri import prepare, sample_data

ROOT = Path(__file__).resolve().parents[2]
NADAMW = ROOT / "submissions" / "nadamw"

# The baseline's own code, with batch sizes a CPU test can afford (a 320x320 U-Net slice costs ~1.6 s a step).
SMALL_NADAMW = '''
"""The NAdamW baseline with CPU-sized batches."""
from pytest_algoperf.baselines import baseline_module
_baseline = baseline_module("nadamw")
data_selection, init_optimizer_state = _baseline.data_selection, _baseline.init_optimizer_state
prepare_for_eval, update_params = _baseline.prepare_for_eval, _baseline.update_params

def get_batch_size(workload_name):
    return 2

def get_eval_batch_size(workload_name):
    return 2
'''

# As one would write it for upstream AlgoPerf: only algoperf imports, v0.6 signatures.
UPSTREAM_SUBMISSION = '''
"""Adam on the masked L1 loss, written against upstream AlgoPerf's submission API."""
import torch
from algoperf import spec
from algoperf.pytorch_utils import pytorch_setup

USE_PYTORCH_DDP, RANK, DEVICE, N_GPUS = pytorch_setup()

def get_batch_size(workload_name):
    return 2

def get_eval_batch_size(workload_name):
    return 2

def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    return {"optimizer": torch.optim.Adam(model_params.parameters(), lr=hyperparameters.learning_rate)}

def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters,
                  batch, loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
    assert loss_type == spec.LossType.MEAN_ABSOLUTE_ERROR
    assert spec.ParameterType.CONV_WEIGHT in set(current_params_types.values())
    current_param_container.train()
    optimizer_state["optimizer"].zero_grad()
    outputs, new_state = workload.model_fn(current_param_container, batch, model_state, spec.ForwardPassMode.TRAIN,
                                           rng, update_batch_norm=True, dropout_rate=0.0)
    loss_dict = workload.loss_fn(batch["targets"], outputs)
    (loss_dict["summed"] / loss_dict["n_valid_examples"]).backward()
    optimizer_state["optimizer"].step()
    return optimizer_state, current_param_container, new_state

def prepare_for_eval(workload, current_param_container, current_params_types, model_state, hyperparameters,
                     loss_type, optimizer_state, eval_results, global_step, rng):
    return optimizer_state, current_param_container, model_state

def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state,
                   hyperparameters, global_step, rng):
    return next(input_queue)
'''


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    if not sample_data.scan_available():
        pytest.skip(f"the real T1 scan {sample_data.SCAN_PATH} comes from Debian's mricron-data: {sample_data.INSTALL_HINT}")
    raw_dir = sample_data.write_raw_dir(tmp_path_factory.mktemp("raw"), train_volumes=2, val_volumes=2, slices=2, unpacked=True)
    data_dir = tmp_path_factory.mktemp("data")
    assert prepare.main(["--data-dir", str(data_dir), "--raw-dir", str(raw_dir), "--subset"]) == 0
    return data_dir


def _run(pytester, submission: Path, data_dir: Path, results_dir: Path, selection: str):
    return pytester.runpytest(
        f"--algoperf-submission={submission}", f"--algoperf-data-dir={data_dir}", f"--algoperf-results-dir={results_dir}",
        "--algoperf-max-steps=2", "--algoperf-studies=1", "--algoperf-trials=1", "-k", selection, "-rs", "-p", "no:cacheprovider",
    )


def _eval_rows(results_dir: Path, workload: str):
    (path,) = results_dir.rglob(f"{workload}_pytorch/trial_1/eval_measurements.csv")
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_missing_data_skips_the_item_with_the_preparation_command(pytester, tmp_path):
    result = _run(pytester, NADAMW, tmp_path / "nothing", tmp_path / "results", "fastmri-study0")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*python -m workloads.fastmri.prepare --data-dir*"])


def test_the_nadamw_baseline_trains_and_evaluates_as_a_plugin_item(pytester, data_dir, tmp_path):
    submission = pytester.mkdir("small_nadamw")
    (submission / "submission.py").write_text(SMALL_NADAMW)
    shutil.copy(NADAMW / "tuning_search_space.json", submission / "tuning_search_space.json")
    result = _run(pytester, submission, data_dir, tmp_path, "fastmri-study0")  # the base workload only
    result.assert_outcomes(passed=1)
    rows = _eval_rows(tmp_path, "fastmri")
    assert [row["global_step"] for row in rows] == ["1", "2"]  # an eval after the first and the last step
    final = rows[-1]
    assert float(final["validation/num_examples"]) == 2 and float(final["test/num_examples"]) == 2
    assert -1.0 <= float(final["validation/ssim"]) <= 1.0 and float(final["train/loss"]) > 0.0


def test_an_upstream_api_submission_runs_a_variant(pytester, data_dir, tmp_path):
    submission = pytester.mkdir("upstream_adam")
    (submission / "submission.py").write_text(UPSTREAM_SUBMISSION)
    (submission / "tuning_search_space.json").write_text('{"learning_rate": {"feasible_points": [0.001]}}')
    result = _run(pytester, submission, data_dir, tmp_path, "fastmri_tanh")
    result.assert_outcomes(passed=1)
    assert {"train/ssim", "validation/ssim", "test/loss"} <= set(_eval_rows(tmp_path, "fastmri_tanh")[-1])
