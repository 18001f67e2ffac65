"""Prepare fastMRI knee single-coil for the fastmri workloads: official HDF5 volumes -> checked data dir.

The raw data are the two archives NYU mails links to after registration at
https://fastmri.med.nyu.edu/: knee_singlecoil_train.tar.xz (973 volumes, 34,742 slices) and
knee_singlecoil_val.tar.xz (199 volumes, 7,135 slices); knee_singlecoil_test is not used.
Put them in RAW_DIR (default DATA_DIR/fastmri, where the reference's setup downloads them),
in either form, per archive:
  knee_singlecoil_<part>.tar.xz            as downloaded (unpacked here, with Python's tarfile);
  singlecoil_<part>/ or knee_singlecoil_<part>/   already unpacked (e.g. with `tar -xJf`,
                                                  which is faster on a many-core machine).
The volumes end up as the reference's data dir expects them, in DATA_DIR/fastmri/
knee_singlecoil_train/ and knee_singlecoil_val/: unpacked there, or hard-linked from an
unpacked folder (symbolic links across file systems, copies with --copy); a data dir the
reference's setup already unpacked is used where it is. Every volume is opened and checked
(datasets, shapes, dtypes, the `max` attribute, a read of its last slice); damaged files are
named one by one and nothing is marked ready. The splits are fixed in volumes.json: train =
every training volume; validation = the first 100 val volumes in name order; test = the rest.
The manifest (file sizes, SHA-256, slice counts) is written last.

A set smaller than the release (tests, smoke runs) must be marked with --subset: its runs
evaluate on what it holds and are never scored. With at most 100 val volumes the reference's
rule would leave the test split empty, so such a subset's val volumes are split in half by
name order instead (the first half, rounded up, for validation).

Rerunning is safe: finished volumes are kept (same name and size), a half-written one is
redone, and the data dir counts as unprepared until the new manifest lands.

Usage: python -m workloads.fastmri.prepare --data-dir DIR [--raw-dir RAW_DIR] [--subset] [--copy]
"""

from __future__ import annotations

import argparse
import lzma
import os
import shutil
import sys
import tarfile
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from workloads.data_manifest import MANIFEST_NAME, write_manifest
from workloads.fastmri.input_pipeline import (
    CROP,
    DATASET_NAME,
    INDEX_NAME,
    NUM_VALIDATION_VOLUMES,
    REFERENCE_COUNTS,
    REFERENCE_VOLUMES,
    TRAIN_DIR,
    VAL_DIR,
    Volume,
    write_index,
)

PARTS = {"train": TRAIN_DIR, "val": VAL_DIR}
ARCHIVE_NAMES = {part: f"{folder}.tar.xz" for part, folder in PARTS.items()}
UNPACKED_NAMES = {part: (folder, folder.replace("knee_", "", 1)) for part, folder in PARTS.items()}
_PARTIAL = ".partial"
DOWNLOAD_HINT = "download knee_singlecoil_train.tar.xz and knee_singlecoil_val.tar.xz via https://fastmri.med.nyu.edu/"


class PreparationError(Exception):
    """The raw data cannot become a valid fastmri data dir; the message says why and what to do."""


def preparation_command(data_dir: str, raw_dir: str = "RAW") -> str:
    return f"python -m workloads.fastmri.prepare --data-dir {data_dir} --raw-dir {raw_dir}"


# --- placing the volumes --------------------------------------------------------------------------


def _same_dir(a: Path, b: Path) -> bool:
    return a.exists() and b.exists() and a.resolve() == b.resolve()


def _find_source(raw_dir: Path, part: str) -> Path:
    """An unpacked folder wins over the archive."""
    for name in UNPACKED_NAMES[part]:
        folder = raw_dir / name
        if folder.is_dir() and any(folder.glob("*.h5")):
            return folder
    archive = raw_dir / ARCHIVE_NAMES[part]
    if archive.is_file():
        return archive
    raise PreparationError(
        f"{raw_dir} holds neither {ARCHIVE_NAMES[part]} nor an unpacked {UNPACKED_NAMES[part][1]}/ with .h5 files; "
        f"{DOWNLOAD_HINT} and pass their folder as --raw-dir"
    )


def _place_file(source: Path, target: Path, copy: bool) -> None:
    """Hard link (symbolic link across file systems, or a copy) under a temporary name, then renamed."""
    if target.is_file() and target.stat().st_size == source.stat().st_size:
        return
    partial = target.with_name(target.name + _PARTIAL)
    partial.unlink(missing_ok=True)
    if copy:
        shutil.copyfile(source, partial)
    else:
        try:
            os.link(source, partial)
        except OSError:
            partial.symlink_to(source.resolve())
    os.replace(partial, target)


def _link_folder(source: Path, target_dir: Path, copy: bool) -> List[str]:
    names = sorted(path.name for path in source.glob("*.h5"))
    for name in names:
        _place_file(source / name, target_dir / name, copy)
    return names


