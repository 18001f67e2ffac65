"""The public workload registry, and a smoke test for every registered workload."""

from pathlib import Path

import pytest

import pytest_algoperf
from workloads.base import BenchmarkWorkload
from scoring.versions import DEFAULT_VERSION
from workloads.registry import benchmark_version_for, get_base_workload_name, workloads_of_other_versions


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


def test_workloads_of_one_version_only_are_built_with_its_numbers():
    assert benchmark_version_for("finewebedu_lm", "v0.6") == "a100"
    assert benchmark_version_for("wmt", "v0.5") == "v0.5" and benchmark_version_for("wmt", "a100") == "a100"
    assert workloads_of_other_versions("v0.6") == {"finewebedu_lm": ["a100"]}
    assert workloads_of_other_versions("a100") == {}
    with pytest.raises(ValueError, match="no numbers for benchmark version 'v0.6'"):
        pytest_algoperf.get_workload("finewebedu_lm", "v0.6")
    assert pytest_algoperf.get_workload("finewebedu_lm", "a100").max_allowed_runtime_sec == 31967


@pytest.mark.parametrize("version, budget, period", [("v0.5", 48151, 840), ("v0.6", 43336, 840), ("a100", 16114, 644)])
def test_a_workload_takes_its_budget_and_eval_period_from_the_selected_version(version, budget, period):
    workload = pytest_algoperf.get_workload("wmt_post_ln", version)
    assert (workload.max_allowed_runtime_sec, workload.eval_period_time_sec) == (budget, period)


@pytest.mark.parametrize("name", pytest_algoperf.list_workloads())
def test_every_workload_has_its_numbers_and_asks_for_its_data(name, tmp_path):
    # Models are checked per workload in tests/workloads (the big ones on the meta device).
    workload = pytest_algoperf.get_workload(name, benchmark_version_for(name, DEFAULT_VERSION))
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
