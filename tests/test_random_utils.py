"""The numpy rng helpers against values worked out from the reference's definitions (§2.5)."""

import numpy as np

from pytest_algoperf.api import random_utils as prng

MAX_INT32 = 2**31 - 1


def test_split_draws_int32_pairs_from_a_randomstate_seeded_with_the_seed():
    expected = np.random.RandomState(42).randint(0, MAX_INT32, dtype=np.int32, size=[3, 2])
    np.testing.assert_array_equal(prng.split(42, 3), expected)
    assert prng.split(42).shape == (2, 2)


def test_negative_seeds_are_taken_modulo_max_int32():
    np.testing.assert_array_equal(prng.split(-5), prng.split(MAX_INT32 - 5))


def test_prng_key_is_the_first_row_of_a_split():
    np.testing.assert_array_equal(prng.PRNGKey(7), prng.split(7, 2)[0])
    assert prng.PRNGKey(7).shape == (2,)


def test_fold_in_returns_the_list_of_a_fresh_seed_and_the_data():
    key = prng.PRNGKey(0)
    folded = prng.fold_in(key, 3)
    assert isinstance(folded, list)
    assert folded[1] == 3
    assert folded[0] == np.random.RandomState(key.astype(np.int64) % MAX_INT32).randint(0, MAX_INT32, dtype=np.int32)


def test_folded_list_seeds_the_next_split_as_a_multi_word_seed():
    key = prng.PRNGKey(0)
    folded = prng.fold_in(key, 3)
    expected = np.random.RandomState([int(folded[0]) % MAX_INT32, 3]).randint(0, MAX_INT32, dtype=np.int32, size=[4, 2])
    np.testing.assert_array_equal(prng.split(folded, 4), expected)
    assert not np.array_equal(prng.split(prng.fold_in(key, 3), 4), prng.split(prng.fold_in(key, 4), 4))
