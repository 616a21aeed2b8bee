"""Gradient utilities named as in ``torch.nn.utils``: ``clip_grad_norm_`` and ``clip_grad_value_``.

Call them between ``loss.backward()`` and ``optimizer.step()``; they change ``.grad`` of the
parameters (a new array each, never written in place: two leaves may share one gradient array).
"""

import math

import numpy as np

from ..autograd import Tensor
from ..backend import get_array_module


def _with_grads(parameters):
    """The tensors of ``parameters`` (one Tensor, or an iterable of them) that have a ``.grad``."""
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients down so that their total norm is at most ``max_norm``, as
    ``torch.nn.utils.clip_grad_norm_``; returns the total norm before clipping, a 0-d Tensor.

    The total norm is the ``norm_type``-norm (2 by default; ``float("inf")``: the largest
    absolute value) of all the gradients as one vector. When it exceeds ``max_norm``, every
    gradient is multiplied by ``max_norm / (total + 1e-6)``; otherwise nothing changes.
    ``parameters`` is a Tensor or an iterable of them (``model.parameters()``); those without a
    gradient are skipped (with none at all the norm is 0). A NaN or infinite total raises
    RuntimeError when ``error_if_nonfinite=True``; otherwise the gradients are scaled by NaN, as PyTorch.
    """
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not max_norm >= 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be >= 0, got {max_norm}")
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be > 0 (2.0, 1.0 or float('inf')), got {norm_type}")
    params = _with_grads(parameters)
    if not params:
        return Tensor(np.zeros((), dtype=np.float32))
    xp = get_array_module(params[0].grad)
    if math.isinf(norm_type):
        total = max(xp.abs(p.grad).max() if p.grad.size else 0.0 for p in params)
    else:
        total = sum((xp.abs(p.grad.astype(np.float64)) ** norm_type).sum() for p in params) ** (1.0 / norm_type)
    total = float(total)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total {norm_type}-norm of the gradients is {total}, so they "
                           f"cannot be clipped; look for a NaN/inf loss, or lower the learning rate")
    scale = max_norm / (total + 1e-6)
    if scale < 1.0 or not math.isfinite(total):
        for p in params:
            p.grad = p.grad * p.grad.dtype.type(scale)     # a new array: a gradient may be shared
    return Tensor(xp.asarray(total, dtype=params[0].grad.dtype))


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element to [-clip_value, clip_value], as ``torch.nn.utils.clip_grad_value_``."""
    clip_value = float(clip_value)
    if not clip_value >= 0:
        raise ValueError(f"clip_grad_value_: clip_value must be >= 0, got {clip_value}")
    for p in _with_grads(parameters):
        p.grad = get_array_module(p.grad).clip(p.grad, -clip_value, clip_value)
