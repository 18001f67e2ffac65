"""finewebedu_lm as a plugin item under the a100 benchmark version: real English text (Debian's licence
texts) written as a FineWeb-Edu parquet shard, prepared by the real command, trained for one step of
the full 253 M-parameter model by an upstream-API submission, and evaluated, on CPU.

The NAdamW baseline runs the same item in the smoke gate (tests/test_smoke_gate.py); one forward
and backward pass of a 1,024-token sequence costs about 1.5 TFLOP, so the item is run once here.
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


def test_an_upstream_api_submission_trains_and_evaluates(pytester, data_dir, tmp_path):
    submission = upstream_submission(pytester.path / "upstream_adam", 1, 2, UPSTREAM_CHECKS)
    result = run_items(pytester, submission, data_dir, tmp_path, "finewebedu_lm", 1, A100)
    result.assert_outcomes(passed=1)
    (row,) = eval_rows(tmp_path, "finewebedu_lm")  # one step: the eval after it
    assert row["global_step"] == "1"
    assert 9.5 < float(row["validation/loss"]) < 12.5  # about ln 50,257 = 10.8 for the new model
    assert float(row["validation/ppl"]) == pytest.approx(2.718281828459045 ** float(row["validation/loss"]), rel=1e-6)
    assert (float(row["test/ppl"]), float(row["test/num_examples"]), float(row["validation/num_examples"])) == (1.0, 0.0, 1.0)
    # The run takes the a100 version's numbers, and logs them as upstream's meta data does.
    (meta_file,) = tmp_path.rglob("finewebedu_lm_pytorch/trial_1/meta_data_0.json")
    meta = json.loads(meta_file.read_text())
    assert (meta["workload.max_allowed_runtime_sec"], meta["workload.eval_period_time_sec"], meta["workload.step_hint"]) == (31967, 2571, 72000)
    assert meta["workload.validation_target_value"] == 22.2995 and meta["workload.activation"] == "silu"
