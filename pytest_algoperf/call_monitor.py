"""Watching every call into a submission: rules, API shapes, hangs and memory.

The runner calls `before(function, step)` and `after(function, step, result)`
around each submission call when a monitor is given (smoke runs, or
`--algoperf-timeout`); timed runs without one pay nothing.
"""

from __future__ import annotations

import math
import resource
import signal
import threading
from typing import Any, Dict, Optional, Set

from pytest_algoperf import rules
from pytest_algoperf.submission_loading import SubmissionError
from workloads.parallel import unwrap_model


class SubmissionTimeout(SubmissionError):
    pass


class CallTimer:
    """Interrupts a submission call that runs longer than `seconds` (main thread only, via SIGALRM).

    A call blocked inside native code is interrupted when it returns to Python.
    """

    def __init__(self, seconds: Optional[float]) -> None:
        self.seconds = seconds if seconds and threading.current_thread() is threading.main_thread() else None
        self._previous_handler: Any = None

    def start(self, function: str, step: int) -> None:
        if self.seconds is None:
            return

        def expire(signum: int, frame: Any) -> None:
            raise SubmissionTimeout(
                f"{function} did not return within {self.seconds:g} s at step {step} (--algoperf-timeout); "
                f"look for an endless loop or a blocking call in {function}"
            )

        self._previous_handler = signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)

    def stop(self) -> None:
        if self.seconds is None:
            return
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous_handler or signal.SIG_DFL)


class RecordingQueue:
    """The training input queue, remembering the keys of the batches it hands out."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        self.keys: Set[str] = set()

    def __iter__(self) -> "RecordingQueue":
        return self

    def __next__(self) -> Any:
        batch = next(self._queue)
        self.keys = set(batch)
        return batch


def _parameter_checksum(model: Any) -> Dict[str, float]:
    import torch

    with torch.no_grad():
        return {name: float(p.detach().double().square().sum()) for name, p in model.named_parameters()}


def _parameter_shapes(model: Any) -> Dict[str, tuple]:
    return {name: tuple(p.shape) for name, p in unwrap_model(model).named_parameters()}


class CallMonitor:
    """Checks around submission calls; `strict` adds the rule and API checks of smoke runs."""

    def __init__(self, timeout: Optional[float] = None, strict: bool = False) -> None:
        self.timer = CallTimer(timeout)
        self.strict = strict
        self.guard = rules.SubmissionGuard()
        self.peak_step_memory_bytes = 0
        self._workload: Any = None
        self._hyperparameters: Any = None
        self._queue: Optional[RecordingQueue] = None
        self._snapshots: Dict[str, Any] = {}
        self._checksum_before_init: Optional[Dict[str, float]] = None

    def watch(self, workload: Any, hyperparameters: Any, model: Any, queue: Optional[RecordingQueue]) -> None:
        """Takes the reference snapshots; call once, after all fixture set-up."""
        self._workload, self._hyperparameters, self._queue = workload, hyperparameters, queue
        if not self.strict:
            return
        self.guard.protect(workload)
        self._snapshots = {
            "environment": rules.environment_snapshot(),
            "workload": rules.workload_fingerprint(workload),
            "hyperparameters": repr(hyperparameters),
        }
        self._checksum_before_init = _parameter_checksum(model)
        self._model = model

    def before(self, function: str, step: int) -> None:
        self.guard.active, self.guard.step = function, step
        if self.strict:
            self._reset_memory_peak()
        self.timer.start(function, step)

    def after(self, function: str, step: int, result: Any, raised: bool) -> None:
        self.timer.stop()
        self.guard.active = None
        if raised or not self.strict:
            return
        where = f"{function} at step {step}"
        self._check_unchanged(where)
        self._record_memory_peak()
        if function == "init_optimizer_state":
            self._check_model_untouched(where)
        elif function == "data_selection":
            self._check_batch_keys(result, where)
        elif function in ("update_params", "prepare_for_eval"):
            self._check_parameter_shapes(result[1], where)
            self._check_parameters_finite(result[1], function, step)

    # --- the checks ------------------------------------------------------------------------
    def _check_unchanged(self, where: str) -> None:
        changes = rules.environment_changes(self._snapshots["environment"], rules.environment_snapshot())
        if changes:
            rules.restore_environment(self._snapshots["environment"])
            raise rules.RuleViolation("environment-unchanged", where, "; ".join(changes))
        changes = rules.changed_entries(self._snapshots["workload"], rules.workload_fingerprint(self._workload))
        if changes:
            names = ", ".join(change.split(":")[0] for change in changes)
            raise rules.RuleViolation("workload-unchanged", where, f"changed {names}")
        if repr(self._hyperparameters) != self._snapshots["hyperparameters"]:
            raise rules.RuleViolation("hyperparameters-unchanged", where, "the hyperparameters object changed")

    def _check_model_untouched(self, where: str) -> None:
        after = _parameter_checksum(self._model)
        changed = [name for name, value in after.items() if not math.isclose(value, self._checksum_before_init.get(name, math.nan))]
        if changed:
            raise rules.RuleViolation("init-leaves-model-alone", where, f"parameters changed: {', '.join(changed[:5])}")

    def _check_batch_keys(self, batch: Any, where: str) -> None:
        if not isinstance(batch, dict):
            return  # upstream hands any other value to update_params unchanged (e.g. the queue itself)
        missing = sorted(self._queue.keys - set(batch)) if self._queue is not None else []
        if missing:
            raise SubmissionError(
                f"{where}: data_selection returned a batch without {', '.join(missing)}; "
                f"return batches with the input queue's keys ({', '.join(sorted(self._queue.keys))})"
            )

    def _check_parameter_shapes(self, params: Any, where: str) -> None:
        expected = {name: tuple(shape.shape_tuple) for name, shape in self._workload.param_shapes.items()}
        try:
            actual = _parameter_shapes(params)
        except AttributeError:
            raise SubmissionError(f"{where}: returned params of type {type(params).__name__}; return the model (nn.Module)") from None
        if actual != expected:
            differing = sorted(name for name in set(expected) | set(actual) if expected.get(name) != actual.get(name))
            raise SubmissionError(
                f"{where}: returned params whose shapes differ from the model's ({', '.join(differing[:5])}); "
                "return the model with its parameters' shapes unchanged"
            )

    @staticmethod
    def _check_parameters_finite(params: Any, function: str, step: int) -> None:
        """Smoke runs catch divergence at the update that causes it, not at the next eval."""
        import torch

        with torch.no_grad():
            for name, parameter in unwrap_model(params).named_parameters():
                # A sum is non-finite if any element is (cheap, no tensor of flags); an overflowing sum of finite
                # values is told apart by the exact check.
                if not bool(torch.isfinite(parameter.sum())) and not bool(torch.isfinite(parameter).all()):
                    raise SubmissionError(
                        f"training diverged in {function} at step {step}: parameter {name} is not finite; "
                        "lower the learning rate, clip gradients, or check the update rule"
                    )

    # --- memory ------------------------------------------------------------------------------------
    def _reset_memory_peak(self) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        else:
            _reset_process_peak()

    def _record_memory_peak(self) -> None:
        import torch

        peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else _process_peak_bytes()
        self.peak_step_memory_bytes = max(self.peak_step_memory_bytes, peak)


def _reset_process_peak() -> None:
    """Linux: writing 5 to clear_refs resets the process's peak resident size (VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def _process_peak_bytes() -> int:
    """The process's peak resident size since the last reset (VmHWM), or since start where unavailable."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
