"""The CIFAR-10 development workload: numbers per benchmark version, registry entry, model, evaluation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from pytest_algoperf.api import random_utils as prng  # noqa: E402
from pytest_algoperf.api.param_utils import ParameterType  # noqa: E402
from pytest_algoperf.api.spec import LossType  # noqa: E402
from workloads.cifar import input_pipeline, prepare, sample_data  # noqa: E402
from workloads.cifar.workload import CifarWorkload  # noqa: E402
from workloads.registry import get_workload, workload_entry  # noqa: E402

VERSIONS_DIR = Path(__file__).resolve().parents[2] / "scoring" / "versions"


@pytest.mark.parametrize("version", ["v0.5", "v0.6"])
def test_targets_and_budgets_are_the_version_files(version):
    workload = CifarWorkload(version)
    entry = json.loads((VERSIONS_DIR / f"{version}.json").read_text())["workloads"]["cifar"]
    assert entry["development"] is True
    assert workload.target_metric_name == "accuracy" and workload.higher_is_better
    assert (workload.validation_target_value, workload.test_target_value) == (0.85, 0.85)
    assert (workload.max_allowed_runtime_sec, workload.step_hint, workload.eval_period_time_sec) == (3600, 4883, 600)
    # Upstream's check is strict: exactly 0.85 has not reached the target.
    assert not workload.has_reached_validation_target({"validation/accuracy": 0.85})
    assert workload.has_reached_validation_target({"validation/accuracy": 0.8501})


def test_registry_marks_cifar_a_development_workload():
    entry = workload_entry("cifar")
    assert entry.development and entry.base == "cifar" and not entry.is_variant
    assert isinstance(get_workload("cifar"), CifarWorkload)


def test_constants_are_the_references():
    workload = CifarWorkload()
    assert workload.loss_type == LossType.SOFTMAX_CROSS_ENTROPY
    assert (workload.num_train_examples, workload.num_validation_examples, workload.num_test_examples) == (45_000, 5_000, 10_000)
    assert (workload.eval_batch_size, workload.num_eval_train_examples) == (1024, 5_120)  # ceil(5,000 / 1,024) * 1,024
    assert workload.train_mean == (0.49139968, 0.48215827, 0.44653124)
    assert workload.train_stddev == (0.24703233, 0.24348505, 0.26158768)
    assert (workload.crop_size, workload.padding_size) == (32, 4)
    assert workload.is_output_params("fc.weight") and workload.is_output_params("fc.bias")
    assert not workload.is_output_params("layer4.1.bn2.weight")
    assert workload.preparation_command("/d") == "python -m workloads.cifar.prepare --data-dir /d --raw-dir RAW"
    assert workload.data_status("/nowhere").missing


def test_init_builds_resnet18_and_a_second_init_reinitialises_the_same_module():
    workload = CifarWorkload()
    model, state = workload.init_model_fn(prng.PRNGKey(0))
    assert state is None and sum(p.numel() for p in model.parameters()) == 11_173_962
    assert workload.model_params_types["conv1.weight"] == ParameterType.CONV_WEIGHT
    assert workload.model_params_types["layer1.0.bn2.weight"] == ParameterType.BATCH_NORM_SCALE
    with torch.no_grad():
        model.fc.weight.fill_(3.0)
    again, _ = workload.init_model_fn(prng.PRNGKey(0))
    assert again is model  # upstream quirk: the same module, re-initialised in place
    assert float(model.fc.weight.detach().abs().max()) < 1.0  # fc ~ N(0, 0.01) again


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    try:
        sample_data.write_raw_dir(root / "raw", per_train_file=2, num_test=5)
    except sample_data.SampleImagesMissing as missing:
        pytest.skip(str(missing))
    assert prepare.main(["--data-dir", str(root / "data"), "--raw-dir", str(root / "raw"), "--subset"]) == 0
    return root / "data"


def test_eval_metrics_count_each_image_once(data_dir):
    """Accuracy and loss are sums over the real images divided by their number: padding rows weigh 0."""
    workload = CifarWorkload()
    workload.use_prepared_data(str(data_dir))
    assert (workload.num_train_examples, workload.num_validation_examples, workload.num_test_examples) == (9, 1, 5)
    assert workload.num_eval_train_examples == 9

    class Constant(torch.nn.Module):
        def forward(self, inputs):
            logits = torch.zeros(len(inputs), 10)
            logits[:, 3] = 1.0  # always predicts class 3 ("cat")
            return logits

    metrics = workload._eval_model_on_split("test", 5, 2, Constant(), None, prng.PRNGKey(2), str(data_dir))
    targets = input_pipeline.cifar_dataset(workload.dataset_dir(str(data_dir)), "test").labels.tolist()
    right, wrong = -math.log(math.e / (math.e + 9)), math.log(math.e + 9)
    hits = targets.count(3)
    assert metrics["accuracy"] == pytest.approx(hits / 5)
    assert metrics["loss"] == pytest.approx((hits * right + (5 - hits) * wrong) / 5, rel=1e-5)
