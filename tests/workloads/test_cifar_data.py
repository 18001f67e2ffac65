"""CIFAR-10 data path: an archive in the official python-pickle format (small) -> prepared dir -> transforms -> batches.

The images are foolbox's 20 real CIFAR-10 images with their real labels (workloads/cifar/sample_data.py),
pickled exactly as the official release is and tarred like `cifar-10-python.tar.gz`.
"""

from __future__ import annotations

import functools
import pickle
import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
from PIL import Image  # noqa: E402

from workloads.cifar import input_pipeline, prepare, sample_data  # noqa: E402
from workloads.data_manifest import check_manifest, subset_counts  # noqa: E402
from workloads.parallel import World  # noqa: E402

PER_TRAIN_FILE, NUM_TEST = 4, 6  # 20 training images -> 18 train + 2 validation (last 10%)
NUM_TRAIN_IMAGES = PER_TRAIN_FILE * len(input_pipeline.TRAIN_FILES)
CPU = torch.device("cpu")
write_archive = sample_data.write_archive


@functools.lru_cache(maxsize=1)
def _labels() -> list:
    """The sample images' real classes, in file order (train files, then test_batch)."""
    return sample_data.release_files(PER_TRAIN_FILE, NUM_TEST)[2].tolist()


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    try:
        files, images, _ = sample_data.release_files(PER_TRAIN_FILE, NUM_TEST)
    except sample_data.SampleImagesMissing as missing:
        pytest.skip(str(missing))
    write_archive(root / "raw", files)
    assert prepare.main(["--data-dir", str(root / "data"), "--raw-dir", str(root / "raw"), "--subset"]) == 0
    return root / "data" / "cifar", images, files


def _world(rank: int = 0, ranks: int = 1) -> World:
    return World(use_ddp=ranks > 1, rank=rank, device=CPU, num_devices=ranks)


def _normalised(images: np.ndarray) -> torch.Tensor:
    mean = torch.tensor(input_pipeline.TRAIN_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(input_pipeline.TRAIN_STDDEV).view(1, 3, 1, 1)
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0 - mean) / std


def _source_rows(inputs: torch.Tensor, candidates: torch.Tensor) -> list:
    """Which candidate image each eval-transformed row is."""
    distances = ((inputs[:, None] - candidates[None]) ** 2).flatten(2).sum(-1)
    assert torch.all(distances.min(1).values < 1e-6)
    return distances.argmin(1).tolist()


# --- preparation ----------------------------------------------------------------------------------


def test_prepare_writes_torchvision_layout_and_manifest(prepared):
    dataset_dir, _, files = prepared
    for name, data in files.items():
        assert (dataset_dir / input_pipeline.BATCHES_DIR / name).read_bytes() == data  # copied byte for byte
    assert check_manifest(dataset_dir, "prepare", input_pipeline.REFERENCE_COUNTS).ready
    assert subset_counts(dataset_dir) == {"train": 18, "validation": 2, "test": NUM_TEST}


def test_torchvision_cifar10_reads_the_prepared_dir(prepared, monkeypatch):
    from torchvision.datasets import CIFAR10, cifar

    dataset_dir, images, _ = prepared
    # torchvision checks the official files' MD5s, which a subset cannot match; the format is what is tested.
    monkeypatch.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)
    train = CIFAR10(root=str(dataset_dir), train=True, download=False)
    test = CIFAR10(root=str(dataset_dir), train=False, download=False)
    np.testing.assert_array_equal(train.data, images[:NUM_TRAIN_IMAGES])
    np.testing.assert_array_equal(test.data, images[NUM_TRAIN_IMAGES:])
    assert train.targets == _labels()[:NUM_TRAIN_IMAGES] and train.classes == sample_data.LABEL_NAMES
    ours, labels = input_pipeline.read_batches(dataset_dir / input_pipeline.BATCHES_DIR, input_pipeline.TRAIN_FILES)
    np.testing.assert_array_equal(ours, train.data)
    assert labels.tolist() == train.targets


def test_prepare_reads_the_unpacked_folder_and_full_mode_names_the_counts(prepared, tmp_path, capsys):
    _, _, files = prepared
    folder = tmp_path / "raw" / input_pipeline.BATCHES_DIR
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    assert prepare.main(["--data-dir", str(tmp_path / "a"), "--raw-dir", str(tmp_path / "raw"), "--subset"]) == 0
    assert (tmp_path / "a" / "cifar" / "manifest.json").is_file()
    with pytest.raises(SystemExit, match="found 20 training and 6 test images, expected 50,000 and 10,000"):
        prepare.main(["--data-dir", str(tmp_path / "b"), "--raw-dir", str(tmp_path / "raw")])
    assert not (tmp_path / "b" / "cifar" / "manifest.json").exists()


