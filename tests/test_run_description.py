"""meta_data_0.json and flags_0.json against a real upstream trial folder (../shared/data, beside the repository)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Dict

import pytest

from pytest_algoperf import results, rules, system_info
from pytest_algoperf.options import Settings
from pytest_algoperf.run_description import LIBRARY_FLAGS_AFTER, LIBRARY_FLAGS_BEFORE, trial_flags, trial_meta_data
from pytest_algoperf.session import BenchmarkSession
from workloads.mnist.workload import MnistWorkload
from workloads.registry import get_workload

ROOT = Path(__file__).resolve().parents[1]
# As conftest.py's SHARED_DATA: the shared data lies beside the repository.
EXAMPLE_TRIAL = (
    ROOT.parent / "shared" / "data" / "algoperf_v06_trial_example"
    / "external_tuning" / "shampoo" / "study_0" / "ogbg_pytorch" / "trial_1"
)
PER_GPU_KEY = re.compile(r"gpu\.\d+\.")
OUR_FLAGS = ["study", "base_seed", "seeds", "stop_diverged", "budget_scale", "benchmark_version", "global_batch_size",
             "global_eval_batch_size", "submission_hash"]


def _example(name: str) -> Dict[str, Any]:
    path = EXAMPLE_TRIAL / name
    if not path.is_file():
        pytest.skip(f"the upstream example trial is not available (looked for {path})")
    return json.loads(path.read_text())


@pytest.fixture
def fresh_system_info():
    """Drops what system_info cached, before and after, so a test's fake machine does not leak."""
    caches = (system_info._nvidia_smi, system_info._hardware_info, system_info._software_info)
    for cache in caches:
        cache.cache_clear()
    yield
    for cache in caches:
        cache.cache_clear()


@pytest.fixture
def no_nvidia(monkeypatch, tmp_path, fresh_system_info):
    """A machine without an NVIDIA driver: no nvidia-smi on PATH and no CUDA device."""
    import torch

    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


FAKE_NVIDIA_SMI = """#!/bin/sh
case "$1" in
  *driver_version*) printf '550.90.12, Tesla V100-SXM2-16GB\\n550.90.12, Tesla V100-SXM2-16GB\\n' ;;
  *) printf '0, 0, 16384, 1068, 15077, 37\\n1, 50, 16384, 1116, 15029, [N/A]\\n' ;;
esac
"""


@pytest.fixture
def two_fake_gpus(monkeypatch, tmp_path, fresh_system_info):
    script = tmp_path / "nvidia-smi"
    script.write_text(FAKE_NVIDIA_SMI)
    script.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> BenchmarkSession:
    directory = tmp_path_factory.mktemp("run-description")
    settings = Settings(
        submission=ROOT / "submissions" / "nadamw", ruleset="external", trials=3, studies=2, data_dir=directory / "data",
        results_dir=directory / "results", experiment=None, seed=0, max_steps=None, budget_scale=1.0,
        benchmark_version="v0.6", torch_compile="no",
    )
    return BenchmarkSession.from_settings(settings)


def _trial(session: BenchmarkSession, workload: str, study: int, trial: int):
    return next(t for t in session.plan if (t.workload, t.study, t.trial) == (workload, study, trial))


# --- meta_data ------------------------------------------------------------------------------


def test_meta_data_has_every_upstream_key_in_upstreams_order(no_nvidia):
    upstream = _example("meta_data_0.json")
    ours = trial_meta_data(get_workload("ogbg"), rng_seed=145000533)
    # Per-GPU keys depend on the machine's GPUs; every other key is written wherever the trial runs.
    expected = [key for key in upstream if not PER_GPU_KEY.match(key)]
    missing = [key for key in expected if key not in ours]
    assert not missing
    assert [key for key in ours if key in set(expected)] == expected
    # Workload keys come first and sorted (as upstream's dir() walk); our other extras come after rng_seed.
    keys = list(ours)
    workload_keys = [key for key in keys if key.startswith("workload.")]
    assert keys[: len(workload_keys)] == workload_keys == sorted(workload_keys)
    assert [key for key in keys[len(workload_keys):] if key not in upstream] == keys[keys.index("rng_seed") + 1:]
    json.dumps(ours)  # every value is plain JSON


def test_meta_data_values_we_know_match_upstreams(no_nvidia):
    upstream = _example("meta_data_0.json")
    ours = trial_meta_data(get_workload("ogbg"), rng_seed=145000533)
    # Upstream's train_mean/train_stddev repeat the previous key's value (a logger quirk); ours are null.
    for key in sorted(key for key in upstream if key.startswith("workload.") and key not in ("workload.train_mean", "workload.train_stddev")):
        assert ours[key] == upstream[key], key
    assert ours["rng_seed"] == 145000533
    assert ours["workload.train_mean"] is None and ours["workload.train_stddev"] is None


def test_plain_workload_attributes_are_logged_as_upstream_does():
    criteo = results.workload_properties(get_workload("criteo1tb"))
    assert (criteo["workload.embed_dim"], criteo["workload.vocab_size"], criteo["workload.num_dense_features"]) == (128, 4194304, 13)
    assert "workload.mlp_bottom_dims" not in criteo  # a tuple: not a primitive
    ogbg = results.workload_properties(get_workload("ogbg_model_size"))
    assert (ogbg["workload.latent_dim"], ogbg["workload.num_message_passing_steps"], ogbg["workload.activation_fn_name"]) == (128, 3, "relu")
    # Our base classes' bookkeeping and upper-case constants are not workload settings upstream logs.
    for name in ("name", "benchmark_version", "metrics_logger", "REFERENCE_COUNTS", "NUM_OUTPUTS"):
        assert f"workload.{name}" not in criteo and f"workload.{name}" not in ogbg


