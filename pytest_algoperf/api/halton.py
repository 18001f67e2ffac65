"""Hyperparameter search spaces and AlgoPerf's Halton construction (reference §1.6).

Two forms of `tuning_search_space.json`:

* dict form ``{"lr": {"min": a, "max": b, "scaling": "log"}, "wd": {"feasible_points": [...]}}``:
  quasi-random points from a scrambled, shifted Halton sequence;
* list form ``[{"lr": ..., "wd": ...}, ...]``: explicit points used in file order.

Upstream shuffles the Halton points with the *unseeded* global numpy RNG, so
the set of points is fixed but their order differs between processes. Here
the order comes from a seeded permutation, so every pytest-xdist worker gives
trial k the same point.
"""

from __future__ import annotations

import collections
import json
import math
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

import numpy as np

HALTON_SKIP = 100  # leading points dropped: they correlate across dimensions
SearchSpace = Union[Dict[str, Dict[str, Any]], List[Dict[str, Any]]]


class SearchSpaceError(ValueError):
    """A tuning search space that cannot be used, with what to change."""


def odd_primes_below(limit: int) -> List[int]:
    """All primes p with 2 < p < limit, ascending."""
    sieve = np.ones(limit, dtype=bool)
    sieve[:2] = False
    for candidate in range(2, int(limit**0.5) + 1):
        if sieve[candidate]:
            sieve[candidate * candidate :: candidate] = False
    return [int(p) for p in np.flatnonzero(sieve) if p > 2]


def halton_bases(num_dims: int) -> List[int]:
    """One prime base per dimension: the largest odd primes, leaving out the very largest.

    With a limit of 1000 (grown in steps of 1000 if more dimensions are needed)
    three dimensions get 977, 983 and 991 (997 is left out).
    """
    limit = 1000
    primes = odd_primes_below(limit)
    while len(primes) < num_dims + 1:
        limit += 1000
        primes = odd_primes_below(limit)
    return primes[-num_dims - 1 : -1]


def scrambled_van_der_corput(num_samples: int, base: int) -> List[float]:
    """Points 1..num_samples of a digit-permuted, randomly shifted radical inverse.

    The digit permutation keeps 0 fixed and shuffles 1..base-1 with
    `np.random.RandomState(base)`; the same generator then draws the shift.
    """
    rng = np.random.RandomState(base)
    nonzero_digits = list(range(1, base))
    rng.shuffle(nonzero_digits)
    digit_map = [0] + nonzero_digits
    shift = rng.random_sample()
    points = []
    for index in range(1, num_samples + 1):
        value, weight = 0.0, base
        while index:
            value += digit_map[index % base] / weight
            weight *= base
            index //= base
        points.append(math.fmod(value + shift, 1.0))
    return points


def halton_points(num_points: int, num_dims: int, order_seed: Optional[int]) -> List[List[float]]:
    """`num_points` Halton points in [0, 1)^num_dims, after dropping the first HALTON_SKIP.

    `order_seed` fixes the order of the points (None keeps generation order).
    """
    columns = [
        scrambled_van_der_corput(num_points + HALTON_SKIP, base)[HALTON_SKIP:] for base in halton_bases(num_dims)
    ]
    rows = [list(row) for row in zip(*columns)]
    if order_seed is not None:
        order = np.random.RandomState(order_seed % 2**32).permutation(len(rows))
        rows = [rows[i] for i in order]
    return rows


def _value_at(name: str, space: Dict[str, Any], point: float) -> Any:
    if "feasible_points" in space:
        choices = space["feasible_points"]
        return choices[int(math.floor(point * len(choices)))]
    low, high, scaling = space["min"], space["max"], space.get("scaling")
    if scaling == "log":
        return low * math.exp(point * math.log(high / low))
    if scaling == "linear":
        return point * (high - low) + low
    raise SearchSpaceError(f"Hyperparameter {name!r} has scaling {scaling!r}; use 'log' or 'linear'.")


def validate_search_space(search_space: Any, source: str = "search space") -> None:
    """Raises SearchSpaceError naming every problem and how to fix it."""
    problems = []
    if isinstance(search_space, list):
        if not search_space:
            problems.append("the list of points is empty; give at least one {name: value} point")
        elif not all(isinstance(p, dict) for p in search_space):
            problems.append("every entry of the list form must be an object {name: value}")
        else:
            names = set(search_space[0])
            for index, point in enumerate(search_space[1:], start=2):
                if set(point) != names:
                    problems.append(
                        f"point {index} has names {sorted(point)} but point 1 has {sorted(names)}; every point needs the same names"
                    )
    elif isinstance(search_space, dict):
        if not search_space:
            problems.append("the search space is empty")
        for name, space in search_space.items():
            if not isinstance(space, dict):
                problems.append(f"{name!r} must be an object with min/max/scaling or feasible_points")
            elif "feasible_points" in space:
                if not space["feasible_points"]:
                    problems.append(f"{name!r} has no feasible_points")
            elif not {"min", "max", "scaling"} <= set(space):
                problems.append(f"{name!r} needs 'min', 'max' and 'scaling' ('log' or 'linear'), or 'feasible_points'")
            elif space["scaling"] not in ("log", "linear"):
                problems.append(f"{name!r} has scaling {space['scaling']!r}; use 'log' or 'linear'")
            elif space["scaling"] == "log" and not (0 < space["min"] <= space["max"]):
                problems.append(f"{name!r} is log-scaled, so it needs 0 < min <= max")
    else:
        problems.append("it must be a JSON object (dict form) or a JSON list of points (list form)")
    if problems:
        raise SearchSpaceError(f"Invalid tuning search space in {source}: " + "; ".join(problems) + ".")


def generate_search(search_space: SearchSpace, num_trials: int, order_seed: Optional[int] = 0) -> List[Any]:
    """The hyperparameter points for `num_trials` trials, as `Hyperparameters` namedtuples.

    The list form yields at most as many trials as it has points.
    """
    validate_search_space(search_space)
    if isinstance(search_space, list):
        names = list(search_space[0])
        hyperparameters_type = collections.namedtuple("Hyperparameters", names)
        return [hyperparameters_type(**point) for point in search_space[:num_trials]]
    names = list(search_space)
    hyperparameters_type = collections.namedtuple("Hyperparameters", names)
    points = halton_points(num_trials, len(names), order_seed)
    return [
        hyperparameters_type(**{name: _value_at(name, search_space[name], p) for name, p in zip(names, row)})
        for row in points
    ]


def load_search_space(path: Path) -> SearchSpace:
    try:
        search_space = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise SearchSpaceError(f"{path} is not valid JSON ({error}); fix the file or remove it.") from error
    validate_search_space(search_space, str(path))
    return search_space


def hyperparameters_as_dict(hyperparameters: Any) -> Optional[Dict[str, Any]]:
    if hyperparameters is None:
        return None
    return dict(hyperparameters._asdict())


def hyperparameters_from_dict(values: Dict[str, Any]) -> Any:
    return collections.namedtuple("Hyperparameters", list(values))(**values)


def count_points(search_space: SearchSpace, num_trials: int) -> int:
    """How many trials a search space yields when asked for `num_trials`."""
    if isinstance(search_space, list):
        return min(num_trials, len(search_space))
    return num_trials
