"""The public workload registry, and a smoke test for every registered workload."""

from pathlib import Path

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
def test_every_workload_has_its_numbers_and_asks_for_its_data(name, tmp_path):
    # Models are checked per workload in tests/workloads (the big ones on the meta device).
    workload = pytest_algoperf.get_workload(name)
    assert workload.max_allowed_runtime_sec > 0 and workload.eval_period_time_sec > 0 and workload.step_hint > 0
    assert f"validation/{workload.target_metric_name}"
    status = workload.data_status(str(tmp_path / "empty"))
    assert status.missing and workload.preparation_command(str(tmp_path / "empty")) in status.reason
    assert workload.preparation_command("DATA").startswith("python -m workloads.")


@pytest.mark.parametrize("name", pytest_algoperf.list_workloads())
def test_every_workload_gets_a_batch_size_from_the_baseline(name):
    from pytest_algoperf.submission_loading import load_submission
    from workloads.registry import workload_entry

    baseline = load_submission(Path(__file__).resolve().parents[1] / "submissions" / "nadamw")
    entry = workload_entry(name)
    assert baseline.batch_size(entry.name, entry.base) > 0
