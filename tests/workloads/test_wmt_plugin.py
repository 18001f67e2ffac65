"""WMT as plugin items: prepared subset data, the NAdamW baseline and an upstream-API submission, on CPU.

The full 133M-parameter model trains here, so the data are the sample corpus
prepared with a short sequence length (16 tokens) and the submissions use
small batch sizes; each run is two steps and one eval with beam search.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from workloads.wmt import prepare, sample_data

ROOT = Path(__file__).resolve().parents[2]
NADAMW = ROOT / "submissions" / "nadamw"

# The baseline's own code, with batch sizes a CPU test can afford.
SMALL_NADAMW = '''
"""The NAdamW baseline with CPU-sized batches (written against the upstream API names)."""
from algoperf import spec  # noqa: F401  (resolves to this package's spec)
from pytest_algoperf.baselines import baseline_module
_baseline = baseline_module("nadamw")
data_selection, init_optimizer_state = _baseline.data_selection, _baseline.init_optimizer_state
prepare_for_eval, update_params = _baseline.prepare_for_eval, _baseline.update_params

def get_batch_size(workload_name):
    return 2

def get_eval_batch_size(workload_name):
    return 8
'''

# A submission as one would write it for upstream AlgoPerf: only algoperf imports, v0.6 signatures.
UPSTREAM_SUBMISSION = '''
"""Adam with gradient clipping, written against upstream AlgoPerf's submission API."""
import torch
from algoperf import spec
from algoperf.pytorch_utils import pytorch_setup

USE_PYTORCH_DDP, RANK, DEVICE, N_GPUS = pytorch_setup()

def get_batch_size(workload_name):
    return 2

def get_eval_batch_size(workload_name):
    return 8

def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    return {"optimizer": torch.optim.Adam(model_params.parameters(), lr=hyperparameters.learning_rate)}

def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters,
                  batch, loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
    assert loss_type == spec.LossType.SOFTMAX_CROSS_ENTROPY
    assert spec.ParameterType.ATTENTION_QKV in set(current_params_types.values())
    current_param_container.train()
    optimizer_state["optimizer"].zero_grad()
    logits, new_state = workload.model_fn(current_param_container, batch, model_state, spec.ForwardPassMode.TRAIN,
                                          rng, update_batch_norm=False, dropout_rate=0.1)
    loss_dict = workload.loss_fn(batch["targets"], logits, batch["weights"], label_smoothing=0.1)
    (loss_dict["summed"] / loss_dict["n_valid_examples"]).backward()
    torch.nn.utils.clip_grad_norm_(current_param_container.parameters(), max_norm=1.0)
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
    raw_dir = sample_data.write_raw_dir(tmp_path_factory.mktemp("raw"))
    data_dir = tmp_path_factory.mktemp("data")
    prepare.main(["--data-dir", str(data_dir), "--raw-dir", str(raw_dir), "--vocab-size", "300", "--max-length", "16"])
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
    result = _run(pytester, NADAMW, tmp_path / "nothing", tmp_path / "results", "wmt-study0")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*python -m workloads.wmt.prepare --data-dir*--raw-dir RAW_WMT_DIR*"])


def test_the_nadamw_baseline_trains_and_evaluates_as_a_plugin_item(pytester, data_dir, tmp_path):
    submission = pytester.mkdir("small_nadamw")
    (submission / "submission.py").write_text(SMALL_NADAMW)
    (submission / "tuning_search_space.json").write_text((NADAMW / "tuning_search_space.json").read_text())
    result = _run(pytester, submission, data_dir, tmp_path, "wmt-study0")  # the base workload only
    result.assert_outcomes(passed=1)
    rows = _eval_rows(tmp_path, "wmt")
    assert [row["global_step"] for row in rows] == ["1", "2"]  # an eval after the first and the last step
    final = rows[-1]
    assert float(final["validation/num_examples"]) == 5 and float(final["test/num_examples"]) == 6
    assert 0.0 <= float(final["validation/bleu"]) <= 100.0 and float(final["train/loss"]) > 0.0


def test_an_upstream_api_submission_runs_a_variant(pytester, data_dir, tmp_path):
    submission = pytester.mkdir("upstream_adam")
    (submission / "submission.py").write_text(UPSTREAM_SUBMISSION)
    (submission / "tuning_search_space.json").write_text('{"learning_rate": {"feasible_points": [0.0005]}}')
    result = _run(pytester, submission, data_dir, tmp_path, "wmt_glu_tanh")
    result.assert_outcomes(passed=1)
    assert {"train/bleu", "validation/accuracy", "test/loss"} <= set(_eval_rows(tmp_path, "wmt_glu_tanh")[-1])
