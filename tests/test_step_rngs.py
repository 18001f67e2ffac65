"""Per-step rngs (step_rngs.py) and the reseeding random_utils against upstream's construction.

The reference below is worked out here from plain `np.random.RandomState`, one
fresh state per call as upstream does, so the tests do not lean on the code
under test.
"""

from __future__ import annotations

import threading
from typing import Any, List, Tuple

import numpy as np
import pytest

from pytest_algoperf import runner
from pytest_algoperf.api import random_utils as prng
from pytest_algoperf.step_rngs import DEFAULT_MAX_BLOCK, DEFAULT_MIN_BLOCK, StepRngs, steps_until_next_eval

MAX_INT32 = 2**31 - 1


def reference_unsigned(seed: Any) -> Any:
    if isinstance(seed, (int, np.integer)):
        return int(seed) % MAX_INT32
    if isinstance(seed, list):
        return [reference_unsigned(s) for s in seed]
    return np.array([reference_unsigned(s) for s in seed.tolist()], dtype=np.int64)


def reference_split(seed: Any, num: int) -> np.ndarray:
    return np.random.RandomState(reference_unsigned(seed)).randint(0, MAX_INT32, dtype=np.int32, size=[num, 2])


def reference_fold_in(seed: Any, data: Any) -> List[Any]:
    return [np.random.RandomState(reference_unsigned(seed)).randint(0, MAX_INT32, dtype=np.int32), data]


def reference_step(loop_rng: Any, step: int, split_count: int) -> Tuple[np.ndarray, ...]:
    return tuple(reference_split(reference_fold_in(loop_rng, step), split_count))


def assert_same_rows(actual: Tuple[np.ndarray, ...], expected: Tuple[np.ndarray, ...]) -> None:
    assert isinstance(actual, tuple) and len(actual) == len(expected)
    for got, want in zip(actual, expected):
        assert isinstance(got, np.ndarray) and got.dtype == np.int32 and got.shape == (2,)
        np.testing.assert_array_equal(got, want)


SEEDS = [
    0, 1, 7, -1, -5, MAX_INT32, MAX_INT32 + 3, 2**40 + 11, -(2**35),
    np.int32(-123), np.int64(2**33), np.uint32(4_000_000_000),
    [3, -4], [np.int32(-7), 2**31 + 5], [1, 2, 3, -4],
    np.array([5, -6], dtype=np.int32), np.array([-(2**31), 2**31 - 1], dtype=np.int32),
    np.array([2**40, -3], dtype=np.int64), np.array([9], dtype=np.uint8),
]


@pytest.mark.parametrize("seed", SEEDS, ids=repr)
def test_split_fold_in_and_prng_key_match_a_fresh_randomstate(seed):
    for num in (1, 2, 3, 4):
        got = prng.split(seed, num)
        assert got.dtype == np.int32 and got.shape == (num, 2)
        np.testing.assert_array_equal(got, reference_split(seed, num))
    folded = prng.fold_in(seed, 17)
    expected = reference_fold_in(seed, 17)
    assert isinstance(folded, list) and len(folded) == 2 and folded[1] == 17
    assert type(folded[0]) is type(expected[0]) is np.int32 and folded[0] == expected[0]
    if isinstance(seed, (int, np.integer)):
        key = prng.PRNGKey(seed)
        assert key.dtype == np.int32 and key.shape == (2,)
        np.testing.assert_array_equal(key, reference_split(seed, 2)[0])


def test_chained_keys_match_upstreams_construction_for_many_steps():
    key = prng.PRNGKey(2024)
    expected_key = reference_split(2024, 2)[0]
    for step in range(200):
        folded, expected_folded = prng.fold_in(key, step), reference_fold_in(expected_key, step)
        assert folded[0] == expected_folded[0] and folded[1] == step
        key, expected_key = prng.split(folded, 2)[1], reference_split(expected_folded, 2)[1]
        np.testing.assert_array_equal(key, expected_key)


def test_draws_do_not_depend_on_earlier_calls():
    first = prng.split(5, 4)
    prng.split([1, 2, 3], 9)
    prng.fold_in(np.array([-1, 8], dtype=np.int32), 0)
    np.testing.assert_array_equal(prng.split(5, 4), first)
    # A RandomState used for other draws (gaussians keep a cached value) is fully reset by seeding.
    state = np.random.RandomState(0)
    state.standard_normal()
    state.seed(5)
    np.testing.assert_array_equal(state.randint(0, MAX_INT32, dtype=np.int32, size=[4, 2]), first)


def test_threads_get_the_same_values_as_a_single_thread():
    seeds = [[worker, step] for worker in range(4) for step in range(150)]
    expected = {tuple(seed): reference_split(seed, 4) for seed in seeds}
    mismatches: List[Any] = []

    def work(worker: int) -> None:
        for step in range(150):
            if not np.array_equal(prng.split([worker, step], 4), expected[(worker, step)]):
                mismatches.append((worker, step))

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert mismatches == []


