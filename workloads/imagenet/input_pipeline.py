"""ImageNet batches from a prepared data dir: ImageFolder datasets, samplers under DDP, padded eval batches.

Layout (written by workloads/imagenet/prepare.py): DATA_DIR/imagenet/train/<wnid>/*.JPEG,
val/<wnid>/*.JPEG (class index = position of the wnid in sorted order, as ImageFolder and
TFDS number them) and imagenet_v2/<k>/*.jpeg (class index = the folder's number k).

Splits as the reference's PyTorch workload builds them (reference §4.4, §3.7):
  train       endless; shuffled anew every epoch (DistributedSampler.set_epoch), drop_last;
  eval_train  the first num_eval_train_examples of range(num_train) shuffled by
              random.Random(int(data_rng[0])), with eval transforms;
  validation  val/ in ImageFolder order; test = ImageNet-v2 with the TF-style eval crop.
Under DDP each rank reads its own rows: DistributedSampler for train, and for eval the
rank-strided indices rank, rank + N, rank + 2N, ... (upstream's DistributedEvalSampler).

Deliberate differences from upstream: the train order is seeded from data_rng (upstream
draws it from torch's global RNG); eval batches are always full per-device batches whose
padding rows carry weight 0, and every rank yields exactly ceil(num_examples / global
batch) batches per pass (upstream's last batch is short and ranks may disagree on how
many batches they hold); the test split is read from JPEG folders, not TFDS.

Two ways to turn files into pixels, chosen by build_input_iterator's `decode`: "cpu" is
upstream's (PIL decode and transforms in DataLoader workers); "device" has the workers read
bytes only and decodes each batch on the training device (workloads/imagenet/
device_decode.py: nvJPEG on a GPU); "auto", the default, is "device" on CUDA and "cpu"
otherwise. Both give the same batches up to decoder and resampling rounding.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from workloads.parallel import World

if TYPE_CHECKING:
    import torch

DATASET_NAME = "imagenet"
TRAIN_DIR, VAL_DIR, V2_DIR = "train", "val", "imagenet_v2"
NUM_CLASSES = 1000
REFERENCE_COUNTS = {"train": 1_281_167, "validation": 50_000, "test": 10_000}
NUM_EVAL_TRAIN_EXAMPLES = 50_176  # ceil(50,000 / 1,024) * 1,024, the reference's eval_train size
SPLIT_DIRS = {"train": TRAIN_DIR, "eval_train": TRAIN_DIR, "validation": VAL_DIR, "test": V2_DIR}
DECODE_CHOICES = ("auto", "cpu", "device")


def _numbered_folder_class():
    from torchvision.datasets import ImageFolder

    class NumberedImageFolder(ImageFolder):
        """ImageFolder whose class folders are named 0 ... 999: the index is the number, not the sort rank."""

        def find_classes(self, directory):
            names = sorted((entry.name for entry in Path(directory).iterdir() if entry.is_dir()), key=int)
            return names, {name: int(name) for name in names}

    return NumberedImageFolder


def _ilsvrc_folder_class():
    from torchvision.datasets import ImageFolder

    from workloads.imagenet import synsets

    class IlsvrcImageFolder(ImageFolder):
        """ImageFolder whose class index is the wnid's place among all 1,000 ILSVRC classes.

        On the full release that is ImageFolder's own numbering (sorted wnids); on a subset it
        keeps every image's real class id instead of numbering only the classes present.
        """

        def find_classes(self, directory):
            names = sorted(entry.name for entry in Path(directory).iterdir() if entry.is_dir())
            unknown = [name for name in names if name not in synsets.class_index()]
            if unknown:
                raise ValueError(
                    f"{directory} holds folders that are not ILSVRC 2012 classes: {', '.join(unknown[:5])}; "
                    "prepare the data dir with python -m workloads.imagenet.prepare"
                )
            return names, {name: synsets.class_index()[name] for name in names}

    return IlsvrcImageFolder


def imagenet_dataset(dataset_dir: Path, split: str, transform: Optional[Callable] = None, encoded: bool = False):
    """The ImageFolder of a split (eval_train: the whole train folder; subset it with eval_train_indices).

    encoded: items are (the file's bytes as a uint8 tensor, target), untransformed, for device_decode.
    """
    from torchvision.datasets import ImageFolder

    from workloads.imagenet import transforms

    if split not in SPLIT_DIRS:
        raise ValueError(f"unknown ImageNet split {split!r}; expected one of {sorted(SPLIT_DIRS)}")
    folder = Path(dataset_dir) / SPLIT_DIRS[split]
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} does not exist; prepare it with python -m workloads.imagenet.prepare")
    if encoded:
        from workloads.imagenet.device_decode import read_encoded

        folder_class = _numbered_folder_class() if split == "test" else _ilsvrc_folder_class()
        return folder_class(str(folder), loader=read_encoded)
    if split == "test":
        return _numbered_folder_class()(str(folder), transform=transform or transforms.imagenet_v2_transform())
    default = transforms.train_transform() if split == "train" else transforms.eval_transform()
    return _ilsvrc_folder_class()(str(folder), transform=transform or default)


def eval_train_indices(data_rng: Sequence[int], num_train_examples: int, num_eval_train_examples: int) -> List[int]:
    """Upstream's eval_train rows: range(num_train) shuffled by random.Random(int(data_rng[0])), then the first n."""
    indices = list(range(num_train_examples))
    random.Random(int(data_rng[0])).shuffle(indices)
    return indices[:num_eval_train_examples]


def rank_strided_indices(num_examples: int, rank: int, num_replicas: int) -> List[int]:
    """The eval rows of one rank: rank, rank + N, ... (no row repeated, none dropped)."""
    return list(range(rank, num_examples, num_replicas))


def num_eval_batches(num_examples: int, global_batch_size: int) -> int:
    return int(math.ceil(num_examples / global_batch_size))


def _seed(data_rng: Sequence[int]) -> int:
    return int(data_rng[0]) % (1 << 63)


def _to_device(batch: Dict[str, "torch.Tensor"], world: World) -> Dict[str, "torch.Tensor"]:
    non_blocking = world.device.type == "cuda"
    return {key: value.to(world.device, non_blocking=non_blocking) for key, value in batch.items()}


def _loader_options(world: World, decoder: Optional[Callable]) -> Dict[str, Any]:
    """DataLoader arguments that depend on the path: a decoder's batches are packed encoded images."""
    if decoder is None:
        return {"pin_memory": world.device.type == "cuda"}
    return {"collate_fn": decoder.collate, "pin_memory": False}  # decode_jpeg copies the bytes to the GPU itself


def _float_inputs(inputs: Any, decoder: Optional[Callable]) -> "torch.Tensor":
    """The loader's inputs as a float32 (n, 3, 224, 224) batch: the PIL path's tensors, or the decoder's output."""
    return inputs.float() if decoder is None else decoder(inputs)


def train_iterator(
    dataset,
    data_rng: Sequence[int],
    global_batch_size: int,
    world: World,
    num_workers: int = 0,
    decoder: Optional[Callable] = None,
) -> Iterator[Dict]:
    """Endless {'inputs', 'targets'} batches of this process's rows; a new permutation each epoch.

    decoder: None when the dataset yields transformed tensors; else a device_decode.BatchDecoder
    for a dataset of encoded images (imagenet_dataset(..., encoded=True)).
    """
    import torch
    from torch.utils.data import DataLoader, DistributedSampler

    batch_size = world.local_batch_size(global_batch_size)
    replicas, rank = (world.num_shards, world.rank) if world.use_ddp else (1, 0)
    # DistributedSampler with one replica is a seeded shuffle that set_epoch reshuffles.
    sampler = DistributedSampler(dataset, num_replicas=replicas, rank=rank, shuffle=True, seed=_seed(data_rng))
    if len(sampler) < batch_size:
        raise ValueError(
            f"this rank holds {len(sampler)} training images, fewer than one batch of {batch_size} "
            "(drop_last would yield nothing); use a smaller batch or more data"
        )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=True,
        persistent_workers=num_workers > 0,
        **_loader_options(world, decoder),
    )
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        for inputs, targets in loader:
            yield _to_device({"inputs": _float_inputs(inputs, decoder), "targets": targets.to(torch.int64)}, world)
        epoch += 1


