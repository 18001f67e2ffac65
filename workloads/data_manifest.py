"""A manifest written *last* by every preparation command, so a partial or corrupt data dir is detected.

`manifest.json` lists each prepared file with its size and SHA-256 plus the
example counts; a data dir without it was never finished. A manifest marked
`"subset": true` comes from a small raw dump (tests, smoke runs): its counts
replace the reference split sizes and runs on it are never scored.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, Iterable, Optional

from workloads.base import DataStatus

MANIFEST_NAME = "manifest.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(dataset_dir: Path, files: Iterable[str], counts: Dict[str, int], source: str, subset: bool = False) -> Path:
    entries = {name: {"bytes": (dataset_dir / name).stat().st_size, "sha256": file_sha256(dataset_dir / name)} for name in files}
    manifest = {"files": entries, "counts": counts, "source": source, "subset": subset}
    target = dataset_dir / MANIFEST_NAME
    temporary = target.with_suffix(".tmp")
    temporary.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    os.replace(temporary, target)
    return target


def check_manifest(dataset_dir: Path, prepare_command: str, expected_counts: Optional[Dict[str, int]] = None) -> DataStatus:
    """Missing dir -> a skip; anything partial, resized or miscounted -> a named problem."""
    if not dataset_dir.is_dir() or not any(dataset_dir.iterdir()):
        return DataStatus(ready=False, missing=True, reason=f"no prepared data at {dataset_dir}; prepare it with: {prepare_command}")
    manifest_path = dataset_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        return DataStatus(
            ready=False,
            reason=f"{dataset_dir} is incomplete ({MANIFEST_NAME} is missing, so preparation never finished); rerun: {prepare_command}",
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError:
        return DataStatus(ready=False, reason=f"{manifest_path} is unreadable; rerun: {prepare_command}")
    for name, entry in manifest.get("files", {}).items():
        path = dataset_dir / name
        if not path.is_file():
            return DataStatus(ready=False, reason=f"{path} is missing; rerun: {prepare_command}")
        if path.stat().st_size != entry["bytes"]:
            return DataStatus(
                ready=False,
                reason=f"{path} has {path.stat().st_size} bytes but the manifest says {entry['bytes']}; rerun: {prepare_command}",
            )
    for split, count in (expected_counts or {}).items():
        found = manifest.get("counts", {}).get(split)
        if manifest.get("subset") and isinstance(found, int) and found > 0:
            continue
        if found != count:
            return DataStatus(
                ready=False,
                reason=f"{dataset_dir} has {found} examples in {split!r}, expected {count}; rerun: {prepare_command}",
            )
    return DataStatus(ready=True)


def subset_counts(dataset_dir: Path) -> Optional[Dict[str, int]]:
    """The split sizes of a subset data dir, or None for full (reference-sized) data."""
    try:
        manifest = json.loads((dataset_dir / MANIFEST_NAME).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return dict(manifest["counts"]) if manifest.get("subset") else None
