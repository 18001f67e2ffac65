"""Black-box runs of the plugin through pytester: options, collection, selection, errors, reporting."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NADAMW = ROOT / "submissions" / "nadamw"
SELF_TUNING = ROOT / "submissions" / "nadamw_self_tuning"


def _collected(result: pytest.RunResult) -> int:
    """How many items were selected, from pytest's 'N tests collected' or 'N/M tests collected' line."""
    match = re.search(r"(\d+)(?:/\d+)? tests? collected", result.stdout.str())
    if match:
        return int(match.group(1))
    assert "no tests collected" in result.stdout.str() or "deselected" in result.stdout.str(), result.stdout.str()
    return 0


def _run(pytester: pytest.Pytester, *args: str, subprocess: bool = False) -> pytest.RunResult:
    runner = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    return runner("-p", "no:cacheprovider", *args)


def _benchmark_args(data_dir: Path, results_dir: Path, *extra: str, submission: Path = NADAMW) -> list:
    return [f"--algoperf-submission={submission}", f"--algoperf-data-dir={data_dir}", f"--algoperf-results-dir={results_dir}", *extra]


def _mnist_args(data_dir: Path, results_dir: Path, *extra: str, submission: Path = NADAMW) -> list:
    """A run of the MNIST items only: the other workloads have no data in these tests."""
    return ["-k", "mnist", *_benchmark_args(data_dir, results_dir, *extra, submission=submission)]


# --- collection and selection ------------------------------------------------------------


def test_without_a_submission_the_plugin_collects_nothing(pytester):
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    result = _run(pytester)
    result.assert_outcomes(passed=1)
    assert "algoperf:" not in result.stdout.str()


def test_one_item_per_workload_study_and_trial(pytester, tmp_path):
    result = _run(pytester, "--collect-only", "-q", "-k", "mnist", *_benchmark_args(tmp_path, tmp_path, "--algoperf-studies=2", "--algoperf-trials=3"))
    result.stdout.fnmatch_lines(["*::test_time_to_target[[]mnist-study0-trial1[]]", "*::test_time_to_target[[]mnist-study1-trial3[]]"])
    assert _collected(result) == 6


def test_defaults_are_the_benchmark_versions_trials_and_studies(pytester, tmp_path):
    result = _run(pytester, "--collect-only", "-q", "-k", "mnist", *_benchmark_args(tmp_path, tmp_path))
    assert _collected(result) == 15  # v0.6: 3 studies x 5 trials
    result = _run(pytester, "--collect-only", "-q", "-k", "mnist", *_benchmark_args(tmp_path, tmp_path, "--algoperf-benchmark-version=v0.5"))
    assert _collected(result) == 25  # v0.5: 5 studies x 5 trials


def test_self_tuning_runs_one_trial_per_study(pytester, tmp_path):
    result = _run(pytester, "--collect-only", "-q", "-k", "mnist", *_benchmark_args(tmp_path, tmp_path, "--algoperf-ruleset=self", submission=SELF_TUNING))
    assert _collected(result) == 3
    result.stdout.fnmatch_lines(["*[[]mnist-study2-trial1[]]"])


def test_list_search_space_limits_the_trials(pytester, tmp_path):
    submission = pytester.mkdir("two_points")
    (submission / "submission.py").write_text((NADAMW / "submission.py").read_text())
    points = json.loads((NADAMW / "tuning_search_space.json").read_text())[:2]
    (submission / "tuning_search_space.json").write_text(json.dumps(points))
    result = _run(pytester, "--collect-only", "-q", "-k", "mnist", *_benchmark_args(tmp_path, tmp_path, submission=submission))
    assert _collected(result) == 6


def _expected_count(pattern_filter) -> int:
    """Items the registry implies for a filter over the entries of the default version's workloads (the
    others, finewebedu_lm, run under a100 only), 3 studies x 5 trials each."""
    from scoring.versions import DEFAULT_VERSION, load_version
    from workloads.registry import WORKLOADS

    known = load_version(DEFAULT_VERSION).workloads
    return 15 * sum(1 for entry in WORKLOADS.values() if entry.name in known and pattern_filter(entry))


