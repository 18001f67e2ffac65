"""Rules of the benchmark that a program can check (reference §1.7), each with its name and reason.

The reference leaves these to a human jury; here every check names the rule,
where it was broken and why it matters, and fails the item. What each check
cannot see is listed in the README.
"""

from __future__ import annotations

import ast
import dataclasses
import os
from typing import Any, Dict, Iterable, List, Optional

from pytest_algoperf.submission_loading import SubmissionError

RULES: Dict[str, str] = {
    "no-input-pipeline-access": (
        "the data pipeline and the evaluation data are part of the benchmark: a submission may only draw "
        "training batches from the input queue it is given"
    ),
    "workload-unchanged": (
        "targets, budgets, the loss, the model and the eval methods define what is measured; changing them "
        "changes the benchmark, not the training algorithm"
    ),
    "hyperparameters-unchanged": "the trial's hyperparameters are the tuning point being scored",
    "environment-unchanged": (
        "environment variables, torch.backends flags and the default dtype are fixed by the rules: a change "
        "there is a software or precision speedup, not an algorithmic one"
    ),
    "no-workload-identification": (
        "a submission must be workload-agnostic: choosing logic or hyperparameters per workload is not allowed"
    ),
    "no-untimed-work": "work done outside the timed region (at import, in get_batch_size) would not be charged to the run",
    "init-leaves-model-alone": (
        "init_optimizer_state runs off the clock and must not change the model; training there would be free"
    ),
}

IMPORT_SECONDS_LIMIT = 10.0  # importing a submission may load libraries, never train
GET_BATCH_SIZE_SECONDS_LIMIT = 1.0  # returning a number takes microseconds
BATCH_SIZE_FUNCTIONS = ("get_batch_size", "get_eval_batch_size")


def rule_warning(rule: str, where: str, what: str) -> str:
    """A heuristic finding that does not fail the item: one line for the session summary."""
    return f"rule {rule!r} may be broken in {where}: {what} (heuristic check: a human reviewer decides)"


class RuleViolation(SubmissionError):
    def __init__(self, rule: str, where: str, what: str) -> None:
        self.rule = rule
        super().__init__(f"rule {rule!r} broken in {where}: {what} — {RULES[rule]}")


# --- environment --------------------------------------------------------------------------


# New environment variables with these prefixes steer kernels, allocators, threads or precision. Other new
# variables are left alone: libraries set some on first import (e.g. KMP_INIT_AT_FORK, TORCHINDUCTOR_CACHE_DIR).
PERFORMANCE_VARIABLE_PREFIXES = (
    "CUDA_", "CUBLAS_", "CUBLASLT_", "CUDNN_", "NCCL_", "NVIDIA_", "PYTORCH_", "TORCH_", "OMP_", "MKL_",
    "OPENBLAS_", "XLA_", "TF_",
)


def environment_snapshot() -> Dict[str, Any]:
    import torch

    snapshot: Dict[str, Any] = {f"environment variable {key}": value for key, value in os.environ.items()}
    snapshot.update({
        "torch.get_default_dtype()": torch.get_default_dtype(),
        "torch.backends.cudnn.benchmark": torch.backends.cudnn.benchmark,
        "torch.backends.cudnn.deterministic": torch.backends.cudnn.deterministic,
        "torch.backends.cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
        "torch.backends.cudnn.enabled": torch.backends.cudnn.enabled,
        "torch.backends.cuda.matmul.allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "torch.get_float32_matmul_precision()": torch.get_float32_matmul_precision(),
        "torch.are_deterministic_algorithms_enabled()": torch.are_deterministic_algorithms_enabled(),
    })
    return snapshot


