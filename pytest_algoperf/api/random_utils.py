"""AlgoPerf's numpy random-number helpers (reference §2.5, the PyTorch path).

A random state is an int array of shape (2,). `fold_in` returns a *list*
`[new_seed, data]` on purpose: upstream feeds that list to the next `split` as
a multi-word seed, which is how `data` gets mixed in.
"""

from __future__ import annotations

from typing import Any, List, Union

import numpy as np

MAX_INT32 = 2**31 - 1

SeedType = Union[int, List[int], np.ndarray]


def _signed_to_unsigned(seed: Any) -> Any:
    if isinstance(seed, (int, np.integer)):
        return int(seed) % MAX_INT32
    if isinstance(seed, list):
        return [_signed_to_unsigned(s) for s in seed]
    if isinstance(seed, np.ndarray):
        return np.array([_signed_to_unsigned(s) for s in seed.tolist()], dtype=np.int64)
    raise TypeError(f"Cannot use {type(seed).__name__} as a seed; expected an int, a list of ints or a numpy array.")


def split(seed: SeedType, num: int = 2) -> np.ndarray:
    rng = np.random.RandomState(_signed_to_unsigned(seed))
    return rng.randint(0, MAX_INT32, dtype=np.int32, size=[num, 2])


def fold_in(seed: SeedType, data: Any) -> List[Any]:
    rng = np.random.RandomState(_signed_to_unsigned(seed))
    new_seed = rng.randint(0, MAX_INT32, dtype=np.int32)
    return [new_seed, data]


def PRNGKey(seed: int) -> np.ndarray:  # noqa: N802  (upstream's name)
    return split(seed, 2)[0]
