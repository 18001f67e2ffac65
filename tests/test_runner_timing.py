"""The timing protocol of runner.py, driven by a fake clock (no real training, no sleeping)."""

from __future__ import annotations

import textwrap
from typing import Any, Dict, List

import pytest

from pytest_algoperf import runner
from pytest_algoperf.api.spec import LossType
from pytest_algoperf.submission_loading import load_submission

START = 1_000_000.0  # epoch-like: the first step is eval-eligible because last_eval_time starts at 0


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeWorkload:
    """Validation accuracy follows `accuracy_by_eval`; each eval costs `eval_seconds` of wall clock."""

    loss_type = LossType.SOFTMAX_CROSS_ENTROPY
    target_metric_name = "accuracy"
    higher_is_better = True
    model_params_types: Dict[str, Any] = {}

    def __init__(self, clock: FakeClock, eval_period: float, accuracy_by_eval: List[float], eval_seconds: float = 5.0):
        self.clock = clock
        self.eval_period_time_sec = eval_period
        self.accuracy_by_eval = accuracy_by_eval
        self.eval_seconds = eval_seconds
        self.eval_steps: List[int] = []
        self.metrics_logger = None

    def attach_metrics_logger(self, logger: Any) -> None:
        self.metrics_logger = logger

    def eval_model(self, batch_size, params, model_state, rng, data_dir, v2_dir, global_step):
        accuracy = self.accuracy_by_eval[min(len(self.eval_steps), len(self.accuracy_by_eval) - 1)]
        self.eval_steps.append(global_step)
        self.clock.advance(self.eval_seconds)
        return {"train/loss": 0.1, "validation/accuracy": accuracy, "test/accuracy": accuracy}

    def has_reached_validation_target(self, result):
        return result["validation/accuracy"] > 0.9

    def has_reached_test_target(self, result):
        return result["test/accuracy"] > 0.9


SUBMISSION = '''
from algoperf import spec
CLOCK = None
STEP_SECONDS = 1.0
PREPARE_SECONDS = 0.0
SEEN_TRAIN_STATE = []
RAISE_COMPLETE_AT = None

def get_batch_size(name):
    return 2

def init_optimizer_state(workload, params, model_state, hyperparameters, rng):
    CLOCK.advance(100.0)  # off the clock
    return {}

SEEN_RNGS = []
SEEN_EVAL_RESULTS = []

def data_selection(workload, queue, optimizer_state, params, model_state, hyperparameters, step, rng):
    SEEN_RNGS.append(("data_selection", step, [int(x) for x in rng]))
    return {"inputs": None}

def update_params(workload, params, types, model_state, hyperparameters, batch, loss_type, optimizer_state,
                  eval_results, global_step, rng{train_state_arg}):
    CLOCK.advance(STEP_SECONDS)
    SEEN_RNGS.append(("update_params", global_step, [int(x) for x in rng]))
    SEEN_EVAL_RESULTS.append(list(eval_results))
    {record_train_state}
    if RAISE_COMPLETE_AT is not None and global_step == RAISE_COMPLETE_AT:
        raise spec.TrainingCompleteError()
    return optimizer_state, params, model_state
{prepare}
'''

PREPARE = '''
def prepare_for_eval(workload, params, types, model_state, hyperparameters, loss_type, optimizer_state,
                     eval_results, global_step, rng):
    CLOCK.advance(PREPARE_SECONDS)
    SEEN_RNGS.append(("prepare_for_eval", global_step, [int(x) for x in rng]))
    return optimizer_state, params, model_state
'''


def make_submission(tmp_path, clock, with_prepare=True, with_train_state=True, **settings):
    source = (
        SUBMISSION.replace("{train_state_arg}", ", train_state=None" if with_train_state else "")
        .replace("{record_train_state}", "SEEN_TRAIN_STATE.append(train_state)" if with_train_state else "")
        .replace("{prepare}", PREPARE if with_prepare else "")
    )
    path = tmp_path / f"submission_{len(list(tmp_path.iterdir()))}.py"
    path.write_text(textwrap.dedent(source))
    submission = load_submission(path)
    submission.module.CLOCK = clock
    for name, value in settings.items():
        setattr(submission.module, name, value)
    return submission


