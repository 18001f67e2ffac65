"""The cost of the selected trials in device-hours (selection_cost.py), as --collect-only and runs print it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_algoperf.results import TRIAL_OUTCOME_FILE, trial_dir
from scoring.versions import VersionError, load_version

ROOT = Path(__file__).resolve().parents[1]
NADAMW = ROOT / "submissions" / "nadamw"
SELF_TUNING = ROOT / "submissions" / "nadamw_self_tuning"


def _collect(pytester, tmp_path, *extra, submission=NADAMW):
    return pytester.runpytest("-p", "no:cacheprovider", "--collect-only", f"--algoperf-submission={submission}",
                              f"--algoperf-data-dir={tmp_path}", f"--algoperf-results-dir={tmp_path / 'results'}", *extra)


def _cost_lines(result):
    return [line for line in result.stdout.lines if line.startswith("algoperf: cost") or line.startswith("  ") and " of budget" in line]


def test_the_versions_name_their_hardware_of_record():
    assert str(load_version("v0.5").hardware) == str(load_version("v0.6").hardware) == "8x NVIDIA V100 16 GB"
    assert str(load_version("a100").hardware) == "4x NVIDIA A100-SXM4 40 GB"


@pytest.mark.parametrize("hardware, message", [
    ({"devices": 0, "device": "V100"}, "'hardware.devices' must be a whole number of at least 1, got 0"),
    ({"devices": 8}, "'hardware' must be an object with exactly 'devices' (a count) and 'device' (a name)"),
])
def test_a_malformed_hardware_entry_is_explained(tmp_path, hardware, message):
    raw = json.loads((ROOT / "scoring" / "versions" / "v0.6.json").read_text())
    raw["hardware"] = hardware
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(VersionError, match=rf"broken.json: {re.escape(message)}"):
        load_version(path)


def test_a_version_without_hardware_still_loads():
    raw = json.loads((ROOT / "scoring" / "versions" / "v0.6.json").read_text())
    del raw["hardware"]
    from scoring.versions import _parse_version

    assert _parse_version(raw, "test").hardware is None


def test_v06_external_tuning_costs_each_trials_budget_on_8_v100s(pytester, tmp_path):
    # wmt: 43,336 s per trial; 5 trials of study 0 = 60.19 h = 481.51 device-hours on 8 GPUs.
    # ogbg: 12,011 s per trial; 5 trials of study 1 = 16.68 h = 133.46 device-hours.
    result = _collect(pytester, tmp_path, "-k", "wmt-study0 or ogbg-study1")
    assert _cost_lines(result) == [
        "algoperf: cost of the selection (external tuning), device-hours on v0.6's hardware of record, 8x NVIDIA V100 16 GB per trial:",
        "  ogbg     5 trials x  12,011 s =    16.68 h of budget = 133.46 device-hours",
        "  wmt      5 trials x  43,336 s =    60.19 h of budget = 481.51 device-hours",
        "  total  10 trials, 76.87 h of budget = 614.97 device-hours; an upper bound, since a trial stops at its target",
    ]


def test_self_tuning_multiplies_the_budget_by_the_versions_factor(pytester, tmp_path):
    # v0.6 self-tuning: one trial per study, 1.5 x 43,336 s = 65,004 s = 18.06 h, x 8 GPUs = 144.45 device-hours.
    result = _collect(pytester, tmp_path, "-k", "wmt-study0", "--algoperf-ruleset=self", submission=SELF_TUNING)
    result.stdout.fnmatch_lines([
        "algoperf: cost of the selection (self-tuning), device-hours on v0.6's hardware of record, 8x NVIDIA V100 16 GB per trial:",
        "  wmt       1 trial x  65,004 s =    18.06 h of budget = 144.45 device-hours",
        "  total  1 trial, 18.06 h of budget = 144.45 device-hours; an upper bound, since a trial stops at its target",
    ])


def test_a100_costs_its_own_budgets_on_4_a100s_and_the_budget_scale_applies(pytester, tmp_path):
    # a100 wmt: 16,114 s per trial; 5 trials = 22.38 h, x 4 GPUs = 89.52 device-hours; scale 2 doubles both.
    result = _collect(pytester, tmp_path, "-k", "wmt-study0", "--algoperf-benchmark-version=a100")
    result.stdout.fnmatch_lines(["  total  5 trials, 22.38 h of budget = 89.52 device-hours; an upper bound, *"])
    result.stdout.fnmatch_lines(["*device-hours on a100's hardware of record, 4x NVIDIA A100-SXM4 40 GB per trial:"])
    scaled = _collect(pytester, tmp_path, "-k", "wmt-study0", "--algoperf-benchmark-version=a100", "--algoperf-budget-scale=2")
    scaled.stdout.fnmatch_lines(["algoperf: cost of the selection (external tuning, budget scale 2), *",
                                 "  wmt      5 trials x  32,228 s =    44.76 h of budget = 179.04 device-hours"])


def test_quiet_prints_the_total_in_one_line(pytester, tmp_path):
    result = _collect(pytester, tmp_path, "-q", "-k", "wmt-study0")
    lines = [line for line in result.stdout.lines if line.startswith("algoperf: cost")]
    assert lines == ["algoperf: cost of the selection: 5 trials, 60.19 h of budget = 481.51 device-hours on 8x NVIDIA V100 16 GB "
                     "per trial (an upper bound: a trial stops at its target)"]


def test_trials_an_earlier_run_finished_cost_nothing(pytester, tmp_path):
    folder = trial_dir(tmp_path / "results", "nadamw", 0, "mnist", 1)
    folder.mkdir(parents=True)
    (folder / TRIAL_OUTCOME_FILE).write_text(json.dumps({"id": "mnist-study0-trial1", "status": "unscored"}))
    # mnist: 60 s per trial; 4 of study 0's 5 trials still run: 240 s = 0.07 h = 0.53 device-hours.
    result = _collect(pytester, tmp_path, "-k", "mnist-study0")
    result.stdout.fnmatch_lines([
        "  mnist    4 trials x      60 s =     0.07 h of budget = 0.53 device-hours (1 reused)",
        "  total  4 trials, 0.07 h of budget = 0.53 device-hours; *",
        "algoperf: 1 trial an earlier run finished is reused and cost nothing (not counted above; --algoperf-overwrite reruns them)",
    ])
    overwrite = _collect(pytester, tmp_path, "-k", "mnist-study0", "--algoperf-overwrite")
    overwrite.stdout.fnmatch_lines(["  total  5 trials, 0.08 h of budget = 0.67 device-hours; *"])
    assert "reused" not in overwrite.stdout.str()


def _numbers(line):
    return re.search(r"(\d+) trials, ([\d,.]+) h of budget = ([\d,.]+) device-hours", line).groups()


def test_the_header_states_the_whole_plans_cost_and_collection_the_selections(pytester, tmp_path):
    everything = _collect(pytester, tmp_path, "--algoperf-studies=1", "--algoperf-trials=1")
    plan = [line for line in everything.stdout.lines if line.startswith("algoperf: the whole plan")]
    assert len(plan) == 1, everything.stdout.str()
    total = next(line for line in _cost_lines(everything) if line.startswith("  total"))
    assert _numbers(plan[0]) == _numbers(total)  # nothing deselected: the plan is the selection
    selected = _collect(pytester, tmp_path, "--algoperf-studies=1", "--algoperf-trials=1", "-k", "ogbg-study0 or wmt-study0")
    assert [line for line in selected.stdout.lines if line.startswith("algoperf: the whole plan")] == plan
    assert _numbers(next(line for line in _cost_lines(selected) if line.startswith("  total")))[0] == "2"
