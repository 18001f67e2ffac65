"""finewebedu_lm as a plugin item under the a100 benchmark version: real English text (Debian's licence
texts) written as a FineWeb-Edu parquet shard, prepared by the real command, trained for a step by an
upstream-API submission, and evaluated, on CPU.

The item runs a narrow model of the same class (the workload's MODEL_CONFIG, swapped in this process):
what an upstream-API submission meets — the batches, model_fn, loss_fn, the eval and the a100 numbers —
is the same for every width. The full 253 M-parameter model runs through the plugin in the smoke gate
with the NAdamW baseline (tests/test_smoke_gate.py, about 55 s on one CPU thread: one 1,024-token
training step is about 1.5 TFLOP) and is checked on its own in test_finewebedu_lm_model.py.
"""

from __future__ import annotations

import json

import pytest
from plugin_items import NADAMW, eval_rows, run_items, upstream_submission

A100 = "--algoperf-benchmark-version=a100"
UPSTREAM_CHECKS = [
    "assert loss_type == spec.LossType.SOFTMAX_CROSS_ENTROPY",
    'assert batch["inputs"].dtype == torch.int32 and batch["targets"].dtype == torch.int64',
    'assert batch["inputs"].shape == (1, 1024) and batch["weights"] is None',
]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from workloads.smoke_data import prepare_smoke_data

    data_dir = tmp_path_factory.mktemp("data")
    prepare_smoke_data("finewebedu_lm", data_dir)  # the real preparation command on the sample shard
    return data_dir


def test_missing_data_skips_the_item_with_the_preparation_command(pytester, tmp_path):
    result = run_items(pytester, NADAMW, tmp_path / "nothing", tmp_path / "results", "finewebedu_lm", 2, A100)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*python -m workloads.finewebedu_lm.prepare --data-dir*"])


def test_the_workload_is_collected_only_under_a_version_that_has_it(pytester, tmp_path):
    result = run_items(pytester, NADAMW, tmp_path / "nothing", tmp_path / "results", "finewebedu_lm", 2, "--collect-only")
    result.stdout.fnmatch_lines(["*benchmark v0.6 has no finewebedu_lm; it runs under --algoperf-benchmark-version=a100*"])
    assert "finewebedu_lm-study0" not in result.stdout.str()


def test_an_upstream_api_submission_trains_and_evaluates(pytester, data_dir, tmp_path, monkeypatch):
    from workloads.finewebedu_lm.model import ModelConfig
    from workloads.finewebedu_lm.workload import LmWorkload

    monkeypatch.setattr(LmWorkload, "MODEL_CONFIG", ModelConfig(model_dim=64, num_heads=2, num_layers=2, expanded_model_dim=128, multiple_of=32))
    submission = upstream_submission(pytester.path / "upstream_adam", 1, 2, UPSTREAM_CHECKS)
    result = run_items(pytester, submission, data_dir, tmp_path, "finewebedu_lm", 2, A100)
    result.assert_outcomes(passed=1)
    rows = eval_rows(tmp_path, "finewebedu_lm")
    assert [row["global_step"] for row in rows] == ["1", "2"]  # an eval after the first and the last step
    row = rows[-1]
    assert 9.5 < float(row["validation/loss"]) < 12.5  # about ln 50,257 = 10.8 for the new model
    assert float(row["validation/ppl"]) == pytest.approx(2.718281828459045 ** float(row["validation/loss"]), rel=1e-6)
    assert (float(row["test/ppl"]), float(row["test/num_examples"]), float(row["validation/num_examples"])) == (1.0, 0.0, 1.0)
    # The run takes the a100 version's numbers, and logs them as upstream's meta data does.
    (meta_file,) = tmp_path.rglob("finewebedu_lm_pytorch/trial_1/meta_data_0.json")
    meta = json.loads(meta_file.read_text())
    assert (meta["workload.max_allowed_runtime_sec"], meta["workload.eval_period_time_sec"], meta["workload.step_hint"]) == (31967, 2571, 72000)
    assert meta["workload.validation_target_value"] == 22.2995 and meta["workload.activation"] == "silu"