def run(workload, submission, clock, budget=1000.0, max_steps=None, version="v0.6", **settings):
    return runner.run_trial(
        workload, submission, None, object(), None, iter(()), runner.trial_rngs(1, "self"),
        runner.TrialSettings(ruleset="self", data_dir="", max_allowed_runtime_sec=budget,
                             global_eval_batch_size=2, max_global_steps=max_steps,
                             protocol=runner.RunnerProtocol.of_version(version), **settings),
        clock=clock,
    )


def test_first_eval_follows_step_one_and_then_every_period_after_the_previous_eval_ends(tmp_path):
    clock = FakeClock()
    workload = FakeWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.1])
    outcome = run(workload, make_submission(tmp_path, clock), clock, max_steps=25)
    # Step 1 evals; then 10 s of 1 s steps after that eval's end -> steps 11, 21; step 25 ends training.
    assert workload.eval_steps == [1, 11, 21, 25]
    assert outcome.global_step == 25


def test_eval_time_is_off_the_clock_and_step_time_on_it(tmp_path):
    clock = FakeClock()
    workload = FakeWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.1], eval_seconds=7.0)
    outcome = run(workload, make_submission(tmp_path, clock), clock, max_steps=25)
    assert outcome.accumulated_submission_time == pytest.approx(25.0)  # 25 steps x 1 s; init (100 s) excluded
    assert outcome.accumulated_eval_time == pytest.approx(4 * 7.0)
    scores = [result["score"] for _, result in outcome.eval_results]
    assert scores == pytest.approx([1.0, 11.0, 21.0, 25.0])


def test_prepare_for_eval_time_is_on_the_clock(tmp_path):
    clock = FakeClock()
    workload = FakeWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.1])
    submission = make_submission(tmp_path, clock, PREPARE_SECONDS=2.0)
    outcome = run(workload, submission, clock, max_steps=11)
    # evals at steps 1 (after 1 s) and 11: each adds 2 s of prepare_for_eval.
    assert [r["score"] for _, r in outcome.eval_results] == pytest.approx([1.0 + 2.0, 11.0 + 2 * 2.0])
    assert outcome.accumulated_submission_time == pytest.approx(11.0 + 2 * 2.0)


def test_budget_is_checked_at_eval_time_and_no_eval_is_given_past_it(tmp_path):
    clock = FakeClock()
    workload = FakeWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.1])
    outcome = run(workload, make_submission(tmp_path, clock), clock, budget=15.0)
    # Eval at 1 s and 11 s; at 21 s the budget (15 s) is exhausted: training stops without an eval.
    assert workload.eval_steps == [1, 11]
    assert outcome.global_step == 21
    assert not outcome.is_time_remaining
    assert outcome.stop_reason == "budget exhausted"


def test_prepare_for_eval_counts_before_the_budget_check(tmp_path):
    clock = FakeClock()
    workload = FakeWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.1])
    submission = make_submission(tmp_path, clock, PREPARE_SECONDS=5.0)
    run(workload, submission, clock, budget=17.0)
    # step 1: 1 + 5 = 6 s -> eval; step 11: 16 + 5 = 21 s > 17 s -> no eval.
    assert workload.eval_steps == [1]


def test_run_stops_once_validation_and_test_targets_are_both_beaten(tmp_path):
    clock = FakeClock()
    workload = FakeWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.5, 0.95])
    outcome = run(workload, make_submission(tmp_path, clock), clock)
    assert workload.eval_steps == [1, 11]
    assert outcome.validation_goal_reached and outcome.test_goal_reached
    assert outcome.time_to_validation_target == pytest.approx(11.0)
    assert outcome.stop_reason == "targets reached"


def test_target_check_is_strict(tmp_path):
    clock = FakeClock()
    workload = FakeWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.9])
    outcome = run(workload, make_submission(tmp_path, clock), clock, max_steps=30)
    assert not outcome.validation_goal_reached


def test_training_complete_error_ends_the_run_with_a_final_eval(tmp_path):
    clock = FakeClock()
    workload = FakeWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.1])
    outcome = run(workload, make_submission(tmp_path, clock, RAISE_COMPLETE_AT=4), clock)
    assert outcome.global_step == 5  # the raising call still counts as a step
    assert workload.eval_steps == [1, 5]
    assert outcome.stop_reason == "training complete"


