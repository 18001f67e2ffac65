"""The ImageNet ResNet-50 workloads: numbers per benchmark version, the loss, model_fn's batch-norm rules, eval."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
from PIL import Image  # noqa: E402

from pytest_algoperf.api import random_utils as prng  # noqa: E402
from pytest_algoperf.api.spec import ForwardPassMode, LossType  # noqa: E402
from workloads.data_manifest import write_manifest  # noqa: E402
from workloads.imagenet import input_pipeline  # noqa: E402
from workloads.imagenet_resnet.model import VARIANT_MODEL_KWARGS, resnet50  # noqa: E402
from workloads.imagenet_resnet.workload import (  # noqa: E402
    ImagenetResNetGELUWorkload,
    ImagenetResNetLargeBNScaleWorkload,
    ImagenetResNetSiLUWorkload,
    ImagenetResNetWorkload,
)

VERSIONS_DIR = Path(__file__).resolve().parents[2] / "scoring" / "versions"
CLASSES = {
    "imagenet_resnet": ImagenetResNetWorkload,
    "imagenet_resnet_silu": ImagenetResNetSiLUWorkload,
    "imagenet_resnet_gelu": ImagenetResNetGELUWorkload,
    "imagenet_resnet_large_bn_init": ImagenetResNetLargeBNScaleWorkload,
}
VARIANT_TARGETS = {  # (validation, test) accuracy, reference §5
    "imagenet_resnet": (0.77431, 0.656),
    "imagenet_resnet_silu": (0.75445, 0.6323),
    "imagenet_resnet_gelu": (0.76765, 0.6519),
    "imagenet_resnet_large_bn_init": (0.76526, 0.6423),
}
BUDGETS = {"v0.6": (66_159, 195_999), "v0.5": (63_008, 186_666)}  # (max_allowed_runtime_sec, step_hint)
WNIDS = ["n01440764", "n01443537"]
TRAIN_PER_CLASS, VAL_PER_CLASS, V2_PER_CLASS = 2, (2, 1), 1
NUM_VAL, NUM_V2 = sum(VAL_PER_CLASS), V2_PER_CLASS * len(WNIDS)  # 3 validation images in batches of 2: one padding row


@pytest.fixture(autouse=True, scope="module")
def two_torch_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    yield
    torch.set_num_threads(threads)


def _version_entry(version: str, name: str) -> dict:
    """The workload's entry of a version file, its base's fields filled in (as the scorer reads it)."""
    workloads = json.loads((VERSIONS_DIR / f"{version}.json").read_text())["workloads"]
    entry = dict(workloads[name])
    base = entry.pop("base", None)
    return {**workloads[base], **entry} if base else entry


# --- numbers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", sorted(BUDGETS))
@pytest.mark.parametrize("name", sorted(CLASSES))
def test_targets_and_budgets_are_the_version_files(name, version):
    workload = CLASSES[name](version)
    entry = _version_entry(version, name)
    assert workload.name == name
    assert workload.target_metric_name == entry["metric"] == "accuracy"
    assert workload.higher_is_better
    assert (workload.validation_target_value, workload.test_target_value) == VARIANT_TARGETS[name]
    targets = (workload.validation_target_value, workload.test_target_value)
    assert targets == (entry["validation_target"], entry["test_target"])
    assert (workload.max_allowed_runtime_sec, workload.step_hint) == BUDGETS[version]
    assert (workload.max_allowed_runtime_sec, workload.step_hint) == (entry["max_allowed_runtime_sec"], entry["step_hint"])
    assert workload.eval_period_time_sec == 510


def test_constants_are_the_references():
    workload = ImagenetResNetWorkload()
    assert workload.loss_type == LossType.SOFTMAX_CROSS_ENTROPY
    assert workload.dataset_name == "imagenet"
    assert workload.REFERENCE_COUNTS == {"train": 1_281_167, "validation": 50_000, "test": 10_000}
    assert (workload.num_train_examples, workload.num_validation_examples, workload.num_test_examples) == (
        1_281_167,
        50_000,
        10_000,
    )
    assert (workload.eval_batch_size, workload.num_eval_train_examples) == (1024, 50_176)
    assert workload.train_mean == pytest.approx((0.485 * 255, 0.456 * 255, 0.406 * 255))
    assert workload.train_stddev == pytest.approx((0.229 * 255, 0.224 * 255, 0.225 * 255))
    assert workload.is_output_params("fc.weight") and workload.is_output_params("fc.bias")
    assert not workload.is_output_params("conv1.weight")
    assert workload.preparation_command("/d") == "python -m workloads.imagenet.prepare --data-dir /d --raw-dir RAW"
    assert workload.data_status("/nowhere").missing


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_variants_build_the_models_named_in_model_py(name):
    workload = CLASSES[name]()
    assert (workload.use_silu, workload.use_gelu, workload.bn_init_scale) == (
        name.endswith("silu"),
        name.endswith("gelu"),
        8.0 if name.endswith("large_bn_init") else 0.0,
    )
    with torch.device("meta"):
        built, expected = workload.build_model(), resnet50(**VARIANT_MODEL_KWARGS[name])
    assert [type(m).__name__ for m in built.modules()] == [type(m).__name__ for m in expected.modules()]
    gelus = [m for m in built.modules() if isinstance(m, torch.nn.GELU)]
    assert all(m.approximate == "tanh" for m in gelus) and bool(gelus) == name.endswith("gelu")


# --- loss -----------------------------------------------------------------------------------------------


def test_loss_is_masked_label_smoothed_cross_entropy():
    workload = ImagenetResNetWorkload()
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0], [0.0, 3.0, 1.0]])
    labels = torch.tensor([0, 2, 1])
    mask = torch.tensor([1.0, 1.0, 0.0])
    smoothing = 0.1
    # By hand: q = (1 - ls) one-hot + ls / K, loss = -sum_k q_k log softmax_k.
    expected = []
    for row, label in zip(logits.tolist(), labels.tolist()):
        log_probs = np.array(row) - math.log(sum(math.exp(v) for v in row))
        q = np.full(3, smoothing / 3)
        q[label] += 1 - smoothing
        expected.append(float(-(q * log_probs).sum()))
    out = workload.loss_fn(labels, logits, mask, label_smoothing=smoothing)
    assert out["per_example"].tolist() == pytest.approx([expected[0], expected[1], 0.0], rel=1e-6)
    assert out["summed"].item() == pytest.approx(expected[0] + expected[1], rel=1e-6)
    assert out["n_valid_examples"].item() == 2
    unmasked = workload.loss_fn(labels, logits)
    assert unmasked["n_valid_examples"].item() == 3
    assert unmasked["summed"].item() == pytest.approx(-sum(
        row[y] - math.log(sum(math.exp(v) for v in row)) for row, y in zip(logits.tolist(), labels.tolist())
    ), rel=1e-6)


# --- model_fn -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model():
    workload = ImagenetResNetWorkload()
    model, state = workload.init_model_fn(prng.PRNGKey(0))
    assert state is None
    return workload, model


def _running_stats(model):
    return {name: buf.clone() for name, buf in model.named_buffers() if "running" in name}


def test_model_fn_update_batch_norm_semantics(model):
    workload, net = model
    batch = {"inputs": torch.randn(2, 3, 64, 64)}  # ResNet-50 takes any size >= 32; small keeps it quick
    before = _running_stats(net)

    logits, state = workload.model_fn(net, batch, None, ForwardPassMode.TRAIN, None, update_batch_norm=False)
    assert logits.shape == (2, 1000) and logits.requires_grad and state is None
    assert net.training
    after = _running_stats(net)
    assert all(torch.equal(before[k], after[k]) for k in before if "num_batches" not in k)

    workload.model_fn(net, batch, None, ForwardPassMode.TRAIN, None, update_batch_norm=True)
    updated = _running_stats(net)
    assert not torch.equal(before["bn1.running_mean"], updated["bn1.running_mean"])
    assert net.bn1.momentum == 0.1  # restored from the backup update_batch_norm_fn keeps

    logits, _ = workload.model_fn(net, batch, None, ForwardPassMode.EVAL, None, update_batch_norm=False, dropout_rate=0.5)
    assert not net.training and not logits.requires_grad
    assert all(torch.equal(updated[k], v) for k, v in _running_stats(net).items())
    with pytest.raises(ValueError, match="EVAL"):
        workload.model_fn(net, batch, None, ForwardPassMode.EVAL, None, update_batch_norm=True)


# --- evaluation on a tiny prepared data dir ----------------------------------------------------------


def _jpeg(rng: np.random.Generator, height: int, width: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """DATA_DIR with imagenet/{train,val,imagenet_v2} in prepare.py's layout and a subset manifest."""
    from workloads.imagenet import prepare

    root = tmp_path_factory.mktemp("imagenet_resnet")
    dataset_dir = root / "imagenet"
    rng = np.random.default_rng(0)
    per_class = {"train": {}, "validation": {}, "test": {}}
    for k, wnid in enumerate(WNIDS):
        for split, folder, count, suffix in (
            ("train", Path(input_pipeline.TRAIN_DIR, wnid), TRAIN_PER_CLASS, "JPEG"),
            ("validation", Path(input_pipeline.VAL_DIR, wnid), VAL_PER_CLASS[k], "JPEG"),
            ("test", Path(input_pipeline.V2_DIR, str(k)), V2_PER_CLASS, "jpeg"),
        ):
            (dataset_dir / folder).mkdir(parents=True)
            for j in range(count):
                (dataset_dir / folder / f"{wnid}_{j}.{suffix}").write_bytes(_jpeg(rng, 240 + 16 * j, 300 - 8 * k))
            per_class[split][wnid if split != "test" else str(k)] = count
    (dataset_dir / prepare.INDEX_NAME).write_text(json.dumps(per_class))
    counts = {split: sum(classes.values()) for split, classes in per_class.items()}
    assert counts == {"train": 2 * TRAIN_PER_CLASS, "validation": NUM_VAL, "test": NUM_V2}
    write_manifest(dataset_dir, [prepare.INDEX_NAME], counts, source="random JPEGs", subset=True)
    return root


