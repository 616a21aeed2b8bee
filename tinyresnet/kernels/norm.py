"""Fast batch norm: the plain tier's ``BatchNorm2dFunction`` (``tinyresnet.ops.norm``) with fewer memory passes."""

from ..backend import get_array_module
from ..ops.norm import BatchNorm2dFunction, check_batch_norm, check_training_batch, update_running_stats


def channel_dot(a, b):
    """Σ over (N, H, W) of a·b, per channel: (C,). An einsum, so no (N, C, H, W) product is made."""
    return get_array_module(a).einsum("nchw,nchw->c", a, b)


class FastBatchNorm2dFunction(BatchNorm2dFunction):
    """``ops.norm.BatchNorm2dFunction`` with its sums of products as einsums (``channel_dot``), its
    elementwise steps in place on arrays it has just made (never on x or dout), eval mode as one
    per-channel scale and shift, and the backward's two means from the sums made for dγ and dβ.

    Shapes: x (N, C, H, W), weight γ (C,) or None, bias β (C,) or None -> (N, C, H, W)
    Saves:  training: x̂ (N, C, H, W), 1/√(σ² + eps) (C,), γ
            eval: x (held by the graph anyway), μ, 1/√(σ² + eps), γ
    Layout: the output has x's memory layout (channels-last after a convolution)
    """

    accelerates = BatchNorm2dFunction

    def forward(self, x, weight=None, bias=None):
        check_batch_norm(x, weight, bias, self.running_mean, self.running_var)
        xp = get_array_module(x)
        self.weight, self.has_bias = weight, bias is not None
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
        n = check_training_batch(x)
        mean = x.mean(axis=(0, 2, 3))                                      # (C,)
        xhat = x - mean[:, None, None]                                     # (N, C, H, W): x − μ
        var = channel_dot(xhat, xhat) / n                                  # (C,) biased, to normalise
        update_running_stats(self.running_mean, self.running_var, mean, var, n, self.momentum)
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
        n_grads = 1 + (weight is not None) + self.has_bias                # one per forward input
        sum_dout = dout.sum(axis=(0, 2, 3))                                # (C,)
        dbias = sum_dout if self.has_bias else None                        # dβ = Σ dout
        if not self.training:
            # μ, σ² are constants: dx = dout·γ/√(σ²+eps);  dγ = Σ dout·x̂ = (Σ dout·x − μ·Σ dout)/√(σ²+eps)
            dx = dout * (invstd if weight is None else invstd * weight)[:, None, None]
            dweight = None if weight is None else (channel_dot(dout, self.x) - self.mean * sum_dout) * invstd
            return (dx, dweight, dbias)[:n_grads]
        xhat = self.xhat
        sum_dout_xhat = channel_dot(dout, xhat)                                 # Σ dout·x̂ (C,)
        dweight = sum_dout_xhat if weight is not None else None                # dγ = Σ dout·x̂
        dxhat = dout if weight is None else dout * weight[:, None, None]       # dx̂ = dout·γ
        # the plain op's three terms, dx = (1/√(σ²+eps)) · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂)), with the
        # two means from sums already made (no pass over dx̂): Σ dx̂ = γ·Σ dout, Σ dx̂·x̂ = γ·Σ dout·x̂
        n = dxhat.size // dxhat.shape[1]
        gamma = 1.0 if weight is None else weight
        mean_dxhat = gamma * sum_dout / n                                       # (C,)
        mean_dxhat_xhat = gamma * sum_dout_xhat / n                             # (C,)
        dx = xhat * -mean_dxhat_xhat[:, None, None]     # − x̂ · mean(dx̂ · x̂): the path through σ²
        dx += dxhat                                     # + dx̂: the direct path
        dx -= mean_dxhat[:, None, None]                 # − mean(dx̂): the path through μ
        dx *= invstd[:, None, None]
        return (dx, dweight, dbias)[:n_grads]
