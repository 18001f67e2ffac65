"""The public workload registry, and a smoke test for every registered workload."""

import pytest

import pytest_algoperf
from workloads.base import BenchmarkWorkload
from workloads.registry import get_base_workload_name


def test_list_and_get_workloads():
    assert "mnist" in pytest_algoperf.list_workloads()
    assert pytest_algoperf.list_workloads("mni*") == ["mnist"]
    workload = pytest_algoperf.get_workload("mnist")
    assert isinstance(workload, BenchmarkWorkload) and workload.validation_target_value == 0.97


def test_unknown_workload_lists_the_known_ones():
    with pytest.raises(KeyError, match="Unknown workload 'mnistt'. Known workloads: .*mnist"):
        pytest_algoperf.get_workload("mnistt")


def test_unknown_benchmark_version_is_named():
    with pytest.raises(ValueError, match="no numbers for benchmark version 'v9'.*unknown benchmark version"):
        pytest_algoperf.get_workload("mnist", "v9")


def test_variants_map_to_their_base_workload():
    assert get_base_workload_name("ogbg_model_size") == "ogbg"
    assert get_base_workload_name("imagenet_resnet_silu") == "imagenet_resnet"
    assert get_base_workload_name("mnist") == "mnist"


@pytest.mark.parametrize("name", pytest_algoperf.list_workloads())
def test_every_workload_builds_its_model_and_has_its_numbers(name):
    from pytest_algoperf import random_utils

    workload = pytest_algoperf.get_workload(name)
    model, _ = workload.init_model_fn(random_utils.PRNGKey(0))
    assert sum(p.numel() for p in model.parameters()) > 0
    assert workload.max_allowed_runtime_sec > 0 and workload.eval_period_time_sec > 0 and workload.step_hint > 0
    assert workload.preparation_command("DATA").startswith("python -m workloads.")
