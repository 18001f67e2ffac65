"""NAdamW with linear warmup and cosine decay: the AlgoPerf baseline, as a plain AlgoPerf submission.

NAdamW = AdamW with Nesterov momentum (Dozat 2016; Table 1 of arXiv:1910.05446)
and decoupled weight decay (Loshchilov & Hutter). It imports only the upstream
API names, so it runs unchanged under upstream's runner as well as here.
"""

import math
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
import torch.distributed.nn as dist_nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

from algoperf import spec
from algoperf.pytorch_utils import pytorch_setup

USE_PYTORCH_DDP = pytorch_setup()[0]

# The baseline's global batch sizes (reference §1.1); variants not listed fall
# back to their base workload's size through the runner.
BATCH_SIZES = {
    "criteo1tb": 262_144,
    "fastmri": 32,
    "imagenet_resnet": 1024,
    "imagenet_resnet_silu": 512,
    "imagenet_resnet_gelu": 512,
    "imagenet_vit": 1024,
    "librispeech_conformer": 256,
    "librispeech_deepspeech": 256,
    "finewebedu_lm": 64,  # upstream's pytorch_nadamw_full_budget and the A100 self-tuning submissions
    "ogbg": 512,
    "wmt": 128,
    "mnist": 16,
    "cifar": 16384,
}


class NAdamW(torch.optim.Optimizer):
    """AdamW whose update uses the Nesterov look-ahead of the first moment."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        for name, value, valid in (
            ("learning rate", lr, lr >= 0.0),
            ("epsilon", eps, eps >= 0.0),
            ("beta1", betas[0], 0.0 <= betas[0] < 1.0),
            ("beta2", betas[1], 0.0 <= betas[1] < 1.0),
            ("weight decay", weight_decay, weight_decay >= 0.0),
        ):
            if not valid:
                raise ValueError(f"Invalid {name}: {value}")
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, weight_decay = group["lr"], group["eps"], group["weight_decay"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                if param.grad.is_sparse:
                    raise RuntimeError("NAdamW does not support sparse gradients.")
                state = self.state[param]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                _nadamw_update(param, param.grad, state, beta1, beta2, lr, weight_decay, eps)
        return loss


def _nadamw_update(param, grad, state, beta1, beta2, lr, weight_decay, eps):
    state["step"] += 1
    step = state["step"].item()
    first_moment, second_moment = state["exp_avg"], state["exp_avg_sq"]

    param.mul_(1 - lr * weight_decay)  # decoupled weight decay
    first_moment.lerp_(grad, 1 - beta1)
    second_moment.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)

    # Nesterov: step along beta1 * m_t + (1 - beta1) * g_t instead of m_t.
    nesterov_moment = first_moment.mul(beta1).add_(grad, alpha=1 - beta1)
    step_size = lr / (1 - beta1**step)
    denominator = second_moment.sqrt().div_(math.sqrt(1 - beta2**step)).add_(eps)  # in place: one temporary, not two
    param.addcdiv_(nesterov_moment, denominator, value=-step_size)


def warmup_then_cosine(optimizer, step_hint: int, warmup_factor: float):
    """Linear warmup over warmup_factor * step_hint steps, then cosine decay to zero at step_hint."""
    warmup_steps = int(warmup_factor * step_hint)
    warmup = LinearLR(optimizer, start_factor=1e-10, end_factor=1.0, total_iters=warmup_steps)
    cosine = CosineAnnealingLR(optimizer, T_max=max(step_hint - warmup_steps, 1))
    return SequentialLR(optimizer, schedulers=[warmup, cosine], milestones=[warmup_steps])


def init_optimizer_state(
    workload: spec.Workload,
    model_params: spec.ParameterContainer,
    model_state: spec.ModelAuxiliaryState,
    hyperparameters: spec.Hyperparameters,
    rng: spec.RandomState,
) -> spec.OptimizerState:
    del model_state, rng
    optimizer = NAdamW(
        model_params.parameters(),
        lr=hyperparameters.learning_rate,
        betas=(1.0 - hyperparameters.one_minus_beta1, hyperparameters.beta2),
        eps=1e-8,
        weight_decay=hyperparameters.weight_decay,
    )
    scheduler = warmup_then_cosine(optimizer, workload.step_hint, hyperparameters.warmup_factor)
    return {"optimizer": optimizer, "scheduler": scheduler}


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
    del current_params_types, loss_type, eval_results, train_state
    model = current_param_container
    model.train()
    optimizer_state["optimizer"].zero_grad()

    logits, new_model_state = workload.model_fn(
        params=model,
        augmented_and_preprocessed_input_batch=batch,
        model_state=model_state,
        mode=spec.ForwardPassMode.TRAIN,
        rng=rng,
        update_batch_norm=True,
        dropout_rate=getattr(hyperparameters, "dropout_rate", None),
    )
    loss_dict = workload.loss_fn(
        label_batch=batch["targets"],
        logits_batch=logits,
        mask_batch=batch.get("weights"),
        label_smoothing=getattr(hyperparameters, "label_smoothing", 0.0),
    )
    summed_loss, n_valid_examples = loss_dict["summed"], loss_dict["n_valid_examples"]
    if USE_PYTORCH_DDP:
        # The autograd-aware all_reduce keeps gradients scaled by the global example count.
        summed_loss = dist_nn.all_reduce(summed_loss)
        n_valid_examples = dist_nn.all_reduce(n_valid_examples)
    loss = summed_loss / n_valid_examples
    loss.backward()

    grad_clip = getattr(hyperparameters, "grad_clip", None)
    if grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=grad_clip)
    optimizer_state["optimizer"].step()
    optimizer_state["scheduler"].step()

    if workload.metrics_logger is not None and (global_step <= 100 or global_step % 500 == 0):
        with torch.no_grad():
            grad_norm = torch.norm(torch.stack([p.grad.detach().norm(2) for p in model.parameters() if p.grad is not None]), 2)
        workload.metrics_logger.append_scalar_metrics({"loss": loss.item(), "grad_norm": grad_norm.item()}, global_step)
    return optimizer_state, current_param_container, new_model_state


def prepare_for_eval(
    workload: spec.Workload,
    current_param_container: spec.ParameterContainer,
    current_params_types: spec.ParameterTypeTree,
    model_state: spec.ModelAuxiliaryState,
    hyperparameters: spec.Hyperparameters,
    loss_type: spec.LossType,
    optimizer_state: spec.OptimizerState,
    eval_results: List[Tuple[int, float]],
    global_step: int,
    rng: spec.RandomState,
) -> spec.UpdateReturn:
    del workload, current_params_types, hyperparameters, loss_type, eval_results, global_step, rng
    return optimizer_state, current_param_container, model_state


def get_batch_size(workload_name: str) -> int:
    if workload_name not in BATCH_SIZES:
        raise ValueError(f"Unsupported workload name: {workload_name}.")
    return BATCH_SIZES[workload_name]


def data_selection(
    workload: spec.Workload,
    input_queue: Iterator[Dict[str, spec.Tensor]],
    optimizer_state: spec.OptimizerState,
    current_param_container: spec.ParameterContainer,
    model_state: spec.ModelAuxiliaryState,
    hyperparameters: spec.Hyperparameters,
    global_step: int,
    rng: spec.RandomState,
) -> Dict[str, spec.Tensor]:
    del workload, optimizer_state, current_param_container, model_state, hyperparameters, global_step, rng
    return next(input_queue)
