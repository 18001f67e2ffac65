"""The OGBG workload: targets and budgets, loss and metrics by hand, evaluation, and plugin runs of real submissions."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from pytest_algoperf.api import random_utils as prng
from pytest_algoperf.api.spec import LossType
from workloads.ogbg import prepare
from workloads.ogbg.metrics import EvalTotals, mean_average_precision
from workloads.ogbg.raw_format import write_release
from workloads.ogbg.synthetic import random_molecules
from workloads.registry import get_workload

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Small graphs run fastest on one thread; on a busy shared host, more threads only contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

TARGETS = {
    "ogbg": (0.28098, 0.268729),
    "ogbg_gelu": (0.27771, 0.262926),
    "ogbg_silu": (0.282178, 0.272144),
    "ogbg_model_size": (0.269446, 0.253051),
}


@pytest.mark.parametrize("name", sorted(TARGETS))
@pytest.mark.parametrize("version, budget, step_hint", [("v0.6", 12_011, 52_000), ("v0.5", 18_477, 80_000)])
def test_targets_budgets_and_sizes_are_the_references(name, version, budget, step_hint):
    workload = get_workload(name, version)
    assert (workload.target_metric_name, workload.higher_is_better) == ("mean_average_precision", True)
    assert (workload.validation_target_value, workload.test_target_value) == TARGETS[name]
    assert (workload.max_allowed_runtime_sec, workload.step_hint, workload.eval_period_time_sec) == (budget, step_hint, 240)
    assert (workload.num_train_examples, workload.num_validation_examples, workload.num_test_examples) == (350_343, 43_793, 43_793)
    assert (workload.num_eval_train_examples, workload.eval_batch_size) == (43_793, 32_768)
    assert workload.loss_type == LossType.SOFTMAX_CROSS_ENTROPY  # upstream's label, for a sigmoid loss (§9.8)
    validation = TARGETS[name][0]
    assert workload.has_reached_validation_target({"validation/mean_average_precision": validation + 1e-6})
    assert not workload.has_reached_validation_target({"validation/mean_average_precision": validation})
    assert workload.dataset_dir("DATA") == Path("DATA") / "ogbg"
    with pytest.raises(NotImplementedError):
        workload.train_mean


# --- loss and metrics by hand ----------------------------------------------------------------------

LOGITS = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
LABELS = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
MASK = torch.tensor([[True, True], [True, False]])


def test_loss_is_masked_sigmoid_cross_entropy_with_upstreams_smoothing():
    workload = get_workload("ogbg")
    out = workload.loss_fn(LABELS, LOGITS, MASK)
    # log 2; 2 + log(1 + e^-2); log(1 + e^-1); masked
    expected = [[math.log(2), 2 + math.log1p(math.exp(-2))], [math.log1p(math.exp(-1)), 0.0]]
    torch.testing.assert_close(out["per_example"], torch.tensor(expected))
    assert out["summed"].item() == pytest.approx(sum(map(sum, expected)))
    assert out["n_valid_examples"].item() == 3
    # Smoothing 0.2 over T = 2 tasks: targets 1 -> 0.9 and 0 -> 0.1.
    smoothed = workload.loss_fn(LABELS, LOGITS, MASK, label_smoothing=0.2)["per_example"]
    assert smoothed[0, 1].item() == pytest.approx(2 - 2 * 0.1 + math.log1p(math.exp(-2)))
    assert smoothed[1, 0].item() == pytest.approx(0.1 + math.log1p(math.exp(-1)))
    unmasked = workload.loss_fn(LABELS, LOGITS)
    assert unmasked["n_valid_examples"].item() == 2  # upstream counts molecules when there is no mask


def test_unmeasured_labels_never_reach_the_gradient():
    workload = get_workload("ogbg")
    logits = LOGITS.clone().requires_grad_()
    labels = torch.tensor([[1.0, 0.0], [0.0, float("nan")]])
    loss = workload.loss_fn(labels, logits, MASK)["summed"]
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all() and logits.grad[1, 1] == 0


def test_mean_average_precision_by_hand():
    probabilities = np.array([[0.9, 0.5, 0.2], [0.8, 0.5, 0.6], [0.3, 0.5, 0.7], [0.1, 0.5, 0.1]])
    labels = np.array([[1, 1, 0], [0, 1, 1], [1, 1, 0], [0, 0, 0]])
    mask = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=bool)
    # Task 0, ranked 1 0 1 0: precision 1 at recall 1/2, 2/3 at recall 1 -> AP 5/6. Task 1: no valid
    # negative (its 0 is unmeasured) -> skipped. Task 2, ranked 1 0: AP 1.
    assert mean_average_precision(probabilities, labels, mask) == pytest.approx((5 / 6 + 1.0) / 2)
    assert math.isnan(mean_average_precision(probabilities[:, 1:2], labels[:, 1:2], mask[:, 1:2]))


def test_accuracy_and_loss_average_over_valid_labels():
    workload = get_workload("ogbg")
    totals = EvalTotals()
    for rows in (slice(0, 1), slice(1, 2)):  # two batches
        per_label = workload.loss_fn(LABELS[rows], LOGITS[rows], MASK[rows])["per_example"]
        totals.add(LOGITS[rows], LABELS[rows], MASK[rows], per_label)
    metrics = totals.compute()
    # Predictions (logit > 0): [0, 1], [0, 1] against labels [1, 0], [0, -]: one of three valid labels right.
    assert metrics["accuracy"] == pytest.approx(1 / 3)
    assert metrics["loss"] == pytest.approx((math.log(2) + 2 + math.log1p(math.exp(-2)) + math.log1p(math.exp(-1))) / 3)
    # Only task 0 has a valid positive (logit 0) and a valid negative (logit -1), ranked right: AP 1.
    assert metrics["mean_average_precision"] == 1.0


# --- evaluation on prepared data ----------------------------------------------------------------


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """300 random molecules written in the release layout and prepared by the real command.

    Actives are rare (2 %) and most labels measured, as in molpcba, so an untrained model's
    mean average precision stays far below the targets and runs do not stop after one step.
    """
    root = tmp_path_factory.mktemp("ogbg_workload")
    molecules = random_molecules(300, seed=2, split_fractions=(0.4, 0.3, 0.3), positive_fraction=0.02, missing_fraction=0.3)
    write_release(root / "pcba", molecules)
    prepare.main(["--data-dir", str(root / "data"), "--raw-dir", str(root / "pcba")])
    return root / "data"


def test_eval_covers_the_subset_exactly_and_does_not_depend_on_the_batch_size(data_dir):
    workload = get_workload("ogbg")
    workload.use_prepared_data(str(data_dir))
    assert (workload.num_train_examples, workload.num_eval_train_examples, workload.num_validation_examples) == (120, 120, 90)
    model, _ = workload.init_model_fn(prng.PRNGKey(0))
    metrics = workload.eval_model(4, model, None, prng.PRNGKey(1), str(data_dir), None, 0)
    assert set(metrics) == {f"{split}/{key}" for split in ("train", "validation", "test")
                            for key in ("accuracy", "loss", "mean_average_precision")} | {"validation/num_examples", "test/num_examples"}
    assert metrics["validation/num_examples"] == 90 and metrics["test/num_examples"] == 90
    assert 0.0 < metrics["validation/mean_average_precision"] < 0.2 and 0.0 <= metrics["train/accuracy"] <= 1.0
    again = workload.eval_model(32, model, None, prng.PRNGKey(2), str(data_dir), None, 0)
    assert again == pytest.approx(metrics, rel=1e-5)  # eval_train subset kept; padding changes nothing


def test_an_eval_split_queue_is_one_pass_unless_repeated(data_dir):
    workload = get_workload("ogbg")
    workload.use_prepared_data(str(data_dir))
    single = list(workload._build_input_queue(prng.PRNGKey(0), "test", str(data_dir), 16))
    assert sum(int(batch["inputs"].n_node.shape[0]) - 1 for batch in single) == 90
    repeated = workload._build_input_queue(prng.PRNGKey(0), "test", str(data_dir), 5, repeat_final_dataset=True)
    assert len([next(repeated) for _ in range(2 * len(single))]) == 2 * len(single)


# --- plugin runs ---------------------------------------------------------------------------------

SMALL_BATCH_NADAMW = '''
"""The NAdamW baseline with CPU-sized batches (the baseline trains ogbg on 512 molecules a step)."""
from pytest_algoperf.baselines import baseline_module
_baseline = baseline_module("nadamw")
data_selection, init_optimizer_state = _baseline.data_selection, _baseline.init_optimizer_state
prepare_for_eval, update_params = _baseline.prepare_for_eval, _baseline.update_params

def get_batch_size(workload_name):
    return 8

def get_eval_batch_size(workload_name):
    return 64
'''

UPSTREAM_API_SUBMISSION = '''
"""Written against upstream AlgoPerf: algoperf imports, plain SGD."""
import torch
from algoperf import spec
from algoperf.pytorch_utils import pytorch_setup

USE_PYTORCH_DDP, RANK, DEVICE, N_GPUS = pytorch_setup()

def get_batch_size(workload_name):
    return 4

def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    return {"optimizer": torch.optim.SGD(model_params.parameters(), lr=hyperparameters.learning_rate)}

def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters,
                  batch, loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
    assert loss_type == spec.LossType.SOFTMAX_CROSS_ENTROPY
    assert current_params_types["node_embedder.weight"] == spec.ParameterType.EMBEDDING
    optimizer_state["optimizer"].zero_grad()
    logits, new_state = workload.model_fn(current_param_container, batch, model_state,
                                          spec.ForwardPassMode.TRAIN, rng, update_batch_norm=True, dropout_rate=0.1)
    loss_dict = workload.loss_fn(batch["targets"], logits, batch["weights"], label_smoothing=0.1)
    (loss_dict["summed"] / loss_dict["n_valid_examples"]).backward()
    optimizer_state["optimizer"].step()
    return optimizer_state, current_param_container, new_state

def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state,
                   hyperparameters, global_step, rng):
    return next(input_queue)
'''


def _run(pytester, submission: Path, data_dir: Path, results: Path, *extra: str):
    return pytester.runpytest(
        f"--algoperf-submission={submission}", f"--algoperf-data-dir={data_dir}", f"--algoperf-results-dir={results}",
        "--algoperf-studies=1", "--algoperf-trials=1", "-p", "no:cacheprovider", *extra,
    )


def test_nadamw_trains_and_evaluates_every_ogbg_workload_as_plugin_items(pytester, data_dir, tmp_path):
    submission = pytester.mkdir("nadamw_small")
    (submission / "submission.py").write_text(SMALL_BATCH_NADAMW)
    (submission / "tuning_search_space.json").write_text((ROOT / "submissions" / "nadamw" / "tuning_search_space.json").read_text())
    results = tmp_path / "results"
    result = _run(pytester, submission, data_dir, results, "--algoperf-max-steps=2", "-k", "ogbg")
    result.assert_outcomes(passed=4)
    for name in TARGETS:
        trial = results / "nadamw_small-max-steps-2" / "study_0" / f"{name}_pytorch" / "trial_1"
        rows = list(csv.DictReader((trial / "eval_measurements.csv").open()))
        assert [row["global_step"] for row in rows] == ["1", "2"]
        for split in ("train", "validation", "test"):
            assert 0.0 <= float(rows[-1][f"{split}/mean_average_precision"]) <= 1.0
            assert math.isfinite(float(rows[-1][f"{split}/loss"]))
        assert rows[-1]["validation/num_examples"] == "90"


def test_a_submission_written_against_upstreams_api_trains_and_evaluates(pytester, data_dir, tmp_path):
    submission = pytester.mkdir("upstream_sgd")
    (submission / "submission.py").write_text(UPSTREAM_API_SUBMISSION)
    (submission / "tuning_search_space.json").write_text('{"learning_rate": {"feasible_points": [0.01]}}')
    result = _run(pytester, submission, data_dir, tmp_path / "results", "--algoperf-max-steps=3", "-k", "ogbg and not gelu and not silu and not size")
    result.assert_outcomes(passed=1)
    rows = list(csv.DictReader((tmp_path / "results" / "upstream_sgd-max-steps-3" / "study_0" / "ogbg_pytorch" / "trial_1"
                                / "eval_measurements.csv").open()))
    assert rows[-1]["global_step"] == "3" and float(rows[-1]["validation/mean_average_precision"]) > 0


def test_missing_data_skips_every_ogbg_item_with_the_preparation_command(pytester, tmp_path):
    result = _run(pytester, ROOT / "submissions" / "nadamw", tmp_path / "empty", tmp_path / "results", "-rs", "-k", "ogbg")
    result.assert_outcomes(skipped=4)
    result.stdout.fnmatch_lines([f"*python -m workloads.ogbg.prepare --data-dir {tmp_path / 'empty'} --download*"])
