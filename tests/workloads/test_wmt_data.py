"""WMT data: the official raw formats, the preparation command, and the input pipeline's semantics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pytest_algoperf.api import random_utils as prng
from workloads.registry import get_workload
from workloads.wmt import input_pipeline, prepare, raw_format, sample_data, tokenizer
from workloads.wmt.token_arrays import load_split

VOCAB_SIZE = 200  # small enough for the sample corpus; the reference's is 32,000
MAX_LENGTH = 32
LONG_PAIR = (" ".join(["Donaudampfschifffahrtsgesellschaftskapitän"] * 6), "A very long sentence " * 12)


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
    return sample_data.write_raw_dir(tmp_path_factory.mktemp("raw"), extra_train={"europarl_v7": [LONG_PAIR, ("", "orphan")]})


@pytest.fixture(scope="module")
def data_dir(raw_dir, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("data")
    prepare.main(["--data-dir", str(data_dir), "--raw-dir", str(raw_dir),
                  "--vocab-size", str(VOCAB_SIZE), "--max-length", str(MAX_LENGTH)])
    return data_dir


# --- raw formats -------------------------------------------------------------------------------


def test_plain_files_keep_lines_as_they_are_and_drop_pairs_with_an_empty_side(tmp_path):
    (tmp_path / "a.de").write_text(" Guten Tag \n\nZweiter Satz\nnur deutsch\n", encoding="utf-8")
    (tmp_path / "a.en").write_text(" Good day \nlonely\nSecond sentence\n\n", encoding="utf-8")
    pairs = raw_format.read_pairs(tmp_path / "a.de", tmp_path / "a.en")
    assert pairs == [(" Guten Tag ", " Good day "), ("Zweiter Satz", "Second sentence")]


def test_sgml_files_yield_the_text_of_their_segments(tmp_path):
    files = raw_format.ParallelFiles("t", "t-src.de.sgm", "t-ref.en.sgm")
    sample_data.write_sgml(tmp_path, files, [("Ein &amp; zwei", "One &amp; two"), ("Drei", "Three")], "t")
    assert (tmp_path / "t-src.de.sgm").read_text().splitlines()[3] == '<seg id="1">Ein &amp; zwei</seg>'
    # Entities stay as they are, as TFDS leaves them.
    assert raw_format.read_pairs(tmp_path / "t-src.de.sgm", tmp_path / "t-ref.en.sgm") == [
        ("Ein &amp; zwei", "One &amp; two"), ("Drei", "Three")]


def test_misaligned_or_half_missing_corpora_are_named(tmp_path):
    (tmp_path / "europarl-v7.de-en.de").write_text("eins\nzwei\n")
    (tmp_path / "europarl-v7.de-en.en").write_text("one\n")
    with pytest.raises(raw_format.RawDataError, match="europarl-v7.de-en.de has 3 segments but .*europarl-v7.de-en.en has 2"):
        raw_format.read_splits(tmp_path)
    (tmp_path / "europarl-v7.de-en.en").unlink()
    with pytest.raises(raw_format.RawDataError, match="not its parallel file europarl-v7.de-en.en"):
        raw_format.read_splits(tmp_path)


def test_each_eval_split_reads_either_official_format(tmp_path):
    sample_data.write_plain(tmp_path, raw_format.TRAIN_CORPORA[1], sample_data.SENTENCES)
    validation_sgml = raw_format.EVAL_SOURCES["validation"][1]
    test_plain = raw_format.EVAL_SOURCES["test"][1]
    sample_data.write_sgml(tmp_path, validation_sgml, sample_data.VALIDATION, "newstest2013")
    sample_data.write_plain(tmp_path, test_plain, sample_data.TEST)
    splits = raw_format.read_splits(tmp_path)
    assert splits.pairs["validation"] == sample_data.VALIDATION and splits.pairs["test"] == sample_data.TEST
    assert splits.missing_train_corpora == ["europarl_v7", "newscommentary_v12", "rapid_2016"]


# --- preparation -----------------------------------------------------------------------------


def test_preparation_writes_arrays_vocabulary_and_a_subset_manifest(data_dir, raw_dir):
    dataset_dir = data_dir / "wmt"
    manifest = json.loads((dataset_dir / "manifest.json").read_text())
    assert manifest["subset"] is True
    raw = raw_format.read_splits(raw_dir)
    assert manifest["counts"] == {"train": len(raw.pairs["train"]), "validation": 5, "test": 6, "eval_train": 5}
    assert len(raw.pairs["train"]) == 3 * len(sample_data.SENTENCES) + 1  # the half-empty pair is dropped
    metadata = json.loads((dataset_dir / "preparation.json").read_text())
    assert metadata["max_length"] == MAX_LENGTH and metadata["vocab_size"] == VOCAB_SIZE
    assert "training corpora missing: commoncrawl, rapid_2016" in metadata["subset_reasons"]

    vocab = tokenizer.Tokenizer(dataset_dir / tokenizer.MODEL_FILE_NAME)
    assert vocab.vocab_size == VOCAB_SIZE
    validation = load_split(dataset_dir, "validation")
    assert validation.inputs.tokens.dtype == np.uint16
    assert [vocab.decode(validation.targets[i]) for i in range(2)] == [pair[1] for pair in sample_data.VALIDATION[:2]]
    assert all(validation.inputs[i][-1] == tokenizer.EOS_ID for i in range(len(validation)))


def test_training_pairs_are_stored_in_the_fixed_shuffled_order_without_overlong_ones(data_dir, raw_dir):
    dataset_dir = data_dir / "wmt"
    vocab = tokenizer.Tokenizer(dataset_dir / tokenizer.MODEL_FILE_NAME)
    train = load_split(dataset_dir, "train")
    ordered = prepare.stored_training_order(raw_format.read_splits(raw_dir).pairs["train"])
    kept = [pair for pair in ordered if max(len(vocab.encode([side])[0]) for side in pair) <= MAX_LENGTH]
    assert LONG_PAIR not in kept and len(kept) < len(ordered)
    assert len(train) == len(kept)
    assert [vocab.decode(train.inputs[i]) for i in range(len(train))] == [pair[0] for pair in kept]
    assert ordered[:3] != raw_format.read_splits(raw_dir).pairs["train"][:3]  # not the corpus order
    assert max(train.inputs.lengths.max(), train.targets.lengths.max()) <= MAX_LENGTH


def test_the_vocabulary_is_trained_on_the_first_ten_million_bytes(tmp_path):
    pairs = [("eins", "one"), ("zwei", "two"), ("drei", "three")]
    written = tokenizer.write_training_text(iter(pairs), tmp_path / "text", max_bytes=10)
    # The limit is checked before each pair, so the pair crossing it is written whole.
    assert (tmp_path / "text").read_text() == "eins\none\nzwei\ntwo\n" and written == 18
    assert tokenizer.MAX_CORPUS_BYTES == 10_000_000 and tokenizer.VOCAB_SIZE == 32_000


def test_reference_sized_raw_data_must_have_the_reference_counts(tmp_path, monkeypatch):
    small_reference = {"train": 10, "validation": 5, "test": 6}
    monkeypatch.setattr(raw_format, "REFERENCE_COUNTS", small_reference)
    raw = sample_data.write_raw_dir(tmp_path / "raw", copies=1, corpora=[c.name for c in raw_format.TRAIN_CORPORA])
    args = ["--data-dir", str(tmp_path / "data"), "--raw-dir", str(raw), "--vocab-size", "32000"]
    with pytest.raises(prepare.PreparationError, match="train has 32 pairs but the reference has 10 .* Pass --subset"):
        prepare.main(args)


def test_data_status_names_missing_partial_and_damaged_data(data_dir, tmp_path):
    workload = get_workload("wmt_glu_tanh")
    status = workload.data_status(str(tmp_path))
    assert status.missing and "python -m workloads.wmt.prepare --data-dir" in status.reason and "--raw-dir" in status.reason
    assert workload.data_status(str(data_dir)).ready  # every variant reads the one wmt dir
    broken = tmp_path / "wmt"
    broken.mkdir()
    for path in (data_dir / "wmt").iterdir():
        (broken / path.name).write_bytes(path.read_bytes())
    with open(broken / "train.targets.tokens.npy", "ab") as handle:
        handle.write(b"\0\0")
    assert "train.targets.tokens.npy has" in workload.data_status(str(tmp_path)).reason
    (broken / "manifest.json").unlink()
    assert "preparation never finished" in workload.data_status(str(tmp_path)).reason


# --- input pipeline ----------------------------------------------------------------------------


def test_the_shuffle_buffer_draws_only_from_the_next_buffer_size_examples():
    order = list(input_pipeline.buffer_shuffle(100, 8, (0, 0)))
    assert sorted(order) == list(range(100))
    assert all(index < position + 8 for position, index in enumerate(order))
    assert list(input_pipeline.buffer_shuffle(10, 1, (0, 0))) == list(range(10))
    assert order == list(input_pipeline.buffer_shuffle(100, 8, (0, 0)))
    assert order != list(input_pipeline.buffer_shuffle(100, 8, (0, 1)))  # a new epoch reshuffles


def _example(source_length, target_length, start=3):
    source = np.append(np.arange(start, start + source_length - 1), 2)
    target = np.append(np.arange(start, start + target_length - 1), 2)
    return source, target


def test_packing_is_greedy_and_restarts_every_length_examples():
    examples = [_example(4, 3), _example(5, 6), _example(3, 2), _example(2, 9)]
    rows = list(input_pipeline.pack_rows(iter(examples), length=10))
    assert [[(len(s), len(t)) for s, t in row] for row in rows] == [[(4, 3), (5, 6)], [(3, 2)], [(2, 9)]]
    tiny = [_example(1, 1)] * 5  # would fit 4 to a row, but the 5th starts a new group of 4
    assert [len(row) for row in input_pipeline.pack_rows(iter(tiny), length=4)] == [4, 1]


def test_packed_rows_carry_positions_segments_and_weights_as_the_reference():
    # The reference's own docstring example (EOS = 1 there).
    row = [(np.array([8, 7, 1]), np.array([4, 1])), (np.array([2, 3, 4, 1]), np.array([5, 6, 1]))]
    batch = input_pipeline.packed_batch([row], length=10)
    assert batch["inputs"].tolist() == [[8, 7, 1, 2, 3, 4, 1, 0, 0, 0]]
    assert batch["inputs_segmentation"].tolist() == [[1, 1, 1, 2, 2, 2, 2, 0, 0, 0]]
    assert batch["inputs_position"].tolist() == [[0, 1, 2, 0, 1, 2, 3, 0, 0, 0]]
    assert batch["targets"].tolist() == [[4, 1, 5, 6, 1, 0, 0, 0, 0, 0]]
    assert batch["targets_segmentation"].tolist() == [[1, 1, 2, 2, 2, 0, 0, 0, 0, 0]]
    assert batch["targets_position"].tolist() == [[0, 1, 0, 1, 2, 0, 0, 0, 0, 0]]
    assert batch["weights"].tolist() == [[1, 1, 1, 1, 1, 0, 0, 0, 0, 0]]
    # Reference quirk: an unknown piece (id 0) shortens its sentence by one token and has no segment.
    unknown = input_pipeline.packed_batch(list(input_pipeline.pack_rows(iter([(np.array([5, 0, 7, 2]), np.array([9, 2]))]), 6)), 6)
    assert unknown["inputs"].tolist() == [[5, 0, 7, 0, 0, 0]] and unknown["inputs_segmentation"].tolist() == [[1, 0, 1, 0, 0, 0]]


def test_training_batches_are_packed_seeded_and_int64(data_dir):
    workload = get_workload("wmt")
    queue = workload._build_input_queue(prng.PRNGKey(0), "train", str(data_dir), 4)
    batch = next(queue)
    assert set(batch) == {"inputs", "inputs_position", "inputs_segmentation", "targets", "targets_position",
                          "targets_segmentation", "weights"}
    assert all(value.shape == (4, MAX_LENGTH) and value.dtype == torch.int64 for value in batch.values())
    assert torch.equal(batch["weights"], (batch["targets"] > 0).long())
    # Every segment's targets end with EOS.
    ends = (batch["targets_segmentation"][:, :-1] != batch["targets_segmentation"][:, 1:]) & (batch["targets"][:, :-1] > 0)
    assert (batch["targets"][:, :-1][ends] == tokenizer.EOS_ID).all()
    same_seed = next(workload._build_input_queue(prng.PRNGKey(0), "train", str(data_dir), 4))
    other_seed = next(workload._build_input_queue(prng.PRNGKey(1), "train", str(data_dir), 4))
    assert torch.equal(same_seed["inputs"], batch["inputs"]) and not torch.equal(other_seed["inputs"], batch["inputs"])
    many = [next(queue) for _ in range(30)]  # the stream repeats past the end of the 96 pairs
    assert all(b["inputs"].shape == (4, MAX_LENGTH) for b in many)


def test_eval_batches_keep_file_order_pad_the_last_batch_and_repeat(data_dir):
    workload = get_workload("wmt")
    queue = workload._build_input_queue(prng.PRNGKey(0), "validation", str(data_dir), 2, repeat_final_dataset=True, num_batches=3)
    batches = [next(queue) for _ in range(4)]
    assert set(batches[0]) == {"inputs", "targets", "weights"}
    assert [int(b["weights"][:, 0].sum()) for b in batches] == [2, 2, 1, 2]  # 5 sentences, then again
    assert batches[2]["targets"][1].sum() == 0 and batches[2]["weights"][1].sum() == 0  # the padding row
    assert torch.equal(batches[3]["inputs"], batches[0]["inputs"])
    assert all(torch.equal(b["weights"], (b["targets"] > 0).long()) for b in batches)
    vocab = workload.prepared_data(str(data_dir)).tokenizer
    first = batches[0]["inputs"][0].numpy()
    assert vocab.decode(first[first > 0]) == sample_data.VALIDATION[0][0]


def test_eval_train_draws_shuffled_training_sentences_anew_on_each_pass(data_dir):
    workload = get_workload("wmt")
    queue = workload._build_input_queue(prng.PRNGKey(3), "eval_train", str(data_dir), 4, repeat_final_dataset=True, num_batches=2)
    first_pass = [next(queue)["inputs"] for _ in range(2)]
    second_pass = [next(queue)["inputs"] for _ in range(2)]
    assert "inputs_position" not in next(queue)  # not packed
    assert not all(torch.equal(a, b) for a, b in zip(first_pass, second_pass))


def test_each_ddp_rank_keeps_its_block_of_rows():
    batch = {"inputs": np.arange(8).reshape(4, 2)}
    second_rank = next(input_pipeline.torch_batches(iter([batch]), torch.device("cpu"), rank=1, world_size=2))
    assert second_rank["inputs"].tolist() == [[4, 5], [6, 7]]