def eval_iterator(
    dataset,
    global_batch_size: int,
    world: World,
    num_workers: int = 0,
    repeat: bool = True,
    decoder: Optional[Callable] = None,
) -> Iterator[Dict]:
    """{'inputs', 'targets', 'weights'} per-device batches: ceil(len / global batch) per pass on every rank.

    The last rows are padded to a full batch (zero images, target 0, weight 0), and a rank
    whose strided share runs out early yields all-padding batches, so all ranks take part in
    every eval step and weighted sums over ranks count each example exactly once.
    """
    import torch
    from torch.utils.data import DataLoader

    batch_size = world.local_batch_size(global_batch_size)
    replicas, rank = (world.num_shards, world.rank) if world.use_ddp else (1, 0)
    indices = rank_strided_indices(len(dataset), rank, replicas)
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=indices, num_workers=num_workers, **_loader_options(world, decoder)
    )
    batches_per_pass = num_eval_batches(len(dataset), global_batch_size)
    while True:
        emitted, shape = 0, None
        for inputs, targets in loader:
            inputs = _float_inputs(inputs, decoder)
            shape = inputs.shape[1:]
            yield _to_device(_padded(inputs, targets.to(torch.int64), batch_size), world)
            emitted += 1
        while emitted < batches_per_pass:
            empty = torch.zeros((0, *(shape or (3, 224, 224))))
            yield _to_device(_padded(empty, torch.zeros(0, dtype=torch.int64), batch_size), world)
            emitted += 1
        if not repeat:
            return


