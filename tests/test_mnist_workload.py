"""The MNIST workload: reference model, loss, metrics, targets, IDX data path and preparation."""

from __future__ import annotations

import collections
import gzip

import numpy as np
import pytest
import torch

from pytest_algoperf.api import random_utils as prng
from pytest_algoperf.api.param_utils import ParameterType
from pytest_algoperf.api.spec import ForwardPassMode, LossType
from workloads.mnist import idx_format, input_pipeline, prepare
from workloads.registry import get_workload


@pytest.fixture
def workload():
    return get_workload("mnist")


def test_model_is_the_reference_mlp(workload):
    model, model_state = workload.init_model_fn(prng.PRNGKey(0))
    assert model_state is None
    assert sum(p.numel() for p in model.parameters()) == 101_770
    assert {name: tuple(shape.shape_tuple) for name, shape in workload.param_shapes.items()} == {
        "net.layer1.weight": (128, 784), "net.layer1.bias": (128,),
        "net.layer2.weight": (10, 128), "net.layer2.bias": (10,),
    }
    assert collections.Counter(workload.model_params_types.values()) == {ParameterType.WEIGHT: 2, ParameterType.BIAS: 2}
    assert workload.is_output_params("net.layer2.weight")


def test_init_is_seeded_and_a_second_init_reinitialises_the_same_module(workload):
    first, _ = workload.init_model_fn(prng.PRNGKey(0))
    other = get_workload("mnist")
    same_seed, _ = other.init_model_fn(prng.PRNGKey(0))
    torch.testing.assert_close(first.state_dict(), same_seed.state_dict())
    before = first.net.layer1.weight.detach().clone()
    again, _ = workload.init_model_fn(prng.PRNGKey(1))
    assert again is first
    assert not torch.equal(before, again.net.layer1.weight)


def test_targets_budget_and_sizes_are_the_references(workload):
    assert (workload.target_metric_name, workload.validation_target_value, workload.test_target_value) == ("accuracy", 0.97, 0.97)
    assert (workload.max_allowed_runtime_sec, workload.eval_period_time_sec, workload.step_hint) == (60, 10, 7813)
    assert (workload.num_train_examples, workload.num_validation_examples, workload.num_test_examples) == (50_000, 10_000, 10_000)
    assert (workload.eval_batch_size, workload.num_eval_train_examples) == (10_000, 10_000)
    assert workload.loss_type == LossType.SOFTMAX_CROSS_ENTROPY
    assert workload.has_reached_validation_target({"validation/accuracy": 0.9701})
    assert not workload.has_reached_validation_target({"validation/accuracy": 0.97})


def test_loss_masks_padding_and_applies_label_smoothing(workload):
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [5.0, -5.0]])
    labels = torch.tensor([0, 0, 1])
    mask = torch.tensor([1.0, 1.0, 0.0])
    out = workload.loss_fn(labels, logits, mask)
    per_example = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    assert out["n_valid_examples"].item() == 2
    assert out["summed"].item() == pytest.approx((per_example[0] + per_example[1]).item())
    assert out["per_example"][2].item() == 0.0
    smoothed = workload.loss_fn(labels, logits, label_smoothing=0.1)
    assert smoothed["summed"].item() != pytest.approx(per_example.sum().item())
    assert smoothed["n_valid_examples"].item() == 3


