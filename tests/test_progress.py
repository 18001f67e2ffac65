"""Live progress of running trials (progress.py): what it says, where it shows, and that it never touches a run."""

from __future__ import annotations

import io
import math
import re
import textwrap
import types
from pathlib import Path

import pytest

from pytest_algoperf import progress, runner
from pytest_algoperf.distributed import Ranks
from pytest_algoperf.submission_loading import load_submission

ROOT = Path(__file__).resolve().parents[1]
NADAMW = ROOT / "submissions" / "nadamw"
LIVE_STATUS = re.compile(r"\x1b\[K(?: [^\x1b]*\x1b\[\d+D)?")  # what the live display writes: erase, or draw + cursor back


def _mnist_run(pytester, data_dir, results_dir, *extra, subprocess=False):
    args = ["-p", "no:cacheprovider", "-k", "mnist", f"--algoperf-submission={NADAMW}", f"--algoperf-data-dir={data_dir}",
            f"--algoperf-results-dir={results_dir}", "--algoperf-trials=1", "--algoperf-max-steps=3", *extra]
    return (pytester.runpytest_subprocess if subprocess else pytester.runpytest)(*args)


def _eval_lines(result, trial_id):
    return [line for line in result.stdout.lines if re.search(rf"{re.escape(trial_id)} step \d+: ", line)]


# --- on track ----------------------------------------------------------------------------------


def test_a_trial_that_beat_its_target_is_reached():
    assert progress.assess([(10.0, 0.98)], target=0.97, higher_is_better=True, budget_sec=60, reached=True).state == "reached"


def test_one_eval_gives_no_rate_so_no_claim():
    assessment = progress.assess([(1.0, 0.5)], target=0.97, higher_is_better=True, budget_sec=60)
    assert assessment.state == "early"


def test_the_recent_rate_extrapolated_to_the_budget_decides_on_or_off_track():
    # The last three evals go 0.5 -> 0.7 in 10 s: 0.02/s, so the target 0.97 falls at 20 + 0.27/0.02 = 33.5 s.
    points = [(0.0, 0.0), (10.0, 0.5), (15.0, 0.6), (20.0, 0.7)]
    on = progress.assess(points, target=0.97, higher_is_better=True, budget_sec=60)
    assert on.state == "on track" and "~34 s" in on.detail
    # The same curve against a 30 s budget: 0.7 + 0.02 * 10 = 0.9 by then.
    off = progress.assess(points, target=0.97, higher_is_better=True, budget_sec=30)
    assert off.state == "off track" and "0.9 by the budget" in off.detail


def test_the_rate_comes_from_the_last_three_evals_only():
    # A fast start then a plateau: the recent window (the last three) shows no progress.
    points = [(0.0, 0.1), (5.0, 0.8), (10.0, 0.85), (15.0, 0.85), (20.0, 0.85)]
    assert progress.assess(points, target=0.97, higher_is_better=True, budget_sec=1000).state == "off track"


def test_a_metric_to_minimize_must_fall_and_non_finite_evals_are_skipped():
    falling = [(0.0, 5.0), (10.0, math.nan), (20.0, 3.0)]
    assert progress.assess(falling, target=1.0, higher_is_better=False, budget_sec=60).state == "on track"
    rising = [(0.0, 3.0), (20.0, 5.0)]
    assessment = progress.assess(rising, target=1.0, higher_is_better=False, budget_sec=60)
    assert assessment.state == "off track" and "not improving" in assessment.detail


# --- which mode, which process ----------------------------------------------------------------------


@pytest.mark.parametrize("requested, verbosity, isatty, mode", [
    ("auto", 0, True, "live"), ("auto", 1, True, "live"), ("auto", 0, False, "lines"),
    ("auto", -1, True, "trials"), ("auto", -1, False, "trials"), ("auto", -2, True, "off"),
    ("lines", 0, True, "lines"), ("live", -1, False, "live"), ("off", 1, True, "off"),
])
def test_the_mode_follows_the_terminal_and_verbosity_unless_forced(requested, verbosity, isatty, mode):
    assert progress.choose_mode(requested, verbosity, isatty) == mode


