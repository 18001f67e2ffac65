"""The ImageNet ViT workloads: numbers per benchmark version, shared data, RandAugment and mixup in
training only, dropout per call (v0.6) or fixed at init (v0.5), no compilation, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from pytest_algoperf.api import random_utils as prng  # noqa: E402
from pytest_algoperf.api.spec import ForwardPassMode, LossType  # noqa: E402
from pytest_algoperf.compilation import compile_like_upstream  # noqa: E402
from workloads.imagenet import prepare, randaugment, sample_data  # noqa: E402
from workloads.imagenet_resnet.workload import ImagenetResNetWorkload  # noqa: E402
from workloads.imagenet_vit.model import VARIANT_MODEL_KWARGS, vit_s16  # noqa: E402
from workloads.imagenet_vit.workload import (  # noqa: E402
    ImagenetVitGluWorkload,
    ImagenetVitMapWorkload,
    ImagenetVitPostLNWorkload,
    ImagenetVitWorkload,
)
from workloads.registry import get_workload, workload_entry  # noqa: E402

VERSIONS_DIR = Path(__file__).resolve().parents[2] / "scoring" / "versions"
CLASSES = {
    "imagenet_vit": ImagenetVitWorkload,
    "imagenet_vit_glu": ImagenetVitGluWorkload,
    "imagenet_vit_post_ln": ImagenetVitPostLNWorkload,
    "imagenet_vit_map": ImagenetVitMapWorkload,
}
VARIANT_TARGETS = {  # (validation, test) accuracy, reference §5
    "imagenet_vit": (0.77309, 0.6519),
    "imagenet_vit_glu": (0.75738, 0.6359),
    "imagenet_vit_post_ln": (0.75312, 0.6286),
    "imagenet_vit_map": (0.77113, 0.6523),
}
BUDGETS = {"v0.6": (69_768, 167_999), "v0.5": (77_520, 186_666)}  # (max_allowed_runtime_sec, step_hint)


@pytest.fixture(autouse=True, scope="module")
def two_torch_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("version", sorted(BUDGETS))
@pytest.mark.parametrize("name", sorted(CLASSES))
def test_targets_and_budgets_are_the_version_files(name, version):
    workload = CLASSES[name](version)
    workloads = json.loads((VERSIONS_DIR / f"{version}.json").read_text())["workloads"]
    entry = {**workloads["imagenet_vit"], **workloads[name]}
    assert workload.name == name and workload.target_metric_name == entry["metric"] == "accuracy"
    assert (workload.validation_target_value, workload.test_target_value) == VARIANT_TARGETS[name]
    assert (workload.validation_target_value, workload.test_target_value) == (entry["validation_target"], entry["test_target"])
    assert (workload.max_allowed_runtime_sec, workload.step_hint) == BUDGETS[version]
    assert workload.eval_period_time_sec == 420


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_registry_and_the_shared_imagenet_data(name):
    entry = workload_entry(name)
    assert (entry.base, entry.family, entry.development) == ("imagenet_vit", "imagenet", False)
    workload = get_workload(name)
    assert isinstance(workload, CLASSES[name])
    resnet = ImagenetResNetWorkload()
    # No second copy of the data: the same data set, preparation command and split sizes as the ResNet.
    assert workload.dataset_name == resnet.dataset_name == "imagenet"
    assert workload.preparation_command("/d") == resnet.preparation_command("/d")
    assert workload.REFERENCE_COUNTS == resnet.REFERENCE_COUNTS
    assert (workload.eval_batch_size, workload.num_eval_train_examples) == (2048, 51_200)  # 25 eval batches
    assert workload.loss_type == LossType.SOFTMAX_CROSS_ENTROPY
    assert workload.is_output_params("head.weight") and workload.is_output_params("head.bias")
    assert not workload.is_output_params("pre_logits.weight")


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_variants_build_the_models_named_in_model_py(name):
    with torch.device("meta"):
        built, expected = CLASSES[name]().build_model(), vit_s16(**VARIANT_MODEL_KWARGS[name])
    assert [(n, p.shape) for n, p in built.named_parameters()] == [(n, p.shape) for n, p in expected.named_parameters()]


def test_the_model_is_not_compiled_as_upstream():
    model = torch.nn.Linear(2, 2)
    workload = ImagenetVitWorkload()
    assert compile_like_upstream(workload, model, "imagenet_vit") is model


# --- model_fn -------------------------------------------------------------------------------------


class RecordingModel(torch.nn.Module):
    """Stands in for the ViT: records the dropout rates model_fn passes."""

    def __init__(self):
        super().__init__()
        self.calls = []
        self.weight = torch.nn.Parameter(torch.zeros(3 * 4 * 4, 1000))

    def forward(self, inputs, dropout_rate, attention_dropout_rate):
        self.calls.append((dropout_rate, attention_dropout_rate, self.training))
        return inputs.flatten(1) @ self.weight


def test_dropout_is_per_call_in_v06_and_fixed_at_init_in_v05():
    batch = {"inputs": torch.zeros(2, 3, 4, 4)}
    workload, model = ImagenetVitWorkload(), RecordingModel()
    workload.model_fn(model, batch, None, ForwardPassMode.TRAIN, None, update_batch_norm=True, dropout_rate=0.3)
    workload.model_fn(model, batch, None, ForwardPassMode.TRAIN, None, update_batch_norm=False)
    logits, _ = workload.model_fn(model, batch, None, ForwardPassMode.EVAL, None, update_batch_norm=True)  # no BN: ignored
    assert model.calls == [(0.3, None, True), (0.0, None, True), (0.0, None, False)]
    assert not logits.requires_grad

    v05, model = ImagenetVitWorkload("v0.5"), RecordingModel()
    v05.fix_dropout_at_init(0.1, None)
    v05.model_fn(model, batch, None, ForwardPassMode.TRAIN, None, update_batch_norm=False)
    assert model.calls == [(0.1, 0.0, True)]  # v0.5's model had no dropout on the attention probabilities


def test_dropout_changes_training_outputs_only():
    torch.manual_seed(0)
    workload = ImagenetVitWorkload()
    model = vit_s16()
    with torch.no_grad():
        model.head.weight.normal_()  # a zero head would hide every difference
    batch = {"inputs": torch.randn(1, 3, 224, 224)}
    run = lambda mode, rate: workload.model_fn(model, batch, None, mode, None, False, dropout_rate=rate)[0]  # noqa: E731
    torch.testing.assert_close(run(ForwardPassMode.EVAL, 0.5), run(ForwardPassMode.EVAL, 0.0))
    with torch.no_grad():
        assert not torch.allclose(run(ForwardPassMode.TRAIN, 0.5), run(ForwardPassMode.TRAIN, 0.0))


# --- training input -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet_vit")
    try:
        sample_data.write_raw_dir(root / "raw", num_train=4, num_val=3, num_v2=2)
    except sample_data.SampleImagesMissing as missing:
        pytest.skip(str(missing))
    assert prepare.main(["--data-dir", str(root / "data"), "--raw-dir", str(root / "raw"), "--subset"]) == 0
    return str(root / "data")


def test_training_batches_get_randaugment_and_mixup_and_eval_batches_neither(data_dir, monkeypatch):
    calls = []
    original = randaugment.RandAugment.__call__

    def counting(self, image):
        calls.append(type(image).__name__)
        return original(self, image)

    monkeypatch.setattr(randaugment.RandAugment, "__call__", counting)
    workload = ImagenetVitWorkload()
    workload.use_prepared_data(data_dir)
    torch.manual_seed(0)
    train = next(workload._build_input_queue(prng.PRNGKey(0), "train", data_dir, 4))
    assert calls == ["Image"] * 4  # once per training image, on the PIL path of a CPU run
    assert train["inputs"].shape == (4, 3, 224, 224)
    targets = train["targets"]
    assert targets.shape == (4, 1000) and targets.dtype == torch.float32
    torch.testing.assert_close(targets.sum(1), torch.ones(4))
    weights = sorted(set(round(v, 6) for v in targets[targets > 0].tolist()))
    assert len(weights) == 2 and sum(weights) == pytest.approx(1.0)  # lambda and 1 - lambda: neighbours mixed

    calls.clear()
    validation = next(workload._build_input_queue(prng.PRNGKey(0), "validation", data_dir, 4))
    assert calls == [] and validation["targets"].dtype == torch.int64 and "weights" in validation


def test_eval_on_prepared_subset(data_dir):
    workload = ImagenetVitWorkload()
    workload.use_prepared_data(data_dir)
    model, state = workload.init_model_fn(prng.PRNGKey(0))
    assert state is None and sum(p.numel() for p in model.parameters()) == 22_122_472
    metrics = workload._eval_model_on_split("validation", 3, 2, model, None, prng.PRNGKey(1), data_dir)
    # The head starts at zero: uniform logits, loss exactly log(1000) on every image.
    assert metrics["loss"] == pytest.approx(6.907755, rel=1e-5)
    assert metrics["accuracy"] in (0.0, 1 / 3, 2 / 3, 1.0)
