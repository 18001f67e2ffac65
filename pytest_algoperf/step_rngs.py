"""The per-step rngs of the training loop, derived while the submission's clock is stopped.

Upstream's runner derives them at the top of every step, on the clock:

    step_rng = prng.fold_in(loop_rng, global_step)
    data_select_rng, update_rng, prep_eval_rng, eval_rng = prng.split(step_rng, 4)

(v0.5's runner split three ways: data_select, update, eval.) That is the
harness's work, not the submission's, yet it was billed to the submission: on
MNIST it added over a third to the measured step time. `StepRngs` computes a
block of steps ahead, while the clock is stopped (before the first step and
after each eval), so the timed loop only looks its rows up.

Guarantee: `for_step(k)` returns exactly the rows of
`prng.split(prng.fold_in(loop_rng, k), split_count)`, as int32 arrays of shape
(2,), whether the step was prepared ahead or computed on demand because the
block ran out (which is correct, only slower, and on the clock).

It is cheaper than repeating that expression for two reasons: `fold_in` draws
its new seed from `loop_rng` alone, so `fold_in(loop_rng, k) == [c, k]` with
the same `c` for every step, drawn once here; and each step's `split` reseeds a
reused RandomState (see random_utils) instead of building one.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

from pytest_algoperf.api import random_utils as prng

SPLIT_COUNTS = (3, 4)  # v0.5: data_select, update, eval; v0.6 adds prep_eval before eval

# The shortest block. The rate seen at the first eval (one step, often with
# compilation in it) says little, so this floor is what covers the first eval
# period: about 0.4 s to compute off the clock and 512 KiB, enough for MNIST's
# 10 s period at over 1,500 steps/s. Rows not used are kept for the next block.
DEFAULT_MIN_BLOCK = 16384
# A bound on one block's memory (32 bytes a step at split_count 4) and compute time.
DEFAULT_MAX_BLOCK = 1 << 20


class StepRngs:
    """The rng rows of each training step, from a block computed ahead or on demand.

    Not thread-safe: one instance belongs to one training loop.
    """

    def __init__(self, loop_rng: Any, split_count: int = 4) -> None:
        if split_count not in SPLIT_COUNTS:
            raise ValueError(f"split_count must be one of {SPLIT_COUNTS} (upstream's runners), got {split_count!r}.")
        self.split_count = split_count
        # fold_in(loop_rng, k) is [fold_in(loop_rng, anything)[0], k]: the first word never depends on k.
        self._folded_seed = prng.fold_in(loop_rng, 0)[0]
        self._first = 0
        self._block = np.empty((0, split_count, 2), dtype=np.int32)
        self.on_demand_steps = 0  # steps that missed the block; each cost a derivation on the clock

    def _rows(self, step: int) -> np.ndarray:
        return prng.split([self._folded_seed, step], self.split_count)

    @property
    def prepared_steps(self) -> range:
        """The steps the current block holds."""
        return range(self._first, self._first + len(self._block))

    def prepare(self, first_step: int, count: int) -> None:
        """Holds the rows of steps first_step .. first_step + count - 1; call it while the clock is stopped.

        Rows already computed for those steps are kept, so an over-long block
        from the previous call is not wasted; rows of earlier steps are dropped.
        """
        if first_step < 0 or count < 0:
            raise ValueError(f"prepare needs a non-negative first step and count, got {first_step} and {count}.")
        end = first_step + count
        old_end = self._first + len(self._block)
        if self._first <= first_step < old_end:
            kept = self._block[first_step - self._first:min(end, old_end) - self._first]
        else:
            kept = self._block[:0]  # no overlap at the start (or none at all): compute every row
        block = np.empty((count, self.split_count, 2), dtype=np.int32)
        block[:len(kept)] = kept
        for step in range(first_step + len(kept), end):
            block[step - first_step] = self._rows(step)
        self._first, self._block = first_step, block

    def for_step(self, step: int) -> Tuple[np.ndarray, ...]:
        """(data_select, update, prep_eval, eval) rngs of `step` (without prep_eval when split_count is 3)."""
        index = step - self._first
        if 0 <= index < len(self._block):
            # A copy, as upstream's fresh array: a submission that writes into its rng cannot change the block.
            return tuple(self._block[index].copy())
        self.on_demand_steps += 1
        return tuple(self._rows(step))


def steps_until_next_eval(
    steps_per_second: Optional[float],
    eval_period_sec: float,
    margin: float = 2.0,
    minimum: int = DEFAULT_MIN_BLOCK,
    maximum: int = DEFAULT_MAX_BLOCK,
    remaining_steps: Optional[int] = None,
) -> int:
    """How many steps to prepare so that the block lasts until the next eval.

    `steps_per_second` is the observed rate (steps over accumulated submission
    time); None or a non-positive rate (nothing observed yet) gives `minimum`.
    `margin` is generous because running short costs on-clock time while the
    surplus is kept for the next block. `remaining_steps` (e.g. what is left
    of max_global_steps) caps the answer when known.
    """
    wanted = minimum
    if steps_per_second is not None and steps_per_second > 0 and math.isfinite(steps_per_second):
        if math.isfinite(eval_period_sec):
            wanted = max(minimum, math.ceil(steps_per_second * eval_period_sec * margin))
        else:
            wanted = maximum  # evals only at the end: as far ahead as allowed
    wanted = min(wanted, maximum)
    if remaining_steps is not None:
        wanted = min(wanted, max(0, remaining_steps))
    return int(wanted)