def test_train_state_is_a_read_only_view_passed_only_when_asked_for(tmp_path):
    clock = FakeClock()
    workload = FakeWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.1])
    submission = make_submission(tmp_path, clock)
    run(workload, submission, clock, max_steps=2)
    state = submission.module.SEEN_TRAIN_STATE[-1]
    assert set(state) == {
        "validation_goal_reached", "test_goal_reached", "is_time_remaining", "last_eval_time", "training_complete",
        "accumulated_submission_time", "accumulated_eval_time", "accumulated_logging_time", "last_step_end_time",
    }
    with pytest.raises(TypeError):
        state["training_complete"] = True
    without = make_submission(tmp_path, clock, with_train_state=False)
    assert not without.update_params_takes_train_state
    run(FakeWorkload(clock, 10.0, [0.1]), without, clock, max_steps=2)


def test_submissions_without_prepare_for_eval_still_evaluate(tmp_path):
    clock = FakeClock()
    workload = FakeWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.1])
    outcome = run(workload, make_submission(tmp_path, clock, with_prepare=False), clock, max_steps=3)
    assert workload.eval_steps == [1, 3]
    assert outcome.accumulated_submission_time == pytest.approx(3.0)


def test_self_tuning_budget_is_one_and_a_half_times_external_in_v06():
    assert runner.max_allowed_runtime(100, "external", "v0.6", 1.0) == 100
    assert runner.max_allowed_runtime(100, "self", "v0.6", 1.0) == 150
    assert runner.max_allowed_runtime(100, "self", "v0.5", 2.0) == 600


def test_external_runs_split_the_seed_once_more_than_self_tuning():
    external, self_tuning = runner.trial_rngs(5, "external"), runner.trial_rngs(5, "self")
    assert not (external.data == self_tuning.data).all()


# --- per-step rngs: upstream's values, worked out here with upstream's construction ----------------

def _upstream_split(seed, num):
    """`random_utils.split` as upstream builds it: a fresh RandomState seeded with the (unsigned) seed."""
    import numpy as np

    unsigned = [int(s) % (2**31 - 1) for s in seed] if isinstance(seed, (list, np.ndarray)) else int(seed) % (2**31 - 1)
    return np.random.RandomState(unsigned).randint(0, 2**31 - 1, dtype=np.int32, size=[num, 2])


def _upstream_fold_in(seed, data):
    import numpy as np

    unsigned = [int(s) % (2**31 - 1) for s in seed]
    return [np.random.RandomState(unsigned).randint(0, 2**31 - 1, dtype=np.int32), data]


@pytest.mark.parametrize("version, splits", [("v0.6", 4), ("v0.5", 3)])
def test_every_step_gets_upstreams_rngs(tmp_path, version, splits):
    clock = FakeClock()
    workload = FakeWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.1])
    submission = make_submission(tmp_path, clock)
    run(workload, submission, clock, max_steps=40, version=version)
    loop_rng = runner.trial_rngs(1, "self").loop
    seen = submission.module.SEEN_RNGS
    roles = {"data_selection": 0, "update_params": 1, "prepare_for_eval": 2}
    checked = 0
    for function, step, rng in seen:
        if function == "prepare_for_eval":
            step -= 1  # called after the step that made it due, with that step's rngs
            assert version == "v0.6", "v0.5's runner never calls prepare_for_eval"
        expected = _upstream_split(_upstream_fold_in(loop_rng, step), splits)[roles[function]]
        assert rng == [int(x) for x in expected], (function, step)
        checked += 1
    assert checked >= 2 * 40


def test_submissions_see_upstreams_eval_results(tmp_path):
    clock = FakeClock()
    workload = FakeWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.1])
    submission = make_submission(tmp_path, clock)
    run(workload, submission, clock, max_steps=12)
    step, metrics = submission.module.SEEN_EVAL_RESULTS[-1][-1]
    assert step == 11
    assert {"validation/accuracy", "score", "total_duration", "accumulated_submission_time", "accumulated_eval_time",
            "accumulated_logging_time"} <= set(metrics)
    assert metrics["score"] == metrics["accumulated_submission_time"]


