"""AlgoPerf's numpy random-number helpers (reference §2.5, the PyTorch path).

A random state is an int array of shape (2,). `fold_in` returns a *list*
`[new_seed, data]` on purpose: upstream feeds that list to the next `split` as
a multi-word seed, which is how `data` gets mixed in.

Upstream builds a fresh `np.random.RandomState(seed)` for every call. Building
one costs about 0.2-0.3 ms (numpy first seeds it from OS entropy, then
reseeds it from `seed`), while reseeding an existing one with `.seed(seed)`
runs the same legacy seeding and resets the same cached state, so its draws
are identical at a fraction of the cost. Each thread therefore keeps its own
reusable RandomStates; every call reseeds the one it takes before drawing, so
no draw depends on an earlier call and the functions stay pure for callers.
"""

from __future__ import annotations

import threading
from typing import Any, List, Optional, Tuple, Union

import numpy as np

MAX_INT32 = 2**31 - 1

SeedType = Union[int, List[int], np.ndarray]

# One pool per thread: RandomState is not safe to share between threads. It is
# a pool rather than a single object so that a call re-entered on the same
# thread (a signal handler, say) takes a different RandomState instead of
# reseeding the one an outer call is about to draw from.
_PER_THREAD = threading.local()


def _signed_to_unsigned(seed: Any) -> Any:
    if isinstance(seed, (int, np.integer)):
        return int(seed) % MAX_INT32
    if isinstance(seed, list):
        return [_signed_to_unsigned(s) for s in seed]
    if isinstance(seed, np.ndarray):
        return np.array([_signed_to_unsigned(s) for s in seed.tolist()], dtype=np.int64)
    raise TypeError(f"Cannot use {type(seed).__name__} as a seed; expected an int, a list of ints or a numpy array.")


def _draw(seed: SeedType, size: Optional[Tuple[int, int]]) -> Any:
    """What `RandomState(seed).randint(0, MAX_INT32, dtype=np.int32, size=size)` returns, without building one."""
    pool = getattr(_PER_THREAD, "pool", None)
    if pool is None:
        pool = _PER_THREAD.pool = []
    state = pool.pop() if pool else np.random.RandomState()
    try:
        state.seed(_signed_to_unsigned(seed))
        return state.randint(0, MAX_INT32, dtype=np.int32, size=size)
    finally:
        pool.append(state)


def split(seed: SeedType, num: int = 2) -> np.ndarray:
    return _draw(seed, (num, 2))


def fold_in(seed: SeedType, data: Any) -> List[Any]:
    new_seed = _draw(seed, None)
    return [new_seed, data]


def PRNGKey(seed: int) -> np.ndarray:  # noqa: N802  (upstream's name)
    return split(seed, 2)[0]
