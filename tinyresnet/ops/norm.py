"""Batch normalisation over (N, H, W) for each channel, with PyTorch's semantics."""

from ..autograd import Function
from ..backend import get_array_module
from .checks import check_4d


class BatchNorm2dFunction(Function):
    """Batch norm: y = γ · (x − μ) / √(σ² + eps) + β, per channel.

    Training: μ, σ² are the batch's mean and biased variance over (N, H, W); the running
    statistics are updated in place, running_var with the unbiased variance:
        running = (1 − momentum) · running + momentum · batch_statistic.
    Eval: μ, σ² are the running statistics.

    Shapes: x (N, C, H, W), weight γ (C,) or None, bias β (C,) or None -> (N, C, H, W)
    Saves:  xhat (N, C, H, W), 1/√(σ² + eps) (C,), γ
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
        if self.training:
            n = N * H * W
            if n < 2:
                raise ValueError(f"batch_norm in training mode needs more than one value per channel, "
                                 f"got input shape {tuple(x.shape)}; use a batch of 2 or more, or eval mode")
            mean = x.mean(axis=(0, 2, 3))                                  # (C,)
            var = x.var(axis=(0, 2, 3))                                    # (C,) biased, to normalise
            if self.running_mean is not None:
                m = self.momentum
                self.running_mean *= 1 - m
                self.running_mean += m * mean.astype(self.running_mean.dtype)
                self.running_var *= 1 - m
                self.running_var += m * (var * (n / (n - 1))).astype(self.running_var.dtype)  # unbiased
        else:
            if self.running_mean is None:
                raise ValueError("batch_norm in eval mode needs running_mean and running_var")
            mean, var = self.running_mean.astype(x.dtype), self.running_var.astype(x.dtype)
        invstd = 1.0 / xp.sqrt(var + self.eps)                               # (C,)
        xhat = (x - mean[:, None, None]) * invstd[:, None, None]            # (N, C, H, W)
        self.xhat, self.invstd, self.weight = xhat, invstd, weight
        out = xhat if weight is None else xhat * weight[:, None, None]
        return out if bias is None else out + bias[:, None, None]

    def backward(self, dout):                                               # dout (N, C, H, W)
        xhat, invstd = self.xhat, self.invstd
        dweight = (dout * xhat).sum(axis=(0, 2, 3)) if self.weight is not None else None   # dγ = Σ dout·x̂
        dbias = dout.sum(axis=(0, 2, 3)) if len(self.needs_input_grad) == 3 else None     # dβ = Σ dout
        dxhat = dout if self.weight is None else dout * self.weight[:, None, None]         # dx̂ = dout·γ
        if not self.training:
            dx = dxhat * invstd[:, None, None]             # μ, σ² are constants: dx = dx̂ / √(σ²+eps)
        else:
            ### BEGIN SOLUTION batchnorm_backward
            # μ and σ² depend on every x of the channel; with n = N·H·W values per channel:
            # dx = (1/√(σ²+eps)) · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂))
            mean_dxhat = dxhat.mean(axis=(0, 2, 3), keepdims=True)
            mean_dxhat_xhat = (dxhat * xhat).mean(axis=(0, 2, 3), keepdims=True)
            dx = (dxhat - mean_dxhat - xhat * mean_dxhat_xhat) * invstd[:, None, None]
            ### END SOLUTION batchnorm_backward
        grads = (dx, dweight, dbias)
        return grads[:len(self.needs_input_grad)]
