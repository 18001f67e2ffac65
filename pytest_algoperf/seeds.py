"""Seeds derived by hashing names, so every process (xdist workers included) agrees."""

from __future__ import annotations

import hashlib

from pytest_algoperf.api.random_utils import MAX_INT32


def derive_seed(*parts: object) -> int:
    """A seed in [1, 2**31 - 1) from the parts' text; 0 is avoided since upstream reads it as 'unset'."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") % (MAX_INT32 - 1) + 1


def trial_seed(base_seed: int, workload: str, study: int, trial: int, scope: str = "study") -> int:
    """The seed of one trial.

    scope "study" (the default) gives every trial of a (workload, study) the same seed, as official scoring
    passes one --rng_seed per study and workload and upstream's runner keeps it across tuning points: trials
    then differ only in their hyperparameters. scope "trial" hashes a seed per trial (data order and init
    differ between trials too, which widens the best-of-5 pick).
    """
    if scope == "trial":
        return derive_seed(base_seed, workload, f"study_{study}", f"trial_{trial}")
    return derive_seed(base_seed, workload, f"study_{study}")


def search_order_seed(base_seed: int) -> int:
    return derive_seed(base_seed, "halton_order")
