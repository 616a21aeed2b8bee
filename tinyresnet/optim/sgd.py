"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay (torch.optim.SGD)."""

from .optimizer import Optimizer


class SGD(Optimizer):
    """SGD with the update rule of ``torch.optim.SGD``, for each parameter p with gradient g:

        g   ← g + weight_decay · p                      (L2 regularisation)
        buf ← g                         on the first step,
        buf ← momentum · buf + (1 − dampening) · g      afterwards
        g   ← g + momentum · buf   if nesterov, else buf
        p   ← p − lr · g

    The ResNet recipe is ``SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)``.
    """

    def __init__(self, params, lr=0.01, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: lr, momentum and weight_decay must be ≥ 0, got lr={lr}, "
                             f"momentum={momentum}, weight_decay={weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov=True needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def update(self, p, grad, group, state):
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p.data              # d(½·wd·p²)/dp = wd·p
        momentum = group["momentum"]
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()
            else:
                buf *= momentum                                         # in place: the velocity
                buf += (1 - group["dampening"]) * grad
            grad = grad + momentum * buf if group["nesterov"] else buf
        p.data -= group["lr"] * grad          # in place: p's version goes up, so an older graph refuses backward
