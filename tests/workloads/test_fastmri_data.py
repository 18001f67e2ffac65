"""fastMRI data path: real-anatomy volumes in the official HDF5 layout -> prepared data dir -> batches."""

from __future__ import annotations

import json
import os
import shutil
import tarfile

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")

from workloads.base import DataProblem  # noqa: E402
from workloads.data_manifest import check_manifest  # noqa: E402
from workloads.fastmri import input_pipeline, prepare, sample_data  # noqa: E402
from workloads.fastmri.input_pipeline import REFERENCE_COUNTS, Volume  # noqa: E402

needs_scan = pytest.mark.skipif(
    not sample_data.scan_available(),
    reason=f"needs the real MRI scan {sample_data.SCAN_PATH}: {sample_data.INSTALL_HINT} (and pip install nibabel)",
)


def _prepare(raw_dir, data_dir, *extra):
    return prepare.main(["--data-dir", str(data_dir), "--raw-dir", str(raw_dir), *extra])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """3 training volumes of 2 slices; 4 val volumes of 2 slices (2 validation, 2 test), from unpacked folders."""
    if not sample_data.scan_available():
        pytest.skip(f"needs the real MRI scan: {sample_data.INSTALL_HINT}")
    root = tmp_path_factory.mktemp("fastmri")
    sample_data.write_raw_dir(root / "raw", train_volumes=3, val_volumes=4, slices=2, unpacked=True)
    assert _prepare(root / "raw", root / "data", "--subset") == 0
    return root


def _dataset(prepared):
    return prepared / "data" / "fastmri"


def _batches(prepared, split, batch_size, count=None, **kwargs):
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("repeat", split == "train")
    iterator = input_pipeline.numpy_batches(_dataset(prepared), split, batch_size, **kwargs)
    return list(iterator) if count is None else [next(iterator) for _ in range(count)]


def _slice(dataset_dir, volume: Volume, index):
    with h5py.File(dataset_dir / volume.path, "r") as handle:
        return handle["kspace"][index], handle["reconstruction_esc"][index], float(handle.attrs["max"])


def _hand_computed(kspace, target, keep):
    """The reference's recipe, written out with numpy's full 2-D transforms."""
    height, width = kspace.shape
    image = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace * keep[None, :]))) * np.sqrt(height * width)
    top, left = (height - 320) // 2, (width - 320) // 2
    magnitude = np.abs(image[top : top + 320, left : left + 320])
    mean, std = magnitude.mean(), magnitude.std()
    return np.clip((magnitude - mean) / std, -6, 6), np.clip((target - mean) / std, -6, 6), mean, std


# --- raw files and preparation ----------------------------------------------------------------------