def restore_environment(snapshot: Dict[str, Any]) -> None:
    """Puts back what a rule-breaking submission changed, so the session's other items run unaffected."""
    import torch

    prefix = "environment variable "
    wanted = {key[len(prefix):]: value for key, value in snapshot.items() if key.startswith(prefix)}
    for name in list(os.environ):
        if name not in wanted and name.startswith(PERFORMANCE_VARIABLE_PREFIXES):
            del os.environ[name]
    os.environ.update(wanted)
    torch.set_default_dtype(snapshot["torch.get_default_dtype()"])
    torch.backends.cudnn.benchmark = snapshot["torch.backends.cudnn.benchmark"]
    torch.backends.cudnn.deterministic = snapshot["torch.backends.cudnn.deterministic"]
    torch.backends.cudnn.allow_tf32 = snapshot["torch.backends.cudnn.allow_tf32"]
    torch.backends.cudnn.enabled = snapshot["torch.backends.cudnn.enabled"]
    torch.backends.cuda.matmul.allow_tf32 = snapshot["torch.backends.cuda.matmul.allow_tf32"]
    torch.set_float32_matmul_precision(snapshot["torch.get_float32_matmul_precision()"])
    torch.use_deterministic_algorithms(snapshot["torch.are_deterministic_algorithms_enabled()"])


def changed_entries(before: Dict[str, Any], after: Dict[str, Any]) -> List[str]:
    changes = []
    for key in sorted(set(before) | set(after)):
        if before.get(key, "<unset>") != after.get(key, "<unset>"):
            changes.append(f"{key}: {before.get(key, '<unset>')!r} -> {after.get(key, '<unset>')!r}")
    return changes


def environment_changes(before: Dict[str, Any], after: Dict[str, Any]) -> List[str]:
    """Changed or removed settings, and new environment variables that steer performance."""
    prefix = "environment variable "
    return [
        change for change in changed_entries(before, after)
        if not change.startswith(prefix)
        or change.split(":")[0] in before
        or change[len(prefix):].startswith(PERFORMANCE_VARIABLE_PREFIXES)
    ]


# --- the workload object ------------------------------------------------------------------------

GUARDED_WORKLOAD_METHODS = ("_build_input_queue", "eval_model", "_eval_model_on_split")
FIXED_WORKLOAD_METHODS = (
    "loss_fn", "model_fn", "init_model_fn", "eval_model", "_eval_model_on_split", "_build_input_queue",
    "has_reached_validation_target", "has_reached_test_target", "output_activation_fn", "is_output_params",
)


def workload_fingerprint(workload: Any) -> Dict[str, Any]:
    """Public primitive properties (targets, budgets, sizes), the class, and which object backs each fixed method."""
    from pytest_algoperf.results import workload_properties

    fingerprint: Dict[str, Any] = dict(workload_properties(workload))
    fingerprint["class"] = type(workload)
    for name in FIXED_WORKLOAD_METHODS:
        fingerprint[f"workload.{name}"] = id(vars(workload).get(name, getattr(type(workload), name, None)))
    return fingerprint


class _GuardedEvalIterators(dict):
    """The workload's cached eval iterators, readable only outside submission code."""

    def __init__(self, items: Dict[str, Any], guard: "SubmissionGuard") -> None:
        super().__init__(items)
        self._guard = guard

    def __getitem__(self, key: str) -> Any:
        self._guard.refuse("no-input-pipeline-access", f"read the {key!r} evaluation data (workload._eval_iters)")
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self._guard.refuse("no-input-pipeline-access", "looked for evaluation data (workload._eval_iters)")
        return super().__contains__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self._guard.refuse("no-input-pipeline-access", f"read the {key!r} evaluation data (workload._eval_iters)")
        return super().get(key, default)


class SubmissionGuard:
    """Knows which submission function is running, and refuses workload access that the rules forbid there."""

    def __init__(self) -> None:
        self.active: Optional[str] = None
        self.step = 0

    @property
    def where(self) -> str:
        return f"{self.active} at step {self.step}"

    def refuse(self, rule: str, what: str) -> None:
        if self.active is not None:
            raise RuleViolation(rule, self.where, what)

    def protect(self, workload: Any) -> None:
        """Wraps the workload's data and eval entry points so calls from submission code fail."""
        for name in GUARDED_WORKLOAD_METHODS:
            original = getattr(workload, name)

            def guarded(*args: Any, _original=original, _name=name, **kwargs: Any) -> Any:
                self.refuse("no-input-pipeline-access", f"called workload.{_name}")
                return _original(*args, **kwargs)

            setattr(workload, name, guarded)
        workload._eval_iters = _GuardedEvalIterators(workload._eval_iters, self)


