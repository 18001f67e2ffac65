"""Search spaces and the Halton construction, checked against values worked out from §1.6."""

import math

import numpy as np
import pytest

from pytest_algoperf.api import halton as tuning


def _hand_scrambled_point(index: int, base: int) -> float:
    """The §1.6 recipe spelled out: digit permutation then shift, both from RandomState(base)."""
    rng = np.random.RandomState(base)
    digits = list(range(1, base))
    rng.shuffle(digits)
    permutation = [0] + digits
    shift = rng.random_sample()
    value, weight = 0.0, base
    while index:
        value += permutation[index % base] / weight
        weight *= base
        index //= base
    return math.fmod(value + shift, 1.0)


def test_bases_are_the_largest_odd_primes_below_1000_without_997():
    assert tuning.halton_bases(3) == [977, 983, 991]
    assert tuning.halton_bases(1) == [991]


def test_base_list_grows_past_1000_for_many_dimensions():
    bases = tuning.halton_bases(200)
    assert len(bases) == 200 and all(b > 2 for b in bases)


def test_van_der_corput_of_base_5_at_index_7():
    # 7 = 1*5 + 2: digit 2 lands in the first place, digit 1 in the second.
    rng = np.random.RandomState(5)
    digits = [1, 2, 3, 4]
    rng.shuffle(digits)
    permutation = [0] + digits
    shift = rng.random_sample()
    expected = math.fmod(permutation[2] / 5 + permutation[1] / 25 + shift, 1.0)
    assert tuning.scrambled_van_der_corput(7, 5)[6] == pytest.approx(expected, abs=1e-15)


def test_first_hundred_points_are_skipped():
    points = tuning.halton_points(2, 3, order_seed=None)
    for dim, base in enumerate([977, 983, 991]):
        assert points[0][dim] == pytest.approx(_hand_scrambled_point(101, base), abs=1e-15)
        assert points[1][dim] == pytest.approx(_hand_scrambled_point(102, base), abs=1e-15)


def test_dict_form_scales_log_linear_and_discrete_dimensions():
    space = {
        "learning_rate": {"min": 1e-4, "max": 1e-1, "scaling": "log"},
        "warmup": {"min": 0.0, "max": 0.5, "scaling": "linear"},
        "dropout": {"feasible_points": [0.0, 0.1, 0.2]},
    }
    (point,) = tuning.generate_search(space, 1, order_seed=None)
    p_lr, p_warmup, p_dropout = (_hand_scrambled_point(101, b) for b in (977, 983, 991))
    assert point.learning_rate == pytest.approx(1e-4 * math.exp(p_lr * math.log(1e-1 / 1e-4)))
    assert point.warmup == pytest.approx(p_warmup * 0.5)
    assert point.dropout == [0.0, 0.1, 0.2][math.floor(p_dropout * 3)]
    assert type(point).__name__ == "Hyperparameters"


def test_point_order_is_seeded_but_the_set_of_points_is_not():
    space = {"a": {"min": 0.0, "max": 1.0, "scaling": "linear"}, "b": {"min": 0.0, "max": 1.0, "scaling": "linear"}}
    first = tuning.generate_search(space, 5, order_seed=1)
    assert first == tuning.generate_search(space, 5, order_seed=1)
    other = tuning.generate_search(space, 5, order_seed=2)
    assert sorted(first) == sorted(other)
    assert first != other


def test_list_form_is_used_in_file_order_and_truncated():
    space = [{"lr": 0.1, "wd": 0.0}, {"lr": 0.2, "wd": 0.1}, {"lr": 0.3, "wd": 0.2}]
    points = tuning.generate_search(space, 2)
    assert [p.lr for p in points] == [0.1, 0.2]
    assert len(tuning.generate_search(space, 10)) == 3


@pytest.mark.parametrize(
    "space, fragment",
    [
        ({"lr": {"min": 1, "max": 2, "scaling": "cubic"}}, "use 'log' or 'linear'"),
        ({"lr": {"min": 1}}, "needs 'min', 'max' and 'scaling'"),
        ({"lr": {"min": 0.0, "max": 1.0, "scaling": "log"}}, "0 < min <= max"),
        ([{"lr": 1}, {"wd": 2}], "every point needs the same names"),
        ([], "empty"),
        ("lr", "JSON object"),
    ],
)
def test_invalid_search_spaces_name_the_problem(space, fragment):
    with pytest.raises(tuning.SearchSpaceError, match="Invalid tuning search space") as error:
        tuning.validate_search_space(space)
    assert fragment in str(error.value)


def test_baseline_search_space_file_loads_as_five_points(project_root):
    space = tuning.load_search_space(project_root / "submissions" / "nadamw" / "tuning_search_space.json")
    points = tuning.generate_search(space, 5)
    assert len(points) == 5
    assert points[0].learning_rate == 0.001308209823469072
    assert points[0].one_minus_beta1 == 0.02686663061
    assert points[0].label_smoothing == 0.1
