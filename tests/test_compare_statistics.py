"""--algoperf-compare's statistics: this run's score with its interval, per-workload speedups vs the
reference with intervals, verdicts and p-values, in the terminal and in summary.json.

The run's trials are finished ones from an earlier run (reused, so nothing trains and no data is
needed); the logs are written with the scoring tests' LogTree."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from pytest_algoperf.results import TRIAL_OUTCOME_FILE
from scoring import load_version

ROOT = Path(__file__).resolve().parents[1]
NADAMW = ROOT / "submissions" / "nadamw"
V06 = load_version("v0.6")
_spec = importlib.util.spec_from_file_location("scoring_test_logs", ROOT / "tests" / "scoring" / "conftest.py")
_logs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_logs)
LogTree = _logs.LogTree

WMT_ONLY = ["-k", "wmt and not wmt_"]  # the base workload's items, not its variants'


def finished_run(results: Path, study_times) -> None:
    """nadamw's wmt trials as an earlier session left them: logs plus the stored trial outcome."""
    target = V06.target("wmt")
    tree = LogTree(results)
    for study, time in enumerate(study_times):
        path = tree.times_trial("nadamw", study, "wmt", 1, reach_at=0, seconds_per_eval=time)
        record = {
            "id": f"wmt-study{study}-trial1", "workload": "wmt", "study": study, "trial": 1, "status": "reached",
            "steps": 1, "evals": 2, "submission_time": 2 * time, "time_to_target": time,
            "best_validation_metric": target.validation_target, "target_metric": target.metric,
            "higher_is_better": not target.minimize, "validation_target": target.validation_target,
            "budget_sec": target.max_allowed_runtime_sec, "stop_reason": "target reached", "divergence": None,
            "eval_errors": [], "preemption_count": 0, "checkpoints_written": 0, "checkpoint_seconds": 0.0,
        }
        (path.parent / TRIAL_OUTCOME_FILE).write_text(json.dumps(record))


def reference_logs(root: Path, name: str, study_times) -> Path:
    tree = LogTree(root)
    for study, time in enumerate(study_times):
        tree.times_trial(name, study, "wmt", 1, reach_at=0, seconds_per_eval=time)
    return root / name


def _run(pytester: pytest.Pytester, results: Path, *extra: str) -> pytest.RunResult:
    return pytester.runpytest(
        "-p", "no:cacheprovider", *WMT_ONLY, f"--algoperf-submission={NADAMW}", f"--algoperf-data-dir={results / 'no-data'}",
        f"--algoperf-results-dir={results}", "--algoperf-trials=1", *extra,
    )


def test_compare_shows_the_score_interval_and_speedups_with_significance(pytester, tmp_path):
    results = tmp_path / "results"
    finished_run(results, [100.0, 104.0, 98.0])
    reference = reference_logs(tmp_path / "refs", "reference", [300.0, 310.0, 295.0])
    result = _run(pytester, results, f"--algoperf-compare={reference}")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([
        "*AlgoPerf benchmark score*",
        "*Speedup per workload vs reference*",
        "*AlgoPerf comparison*",
        "score of nadamw: 0.1250, 95% interval [[]0.1250, 0.1250[]] (2000 bootstrap replicates, seed 0)",
        "speedup of nadamw vs reference per workload (t_nadamw / t_reference; below 1 = faster):",
        "  wmt * 100.00 * 300.00 * 0.3333 * [[]0.316, 0.353[]] * faster * 0.1",
        "*note: with these study counts no p-value can fall below 0.1; p < 0.01 takes 5 studies on each side*",
    ])
    summary = json.loads((results / "nadamw" / "summary.json").read_text())
    assert summary["schema_version"] == 1 and summary["score"] == 0.125
    assert summary["score_interval"] == [0.125, 0.125]  # wmt alone: fastest in every replicate
    assert summary["speedup_base"] == "reference" and summary["bootstrap"] == {"confidence": 0.95, "samples": 2000, "seed": 0}
    assert summary["speedup"] is None  # the geometric mean needs every base workload
    wmt = summary["workloads"]["wmt"]
    assert wmt["median_time_to_target_interval_sec"] == [98.0, 104.0]
    assert wmt["speedup"]["verdict"] == "faster" and wmt["speedup"]["p_value"] == wmt["speedup"]["smallest_p"] == 0.1
    assert wmt["speedup"]["value"] == pytest.approx(100.0 / 300.0)
    written = results / "nadamw" / "scoring"
    assert {"score_intervals.csv", "time_to_target_intervals.csv", "speedups_per_workload.csv"} <= {p.name for p in written.iterdir()}


def test_speedup_base_picks_a_reference_among_several(pytester, tmp_path):
    results = tmp_path / "results"
    finished_run(results, [100.0, 110.0, 120.0])
    references = tmp_path / "refs"
    reference_logs(references, "slow", [300.0, 310.0, 320.0])
    reference_logs(references, "same", [105.0, 100.0, 125.0])
    # A dir of several submissions: no default base, and the session says how to name one.
    result = _run(pytester, results, f"--algoperf-compare={references}")
    result.stdout.fnmatch_lines(["*no speedups*--algoperf-speedup-base=NAME*"])
    result = _run(pytester, results, f"--algoperf-compare={references}", "--algoperf-speedup-base=refs/same")
    result.stdout.fnmatch_lines(["speedup of nadamw vs refs/same per workload*", "  wmt * not significant *"])


def test_a_speedup_base_that_is_no_reference_is_a_usage_error(pytester, tmp_path):
    references = tmp_path / "refs"
    reference_logs(references, "same", [105.0, 100.0, 125.0])
    reference_logs(references, "slow", [300.0, 310.0, 320.0])
    result = _run(pytester, tmp_path / "results", f"--algoperf-compare={references}", "--algoperf-speedup-base=slow")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--algoperf-speedup-base=slow is none of the reference submissions; use one of refs/same, refs/slow" in result.stderr.str()


def test_a_speedup_base_without_reference_logs_is_a_usage_error(pytester, tmp_path):
    result = _run(pytester, tmp_path / "results", "--algoperf-speedup-base=slow")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--algoperf-speedup-base=slow needs reference logs; add --algoperf-compare=DIR or drop it" in result.stderr.str()


def test_other_plugins_get_the_scoring_result_from_the_reporter(pytester, tmp_path):
    results = tmp_path / "results"
    finished_run(results, [100.0, 104.0, 98.0])
    reference = reference_logs(tmp_path / "refs", "reference", [300.0, 310.0, 295.0])
    pytester.makeconftest(
        "import pytest\n"
        "@pytest.hookimpl(trylast=True)\n"
        "def pytest_terminal_summary(terminalreporter, config):\n"
        "    rows, result = config.pluginmanager.get_plugin('algoperf-reporter').scoring()\n"
        "    again = config.pluginmanager.get_plugin('algoperf-reporter').scoring()\n"
        "    assert again[1] is result\n"
        "    terminalreporter.write_line(f'from the reporter: {len(rows)} rows, intervals {result.intervals is not None}')\n"
    )
    result = _run(pytester, results, f"--algoperf-compare={reference}")
    result.stdout.fnmatch_lines(["from the reporter: 3 rows, intervals True"])