@pytest.mark.parametrize(
    "damage, message",
    [
        ({"data_batch_3": pickle.dumps({"data": np.zeros((2, 3072), np.uint8)})}, "data_batch_3 has keys"),
        ({"test_batch": pickle.dumps({"data": np.zeros((2, 1024), np.uint8), "labels": [0, 1]})}, r"expected uint8 \(N, 3072\)"),
        ({"data_batch_1": b"not a pickle"}, "data_batch_1 does not unpickle"),
        ({"data_batch_2": pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]})}, "labels outside"),
    ],
)
def test_damaged_batches_are_named(prepared, tmp_path, damage, message):
    _, _, files = prepared
    write_archive(tmp_path / "raw", {**files, **damage})
    with pytest.raises(SystemExit, match=message):
        prepare.main(["--data-dir", str(tmp_path / "data"), "--raw-dir", str(tmp_path / "raw"), "--subset"])


def test_missing_archive_member_and_missing_raw_are_named(prepared, tmp_path):
    _, _, files = prepared
    write_archive(tmp_path / "raw", {k: v for k, v in files.items() if k != "data_batch_5"})
    with pytest.raises(SystemExit, match="lacks cifar-10-batches-py/data_batch_5"):
        prepare.main(["--data-dir", str(tmp_path / "data"), "--raw-dir", str(tmp_path / "raw"), "--subset"])
    with pytest.raises(SystemExit, match="neither cifar-10-python.tar.gz"):
        prepare.main(["--data-dir", str(tmp_path / "data"), "--raw-dir", str(tmp_path / "nothing"), "--subset"])


# --- splits and transforms ------------------------------------------------------------------------


def test_split_rule_last_tenth_of_train_is_validation(prepared):
    dataset_dir, images, _ = prepared
    assert prepare.split_counts(50_000, 10_000) == input_pipeline.REFERENCE_COUNTS
    assert input_pipeline.validation_size(20) == 2 and input_pipeline.validation_size(5) == 1
    train = input_pipeline.cifar_dataset(dataset_dir, "train")
    validation = input_pipeline.cifar_dataset(dataset_dir, "validation")
    test = input_pipeline.cifar_dataset(dataset_dir, "test")
    np.testing.assert_array_equal(train.images, images[:18])
    np.testing.assert_array_equal(validation.images, images[18:20])
    np.testing.assert_array_equal(test.images, images[20:])
    assert validation.labels.tolist() == _labels()[18:20] and len(test) == NUM_TEST


def test_transforms_follow_upstream_order_and_constants():
    from torchvision import transforms

    train = input_pipeline.train_transform().transforms
    assert [type(t) for t in train[:2]] == [transforms.RandomCrop, transforms.RandomHorizontalFlip]
    assert train[0].size == (32, 32) and train[0].padding == 4
    assert [type(t) for t in input_pipeline.eval_transform().transforms] == [transforms.ToTensor, transforms.Normalize]
    pixel = np.zeros((32, 32, 3), np.uint8)
    pixel[5, 7] = (255, 0, 128)
    out = input_pipeline.eval_transform()(Image.fromarray(pixel))
    assert out.dtype == torch.float32 and out.shape == (3, 32, 32)
    expected = [(1.0 - 0.49139968) / 0.24703233, (0.0 - 0.48215827) / 0.24348505, (128 / 255 - 0.44653124) / 0.26158768]
    assert out[:, 5, 7].tolist() == pytest.approx(expected, rel=1e-6)
    assert out[0, 0, 0].item() == pytest.approx(-0.49139968 / 0.24703233, rel=1e-6)


