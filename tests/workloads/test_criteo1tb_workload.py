"""The criteo1tb workloads: numbers, loss, evaluation, and real submissions run through the plugin."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_algoperf.api import random_utils as prng
from pytest_algoperf.api.spec import LossType
from workloads.criteo1tb import prepare
from workloads.criteo1tb.sample_data import write_raw_dump
from workloads.registry import get_workload

ROOT = Path(__file__).resolve().parents[2]
NADAMW = ROOT / "submissions" / "nadamw"
VARIANT_TARGETS = {
    "criteo1tb": (0.123735, 0.126041),
    "criteo1tb_layernorm": (0.123757, 0.126152),
    "criteo1tb_embed_init": (0.129657, 0.131967),
    "criteo1tb_resnet": (0.12415, 0.12648),
    "criteo1tb_test": (0.123735, 0.126041),
}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A subset dump: days 0 and 5 whole, day 23 split into 21 files of 100 lines (1,900 test + 200 validation)."""
    root = tmp_path_factory.mktemp("criteo_workload")
    write_raw_dump(root / "raw", {0: 1_200, 5: 800, 23: 2_100}, seed=3, split_days={23: 100})
    assert prepare.main(["--data-dir", str(root / "data"), "--raw-dir", str(root / "raw"), "--subset", "--workers", "1"]) == 0
    return root / "data"


@pytest.mark.parametrize("version", ["v0.6", "v0.5"])
@pytest.mark.parametrize("name", sorted(VARIANT_TARGETS))
def test_targets_budget_and_sizes_are_the_references(name, version):
    workload = get_workload(name, version)
    assert (workload.validation_target_value, workload.test_target_value) == VARIANT_TARGETS[name]
    assert (workload.target_metric_name, workload.higher_is_better, workload.loss_type) == ("loss", False, LossType.SIGMOID_CROSS_ENTROPY)
    assert (workload.max_allowed_runtime_sec, workload.eval_period_time_sec, workload.step_hint) == (7_703, 120, 10_666)
    assert workload.eval_batch_size == 8_192
    assert workload.dataset_dir("DATA") == Path("DATA") / "criteo1tb"  # all variants share one prepared copy
    with pytest.raises(NotImplementedError):
        workload.train_mean
    target = VARIANT_TARGETS[name][0]
    assert workload.has_reached_validation_target({"validation/loss": target - 1e-6})
    assert not workload.has_reached_validation_target({"validation/loss": target})  # strict, as upstream's runner


def test_loss_is_masked_sigmoid_cross_entropy():
    workload = get_workload("criteo1tb_test")
    logits = torch.tensor([[0.0], [2.0], [-1.0]])
    labels = torch.tensor([1.0, 0.0, 1.0])
    out = workload.loss_fn(labels, logits, torch.tensor([1.0, 1.0, 0.0]), label_smoothing=0.1)
    # -log(sigmoid(0)) = log 2; -log(1 - sigmoid(2)) = log(1 + e^2); the third row is masked out.
    expected = [math.log(2), math.log(1 + math.e**2), 0.0]
    np.testing.assert_allclose(out["per_example"].numpy(), expected, rtol=1e-6)
    assert out["summed"].item() == pytest.approx(sum(expected), rel=1e-6)
    assert out["n_valid_examples"].item() == 2
    unmasked = workload.loss_fn(labels, logits)
    assert unmasked["n_valid_examples"].item() == 3
    assert unmasked["summed"].item() == pytest.approx(sum(expected) + math.log(1 + math.e), rel=1e-6)


def test_eval_losses_are_weighted_means_over_exactly_the_split(data_dir):
    workload = get_workload("criteo1tb_test")
    workload.use_prepared_data(str(data_dir))
    model, _ = workload.init_model_fn(prng.PRNGKey(0))
    metrics = workload.eval_model(512, model, None, prng.PRNGKey(1), str(data_dir), None, 0)
    assert set(metrics) == {"train/loss", "validation/loss", "validation/num_examples", "test/loss", "test/num_examples"}
    assert (metrics["validation/num_examples"], metrics["test/num_examples"]) == (200, 1_900)
    # The same number, computed by hand from the prepared arrays of day_23_19 and day_23_20.
    chunks = data_dir / "criteo1tb"
    inputs = np.concatenate([np.fromfile(chunks / f"day_23_{i}.inputs.f32", dtype="<f4").reshape(-1, 39) for i in (19, 20)])
    targets = np.concatenate([np.fromfile(chunks / f"day_23_{i}.targets.f32", dtype="<f4") for i in (19, 20)])
    model.eval()
    with torch.no_grad():
        logits = model(torch.from_numpy(inputs))[:, 0]
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.from_numpy(targets)).item()
    assert metrics["validation/loss"] == pytest.approx(expected, rel=1e-5)
    assert 0.0 < metrics["train/loss"] < 5.0


