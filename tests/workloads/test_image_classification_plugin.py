"""imagenet_resnet, imagenet_vit and cifar as plugin items: real photographs (foolbox's ImageNet and CIFAR-10
samples) in the official raw layouts, prepared by the real commands, trained by the NAdamW baseline
and by an upstream-API submission for two steps, with an eval after each, on CPU."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

# Imported here, before pytester's in-process sessions: they restore sys.modules after each run, and a
# second import of torchvision would register its operators twice (a RuntimeError in torch.library).
pytest.importorskip("torchvision")
pytest.importorskip("torchvision.transforms.v2")

from workloads.cifar import prepare as cifar_prepare
from workloads.cifar import sample_data as cifar_sample
from workloads.imagenet import prepare as imagenet_prepare
from workloads.imagenet import sample_data as imagenet_sample

ROOT = Path(__file__).resolve().parents[2]
NADAMW = ROOT / "submissions" / "nadamw"

# The baseline's own code, with batch sizes a CPU test can afford (a 224x224 ResNet-50 step of 2 images ~1 s).
SMALL_NADAMW = '''
"""The NAdamW baseline with CPU-sized batches."""
from pytest_algoperf.baselines import baseline_module
_baseline = baseline_module("nadamw")
data_selection, init_optimizer_state = _baseline.data_selection, _baseline.init_optimizer_state
prepare_for_eval, update_params = _baseline.prepare_for_eval, _baseline.update_params

def get_batch_size(workload_name):
    return 2

def get_eval_batch_size(workload_name):
    return 4
'''

# As one would write it for upstream AlgoPerf: only algoperf imports, v0.6 signatures.
UPSTREAM_SUBMISSION = '''
"""SGD with momentum and label smoothing, written against upstream AlgoPerf's submission API."""
import torch
from algoperf import spec
from algoperf.pytorch_utils import pytorch_setup

USE_PYTORCH_DDP, RANK, DEVICE, N_GPUS = pytorch_setup()

def get_batch_size(workload_name):
    return 2

def get_eval_batch_size(workload_name):
    return 4

def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    return {"optimizer": torch.optim.SGD(model_params.parameters(), lr=hyperparameters.learning_rate, momentum=0.9)}

def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters,
                  batch, loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
    assert loss_type == spec.LossType.SOFTMAX_CROSS_ENTROPY
    assert spec.ParameterType.CONV_WEIGHT in set(current_params_types.values())
    targets = batch["targets"]
    if targets.dim() == 2:  # mixup's soft labels (the ViT workloads): one distribution per image
        assert targets.shape[1] == 1000 and torch.allclose(targets.sum(1), torch.ones(len(targets), device=targets.device))
    current_param_container.train()
    optimizer_state["optimizer"].zero_grad()
    logits, new_state = workload.model_fn(current_param_container, batch, model_state, spec.ForwardPassMode.TRAIN,
                                          rng, update_batch_norm=True)
    loss_dict = workload.loss_fn(batch["targets"], logits, label_smoothing=0.1)
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
    """One data dir holding both prepared samples, each made by its real preparation command."""
    raw = tmp_path_factory.mktemp("raw")
    data_dir = tmp_path_factory.mktemp("data")
    try:
        imagenet_sample.write_raw_dir(raw / "imagenet", num_train=6, num_val=3, num_v2=2)
        cifar_sample.write_raw_dir(raw / "cifar", per_train_file=2, num_test=5)
    except imagenet_sample.SampleImagesMissing as missing:
        pytest.skip(str(missing))
    assert imagenet_prepare.main(["--data-dir", str(data_dir), "--raw-dir", str(raw / "imagenet"), "--subset"]) == 0
    assert cifar_prepare.main(["--data-dir", str(data_dir), "--raw-dir", str(raw / "cifar"), "--subset"]) == 0
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


def _submission(pytester, name: str, code: str, search_space: Path = None) -> Path:
    folder = pytester.mkdir(name)
    (folder / "submission.py").write_text(code)
    if search_space:
        shutil.copy(search_space, folder / "tuning_search_space.json")
    else:
        (folder / "tuning_search_space.json").write_text('{"learning_rate": {"feasible_points": [0.01]}}')
    return folder


@pytest.mark.parametrize("workload, module", [("imagenet_resnet", "imagenet"), ("cifar", "cifar")])
def test_missing_data_skips_the_item_with_the_preparation_command(pytester, tmp_path, workload, module):
    result = _run(pytester, NADAMW, tmp_path / "nothing", tmp_path / "results", f"{workload}-study0")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"*python -m workloads.{module}.prepare --data-dir*"])


@pytest.mark.parametrize("workload", ["imagenet_resnet", "imagenet_vit"])
def test_the_nadamw_baseline_trains_and_evaluates_on_imagenet(pytester, data_dir, tmp_path, workload):
    submission = _submission(pytester, "small_nadamw", SMALL_NADAMW, NADAMW / "tuning_search_space.json")
    result = _run(pytester, submission, data_dir, tmp_path, f"{workload}-study0")  # the base workload only
    result.assert_outcomes(passed=1)
    rows = _eval_rows(tmp_path, workload)
    assert [row["global_step"] for row in rows] == ["1", "2"]  # an eval after the first and the last step
    final = rows[-1]
    # Every image of each split is evaluated once: 3 validation, 2 ImageNet-v2 images.
    assert [float(final[f"{split}/num_examples"]) for split in ("validation", "test")] == [3, 2]
    for split in ("train", "validation", "test"):
        assert 0.0 <= float(final[f"{split}/accuracy"]) <= 1.0 and float(final[f"{split}/loss"]) > 0.0


def test_an_upstream_api_submission_runs_resnet_and_vit_variants_and_cifar(pytester, data_dir, tmp_path):
    submission = _submission(pytester, "upstream_sgd", UPSTREAM_SUBMISSION)
    selection = "imagenet_resnet_large_bn_init or imagenet_vit_map or cifar-study0"
    result = _run(pytester, submission, data_dir, tmp_path, selection)
    result.assert_outcomes(passed=3)
    for name in ("imagenet_resnet_large_bn_init", "imagenet_vit_map"):
        assert {"validation/accuracy", "test/accuracy", "train/loss"} <= set(_eval_rows(tmp_path, name)[-1])
    cifar = _eval_rows(tmp_path, "cifar")[-1]
    # 10 training images: 9 train + 1 validation (the last tenth); 5 test images.
    assert [float(cifar[f"{split}/num_examples"]) for split in ("validation", "test")] == [1, 5]


def test_the_nadamw_baseline_trains_cifar(pytester, data_dir, tmp_path):
    submission = _submission(pytester, "small_nadamw", SMALL_NADAMW, NADAMW / "tuning_search_space.json")
    result = _run(pytester, submission, data_dir, tmp_path, "cifar-study0")
    result.assert_outcomes(passed=1)
    losses = [float(row["train/loss"]) for row in _eval_rows(tmp_path, "cifar")]
    assert len(losses) == 2 and all(loss > 0.0 for loss in losses)