# --- the v0.5 runner ---------------------------------------------------------------------------

def test_v05_checks_the_budget_every_step_and_evaluates_the_step_that_went_over(tmp_path):
    clock = FakeClock()
    workload = FakeWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.1])
    outcome = run(workload, make_submission(tmp_path, clock), clock, budget=15.0, version="v0.5")
    # Steps of 1 s: evals at steps 1 and 11; step 15 reaches the budget, training stops after step 15
    # with no eval due (the next one would have been at step 21).
    assert outcome.global_step == 15 and not outcome.is_time_remaining
    assert workload.eval_steps == [1, 11]
    clock = FakeClock()
    workload = FakeWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.1])
    outcome = run(workload, make_submission(tmp_path, clock), clock, budget=11.0, version="v0.5")
    # Step 11 goes over the budget and is due for an eval: v0.5 still evaluates it (v0.6 would not).
    assert outcome.global_step == 11 and workload.eval_steps == [1, 11]
    clock = FakeClock()
    workload = FakeWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.1])
    run(workload, make_submission(tmp_path, clock), clock, budget=11.0, version="v0.6")
    assert workload.eval_steps == [1]


def test_v05_never_calls_prepare_for_eval(tmp_path):
    clock = FakeClock()
    workload = FakeWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.1])
    submission = make_submission(tmp_path, clock, PREPARE_SECONDS=2.0)
    outcome = run(workload, submission, clock, max_steps=11, version="v0.5")
    assert outcome.accumulated_submission_time == pytest.approx(11.0)
    assert not [call for call in submission.module.SEEN_RNGS if call[0] == "prepare_for_eval"]


# --- errors during eval ------------------------------------------------------------------------

class FailingEvalWorkload(FakeWorkload):
    def __init__(self, *args, failing_evals=(1,), **kwargs):
        super().__init__(*args, **kwargs)
        self.failing_evals, self.attempts = set(failing_evals), 0

    def eval_model(self, *args):
        self.attempts += 1
        if self.attempts in self.failing_evals:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().eval_model(*args)


def test_an_eval_that_raises_is_recorded_and_training_goes_on(tmp_path):
    clock = FakeClock()
    workload = FailingEvalWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.1])
    outcome = run(workload, make_submission(tmp_path, clock), clock, max_steps=12)
    # The eval after step 1 raised: no eval time was recorded, so step 2 is due again, as upstream.
    assert outcome.eval_errors == ["step 1: CUDA out of memory. Tried to allocate 2.00 GiB"]
    assert workload.eval_steps == [2, 12]
    assert [step for step, _ in outcome.eval_results] == [2, 12]
    assert outcome.failure is None and outcome.global_step == 12


def test_in_strict_runs_an_eval_error_fails_the_run(tmp_path):
    clock = FakeClock()
    workload = FailingEvalWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.1])
    outcome = run(workload, make_submission(tmp_path, clock), clock, max_steps=12, strict=True)
    assert "evaluation at step 1 raised RuntimeError: CUDA out of memory" in str(outcome.failure)


# --- divergence ----------------------------------------------------------------------------------

class DivergingWorkload(FakeWorkload):
    def eval_model(self, *args):
        result = super().eval_model(*args)
        if len(self.eval_steps) >= 2:
            result["train/loss"] = float("nan")
        return result


def test_a_diverged_trial_trains_on_unless_asked_to_stop(tmp_path):
    clock = FakeClock()
    workload = DivergingWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.1])
    outcome = run(workload, make_submission(tmp_path, clock), clock, max_steps=30)
    assert outcome.divergence == "train/loss is nan at step 11"
    assert outcome.global_step == 30 and outcome.failure is None and outcome.stop_reason == "training complete"
    clock = FakeClock()
    workload = DivergingWorkload(clock, eval_period=10.0, accuracy_by_eval=[0.1])
    outcome = run(workload, make_submission(tmp_path, clock), clock, max_steps=30, stop_on_divergence=True)
    assert outcome.global_step == 11 and outcome.stop_reason == "diverged"
