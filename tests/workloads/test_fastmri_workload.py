"""The fastMRI workloads: numbers per benchmark version, the masked loss, and evaluation on in-memory batches."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

import workloads.fastmri
from pytest_algoperf.api import random_utils as prng
from pytest_algoperf.api.spec import LossType
from workloads.data_manifest import write_manifest
from workloads.registry import get_workload, workload_entry

VARIANT_TARGETS = {
    "fastmri": (0.723653, 0.740633),
    "fastmri_model_size": (0.723559, 0.740726),
    "fastmri_tanh": (0.71784, 0.734505),
    "fastmri_layernorm": (0.723284, 0.739996),
}
BUDGETS = {"v0.6": (4_430, 18_094), "v0.5": (8_859, 36_189)}  # (max_allowed_runtime_sec, step_hint)
SIZE = 32  # the smallest slice the 4-level U-Net takes (2 x 2 at the bottleneck); the reference's is 320


@pytest.fixture(autouse=True, scope="module")
def two_torch_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(min(threads, 2))
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("version", sorted(BUDGETS))
@pytest.mark.parametrize("name", sorted(VARIANT_TARGETS))
def test_targets_budget_and_sizes_are_the_references(name, version):
    workload = get_workload(name, version)
    assert (workload.validation_target_value, workload.test_target_value) == VARIANT_TARGETS[name]
    assert (workload.target_metric_name, workload.higher_is_better, workload.loss_type) == ("ssim", True, LossType.MEAN_ABSOLUTE_ERROR)
    assert (workload.max_allowed_runtime_sec, workload.step_hint) == BUDGETS[version]
    assert workload.eval_period_time_sec == 80 and workload.eval_batch_size == 256
    assert (workload.num_train_examples, workload.num_validation_examples, workload.num_test_examples) == (34_742, 3_554, 3_581)
    assert workload.num_eval_train_examples == 3_584  # 3,554 rounded up to 14 eval batches of 256
    assert workload.dataset_dir("DATA") == Path("DATA") / "fastmri"  # all variants share one prepared copy
    assert workload.preparation_command("DATA") == "python -m workloads.fastmri.prepare --data-dir DATA --raw-dir RAW"
    with pytest.raises(NotImplementedError):
        workload.train_mean
    with pytest.raises(NotImplementedError):
        workload.train_stddev
    target = VARIANT_TARGETS[name][0]
    assert workload.has_reached_validation_target({"validation/ssim": target + 1e-6})
    assert not workload.has_reached_validation_target({"validation/ssim": target})  # strict, as upstream's runner
    entry = workload_entry(name)
    assert (entry.base, entry.family, entry.is_variant) == ("fastmri", "fastmri", name != "fastmri")


def test_the_model_and_the_loss_are_compiled_where_upstream_compiles_them():
    from pytest_algoperf.compilation import COMPILED_LOSSES, COMPILED_MODELS

    for name in VARIANT_TARGETS:
        base = workload_entry(name).base
        assert base in COMPILED_MODELS and base in COMPILED_LOSSES


def test_loss_is_the_masked_mean_absolute_error_per_slice():
    workload = get_workload("fastmri")
    targets = torch.zeros(3, 2, 2)
    outputs = torch.tensor([[[1.0, -1.0], [2.0, 0.0]], [[0.5, 0.5], [0.5, 0.5]], [[4.0, 4.0], [4.0, 4.0]]])
    out = workload.loss_fn(targets, outputs, torch.tensor([1.0, 1.0, 0.0]), label_smoothing=0.1)
    np.testing.assert_allclose(out["per_example"].numpy(), [1.0, 0.5, 0.0])  # (1 + 1 + 2 + 0) / 4, 0.5, masked
    assert out["summed"].item() == pytest.approx(1.5)
    assert out["n_valid_examples"].item() == 2
    unmasked = workload.loss_fn(targets, outputs)
    assert unmasked["n_valid_examples"].item() == 3 and unmasked["summed"].item() == pytest.approx(5.5)
    assert workload.loss_fn(targets, outputs.requires_grad_())["summed"].requires_grad


def _split(seed: int, count: int) -> dict:
    rng = np.random.default_rng(seed)
    targets = rng.normal(size=(count, SIZE, SIZE)).astype(np.float32)
    return {
        "inputs": (targets + rng.normal(0, 0.5, targets.shape)).astype(np.float32),
        "targets": targets,
        "mean": rng.uniform(1e-5, 2e-5, count).astype(np.float32),  # fastMRI's intensities are this small
        "std": rng.uniform(5e-6, 1e-5, count).astype(np.float32),
        "volume_max": rng.uniform(1e-4, 2e-4, count).astype(np.float32),
    }


SPLITS = {"train": _split(0, 3), "validation": _split(1, 3), "test": _split(2, 2)}


def _numpy_batches(dataset_dir, split, global_batch_size, seed, repeat, num_batches=None, num_examples=None, *,
                   shard=0, num_shards=1, cache=None):
    """Stands in for the input pipeline: its keys, train batches without the remainder, eval ones padded (weight 0)."""
    arrays = SPLITS["train" if split == "eval_train" else split]
    count = len(arrays["inputs"]) if num_examples is None else num_examples
    last_start = count - global_batch_size + 1 if split == "train" else count
    while True:
        for start in range(0, last_start, global_batch_size):
            rows = slice(start, min(start + global_batch_size, count))
            batch = {key: value[rows] for key, value in arrays.items()}
            if split != "train":
                real = len(batch["inputs"])
                batch = {key: np.concatenate([value, np.zeros((global_batch_size - real, *value.shape[1:]), value.dtype)])
                         for key, value in batch.items()}
                batch["weights"] = (np.arange(global_batch_size) < real).astype(np.float32)
            per_shard = global_batch_size // num_shards
            yield {key: value[shard * per_shard : (shard + 1) * per_shard] for key, value in batch.items()}
        if not repeat:
            return


@pytest.fixture
def pipeline_calls(monkeypatch):
    calls = []

    def numpy_batches(*args, **kwargs):
        names = ("dataset_dir", "split", "global_batch_size", "seed", "repeat", "num_batches", "num_examples")
        calls.append(dict(zip(names, args), **kwargs))
        return _numpy_batches(*args, **kwargs)

    monkeypatch.setattr(workloads.fastmri, "input_pipeline", types.SimpleNamespace(numpy_batches=numpy_batches), raising=False)
    return calls


@pytest.fixture
def data_dir(tmp_path):
    """A subset manifest, so the workload takes the in-memory split sizes."""
    (tmp_path / "fastmri").mkdir()
    write_manifest(tmp_path / "fastmri", [], counts={"train": 3, "validation": 3, "test": 2}, source="test", subset=True)
    return tmp_path


def _by_hand(outputs: np.ndarray, split: str) -> tuple:
    """Mean SSIM (scikit-image, on de-normalised slices) and mean absolute error over the split's slices."""
    arrays = SPLITS[split]
    count = len(outputs)
    ssims, losses = [], []
    for i in range(count):
        mean, std = float(arrays["mean"][i]), float(arrays["std"][i])
        target = arrays["targets"][i].astype(np.float64)
        ssims.append(structural_similarity(
            target * std + mean, outputs[i] * std + mean, data_range=float(arrays["volume_max"][i]),
            win_size=7, use_sample_covariance=True, K1=0.01, K2=0.03,
        ))
        losses.append(np.abs(outputs[i] - target).mean())
    return float(np.mean(ssims)), float(np.mean(losses))