def test_an_unknown_forced_mode_is_a_usage_error_naming_the_choices():
    assert progress.requested_mode({}) == "auto"
    assert progress.requested_mode({progress.ENV_VAR: " Lines "}) == "lines"
    with pytest.raises(pytest.UsageError, match=r"ALGOPERF_PROGRESS='loud' is unknown; use one of auto, live, lines, trials, off"):
        progress.requested_mode({progress.ENV_VAR: "loud"})


def _session(mode="time-to-target", ranks=Ranks()):
    return types.SimpleNamespace(settings=types.SimpleNamespace(mode=mode), ranks=ranks)


def test_under_torchrun_only_rank_0_reports_progress():
    assert progress.reports_progress(_session(ranks=Ranks(rank=0, world_size=2, distributed=True)))
    assert not progress.reports_progress(_session(ranks=Ranks(rank=1, world_size=2, distributed=True)))
    assert not progress.reports_progress(_session(mode="smoke"))
    # A non-writer rank gets no listener at all, whatever else is set up.
    config = types.SimpleNamespace(workerinput={progress.WORKERINPUT_KEY: "/nowhere", "workerid": "gw0"})
    assert progress.trial_listener(config, _session(ranks=Ranks(rank=1, world_size=2, distributed=True)), None, None, 60.0) is None


# --- the texts and the in-place display ---------------------------------------------------------------


def _view(**events):
    view = progress.TrialView("mnist-study0-trial1")
    view.apply({"event": "start", "step": 0, "submission_time": 0.0, "budget_sec": 60.0, "metric": "validation/accuracy",
                "target": 0.97, "higher_is_better": True, "worker": events.get("worker")})
    for step, (seconds, value) in enumerate(events.get("evals", ()), start=1):
        view.apply({"event": "eval", "step": step * 10, "submission_time": seconds, "validation_metric": value, "reached": value > 0.97})
    return view


def test_an_eval_line_names_the_step_the_clock_the_metric_and_the_verdict():
    line = progress.eval_line(_view(evals=[(5.0, 0.5), (12.0, 0.8)], worker="gw1"))
    assert line == ("algoperf: [gw1] mnist-study0-trial1 step 20: 12.0 s of 60 s budget, validation/accuracy 0.8000 "
                    "(target > 0.97), on track (at the recent rate the target falls at ~16 s)")


class _Config:
    """What the display needs of pytest's config: a terminal writer on a string, no xdist, no capture."""

    def __init__(self, width=100):
        from _pytest._io import TerminalWriter

        self.stream = io.StringIO()
        self.writer = TerminalWriter(self.stream)
        self.writer.fullwidth = width
        self.reporter = types.SimpleNamespace(isatty=True, currentfspath=None)
        self.pluginmanager = types.SimpleNamespace(get_plugin=lambda name: {"terminalreporter": self.reporter}.get(name))

    def get_terminal_writer(self):
        return self.writer

    def get_verbosity(self):
        return 0


def test_the_live_status_is_drawn_right_of_pytests_cursor_and_erased_without_touching_pytests_line(monkeypatch):
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    config = _Config(width=60)
    display = progress.ProgressDisplay(config)
    assert display.mode == "live"
    config.writer.write("pytest_algoperf/benchmark.py ..")
    before = config.writer.width_of_current_line
    display.receive_in_test({"event": "start", "id": "mnist-study0-trial1", "step": 0, "submission_time": 0.0, "budget_sec": 60.0,
                             "metric": "validation/accuracy", "target": 0.97, "higher_is_better": True})
    display.receive_in_test({"event": "eval", "id": "mnist-study0-trial1", "step": 1, "submission_time": 12.0,
                             "validation_metric": 0.25, "reached": False})
    drawn = config.stream.getvalue()
    status = drawn.rsplit("\x1b[K ", 1)[1]
    text, back = re.fullmatch(r"(.*)\x1b\[(\d+)D", status).groups()
    full = progress.live_text(display.views.values())
    assert full == "mnist-study0-trial1 early step 1 12/60s accuracy 0.2500/0.97"
    assert text == full[:60 - before - 2]  # cut to the room left on pytest's line: it never wraps
    assert int(back) == len(text) + 1  # the cursor goes back to where pytest left it
    assert config.writer.width_of_current_line == before  # pytest's own bookkeeping of its line is untouched
    display.receive_in_test({"event": "end", "id": "mnist-study0-trial1", "step": 3, "submission_time": 0.9, "stop_reason": "training complete"})
    assert config.stream.getvalue().endswith("\x1b[K") and not display.drawn  # the trial ended: nothing left drawn
    assert LIVE_STATUS.sub("", config.stream.getvalue()) == "pytest_algoperf/benchmark.py .."


