"""ImageNet data path: the official raw archives (small) -> prepared ImageFolder dirs -> transforms -> batches.

The images are foolbox's 20 real ImageNet photographs (512 x 512 JPEGs, workloads/imagenet/sample_data.py).
"""

from __future__ import annotations

import io
import json
import math
import random
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
from PIL import Image  # noqa: E402

from workloads.data_manifest import check_manifest, subset_counts  # noqa: E402
from workloads.imagenet import input_pipeline, prepare, sample_data, transforms  # noqa: E402
from workloads.parallel import World  # noqa: E402

WNIDS = ["n01440764", "n01443537", "n01484850", "n01491361"]
TRAIN_PER_CLASS, NUM_VAL, V2_PER_CLASS = 3, 8, 2
CPU = torch.device("cpu")


def _source_jpegs() -> list:
    """JPEG bytes of foolbox's 20 real ImageNet photographs (their classes are reassigned by the layout below)."""
    try:
        return [data for data, _ in sample_data.real_jpegs()]
    except sample_data.SampleImagesMissing as missing:
        pytest.skip(str(missing))


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_raw_dir(raw: Path, labels: str = "text") -> dict:
    """The official layout: a train tar of class tars, a flat val tar + labels, the ImageNet-v2 archive."""
    raw.mkdir(parents=True)
    images = _source_jpegs()
    pick = iter(range(10_000))
    image = lambda: images[next(pick) % len(images)]  # noqa: E731
    with tarfile.open(raw / prepare.TRAIN_TAR, "w") as outer:
        for wnid in WNIDS:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as inner:
                for j in range(TRAIN_PER_CLASS):
                    _add(inner, f"{wnid}_{j + 1}.JPEG", image())
            _add(outer, f"{wnid}.tar", buffer.getvalue())
    val_wnids = [WNIDS[i % len(WNIDS)] for i in range(NUM_VAL)]
    with tarfile.open(raw / prepare.VAL_TAR, "w") as tar:
        for i in range(NUM_VAL):
            _add(tar, f"ILSVRC2012_val_{i + 1:08d}.JPEG", image())
    if labels == "text":
        (raw / prepare.VAL_LABELS).write_text("".join(f"ILSVRC2012_val_{i + 1:08d}.JPEG {w}\n" for i, w in enumerate(val_wnids)))
    else:
        sample_data.write_devkit(raw / prepare.DEVKIT, val_wnids)
    with tarfile.open(raw / prepare.V2_ARCHIVE, "w:gz") as tar:
        for k in range(len(WNIDS)):
            for j in range(V2_PER_CLASS):
                _add(tar, f"{prepare.V2_UNPACKED}/{k}/{k:03d}{j}.jpeg", image())
    return {"val_wnids": val_wnids}


def _prepare(raw, data, *extra) -> int:
    return prepare.main(["--data-dir", str(data), "--raw-dir", str(raw), *extra])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    info = write_raw_dir(root / "raw")
    assert _prepare(root / "raw", root / "data", "--subset") == 0
    return root / "data" / "imagenet", info


# --- preparation ----------------------------------------------------------------------------------


def test_prepare_writes_imagefolder_layout_and_manifest(prepared):
    dataset_dir, info = prepared
    assert sorted(p.name for p in (dataset_dir / "train").iterdir()) == WNIDS
    assert all(len(list((dataset_dir / "train" / w).glob("*.JPEG"))) == TRAIN_PER_CLASS for w in WNIDS)
    for i, wnid in enumerate(info["val_wnids"]):
        assert (dataset_dir / "val" / wnid / f"ILSVRC2012_val_{i + 1:08d}.JPEG").is_file()
    assert sorted(int(p.name) for p in (dataset_dir / "imagenet_v2").iterdir()) == [0, 1, 2, 3]
    counts = {"train": len(WNIDS) * TRAIN_PER_CLASS, "validation": NUM_VAL, "test": len(WNIDS) * V2_PER_CLASS}
    assert subset_counts(dataset_dir) == counts
    assert check_manifest(dataset_dir, "prepare", input_pipeline.REFERENCE_COUNTS).ready
    index = json.loads((dataset_dir / prepare.INDEX_NAME).read_text())
    assert index["per_class"]["train"] == {w: TRAIN_PER_CLASS for w in WNIDS}
    assert not list(dataset_dir.rglob("*.partial"))


