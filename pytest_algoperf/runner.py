"""The timed training loop of one trial: AlgoPerf's protocol (reference §3.3), written once.

What is on the clock (`accumulated_submission_time`):
  * every `data_selection` + `update_params` call and everything between two
    steps that is not evaluation (host-to-device copies, lazy compilation,
    logging the submission does inside its step);
  * `prepare_for_eval`, whenever an eval is due.
What is off the clock: building the input pipeline, model init, compile
wrapping, `init_optimizer_state`, evaluation, writing results, and deriving the
per-step rngs (the harness's work: computed ahead, while the clock is stopped,
with upstream's exact values; see step_rngs.py).

Rules, as the selected benchmark version's runner (`RunnerProtocol`):
  * the first step is always followed by an eval (the last eval time starts at 0);
  * an eval is due when `eval_period_time_sec` of wall-clock time passed since
    the *end* of the previous eval, or when training is complete;
  * v0.6: the budget is checked only when an eval is due, after `prepare_for_eval`;
    a run over budget gets no further eval. v0.5: the budget is checked after
    every step, the step that went over still gets its eval, and
    `prepare_for_eval` is never called;
  * targets are checked strictly (`>` or `<`); the run stops once both the
    validation and the test target were reached (sticky flags);
  * `update_params` may raise `TrainingCompleteError`; `max_global_steps` ends
    the run with a final eval;
  * a `RuntimeError` raised in eval (out of memory included) is recorded, CUDA
    memory is freed and training goes on, without a new eval time;
  * a non-finite loss is a result ("diverged"), not an error: the trial trains
    on to its budget unless the settings ask to stop it (smoke runs fail it);
  * clock reads synchronise CUDA first (and take the slowest rank under DDP);
  * under DDP every decision that could differ between ranks is agreed on (divergence: the
    loss the submission logs exists on rank 0 only), so no rank leaves the loop alone;
  * a checkpoint (trial_checkpoints.py) is written after an eval when the schedule says so, inside
    the logging time as upstream's; a resumed trial continues its step count, times, eval results,
    rngs and input queue from the checkpoint, with `preemption_count` one higher;
  * a progress listener (progress.py) hears of the start, of each eval (inside its logging time, so
    off the clock) and of the end; what it raises is dropped, it never changes the run.
"""

from __future__ import annotations

import dataclasses
import math
import time
import types
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from pytest_algoperf import trial_checkpoints
from pytest_algoperf.api import random_utils as prng
from pytest_algoperf.api.spec import TrainingCompleteError
from pytest_algoperf.device_settings import free_cuda_memory
from pytest_algoperf.distributed import SINGLE_PROCESS, Ranks
from pytest_algoperf.runner_protocol import RunnerProtocol
from pytest_algoperf.step_rngs import StepRngs, steps_until_next_eval
from pytest_algoperf.submission_loading import Submission, SubmissionError
from workloads.parallel import unwrap_model

Clock = Callable[[], float]

DIVERGENCE_METRICS = ("train/loss", "validation/loss")


def max_allowed_runtime(workload_budget_sec: float, ruleset: str, benchmark_version: str, budget_scale: float) -> float:
    """The trial's runtime budget: the workload's, times the ruleset multiplier, times the hardware scale."""
    from scoring.versions import load_version

    # Self-tuning runs get a larger budget: x1.5 since v0.6, x3 in v0.5 (the version files hold it).
    multiplier = load_version(benchmark_version).self_tuning_budget_factor if ruleset == "self" else 1.0
    return workload_budget_sec * multiplier * budget_scale


def synchronized_clock(device: Any, use_ddp: bool = False) -> Clock:
    """Upstream's get_time: wait for queued CUDA work, read the wall clock, agree across ranks."""
    import torch

    def now() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        current = time.time()
        if use_ddp:
            from pytest_algoperf.api.pytorch_utils import sync_ddp_time

            current = sync_ddp_time(current, device)
        return current

    return now


@dataclasses.dataclass(frozen=True)
class TrialRngs:
    data: Any
    optimizer_init: Any
    model_init: Any
    loop: Any


def trial_rngs(seed: int, ruleset: str) -> TrialRngs:
    """seed -> PRNGKey -> (external only) one extra split -> data / optimizer-init / model-init / loop."""
    rng = prng.PRNGKey(seed)
    if ruleset == "external":
        rng, _ = prng.split(rng, 2)
    data_rng, optimizer_init_rng, model_init_rng, loop_rng = prng.split(rng, 4)
    return TrialRngs(data_rng, optimizer_init_rng, model_init_rng, loop_rng)


