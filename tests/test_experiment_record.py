"""The experiment record: results made with other settings are never silently mixed."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import pytest

from pytest_algoperf.experiment_record import (RECORD_FILE, check_or_record, describe,
                                               differences)
from pytest_algoperf.options import Settings

HASH = "3fa2b1c0d9e8"
OTHER_HASH = "9b1c77aa0f12"
HARDWARE = "4x NVIDIA A100-SXM4-40GB"
SETTINGS = Settings(submission=Path("submissions/nadamw/submission.py"), ruleset="external",
                    trials=5, studies=3, data_dir=Path("/data"), results_dir=Path("/results"),
                    experiment=None, seed=0, max_steps=None, budget_scale=1.0,
                    benchmark_version="v0.6", torch_compile="auto")


def record(**changes) -> dict:
    return describe(dataclasses.replace(SETTINGS, **changes), HASH, HARDWARE)


def test_describe_names_the_submission_hardware_and_settings():
    assert record() == {
        "format_version": 1,
        "submission_hash": HASH,
        "hardware": HARDWARE,
        "world_size": 1,
        "mode": "time-to-target",
        "ruleset": "external",
        "benchmark_version": "v0.6",
        "seed": 0,
        "seed_scope": "study",
        "trials": 5,
        "budget_scale": 1.0,
        "max_steps": None,
        "smoke_steps": None,
        "torch_compile": "auto",
        "precision": "float32",
        "stop_diverged": False,
    }
    assert describe(SETTINGS, HASH, HARDWARE, world_size=4)["world_size"] == 4


@pytest.mark.parametrize("changes", [
    {"results_dir": Path("/elsewhere")}, {"experiment": "renamed"}, {"data_dir": Path("/d2")},
    {"timeout": 60.0}, {"studies": 5}, {"overwrite": True}, {"shard": (2, 4)},
    {"compare": (Path("/logs/baseline"),)}, {"variants": True}, {"ddp_timeout_sec": 60.0},
    {"smoke_steps": 9},  # outside smoke sessions
], ids=lambda changes: next(iter(changes)))
def test_settings_that_do_not_change_results_leave_the_record_alone(changes):
    assert record(**changes) == record()


RESULT_CHANGES = [
    ({"ruleset": "self", "trials": 1}, "ruleset (--algoperf-ruleset): 'external' before, 'self' now"),
    ({"benchmark_version": "v0.5"},
     "benchmark version (--algoperf-benchmark-version): 'v0.6' before, 'v0.5' now"),
    ({"seed": 7}, "base seed (--algoperf-seed): 0 before, 7 now"),
    ({"seed_scope": "trial"}, "seed scope (--algoperf-seeds): 'study' before, 'trial' now"),
    ({"trials": 3}, "trials per study (--algoperf-trials): 5 before, 3 now"),
    ({"budget_scale": 2.0}, "budget scale (--algoperf-budget-scale): 1.0 before, 2.0 now"),
    ({"max_steps": 100}, "max steps (--algoperf-max-steps): None before, 100 now"),
    ({"torch_compile": "no"}, "torch.compile (--algoperf-torch-compile): 'auto' before, 'no' now"),
    ({"precision": "bf16"}, "precision (--algoperf-precision): 'float32' before, 'bf16' now"),
    ({"smoke": True}, "mode (smoke, time-to-target or step-time): 'time-to-target' before, "
                      "'smoke' now"),
    ({"benchmark_steps": True}, "mode (smoke, time-to-target or step-time): 'time-to-target' "
                                "before, 'step-time' now"),
    ({"stop_diverged": True}, "stop diverged (--algoperf-stop-diverged): False before, True now"),
]


@pytest.mark.parametrize("changes, label", RESULT_CHANGES,
                         ids=[next(iter(changes)) for changes, _ in RESULT_CHANGES])
def test_settings_that_change_results_are_named_as_differences(changes, label):
    assert label in differences(record(), record(**changes))


def test_smoke_steps_count_in_smoke_sessions():
    assert differences(record(smoke=True, smoke_steps=5), record(smoke=True, smoke_steps=9)) == [
        "smoke steps (--algoperf-smoke-steps): 5 before, 9 now"]


def test_differences_read_as_sentences():
    before = record()
    now = {**describe(dataclasses.replace(SETTINGS, ruleset="self", trials=1), OTHER_HASH,
                      "8x NVIDIA H100 80GB HBM3", world_size=8)}
    assert differences(before, now) == [
        f"submission hash: results were made with {HASH}, this run has {OTHER_HASH} "
        f"(the submission or its search space changed)",
        f"hardware: {HARDWARE!r} before, '8x NVIDIA H100 80GB HBM3' now",
        "processes per trial (DDP world size): 1 before, 8 now",
        "ruleset (--algoperf-ruleset): 'external' before, 'self' now",
        "trials per study (--algoperf-trials): 5 before, 1 now",
    ]
    assert differences(before, dict(before)) == []


def test_keys_only_one_side_has_are_differences():
    before = {**record(), "future_setting": "x"}
    del before["seed_scope"]
    assert differences(before, record()) == [
        "seed scope (--algoperf-seeds): not recorded before, 'study' now",
        "future_setting: 'x' before, not set now",
    ]
    assert differences({**record(), "format_version": 2}, record()) == [
        "record format: 2 before, 1 now"]


def test_a_new_experiment_folder_gets_the_record(tmp_path):
    experiment = tmp_path / "results" / "nadamw"
    check_or_record(experiment, record(), overwrite=False)
    assert json.loads((experiment / RECORD_FILE).read_text()) == record()
    assert [path.name for path in experiment.iterdir()] == [RECORD_FILE]  # nothing staged left


def test_the_same_record_is_accepted_and_left_untouched(tmp_path):
    check_or_record(tmp_path, record(), overwrite=False)
    written = (tmp_path / RECORD_FILE).stat()
    check_or_record(tmp_path, record(results_dir=Path("/elsewhere")), overwrite=False)
    check_or_record(tmp_path, record(), overwrite=True)
    assert (tmp_path / RECORD_FILE).stat().st_mtime_ns == written.st_mtime_ns


def test_another_record_is_refused_naming_every_difference_and_both_fixes(tmp_path):
    check_or_record(tmp_path, record(), overwrite=False)
    current = describe(dataclasses.replace(SETTINGS, seed=3), OTHER_HASH, HARDWARE)
    with pytest.raises(pytest.UsageError) as error:
        check_or_record(tmp_path, current, overwrite=False)
    message = str(error.value)
    assert f"submission hash: results were made with {HASH}, this run has {OTHER_HASH}" in message
    assert "base seed (--algoperf-seed): 0 before, 3 now" in message
    assert "ruleset" not in message  # only what differs
    assert "--algoperf-overwrite" in message and "--algoperf-experiment=NAME" in message
    assert str(tmp_path) in message
    assert json.loads((tmp_path / RECORD_FILE).read_text()) == record()


def test_overwrite_replaces_another_record(tmp_path):
    check_or_record(tmp_path, record(), overwrite=False)
    check_or_record(tmp_path, record(seed=3), overwrite=True)
    assert json.loads((tmp_path / RECORD_FILE).read_text()) == record(seed=3)
    check_or_record(tmp_path, record(seed=3), overwrite=False)


@pytest.mark.parametrize("content", ["{not json", "", "[1, 2]"], ids=["broken", "empty", "list"])
def test_a_record_that_is_not_a_json_object_is_refused_naming_the_file(tmp_path, content):
    (tmp_path / RECORD_FILE).write_text(content)
    with pytest.raises(pytest.UsageError, match="not a valid experiment record") as error:
        check_or_record(tmp_path, record(), overwrite=False)
    assert str(tmp_path / RECORD_FILE) in str(error.value)
    assert "--algoperf-overwrite" in str(error.value)
    check_or_record(tmp_path, record(), overwrite=True)
    assert json.loads((tmp_path / RECORD_FILE).read_text()) == record()


def run_together(calls) -> list:
    """Start the calls at the same moment on threads; return what each raised (or None)."""
    barrier = threading.Barrier(len(calls))
    raised = [None] * len(calls)

    def run(index, call):
        barrier.wait()
        try:
            call()
        except Exception as error:  # noqa: BLE001 - collected for the assertions
            raised[index] = error

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return raised


def test_processes_starting_together_with_the_same_record_all_go_ahead(tmp_path):
    for attempt in range(20):
        experiment = tmp_path / f"experiment_{attempt}"
        raised = run_together([lambda: check_or_record(experiment, record(), overwrite=False)] * 8)
        assert raised == [None] * 8
        assert json.loads((experiment / RECORD_FILE).read_text()) == record()
        assert [path.name for path in experiment.iterdir()] == [RECORD_FILE]


def test_processes_racing_with_different_records_are_not_both_accepted(tmp_path):
    for attempt in range(20):
        experiment = tmp_path / f"experiment_{attempt}"
        records = [record(seed=index % 2) for index in range(8)]
        raised = run_together([lambda r=r: check_or_record(experiment, r, overwrite=False)
                               for r in records])
        stored = json.loads((experiment / RECORD_FILE).read_text())
        for mine, error in zip(records, raised):
            if mine == stored:
                assert error is None
            else:
                assert isinstance(error, pytest.UsageError)
