"""Prepare ImageNet (ILSVRC 2012) and ImageNet-v2 for the imagenet workloads: official archives -> ImageFolder dirs.

Put in RAW_DIR (from https://image-net.org after registration, and ImageNet-v2 from
https://huggingface.co/datasets/vaishaal/ImageNetV2):
  ILSVRC2012_img_train.tar        a tar of 1,000 per-class tars nXXXXXXXX.tar (1,281,167 JPEGs);
  ILSVRC2012_img_val.tar          50,000 JPEGs ILSVRC2012_val_00000001.JPEG ... in one folder;
  the validation labels, one of:
    ILSVRC2012_devkit_t12.tar.gz  its data/ILSVRC2012_validation_ground_truth.txt (ILSVRC ids, one per
                                  image in file-name order) mapped to wnids by data/meta.mat (needs scipy);
    val_labels.txt                lines "<file name> <wnid>";
  imagenetv2-matched-frequency.tar.gz, or its unpacked imagenetv2-matched-frequency-format-val/:
                                  folders 0 ... 999 of JPEGs, the folder name being the class index.
They become the reference's PyTorch layout, in DATA_DIR/imagenet/:
  train/<wnid>/*.JPEG, val/<wnid>/*.JPEG, imagenet_v2/<k>/*.jpeg
The counts are checked (1,281,167 / 50,000 / 10,000 images, 1,000 classes in each) unless
--subset marks a smaller set (tests, smoke runs; never scored). index.json records the
per-class counts; the manifest (of index.json, with the split counts) is written last. Hashing
all 1.3 million images would take hours, so the manifest vouches for the index, and the
index for the folders.

Rerunning is safe: each train class and the ImageNet-v2 tree are unpacked under a temporary
name and renamed when complete, so finished ones are kept; val images already in place (same
size) are skipped; the data dir counts as unprepared until the new manifest lands.

Usage: python -m workloads.imagenet.prepare --data-dir DIR --raw-dir RAW_DIR [--subset]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tarfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Dict, Optional, Sequence

from workloads.data_manifest import MANIFEST_NAME, write_manifest
from workloads.imagenet import synsets
from workloads.imagenet.input_pipeline import DATASET_NAME, NUM_CLASSES, REFERENCE_COUNTS, TRAIN_DIR, V2_DIR, VAL_DIR

TRAIN_TAR = "ILSVRC2012_img_train.tar"
VAL_TAR = "ILSVRC2012_img_val.tar"
DEVKIT = "ILSVRC2012_devkit_t12.tar.gz"
VAL_LABELS = "val_labels.txt"
V2_ARCHIVE = "imagenetv2-matched-frequency.tar.gz"
V2_UNPACKED = "imagenetv2-matched-frequency-format-val"
INDEX_NAME = "index.json"
_PARTIAL = ".partial"
_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error)
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")


class PreparationError(Exception):
    """The raw data cannot become a valid imagenet data dir; the message says why and what to do."""


def preparation_command(data_dir: str, raw_dir: str = "RAW") -> str:
    return f"python -m workloads.imagenet.prepare --data-dir {data_dir} --raw-dir {raw_dir}"


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise PreparationError(f"{path} is missing ({what}); download it and put it in --raw-dir")
    return path


def _damaged(archive: Path, error: BaseException, inner: str = "") -> PreparationError:
    where = f"{archive} (member {inner})" if inner else str(archive)
    return PreparationError(f"{where} is truncated or damaged ({error}); download {archive.name} again and rerun")


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    partial = target.with_name(target.name + _PARTIAL)
    source = tar.extractfile(member)
    with open(partial, "wb") as out:
        shutil.copyfileobj(source, out, 4 << 20)
    os.replace(partial, target)


# --- train: a tar of per-class tars -----------------------------------------------------------------


def prepare_train(raw_dir: Path, dataset_dir: Path) -> Dict[str, int]:
    archive = _require(raw_dir / TRAIN_TAR, "the training images")
    train_dir = dataset_dir / TRAIN_DIR
    train_dir.mkdir(parents=True, exist_ok=True)
    counts: Dict[str, int] = {}
    print(f"unpacking {archive} ...", flush=True)
    try:
        with tarfile.open(archive, "r:") as outer:  # seekable: a finished class is skipped without reading it
            for member in outer:
                name = PurePosixPath(member.name).name
                if not member.isfile() or not name.endswith(".tar"):
                    continue
                wnid = name[: -len(".tar")]
                if wnid not in synsets.class_index():
                    raise PreparationError(
                        f"{archive} holds {member.name}, which is not one of the 1,000 ILSVRC 2012 classes "
                        f"(workloads/imagenet/synsets.json); is it ILSVRC2012_img_train.tar?"
                    )
                done = train_dir / wnid
                if done.is_dir():
                    counts[wnid] = sum(1 for _ in done.iterdir())
                    continue
                staging = train_dir / (wnid + _PARTIAL)
                shutil.rmtree(staging, ignore_errors=True)
                staging.mkdir()
                try:
                    with tarfile.open(fileobj=outer.extractfile(member), mode="r|") as inner:
                        for image in inner:
                            image_name = PurePosixPath(image.name).name
                            if image.isfile() and _is_image(image_name):
                                _write_member(inner, image, staging / image_name)
                except _TAR_ERRORS as error:
                    raise _damaged(archive, error, member.name) from None
                os.replace(staging, done)
                counts[wnid] = sum(1 for _ in done.iterdir())
    except _TAR_ERRORS as error:
        raise _damaged(archive, error) from None
    if not counts:
        raise PreparationError(f"{archive} holds no per-class nXXXXXXXX.tar members; is it ILSVRC2012_img_train.tar?")
    for stale in set(path.name for path in train_dir.iterdir()) - set(counts):
        path = train_dir / stale
        shutil.rmtree(path) if path.is_dir() else path.unlink()  # leftovers of another raw set
    return counts


# --- val: flat JPEGs + labels ---------------------------------------------------------------------


def _labels_from_devkit(devkit: Path) -> Dict[str, str]:
    try:
        import scipy.io
    except ImportError:
        raise PreparationError(f"reading {devkit} needs scipy (pip install scipy); or put a {VAL_LABELS} in --raw-dir") from None
    try:
        with tarfile.open(devkit, "r:*") as tar:
            files = {PurePosixPath(m.name).name: m for m in tar if m.isfile()}
            for needed in ("meta.mat", "ILSVRC2012_validation_ground_truth.txt"):
                if needed not in files:
                    raise PreparationError(f"{devkit} has no data/{needed}; is it ILSVRC2012_devkit_t12.tar.gz?")
            meta_bytes = tar.extractfile(files["meta.mat"]).read()
            truth = tar.extractfile(files["ILSVRC2012_validation_ground_truth.txt"]).read().decode().split()
    except _TAR_ERRORS as error:
        raise _damaged(devkit, error) from None
    import io

    synset_rows = scipy.io.loadmat(io.BytesIO(meta_bytes), squeeze_me=True)["synsets"]
    # As torchvision's parse_devkit_archive: the leaves (num_children == 0) are the 1,000 classes.
    id_to_wnid = {int(row["ILSVRC2012_ID"]): str(row["WNID"]) for row in synset_rows if int(row["num_children"]) == 0}
    try:
        wnids = [id_to_wnid[int(value)] for value in truth]
    except KeyError as error:
        raise PreparationError(f"{devkit}: ground-truth id {error} is not a leaf synset in meta.mat") from None
    # Line i labels ILSVRC2012_val_<i+1, 8 digits>.JPEG.
    return {f"ILSVRC2012_val_{i + 1:08d}.JPEG": wnid for i, wnid in enumerate(wnids)}


def _labels_from_text(path: Path) -> Dict[str, str]:
    labels = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise PreparationError(f"{path}:{number}: expected '<file name> <wnid>', got {line!r}")
        labels[PurePosixPath(parts[0]).name] = parts[1]
    return labels


def validation_labels(raw_dir: Path) -> Dict[str, str]:
    if (raw_dir / DEVKIT).is_file():
        return _labels_from_devkit(raw_dir / DEVKIT)
    if (raw_dir / VAL_LABELS).is_file():
        return _labels_from_text(raw_dir / VAL_LABELS)
    raise PreparationError(f"{raw_dir} holds neither {DEVKIT} nor {VAL_LABELS}: the validation labels are needed")


def prepare_val(raw_dir: Path, dataset_dir: Path, train_wnids: Sequence[str]) -> Dict[str, int]:
    archive = _require(raw_dir / VAL_TAR, "the validation images")
    labels = validation_labels(raw_dir)
    val_dir = dataset_dir / VAL_DIR
    counts: Dict[str, int] = {}
    placed = set()
    print(f"unpacking {archive} ...", flush=True)
    try:
        with tarfile.open(archive, "r|") as tar:
            for member in tar:
                name = PurePosixPath(member.name).name
                if not member.isfile() or not _is_image(name):
                    continue
                if name not in labels:
                    raise PreparationError(f"{archive}: {name} has no entry in the validation labels; is the label file complete?")
                target = val_dir / labels[name] / name
                target.parent.mkdir(parents=True, exist_ok=True)
                if not (target.is_file() and target.stat().st_size == member.size):
                    _write_member(tar, member, target)
                placed.add(f"{labels[name]}/{name}")
                counts[labels[name]] = counts.get(labels[name], 0) + 1
    except _TAR_ERRORS as error:
        raise _damaged(archive, error) from None
    unknown = sorted(set(counts) - set(train_wnids))
    if unknown:
        raise PreparationError(f"validation classes {unknown[:5]} have no training folder; do the labels match the train tar?")
    for path in list(val_dir.rglob("*")):  # images of an earlier, different raw set
        if path.is_file() and f"{path.parent.name}/{path.name}" not in placed:
            path.unlink()
    return counts


# --- ImageNet-v2 matched-frequency ----------------------------------------------------------------


def _v2_class(parts: Sequence[str]) -> Optional[int]:
    """The class index of an image path .../<k>/<file>, or None for anything else."""
    if len(parts) < 2 or not _is_image(parts[-1]) or not parts[-2].isdigit():
        return None
    k = int(parts[-2])
    return k if 0 <= k < NUM_CLASSES else None


def prepare_imagenet_v2(raw_dir: Path, dataset_dir: Path) -> Dict[str, int]:
    done = dataset_dir / V2_DIR
    if not done.is_dir():
        staging = dataset_dir / (V2_DIR + _PARTIAL)
        shutil.rmtree(staging, ignore_errors=True)
        unpacked, archive = raw_dir / V2_UNPACKED, raw_dir / V2_ARCHIVE
        if unpacked.is_dir():
            for path in sorted(unpacked.rglob("*")):
                k = _v2_class(path.parts)
                if path.is_file() and k is not None:
                    (staging / str(k)).mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, staging / str(k) / path.name)
        elif archive.is_file():
            print(f"unpacking {archive} ...", flush=True)
            try:
                with tarfile.open(archive, "r|*") as tar:
                    for member in tar:
                        parts = PurePosixPath(member.name).parts
                        k = _v2_class(parts)
                        if member.isfile() and k is not None:
                            (staging / str(k)).mkdir(parents=True, exist_ok=True)
                            _write_member(tar, member, staging / str(k) / parts[-1])
            except _TAR_ERRORS as error:
                raise _damaged(archive, error) from None
        else:
            raise PreparationError(
                f"{raw_dir} holds neither {V2_ARCHIVE} nor an unpacked {V2_UNPACKED}/; download the matched-frequency "
                "archive from https://huggingface.co/datasets/vaishaal/ImageNetV2"
            )
        if not staging.is_dir():
            raise PreparationError(f"the ImageNet-v2 source in {raw_dir} has no images in folders 0 ... 999")
        os.replace(staging, done)
    return {path.name: sum(1 for _ in path.iterdir()) for path in done.iterdir() if path.is_dir()}


# --- the whole preparation ------------------------------------------------------------------------


def check_counts(per_class: Dict[str, Dict[str, int]], subset: bool) -> Dict[str, int]:
    counts = {split: sum(classes.values()) for split, classes in per_class.items()}
    if subset:
        return counts
    problems = [
        f"{split}: {counts[split]:,} images in {len(per_class[split])} classes, "
        f"expected {REFERENCE_COUNTS[split]:,} in {NUM_CLASSES}"
        for split in per_class
        if counts[split] != REFERENCE_COUNTS[split] or len(per_class[split]) != NUM_CLASSES
    ]
    if problems:
        raise PreparationError(
            "the prepared data do not match the release:\n  " + "\n  ".join(problems) + "\nCheck for an incomplete download, "
            "or pass --subset for a partial set (its runs are never scored)"
        )
    return counts


def prepare(raw_dir: Path, data_dir: Path, subset: bool = False) -> Path:
    dataset_dir = data_dir / DATASET_NAME
    dataset_dir.mkdir(parents=True, exist_ok=True)
    (dataset_dir / MANIFEST_NAME).unlink(missing_ok=True)  # unfinished until the new manifest lands
    train = prepare_train(raw_dir, dataset_dir)
    per_class = {
        "train": train,
        "validation": prepare_val(raw_dir, dataset_dir, sorted(train)),
        "test": prepare_imagenet_v2(raw_dir, dataset_dir),
    }
    counts = check_counts(per_class, subset)
    for split, count in counts.items():
        print(f"{split}: {count:,} images in {len(per_class[split])} classes")
    index = dataset_dir / INDEX_NAME
    index.write_text(json.dumps({"per_class": per_class, "subset": subset}, indent=1, sort_keys=True))
    return write_manifest(dataset_dir, [INDEX_NAME], counts, source=f"ILSVRC 2012 + ImageNet-v2 from {raw_dir}", subset=subset)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workloads.imagenet.prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True, help=f"the benchmark data dir; images go to DATA_DIR/{DATASET_NAME}/")
    parser.add_argument("--raw-dir", required=True, help="where the official archives are")
    parser.add_argument("--subset", action="store_true", help="accept a set smaller than the release (never scored)")
    args = parser.parse_args(argv)
    try:
        manifest = prepare(Path(args.raw_dir).expanduser(), Path(args.data_dir).expanduser(), args.subset)
    except PreparationError as error:
        print(f"imagenet preparation failed: {error}", file=sys.stderr)
        return 1
    print(f"ImageNet ready in {manifest.parent} ({manifest.name} written; per-class counts in {INDEX_NAME})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
