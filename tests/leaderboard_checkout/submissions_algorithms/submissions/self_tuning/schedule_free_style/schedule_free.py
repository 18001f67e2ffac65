"""A schedule-free AdamW (Defazio et al., 2024) in the shape leaderboard submissions give it.

The parameters hold the interpolation point y during training; `z` is the SGD
sequence and the evaluation point x is recovered from y and z. `eval()` moves
the parameters to x, `train()` back to y.
"""

import torch


class AdamWScheduleFree(torch.optim.Optimizer):
    def __init__(self, params, lr=2.5e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, warmup_steps=0, r=0.0):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, warmup_steps=warmup_steps, r=r,
                        k=0, weight_sum=0.0, lr_max=0.0, train_mode=True)
        super().__init__(params, defaults)

    @torch.no_grad()
    def eval(self):
        for group in self.param_groups:
            if group["train_mode"]:
                beta1 = group["betas"][0]
                for p in group["params"]:
                    state = self.state[p]
                    if "z" in state:
                        p.lerp_(state["z"], 1 - 1 / beta1)  # y -> x
                group["train_mode"] = False

    @torch.no_grad()
    def train(self):
        for group in self.param_groups:
            if not group["train_mode"]:
                beta1 = group["betas"][0]
                for p in group["params"]:
                    state = self.state[p]
                    if "z" in state:
                        p.lerp_(state["z"], 1 - beta1)  # x -> y
                group["train_mode"] = True

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            k = group["k"]
            warmup = min(1.0, (k + 1) / group["warmup_steps"]) if group["warmup_steps"] else 1.0
            lr = group["lr"] * warmup * (1 - beta2 ** (k + 1)) ** 0.5
            group["lr_max"] = max(lr, group["lr_max"])
            weight = (k + 1) ** group["r"] * group["lr_max"] ** 2
            group["weight_sum"] += weight
            ckp1 = weight / group["weight_sum"] if group["weight_sum"] else 0.0
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "z" not in state:
                    state["z"] = p.detach().clone()
                    state["exp_avg_sq"] = torch.zeros_like(p)
                z, exp_avg_sq = state["z"], state["exp_avg_sq"]
                exp_avg_sq.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                grad = p.grad / exp_avg_sq.sqrt().add_(group["eps"])
                grad.add_(p, alpha=group["weight_decay"])
                p.lerp_(z, ckp1)  # y moves towards the average x ...
                p.add_(grad, alpha=lr * (beta1 * (1 - ckp1) - 1))  # ... and takes its share of the gradient step
                z.sub_(grad, alpha=lr)
            group["k"] = k + 1
