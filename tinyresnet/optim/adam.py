"""Adam (Kingma & Ba, 2015) and AdamW (Loshchilov & Hutter, 2019), with the update rules of
torch.optim.Adam and torch.optim.AdamW."""

import math

from ..backend import get_array_module
from .optimizer import Optimizer


class Adam(Optimizer):
    """Adam, for each parameter p with gradient g at step t = 1, 2, ...:

        g ← g + weight_decay · p                         (L2, added to the gradient as torch does)
        m ← β1 · m + (1 − β1) · g                        (first moment, starts at 0)
        v ← β2 · v + (1 − β2) · g²                       (second moment, starts at 0)
        v̂ ← max(v̂, v) if amsgrad, else v                 (AMSGrad keeps the largest v so far)
        p ← p − lr / (1 − β1ᵗ) · m / (√v̂ / √(1 − β2ᵗ) + eps)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        name = type(self).__name__
        if lr < 0 or eps < 0 or weight_decay < 0:
            raise ValueError(f"{name}: lr, eps and weight_decay must be ≥ 0, got lr={lr}, eps={eps}, "
                             f"weight_decay={weight_decay}")
        if len(betas) != 2 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"{name}: betas must be two numbers in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=bool(amsgrad)))

    def decay(self, p, grad, group):
        """Weight decay as L2 regularisation: d(½·wd·p²)/dp = wd·p joins the gradient (and so the moments)."""
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p.data
        return grad

    def update(self, p, grad, group, state):
        xp = get_array_module(p.data)
        if not state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p.data)
            state["exp_avg_sq"] = xp.zeros_like(p.data)
        if group.get("amsgrad") and "max_exp_avg_sq" not in state:     # also when amsgrad is switched on later
            state["max_exp_avg_sq"] = xp.zeros_like(p.data)
        state["step"] += 1
        t, (beta1, beta2) = state["step"], group["betas"]
        grad = self.decay(p, grad, group)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1                                                      # in place: the running moments
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * (grad * grad)
        if group.get("amsgrad"):
            xp.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        step_size = group["lr"] / (1 - beta1 ** t)                      # bias corrections
        denom = xp.sqrt(v) / math.sqrt(1 - beta2 ** t) + group["eps"]
        p.data -= step_size * (m / denom)     # in place: p's version goes up, so an older graph refuses backward


class AdamW(Adam):
    """Adam with decoupled weight decay, as torch.optim.AdamW (and its defaults: weight_decay=1e-2).

    Before the Adam step (which then sees the plain gradient), every parameter shrinks:

        p ← p · (1 − lr · weight_decay)

    so the decay is not divided by √v as Adam's L2 term is: parameters with large gradients are
    decayed as much as those with small ones. The rest of the update is Adam's (``amsgrad`` too).
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)

    def decay(self, p, grad, group):
        if group["weight_decay"]:
            p.data *= 1 - group["lr"] * group["weight_decay"]           # in place, like the step itself
        return grad