class ProbeWorkload(MnistWorkload):
    depth = 3
    WIDTH = 7
    _hidden = 1
    shape = (2, 2)
    eval_batch_size = 512  # a base property set as a plain value is still a workload setting

    def __init__(self) -> None:
        super().__init__()
        self.note = "instance attribute"

    def helper(self) -> int:
        return 1

    @property
    def broken(self) -> float:
        raise RuntimeError("not defined for this workload")


def test_which_attributes_count_and_a_raising_property_is_null():
    logged = results.workload_properties(ProbeWorkload())
    assert logged["workload.depth"] == 3
    assert logged["workload.note"] == "instance attribute"
    assert logged["workload.eval_batch_size"] == 512
    assert "workload.broken" in logged and logged["workload.broken"] is None
    for name in ("WIDTH", "_hidden", "shape", "helper", "name", "benchmark_version", "metrics_logger"):
        assert f"workload.{name}" not in logged


def test_the_workload_fingerprint_still_sees_plain_attributes_and_is_stable():
    workload = get_workload("criteo1tb")
    before = rules.workload_fingerprint(workload)
    assert before["workload.embed_dim"] == 128
    assert rules.changed_entries(before, rules.workload_fingerprint(workload)) == []
    workload.embed_dim = 64
    assert rules.changed_entries(before, rules.workload_fingerprint(workload)) == ["workload.embed_dim: 128 -> 64"]


def test_without_an_nvidia_driver_the_gpu_keys_say_so(no_nvidia):
    meta = system_info.system_meta_data()
    assert meta["gpu_driver"] is None and meta["gpu_model_name"] is None
    assert meta["gpu_count"] == 0 and meta["gpu.count"] == 0
    assert not [key for key in meta if PER_GPU_KEY.match(key)]
    assert all(meta[f"gpu.avg.{field}"] is None for field in system_info.GPU_FIELDS)


def test_gpu_keys_are_read_from_nvidia_smi_in_gputils_units(two_fake_gpus):
    meta = system_info.system_meta_data()
    assert (meta["gpu_driver"], meta["gpu_model_name"], meta["gpu_count"], meta["gpu.count"]) == ("550.90.12", "Tesla V100-SXM2-16GB", 2, 2)
    gpu_keys = [key for key in meta if key.startswith("gpu.")]
    assert gpu_keys == ["gpu.count"] + [f"gpu.{i}.{field}" for i in ("0", "1", "avg") for field in system_info.GPU_FIELDS]
    assert meta["gpu.0.mem.util"] == 1068 / 16384 and meta["gpu.0.mem.total"] == 16384.0
    assert meta["gpu.1.compute.util"] == 0.5
    assert meta["gpu.1.temp.current"] is None  # '[N/A]'
    assert meta["gpu.avg.mem.used"] == 1092.0 and meta["gpu.avg.temp.current"] == 37.0


# --- flags ----------------------------------------------------------------------------------


def test_flags_have_upstreams_keys_in_its_order_then_ours(session):
    upstream = _example("flags_0.json")
    ours = trial_flags(session, _trial(session, "ogbg", 0, 1), (128, 256), "cpu")
    assert list(ours)[: len(upstream)] == list(upstream)
    assert list(ours)[len(upstream):] == OUR_FLAGS
    # Library defaults and the switches of features this plugin does not have are upstream's values.
    fixed = [*LIBRARY_FLAGS_BEFORE, *LIBRARY_FLAGS_AFTER, "imagenet_v2_data_dir", "librispeech_tokenizer_vocab_path",
             "framework", "save_checkpoints", "save_intermediate_checkpoints", "resume_last_run", "append_timestamp",
             "use_wandb", "profile", "overwrite", "set_pytorch_max_split_size", "pytorch_eval_num_workers"]
    assert {key: ours[key] for key in fixed} == {key: upstream[key] for key in fixed}
    json.dumps(ours)


def test_flags_carry_this_trials_values(session):
    trial = _trial(session, "ogbg", 1, 2)
    flags = trial_flags(session, trial, (128, 256), "cpu")
    assert flags["workload"] == "ogbg" and flags["rng_seed"] == trial.seed
    assert Path(flags["submission_path"]) == session.paths.module_file and Path(flags["submission_path"]).is_file()
    assert Path(flags["tuning_search_space"]) == session.paths.search_space_file
    assert (flags["tuning_ruleset"], flags["num_tuning_trials"], flags["max_global_steps"]) == ("external", 3, None)
    assert (flags["hparam_start_index"], flags["hparam_end_index"]) == (1, 2)
    assert flags["torch_compile"] is False and flags["data_dir"] == str(session.settings.data_dir)
    # experiment_dir / experiment_name / <workload>_pytorch / trial_<k> is the trial folder, as upstream lays it out.
    folder = Path(flags["experiment_dir"]) / flags["experiment_name"] / "ogbg_pytorch" / "trial_2"
    assert folder == results.trial_dir(session.settings.results_dir, session.experiment, 1, "ogbg", 2)
    assert (flags["study"], flags["global_batch_size"], flags["global_eval_batch_size"]) == (1, 128, 256)
    assert flags["submission_hash"] == session.submission_hash


def test_library_flags_are_fresh_copies(session):
    trial = _trial(session, "ogbg", 0, 1)
    trial_flags(session, trial, (1, 1), "cpu")["logger_levels"]["x"] = "debug"
    assert trial_flags(session, trial, (1, 1), "cpu")["logger_levels"] == {}