@pytest.mark.parametrize(
    "selection, expected",
    [
        (["-k", "mnist and study1"], lambda: 5),
        (["-k", "mnist and trial2"], lambda: 3),
        (["-m", "mnist"], lambda: 15),
        (["-m", "dev"], lambda: _expected_count(lambda e: e.development)),
        (["-m", "not dev"], lambda: _expected_count(lambda e: not e.development)),
        (["-m", "dev and not mnist"], lambda: _expected_count(lambda e: e.development and e.name != "mnist")),
    ],
)
def test_keyword_and_marker_selection(pytester, tmp_path, selection, expected):
    result = _run(pytester, "--collect-only", "-q", *selection, *_benchmark_args(tmp_path, tmp_path))
    assert _collected(result) == expected()


def test_report_header_says_what_reproduces_the_run(pytester, tmp_path):
    result = _run(pytester, "--collect-only", "-q", *_benchmark_args(tmp_path, tmp_path, "--algoperf-seed=7"), "-v")
    result.stdout.fnmatch_lines([
        f"algoperf: submission {NADAMW / 'submission.py'} (sha256 *)",
        "algoperf: ruleset external, benchmark v0.6, seed 7, *",
        "algoperf: device cpu*, torch 2.*",
    ])


# --- usage errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        (["--algoperf-trials=0"], "--algoperf-trials=0 must be at least 1"),
        (["--algoperf-trials=many"], "is not a whole number"),
        (["--algoperf-ruleset=fast"], "--algoperf-ruleset='fast' is unknown; use one of external, self"),
        (["--algoperf-ruleset=self", "--algoperf-trials=3"], "contradicts --algoperf-ruleset=self"),
        (["--algoperf-budget-scale=-1"], "must be a positive number"),
        (["--algoperf-benchmark-version=v9"], "is unknown; use one of v0.5, v0.6"),
    ],
)
def test_bad_options_are_usage_errors_that_say_how_to_fix_them(pytester, tmp_path, options, message):
    result = _run(pytester, *_benchmark_args(tmp_path, tmp_path, *options))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_compare_needs_a_scored_run_and_an_existing_dir(pytester, tmp_path):
    result = _run(pytester, *_benchmark_args(tmp_path, tmp_path, f"--algoperf-compare={tmp_path}", "--algoperf-max-steps=3",
                                             f"--algoperf-compare={tmp_path / 'absent'}"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--algoperf-compare contradicts --algoperf-max-steps" in result.stderr.str()
    assert "absent: no such directory" in result.stderr.str()


def test_missing_submission_is_a_usage_error(pytester, tmp_path):
    result = _run(pytester, *_benchmark_args(tmp_path, tmp_path, submission=tmp_path / "nope"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "no such file or folder" in result.stderr.str()


def test_external_tuning_without_search_space_is_a_usage_error(pytester, tmp_path):
    lone = pytester.makepyfile(lone_submission=(NADAMW / "submission.py").read_text())
    result = _run(pytester, *_benchmark_args(tmp_path, tmp_path, submission=lone))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "external tuning needs a tuning_search_space.json" in result.stderr.str()
    assert "--algoperf-ruleset=self" in result.stderr.str()


def test_ini_twins_configure_the_run(pytester, tmp_path):
    pytester.makeini(f"[pytest]\nalgoperf_submission = {NADAMW}\nalgoperf_studies = 1\nalgoperf_trials = 2\n")
    result = _run(pytester, "--collect-only", "-q", "-k", "mnist")
    assert _collected(result) == 2


# --- runs --------------------------------------------------------------------------------------


def test_missing_data_skips_with_the_preparation_command(pytester, tmp_path):
    result = _run(pytester, "-rs", *_mnist_args(tmp_path / "empty", tmp_path, "--algoperf-studies=1", "--algoperf-trials=1"))
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*python -m workloads.mnist.prepare --data-dir*"])


def test_partial_data_dir_is_named_not_skipped(pytester, tmp_path):
    (tmp_path / "data" / "mnist").mkdir(parents=True)
    (tmp_path / "data" / "mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"partial")
    result = _run(pytester, *_mnist_args(tmp_path / "data", tmp_path, "--algoperf-studies=1", "--algoperf-trials=1"))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*DataProblem: *mnist is incomplete (manifest.json is missing*"])


def test_development_run_writes_algoperf_results_and_the_summary(pytester, mnist_data_dir, tmp_path):
    results = tmp_path / "results"
    result = _run(pytester, *_mnist_args(mnist_data_dir, results, "--algoperf-studies=2", "--algoperf-trials=1", "--algoperf-max-steps=3"))
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "*AlgoPerf time to target*",
        "mnist: validation/accuracy > 0.97 within 60 s",
        "*study*time to target (s)*trial*steps*reached*status",
        "*0*inf*-*0/1*unscored",
        "*median*inf",
    ])
    trial = results / "nadamw-max-steps-3" / "study_1" / "mnist_pytorch" / "trial_1"
    # A checkpoint after every eval (the default), the latest two kept; no running marker once finished.
    assert sorted(p.name for p in trial.iterdir()) == [
        "checkpoint_1", "checkpoint_3", "eval_measurements.csv", "flags_0.json", "hparams.json", "learning_curve.png",
        "measurements.csv", "meta_data_0.json", "trial_outcome.json",
    ]
    rows = list(csv.DictReader((trial / "eval_measurements.csv").open()))
    assert [row["global_step"] for row in rows] == ["1", "3"]
    assert {"accumulated_eval_time", "accumulated_logging_time", "accumulated_submission_time", "global_step",
            "preemption_count", "score", "total_duration", "train/accuracy", "train/loss", "validation/accuracy",
            "validation/loss", "validation/num_examples", "test/accuracy", "test/loss", "test/num_examples"} == set(rows[0])
    assert json.loads((trial / "hparams.json").read_text())["learning_rate"] == 0.001308209823469072
    flags = json.loads((trial / "flags_0.json").read_text())
    assert flags["max_global_steps"] == 3 and flags["tuning_ruleset"] == "external" and flags["framework"] == "pytorch"
    meta = json.loads((trial / "meta_data_0.json").read_text())
    assert meta["workload.max_allowed_runtime_sec"] == 60 and meta["workload.validation_target_value"] == 0.97
    summary = results / "nadamw-max-steps-3" / "time_to_target_summary.csv"
    assert summary.read_text().splitlines()[0] == "workload,study,time_to_target_s,trial,steps,trials_reached,trials_diverged,status"


BROKEN_ON_SECOND_POINT = '''
from pytest_algoperf.baselines import baseline_module
base = baseline_module("nadamw")
get_batch_size = base.get_batch_size
init_optimizer_state = base.init_optimizer_state
data_selection = base.data_selection

def update_params(workload, params, types, model_state, hyperparameters, batch, loss_type, optimizer_state,
                  eval_results, global_step, rng):
    if hyperparameters.label_smoothing == 0.2 and global_step == 2:
        raise ZeroDivisionError("boom")
    return base.update_params(workload, params, types, model_state, hyperparameters, batch, loss_type,
                              optimizer_state, eval_results, global_step, rng)
'''


def test_a_broken_trial_fails_alone_with_a_readable_message_and_keeps_its_logs(pytester, mnist_data_dir, tmp_path):
    submission = pytester.mkdir("broken")
    (submission / "submission.py").write_text(BROKEN_ON_SECOND_POINT)
    (submission / "tuning_search_space.json").write_text((NADAMW / "tuning_search_space.json").read_text())
    results = tmp_path / "results"
    result = _run(pytester, *_mnist_args(mnist_data_dir, results, "--algoperf-studies=1", "--algoperf-trials=3",
                                             "--algoperf-max-steps=4", submission=submission))
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*test_time_to_target[[]mnist-study0-trial2[]]*",
        "submission error after 2 steps: update_params raised ZeroDivisionError: boom*; fix update_params in submission.py.",
    ])
    assert "Traceback" not in result.stdout.str()
    experiment = results / "broken-max-steps-4" / "study_0" / "mnist_pytorch"
    assert (experiment / "trial_1" / "eval_measurements.csv").is_file()
    assert (experiment / "trial_3" / "eval_measurements.csv").is_file()
    broken_rows = list(csv.DictReader((experiment / "trial_2" / "eval_measurements.csv").open()))
    assert [row["global_step"] for row in broken_rows] == ["1"]
    result.stdout.fnmatch_lines(["*0/3*error"])


@pytest.mark.parametrize(
    "source, message",
    [
        ("import not_a_real_module\n", "importing * failed: bad_submission.py needs the package 'not_a_real_module', which is not installed; install it with `pip install not_a_real_module`*"),
        ("def get_batch_size(name):\n    return 16\n", "*does not define init_optimizer_state, update_params, data_selection*"),
    ],
)
def test_an_unusable_submission_fails_every_item_with_one_line(pytester, mnist_data_dir, tmp_path, source, message):
    submission = pytester.makepyfile(bad_submission=source)
    result = _run(pytester, *_mnist_args(mnist_data_dir, tmp_path, "--algoperf-ruleset=self", "--algoperf-studies=2", submission=submission))
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([f"*SubmissionError: {message}"])


WRONG_ARITY = '''
from pytest_algoperf.baselines import baseline_module
base = baseline_module("nadamw_self_tuning")
get_batch_size = base.get_batch_size
init_optimizer_state = base.init_optimizer_state
data_selection = base.data_selection

def update_params(*args, **kwargs):
    optimizer_state, params, model_state = base.update_params(*args, **kwargs)
    return optimizer_state, params
'''


def test_wrong_return_arity_is_named(pytester, mnist_data_dir, tmp_path):
    submission = pytester.makepyfile(arity_submission=WRONG_ARITY)
    result = _run(pytester, *_mnist_args(mnist_data_dir, tmp_path, "--algoperf-ruleset=self", "--algoperf-studies=1", submission=submission))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*update_params returned 2 values, expected (optimizer_state, params, model_state)*"])


DIVERGING = '''
import torch
from pytest_algoperf.baselines import baseline_module
base = baseline_module("nadamw_self_tuning")
get_batch_size = base.get_batch_size
data_selection = base.data_selection

def init_optimizer_state(workload, params, model_state, hyperparameters, rng):
    return {"optimizer": torch.optim.SGD(params.parameters(), lr=0.1)}

def update_params(workload, params, types, model_state, hyperparameters, batch, loss_type, optimizer_state,
                  eval_results, global_step, rng):
    params.train()
    optimizer_state["optimizer"].zero_grad()
    logits, _ = workload.model_fn(params, batch, model_state, None, rng, True)
    loss = workload.loss_fn(batch["targets"], logits)["summed"] * float("inf")  # a blown-up loss scale
    loss.backward()
    optimizer_state["optimizer"].step()
    return optimizer_state, params, model_state
'''


def _outcome(results: Path) -> dict:
    [path] = results.rglob("trial_outcome.json")
    return json.loads(path.read_text())


def test_divergence_is_a_result_and_the_trial_trains_on(pytester, mnist_data_dir, tmp_path):
    """As upstream scores it: the trial is 'diverged' (target not reached), trains to its end, and is no error."""
    submission = pytester.makepyfile(diverging_submission=DIVERGING)
    result = _run(pytester, *_mnist_args(mnist_data_dir, tmp_path, "--algoperf-ruleset=self", "--algoperf-studies=1",
                                             "--algoperf-max-steps=5", submission=submission))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*training diverged (train/loss is nan at step 1), so the validation target not reached*in 5 steps (training complete)",
        "*study*reached*diverged*status*", "*0/1*1/1*not reached*",
    ])
    outcome = _outcome(tmp_path)
    assert outcome["status"] == "diverged" and outcome["steps"] == 5 and outcome["evals"] == 2


