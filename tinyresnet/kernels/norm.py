"""Fast batch norm: the plain tier's ``BatchNorm2dFunction`` (``tinyresnet.ops.norm``) with fewer memory passes,
in cache-sized chunks on the kernels' threads for channels-last maps (``kernels.rows``)."""

import numpy as np

from ..backend import get_array_module
from ..ops.norm import BatchNorm2dFunction, check_batch_norm, check_training_batch, update_running_stats
from .rows import as_map, centred_square_sums, channel_sums, each_chunk, pixel_rows, tile
from .threads import uses_threads


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

    @uses_threads
    def forward(self, x, weight=None, bias=None):
        check_batch_norm(x, weight, bias, self.running_mean, self.running_var)
        xp = get_array_module(x)
        self.weight, self.has_bias = weight, bias is not None
        rows = pixel_rows(x) if self.training and x.size else None
        if rows is not None:
            return self._forward_rows(x, rows, weight, bias)
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

    def _forward_rows(self, x, rows, weight, bias):
        """Training forward of a channels-last x, seen as rows (N·H, W·C): three passes over the memory, each
        in chunks on the threads: Σx; Σ(x − μ)² (x − μ made in a chunk-sized buffer, in cache, not written
        out); x̂ = (x − μ)/√(σ²+eps) and γ·x̂ + β, the only two arrays written."""
        N, C, H, W = x.shape
        n = check_training_batch(x)
        dtype = x.dtype
        mean = channel_sums(rows, C)[0] / n                                    # (C,) float64
        mean_t = tile(mean, W, dtype)
        var = centred_square_sums(rows, mean_t, C) / n                         # (C,) biased: Σ(x − μ)² / n
        update_running_stats(self.running_mean, self.running_var, mean.astype(dtype), var.astype(dtype),
                             n, self.momentum)
        self.invstd = (1.0 / np.sqrt(var + self.eps)).astype(dtype)            # (C,)
        invstd_t = tile(self.invstd, W, dtype)
        gamma_t = None if weight is None else tile(weight, W, dtype)
        beta_t = None if bias is None else tile(bias, W, dtype)
        xhat = np.empty_like(rows)
        out = xhat if gamma_t is None and beta_t is None else np.empty_like(rows)

        def normalise(part):
            xh = np.subtract(rows[part], mean_t, out=xhat[part])               # x − μ
            xh *= invstd_t                                                     # x̂, in place
            if gamma_t is not None:
                np.multiply(xh, gamma_t, out=out[part])                        # γ·x̂
                if beta_t is not None:
                    out[part] += beta_t                                        # + β
            elif beta_t is not None:
                np.add(xh, beta_t, out=out[part])
        each_chunk(normalise, *rows.shape)
        self.xhat = as_map(xhat, x.shape)
        return as_map(out, x.shape)

    def _backward_rows(self, dout_rows, xhat_rows, shape):
        """Training backward on rows: one pass for Σ dout and Σ dout·x̂, one for dx = a·dout + b·x̂ + c with the
        per-channel a = γ/√(σ²+eps), b = −a·mean(dout·x̂), c = −a·mean(dout)."""
        N, C, H, W = shape
        n = N * H * W
        sum_dout, sum_dout_xhat = channel_sums(dout_rows, C, xhat_rows)      # (C,) float64
        gamma = 1.0 if self.weight is None else self.weight.astype(np.float64)
        a = gamma * self.invstd.astype(np.float64)
        a_t, b_t = tile(a, W, dout_rows.dtype), tile(-a * sum_dout_xhat / n, W, dout_rows.dtype)
        c_t = tile(-a * sum_dout / n, W, dout_rows.dtype)
        dx = np.empty_like(dout_rows)

        def gradient(part, scratch):
            out, tmp = dx[part], scratch[:part.stop - part.start]
            np.multiply(dout_rows[part], a_t, out=out)                        # a·dout: the direct path
            out += np.multiply(xhat_rows[part], b_t, out=tmp)                  # + b·x̂: the path through σ²
            out += c_t                                                         # + c: the path through μ
        each_chunk(gradient, *dout_rows.shape, scratch=dout_rows.dtype)
        dtype = dout_rows.dtype
        dweight = None if self.weight is None else sum_dout_xhat.astype(dtype)
        dbias = sum_dout.astype(dtype) if self.has_bias else None
        n_grads = 1 + (self.weight is not None) + self.has_bias
        return (as_map(dx, shape), dweight, dbias)[:n_grads]

    @uses_threads
    def backward(self, dout):                                              # dout (N, C, H, W)
        if self.training and isinstance(dout, np.ndarray) and dout.size:
            xhat_rows = pixel_rows(self.xhat)
            if xhat_rows is not None:
                dout_rows = pixel_rows(dout)
                if dout_rows is None:                                      # one copy into x̂'s layout
                    dout_rows = pixel_rows(np.ascontiguousarray(dout.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2))
                return self._backward_rows(dout_rows, xhat_rows, dout.shape)
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
