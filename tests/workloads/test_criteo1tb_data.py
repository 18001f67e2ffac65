"""Criteo data path: raw TSV day files -> prepared chunks -> batches with the reference's splits and order."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workloads.base import DataProblem
from workloads.criteo1tb import input_pipeline, prepare, prepared_data
from workloads.criteo1tb.features import parse_block
from workloads.criteo1tb.sample_data import write_day, write_raw_dump
from workloads.registry import get_workload

# Day 0 whole (cut here every 400 lines), day 1 already split by 300, day 3 gzipped, day 23 split by 100:
# 21 day-23 chunks = 19 test + 2 validation.
LINES = {0: 1_000, 1: 700, 3: 500, 23: 2_100}
SPLIT_DAYS = {1: 300, 23: 100}


def _prepare(raw_dir, data_dir, *extra):
    return prepare.main(["--data-dir", str(data_dir), "--raw-dir", str(raw_dir), "--workers", "1", *extra])


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("criteo")
    write_raw_dump(root / "raw", LINES, split_days=SPLIT_DAYS, gzipped_days=[3])
    assert _prepare(root / "raw", root / "data", "--subset", "--lines-per-file", "400", "--workers", "2") == 0
    return root


def _chunk_arrays(dataset_dir, name):
    inputs = np.fromfile(dataset_dir / f"{name}.inputs.f32", dtype="<f4").reshape(-1, 39)
    return inputs, np.fromfile(dataset_dir / f"{name}.targets.f32", dtype="<f4")


def test_every_raw_form_becomes_the_references_chunks(prepared):
    dataset_dir = prepared / "data" / "criteo1tb"
    chunks = {chunk.name: chunk.rows for chunk in prepared_data.read_index(dataset_dir)}
    assert [chunks[f"day_0_0{i}"] for i in range(3)] == [400, 400, 200]  # like `split -l`
    assert [chunks[f"day_1_0{i}"] for i in range(3)] == [300, 300, 100]  # split files keep their names
    assert [chunks[f"day_3_0{i}"] for i in range(2)] == [400, 100]  # from day_3.gz
    assert sum(1 for name in chunks if name.startswith("day_23_")) == 21
    manifest = json.loads((dataset_dir / "manifest.json").read_text())
    assert manifest["subset"] is True
    assert manifest["counts"] == {"train": 2_200, "validation": 200, "test": 1_900}
    assert prepared_data.split_of("day_23_18") == "test" and prepared_data.split_of("day_23_19") == "validation"


def test_prepared_rows_are_the_parsed_raw_lines_in_order(prepared):
    dataset_dir = prepared / "data" / "criteo1tb"
    expected_inputs, expected_targets = parse_block((prepared / "raw" / "day_0").read_bytes(), "day_0")
    arrays = [_chunk_arrays(dataset_dir, f"day_0_0{i}") for i in range(3)]
    np.testing.assert_array_equal(np.concatenate([a[0] for a in arrays]), expected_inputs)
    np.testing.assert_array_equal(np.concatenate([a[1] for a in arrays]), expected_targets)
    assert 0 < expected_targets.mean() < 0.5  # labels are clicks


def test_workload_sees_the_subset_sizes(prepared):
    workload = get_workload("criteo1tb_test")
    assert workload.data_status(str(prepared / "data")).ready
    workload.use_prepared_data(str(prepared / "data"))
    assert (workload.num_train_examples, workload.num_validation_examples, workload.num_test_examples) == (2_200, 200, 1_900)
    assert workload.num_eval_train_examples == 2_200  # the standard 8,192 is more than the dump holds
    reference = get_workload("criteo1tb")
    assert (reference.num_train_examples, reference.num_validation_examples, reference.num_test_examples) == (
        4_195_197_692, 83_274_637, 95_000_000)
    assert reference.num_eval_train_examples == 83_279_872


def test_missing_partial_and_damaged_data_are_told_apart(prepared, tmp_path):
    workload = get_workload("criteo1tb")
    status = workload.data_status(str(tmp_path))
    assert status.missing
    assert f"python -m workloads.criteo1tb.prepare --data-dir {tmp_path} --raw-dir {tmp_path}/criteo1tb_raw" in status.reason
    # A full-size workload refuses nothing on a subset; the counts are the subset's.
    assert workload.data_status(str(prepared / "data")).ready

    copy = tmp_path / "copy" / "criteo1tb"
    copy.mkdir(parents=True)
    for path in (prepared / "data" / "criteo1tb").iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    with open(copy / "day_23_20.inputs.f32", "r+b") as handle:
        handle.truncate(100)
    status = workload.data_status(str(tmp_path / "copy"))
    assert not status.ready and not status.missing and "day_23_20.inputs.f32 has 100 bytes" in status.reason
    with pytest.raises(DataProblem, match="day_23_20.inputs.f32 has 100 bytes"):
        next(input_pipeline.numpy_batches(copy, "validation", 200, seed=0))
    (copy / "manifest.json").unlink()
    assert "preparation never finished" in workload.data_status(str(tmp_path / "copy")).reason


def test_a_partial_dump_needs_subset_and_enough_eval_day_chunks(tmp_path, capsys):
    write_raw_dump(tmp_path / "raw", {0: 50, 23: 300}, split_days={23: 100})
    assert _prepare(tmp_path / "raw", tmp_path / "data") == 1
    assert "days 1, 2, 3" in capsys.readouterr().err
    assert _prepare(tmp_path / "raw", tmp_path / "data", "--subset") == 1
    assert "day 23 gave 3 chunks; its first 19 are the test split" in capsys.readouterr().err
    assert not (tmp_path / "data" / "criteo1tb" / "manifest.json").exists()
    with pytest.raises(SystemExit):
        _prepare(tmp_path / "raw", tmp_path / "data", "--lines-per-file", "10")  # changes the splits: needs --subset


def test_a_malformed_raw_file_is_named_and_nothing_is_marked_ready(tmp_path, capsys):
    write_raw_dump(tmp_path / "raw", {0: 30, 23: 40}, split_days={23: 2})
    write_day(tmp_path / "raw" / "day_0", ["1\t2\t3"])
    assert _prepare(tmp_path / "raw", tmp_path / "data", "--subset") == 1
    assert "day_0: line 1 has 3 tab-separated fields, expected 40" in capsys.readouterr().err
    assert not (tmp_path / "data" / "criteo1tb" / "manifest.json").exists()


# --- batching -------------------------------------------------------------------------------------


def _batches(prepared, split, batch_size, count, **kwargs):
    iterator = input_pipeline.numpy_batches(prepared / "data" / "criteo1tb", split, batch_size, **kwargs)
    return [next(iterator)[0] for _ in range(count)]


def _row_keys(batch):
    return [row.tobytes() for row in batch["inputs"]]


def test_training_reads_files_whole_in_a_seeded_order_and_drops_each_passs_tail(prepared):
    dataset_dir = prepared / "data" / "criteo1tb"
    rows = {}
    for chunk in prepared_data.chunks_of_split(prepared_data.read_index(dataset_dir), "train"):
        inputs, _ = _chunk_arrays(dataset_dir, chunk.name)
        for position, row in enumerate(inputs):
            rows.setdefault(row.tobytes(), (chunk.name, position))
    batches = _batches(prepared, "train", 300, 7, seed=5)  # one pass: 2,200 rows -> 7 batches, 100 dropped
    assert all(len(batch["inputs"]) == 300 and "weights" not in batch for batch in batches)
    origins = [rows[key] for batch in batches for key in _row_keys(batch)]
    assert len(set(origins)) == 2_100
    # Consecutive rows of a file stay consecutive: the stream only jumps at file boundaries.
    jumps = sum(1 for a, b in zip(origins, origins[1:]) if not (a[0] == b[0] and b[1] == a[1] + 1))
    assert jumps <= 8  # 8 training files, so at most 8 places where the stream moves to another file
    again = _batches(prepared, "train", 300, 7, seed=5)
    assert all(np.array_equal(a["inputs"], b["inputs"]) for a, b in zip(batches, again))
    other = _batches(prepared, "train", 300, 1, seed=6)
    assert not np.array_equal(other[0]["inputs"], batches[0]["inputs"])
    with pytest.raises(ValueError, match="fewer than one batch"):
        _batches(prepared, "train", 5_000, 1, seed=0)


def test_validation_is_read_in_file_order_and_the_last_batch_is_padded(prepared):
    dataset_dir = prepared / "data" / "criteo1tb"
    expected = np.concatenate([_chunk_arrays(dataset_dir, f"day_23_{i}")[0] for i in (19, 20)])
    batches = _batches(prepared, "validation", 128, 3, seed=0, num_batches=2, repeat=True)
    assert [len(batch["inputs"]) for batch in batches] == [128, 128, 128]
    assert batches[0]["weights"].sum() == 128 and batches[1]["weights"].tolist() == [1.0] * 72 + [0.0] * 56
    np.testing.assert_array_equal(np.concatenate([batches[0]["inputs"], batches[1]["inputs"][:72]]), expected)
    assert not batches[1]["inputs"][72:].any() and not batches[1]["targets"][72:].any()
    np.testing.assert_array_equal(batches[2]["inputs"], batches[0]["inputs"])  # repeats from the start
    test = _batches(prepared, "test", 2_000, 1, seed=0)[0]
    assert test["weights"].sum() == 1_900


def test_eval_train_takes_num_batches_from_a_new_file_order_each_pass(prepared):
    first, second, third = _batches(prepared, "eval_train", 1_000, 3, seed=1, num_batches=1, repeat=True)
    assert not np.array_equal(first["inputs"], second["inputs"])
    assert first["weights"].sum() == 1_000
    again = _batches(prepared, "eval_train", 1_000, 1, seed=1, num_batches=1, repeat=True)[0]
    np.testing.assert_array_equal(again["inputs"], first["inputs"])


def test_each_process_reads_its_own_slice_of_the_global_batch(prepared):
    whole = _batches(prepared, "validation", 160, 2, seed=0)
    shards = [_batches(prepared, "validation", 160, 2, seed=0, shard=rank, num_shards=2) for rank in (0, 1)]
    for step in range(2):
        for key in ("inputs", "targets"):
            np.testing.assert_array_equal(np.concatenate([shards[0][step][key], shards[1][step][key]]), whole[step][key])
    assert shards[1][1]["weights"].sum() == 0 and shards[0][1]["weights"].sum() == 40  # 200 rows: 160 + 40


def test_torch_batches_and_background_prefetch(prepared):
    import torch

    dataset_dir = prepared / "data" / "criteo1tb"
    batch = next(input_pipeline.torch_batches(dataset_dir, "train", 64, 0, torch.device("cpu")))
    assert batch["inputs"].shape == (64, 39) and batch["targets"].shape == (64,)
    assert batch["weights"].dtype == torch.float32 and batch["weights"].sum() == 64
    plain = [b for b, _ in input_pipeline.numpy_batches(dataset_dir, "validation", 64, seed=0)]
    fetched = [b for b, _ in input_pipeline.prefetch(input_pipeline.numpy_batches(dataset_dir, "validation", 64, seed=0), 2)]
    assert len(plain) == len(fetched) == 4
    assert all(np.array_equal(a["inputs"], b["inputs"]) for a, b in zip(plain, fetched))

    def broken():
        yield 1
        raise OSError("disk gone")

    stream = input_pipeline.prefetch(broken(), 2)
    assert next(stream) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(stream)