def _unpacking_marker(target_dir: Path) -> Path:
    return target_dir.with_name(target_dir.name + ".unpacking")


def _unpack_archive(archive: Path, target_dir: Path) -> List[str]:
    """Streams the .h5 members of an official archive into `target_dir`; members already there are skipped.

    A marker file stands next to the folder until the archive is through, so a rerun after an
    interruption goes back to the archive rather than taking the half-filled folder for a whole one.
    """
    names: List[str] = []
    marker = _unpacking_marker(target_dir)
    marker.write_text(f"{archive}\n")
    print(f"unpacking {archive} ...", flush=True)
    try:
        with tarfile.open(archive, "r|xz") as tar:
            for member in tar:
                name = Path(member.name).name
                if not member.isfile() or not name.endswith(".h5"):
                    continue
                names.append(name)
                target = target_dir / name  # only the base name: nothing lands outside target_dir
                if target.is_file() and target.stat().st_size == member.size:
                    continue
                partial = target.with_name(name + _PARTIAL)
                source = tar.extractfile(member)
                with open(partial, "wb") as out:
                    shutil.copyfileobj(source, out, 16 << 20)
                os.replace(partial, target)
    except (tarfile.TarError, lzma.LZMAError, EOFError, zlib.error) as error:
        raise PreparationError(
            f"{archive} is truncated or damaged ({error}); download it again. "
            f"The {len(names)} volumes unpacked before the damage are kept for the rerun"
        ) from None
    if not names:
        raise PreparationError(f"{archive} holds no .h5 volumes; is it the knee single-coil archive?")
    marker.unlink()
    return sorted(names)


def place_part(raw_dir: Path, dataset_dir: Path, part: str, copy: bool) -> List[str]:
    """The part's volumes in dataset_dir/knee_singlecoil_<part>/; returns their file names."""
    target_dir = dataset_dir / PARTS[part]
    archive = raw_dir / ARCHIVE_NAMES[part]
    interrupted = _unpacking_marker(target_dir).exists()  # an earlier run stopped while unpacking into target_dir
    in_place = any(_same_dir(raw_dir / name, target_dir) for name in UNPACKED_NAMES[part])
    if interrupted and archive.is_file():
        source = archive  # finish what the earlier run started
    elif in_place and interrupted:
        raise PreparationError(
            f"{target_dir} was only partly unpacked from {ARCHIVE_NAMES[part]}, which is no longer in {raw_dir}; "
            "put the archive back (or pass --raw-dir with an unpacked copy) and rerun"
        )
    elif in_place and any(target_dir.glob("*.h5")):
        return sorted(path.name for path in target_dir.glob("*.h5"))  # already where the reference keeps it
    else:
        source = _find_source(raw_dir, part)
    target_dir.mkdir(parents=True, exist_ok=True)
    for leftover in target_dir.glob("*" + _PARTIAL):
        leftover.unlink()
    if source.is_file():
        names = _unpack_archive(source, target_dir)
    else:
        names = _link_folder(source, target_dir, copy)
        _unpacking_marker(target_dir).unlink(missing_ok=True)  # a whole unpacked copy replaces the interrupted unpacking
    # A volume not in this raw set would change the reference's glob of the folder.
    for stale in set(path.name for path in target_dir.glob("*.h5")) - set(names):
        (target_dir / stale).unlink()
    return names


# --- checking -------------------------------------------------------------------------------------


def check_volume(path: Path) -> Tuple[Optional[Volume], Optional[str]]:
    """(volume, None) for a usable file, (None, what is wrong) otherwise."""
    import h5py

    relative = f"{path.parent.name}/{path.name}"
    try:
        with h5py.File(path, "r") as handle:
            for name in ("kspace", "reconstruction_esc"):
                if name not in handle:
                    return None, f"{relative}: no {name!r} dataset"
            kspace, target = handle["kspace"], handle["reconstruction_esc"]
            if kspace.ndim != 3 or kspace.dtype != np.complex64:
                return None, f"{relative}: kspace is {kspace.dtype} {kspace.shape}, expected complex64 (slices, 640, W)"
            slices, height, width = kspace.shape
            if slices == 0 or height < CROP or width < CROP:
                return None, f"{relative}: kspace shape {kspace.shape} is too small for the {CROP} x {CROP} crop"
            if target.shape != (slices, CROP, CROP) or target.dtype.kind != "f":
                return None, f"{relative}: reconstruction_esc is {target.dtype} {target.shape}, expected float ({slices}, {CROP}, {CROP})"
            if "max" not in handle.attrs or not np.isfinite(float(handle.attrs["max"])):
                return None, f"{relative}: the 'max' attribute is missing or not finite"
            kspace[slices - 1]  # a read at the end catches a file cut short or damaged inside
            target[slices - 1]
    except (OSError, KeyError, ValueError, RuntimeError) as error:  # h5py's errors for damaged files
        return None, f"{relative}: cannot be read as HDF5 ({error})"
    return Volume(relative, int(slices), int(width)), None