def test_prepare_without_subset_names_the_count_mismatch(prepared, tmp_path, capsys):
    dataset_dir, _ = prepared
    raw = tmp_path / "raw"
    write_raw_dir(raw)
    assert _prepare(raw, tmp_path / "data") == 1
    err = capsys.readouterr().err
    assert "1,281,167" in err and "--subset" in err
    assert not (tmp_path / "data" / "imagenet" / "manifest.json").exists()


def test_prepare_reads_devkit_labels_and_rerun_keeps_finished_classes(tmp_path):
    raw = tmp_path / "raw"
    info = write_raw_dir(raw, labels="devkit")
    assert _prepare(raw, tmp_path / "data", "--subset") == 0
    val = tmp_path / "data" / "imagenet" / "val"
    for i, wnid in enumerate(info["val_wnids"]):
        assert (val / wnid / f"ILSVRC2012_val_{i + 1:08d}.JPEG").is_file()
    marker = tmp_path / "data" / "imagenet" / "train" / WNIDS[0] / "kept"
    marker.write_bytes(b"")  # a finished class is not unpacked again
    train = tmp_path / "data" / "imagenet" / "train"
    shutil.rmtree(train / WNIDS[1])  # as if interrupted while unpacking this class
    (train / f"{WNIDS[1]}.partial").mkdir()
    (train / f"{WNIDS[1]}.partial" / "half.JPEG").write_bytes(b"\xff\xd8")
    assert _prepare(raw, tmp_path / "data", "--subset") == 0
    assert marker.exists() and (tmp_path / "data" / "imagenet" / "manifest.json").is_file()
    assert sorted(p.name for p in train.iterdir()) == WNIDS
    assert len(list((train / WNIDS[1]).iterdir())) == TRAIN_PER_CLASS