@dataclasses.dataclass(frozen=True)
class TrialSettings:
    ruleset: str
    data_dir: str
    max_allowed_runtime_sec: float
    global_eval_batch_size: int
    max_global_steps: Optional[int] = None
    imagenet_v2_data_dir: Optional[str] = None
    protocol: RunnerProtocol = RunnerProtocol()
    stop_on_divergence: bool = False  # opt-in: end a diverged trial early to save compute
    strict: bool = False  # smoke runs: divergence and eval errors fail the run
    checkpoint_schedule: trial_checkpoints.CheckpointSchedule = trial_checkpoints.CheckpointSchedule(every_evals=None)
    checkpoint_dir: Optional[str] = None  # where the writer rank saves checkpoints; None: never


@dataclasses.dataclass
class TrialOutcome:
    global_step: int = 0
    accumulated_submission_time: float = 0.0
    accumulated_eval_time: float = 0.0
    validation_goal_reached: bool = False
    test_goal_reached: bool = False
    training_complete: bool = False
    is_time_remaining: bool = True
    time_to_validation_target: Optional[float] = None  # score at the first eval beating the validation target
    best_validation_metric: Optional[float] = None
    eval_results: List[Tuple[int, Dict[str, Any]]] = dataclasses.field(default_factory=list)
    failure: Optional[SubmissionError] = None
    optimizer_state: Any = None  # the latest, for checks after the run (e.g. checkpointing)
    eval_errors: List[str] = dataclasses.field(default_factory=list)  # evals that raised and were skipped
    divergence: Optional[str] = None  # the first non-finite loss seen, e.g. "train/loss is nan at step 40"
    stopped_on_divergence: bool = False
    preemption_count: int = 0  # how many times this trial was resumed from a checkpoint
    checkpoint_seconds: float = 0.0  # wall time spent writing checkpoints (never on the submission's clock)
    checkpoints_written: int = 0
    notes: List[str] = dataclasses.field(default_factory=list)

    # What a checkpoint carries of the outcome, so a resumed trial reports the whole run.
    RESUMED_FIELDS = ("best_validation_metric", "time_to_validation_target", "divergence", "eval_errors",
                      "accumulated_eval_time", "checkpoint_seconds", "checkpoints_written")

    def resumable_fields(self) -> Dict[str, Any]:
        return {name: getattr(self, name) for name in self.RESUMED_FIELDS}

    @property
    def diverged(self) -> bool:
        return self.divergence is not None

    @property
    def stop_reason(self) -> str:
        if self.failure is not None:
            return "submission error"
        if self.validation_goal_reached and self.test_goal_reached:
            return "targets reached"
        if self.stopped_on_divergence:
            return "diverged"
        if not self.is_time_remaining:
            return "budget exhausted"
        if self.training_complete:
            return "training complete"
        return "stopped"


def _better(workload: Any, candidate: float, incumbent: Optional[float]) -> bool:
    if incumbent is None or math.isnan(incumbent):
        return not math.isnan(candidate)
    return candidate > incumbent if workload.higher_is_better else candidate < incumbent


def _divergence(result: Dict[str, Any], logger: Any) -> Optional[str]:
    for key in DIVERGENCE_METRICS:
        value = result.get(key)
        if isinstance(value, float) and not math.isfinite(value):
            return f"{key} is {value}"
    if logger is not None and getattr(logger, "non_finite_loss_step", None) is not None:
        return f"the loss logged at step {logger.non_finite_loss_step} is not finite"
    return None


