"""Prepare CIFAR-10 from the official python release under `<data-dir>/cifar/`.

Input (in --raw-dir): the official `cifar-10-python.tar.gz`, or the folder it
unpacks to, `cifar-10-batches-py/`. Every batch file must unpickle to a dict
with `data` (N, 3072) uint8 rows (1,024 red, then green, then blue values of a
32 x 32 image) and `labels` (N class ids in 0..9); `batches.meta` must list the
10 class names. The files are copied byte for byte to
`<data-dir>/cifar/cifar-10-batches-py/`, torchvision's layout, so
`torchvision.datasets.CIFAR10(root=<data-dir>/cifar)` reads them (and its
built-in MD5 check passes on the full release, which is checked here too).

Splits (reference §4.10): train = the first 45,000 of the 50,000 training
images (data_batch_1..5 in order), validation = the last 5,000, test = the
official 10,000 in test_batch. With --subset (a small raw dump of the same
format, for tests and smoke runs) the counts are not enforced and the same rule
is scaled: the last 10% of the training images (rounded down, at least one
when there are two or more) are the validation split.

Usage: python -m workloads.cifar.prepare --data-dir DATA --raw-dir RAW [--subset]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import pickle
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from workloads.data_manifest import MANIFEST_NAME, write_manifest
from workloads.cifar.input_pipeline import (
    BATCHES_DIR,
    DATASET_NAME,
    IMAGE_BYTES,
    META_FILE,
    NUM_CLASSES,
    REFERENCE_COUNTS,
    TEST_FILES,
    TRAIN_FILES,
    validation_size,
)

ARCHIVE_NAME = "cifar-10-python.tar.gz"
FULL_TRAIN_IMAGES = REFERENCE_COUNTS["train"] + REFERENCE_COUNTS["validation"]  # 50,000 in 5 files
# MD5s of the official release's files, as torchvision's CIFAR10 lists them.
OFFICIAL_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    META_FILE: "5ff9c542aee3614f3951f8cda6e48888",
}


def read_raw_files(raw_dir: Path) -> Dict[str, bytes]:
    """The bytes of every file the layout needs, from the archive or the unpacked folder."""
    needed = [*TRAIN_FILES, *TEST_FILES, META_FILE]
    for folder in (raw_dir / BATCHES_DIR, raw_dir):
        if all((folder / name).is_file() for name in needed):
            return {name: (folder / name).read_bytes() for name in needed}
    archive = raw_dir / ARCHIVE_NAME
    if not archive.is_file():
        raise SystemExit(
            f"{raw_dir} holds neither {ARCHIVE_NAME} nor a complete {BATCHES_DIR}/ folder "
            f"({', '.join(needed)}); download the python version from https://www.cs.toronto.edu/~kriz/cifar.html"
        )
    files: Dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                folder, _, name = member.name.rpartition("/")
                if member.isfile() and folder.rstrip("/").endswith(BATCHES_DIR) and name in needed:
                    files[name] = tar.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise SystemExit(f"{archive} is not a readable tar.gz ({error}); download it again.") from error
    missing = [name for name in needed if name not in files]
    if missing:
        raise SystemExit(f"{archive} lacks {BATCHES_DIR}/{', '.join(missing)}; download it again.")
    return files


def _unpickle(name: str, data: bytes) -> dict:
    try:
        # The release was pickled by Python 2; latin1 turns its byte strings into str, as torchvision reads it.
        loaded = pickle.load(io.BytesIO(data), encoding="latin1")
    except Exception as error:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise SystemExit(f"{name} does not unpickle ({type(error).__name__}: {error}); the raw data is damaged.") from error
    if not isinstance(loaded, dict):
        raise SystemExit(f"{name} unpickles to a {type(loaded).__name__}, expected a dict; the raw data is damaged.")
    return loaded


def check_batch(name: str, data: bytes) -> int:
    """The number of images in one batch file; a SystemExit naming the problem when it is malformed."""
    batch = _unpickle(name, data)
    if "data" not in batch or "labels" not in batch:
        raise SystemExit(f"{name} has keys {sorted(batch)}, expected 'data' and 'labels'; the raw data is damaged.")
    images = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"])
    if images.dtype != np.uint8 or images.ndim != 2 or images.shape[1] != IMAGE_BYTES:
        raise SystemExit(f"{name}: 'data' is {images.dtype} {images.shape}, expected uint8 (N, {IMAGE_BYTES}).")
    if labels.shape != (len(images),):
        raise SystemExit(f"{name}: {len(labels)} labels for {len(images)} images.")
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise SystemExit(f"{name}: labels outside 0..{NUM_CLASSES - 1}; the raw data is damaged.")
    return len(images)


def check_meta(data: bytes) -> List[str]:
    names = _unpickle(META_FILE, data).get("label_names")
    if not isinstance(names, list) or len(names) != NUM_CLASSES:
        raise SystemExit(f"{META_FILE} does not list {NUM_CLASSES} label_names; the raw data is damaged.")
    return names


def check_files(files: Dict[str, bytes], subset: bool) -> Tuple[int, int]:
    """(training images, test images) after checking every file; full data must be the official release."""
    check_meta(files[META_FILE])
    num_train = sum(check_batch(name, files[name]) for name in TRAIN_FILES)
    num_test = sum(check_batch(name, files[name]) for name in TEST_FILES)
    if subset:
        if num_train < 2 or num_test < 1:
            raise SystemExit(f"a subset needs at least 2 training and 1 test image; found {num_train} and {num_test}.")
        return num_train, num_test
    if (num_train, num_test) != (FULL_TRAIN_IMAGES, REFERENCE_COUNTS["test"]):
        raise SystemExit(
            f"found {num_train:,} training and {num_test:,} test images, expected {FULL_TRAIN_IMAGES:,} and "
            f"{REFERENCE_COUNTS['test']:,}; pass --subset for a small dump, or download the full release again."
        )
    for name, expected in OFFICIAL_MD5.items():
        if hashlib.md5(files[name]).hexdigest() != expected:
            raise SystemExit(f"{name} does not match the official release's MD5 {expected}; download it again.")
    return num_train, num_test


def split_counts(num_train_images: int, num_test: int) -> Dict[str, int]:
    num_validation = validation_size(num_train_images)
    return {"train": num_train_images - num_validation, "validation": num_validation, "test": num_test}


def write_dataset(files: Dict[str, bytes], dataset_dir: Path, source: str, subset: bool) -> Path:
    num_train_images, num_test = check_files(files, subset)
    batches_dir = dataset_dir / BATCHES_DIR
    dataset_dir.mkdir(parents=True, exist_ok=True)
    (dataset_dir / MANIFEST_NAME).unlink(missing_ok=True)  # a rerun is unfinished until the new manifest lands
    if batches_dir.exists():
        shutil.rmtree(batches_dir)
    batches_dir.mkdir()
    for name, data in files.items():
        (batches_dir / name).write_bytes(data)
    names = [f"{BATCHES_DIR}/{name}" for name in files]
    return write_manifest(dataset_dir, names, split_counts(num_train_images, num_test), source, subset=subset)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workloads.cifar.prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True, help="the benchmark data dir; files go to DATA_DIR/cifar/")
    parser.add_argument("--raw-dir", required=True, help=f"the folder holding {ARCHIVE_NAME} or {BATCHES_DIR}/")
    parser.add_argument("--subset", action="store_true", help="accept a small dump of the same format (tests, smoke runs)")
    args = parser.parse_args(argv)
    raw_dir = Path(args.raw_dir).expanduser()
    dataset_dir = Path(args.data_dir).expanduser() / DATASET_NAME
    manifest = write_dataset(read_raw_files(raw_dir), dataset_dir, source=str(raw_dir), subset=args.subset)
    print(f"CIFAR-10 ready in {dataset_dir} ({manifest.name} written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
