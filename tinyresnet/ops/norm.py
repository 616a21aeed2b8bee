"""Batch normalisation over (N, H, W) for each channel, with PyTorch's semantics."""

from ..autograd import Function
from ..backend import get_array_module
from .checks import check_4d


def channel_dot(a, b):
    """Σ over (N, H, W) of a·b, per channel: (C,). An einsum, so no (N, C, H, W) product is made."""
    return get_array_module(a).einsum("nchw,nchw->c", a, b)


class BatchNorm2dFunction(Function):
    """Batch norm: y = γ · (x − μ) / √(σ² + eps) + β, per channel.

    Training: μ, σ² are the batch's mean and biased variance over (N, H, W); the running
    statistics are updated in place, running_var with the unbiased variance:
        running = (1 − momentum) · running + momentum · batch_statistic.
    Eval: μ, σ² are the running statistics, so y = x · scale + shift with per-channel constants.

    Memory passes are kept few: sums of products are einsums (``channel_dot``), and the
    elementwise steps work in place on arrays this op has just made (never on x or dout).
    Shapes: x (N, C, H, W), weight γ (C,) or None, bias β (C,) or None -> (N, C, H, W)
    Saves:  training: x̂ (N, C, H, W), 1/√(σ² + eps) (C,), γ
            eval: x (held by the graph anyway), μ, 1/√(σ² + eps), γ
    """

    def __init__(self, running_mean=None, running_var=None, training=True, momentum=0.1, eps=1e-5):
        self.running_mean, self.running_var = running_mean, running_var
        self.training, self.momentum, self.eps = training, momentum, eps

    def forward(self, x, weight=None, bias=None):
        check_4d(x, "batch_norm")
        xp = get_array_module(x)
        N, C, H, W = x.shape
        for name, a in (("weight", weight), ("bias", bias), ("running_mean", self.running_mean),
                        ("running_var", self.running_var)):
            if a is not None and tuple(a.shape) != (C,):
                raise ValueError(f"batch_norm: {name} has shape {tuple(a.shape)} but the input has "
                                 f"{C} channels (shape {tuple(x.shape)}); it must be ({C},)")
        self.weight = weight
        if not self.training:
            if self.running_mean is None:
                raise ValueError("batch_norm in eval mode needs running_mean and running_var")
            mean, var = self.running_mean.astype(x.dtype), self.running_var.astype(x.dtype)
            self.x, self.mean, self.invstd = x, mean, 1.0 / xp.sqrt(var + self.eps)
            scale = self.invstd if weight is None else self.invstd * weight       # γ/√(σ²+eps)
            shift = -mean * scale if bias is None else bias - mean * scale      # β − μ·γ/√(σ²+eps)
            out = x * scale[:, None, None]
            out += shift[:, None, None]
            return out
        n = N * H * W
        if n < 2:
            raise ValueError(f"batch_norm in training mode needs more than one value per channel, "
                             f"got input shape {tuple(x.shape)}; use a batch of 2 or more, or eval mode")
        mean = x.mean(axis=(0, 2, 3))                                      # (C,)
        xhat = x - mean[:, None, None]                                     # (N, C, H, W): x − μ
        var = channel_dot(xhat, xhat) / n                                  # (C,) biased, to normalise
        if self.running_mean is not None:
            m = self.momentum
            self.running_mean *= 1 - m
            self.running_mean += m * mean.astype(self.running_mean.dtype)
            self.running_var *= 1 - m
            self.running_var += m * (var * (n / (n - 1))).astype(self.running_var.dtype)  # unbiased
        self.invstd = 1.0 / xp.sqrt(var + self.eps)                        # (C,)
        xhat *= self.invstd[:, None, None]                                 # x̂ = (x − μ)/√(σ²+eps), in place
        self.xhat = xhat
        if weight is None:
            return xhat if bias is None else xhat + bias[:, None, None]
        out = xhat * weight[:, None, None]                                 # γ·x̂
        if bias is not None:
            out += bias[:, None, None]                                     # + β, in place
        return out

    def backward(self, dout):                                              # dout (N, C, H, W)
        invstd, weight = self.invstd, self.weight
        sum_dout = dout.sum(axis=(0, 2, 3))                                # (C,)
        dbias = sum_dout if len(self.needs_input_grad) == 3 else None      # dβ = Σ dout
        if not self.training:
            # μ, σ² are constants: dx = dout·γ/√(σ²+eps);  dγ = Σ dout·x̂ = (Σ dout·x − μ·Σ dout)/√(σ²+eps)
            dx = dout * (invstd if weight is None else invstd * weight)[:, None, None]
            dweight = None if weight is None else (channel_dot(dout, self.x) - self.mean * sum_dout) * invstd
            return (dx, dweight, dbias)[:len(self.needs_input_grad)]
        xhat = self.xhat
        sum_dout_xhat = channel_dot(dout, xhat)                                 # Σ dout·x̂ (C,)
        dweight = sum_dout_xhat if weight is not None else None                # dγ = Σ dout·x̂
        dxhat = dout if weight is None else dout * weight[:, None, None]       # dx̂ = dout·γ
        ### BEGIN SOLUTION batchnorm_backward
        # μ and σ² depend on every x of the channel; with n = N·H·W values per channel:
        # dx = (1/√(σ²+eps)) · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂))
        # The two means come from sums already made, with no pass over dx̂: Σ dx̂ = γ·Σ dout, Σ dx̂·x̂ = γ·Σ dout·x̂.
        n = dxhat.size // dxhat.shape[1]
        gamma = 1.0 if weight is None else weight
        mean_dxhat = gamma * sum_dout / n                                       # (C,)
        mean_dxhat_xhat = gamma * sum_dout_xhat / n                             # (C,)
        dx = xhat * -mean_dxhat_xhat[:, None, None]     # − x̂ · mean(dx̂ · x̂): the path through σ²
        dx += dxhat                                     # + dx̂: the direct path
        dx -= mean_dxhat[:, None, None]                 # − mean(dx̂): the path through μ
        dx *= invstd[:, None, None]
        ### END SOLUTION batchnorm_backward
        return (dx, dweight, dbias)[:len(self.needs_input_grad)]
