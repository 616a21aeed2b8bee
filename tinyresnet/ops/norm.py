"""Batch normalisation over (N, H, W) for each channel, with PyTorch's semantics (the plain tier)."""

from ..autograd import Function
from ..backend import get_array_module
from .checks import check_4d, check_same_dtype


def check_batch_norm(x, weight, bias, running_mean, running_var):
    check_4d(x, "batch_norm")
    check_same_dtype(x, weight, "batch_norm", "weight")
    check_same_dtype(x, bias, "batch_norm", "bias")
    C = x.shape[1]
    for name, a in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                    ("running_var", running_var)):
        if a is not None and tuple(a.shape) != (C,):
            raise ValueError(f"batch_norm: {name} has shape {tuple(a.shape)} but the input has "
                             f"{C} channels (shape {tuple(x.shape)}); it must be ({C},)")


def check_training_batch(x):
    """Training mode needs at least two values per channel (N·H·W ≥ 2): one value has no variance."""
    N, C, H, W = x.shape
    if N * H * W < 2:
        got = "an empty batch" if N == 0 else f"{N * H * W} value{'s' if N * H * W != 1 else ''} per channel"
        raise ValueError(f"batch_norm in training mode needs more than one value per channel, got {got} "
                         f"(input shape {tuple(x.shape)}); use a batch of 2 or more, or eval mode (model.eval())")
    return N * H * W


def update_running_stats(running_mean, running_var, mean, var, n, momentum):
    """running = (1 − momentum) · running + momentum · batch statistic, in place; the variance unbiased."""
    if running_mean is None:
        return
    running_mean *= 1 - momentum
    running_mean += momentum * mean.astype(running_mean.dtype)
    running_var *= 1 - momentum
    running_var += momentum * (var * (n / (n - 1))).astype(running_var.dtype)   # n/(n−1): unbiased


class BatchNorm2dFunction(Function):
    """Batch norm: y = γ · x̂ + β with x̂ = (x − μ) / √(σ² + eps), per channel.

    Training: μ, σ² are the batch's mean and biased variance over (N, H, W); the running
    statistics are updated in place, running_var with the unbiased variance:
        running = (1 − momentum) · running + momentum · batch_statistic.
    Eval: μ, σ² are the running statistics, constants for backward.
    Shapes: x (N, C, H, W), weight γ (C,) or None, bias β (C,) or None -> (N, C, H, W)
    Saves:  x̂ (N, C, H, W), 1/√(σ² + eps) (C,), γ, whether a bias was passed
    """

    def __init__(self, running_mean=None, running_var=None, training=True, momentum=0.1, eps=1e-5):
        self.running_mean, self.running_var = running_mean, running_var
        self.training, self.momentum, self.eps = training, momentum, eps

    def forward(self, x, weight=None, bias=None):
        check_batch_norm(x, weight, bias, self.running_mean, self.running_var)
        xp = get_array_module(x)
        if self.training:
            n = check_training_batch(x)
            mean = x.mean(axis=(0, 2, 3))                                  # (C,)
            var = x.var(axis=(0, 2, 3))                                    # (C,) biased, to normalise
            update_running_stats(self.running_mean, self.running_var, mean, var, n, self.momentum)
        else:
            if self.running_mean is None:
                raise ValueError("batch_norm in eval mode needs running_mean and running_var")
            mean, var = self.running_mean.astype(x.dtype), self.running_var.astype(x.dtype)
        invstd = 1.0 / xp.sqrt(var + self.eps)                             # (C,)
        xhat = (x - mean[:, None, None]) * invstd[:, None, None]          # (N, C, H, W)
        self.xhat, self.invstd, self.weight, self.has_bias = xhat, invstd, weight, bias is not None
        out = xhat if weight is None else xhat * weight[:, None, None]
        return out if bias is None else out + bias[:, None, None]

    def backward(self, dout):                                              # dout (N, C, H, W)
        xhat, invstd, weight = self.xhat, self.invstd, self.weight
        dweight = (dout * xhat).sum(axis=(0, 2, 3)) if weight is not None else None   # dγ = Σ dout·x̂
        dbias = dout.sum(axis=(0, 2, 3)) if self.has_bias else None                    # dβ = Σ dout
        dxhat = dout if weight is None else dout * weight[:, None, None]               # dx̂ = dout·γ
        if not self.training:
            ### BEGIN SOLUTION batchnorm_backward:eval
            dx = dxhat * invstd[:, None, None]             # μ, σ² are constants: dx = dx̂ / √(σ²+eps)
            ### END SOLUTION batchnorm_backward:eval
        else:
            ### BEGIN SOLUTION batchnorm_backward
            # μ and σ² depend on every x of the channel; with n = N·H·W values per channel:
            # dx = (1/√(σ²+eps)) · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂))
            #      the direct path, the path through μ, the path through σ²
            mean_dxhat = dxhat.mean(axis=(0, 2, 3), keepdims=True)
            mean_dxhat_xhat = (dxhat * xhat).mean(axis=(0, 2, 3), keepdims=True)
            dx = (dxhat - mean_dxhat - xhat * mean_dxhat_xhat) * invstd[:, None, None]
            ### END SOLUTION batchnorm_backward
        grads = (dx, dweight, dbias)
        return grads[:1 + (weight is not None) + self.has_bias]           # one per forward input