def _padded(inputs: "torch.Tensor", targets: "torch.Tensor", batch_size: int) -> Dict[str, "torch.Tensor"]:
    import torch

    rows = len(targets)
    weights = torch.ones(batch_size, dtype=torch.float32)
    if rows < batch_size:
        missing = batch_size - rows
        inputs = torch.cat([inputs, inputs.new_zeros((missing, *inputs.shape[1:]))])
        targets = torch.cat([targets, targets.new_zeros(missing)])
        weights[rows:] = 0.0
    return {"inputs": inputs, "targets": targets, "weights": weights}


def resolve_decode(decode: str, world: World, transform: Optional[Callable] = None) -> str:
    """Where build_input_iterator decodes: "cpu" or "device" ("auto": the device when it is a GPU)."""
    if decode not in DECODE_CHOICES:
        raise ValueError(f"decode={decode!r}; expected one of {DECODE_CHOICES}")
    if decode == "device" and transform is not None:
        raise ValueError(
            "decode='device' cannot run a PIL `transform`; drop `transform` and pass the per-image tensor ops "
            "as extra_train_ops (torchvision v2 transforms work on both paths), or use decode='cpu'"
        )
    if decode == "auto":
        # A caller's own PIL transform has no tensor twin here, so it keeps the path it was written for.
        return "device" if world.device.type == "cuda" and transform is None else "cpu"
    return decode


def build_input_iterator(
    dataset_dir: Path,
    split: str,
    data_rng: Sequence[int],
    global_batch_size: int,
    world: World,
    num_eval_train_examples: int = NUM_EVAL_TRAIN_EXAMPLES,
    transform: Optional[Callable] = None,
    num_workers: int = 0,
    extra_train_ops: Tuple[Callable, ...] = (),
    decode: str = "auto",
    repeat: bool = True,
) -> Iterator[Dict]:
    """The batches of one split, decoded on the CPU (PIL, upstream's path) or on the device (see resolve_decode).

    extra_train_ops: per-image ops after the train crop and flip, before normalisation (e.g. ViT's
    RandAugment), on both paths: on a PIL image in the workers, or on a uint8 (3, 224, 224)
    tensor on the device, so they must accept both (torchvision v2 transforms do). Eval splits
    ignore them. transform: a whole PIL-path transform replacing the split's default; it keeps
    decode="auto" on the CPU path and cannot be combined with extra_train_ops.
    num_workers: DataLoader workers; on the device path they only read files.
    repeat: eval splits only; False stops after one pass (train is always endless).
    """
    from torch.utils.data import Subset

    from workloads.imagenet import transforms

    if transform is not None and extra_train_ops:
        raise ValueError(
            "pass either `transform` (a whole PIL transform) or `extra_train_ops` (added to the default), not both"
        )
    decoder = None
    if resolve_decode(decode, world, transform) == "device":
        from workloads.imagenet.device_decode import BatchDecoder

        decoder = BatchDecoder(split, world.device, extra_train_ops if split == "train" else ())
        dataset = imagenet_dataset(dataset_dir, split, encoded=True)
    else:
        if split == "train" and extra_train_ops:
            transform = transforms.train_transform(extra=extra_train_ops)
        dataset = imagenet_dataset(dataset_dir, split, transform)
    if split == "train":
        return train_iterator(dataset, data_rng, global_batch_size, world, num_workers, decoder=decoder)
    if split == "eval_train":
        # On a subset data dir the train folder holds fewer rows than the reference's constants.
        count = min(num_eval_train_examples, len(dataset))
        dataset = Subset(dataset, eval_train_indices(data_rng, len(dataset), count))
    return eval_iterator(dataset, global_batch_size, world, num_workers, repeat=repeat, decoder=decoder)
