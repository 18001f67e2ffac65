"""External-tuning NAdamW with its optimizer and schedule vendored in `optimizers/`."""

from typing import Dict, Iterator, List, Tuple

import torch
import torch.distributed.nn as dist_nn
from absl import logging

from algoperf import spec
from algoperf.pytorch_utils import pytorch_setup
from optimizers.nadamw import NAdamW

USE_PYTORCH_DDP = pytorch_setup()[0]


def init_optimizer_state(workload: spec.Workload, model_params: spec.ParameterContainer,
                         model_state: spec.ModelAuxiliaryState, hyperparameters: spec.Hyperparameters,
                         rng: spec.RandomState) -> spec.OptimizerState:
    from optimizers.schedules import warmup_cosine  # a vendored import inside a function, after loading

    del model_state, rng
    optimizer = NAdamW(model_params.parameters(), lr=hyperparameters.learning_rate,
                       betas=(1.0 - hyperparameters.one_minus_beta1, hyperparameters.beta2),
                       weight_decay=hyperparameters.weight_decay)
    return {"optimizer": optimizer,
            "scheduler": warmup_cosine(optimizer, workload.step_hint, hyperparameters.warmup_factor)}


def update_params(workload: spec.Workload, current_param_container: spec.ParameterContainer,
                  current_params_types: spec.ParameterTypeTree, model_state: spec.ModelAuxiliaryState,
                  hyperparameters: spec.Hyperparameters, batch: Dict[str, spec.Tensor], loss_type: spec.LossType,
                  optimizer_state: spec.OptimizerState, eval_results: List[Tuple[int, float]], global_step: int,
                  rng: spec.RandomState, train_state=None) -> spec.UpdateReturn:
    del current_params_types, loss_type, eval_results, train_state
    current_param_container.train()
    optimizer_state["optimizer"].zero_grad()
    logits, new_model_state = workload.model_fn(
        params=current_param_container, augmented_and_preprocessed_input_batch=batch, model_state=model_state,
        mode=spec.ForwardPassMode.TRAIN, rng=rng, update_batch_norm=True, dropout_rate=hyperparameters.dropout_rate)
    loss_dict = workload.loss_fn(label_batch=batch["targets"], logits_batch=logits, mask_batch=batch.get("weights"),
                                 label_smoothing=hyperparameters.label_smoothing)
    summed, n_valid = loss_dict["summed"], loss_dict["n_valid_examples"]
    if USE_PYTORCH_DDP:
        summed, n_valid = dist_nn.all_reduce(summed), dist_nn.all_reduce(n_valid)
    loss = summed / n_valid
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(current_param_container.parameters(), max_norm=1.0)
    optimizer_state["optimizer"].step()
    optimizer_state["scheduler"].step()
    if workload.metrics_logger is not None and (global_step <= 100 or global_step % 500 == 0):
        workload.metrics_logger.append_scalar_metrics({"loss": loss.item(), "grad_norm": grad_norm.item()}, global_step)
    logging.info("%d) loss = %0.3f, grad_norm = %0.3f", global_step, loss.item(), grad_norm.item())
    return optimizer_state, current_param_container, new_model_state


def prepare_for_eval(workload, current_param_container, current_params_types, model_state, hyperparameters,
                     loss_type, optimizer_state, eval_results, global_step, rng):
    return optimizer_state, current_param_container, model_state


def get_batch_size(workload_name):
    if workload_name == "mnist":
        return 16
    if workload_name == "ogbg":
        return 512
    if workload_name == "wmt":
        return 128
    if workload_name == "criteo1tb":
        return 262_144
    raise ValueError(f"Unsupported workload name: {workload_name}.")


def data_selection(workload: spec.Workload, input_queue: Iterator[Dict[str, spec.Tensor]], optimizer_state,
                   current_param_container, model_state, hyperparameters, global_step, rng):
    return next(input_queue)