def test_corrupt_archives_are_named(tmp_path, capsys):
    raw = tmp_path / "raw"
    write_raw_dir(raw)
    val_tar = raw / prepare.VAL_TAR
    val_tar.write_bytes(val_tar.read_bytes()[: val_tar.stat().st_size // 2])  # cut short mid-member
    assert _prepare(raw, tmp_path / "data", "--subset") == 1
    err = capsys.readouterr().err
    assert prepare.VAL_TAR in err and "download" in err
    assert not (tmp_path / "data" / "imagenet" / "manifest.json").exists()

    with tarfile.open(raw / prepare.TRAIN_TAR, "w") as outer:  # a class tar that is not a tar
        _add(outer, f"{WNIDS[0]}.tar", b"\x00garbage" * 100)
    assert _prepare(raw, tmp_path / "data2", "--subset") == 1
    err = capsys.readouterr().err
    assert prepare.TRAIN_TAR in err and f"{WNIDS[0]}.tar" in err


# --- transforms -----------------------------------------------------------------------------------


def _known_image(height=300, width=457) -> Image.Image:
    rows = np.arange(height)[:, None, None]
    cols = np.arange(width)[None, :, None]
    pixels = (rows * 3 + cols * 5 + np.array([0, 60, 120])) % 256
    return Image.fromarray(pixels.astype(np.uint8))


def _normalise(chw: np.ndarray) -> np.ndarray:
    mean = np.array(transforms.TRAIN_MEAN, dtype=np.float32)[:, None, None]
    std = np.array(transforms.TRAIN_STDDEV, dtype=np.float32)[:, None, None]
    return (chw - mean) / std


def test_eval_transform_is_resize_256_then_centre_crop_224():
    image = _known_image()
    out = transforms.eval_transform()(image)
    # By hand: short side 300 -> 256, long side int(256 * 457 / 300) = 389 (PIL bilinear), then
    # torchvision's centre crop offsets round((256 - 224) / 2) = 16 and round((389 - 224) / 2) = 82.
    resized = np.asarray(image.resize((389, 256), Image.BILINEAR), dtype=np.float32)
    crop = resized[16 : 16 + 224, 82 : 82 + 224].transpose(2, 0, 1) / 255.0
    expected = _normalise(crop * 255.0)
    from torchvision import transforms as v1  # upstream's v1 pipeline computes the same

    upstream = v1.Compose([v1.Resize(256), v1.CenterCrop(224), v1.ToTensor(), v1.Normalize(
        [m / 255 for m in transforms.TRAIN_MEAN], [s / 255 for s in transforms.TRAIN_STDDEV])])
    torch.testing.assert_close(out, upstream(image))
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-4)


def test_imagenet_v2_crop_box_and_transform():
    assert transforms.v2_crop_box(300, 457) == (19, 98, 262)  # side int(0.875 * 300); ((457 - 262) + 1) // 2
    assert transforms.v2_crop_box(375, 500) == (24, 86, 328)
    image = _known_image()
    out = transforms.imagenet_v2_transform()(image)
    crop = torch.from_numpy(np.asarray(image)[19 : 19 + 262, 98 : 98 + 262].transpose(2, 0, 1).astype(np.float32))
    resized = torch.nn.functional.interpolate(crop[None], size=(224, 224), mode="bicubic", align_corners=False)[0]
    np.testing.assert_allclose(out.numpy(), _normalise(resized.numpy()), atol=1e-4)
    flat = transforms.imagenet_v2_transform()(Image.new("RGB", (320, 240), (10, 128, 250)))
    expected = _normalise(np.broadcast_to(np.array([10.0, 128.0, 250.0], np.float32)[:, None, None], (3, 224, 224)))
    np.testing.assert_allclose(flat.numpy(), expected, atol=1e-3)


def test_train_transform_shape_and_constants():
    torch.manual_seed(0)
    out = transforms.train_transform()(_known_image())
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32
    assert transforms.SCALE_RATIO_RANGE == (0.08, 1.0) and transforms.ASPECT_RATIO_RANGE == (0.75, 4.0 / 3.0)


# --- batches --------------------------------------------------------------------------------------


def _world(rank=0, ranks=0):
    """A CPU process; ranks > 1: rank `rank` of a DDP world (no process group is needed to read data)."""
    return World(use_ddp=ranks > 1, rank=rank, device=CPU, num_devices=ranks)


def test_eval_batches_are_padded_with_zero_weights(prepared):
    dataset_dir, _ = prepared
    stream = input_pipeline.build_input_iterator(dataset_dir, "validation", [0, 0], 3, _world())
    batches = [next(stream) for _ in range(math.ceil(NUM_VAL / 3))]
    assert [b["inputs"].shape for b in batches] == [(3, 3, 224, 224)] * 3
    weights = torch.cat([b["weights"] for b in batches])
    assert weights.tolist() == [1.0] * NUM_VAL + [0.0]
    targets = torch.cat([b["targets"] for b in batches])[:NUM_VAL]
    assert targets.dtype == torch.int64
    dataset = input_pipeline.imagenet_dataset(dataset_dir, "validation")
    assert targets.tolist() == dataset.targets
    assert next(stream)["targets"].tolist() == dataset.targets[:3]  # a new pass starts over


def test_eval_is_sharded_rank_strided_under_ddp(prepared):
    dataset_dir, _ = prepared
    dataset = input_pipeline.imagenet_dataset(dataset_dir, "test")
    assert sorted(set(dataset.targets)) == [0, 1, 2, 3] and len(dataset) == 8  # v2 class = folder number
    seen = []
    for rank in range(3):
        assert input_pipeline.rank_strided_indices(8, rank, 3) == list(range(rank, 8, 3))
        stream = input_pipeline.build_input_iterator(dataset_dir, "test", [0, 0], 6, _world(rank, 3))
        batches = [next(stream) for _ in range(input_pipeline.num_eval_batches(8, 6))]  # 2 per rank
        assert all(b["inputs"].shape == (2, 3, 224, 224) for b in batches)
        weights = torch.cat([b["weights"] for b in batches])
        targets = torch.cat([b["targets"] for b in batches])[weights > 0]
        rows = list(range(rank, 8, 3))
        assert targets.tolist() == [dataset.targets[i] for i in rows]
        seen += rows
    assert sorted(seen) == list(range(8))


def test_eval_train_subset_follows_the_upstream_rule(prepared):
    dataset_dir, _ = prepared
    # Pinned: range(1,281,167) shuffled by random.Random(7), the first 5 of the 50,176 rows.
    full = input_pipeline.eval_train_indices([7, 9], 1_281_167, 50_176)
    assert len(full) == 50_176 and full[:5] == [716313, 1166966, 183403, 1129196, 112740]
    expected = list(range(12))
    random.Random(5).shuffle(expected)
    assert input_pipeline.eval_train_indices([5, 1], 12, 50_176) == expected
    dataset = input_pipeline.imagenet_dataset(dataset_dir, "train")
    stream = input_pipeline.build_input_iterator(dataset_dir, "eval_train", [5, 1], 4, _world())
    targets = torch.cat([next(stream)["targets"] for _ in range(3)])
    assert targets.tolist() == [dataset.targets[i] for i in expected]


def test_train_batches_reshuffle_each_epoch_and_split_across_ranks(prepared):
    dataset_dir, _ = prepared
    dataset = input_pipeline.imagenet_dataset(dataset_dir, "train")
    transform = transforms.eval_transform()  # deterministic pixels keep the check on rows, and fast

    def epoch(stream, batches=3):  # 12 images / 4 = 3 batches an epoch; rows told apart by their pixel sums
        out = [next(stream) for _ in range(batches)]
        assert all(b["inputs"].shape == (4, 3, 224, 224) and b["targets"].dtype == torch.int64 for b in out)
        assert all("weights" not in b for b in out)
        return [round(float(row.sum()), 1) for b in out for row in b["inputs"]]

    stream = input_pipeline.build_input_iterator(dataset_dir, "train", [3, 0], 4, _world(), transform=transform)
    first, second = epoch(stream), epoch(stream)
    assert sorted(first) == sorted(second) and len(set(first)) == 12  # each epoch: every image once
    assert first != second  # reshuffled
    sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=2, rank=0, shuffle=True, seed=3)
    order = list(sampler)
    sampler.set_epoch(1)
    assert order != list(sampler)  # set_epoch gives every epoch its own permutation
    per_rank = []
    for rank in range(2):
        stream = input_pipeline.build_input_iterator(dataset_dir, "train", [3, 0], 4, _world(rank, 2), transform=transform)
        first = next(stream)
        assert first["inputs"].shape == (2, 3, 224, 224)
        per_rank.append(first["targets"])
    expected = [
        [dataset.targets[i] for i in list(torch.utils.data.DistributedSampler(dataset, 2, r, shuffle=True, seed=3))[:2]]
        for r in range(2)
    ]
    assert [t.tolist() for t in per_rank] == expected