SMALL_BATCH_NADAMW = '''
"""The NAdamW baseline unchanged, with batch sizes a CPU can take."""
from pytest_algoperf.baselines import baseline_module
baseline = baseline_module("nadamw")

init_optimizer_state = baseline.init_optimizer_state
update_params = baseline.update_params
prepare_for_eval = baseline.prepare_for_eval
data_selection = baseline.data_selection


def get_batch_size(workload_name):
    return 256


def get_eval_batch_size(workload_name):
    return 1024
'''

UPSTREAM_API_ADAM = '''
"""Adam, written against upstream AlgoPerf's v0.6 API as a submitter would write it."""
import torch

from algoperf import spec
from algoperf.pytorch_utils import pytorch_setup

USE_PYTORCH_DDP, RANK, DEVICE, N_GPUS = pytorch_setup()


def get_batch_size(workload_name):
    if workload_name != "criteo1tb":
        raise ValueError(workload_name)  # variants fall back to their base workload's size
    return 512


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    return {"optimizer": torch.optim.Adam(model_params.parameters(), lr=hyperparameters.learning_rate)}


def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters, batch,
                  loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
    assert loss_type == spec.LossType.SIGMOID_CROSS_ENTROPY
    assert batch["inputs"].device.type == DEVICE.type
    optimizer_state["optimizer"].zero_grad()
    logits, model_state = workload.model_fn(current_param_container, batch, model_state, spec.ForwardPassMode.TRAIN,
                                            rng, update_batch_norm=True, dropout_rate=0.1)
    loss = workload.loss_fn(batch["targets"], logits, batch.get("weights"))
    (loss["summed"] / loss["n_valid_examples"]).backward()
    optimizer_state["optimizer"].step()
    return optimizer_state, current_param_container, model_state


def prepare_for_eval(workload, current_param_container, current_params_types, model_state, hyperparameters,
                     loss_type, optimizer_state, eval_results, global_step, rng):
    return optimizer_state, current_param_container, model_state


def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state, hyperparameters,
                   global_step, rng):
    return next(input_queue)
'''


def _run_plugin(pytester, submission_dir, data_dir, results_dir, steps):
    return pytester.runpytest(
        "-p", "no:cacheprovider", "-rs", f"--algoperf-submission={submission_dir}", f"--algoperf-data-dir={data_dir}",
        f"--algoperf-results-dir={results_dir}", f"--algoperf-max-steps={steps}", "--algoperf-studies=1",
        "--algoperf-trials=1", "-k", "criteo1tb_test",
    )


def _eval_rows(results_dir):
    (measurements,) = Path(results_dir).glob("*/study_0/criteo1tb_test_pytorch/trial_1/eval_measurements.csv")
    return list(csv.DictReader(measurements.open()))


def test_the_nadamw_baseline_trains_and_evaluates_as_a_plugin_item(pytester, data_dir, tmp_path):
    submission = pytester.mkdir("nadamw_small_batch")
    (submission / "submission.py").write_text(SMALL_BATCH_NADAMW)
    (submission / "tuning_search_space.json").write_text((NADAMW / "tuning_search_space.json").read_text())
    result = _run_plugin(pytester, submission, data_dir, tmp_path, steps=2)
    result.assert_outcomes(passed=1)
    rows = _eval_rows(tmp_path)
    assert [row["global_step"] for row in rows] == ["1", "2"]
    assert rows[-1]["validation/num_examples"] == "200" and rows[-1]["test/num_examples"] == "1900"
    assert all(0 < float(row[key]) < 5 for row in rows for key in ("train/loss", "validation/loss", "test/loss"))


def test_a_submission_written_for_upstream_algoperf_runs_unchanged(pytester, data_dir, tmp_path):
    submission = pytester.mkdir("upstream_adam")
    (submission / "submission.py").write_text(UPSTREAM_API_ADAM)
    (submission / "tuning_search_space.json").write_text('{"learning_rate": {"feasible_points": [0.001]}}')
    result = _run_plugin(pytester, submission, data_dir, tmp_path, steps=3)
    result.assert_outcomes(passed=1)
    rows = _eval_rows(tmp_path)
    assert rows[-1]["global_step"] == "3" and float(rows[-1]["validation/loss"]) > 0


def test_without_data_the_item_is_skipped_with_the_preparation_command(pytester, tmp_path):
    result = _run_plugin(pytester, NADAMW, tmp_path / "empty", tmp_path / "results", steps=1)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*python -m workloads.criteo1tb.prepare --data-dir*"])