def test_eval_averages_ssim_and_loss_over_exactly_the_real_slices(pipeline_calls, data_dir):
    workload = get_workload("fastmri")
    workload.use_prepared_data(str(data_dir))
    assert (workload.num_eval_train_examples, workload.num_validation_examples, workload.num_test_examples) == (3, 3, 2)
    model, _ = workload.init_model_fn(prng.PRNGKey(0))
    metrics = workload.eval_model(2, model, None, prng.PRNGKey(1), str(data_dir), None, 0)
    assert set(metrics) == {
        "train/ssim", "train/loss", "validation/ssim", "validation/loss", "validation/num_examples",
        "test/ssim", "test/loss", "test/num_examples",
    }
    assert (metrics["validation/num_examples"], metrics["test/num_examples"]) == (3, 2)
    # Instance norm works per slice, so one forward pass over every slice gives each slice's output.
    inputs = np.concatenate([SPLITS[split]["inputs"] for split in ("train", "validation", "test")])
    with torch.no_grad():
        outputs = model.eval()(torch.from_numpy(inputs)[:, None])[:, 0].double().numpy()
    for prefix, split, rows in (("train", "train", slice(0, 3)), ("validation", "validation", slice(3, 6)), ("test", "test", slice(6, 8))):
        ssim, loss = _by_hand(outputs[rows], split)
        assert metrics[f"{prefix}/ssim"] == pytest.approx(ssim, abs=2e-5)
        assert metrics[f"{prefix}/loss"] == pytest.approx(loss, rel=1e-5)
    # One endless iterator per split, asked for whole eval batches, built once and reused.
    assert [(c["split"], c["global_batch_size"], c["repeat"], c["num_batches"], c["num_examples"]) for c in pipeline_calls] == [
        ("eval_train", 2, True, 2, 3), ("validation", 2, True, 2, 3), ("test", 2, True, 1, 2),
    ]
    assert all(c["dataset_dir"] == data_dir / "fastmri" for c in pipeline_calls)
    again = workload._eval_model_on_split("validation", 3, 2, model, None, prng.PRNGKey(2), str(data_dir))
    assert len(pipeline_calls) == 3 and again["ssim"] == pytest.approx(metrics["validation/ssim"], abs=1e-6)


def test_train_batches_are_endless_float32_tensors_on_the_device(pipeline_calls, data_dir):
    workload = get_workload("fastmri_tanh")
    batches = workload._build_input_queue(prng.PRNGKey(7), "train", str(data_dir), 2)
    first = [next(batches) for _ in range(2)]  # 3 slices, batches of 2 without the remainder: the stream restarts
    assert set(first[0]) == {"inputs", "targets", "mean", "std", "volume_max"}
    assert first[0]["inputs"].shape == (2, SIZE, SIZE) and first[0]["mean"].shape == (2,)
    torch.testing.assert_close(first[1]["inputs"], first[0]["inputs"])
    assert all(t.dtype == torch.float32 and t.device.type == "cpu" for t in first[0].values())
    assert pipeline_calls[0]["split"] == "train" and pipeline_calls[0]["repeat"] is True
    assert pipeline_calls[0]["seed"] == int(prng.PRNGKey(7)[0])
    assert (pipeline_calls[0]["shard"], pipeline_calls[0]["num_shards"]) == (0, 1)  # one process: whole batches