# --- real classes ---------------------------------------------------------------------------------


def test_the_sample_keeps_every_photographs_real_class(tmp_path):
    """sample_data's archives label foolbox's photographs with their real classes, and the prepared
    folders number them as the full release does (the wnid's place among the 1,000), not 0..k-1."""
    from workloads.imagenet import synsets

    photos = sample_data.real_jpegs()
    assert len(photos) == 20 and len(synsets.wnids()) == 1000 and list(synsets.wnids()) == sorted(synsets.wnids())
    info = sample_data.write_raw_dir(tmp_path / "raw", num_train=6, num_val=3, num_v2=2, labels="devkit")
    assert _prepare(tmp_path / "raw", tmp_path / "data", "--subset") == 0
    dataset_dir = tmp_path / "data" / "imagenet"
    train = input_pipeline.imagenet_dataset(dataset_dir, "train")
    assert sorted(train.targets) == sorted(label for _, label in photos[:6])
    validation = input_pipeline.imagenet_dataset(dataset_dir, "validation")
    assert sorted(validation.targets) == sorted(synsets.class_index()[w] for w in info["val_wnids"])
    assert sorted(input_pipeline.imagenet_dataset(dataset_dir, "test").targets) == sorted(info["v2_labels"])


def test_a_folder_that_is_not_an_ilsvrc_class_is_named(prepared, tmp_path):
    dataset_dir, _ = prepared
    shutil.copytree(dataset_dir / "val", tmp_path / "val")
    (tmp_path / "val" / "holiday_photos").mkdir()
    with pytest.raises(ValueError, match="holiday_photos"):
        input_pipeline.imagenet_dataset(tmp_path, "validation")
    raw = tmp_path / "raw"
    write_raw_dir(raw)
    with tarfile.open(raw / prepare.TRAIN_TAR, "a") as outer:
        _add(outer, "n99999999.tar", b"")
    assert _prepare(raw, tmp_path / "data", "--subset") == 1
