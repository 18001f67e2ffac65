"""Self-tuning NAdamW: the AlgoPerf self-tuning baseline.

Under the self-tuning ruleset the runner passes `hyperparameters=None`; this
submission trains with one fixed point (reference §1.6) and otherwise is the
external-tuning NAdamW baseline.
"""

import collections
from typing import Any, Dict, List, Optional, Tuple

from algoperf import spec
from submissions.nadamw import submission as nadamw

_Hyperparameters = collections.namedtuple(
    "Hyperparameters", ["dropout_rate", "learning_rate", "one_minus_beta1", "beta2", "weight_decay", "warmup_factor"]
)
FIXED_HYPERPARAMETERS = _Hyperparameters(
    dropout_rate=0.1,
    learning_rate=0.0017486387539278373,
    one_minus_beta1=0.06733926164,
    beta2=0.9955159689799007,
    weight_decay=0.08121616522670176,
    warmup_factor=0.02,
)

get_batch_size = nadamw.get_batch_size
data_selection = nadamw.data_selection
prepare_for_eval = nadamw.prepare_for_eval


def init_optimizer_state(
    workload: spec.Workload,
    model_params: spec.ParameterContainer,
    model_state: spec.ModelAuxiliaryState,
    hyperparameters: spec.Hyperparameters,
    rng: spec.RandomState,
) -> spec.OptimizerState:
    del hyperparameters
    return nadamw.init_optimizer_state(workload, model_params, model_state, FIXED_HYPERPARAMETERS, rng)


def update_params(
    workload: spec.Workload,
    current_param_container: spec.ParameterContainer,
    current_params_types: spec.ParameterTypeTree,
    model_state: spec.ModelAuxiliaryState,
    hyperparameters: spec.Hyperparameters,
    batch: Dict[str, spec.Tensor],
    loss_type: spec.LossType,
    optimizer_state: spec.OptimizerState,
    eval_results: List[Tuple[int, float]],
    global_step: int,
    rng: spec.RandomState,
    train_state: Optional[Dict[str, Any]] = None,
) -> spec.UpdateReturn:
    del hyperparameters
    return nadamw.update_params(
        workload, current_param_container, current_params_types, model_state, FIXED_HYPERPARAMETERS, batch,
        loss_type, optimizer_state, eval_results, global_step, rng, train_state,
    )
