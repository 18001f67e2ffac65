"""Benchmark versions are data: JSON files selected by name."""

import json

import pytest

from scoring import available_versions, load_version
from scoring.versions import VersionError


def test_shipped_versions():
    assert available_versions()[:2] == ["v0.5", "v0.6"]
    v05, v06 = load_version("v0.5"), load_version("0.6")
    assert (v05.num_studies, v05.num_trials, v05.self_tuning_budget_factor) == (5, 5, 3)
    assert (v06.num_studies, v06.num_trials, v06.self_tuning_budget_factor) == (3, 5, 1.5)
    assert v05.base_workloads == v06.base_workloads and v06.num_base_workloads == 8
    assert v05.held_out_workloads == ("criteo1tb_embed_init", "fastmri_tanh",
                                      "imagenet_resnet_large_bn_init",
                                      "librispeech_conformer_layernorm", "ogbg_model_size",
                                      "wmt_glu_tanh")
    assert v06.held_out_workloads == ()


def test_budgets_and_step_hints_differ_by_version():
    v05, v06 = load_version("v0.5"), load_version("v0.6")
    assert v05.target("fastmri").max_allowed_runtime_sec == 8859
    assert v06.target("fastmri").max_allowed_runtime_sec == 4430
    assert v05.target("ogbg").step_hint == 80000 and v06.target("ogbg").step_hint == 52000
    assert v06.budget_sec("fastmri", self_tuning=True) == 1.5 * 4430
    assert v05.budget_sec("wmt", self_tuning=True) == 3 * 48151


def test_variants_inherit_from_their_base_workload():
    v06 = load_version("v0.6")
    variant, base = v06.target("imagenet_vit_glu"), v06.target("imagenet_vit")
    assert variant.validation_target == 0.75738 and variant.test_target == 0.6359
    assert (variant.metric, variant.goal, variant.max_allowed_runtime_sec, variant.step_hint) == (
        base.metric, base.goal, base.max_allowed_runtime_sec, base.step_hint)
    assert v06.base_of("imagenet_vit_glu") == "imagenet_vit"
    assert v06.base_of("wmt") == "wmt"


def test_development_workloads_are_known_but_never_scored():
    v06 = load_version("v0.6")
    for name in ("mnist", "cifar", "criteo1tb_test"):
        assert v06.target(name).development
        assert name not in v06.scored_workloads
    mnist = v06.target("mnist")
    assert (mnist.validation_target, mnist.max_allowed_runtime_sec, mnist.step_hint) == (
        0.97, 60, 7813)
    assert v06.target("criteo1tb_test").validation_target == 0.123735


def test_metric_directions():
    v06 = load_version("v0.6")
    assert [w for w in v06.base_workloads if v06.target(w).minimize] == [
        "criteo1tb", "librispeech_conformer", "librispeech_deepspeech"]
    assert v06.target("ogbg").validation_column == "validation/mean_average_precision"


def test_a_new_version_is_a_json_file(tmp_path):
    path = tmp_path / "v9.json"
    path.write_text(json.dumps({
        "name": "v9", "num_studies": 1, "num_trials": 2, "self_tuning_budget_factor": 2,
        "base_workloads": ["ogbg"], "held_out_workloads": ["ogbg_silu"],
        "workloads": {
            "ogbg": {"metric": "mean_average_precision", "goal": "maximize",
                     "validation_target": 0.3, "test_target": 0.29,
                     "max_allowed_runtime_sec": 100, "step_hint": 10},
            "ogbg_silu": {"base": "ogbg", "validation_target": 0.25},
        },
    }))
    version = load_version(path)
    assert version.num_base_workloads == 1
    assert version.target("ogbg_silu").test_target == 0.29  # inherited


@pytest.mark.parametrize("change, message", [
    ({"base_workloads": ["nope"]}, "scored workload 'nope' has no entry"),
    ({"held_out_workloads": ["mnist"]}, "marked as a development workload"),
    ({"workloads": {"a": {"base": "b"}}}, "names unknown base 'b'"),
    ({"workloads": {"a": {"metric": "loss"}}}, "lacks goal"),
    ({"workloads": {"a": {"base": "mnist", "validaton_target": 0.5}}}, "unknown keys"),
])
def test_malformed_versions_are_explained(tmp_path, change, message):
    raw = json.loads(json.dumps({
        "name": "bad", "num_studies": 1, "num_trials": 1, "self_tuning_budget_factor": 1,
        "base_workloads": [], "held_out_workloads": [],
        "workloads": {"mnist": {"development": True, "metric": "accuracy", "goal": "maximize",
                                "validation_target": 0.97, "test_target": 0.97,
                                "max_allowed_runtime_sec": 60, "step_hint": 7813}}}))
    raw.update(change)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(VersionError, match=message):
        load_version(path)


def test_unknown_version_names_the_choices():
    with pytest.raises(VersionError, match="choose one of v0.5, v0.6"):
        load_version("v7")