def test_stop_diverged_ends_the_trial_at_the_first_non_finite_eval(pytester, mnist_data_dir, tmp_path):
    submission = pytester.makepyfile(diverging_submission=DIVERGING)
    result = _run(pytester, *_mnist_args(mnist_data_dir, tmp_path, "--algoperf-ruleset=self", "--algoperf-studies=1",
                                             "--algoperf-max-steps=5", "--algoperf-stop-diverged", submission=submission))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*training diverged (train/loss is nan at step 1)*in 1 steps (diverged)"])
    assert _outcome(tmp_path)["status"] == "diverged"


def _result_files(results: Path) -> dict:
    files = {}
    for path in sorted(results.rglob("*")):
        # Checkpoints are torch files of the same state and learning_curve.png is drawn from the timed
        # logs; the logs say whether the runs agree.
        skipped = path.name.startswith("checkpoint_") or path.name == "learning_curve.png"
        if path.is_file() and path.parent.name.startswith("trial_") and not skipped:
            files[str(path.relative_to(results))] = path
    return files


def _comparable(path: Path):
    if path.name == "eval_measurements.csv":
        timing = {"accumulated_eval_time", "accumulated_logging_time", "accumulated_submission_time", "score", "total_duration"}
        return [{k: v for k, v in row.items() if k not in timing} for row in csv.DictReader(path.open())]
    if path.name in ("hparams.json", "flags_0.json"):
        data = json.loads(path.read_text())
        data.pop("experiment_dir", None)
        return data
    return None