# --- the runner's side: off the clock, never a failure ---------------------------------------------------


class _Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


class _Workload:
    target_metric_name, higher_is_better, eval_period_time_sec = "accuracy", True, 10.0
    model_params_types, loss_type = {}, None

    def __init__(self, clock):
        self.clock = clock

    def attach_metrics_logger(self, logger):
        pass

    def eval_model(self, *args):
        self.clock.now += 3.0
        return {"validation/accuracy": 0.5, "test/accuracy": 0.5}

    def has_reached_validation_target(self, result):
        return False

    def has_reached_test_target(self, result):
        return False


_SUBMISSION = '''
CLOCK = None
def get_batch_size(name): return 2
def init_optimizer_state(workload, params, model_state, hyperparameters, rng): return {}
def data_selection(workload, queue, optimizer_state, params, model_state, hyperparameters, step, rng): return {}
def update_params(workload, params, types, model_state, hyperparameters, batch, loss_type, optimizer_state,
                  eval_results, global_step, rng, train_state=None):
    CLOCK.now += 1.0
    return optimizer_state, params, model_state
'''


def _run_with(tmp_path, make_listener):
    """A 25-step fake trial (1 s steps, 3 s evals every 10 s); `make_listener(clock)` gives its listener."""
    clock = _Clock()
    path = tmp_path / f"submission_{len(list(tmp_path.iterdir()))}.py"
    path.write_text(textwrap.dedent(_SUBMISSION))
    submission = load_submission(path)
    submission.module.CLOCK = clock
    return runner.run_trial(
        _Workload(clock), submission, None, object(), None, iter(()), runner.trial_rngs(1, "self"),
        runner.TrialSettings(ruleset="self", data_dir="", max_allowed_runtime_sec=1000.0, global_eval_batch_size=2, max_global_steps=25),
        clock=clock, progress=make_listener(clock),
    )


def _timing(outcome):
    return (outcome.global_step, outcome.accumulated_submission_time, [step for step, _ in outcome.eval_results],
            [result["score"] for _, result in outcome.eval_results])


def test_the_runner_tells_start_every_eval_and_end_and_a_slow_listener_stays_off_the_clock(tmp_path):
    quiet = _run_with(tmp_path, lambda clock: None)
    heard = []

    def slow(clock):
        def listen(event):
            heard.append(event)
            clock.now += 50.0  # a listener that takes 50 s of wall clock
        return listen

    loud = _run_with(tmp_path, slow)
    assert [event["event"] for event in heard] == ["start"] + ["eval"] * len(loud.eval_results) + ["end"]
    assert [event["step"] for event in heard if event["event"] == "eval"] == [step for step, _ in loud.eval_results]
    assert heard[1]["validation_metric"] == 0.5 and heard[1]["reached"] is False
    assert heard[-1] == {"event": "end", "step": 25, "submission_time": 25.0, "stop_reason": "training complete"}
    # On the submission's clock are its 1 s steps only: the listener's 50 s a call count as logging time.
    # (Like upstream's logging they are wall-clock time between evals, so a slow listener brings evals forward.)
    for outcome in (quiet, loud):
        assert outcome.accumulated_submission_time == 25.0
        assert all(result["score"] == step * 1.0 for step, result in outcome.eval_results)
    # An eval's row holds the logging time of the evals before it.
    assert loud.eval_results[-1][1]["accumulated_logging_time"] == 50.0 * (len(loud.eval_results) - 1)


def test_a_listener_that_raises_changes_nothing_in_the_run(tmp_path):
    def broken(clock):
        def listen(event):
            raise RuntimeError("the terminal is gone")
        return listen

    outcome = _run_with(tmp_path, broken)
    assert outcome.failure is None and _timing(outcome) == _timing(_run_with(tmp_path, lambda clock: None))


# --- real sessions ------------------------------------------------------------------------------------------


