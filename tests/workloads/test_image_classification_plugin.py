"""imagenet_resnet, imagenet_vit and cifar as plugin items: real photographs (foolbox's ImageNet and CIFAR-10
samples) in the official raw layouts, prepared by the real commands, trained by the NAdamW baseline
and by an upstream-API submission for two steps, with an eval after each, on CPU."""

from __future__ import annotations

import pytest
from plugin_items import NADAMW, SGD_MOMENTUM, eval_rows, run_items, small_nadamw, upstream_submission

# Imported here, before pytester's in-process sessions: they restore sys.modules after each run, and a
# second import of torchvision would register its operators twice (a RuntimeError in torch.library).
pytest.importorskip("torchvision")
pytest.importorskip("torchvision.transforms.v2")

from workloads.cifar import prepare as cifar_prepare
from workloads.cifar import sample_data as cifar_sample
from workloads.imagenet import prepare as imagenet_prepare
from workloads.imagenet import sample_data as imagenet_sample

# A 224x224 ResNet-50 step of 2 images takes about a second on a CPU core.
BATCH_SIZE, EVAL_BATCH_SIZE = 2, 4
UPSTREAM_CHECKS = [
    "assert loss_type == spec.LossType.SOFTMAX_CROSS_ENTROPY",
    "assert spec.ParameterType.CONV_WEIGHT in set(current_params_types.values())",
    'targets = batch["targets"]',
    "if targets.dim() == 2:  # mixup's soft labels (the ViT workloads): one distribution per image",
    "    assert targets.shape[1] == 1000 and torch.allclose(targets.sum(1), torch.ones(len(targets), device=targets.device))",
]


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


@pytest.mark.parametrize("workload, module", [("imagenet_resnet", "imagenet"), ("cifar", "cifar")])
def test_missing_data_skips_the_item_with_the_preparation_command(pytester, tmp_path, workload, module):
    result = run_items(pytester, NADAMW, tmp_path / "nothing", tmp_path / "results", f"{workload}-study0")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines([f"*python -m workloads.{module}.prepare --data-dir*"])


@pytest.mark.parametrize("workload", ["imagenet_resnet", "imagenet_vit"])
def test_the_nadamw_baseline_trains_and_evaluates_on_imagenet(pytester, data_dir, tmp_path, workload):
    submission = small_nadamw(pytester.path / "small_nadamw", BATCH_SIZE, EVAL_BATCH_SIZE)
    result = run_items(pytester, submission, data_dir, tmp_path, f"{workload}-study0")  # the base workload only
    result.assert_outcomes(passed=1)
    rows = eval_rows(tmp_path, workload)
    assert [row["global_step"] for row in rows] == ["1", "2"]  # an eval after the first and the last step
    final = rows[-1]
    # Every image of each split is evaluated once: 3 validation, 2 ImageNet-v2 images.
    assert [float(final[f"{split}/num_examples"]) for split in ("validation", "test")] == [3, 2]
    for split in ("train", "validation", "test"):
        assert 0.0 <= float(final[f"{split}/accuracy"]) <= 1.0 and float(final[f"{split}/loss"]) > 0.0


def test_an_upstream_api_submission_runs_resnet_and_vit_variants_and_cifar(pytester, data_dir, tmp_path):
    submission = upstream_submission(
        pytester.path / "upstream_sgd", BATCH_SIZE, EVAL_BATCH_SIZE, UPSTREAM_CHECKS,
        optimizer=SGD_MOMENTUM, loss_options=", label_smoothing=0.1", learning_rate=0.01,
    )
    selection = "imagenet_resnet_large_bn_init or imagenet_vit_map or cifar-study0"
    result = run_items(pytester, submission, data_dir, tmp_path, selection)
    result.assert_outcomes(passed=3)
    for name in ("imagenet_resnet_large_bn_init", "imagenet_vit_map"):
        assert {"validation/accuracy", "test/accuracy", "train/loss"} <= set(eval_rows(tmp_path, name)[-1])
    cifar = eval_rows(tmp_path, "cifar")[-1]
    # 10 training images: 9 train + 1 validation (the last tenth); 5 test images.
    assert [float(cifar[f"{split}/num_examples"]) for split in ("validation", "test")] == [1, 5]


def test_the_nadamw_baseline_trains_cifar(pytester, data_dir, tmp_path):
    submission = small_nadamw(pytester.path / "small_nadamw", BATCH_SIZE, EVAL_BATCH_SIZE)
    result = run_items(pytester, submission, data_dir, tmp_path, "cifar-study0")
    result.assert_outcomes(passed=1)
    losses = [float(row["train/loss"]) for row in eval_rows(tmp_path, "cifar")]
    assert len(losses) == 2 and all(loss > 0.0 for loss in losses)
