"""Fast batch norm: the plain tier's ``BatchNorm2dFunction`` (``tinyresnet.ops.norm``) with fewer memory passes,
in cache-sized chunks on the kernels' threads for channels-last maps (``kernels.rows``)."""

import numpy as np

from ..backend import get_array_module
from ..ops.norm import BatchNorm2dFunction, check_batch_norm, check_training_batch, update_running_stats
from .rows import as_map, centred_sums, each_chunk, pixel_rows, sample_mean, tile
from .threads import uses_threads


def channel_dot(a, b):
    """Σ over (N, H, W) of a·b, per channel: (C,). An einsum, so no (N, C, H, W) product is made."""
    return get_array_module(a).einsum("nchw,nchw->c", a, b)


class FastBatchNorm2dFunction(BatchNorm2dFunction):
    """``ops.norm.BatchNorm2dFunction`` with its sums of products as einsums (``channel_dot``), its
    elementwise steps in place on arrays it has just made (never on x or dout), eval mode as one
    per-channel scale and shift, and the backward's two means from the sums made for dγ and dβ.

    Shapes: x (N, C, H, W), weight γ (C,) or None, bias β (C,) or None -> (N, C, H, W)
    Saves:  training, channels-last x: x as rows (in place of x̂: the same memory), μ tiled, 1/√(σ² + eps), γ;
            training, other layouts: x̂ (N, C, H, W), 1/√(σ² + eps), γ
            eval: x, μ, 1/√(σ² + eps), γ
    Layout: the output has x's memory layout (channels-last after a convolution)
    """

    accelerates = BatchNorm2dFunction

    @uses_threads
    def forward(self, x, weight=None, bias=None):
        check_batch_norm(x, weight, bias, self.running_mean, self.running_var)
        xp = get_array_module(x)
        self.weight, self.has_bias, self.x_rows = weight, bias is not None, None
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
        """Training forward of a channels-last x, seen as rows (N·H, W·C): two passes over the memory, each in
        chunks on the threads. One reads x for the statistics: Σ(x − K) and Σ(x − K)² about a centre K close to
        the mean (the mean of rows from across the batch, ``sample_mean``), so that σ² = Σ(x − K)²/n − (μ − K)²
        loses nothing measurable to cancellation, as a second pass about μ itself would not either. The other
        writes the output, (x − μ)·γ/√(σ²+eps) + β; x̂ is not written out: backward makes it again from x,
        a chunk at a time."""
        N, C, H, W = x.shape
        n = check_training_batch(x)
        dtype = x.dtype
        centre = sample_mean(rows, C)                                          # (C,) float64, near μ
        sum_c, sum_c2 = centred_sums(rows, tile(centre, W, dtype), C)          # Σ(x − K), Σ(x − K)²
        shift = sum_c / n                                                      # μ − K
        mean, var = centre + shift, np.maximum(sum_c2 / n - shift * shift, 0)  # (C,) float64; σ² biased
        update_running_stats(self.running_mean, self.running_var, mean.astype(dtype), var.astype(dtype),
                             n, self.momentum)
        self.invstd = (1.0 / np.sqrt(var + self.eps)).astype(dtype)            # (C,)
        self.x_rows = rows
        self.mean_t = mean_t = tile(mean, W, dtype)                           # μ tiled, for backward too
        scale_t = tile(self.invstd if weight is None else self.invstd * weight, W, dtype)   # γ/√(σ²+eps)
        beta_t = None if bias is None else tile(bias, W, dtype)
        out = np.empty_like(rows)

        def normalise(part):
            y = np.subtract(rows[part], mean_t, out=out[part])                 # x − μ
            y *= scale_t                                                       # γ·x̂, in place
            if beta_t is not None:
                y += beta_t                                                    # + β
        each_chunk(normalise, *rows.shape)
        return as_map(out, x.shape)

    def _backward_rows(self, dout_rows, shape):
        """Training backward on rows: one pass for Σ dout and Σ dout·x̂, one for dx = a·dout + b·x̂ + c with the
        per-channel a = γ/√(σ²+eps), b = −a·mean(dout·x̂), c = −a·mean(dout); x̂ = (x − μ)/√(σ²+eps) made
        again from x in each chunk, in cache."""
        N, C, H, W = shape
        n = N * H * W
        dtype = dout_rows.dtype
        x_rows, mean_t = self.x_rows, self.mean_t
        sum_dout, sum_dout_c = centred_sums(x_rows, mean_t, C, weights=dout_rows)   # Σ dout, Σ dout·(x − μ)
        invstd = self.invstd.astype(np.float64)
        sum_dout_xhat = sum_dout_c * invstd                                   # Σ dout·x̂
        gamma = 1.0 if self.weight is None else self.weight.astype(np.float64)
        a = gamma * invstd
        a_t, b_t = tile(a, W, dtype), tile(-a * invstd * sum_dout_xhat / n, W, dtype)   # b·x̂ = b/√(σ²+eps)·(x − μ)
        c_t = tile(-a * sum_dout / n, W, dtype)
        dx = np.empty_like(dout_rows)

        def gradient(part, scratch):
            out, tmp = dx[part], scratch[:part.stop - part.start]
            np.multiply(dout_rows[part], a_t, out=out)                        # a·dout: the direct path
            np.subtract(x_rows[part], mean_t, out=tmp)                         # x − μ
            tmp *= b_t
            out += tmp                                                         # + b·x̂: the path through σ²
            out += c_t                                                         # + c: the path through μ
        each_chunk(gradient, *dout_rows.shape, scratch=dtype)
        dweight = None if self.weight is None else sum_dout_xhat.astype(dtype)
        dbias = sum_dout.astype(dtype) if self.has_bias else None
        n_grads = 1 + (self.weight is not None) + self.has_bias
        return (as_map(dx, shape), dweight, dbias)[:n_grads]

    @uses_threads
    def backward(self, dout):                                              # dout (N, C, H, W)
        if self.training and self.x_rows is not None:    # the forward ran on rows
            dout_rows = pixel_rows(dout)
            if dout_rows is None:                                          # one copy into x's layout
                dout_rows = pixel_rows(np.ascontiguousarray(dout.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2))
            return self._backward_rows(dout_rows, dout.shape)
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