def test_train_transform_crops_from_zero_padding_and_flips():
    white = Image.fromarray(np.full((32, 32, 3), 255, np.uint8))
    torch.manual_seed(0)
    outs = torch.stack([input_pipeline.train_transform()(white) for _ in range(40)])
    assert outs.shape == (40, 3, 32, 32) and outs.dtype == torch.float32
    zero = torch.tensor([-m / s for m, s in zip(input_pipeline.TRAIN_MEAN, input_pipeline.TRAIN_STDDEV)]).view(1, 3, 1, 1)
    one = torch.tensor([(1 - m) / s for m, s in zip(input_pipeline.TRAIN_MEAN, input_pipeline.TRAIN_STDDEV)]).view(1, 3, 1, 1)
    padded = torch.isclose(outs, zero.expand_as(outs))
    assert torch.all(padded | torch.isclose(outs, one.expand_as(outs)))
    assert padded.flatten(1).any(1).sum() > 0  # some crops reach into the padding
    assert padded.flatten(1).sum(1).max() <= 3 * (32 * 32 - 28 * 28)  # at most 4 px of padding per side
    # Flip: an image bright only on its left half comes out mirrored in some draws.
    half = np.zeros((32, 32, 3), np.uint8)
    half[:, :16] = 255
    torch.manual_seed(1)
    transform = input_pipeline.train_transform()
    left_bright = []
    for _ in range(20):
        out = transform(Image.fromarray(half))
        left_bright.append(bool(out[0, :, :16].mean() > out[0, :, 16:].mean()))
    assert any(left_bright) and not all(left_bright)


# --- batches ----------------------------------------------------------------------------------------


def test_eval_batches_are_padded_with_zero_weights(prepared):
    dataset_dir, images, _ = prepared
    batches = list(input_pipeline.build_input_iterator(dataset_dir, "test", [0, 0], 4, _world(), repeat=False))
    assert len(batches) == 2
    for batch in batches:
        assert batch["inputs"].shape == (4, 3, 32, 32) and batch["inputs"].dtype == torch.float32
        assert batch["targets"].dtype == torch.int64
    assert batches[1]["weights"].tolist() == [1.0, 1.0, 0.0, 0.0]
    inputs = torch.cat([b["inputs"] for b in batches])[:NUM_TEST]
    torch.testing.assert_close(inputs, _normalised(images[20:]))
    assert torch.cat([b["targets"] for b in batches])[:NUM_TEST].tolist() == _labels()[20:26]
    assert torch.all(batches[1]["inputs"][2:] == 0) and batches[1]["targets"][2:].tolist() == [0, 0]


def test_eval_is_sharded_rank_strided_under_ddp(prepared):
    dataset_dir, images, _ = prepared
    seen = {}
    for rank in range(2):
        batches = list(input_pipeline.build_input_iterator(dataset_dir, "test", [0, 0], 4, _world(rank, 2), repeat=False))
        assert len(batches) == 2 and all(b["inputs"].shape == (2, 3, 32, 32) for b in batches)
        weights = torch.cat([b["weights"] for b in batches]).bool()
        inputs = torch.cat([b["inputs"] for b in batches])[weights]
        seen[rank] = _source_rows(inputs, _normalised(images[20:]))
    assert seen == {0: [0, 2, 4], 1: [1, 3, 5]}


def test_eval_train_follows_the_upstream_rule(prepared):
    dataset_dir, images, _ = prepared
    batches = list(input_pipeline.build_input_iterator(dataset_dir, "eval_train", [7, 1], 6, _world(), repeat=False))
    rows = _source_rows(torch.cat([b["inputs"] for b in batches]), _normalised(images[:18]))
    expected = list(range(18))
    random.Random(7).shuffle(expected)
    assert rows == expected


def test_train_batches_reshuffle_each_epoch_and_split_across_ranks(prepared):
    dataset_dir, images, _ = prepared
    candidates = _normalised(images[:18])
    eval_like = input_pipeline.eval_transform()  # deterministic pixels, so rows can be traced to their images

    def epochs(world, seed, count=2):
        iterator = input_pipeline.build_input_iterator(dataset_dir, "train", [seed, 0], 6, world, transform=eval_like)
        per_epoch = 18 // 6 if not world.use_ddp else 18 // 2 // 3
        out = []
        for _ in range(count):
            batch_rows = []
            for _ in range(per_epoch):
                batch = next(iterator)
                assert set(batch) == {"inputs", "targets"} and batch["targets"].dtype == torch.int64
                batch_rows += _source_rows(batch["inputs"], candidates)
            out.append(batch_rows)
        return out

    first, second = epochs(_world(), seed=3)
    assert sorted(first) == sorted(second) == list(range(18)) and first != second
    assert epochs(_world(), seed=3) == [first, second]
    assert epochs(_world(), seed=4)[0] != first
    rank0, rank1 = epochs(_world(0, 2), 3, 1)[0], epochs(_world(1, 2), 3, 1)[0]
    assert len(rank0) == len(rank1) == 9 and sorted(rank0 + rank1) == list(range(18))
    std_train = input_pipeline.build_input_iterator(dataset_dir, "train", [3, 0], 6, _world())
    assert next(std_train)["inputs"].shape == (6, 3, 32, 32)
