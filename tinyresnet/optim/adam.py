"""Adam (Kingma & Ba, 2015), with the update rule of torch.optim.Adam."""

import math

from ..backend import get_array_module
from .optimizer import Optimizer


class Adam(Optimizer):
    """Adam, for each parameter p with gradient g at step t = 1, 2, ...:

        g ← g + weight_decay · p                         (L2, added to the gradient as torch does)
        m ← β1 · m + (1 − β1) · g                        (first moment, starts at 0)
        v ← β2 · v + (1 − β2) · g²                       (second moment, starts at 0)
        p ← p − lr / (1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + eps)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"Adam: lr, eps and weight_decay must be ≥ 0, got {lr}, {eps}, {weight_decay}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"Adam: betas must lie in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def update(self, p, grad, group, state):
        xp = get_array_module(p.data)
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p.data)
            state["exp_avg_sq"] = xp.zeros_like(p.data)
        state["step"] += 1
        t, (beta1, beta2) = state["step"], group["betas"]
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p.data
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1                                                      # in place: the running moments
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * (grad * grad)
        step_size = group["lr"] / (1 - beta1 ** t)                      # bias corrections
        denom = xp.sqrt(v) / math.sqrt(1 - beta2 ** t) + group["eps"]
        p.data -= step_size * (m / denom)     # in place: p's version goes up, so an older graph refuses backward
