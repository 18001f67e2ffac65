"""finewebedu_lm input pipeline: 1,025-token windows, the 1,000-window shuffle buffer, padded eval batches.

Most streams here hold token i at position i (the positions stay below 65,536), so every token says
where it came from.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from workloads.base import DataProblem
from workloads.data_manifest import write_manifest
from workloads.finewebedu_lm import input_pipeline as pipeline
from workloads.finewebedu_lm.input_pipeline import DATASET_NAME, TOKEN_FILES

W = 1025


def _write(dataset_dir, train, validation):
    dataset_dir.mkdir(parents=True, exist_ok=True)
    for split, tokens in (("train", train), ("validation", validation)):
        np.save(dataset_dir / TOKEN_FILES[split], np.asarray(tokens, dtype=np.uint16))
    counts = {"train": len(train) // W, "validation": len(validation) // W}
    write_manifest(dataset_dir, list(TOKEN_FILES.values()), counts, source="test", subset=True)
    return pipeline.open_prepared(dataset_dir)


@pytest.fixture
def positions(tmp_path):
    """train: 60 windows and 500 tokens more, token = position; validation: 10 windows, token = 30,000 + position."""
    return _write(tmp_path / DATASET_NAME, np.arange(60 * W + 500), 30_000 + np.arange(10 * W))


def _train(data, batch_size, seed, count):
    return list(itertools.islice(pipeline.numpy_batches(data, "train", batch_size, seed), count))


# --- windows ---------------------------------------------------------------------------------


def test_streams_are_cut_into_non_overlapping_windows_with_targets_shifted_by_one(positions):
    assert positions.num_windows == {"train": 60, "validation": 10}  # the incomplete tail is dropped
    batches = _train(positions, 8, seed=3, count=7)
    for batch in batches:
        inputs, targets = batch["inputs"], batch["targets"]
        assert inputs.shape == targets.shape == (8, 1024)
        starts = inputs[:, 0]
        assert (starts % W == 0).all() and (starts < 60 * W).all()
        np.testing.assert_array_equal(inputs, starts[:, None] + np.arange(1024))
        np.testing.assert_array_equal(targets, inputs + 1)
    targets = np.concatenate([batch["targets"].ravel() for batch in batches])
    assert not np.isin(np.arange(0, 60 * W, W), targets).any()  # a window's first token is never a target


def test_batches_have_the_reference_dtypes_and_train_has_no_weights(positions):
    train = _train(positions, 4, seed=0, count=1)[0]
    assert set(train) == {"inputs", "targets"}
    assert train["inputs"].dtype == np.int32 and train["targets"].dtype == np.int64
    evaluation = next(pipeline.numpy_batches(positions, "validation", 4, num_batches=1))
    assert evaluation["inputs"].dtype == np.int32 and evaluation["targets"].dtype == np.int64
    assert evaluation["weights"].dtype == np.float32 and evaluation["weights"].shape == (4, 1024)


# --- the shuffle buffer ----------------------------------------------------------------------


def test_the_shuffle_buffer_holds_1000_windows_and_each_epoch_is_a_permutation():
    n = 6000
    order = pipeline.ShuffleBuffer(n, pipeline.SHUFFLE_BUFFER_SIZE, pipeline.seed_generator(7)).take(n + 10)
    assert sorted(order.tolist()) == list(range(n))
    lead = order - np.arange(n)
    # Window k enters the buffer after output k - 1000, so it comes out at position k - 999 or later;
    # a buffer of 1,000 reaches that bound, a smaller one could not, a larger one would pass it.
    assert lead.max() == 999
    assert order[0] < 1000 and (order[-1000:] >= n - 2000).mean() > 0.5  # the last 1,000 drain what is left, shuffled
    assert sorted(order[-1000:].tolist()) != order[-1000:].tolist()
    assert (np.abs(lead) < 0.5 * n).mean() > 0.99 and (lead != 0).mean() > 0.99  # local jitter, not a full shuffle


def test_the_first_draw_is_uniform_over_the_buffer():
    firsts = [int(pipeline.ShuffleBuffer(5000, 1000, pipeline.seed_generator(seed)).take(1)[0]) for seed in range(400)]
    assert max(firsts) < 1000 and 400 < np.mean(firsts) < 600 and len(set(firsts)) > 300


def test_train_batches_cover_each_epoch_once_reshuffle_and_drop_the_partial_batch():
    batches = list(itertools.islice(pipeline.train_index_batches(60, 8, seed=5), 14))
    first, second = np.concatenate(batches[:7]), np.concatenate(batches[7:])
    assert len(set(first.tolist())) == len(set(second.tolist())) == 56  # 7 full batches, 4 windows dropped
    assert not np.array_equal(first, second)
    long = np.concatenate(list(itertools.islice(pipeline.train_index_batches(5000, 64, seed=5), 60)))
    assert (long - np.arange(len(long)) <= 999).all() and len(set(long.tolist())) == len(long)


def test_the_same_seed_gives_the_same_batches_and_another_seed_another_order(positions):
    one = _train(positions, 8, seed=-(2**31), count=10)
    again = _train(positions, 8, seed=-(2**31), count=10)
    other = _train(positions, 8, seed=2**31 - 1, count=10)
    assert all(np.array_equal(a["inputs"], b["inputs"]) for a, b in zip(one, again))
    assert not all(np.array_equal(a["inputs"], b["inputs"]) for a, b in zip(one, other))


def test_a_training_stream_shorter_than_one_batch_is_an_error(positions):
    with pytest.raises(ValueError, match="60 windows of 1025 tokens, fewer than one batch of 64"):
        next(pipeline.numpy_batches(positions, "train", 64, 0))


# --- eval batches ----------------------------------------------------------------------------


def test_eval_batches_run_in_order_and_pad_the_last_batch_with_zero_weight_rows(positions):
    batches = list(pipeline.numpy_batches(positions, "validation", 4))
    assert len(batches) == 3
    inputs = np.concatenate([batch["inputs"] for batch in batches])
    weights = np.concatenate([batch["weights"] for batch in batches])
    starts = 30_000 + W * np.arange(10)
    np.testing.assert_array_equal(inputs[:10], starts[:, None] + np.arange(1024))
    np.testing.assert_array_equal(np.concatenate([b["targets"] for b in batches])[:10], inputs[:10] + 1)
    assert (inputs[10:] == 0).all() and (np.concatenate([b["targets"] for b in batches])[10:] == 0).all()
    assert (weights[:10] == 1.0).all() and (weights[10:] == 0.0).all()


def test_num_batches_limits_an_eval_pass_and_repeat_brings_the_same_batches_again(positions):
    two = list(pipeline.numpy_batches(positions, "validation", 4, num_batches=2))
    assert len(two) == 2 and all((batch["weights"] == 1.0).all() for batch in two)
    repeated = list(itertools.islice(pipeline.numpy_batches(positions, "validation", 4, num_batches=2, repeat=True), 5))
    for number, batch in enumerate(repeated):
        np.testing.assert_array_equal(batch["inputs"], two[number % 2]["inputs"])
    assert len(list(pipeline.numpy_batches(positions, "validation", 4, num_batches=50))) == 3  # as tf.data's take()


def test_eval_train_reads_the_training_stream_from_its_start(positions):
    batch = next(pipeline.numpy_batches(positions, "eval_train", 5, seed=9, num_batches=1))
    np.testing.assert_array_equal(batch["inputs"], (W * np.arange(5))[:, None] + np.arange(1024))
    assert (batch["weights"] == 1.0).all()


def test_unknown_splits_are_named(positions):
    with pytest.raises(ValueError, match="no test split"):
        pipeline.numpy_batches(positions, "test", 4)
    with pytest.raises(ValueError, match="Unknown split 'dev'"):
        pipeline.numpy_batches(positions, "dev", 4)


# --- the prepared dir and the device side ------------------------------------------------------


def test_open_prepared_is_cached_until_the_data_is_prepared_again(tmp_path):
    first = _write(tmp_path / DATASET_NAME, np.arange(3 * W), np.arange(2 * W))
    assert pipeline.open_prepared(tmp_path / DATASET_NAME) is first
    second = _write(tmp_path / DATASET_NAME, np.arange(4 * W), np.arange(2 * W))
    assert second is not first and second.num_windows["train"] == 4
    (tmp_path / DATASET_NAME / TOKEN_FILES["validation"]).unlink()
    with pytest.raises(DataProblem, match="validation_tokens.npy cannot be read"):
        pipeline.PreparedTokens(tmp_path / DATASET_NAME)


def test_torch_batches_keep_the_dtypes_and_give_each_rank_its_rows(positions):
    torch = pytest.importorskip("torch")
    cpu = torch.device("cpu")
    numpy_batch = _train(positions, 8, seed=1, count=1)[0]
    whole = next(pipeline.torch_batches(pipeline.prefetched(pipeline.numpy_batches(positions, "train", 8, 1)), cpu))
    assert whole["inputs"].dtype == torch.int32 and whole["targets"].dtype == torch.int64
    assert torch.equal(whole["inputs"], torch.from_numpy(numpy_batch["inputs"]))
    rank_1 = next(pipeline.torch_batches(pipeline.numpy_batches(positions, "train", 8, 1), cpu, rank=1, world_size=2))
    assert torch.equal(rank_1["targets"], torch.from_numpy(numpy_batch["targets"][4:]))
    evaluation = next(pipeline.torch_batches(pipeline.numpy_batches(positions, "validation", 4, num_batches=1), cpu))
    assert evaluation["weights"].dtype == torch.float32


def test_batches_from_the_prepared_sample_are_windows_of_its_streams(tmp_path):
    pytest.importorskip("pyarrow")
    from workloads.finewebedu_lm import sample_data, tokenizer

    if tokenizer.ranks_path() is None:
        pytest.skip(f"needs GPT-2's ranks at {tokenizer.installed_ranks_path()}; run bash scripts/setup_env.sh")
    dataset_dir = sample_data.write_prepared_data_dir(tmp_path)
    data = pipeline.open_prepared(dataset_dir)
    train = np.load(dataset_dir / TOKEN_FILES["train"])
    windows = train[: data.num_windows["train"] * W].reshape(-1, W)
    batch = _train(data, 16, seed=0, count=1)[0]
    rows = np.concatenate([batch["inputs"], batch["targets"][:, -1:]], axis=1)
    assert all((windows == row).all(axis=1).any() for row in rows)
    validation = list(pipeline.numpy_batches(data, "validation", 4))
    assert len(validation) == -(-data.num_windows["validation"] // 4)
    assert sum(float(b["weights"].sum()) for b in validation) == data.num_windows["validation"] * 1024
    text = tokenizer.load_encoding().decode(validation[0]["inputs"][0].tolist())
    assert text.isascii() and "licen" in text.lower()  # real English licence text
