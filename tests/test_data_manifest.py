"""Manifests: written last, checked for partial or resized files, and subset data dirs."""

import json

from workloads.data_manifest import check_manifest, subset_counts, write_manifest
from workloads.registry import get_workload


def _dataset(tmp_path, subset, counts):
    directory = tmp_path / "mnist"
    directory.mkdir()
    (directory / "a.bin").write_bytes(b"12345")
    write_manifest(directory, ["a.bin"], counts, source="test", subset=subset)
    return directory


def test_full_data_must_have_the_reference_counts(tmp_path):
    directory = _dataset(tmp_path, subset=False, counts={"train": 10})
    status = check_manifest(directory, "PREPARE", {"train": 60_000})
    assert not status.ready and "has 10 examples in 'train', expected 60000; rerun: PREPARE" in status.reason
    assert subset_counts(directory) is None


def test_subset_data_is_accepted_and_its_sizes_replace_the_reference(tmp_path):
    directory = _dataset(tmp_path, subset=True, counts={"train": 10, "validation": 4})
    assert check_manifest(directory, "PREPARE", {"train": 60_000}).ready
    assert json.loads((directory / "manifest.json").read_text())["subset"] is True
    workload = get_workload("mnist")
    workload.use_prepared_data(str(tmp_path))
    assert workload.on_subset_data
    assert workload.split_size("validation", 10_000) == 4
    assert workload.split_size("test", 10_000) == 10_000