def check_part(dataset_dir: Path, part: str, names: Sequence[str]) -> List[Volume]:
    volumes, problems = [], []
    for name in names:
        volume, problem = check_volume(dataset_dir / PARTS[part] / name)
        if problem:
            problems.append(problem)
        else:
            volumes.append(volume)
    if problems:
        listing = "\n  ".join(problems)
        raise PreparationError(
            f"{len(problems)} of {len(names)} {PARTS[part]} volumes are damaged:\n  {listing}\n"
            "Unpack or download those files again (or the archive they came from) and rerun"
        )
    return volumes


def validation_volume_count(num_val_volumes: int, subset: bool) -> int:
    """The reference's first 100; for a small subset, half of the val volumes (rounded up)."""
    if num_val_volumes > NUM_VALIDATION_VOLUMES or not subset:
        return NUM_VALIDATION_VOLUMES
    return (num_val_volumes + 1) // 2


def make_splits(train: List[Volume], val: List[Volume], subset: bool) -> Dict[str, List[Volume]]:
    if not train:
        raise PreparationError(f"no training volumes; {DOWNLOAD_HINT}")
    if len(val) < 2:
        raise PreparationError(f"{len(val)} val volume(s): validation and test need at least one each")
    if not subset and (len(train), len(val)) != (REFERENCE_VOLUMES["train"], REFERENCE_VOLUMES["val"]):
        raise PreparationError(
            f"found {len(train)} training and {len(val)} val volumes; the release has {REFERENCE_VOLUMES['train']} and "
            f"{REFERENCE_VOLUMES['val']}. Check for an incompletely unpacked archive, or pass --subset for a partial set "
            "(its runs are never scored)"
        )
    val = sorted(val, key=lambda volume: volume.path)
    cut = validation_volume_count(len(val), subset)
    return {"train": sorted(train, key=lambda volume: volume.path), "validation": val[:cut], "test": val[cut:]}


def split_counts(splits: Dict[str, List[Volume]], subset: bool) -> Dict[str, int]:
    counts = {split: sum(volume.slices for volume in volumes) for split, volumes in splits.items()}
    if not subset and counts != REFERENCE_COUNTS:
        raise PreparationError(
            f"the volumes hold {counts} slices; the reference has {REFERENCE_COUNTS}. A volume may be a different "
            "version of the release; pass --subset to use it anyway (runs on it are never scored)"
        )
    return counts


# --- the whole preparation ----------------------------------------------------------------------


def prepare(raw_dir: Path, data_dir: Path, subset: bool = False, copy: bool = False) -> Path:
    """Places and checks every volume, fixes the splits in the index, then writes the manifest."""
    dataset_dir = data_dir / DATASET_NAME
    dataset_dir.mkdir(parents=True, exist_ok=True)
    (dataset_dir / MANIFEST_NAME).unlink(missing_ok=True)  # unfinished until the new manifest lands
    names = {part: place_part(raw_dir, dataset_dir, part, copy) for part in PARTS}
    checked = {part: check_part(dataset_dir, part, names[part]) for part in PARTS}
    splits = make_splits(checked["train"], checked["val"], subset)
    counts = split_counts(splits, subset)
    for split, volumes in splits.items():
        print(f"{split}: {len(volumes)} volumes, {counts[split]:,} slices")
    index = write_index(dataset_dir, splits, source=str(raw_dir), subset=subset)
    files = [index.name] + [volume.path for part in PARTS for volume in checked[part]]
    total_gb = sum((dataset_dir / name).stat().st_size for name in files) / 1e9
    print(f"writing the manifest (SHA-256 of {len(files)} files, {total_gb:.1f} GB) ...", flush=True)
    return write_manifest(dataset_dir, files, counts, source=f"fastMRI knee single-coil from {raw_dir}", subset=subset)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m workloads.fastmri.prepare", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-dir", required=True, help=f"the benchmark data dir; volumes go to DATA_DIR/{DATASET_NAME}/")
    parser.add_argument("--raw-dir", help=f"where the archives or unpacked folders are (default: DATA_DIR/{DATASET_NAME})")
    parser.add_argument("--subset", action="store_true", help="accept a set smaller than the release (never scored)")
    parser.add_argument("--copy", action="store_true", help="copy volumes from an unpacked folder instead of linking them")
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir).expanduser()
    raw_dir = Path(args.raw_dir).expanduser() if args.raw_dir else data_dir / DATASET_NAME
    try:
        manifest = prepare(raw_dir, data_dir, args.subset, args.copy)
    except PreparationError as error:
        print(f"fastmri preparation failed: {error}", file=sys.stderr)
        return 1
    print(f"fastMRI ready in {manifest.parent} ({manifest.name} written; splits in {INDEX_NAME})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