def test_eval_on_prepared_subset(model, data_dir):
    workload, net = model
    assert workload.data_status(str(data_dir)).ready
    workload.use_prepared_data(str(data_dir))
    assert (workload.num_validation_examples, workload.num_test_examples) == (NUM_VAL, NUM_V2)
    assert workload.num_eval_train_examples == 2 * TRAIN_PER_CLASS
    rng = prng.PRNGKey(1)
    for split, num_examples in (("validation", NUM_VAL), ("test", NUM_V2)):
        metrics = workload._eval_model_on_split(split, num_examples, 2, net, None, rng, str(data_dir))
        assert set(metrics) == {"accuracy", "loss"}
        assert 0.0 <= metrics["accuracy"] <= 1.0
        assert 0.0 < metrics["loss"] < 20.0  # 1,000 classes: about log(1000) = 6.9 for an untrained net
    # The test split reads ImageNet-v2 with its own transform.
    dataset = input_pipeline.imagenet_dataset(workload.dataset_dir(str(data_dir)), "test")
    assert type(dataset.transform).__name__ == "ImagenetV2TestTransform"
    assert dataset.targets == [0, 1]


def test_eval_metrics_count_each_image_once(data_dir):
    """Accuracy and loss are sums over the real images divided by their number: padding rows weigh 0."""
    workload = ImagenetResNetWorkload()
    workload.use_prepared_data(str(data_dir))

    class Constant(torch.nn.Module):
        def forward(self, inputs):
            logits = torch.zeros(len(inputs), 1000)
            logits[:, 0] = 1.0  # always predicts class 0
            return logits

    metrics = workload._eval_model_on_split("validation", NUM_VAL, 2, Constant(), None, prng.PRNGKey(2), str(data_dir))
    targets = input_pipeline.imagenet_dataset(workload.dataset_dir(str(data_dir)), "validation").targets
    per_image = torch.nn.functional.cross_entropy(torch.tensor([[1.0] + [0.0] * 999]), torch.tensor([0])).item()
    wrong = math.log(math.e + 999)  # -log softmax of a 0 logit next to one logit of 1
    assert metrics["accuracy"] == pytest.approx(targets.count(0) / NUM_VAL)
    expected_loss = (targets.count(0) * per_image + targets.count(1) * wrong) / NUM_VAL
    assert metrics["loss"] == pytest.approx(expected_loss, rel=1e-5)
