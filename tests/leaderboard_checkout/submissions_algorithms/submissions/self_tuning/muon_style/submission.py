"""Self-tuning Muon + AdamW, laid out like the leaderboard's Muon submissions (helper imported by checkout path)."""

from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from absl import logging
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

from algoperf import spec
from algoperf.pytorch_utils import pytorch_setup

from submissions.self_tuning.muon_style.newton_schulz import orthogonalize, split_params_muon_adam

USE_PYTORCH_DDP = pytorch_setup()[0]

# Best Muon hyperparameters, fixed for every workload (self-tuning).
HPARAMS = {
    "muon_learning_rate": 0.02,
    "muon_momentum": 0.95,
    "adam_learning_rate": 0.002,
    "weight_decay": 0.01,
    "warmup_factor": 0.05,
}


class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr, momentum, weight_decay):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buffer = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                buffer.mul_(group["momentum"]).add_(p.grad)
                update = orthogonalize(p.grad.add(buffer, alpha=group["momentum"]))
                scale = max(1.0, p.size(0) / p.size(1)) ** 0.5
                p.mul_(1 - group["lr"] * group["weight_decay"]).add_(update, alpha=-group["lr"] * scale)


def init_optimizer_state(workload, model_params, model_state, hyperparameters, rng):
    del model_state, rng, hyperparameters
    muon_params, adam_params = split_params_muon_adam(model_params)
    optimizers = {
        "muon": Muon(muon_params, HPARAMS["muon_learning_rate"], HPARAMS["muon_momentum"], HPARAMS["weight_decay"]),
        "adam": torch.optim.AdamW(adam_params, lr=HPARAMS["adam_learning_rate"], weight_decay=HPARAMS["weight_decay"]),
    }
    warmup = max(1, int(HPARAMS["warmup_factor"] * workload.step_hint))
    state = dict(optimizers)
    for name, optimizer in optimizers.items():
        state[f"{name}_scheduler"] = SequentialLR(
            optimizer,
            schedulers=[LinearLR(optimizer, start_factor=1e-10, end_factor=1.0, total_iters=warmup),
                        CosineAnnealingLR(optimizer, T_max=max(1, workload.step_hint - warmup))],
            milestones=[warmup],
        )
    return state


def update_params(workload, current_param_container, current_params_types, model_state, hyperparameters, batch,
                  loss_type, optimizer_state, eval_results, global_step, rng, train_state=None):
    del current_params_types, hyperparameters, eval_results, train_state
    current_param_container.train()
    for name in ("muon", "adam"):
        optimizer_state[name].zero_grad()
    logits, new_model_state = workload.model_fn(
        params=current_param_container, augmented_and_preprocessed_input_batch=batch, model_state=model_state,
        mode=spec.ForwardPassMode.TRAIN, rng=rng, update_batch_norm=True, dropout_rate=0.0)
    label_smoothing = 0.1 if loss_type == spec.LossType.SOFTMAX_CROSS_ENTROPY else 0.0
    loss_dict = workload.loss_fn(batch["targets"], logits, batch.get("weights"), label_smoothing=label_smoothing)
    loss = loss_dict["summed"] / loss_dict["n_valid_examples"]
    loss.backward()
    torch.nn.utils.clip_grad_norm_(current_param_container.parameters(), max_norm=1.0)
    for name in ("muon", "adam"):
        optimizer_state[name].step()
        optimizer_state[f"{name}_scheduler"].step()
    if global_step % 100 == 0:
        logging.info("step %d: loss %.4f", global_step, loss.item())
    return optimizer_state, current_param_container, new_model_state


def get_batch_size(workload_name):
    batch_sizes = {"criteo1tb": 262_144, "fastmri": 32, "ogbg": 512, "wmt": 128, "mnist": 16}
    if workload_name in batch_sizes:
        return batch_sizes[workload_name]
    raise ValueError(f"Unsupported workload name: {workload_name}.")


def data_selection(workload, input_queue, optimizer_state, current_param_container, model_state, hyperparameters,
                   global_step, rng):
    return next(input_queue)