# --- static scan for workload identification --------------------------------------------------------

# What every submission is handed and may read freely (step_hint, target_metric_name, budgets, sizes, ...) is
# not identification; these are: the class, the workload's name, and its targets.
IDENTIFYING_ATTRIBUTES = ("__class__", "name")
TARGET_ATTRIBUTES = ("validation_target_value", "test_target_value")


@dataclasses.dataclass
class IdentificationFindings:
    """`failures` break the rule beyond doubt; `warnings` are patterns that may be innocent (a human decides)."""

    failures: List[str] = dataclasses.field(default_factory=list)
    warnings: List[str] = dataclasses.field(default_factory=list)


def _reads_workload(node: ast.AST) -> bool:
    """Whether an expression reads an attribute of the `workload` argument (e.g. workload.target_metric_name)."""
    return any(
        isinstance(child, ast.Attribute) and isinstance(child.value, ast.Name) and child.value.id == "workload"
        for child in ast.walk(node)
    )


def _string_literals(node: ast.AST) -> List[str]:
    return [child.value for child in ast.walk(node) if isinstance(child, ast.Constant) and isinstance(child.value, str)]


def _compared_literals(node: ast.Compare) -> List[str]:
    """Strings a comparison compares against (`x == 'a'`, `x in ('a', 'b')`), not subscript keys inside it."""
    literals = []
    for operand in [node.left, *node.comparators]:
        elements = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
        literals += [e.value for e in elements if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return literals


def workload_identification_findings(source: str, workload_names: Iterable[str]) -> IdentificationFindings:
    """Places in the source that identify the workload, outside the batch-size functions (best effort).

    Failures: `type(workload)`, `isinstance(workload, ...)`, `workload.__class__`, `workload.name`, and a
    comparison or membership test against a string naming a registered workload. Warnings: reading the
    workload's targets, comparing one of its properties with a string (`workload.target_metric_name == 'wer'`),
    and other string literals naming a workload. Not detected: computed attribute names, fingerprints such as
    parameter counts or shapes, and code in modules the submission imports.
    """
    names = set(workload_names)
    findings = IdentificationFindings()
    tree = ast.parse(source)
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)) or function.name in BATCH_SIZE_FUNCTIONS:
            continue
        compared_names = set()
        for node in ast.walk(function):
            line = getattr(node, "lineno", function.lineno)
            where = f"line {line}"
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("type", "isinstance"):
                if node.args and isinstance(node.args[0], ast.Name) and node.args[0].id == "workload":
                    findings.failures.append(f"{where}: {node.func.id}(workload, ...) in {function.name}")
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "workload":
                if node.attr in IDENTIFYING_ATTRIBUTES:
                    findings.failures.append(f"{where}: workload.{node.attr} in {function.name}")
                elif node.attr in TARGET_ATTRIBUTES:
                    findings.warnings.append(f"{where}: reads workload.{node.attr} in {function.name}")
            elif isinstance(node, ast.Compare):
                literals = _compared_literals(node)
                named = [text for text in literals if text in names]
                compared_names.update(named)
                if named:
                    findings.failures.append(f"{where}: compares with the workload name {named[0]!r} in {function.name}")
                elif literals and any(_reads_workload(operand) for operand in [node.left, *node.comparators]):
                    findings.warnings.append(f"{where}: compares a workload property with {literals[0]!r} in {function.name}")
        for text in _string_literals(function):
            if text in names and text not in compared_names:
                findings.warnings.append(f"the string {text!r} in {function.name}")
    return findings
