"""What a trial's outcome means for its test item: the record it reports and the one-line verdict."""

from __future__ import annotations

from typing import Any, Dict, Optional

from pytest_algoperf.run_plan import TrialSpec
from pytest_algoperf.runner import TrialOutcome


def trial_status(outcome: TrialOutcome, development_run: bool) -> str:
    if outcome.failure is not None:
        return "error"
    if outcome.validation_goal_reached and not development_run:
        return "reached"
    if outcome.diverged:
        # A non-finite loss is a result, as upstream scores it: the target was not reached. Development runs
        # report it too, since they exist to check that a submission trains.
        return "diverged"
    if development_run:
        # --algoperf-max-steps runs and runs on subset data check that a submission works, not its speed.
        return "unscored"
    return "not reached"


def trial_record(trial: TrialSpec, workload: Any, outcome: TrialOutcome, budget_sec: float, development_run: bool) -> Dict[str, Any]:
    """A plain dict (it travels through xdist) describing one finished trial."""
    return {
        "id": trial.id,
        "workload": trial.workload,
        "study": trial.study,
        "trial": trial.trial,
        "status": trial_status(outcome, development_run),
        "steps": outcome.global_step,
        "evals": len(outcome.eval_results),
        "submission_time": outcome.accumulated_submission_time,
        "time_to_target": outcome.time_to_validation_target,
        "best_validation_metric": outcome.best_validation_metric,
        "target_metric": workload.target_metric_name,
        "higher_is_better": workload.higher_is_better,
        "validation_target": workload.validation_target_value,
        "budget_sec": budget_sec,
        "stop_reason": outcome.stop_reason,
        "divergence": outcome.divergence,
        "eval_errors": list(outcome.eval_errors),
        "preemption_count": outcome.preemption_count,
        "checkpoints_written": outcome.checkpoints_written,
        "checkpoint_seconds": outcome.checkpoint_seconds,
    }


def failure_message(record: Dict[str, Any], outcome: TrialOutcome) -> Optional[str]:
    """None when the item passes; otherwise why, in one line."""
    if outcome.failure is not None:
        return f"submission error after {outcome.global_step} steps: {outcome.failure}"
    return record_failure_message(record)


def record_failure_message(record: Dict[str, Any]) -> Optional[str]:
    """The verdict of a finished trial from its record alone (also a stored one, reused by a rerun)."""
    if record["status"] in ("reached", "unscored"):
        return None
    comparison = ">" if record["higher_is_better"] else "<"
    best = record["best_validation_metric"]
    diverged = f"training diverged ({record['divergence']}), so the " if record["status"] == "diverged" else ""
    best_text = "no eval" if best is None else f"{best:.6g}"
    return (
        f"{diverged}validation target not reached: best validation/{record['target_metric']} {best_text}, "
        f"target {comparison} {record['validation_target']}; used {record['submission_time']:.1f} s of "
        f"{record['budget_sec']:.1f} s budget in {record['steps']} steps ({record['stop_reason']})"
    )