def test_bad_seeds_are_refused_as_before():
    with pytest.raises(TypeError, match="Cannot use float"):
        prng.split(1.5)
    with pytest.raises(ValueError):
        prng.split(np.zeros((2, 2), dtype=np.int32))  # numpy only takes 1-d seed arrays
    np.testing.assert_array_equal(prng.split(3), reference_split(3, 2))  # and a failure leaves nothing behind


LOOP_RNGS = [runner.trial_rngs(seed, ruleset).loop for seed in (0, 1, 4_294_967_295) for ruleset in ("self", "external")]


@pytest.mark.parametrize("split_count", [3, 4])
def test_on_demand_rows_are_upstreams_for_many_steps(split_count):
    for loop_rng in LOOP_RNGS[:2]:
        rngs = StepRngs(loop_rng, split_count)
        for step in list(range(600)) + [10_000, 123_456, 2**31 + 3]:
            assert_same_rows(rngs.for_step(step), reference_step(loop_rng, step, split_count))


@pytest.mark.parametrize("split_count", [3, 4])
def test_prepared_rows_are_upstreams_across_blocks_and_the_fallback(split_count):
    for loop_rng in LOOP_RNGS:
        expected = [reference_step(loop_rng, step, split_count) for step in range(400)]
        rngs = StepRngs(loop_rng, split_count)
        rngs.prepare(0, 1)  # before the first step: the first eval follows it
        assert_same_rows(rngs.for_step(0), expected[0])
        rngs.prepare(1, 150)
        for step in range(1, 170):  # runs 19 steps past the block: computed on demand
            assert_same_rows(rngs.for_step(step), expected[step])
        assert rngs.on_demand_steps == 19
        rngs.prepare(170, 100)
        rngs.prepare(200, 200)  # overlaps the previous block: its rows are kept, the rest computed
        assert rngs.prepared_steps == range(200, 400)
        for step in range(200, 400):
            assert_same_rows(rngs.for_step(step), expected[step])
        assert rngs.on_demand_steps == 19
        rngs.prepare(50, 30)  # before the current block: recomputed
        for step in range(50, 80):
            assert_same_rows(rngs.for_step(step), expected[step])
        assert_same_rows(rngs.for_step(399), expected[399])  # dropped with the block: on demand now
        assert rngs.on_demand_steps == 20


@pytest.mark.parametrize("split_count", [3, 4])
def test_prepared_equals_on_demand_in_a_loop_shaped_like_the_runners(split_count):
    loop_rng = runner.trial_rngs(9, "self").loop
    prepared, on_demand = StepRngs(loop_rng, split_count), StepRngs(loop_rng, split_count)
    rng = np.random.RandomState(0)
    step, next_prepare = 0, 0
    prepared.prepare(0, 1)
    while step < 1500:
        if step == next_prepare:  # "an eval": a block of uneven length, sometimes too short
            prepared.prepare(step, int(rng.randint(1, 120)))
            next_prepare = step + int(rng.randint(1, 150))
        assert_same_rows(prepared.for_step(step), on_demand.for_step(step))
        step += 1
    assert 0 < prepared.on_demand_steps < 1500 == on_demand.on_demand_steps


def test_rows_are_fresh_arrays_a_submission_may_write_into():
    loop_rng = runner.trial_rngs(3, "self").loop
    rngs = StepRngs(loop_rng)
    rngs.prepare(0, 10)
    rows = rngs.for_step(4)
    rows[1][:] = -1
    assert_same_rows(rngs.for_step(4), reference_step(loop_rng, 4, 4))


def test_split_count_is_upstreams_three_or_four():
    with pytest.raises(ValueError, match="split_count"):
        StepRngs(prng.PRNGKey(0), 2)
    with pytest.raises(ValueError):
        StepRngs(prng.PRNGKey(0)).prepare(-1, 3)


def test_block_estimate_covers_the_eval_period_with_a_margin_and_stays_bounded():
    assert steps_until_next_eval(None, 10.0) == steps_until_next_eval(0.0, 10.0) == DEFAULT_MIN_BLOCK
    assert steps_until_next_eval(2000.0, 10.0) == 40_000
    assert steps_until_next_eval(2000.0, 10.0, margin=1.5) == 30_000
    assert steps_until_next_eval(2.0, 10.0) == DEFAULT_MIN_BLOCK  # never under the minimum
    assert steps_until_next_eval(2.0, 10.0, minimum=1) == 40
    assert steps_until_next_eval(1e9, 10.0) == DEFAULT_MAX_BLOCK
    assert steps_until_next_eval(1000.0, float("inf")) == DEFAULT_MAX_BLOCK
    assert steps_until_next_eval(1000.0, 10.0, remaining_steps=1999) == 1999
    assert steps_until_next_eval(None, 10.0, remaining_steps=0) == 0