def test_xdist_gives_the_same_results_as_a_single_process(pytester, mnist_data_dir, tmp_path):
    args = ["--algoperf-studies=2", "--algoperf-trials=2", "--algoperf-max-steps=3"]
    serial = _run(pytester, "-n", "0", *_mnist_args(mnist_data_dir, tmp_path / "serial", *args), subprocess=True)
    parallel = _run(pytester, "-n", "2", *_mnist_args(mnist_data_dir, tmp_path / "parallel", *args), subprocess=True)
    serial.assert_outcomes(passed=4)
    parallel.assert_outcomes(passed=4)
    serial_files, parallel_files = _result_files(tmp_path / "serial"), _result_files(tmp_path / "parallel")
    assert serial_files.keys() == parallel_files.keys() and len(serial_files) == 4 * 6
    for name, path in serial_files.items():
        expected, actual = _comparable(path), _comparable(parallel_files[name])
        if isinstance(expected, list):
            for expected_row, actual_row in zip(expected, actual):
                assert expected_row.keys() == actual_row.keys()
                for key in expected_row:
                    assert math.isclose(float(expected_row[key]), float(actual_row[key]), rel_tol=1e-5), (name, key)
        else:
            assert expected == actual, name
    # Session-level files come from the controller only, once.
    assert (tmp_path / "parallel" / "nadamw-max-steps-3" / "time_to_target_summary.csv").is_file()
    parallel.stdout.fnmatch_lines(["*AlgoPerf time to target*"])