@needs_scan
def test_official_archives_round_trip_through_preparation_to_batches(tmp_path, capsys):
    raw = sample_data.write_raw_dir(tmp_path / "raw", train_volumes=2, val_volumes=2, slices=1)
    assert sorted(path.name for path in raw.iterdir()) == ["knee_singlecoil_train.tar.xz", "knee_singlecoil_val.tar.xz"]
    with tarfile.open(raw / "knee_singlecoil_val.tar.xz") as tar:
        assert sorted(tar.getnames()) == ["singlecoil_val", "singlecoil_val/file1000000.h5", "singlecoil_val/file1000002.h5"]
    assert _prepare(raw, tmp_path / "data", "--subset") == 0
    dataset_dir = tmp_path / "data" / "fastmri"
    with h5py.File(dataset_dir / "knee_singlecoil_train" / "file1000001.h5", "r") as handle:
        kspace, target = handle["kspace"][()], handle["reconstruction_esc"][()]
        assert kspace.dtype == np.complex64 and kspace.shape == (1, 640, 368)
        assert target.dtype == np.float32 and target.shape == (1, 320, 320)
        assert handle.attrs["max"] == pytest.approx(target.max()) and handle.attrs["norm"] == pytest.approx(np.linalg.norm(target))
        assert handle.attrs["acquisition"] == "CORPD_FBK" and len(handle.attrs["patient_id"]) == 64
        assert b"<matrixSize><x>640</x><y>368</y>" in handle["ismrmrd_header"][()]
    # The target is the fully sampled k-space's reconstruction, as in the real files.
    full = np.abs(np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace[0]), norm="ortho"))[160:480, 24:344])
    np.testing.assert_allclose(full, target[0], rtol=0, atol=1e-6 * target.max())
    manifest = json.loads((dataset_dir / "manifest.json").read_text())
    assert manifest["subset"] is True and manifest["counts"] == {"train": 2, "validation": 1, "test": 1}
    batch = next(input_pipeline.numpy_batches(dataset_dir, "train", 2, seed=0, repeat=True))
    assert {key: value.shape for key, value in batch.items()} == {
        "inputs": (2, 320, 320), "targets": (2, 320, 320), "mean": (2,), "std": (2,), "volume_max": (2,)}
    assert all(value.dtype == np.float32 for value in batch.values())
    # A rerun keeps the finished volumes and lands the same manifest.
    assert _prepare(raw, tmp_path / "data", "--subset") == 0
    assert json.loads((dataset_dir / "manifest.json").read_text())["files"] == manifest["files"]

    # A truncated archive is named; what it gave so far stays, and a rerun goes back to the archive.
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    shutil.copy(raw / "knee_singlecoil_train.tar.xz", damaged)
    data = (raw / "knee_singlecoil_val.tar.xz").read_bytes()
    (damaged / "knee_singlecoil_val.tar.xz").write_bytes(data[: len(data) * 2 // 3])
    capsys.readouterr()
    assert _prepare(damaged, tmp_path / "data2", "--subset") == 1
    assert "knee_singlecoil_val.tar.xz is truncated or damaged" in capsys.readouterr().err
    assert not (tmp_path / "data2" / "fastmri" / "manifest.json").exists()
    assert (tmp_path / "data2" / "fastmri" / "knee_singlecoil_val.unpacking").exists()
    shutil.copy(raw / "knee_singlecoil_val.tar.xz", damaged)
    assert _prepare(damaged, tmp_path / "data2", "--subset") == 0


def test_counts_splits_and_manifest(prepared):
    dataset_dir = _dataset(prepared)
    manifest = json.loads((dataset_dir / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 6, "validation": 4, "test": 4}
    index = input_pipeline.read_index(dataset_dir)
    # The first half of the sorted val volumes is validation (a subset of at most 100 val volumes).
    assert [v.path for v in index["validation"]] == ["knee_singlecoil_val/file1000000.h5", "knee_singlecoil_val/file1000002.h5"]
    assert [v.path for v in index["test"]] == ["knee_singlecoil_val/file1000004.h5", "knee_singlecoil_val/file1000006.h5"]
    assert [v.width for v in index["train"]] == [368, 372, 356]
    assert set(manifest["files"]) == {"volumes.json"} | {v.path for split in ("train", "validation", "test") for v in index[split]}
    assert check_manifest(dataset_dir, prepare.preparation_command("DATA"), REFERENCE_COUNTS).ready
    # Volumes are hard-linked from an unpacked folder, not copied.
    assert os.path.samefile(dataset_dir / "knee_singlecoil_train" / "file1000001.h5", prepared / "raw" / "singlecoil_train" / "file1000001.h5")


def test_a_data_dir_unpacked_by_the_reference_setup_is_used_in_place(prepared, tmp_path):
    dataset_dir = tmp_path / "fastmri"
    for part in ("train", "val"):
        shutil.copytree(prepared / "raw" / f"singlecoil_{part}", dataset_dir / f"knee_singlecoil_{part}")
    before = (dataset_dir / "knee_singlecoil_val" / "file1000000.h5").stat().st_ino
    assert prepare.main(["--data-dir", str(tmp_path), "--subset"]) == 0  # --raw-dir defaults to DATA_DIR/fastmri
    assert (dataset_dir / "knee_singlecoil_val" / "file1000000.h5").stat().st_ino == before
    assert json.loads((dataset_dir / "manifest.json").read_text())["counts"] == {"train": 6, "validation": 4, "test": 4}


def test_the_references_split_rule_and_counts():
    def volumes(folder, count, slices=30):
        return [Volume(f"{folder}/file{1_000_000 + i}.h5", slices, 368) for i in range(count)]

    full = prepare.make_splits(volumes("knee_singlecoil_train", 973), volumes("knee_singlecoil_val", 199)[::-1], subset=False)
    assert (len(full["validation"]), len(full["test"])) == (100, 99)
    assert full["validation"][0].path.endswith("file1000000.h5") and full["test"][0].path.endswith("file1000100.h5")
    with pytest.raises(prepare.PreparationError, match="the reference has"):
        prepare.split_counts(full, subset=False)  # 30 slices a volume is not the release
    big_subset = prepare.make_splits(volumes("t", 2), volumes("v", 120), subset=True)
    assert (len(big_subset["validation"]), len(big_subset["test"])) == (100, 20)
    small_subset = prepare.make_splits(volumes("t", 2), volumes("v", 5), subset=True)
    assert (len(small_subset["validation"]), len(small_subset["test"])) == (3, 2)
    with pytest.raises(prepare.PreparationError, match="found 2 training and 5 val volumes; the release has 973 and 199"):
        prepare.make_splits(volumes("t", 2), volumes("v", 5), subset=False)


def test_a_small_set_needs_subset(prepared, tmp_path, capsys):
    assert _prepare(prepared / "raw", tmp_path / "data") == 1
    assert "found 3 training and 4 val volumes; the release has 973 and 199" in capsys.readouterr().err
    assert not (tmp_path / "data" / "fastmri" / "manifest.json").exists()


@needs_scan
def test_damaged_volumes_are_named_one_by_one(tmp_path, capsys):
    raw = sample_data.write_raw_dir(tmp_path / "raw", train_volumes=1, val_volumes=3, slices=1, unpacked=True)
    train_file = raw / "singlecoil_train" / "file1000001.h5"
    intact = train_file.read_bytes()
    train_file.write_bytes(intact[: len(intact) // 2])
    (raw / "singlecoil_val" / "file1000000.h5").write_bytes(b"not an HDF5 file")
    with h5py.File(raw / "singlecoil_val" / "file1000002.h5", "a") as handle:
        del handle["reconstruction_esc"]
    assert _prepare(raw, tmp_path / "data", "--subset") == 1
    err = capsys.readouterr().err
    assert "1 of 1 knee_singlecoil_train volumes are damaged" in err
    assert "knee_singlecoil_train/file1000001.h5: cannot be read as HDF5" in err
    assert not (tmp_path / "data" / "fastmri" / "manifest.json").exists()
    train_file.write_bytes(intact)
    assert _prepare(raw, tmp_path / "data", "--subset") == 1
    err = capsys.readouterr().err
    assert "2 of 3 knee_singlecoil_val volumes are damaged" in err
    assert "knee_singlecoil_val/file1000000.h5: cannot be read as HDF5" in err
    assert "knee_singlecoil_val/file1000002.h5: no 'reconstruction_esc' dataset" in err

    # A prepared file cut short afterwards is caught by the manifest's sizes.
    data = tmp_path / "copy"
    shutil.copytree(raw / "singlecoil_train", data / "singlecoil_train")
    sample_data.write_split(data / "singlecoil_val", "val", 2, 1, seed=0, volume_offset=1, total=3)
    assert _prepare(data, tmp_path / "data3", "--subset", "--copy") == 0
    victim = tmp_path / "data3" / "fastmri" / "knee_singlecoil_val" / "file1000002.h5"
    with open(victim, "r+b") as handle:
        handle.truncate(1000)
    status = check_manifest(tmp_path / "data3" / "fastmri", prepare.preparation_command("DATA"), REFERENCE_COUNTS)
    assert not status.ready and "file1000002.h5 has 1000 bytes" in status.reason


def test_missing_data_points_to_the_preparation_command(tmp_path, capsys):
    status = check_manifest(tmp_path / "fastmri", prepare.preparation_command(str(tmp_path)), REFERENCE_COUNTS)
    assert status.missing and f"python -m workloads.fastmri.prepare --data-dir {tmp_path}" in status.reason
    with pytest.raises(DataProblem, match="never prepared; run: python -m workloads.fastmri.prepare"):
        input_pipeline.numpy_batches(tmp_path / "fastmri", "train", 4, seed=0, repeat=True)
    (tmp_path / "raw").mkdir()
    assert _prepare(tmp_path / "raw", tmp_path / "data", "--subset") == 1
    err = capsys.readouterr().err
    assert "neither knee_singlecoil_train.tar.xz nor an unpacked singlecoil_train/" in err and "fastmri.med.nyu.edu" in err
    with pytest.raises(sample_data.MissingScanError, match="apt-get install mricron-data"):
        sample_data.load_scan(tmp_path / "ch2better.nii.gz")


# --- masks ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("width", [320, 356, 368, 372, 640])
def test_masks_keep_the_centre_and_a_quarter_of_the_columns(width):
    low = int(np.float32(width) * np.float32(0.08))
    start = (width - low + 1) // 2
    masks = np.stack([input_pipeline.draw_mask(width, (seed, 0, 7)) for seed in range(2_000)])
    assert masks[:, start : start + low].all()
    assert input_pipeline.keep_probability(width) == pytest.approx((width / 4 - low) / (width - low), rel=1e-6)
    outside = np.delete(masks, np.arange(start, start + low), axis=1)
    assert outside.mean() == pytest.approx(input_pipeline.keep_probability(width), abs=0.005)
    assert masks.mean() == pytest.approx(0.25, abs=0.005)  # acceleration 4


def test_the_centre_is_eight_percent_of_the_columns_rounded_down():
    assert [input_pipeline.num_low_frequencies(width) for width in (320, 368, 372, 640)] == [25, 29, 29, 51]


def test_masks_repeat_per_example_across_epochs_and_are_fixed_in_eval(prepared):
    dataset_dir = _dataset(prepared)
    index = input_pipeline.read_index(dataset_dir)
    order = input_pipeline.interleave_order([v.slices for v in index["train"]])
    seen = {}
    for batch in _batches(prepared, "train", 3, count=6, seed=11):  # 3 passes over 6 training slices
        for row in range(3):
            # With one mask per example, a slice's normalised target is the same bytes every pass.
            key = hash(batch["targets"][row].tobytes())
            seen.setdefault(key, []).append(batch["inputs"][row])
    assert len(seen) == 6 and all(len(inputs) == 3 for inputs in seen.values())
    assert all(np.array_equal(inputs[0], other) for inputs in seen.values() for other in inputs[1:])
    # The mask of example e is the one seeded by (data seed, e), e its place in the interleaved order.
    for example in range(6):
        kspace, target, _ = _slice(dataset_dir, index["train"][order[example][0]], order[example][1])
        keep = input_pipeline.draw_mask(kspace.shape[1], input_pipeline.mask_seed_words("train", 11, example))
        expected, _, _, _ = _hand_computed(kspace, target, keep)
        matches = [np.abs(inputs[0] - expected).max() < 1e-4 for inputs in seen.values()]
        assert sum(matches) == 1
    # Another data seed, other masks.
    assert not np.array_equal(*(input_pipeline.draw_mask(368, input_pipeline.mask_seed_words("train", seed, 0)) for seed in (11, 12)))
    # Validation: one fixed mask per width, whatever the data seed.
    a = _batches(prepared, "validation", 4, seed=1)[0]
    b = _batches(prepared, "validation", 4, seed=2)[0]
    np.testing.assert_array_equal(a["inputs"], b["inputs"])
    volume = index["validation"][1]
    kspace, target, volume_max = _slice(dataset_dir, volume, 1)
    keep = input_pipeline.draw_mask(volume.width, input_pipeline.mask_seed_words("validation", 0, 0))
    expected_inputs, expected_targets, mean, std = _hand_computed(kspace, target, keep)
    np.testing.assert_allclose(a["inputs"][3], expected_inputs, atol=1e-4)
    np.testing.assert_allclose(a["targets"][3], expected_targets, atol=1e-4)
    assert (a["mean"][3], a["std"][3], a["volume_max"][3]) == pytest.approx((mean, std, volume_max), rel=1e-5)


# --- reconstruction -------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(640, 368), (640, 372), (640, 369), (641, 333)])
def test_fft_crop_and_normalisation_match_a_hand_computation(shape):
    rng = np.random.default_rng(sum(shape))
    kspace = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    target = rng.gamma(2.0, 0.5, size=(320, 320)).astype(np.float32)
    target[0, :5] = 1e3  # far outside [-6, 6] once normalised
    keep = input_pipeline.draw_mask(shape[1], (5, 0, 1))
    inputs, targets = np.empty((320, 320), np.float32), np.empty((320, 320), np.float32)
    mean, std = input_pipeline.process_slice(kspace, target, keep, inputs, targets)
    expected_inputs, expected_targets, expected_mean, expected_std = _hand_computed(kspace, target, keep)
    assert (mean, std) == pytest.approx((expected_mean, expected_std), rel=1e-5)
    np.testing.assert_allclose(inputs, expected_inputs, atol=2e-5)
    np.testing.assert_allclose(targets, expected_targets, atol=2e-5)
    assert targets[0, :5].tolist() == [6.0] * 5 and inputs.min() >= -6 and inputs.max() <= 6


# --- order, batching, padding ------------------------------------------------------------------------


def test_interleave_order_is_tf_datas():
    order = input_pipeline.interleave_order([3, 70, 2], cycle_length=2, block_length=64)
    expected = [(0, i) for i in range(3)] + [(1, i) for i in range(64)] + [(2, 0), (2, 1)] + [(1, i) for i in range(64, 70)]
    assert [tuple(pair) for pair in order] == expected
    # Knee volumes have fewer than 64 slices: they are read one after another.
    sequential = input_pipeline.interleave_order([35, 40, 38])
    assert [tuple(pair) for pair in sequential] == [(v, i) for v, n in enumerate([35, 40, 38]) for i in range(n)]


def test_shuffle_buffer_and_training_plan():
    rng = np.random.default_rng(0)
    order = input_pipeline.shuffle_buffer_order(1_000, 64, rng)
    assert sorted(order) == list(range(1_000))
    assert all(order < np.arange(1_000) + 64)  # an example waits in the buffer; it never comes early
    assert list(input_pipeline.shuffle_buffer_order(10, 1, rng)) == list(range(10))
    one_pass = list(input_pipeline.train_plan(7, 3, seed=0, repeat=False))
    assert len(one_pass) == 2  # drop_remainder
    chained = list(zip(range(7), input_pipeline.train_plan(7, 3, seed=0, repeat=True)))
    stream = np.concatenate([indices for _, indices in chained])
    assert sorted(stream[:7]) == list(range(7)) and sorted(stream[7:14]) == list(range(7))
    assert not np.array_equal(stream[:7], stream[7:14])  # each pass reshuffled
    assert np.array_equal(stream, np.concatenate([b for _, b in zip(range(7), input_pipeline.train_plan(7, 3, 0, True))]))


def test_train_order_is_fixed_by_the_seed(prepared):
    def fingerprint(batches):
        return [batch["targets"][:, 160, 160].tobytes() for batch in batches]

    first = _batches(prepared, "train", 2, count=6, seed=3)
    assert all(set(batch) == {"inputs", "targets", "mean", "std", "volume_max"} for batch in first)
    assert fingerprint(first) == fingerprint(_batches(prepared, "train", 2, count=6, seed=3, num_threads=1))
    assert fingerprint(first) != fingerprint(_batches(prepared, "train", 2, count=6, seed=4))
    targets = np.concatenate([batch["targets"][:, 160, 160] for batch in first[:3]])
    assert len(set(targets.tolist())) == 6  # one pass holds every training slice once


def test_eval_batches_are_padded_with_zero_weights(prepared):
    batches = _batches(prepared, "validation", 3)
    assert [batch["weights"].tolist() for batch in batches] == [[1, 1, 1], [1, 0, 0]]
    assert all(batch["weights"].dtype == np.float32 for batch in batches)
    last = batches[1]
    for key in ("inputs", "targets", "mean", "std", "volume_max"):
        assert not last[key][1:].any()
    assert last["std"][0] > 0
    capped = _batches(prepared, "test", 3, num_examples=2)
    assert [batch["weights"].tolist() for batch in capped] == [[1, 1, 0]]
    assert len(_batches(prepared, "test", 1, num_batches=2)) == 2
    eval_train = _batches(prepared, "eval_train", 4, num_examples=5, seed=9)
    assert [batch["weights"].tolist() for batch in eval_train] == [[1, 1, 1, 1], [1, 0, 0, 0]]
    # Repeated eval splits give the same batches pass after pass, cached or recomputed.
    for cache in (True, False):
        repeated = input_pipeline.numpy_batches(_dataset(prepared), "validation", 3, seed=0, repeat=True, cache=cache)
        passes = [next(repeated) for _ in range(6)]
        for a, b in zip(passes[:2], passes[2:4]):
            np.testing.assert_array_equal(a["inputs"], b["inputs"])
        np.testing.assert_array_equal(passes[1]["inputs"], batches[1]["inputs"])


def test_shards_are_blocks_of_the_global_batch(prepared):
    whole = _batches(prepared, "validation", 4)[0]
    for shard in range(2):
        part = _batches(prepared, "validation", 4, shard=shard, num_shards=2)[0]
        for key, value in part.items():
            np.testing.assert_array_equal(value, whole[key][2 * shard : 2 * shard + 2])
    with pytest.raises(ValueError, match="does not divide into 3 shards"):
        _batches(prepared, "validation", 4, num_shards=3)


@needs_scan
def test_smoke_data_is_prepared_through_the_real_path(tmp_path):
    from workloads.smoke_data import prepare_smoke_data

    prepare_smoke_data("fastmri", tmp_path)
    manifest = json.loads((tmp_path / "fastmri" / "manifest.json").read_text())
    assert manifest["subset"] and manifest["counts"] == {"train": 4, "validation": 2, "test": 2}
