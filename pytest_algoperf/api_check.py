"""The submission API's function signatures, checked by name.

Upstream's runner passes arguments by keyword, so a parameter with another name
breaks a submission there even when it works positionally here.
"""

from __future__ import annotations

import inspect
from typing import Any, Dict, List, Tuple

# Parameter names of each API function, in upstream's order (reference §1.1-§1.5).
API_PARAMETERS: Dict[str, Tuple[str, ...]] = {
    "get_batch_size": ("workload_name",),
    "init_optimizer_state": ("workload", "model_params", "model_state", "hyperparameters", "rng"),
    "update_params": (
        "workload", "current_param_container", "current_params_types", "model_state", "hyperparameters", "batch",
        "loss_type", "optimizer_state", "eval_results", "global_step", "rng",
    ),
    "prepare_for_eval": (
        "workload", "current_param_container", "current_params_types", "model_state", "hyperparameters",
        "loss_type", "optimizer_state", "eval_results", "global_step", "rng",
    ),
    "data_selection": (
        "workload", "input_queue", "optimizer_state", "current_param_container", "model_state", "hyperparameters",
        "global_step", "rng",
    ),
}
OPTIONAL_PARAMETERS = {"update_params": ("train_state",)}


def signature_problems(module: Any) -> List[str]:
    """What differs from the API, one phrase per problem; empty when every present function fits."""
    problems = []
    for name, expected in API_PARAMETERS.items():
        function = getattr(module, name, None)
        if function is None:
            continue
        parameters = inspect.signature(function).parameters
        takes_any_keyword = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
        missing = [p for p in expected if p not in parameters and not takes_any_keyword]
        allowed = set(expected) | set(OPTIONAL_PARAMETERS.get(name, ()))
        extra = [
            p.name for p in parameters.values()
            if p.name not in allowed and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.default is p.empty
        ]
        if missing:
            problems.append(f"{name} lacks parameter(s) {', '.join(missing)}")
        if extra:
            problems.append(f"{name} requires parameter(s) the runner never passes: {', '.join(extra)}")
    return problems