def test_junitxml_carries_each_items_result_as_properties(pytester, mnist_data_dir, tmp_path):
    import xml.etree.ElementTree as ElementTree

    report = tmp_path / "junit.xml"
    result = _run(pytester, f"--junitxml={report}", *_mnist_args(mnist_data_dir, tmp_path / "results", "--algoperf-studies=1",
                                                               "--algoperf-trials=2", "--algoperf-max-steps=3"))
    result.assert_outcomes(passed=2)
    cases = {case.get("name"): case for case in ElementTree.parse(report).getroot().iter("testcase")}
    assert set(cases) == {"test_time_to_target[mnist-study0-trial1]", "test_time_to_target[mnist-study0-trial2]"}
    for name, case in cases.items():
        properties = {prop.get("name"): prop.get("value") for prop in case.iter("property")}
        assert properties["algoperf_status"] == "unscored"  # a max-steps run is never scored
        assert properties["algoperf_steps"] == "3" and properties["algoperf_time_to_target_sec"] == "inf"
        assert properties["algoperf_target"] == "validation/accuracy > 0.97"
        assert float(properties["algoperf_budget_sec"]) == 60.0
        assert 0.0 <= float(properties["algoperf_best_metric"]) <= 1.0
        assert properties["algoperf_stop_reason"]


def test_summary_json_holds_the_items_outcomes_and_times(pytester, mnist_data_dir, tmp_path):
    results = tmp_path / "results"
    result = _run(pytester, *_mnist_args(mnist_data_dir, results, "--algoperf-studies=2", "--algoperf-trials=1", "--algoperf-max-steps=2"))
    result.assert_outcomes(passed=2)
    summary = json.loads((results / "nadamw-max-steps-2" / "summary.json").read_text())
    assert (summary["schema"], summary["schema_version"], summary["experiment"]) == ("pytest-algoperf/summary", 1, "nadamw-max-steps-2")
    assert (summary["ruleset"], summary["benchmark_version"], summary["development_run"]) == ("external", "v0.6", True)
    assert [item["id"] for item in summary["items"]] == ["mnist-study0-trial1", "mnist-study1-trial1"]
    item = summary["items"][0]
    assert (item["status"], item["steps"], item["evals"], item["time_to_target_sec"]) == ("unscored", 2, 2, None)
    assert item["target"] == "validation/accuracy > 0.97" and item["budget_sec"] == 60.0 and item["reused"] is False
    assert summary["outcomes"] == {"unscored": 2}
    mnist = summary["workloads"]["mnist"]
    assert mnist["median_time_to_target_sec"] is None and [study["study"] for study in mnist["studies"]] == [0, 1]
    assert summary["score"] is None  # scored only among reference logs (--algoperf-compare)
