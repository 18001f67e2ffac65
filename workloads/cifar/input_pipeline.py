"""CIFAR-10 batches from a prepared data dir, transformed and sampled as upstream's PyTorch workload (reference §4.10, §3.7).

Layout (written by workloads/cifar/prepare.py): DATA_DIR/cifar/cifar-10-batches-py/, the
official python pickles, which torchvision's CIFAR10 also reads.

Splits: the 50,000 training images in file order (data_batch_1..5) are split into train =
the first 45,000 and validation = the last 5,000; test = test_batch (10,000). A subset data
dir scales the rule: its manifest's counts say where train ends. eval_train = the train rows
shuffled by random.Random(int(data_rng[0])), first num_eval_train_examples (upstream's rule).

Transforms, in upstream's order on the PIL image: train RandomCrop(32, padding=4) ->
RandomHorizontalFlip -> ToTensor -> Normalize(CIFAR mean, std); every eval split only
ToTensor -> Normalize. Batches are {'inputs': float32 (B, 3, 32, 32), 'targets': int64 (B,)},
plus 'weights' (B,) float32 in eval, per device.

Sampling reuses the ImageNet pipeline's helpers (workloads/imagenet/input_pipeline.py): train is
endless, reshuffled every epoch by a DistributedSampler seeded from data_rng (set_epoch),
drop_last; eval is rank-strided under DDP and padded to full per-device batches whose padding
rows weigh 0. Deliberate differences from upstream are those of that module (the train order
is seeded from data_rng; every rank yields ceil(num_examples / global batch) full eval
batches). The random crop and flip draw from torch's global RNG, as upstream's do.

The pickles are read here rather than through torchvision's CIFAR10, whose built-in MD5
check rejects subset data dirs; the arrays are the same (prepare.py checks the MD5s of full
data).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

from workloads.data_manifest import subset_counts
from workloads.parallel import World

DATASET_NAME = "cifar"
BATCHES_DIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
META_FILE = "batches.meta"
NUM_CLASSES = 10
IMAGE_SIZE = 32
IMAGE_BYTES = 3 * IMAGE_SIZE * IMAGE_SIZE  # one row of a batch's `data`: the R, G, B planes, 1,024 bytes each
REFERENCE_COUNTS = {"train": 45_000, "validation": 5_000, "test": 10_000}
VALIDATION_FRACTION = 10  # validation = the last 1/10 of the training images (5,000 of 50,000)
EVAL_BATCH_SIZE = 1024
NUM_EVAL_TRAIN_EXAMPLES = 5_120  # ceil(5,000 / 1,024) * 1,024, upstream's eval_train size
# Per-channel statistics of the 50,000 CIFAR-10 training images in [0, 1] (upstream's train_mean / train_stddev).
TRAIN_MEAN = (0.49139968, 0.48215827, 0.44653124)
TRAIN_STDDEV = (0.24703233, 0.24348505, 0.26158768)
CROP_SIZE = 32
CROP_PADDING = 4  # zero padding on every side before the random 32 x 32 crop
SPLITS = ("train", "eval_train", "validation", "test")


def validation_size(num_train_images: int) -> int:
    """How many of the last training images form the validation split (5,000 of 50,000; at least 1 of >= 2)."""
    if num_train_images < 2:
        return 0
    return max(num_train_images // VALIDATION_FRACTION, 1)


def read_batches(batches_dir: Path, names: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
    """(N, 32, 32, 3) uint8 images in HWC order (as torchvision's CIFAR10.data) and (N,) int64 labels."""
    images, labels = [], []
    for name in names:
        with open(Path(batches_dir) / name, "rb") as handle:
            batch = pickle.load(handle, encoding="latin1")
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE))
        labels.append(np.asarray(batch["labels"], dtype=np.int64))
    return np.concatenate(images).transpose(0, 2, 3, 1), np.concatenate(labels)


class CifarImages:
    """A map-style dataset of (transformed image, label) pairs; the transform gets a PIL image, as in torchvision."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Optional[Callable] = None) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        from PIL import Image

        image = Image.fromarray(self.images[index])
        return (self.transform(image) if self.transform else image), int(self.labels[index])


def normalize_transform():
    from torchvision import transforms

    return transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean=TRAIN_MEAN, std=TRAIN_STDDEV)])


def train_transform():
    from torchvision import transforms

    return transforms.Compose(
        [transforms.RandomCrop(size=CROP_SIZE, padding=CROP_PADDING), transforms.RandomHorizontalFlip(), normalize_transform()]
    )


def eval_transform():
    return normalize_transform()


def split_sizes(dataset_dir: Path) -> Dict[str, int]:
    """The split counts: the reference's, or a subset data dir's from its manifest."""
    counts = subset_counts(Path(dataset_dir))
    return {split: counts.get(split, REFERENCE_COUNTS[split]) for split in REFERENCE_COUNTS} if counts else dict(REFERENCE_COUNTS)


def cifar_dataset(dataset_dir: Path, split: str, transform: Optional[Callable] = None) -> CifarImages:
    """The rows of one split with its default transform (eval_train: all train rows; subset them with eval_train_indices)."""
    if split not in SPLITS:
        raise ValueError(f"unknown CIFAR-10 split {split!r}; expected one of {list(SPLITS)}")
    batches_dir = Path(dataset_dir) / BATCHES_DIR
    if not batches_dir.is_dir():
        raise FileNotFoundError(f"{batches_dir} does not exist; prepare it with python -m workloads.cifar.prepare")
    transform = transform or (train_transform() if split == "train" else eval_transform())
    if split == "test":
        return CifarImages(*read_batches(batches_dir, TEST_FILES), transform)
    images, labels = read_batches(batches_dir, TRAIN_FILES)
    num_train = split_sizes(dataset_dir)["train"]
    rows = slice(num_train, None) if split == "validation" else slice(0, num_train)
    return CifarImages(images[rows], labels[rows], transform)


def build_input_iterator(
    dataset_dir: Path,
    split: str,
    data_rng: Sequence[int],
    global_batch_size: int,
    world: World,
    num_eval_train_examples: int = NUM_EVAL_TRAIN_EXAMPLES,
    transform: Optional[Callable] = None,
    num_workers: int = 0,
    repeat: bool = True,
) -> Iterator[Dict]:
    """The per-device batches of one split; train is endless, eval passes repeat unless repeat=False."""
    from torch.utils.data import Subset

    from workloads.imagenet.input_pipeline import eval_iterator, eval_train_indices, train_iterator

    dataset = cifar_dataset(dataset_dir, split, transform)
    if split == "train":
        return train_iterator(dataset, data_rng, global_batch_size, world, num_workers)
    if split == "eval_train":
        # On a subset data dir the train split is smaller than upstream's eval_train size.
        count = min(num_eval_train_examples, len(dataset))
        dataset = Subset(dataset, eval_train_indices(data_rng, len(dataset), count))
    if len(dataset) < world.num_shards:
        raise ValueError(f"the {split} split has {len(dataset)} images, fewer than the {world.num_shards} ranks")
    return eval_iterator(dataset, global_batch_size, world, num_workers, repeat=repeat)
