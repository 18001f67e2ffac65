"""Self-tuning schedule-free AdamW, written the way the leaderboard's PyTorch submissions are."""

from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
import torch.distributed.nn as dist_nn
from absl import logging

from algoperf import spec
from algoperf.pytorch_utils import pytorch_setup
from submissions_algorithms.submissions.self_tuning.schedule_free_style.schedule_free import AdamWScheduleFree

USE_PYTORCH_DDP = pytorch_setup()[0]

HPARAMS = {
    "dropout_rate": 0.1,
    "learning_rate": 0.0025,
    "one_minus_beta1": 0.1,
    "beta2": 0.9955,
    "weight_decay": 0.08,
    "warmup_factor": 0.02,
}


def init_optimizer_state(workload: spec.Workload, model_params: spec.ParameterContainer,
                         model_state: spec.ModelAuxiliaryState, hyperparameters: spec.Hyperparameters,
                         rng: spec.RandomState) -> spec.OptimizerState:
    del model_state, rng, hyperparameters
    optimizer = AdamWScheduleFree(
        model_params.parameters(),
        lr=HPARAMS["learning_rate"],
        betas=(1.0 - HPARAMS["one_minus_beta1"], HPARAMS["beta2"]),
        warmup_steps=int(HPARAMS["warmup_factor"] * workload.step_hint),
        weight_decay=HPARAMS["weight_decay"],
    )
    # Budget-aware logging: every submission is handed these properties.
    logging.info("budget %s s, eval every %s s, metric %s", workload.max_allowed_runtime_sec,
                 workload.eval_period_time_sec, workload.target_metric_name)
    return {"optimizer": optimizer, "best_metric": None}


def update_params(workload: spec.Workload, current_param_container: spec.ParameterContainer,
                  current_params_types: spec.ParameterTypeTree, model_state: spec.ModelAuxiliaryState,
                  hyperparameters: spec.Hyperparameters, batch: Dict[str, spec.Tensor], loss_type: spec.LossType,
                  optimizer_state: spec.OptimizerState, eval_results: List[Tuple[int, float]], global_step: int,
                  rng: spec.RandomState, train_state: Optional[Dict[str, Any]] = None) -> spec.UpdateReturn:
    del current_params_types, loss_type, hyperparameters
    # Like the leaderboard's schedule-free submission: the latest validation value of the target metric.
    if eval_results:
        latest = eval_results[-1][1]["validation/" + workload.target_metric_name]
        optimizer_state["best_metric"] = latest
    if train_state is not None and train_state["accumulated_submission_time"] < 0:
        raise ValueError("the clock runs backwards")
    optimizer = optimizer_state["optimizer"]
    optimizer.train()
    current_param_container.train()
    optimizer.zero_grad()
    logits, new_model_state = workload.model_fn(
        params=current_param_container, augmented_and_preprocessed_input_batch=batch, model_state=model_state,
        mode=spec.ForwardPassMode.TRAIN, rng=rng, update_batch_norm=True, dropout_rate=HPARAMS["dropout_rate"])
    loss_dict = workload.loss_fn(label_batch=batch["targets"], logits_batch=logits, mask_batch=batch.get("weights"))
    summed, n_valid = loss_dict["summed"], loss_dict["n_valid_examples"]
    if USE_PYTORCH_DDP:
        summed, n_valid = dist_nn.all_reduce(summed), dist_nn.all_reduce(n_valid)
    loss = summed / n_valid
    loss.backward()
    optimizer.step()
    if global_step <= 10 or global_step % 500 == 0:
        logging.info("%d) loss = %0.3f", global_step, loss.item())
    return optimizer_state, current_param_container, new_model_state


def prepare_for_eval(workload: spec.Workload, current_param_container: spec.ParameterContainer,
                     current_params_types: spec.ParameterTypeTree, model_state: spec.ModelAuxiliaryState,
                     hyperparameters: spec.Hyperparameters, loss_type: spec.LossType,
                     optimizer_state: spec.OptimizerState, eval_results: List[Tuple[int, float]], global_step: int,
                     rng: spec.RandomState) -> spec.UpdateReturn:
    del workload, current_params_types, hyperparameters, loss_type, eval_results, global_step, rng
    optimizer_state["optimizer"].eval()  # evaluate at x; the next update_params moves back to y
    return optimizer_state, current_param_container, model_state


def get_batch_size(workload_name: str) -> int:
    # numpy integers, as submissions that compute their sizes with numpy return them.
    sizes = {"criteo1tb": np.int64(262_144), "fastmri": np.int64(32), "ogbg": np.int64(512), "wmt": np.int64(128),
             "mnist": np.int32(16)}
    if workload_name not in sizes:
        raise ValueError(f"Unsupported workload name: {workload_name}.")
    return sizes[workload_name]


def data_selection(workload: spec.Workload, input_queue: Iterator[Dict[str, spec.Tensor]],
                   optimizer_state: spec.OptimizerState, current_param_container: spec.ParameterContainer,
                   model_state: spec.ModelAuxiliaryState, hyperparameters: spec.Hyperparameters, global_step: int,
                   rng: spec.RandomState) -> Dict[str, spec.Tensor]:
    del workload, optimizer_state, current_param_container, model_state, hyperparameters, global_step, rng
    return next(input_queue)