def test_idx_round_trip_and_damage_is_detected(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    idx_format.write_idx(tmp_path / "x-idx3-ubyte.gz", images)
    np.testing.assert_array_equal(idx_format.read_idx(tmp_path / "x-idx3-ubyte.gz"), images)
    raw = gzip.decompress((tmp_path / "x-idx3-ubyte.gz").read_bytes())
    assert raw[:4] == bytes([0, 0, 8, 3]) and int.from_bytes(raw[4:8], "big") == 2
    (tmp_path / "cut-idx3-ubyte").write_bytes(raw[:-10])
    with pytest.raises(idx_format.IdxFormatError, match="truncated"):
        idx_format.read_idx(tmp_path / "cut-idx3-ubyte")


def _fake_mnist(tmp_path, num_train=60_000, num_test=10_000):
    rng = np.random.RandomState(0)
    arrays = {
        "train_images": rng.randint(0, 256, size=(num_train, 28, 28)).astype(np.uint8),
        "train_labels": (np.arange(num_train) % 10).astype(np.uint8),
        "test_images": rng.randint(0, 256, size=(num_test, 28, 28)).astype(np.uint8),
        "test_labels": (np.arange(num_test) % 10).astype(np.uint8),
    }
    prepare.write_dataset(arrays, tmp_path / "mnist", source="test")
    return arrays


def test_data_status_reports_missing_partial_and_resized_data(workload, tmp_path):
    status = workload.data_status(str(tmp_path))
    assert status.missing and "python -m workloads.mnist.prepare --data-dir" in status.reason
    _fake_mnist(tmp_path)
    assert workload.data_status(str(tmp_path)).ready
    with open(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", "ab") as handle:
        handle.write(b"extra")
    status = workload.data_status(str(tmp_path))
    assert not status.ready and not status.missing and "t10k-labels-idx1-ubyte.gz has" in status.reason
    (tmp_path / "mnist" / "manifest.json").unlink()
    assert "preparation never finished" in workload.data_status(str(tmp_path)).reason


def test_pipeline_splits_shuffles_and_pads_like_the_reference(workload, tmp_path):
    arrays = _fake_mnist(tmp_path)
    input_pipeline._load_normalized.cache_clear()
    rng = prng.PRNGKey(0)
    train = workload._build_input_queue(rng, "train", str(tmp_path), 16)
    batch = next(train)
    assert batch["inputs"].shape == (16, 1, 28, 28) and batch["inputs"].dtype == torch.float32
    assert batch["targets"].dtype == torch.long and batch["weights"].all()
    # Upstream's buffer of 16 batches over the in-order stream: the first draws come from the first 256 digits.
    first_labels = batch["targets"].tolist()
    assert len(set(first_labels)) > 1
    again = next(workload._build_input_queue(rng, "train", str(tmp_path), 16))
    assert again["targets"].tolist() == first_labels  # same data rng, same order

    validation = workload._build_input_queue(rng, "validation", str(tmp_path), 3_000, repeat_final_dataset=True)
    batches = [next(validation) for _ in range(4)]
    assert [int(b["weights"].sum()) for b in batches] == [3_000, 3_000, 3_000, 1_000]  # 10,000 = 3 full + 1 padded
    expected_first = (arrays["train_images"][50_000].astype(np.float32) / 255 - 0.1307) / 0.3081
    np.testing.assert_allclose(batches[0]["inputs"][0, 0].numpy(), expected_first, rtol=1e-6)
    assert torch.equal(next(validation)["targets"], batches[0]["targets"])  # repeats


def test_eval_counts_only_real_examples(workload, tmp_path):
    _fake_mnist(tmp_path)
    input_pipeline._load_normalized.cache_clear()
    model, _ = workload.init_model_fn(prng.PRNGKey(0))
    metrics = workload.eval_model(3_000, model, None, prng.PRNGKey(1), str(tmp_path), None, 0)
    assert set(metrics) == {"train/accuracy", "train/loss", "validation/accuracy", "validation/loss",
                            "validation/num_examples", "test/accuracy", "test/loss", "test/num_examples"}
    # Labels cycle 0..9, so an untrained model's accuracy is about 0.1, and never above 1 despite padding.
    assert 0.0 <= metrics["validation/accuracy"] <= 0.3
    logits, _ = workload.model_fn(model, {"inputs": torch.zeros(2, 1, 28, 28)}, None, ForwardPassMode.EVAL, None, False)
    assert logits.shape == (2, 10) and not logits.requires_grad


def test_preparation_from_the_hub_gives_the_real_digits(mnist_data_dir):
    train_labels = idx_format.read_idx(mnist_data_dir / "mnist" / "train-labels-idx1-ubyte.gz")
    test_images = idx_format.read_idx(mnist_data_dir / "mnist" / "t10k-images-idx3-ubyte.gz")
    assert train_labels.shape == (60_000,) and test_images.shape == (10_000, 28, 28)
    # Well-known facts of the official files: the first training labels and the class balance.
    assert train_labels[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]
    assert np.bincount(train_labels).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert get_workload("mnist").data_status(str(mnist_data_dir)).ready