def test_without_a_terminal_each_eval_is_a_line_and_each_finished_trial_one_more(pytester, mnist_data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    result = _mnist_run(pytester, mnist_data_dir, tmp_path, "--algoperf-studies=2")
    result.assert_outcomes(passed=2)
    for trial in ("mnist-study0-trial1", "mnist-study1-trial1"):
        # Step 1 always evaluates, and the last step (max steps) ends with an eval: two evals.
        assert [re.search(r" step (\d+): ", line).group(1) for line in _eval_lines(result, trial)] == ["1", "3"]
        result.stdout.fnmatch_lines([
            f"algoperf: {trial} step 1: * s of 60 s budget, validation/accuracy 0.* (target > 0.97), early (needs a second eval for a rate)",
            f"algoperf: {trial} step 3: * s of 60 s budget, validation/accuracy 0.* (target > 0.97), *track*",
            f"algoperf: {trial} finished: unscored, 3 steps, * s of 60 s budget, best validation/accuracy 0.* (target > 0.97), training complete",
        ])
    assert "\x1b[" not in result.stdout.str()  # nothing drawn in place


def test_quiet_gives_one_line_per_finished_trial_only(pytester, mnist_data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    result = _mnist_run(pytester, mnist_data_dir, tmp_path, "--algoperf-studies=2", "-q")
    result.assert_outcomes(passed=2)
    finished = [line for line in result.stdout.lines if " finished: " in line]
    assert [line.split()[1] for line in finished] == ["mnist-study0-trial1", "mnist-study1-trial1"]
    assert not _eval_lines(result, "mnist-study0-trial1") and not _eval_lines(result, "mnist-study1-trial1")


def test_a_rerun_reports_its_reused_trials_as_finished(pytester, mnist_data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    _mnist_run(pytester, mnist_data_dir, tmp_path, "--algoperf-studies=1", "-q").assert_outcomes(passed=1)
    result = _mnist_run(pytester, mnist_data_dir, tmp_path, "--algoperf-studies=1", "-q")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["algoperf: mnist-study0-trial1 finished (reused result): unscored, 3 steps, *"])


def test_under_xdist_the_controller_shows_every_workers_trials(pytester, mnist_data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    result = _mnist_run(pytester, mnist_data_dir, tmp_path, "--algoperf-studies=2", "-n", "2", subprocess=True)
    result.assert_outcomes(passed=2)
    # The controller collects nothing itself; the cost of the selection comes once, from the workers' items.
    assert result.stdout.str().count("algoperf: cost of the selection") == 1
    result.stdout.fnmatch_lines(["  mnist  * 2 trials x * 60 s = * 0.03 h of budget = 0.27 device-hours"])
    workers = set()
    for trial in ("mnist-study0-trial1", "mnist-study1-trial1"):
        lines = _eval_lines(result, trial)
        assert len(lines) == 2, result.stdout.str()
        worker = re.match(r"algoperf: \[(gw\d)\] ", lines[0]).group(1)
        workers.add(worker)
        # The trial's eval lines come before its finished line, and that before the end of the run.
        result.stdout.fnmatch_lines([f"algoperf: [[]{worker}[]] {trial} step 1: *", f"algoperf: [[]{worker}[]] {trial} step 3: *",
                                     f"algoperf: [[]{worker}[]] {trial} finished: unscored, 3 steps, *", "*AlgoPerf time to target*"])
    assert workers == {"gw0", "gw1"}


def test_live_mode_draws_in_place_and_leaves_pytests_own_lines_as_they_were(pytester, mnist_data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(progress.ENV_VAR, "live")
    result = _mnist_run(pytester, mnist_data_dir, tmp_path, "--algoperf-studies=2", "-v")
    result.assert_outcomes(passed=2)
    output = result.stdout.str()
    assert "\x1b[K mnist-study0-trial1 " in output and "\x1b[K mnist-study1-trial1 " in output
    plain = LIVE_STATUS.sub("", output).splitlines()
    for trial in ("mnist-study0-trial1", "mnist-study1-trial1"):
        # With the status taken out, pytest's verbose line reads exactly as without the display.
        assert any(re.fullmatch(rf".*::test_time_to_target\[{trial}\] PASSED +\[ *\d+%\]", line) for line in plain), plain
    assert not _eval_lines(result, "mnist-study0-trial1") and " finished: " not in output