def _call(monitor: Any, function: str, step: int, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Runs one submission call, between the monitor's `before` and `after` when there is a monitor."""
    if monitor is None:
        return call(*args, **kwargs)
    monitor.before(function, step)
    result, raised = None, True
    try:
        result = call(*args, **kwargs)
        raised = False
    finally:
        monitor.after(function, step, result, raised)
    return result


def run_trial(
    workload: Any,
    submission: Submission,
    hyperparameters: Any,
    model: Any,
    model_state: Any,
    input_queue: Iterator[Dict[str, Any]],
    rngs: TrialRngs,
    settings: TrialSettings,
    logger: Any = None,
    clock: Clock = time.time,
    monitor: Any = None,
    checkpoint: Optional[Dict[str, Any]] = None,
    ranks: Ranks = SINGLE_PROCESS,
    progress: Optional[Callable[[Dict[str, Any]], None]] = None,
) -> TrialOutcome:
    """Trains one trial until both targets, the budget, max steps or TrainingCompleteError end it.

    Submission errors do not propagate: they end the run and are returned in
    `outcome.failure`, after everything logged so far has been written.
    `monitor` (see call_monitor.py) watches every call into the submission.
    `checkpoint` (a loaded trial checkpoint) resumes the trial where it was saved; the input queue
    must then be a `trial_checkpoints.CountingQueue`, as it must be whenever checkpoints are written.
    `progress` is told `{"event": "start" | "eval" | "end", "step", "submission_time", ...}` as the trial goes.
    """
    outcome = TrialOutcome()
    try:
        _train(workload, submission, hyperparameters, model, model_state, input_queue, rngs, settings, logger, clock,
               outcome, monitor, checkpoint, ranks, progress)
    except SubmissionError as error:
        outcome.failure = error
    finally:
        if logger is not None:
            logger.append_scalar_metrics({"score": outcome.accumulated_submission_time}, outcome.global_step, outcome.preemption_count)
            logger.flush()
        _notify(progress, "end", step=outcome.global_step, submission_time=outcome.accumulated_submission_time,
                stop_reason=outcome.stop_reason)
    return outcome


def _notify(progress: Optional[Callable[[Dict[str, Any]], None]], event: str, **facts: Any) -> None:
    """Tells the progress listener how the trial stands; a listener's failure is no failure of the trial."""
    if progress is None:
        return
    try:
        progress({"event": event, **facts})
    except Exception:
        pass


def _new_train_state() -> Dict[str, Any]:
    return {
        "validation_goal_reached": False,
        "test_goal_reached": False,
        "is_time_remaining": True,
        "last_eval_time": 0.0,
        "training_complete": False,
        "accumulated_submission_time": 0.0,
        "accumulated_eval_time": 0.0,
        "accumulated_logging_time": 0.0,
        "last_step_end_time": None,
    }


def _resume(checkpoint, model, optimizer_state, train_state, eval_results, input_queue, logger, outcome) -> int:
    """Off the clock: puts the trial back where `checkpoint` left it; returns its global step."""
    outcome.notes += trial_checkpoints.restore_model_and_optimizer(checkpoint, model, optimizer_state)
    train_state.update(checkpoint["train_state"])
    eval_results.extend(tuple(entry) for entry in checkpoint["eval_results"])
    for name, value in checkpoint["outcome"].items():
        setattr(outcome, name, value)
    outcome.preemption_count = checkpoint["preemption_count"] + 1
    outcome.global_step = checkpoint["global_step"]
    outcome.accumulated_submission_time = train_state["accumulated_submission_time"]
    outcome.validation_goal_reached = train_state["validation_goal_reached"]
    outcome.test_goal_reached = train_state["test_goal_reached"]
    if logger is not None:
        logger.restore_rows(**checkpoint["logged_rows"])
    input_queue.skip(checkpoint["batches_drawn"] - input_queue.batches_drawn)
    trial_checkpoints.restore_rng_state(checkpoint["rng_state"])  # last: nothing before the first step draws from it
    return checkpoint["global_step"]


def _train(workload, submission, hyperparameters, model, model_state, input_queue, rngs, settings, logger, clock,
           outcome, monitor, checkpoint, ranks, progress=None):
    protocol = settings.protocol
    optimizer_state = _call(
        monitor, "init_optimizer_state", 0, submission.init_optimizer_state,
        workload, model, model_state, hyperparameters, rngs.optimizer_init,
    )
    outcome.optimizer_state = optimizer_state
    train_state = _new_train_state()
    read_only_train_state = types.MappingProxyType(train_state)  # a live view: made once, not once per step
    eval_results: List[Tuple[int, Dict[str, Any]]] = outcome.eval_results
    global_step = 0
    if checkpoint is not None:
        global_step = _resume(checkpoint, model, optimizer_state, train_state, eval_results, input_queue, logger, outcome)
    goals_reached = train_state["validation_goal_reached"] and train_state["test_goal_reached"]
    checkpointer = _Checkpointer(settings, ranks, clock) if settings.checkpoint_dir is not None else None
    if logger is not None:
        workload.attach_metrics_logger(logger)
    calls_prepare_for_eval = submission.has_prepare_for_eval and protocol.calls_prepare_for_eval
    step_rngs = StepRngs(rngs.loop, protocol.step_rng_splits)
    # Before the clock starts: a full block, so the first eval period never computes rngs on the clock.
    step_rngs.prepare(global_step, _rng_block_size(global_step, train_state, settings, workload.eval_period_time_sec))
    free_cuda_memory()
    _notify(progress, "start", step=global_step, submission_time=train_state["accumulated_submission_time"])

    global_start_time = clock()
    train_state["last_step_end_time"] = global_start_time

    while train_state["is_time_remaining"] and not goals_reached and not train_state["training_complete"]:
        per_step = step_rngs.for_step(global_step)
        data_select_rng, update_rng, eval_rng = per_step[0], per_step[1], per_step[-1]

        batch = _call(
            monitor, "data_selection", global_step, submission.data_selection,
            workload, input_queue, optimizer_state, model, model_state, hyperparameters, global_step, data_select_rng,
        )
        try:
            optimizer_state, model, model_state = _call(
                monitor, "update_params", global_step, submission.update_params,
                workload, model, workload.model_params_types, model_state, hyperparameters, batch,
                workload.loss_type, optimizer_state, eval_results, global_step, update_rng,
                train_state=read_only_train_state,
            )
            outcome.optimizer_state = optimizer_state
        except TrainingCompleteError:
            train_state["training_complete"] = True
        global_step += 1
        if settings.max_global_steps is not None and global_step == settings.max_global_steps:
            train_state["training_complete"] = True

        train_step_end_time = clock()
        train_state["accumulated_submission_time"] += train_step_end_time - train_state["last_step_end_time"]
        outcome.global_step = global_step
        outcome.accumulated_submission_time = train_state["accumulated_submission_time"]
        if protocol.budget_check_every_step:
            _check_budget(train_state, settings)

        eval_due = (
            train_step_end_time - train_state["last_eval_time"] >= workload.eval_period_time_sec
            or train_state["training_complete"]
        )
        if eval_due:
            del batch
            if calls_prepare_for_eval:
                prepare_start_time = clock()
                optimizer_state, model, model_state = _call(
                    monitor, "prepare_for_eval", global_step, submission.prepare_for_eval,
                    workload, model, workload.model_params_types, model_state, hyperparameters,
                    workload.loss_type, optimizer_state, eval_results, global_step, per_step[2],
                )
                train_state["accumulated_submission_time"] += clock() - prepare_start_time
                outcome.accumulated_submission_time = train_state["accumulated_submission_time"]

            if not protocol.budget_check_every_step:
                _check_budget(train_state, settings)
            # v0.6 gives no eval once over budget; v0.5 evaluated the step that went over as well.
            if train_state["is_time_remaining"] or protocol.budget_check_every_step:
                goals_reached = _evaluate(
                    workload, model, model_state, eval_rng, settings, global_step, global_start_time,
                    train_state, eval_results, logger, clock, outcome, ranks, progress,
                )
                if checkpointer is not None:
                    checkpointer.after_eval(
                        train_state, outcome, model, optimizer_state, model_state, eval_results, global_step, input_queue, logger
                    )
                if outcome.stopped_on_divergence:
                    break
            if train_state["is_time_remaining"] and not goals_reached and not train_state["training_complete"]:
                # Off the clock: the rngs for the steps until (well past) the next eval.
                step_rngs.prepare(global_step, _rng_block_size(global_step, train_state, settings, workload.eval_period_time_sec))
        train_state["last_step_end_time"] = clock()

    outcome.training_complete = train_state["training_complete"]
    outcome.is_time_remaining = train_state["is_time_remaining"]


def _check_budget(train_state: Dict[str, Any], settings: TrialSettings) -> None:
    train_state["is_time_remaining"] = train_state["accumulated_submission_time"] < settings.max_allowed_runtime_sec


def _rng_block_size(global_step: int, train_state: Dict[str, Any], settings: TrialSettings, eval_period_sec: float) -> int:
    elapsed = train_state["accumulated_submission_time"]
    rate = global_step / elapsed if elapsed > 0 else None  # before the first step: no rate, the minimum block
    remaining = settings.max_global_steps - global_step if settings.max_global_steps is not None else None
    return steps_until_next_eval(rate, eval_period_sec, remaining_steps=remaining)


def _evaluate(workload, model, model_state, eval_rng, settings, global_step, global_start_time,
              train_state, eval_results, logger, clock, outcome, ranks, progress=None) -> bool:
    """One untimed eval; returns whether both targets have now been reached."""
    free_cuda_memory()
    eval_start_time = clock()
    try:
        result = workload.eval_model(
            settings.global_eval_batch_size, model, model_state, eval_rng, settings.data_dir,
            settings.imagenet_v2_data_dir, global_step,
        )
    except RuntimeError as error:
        if settings.strict:
            raise SubmissionError(f"evaluation at step {global_step} raised RuntimeError: {error}") from error
        # Upstream logs the error, frees CUDA memory and trains on; the next step is eval-eligible again.
        outcome.eval_errors.append(f"step {global_step}: {error}")
        free_cuda_memory()
        return False
    train_state["validation_goal_reached"] |= workload.has_reached_validation_target(result)
    train_state["test_goal_reached"] |= workload.has_reached_test_target(result) if f"test/{workload.target_metric_name}" in result else False
    eval_end_time = clock()
    train_state["last_eval_time"] = eval_end_time
    train_state["accumulated_eval_time"] += eval_end_time - eval_start_time

    result["score"] = train_state["accumulated_submission_time"]
    result["total_duration"] = eval_end_time - global_start_time
    result["accumulated_submission_time"] = train_state["accumulated_submission_time"]
    result["accumulated_eval_time"] = train_state["accumulated_eval_time"]
    result["accumulated_logging_time"] = train_state["accumulated_logging_time"]
    eval_results.append((global_step, result))

    outcome.accumulated_eval_time = train_state["accumulated_eval_time"]
    outcome.validation_goal_reached = train_state["validation_goal_reached"]
    outcome.test_goal_reached = train_state["test_goal_reached"]
    validation_metric = result.get(f"validation/{workload.target_metric_name}")
    if validation_metric is not None and _better(workload, validation_metric, outcome.best_validation_metric):
        outcome.best_validation_metric = validation_metric
    if outcome.validation_goal_reached and outcome.time_to_validation_target is None:
        outcome.time_to_validation_target = result["score"]

    # Every rank reads the clock (a collective under DDP); only the writer rank has a logger.
    logging_start_time = clock()
    if logger is not None:
        logger.append_scalar_metrics(result, global_step, outcome.preemption_count, is_eval=True)
    _notify(progress, "eval", step=global_step, submission_time=result["score"], validation_metric=validation_metric,
            reached=train_state["validation_goal_reached"])
    train_state["accumulated_logging_time"] += clock() - logging_start_time
    free_cuda_memory()

    problem = ranks.first_problem(_divergence(result, logger))
    if problem is not None and outcome.divergence is None:
        outcome.divergence = f"{problem} at step {global_step}"
        if settings.strict:
            raise SubmissionError(
                f"training diverged at step {global_step}: {problem}; update_params produced non-finite values "
                "(lower the learning rate, clip gradients, or check the update rule)."
            )
        outcome.stopped_on_divergence = settings.stop_on_divergence
    return train_state["validation_goal_reached"] and train_state["test_goal_reached"]


class _Checkpointer:
    """Saves the trial after an eval when the schedule is due; only the writer rank writes."""

    def __init__(self, settings: TrialSettings, ranks: Ranks, clock: Clock) -> None:
        self.schedule = settings.checkpoint_schedule
        self.directory = settings.checkpoint_dir
        self.ranks = ranks
        self.clock = clock
        self.evals_since = 0
        self.last_time = clock()

    def after_eval(self, train_state, outcome, model, optimizer_state, model_state, eval_results, global_step, input_queue, logger) -> None:
        self.evals_since += 1
        start = self.clock()  # the ranks' common clock, so all of them agree that a checkpoint is due
        if not self.schedule.is_due(self.evals_since, start - self.last_time):
            return
        if self.ranks.is_writer:
            trial_checkpoints.save(self.directory, {
                "model_params": unwrap_model(model).state_dict(),
                "optimizer_state": trial_checkpoints.optimizer_state_dicts(optimizer_state),
                "model_state": model_state,
                "train_state": dict(train_state),
                "eval_results": list(eval_results),
                "global_step": global_step,
                "preemption_count": outcome.preemption_count,
                "rng_state": trial_checkpoints.rng_state(),
                "batches_drawn": input_queue.batches_drawn,
                "outcome": outcome.resumable_fields(),
                "logged_rows": logger.rows() if logger is not None else {"measurements": [], "eval_measurements": []},
            })
        seconds = self.clock() - start
        # Upstream counts checkpoint writing as logging time: off the submission's clock either way.
        train_state["accumulated_logging_time"] += seconds
        outcome.checkpoint_seconds += seconds
        outcome.checkpoints_written += 1
        self.evals_since = 0
        self.last_time = self.clock()
