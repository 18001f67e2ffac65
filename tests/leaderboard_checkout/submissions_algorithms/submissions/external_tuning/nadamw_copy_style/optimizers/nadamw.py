"""NAdamW as AlgoPerf-era submissions copied it: written against torch 2.5's private Optimizer helpers."""

import math

import torch
from torch.optim.optimizer import _dispatch_sqrt


class NAdamW(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def __setstate__(self, state):
        super().__setstate__(state)
        state_values = list(self.state.values())
        if state_values and not torch.is_tensor(state_values[0]["step"]):
            for value in state_values:
                value["step"] = torch.tensor(float(value["step"]))

    @torch.no_grad()
    def step(self, closure=None):
        self._cuda_graph_capture_health_check()  # renamed in later torch releases
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if len(state) == 0:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                step = state["step"].item()
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                p.mul_(1 - group["lr"] * group["weight_decay"])
                exp_avg.lerp_(p.grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                bias_correction1 = 1 - beta1**step
                bias_correction2_sqrt = _dispatch_sqrt(1 - beta2**step)
                # Nesterov: look one first-moment step ahead.
                numerator = exp_avg.mul(beta1).add(p.grad, alpha=1 - beta1)
                denominator = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(group["eps"])
                p.addcdiv_(numerator, denominator, value=-group["lr"] / bias_correction1)
        return loss
