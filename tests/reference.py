"""Plain loop-based references for the ops, written the way the ResNet document explains them.

These are deliberately slow and obvious: explicit loops over output positions, no im2col, no
strided tricks, nothing shared with ``tinyresnet``. The tests compare the library's fast ops with
them. Everything here works on NumPy float64 arrays and returns new arrays (nothing in place).

The module also holds the input builders the tests share: ``grid_values`` and
``kink_free_shift`` for gradient checks, ``on_device`` to make Tensors on the device under test.
"""

import math

import numpy as np


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def output_size(n, kernel, stride, padding):
    """⌊(n + 2p − f) / s⌋ + 1: how many positions a window of size f takes in a padded row."""
    return (n + 2 * padding - kernel) // stride + 1


def zero_pad(x, ph, pw, value=0.0):
    """x (N, C, H, W) surrounded by ph rows and pw columns of ``value`` on each side."""
    N, C, H, W = x.shape
    out = np.full((N, C, H + 2 * ph, W + 2 * pw), value, dtype=np.float64)
    out[:, :, ph:ph + H, pw:pw + W] = x
    return out


# --------------------------------------------------------------------------- convolution
def conv2d(x, weight, bias=None, stride=1, padding=0, groups=1):
    """The sliding-window convolution: put each filter on every position of the padded input,
    multiply the window by the filter element by element, add it all up, add the bias.

    Shapes: x (N, C, H, W), weight (OC, C/groups, KH, KW), bias (OC,) -> (N, OC, OH, OW).
    With groups > 1, output channel oc only sees the input channels of its own group.
    """
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    N, C, H, W = x.shape
    OC, Cg, KH, KW = weight.shape
    OH, OW = output_size(H, KH, sh, ph), output_size(W, KW, sw, pw)
    filters_per_group = OC // groups
    xpad = zero_pad(x, ph, pw)
    out = np.zeros((N, OC, OH, OW))
    for n in range(N):
        for oc in range(OC):
            g = oc // filters_per_group
            first = g * Cg                                   # this group's first input channel
            for i in range(OH):
                for j in range(OW):
                    top, left = i * sh, j * sw
                    window = xpad[n, first:first + Cg, top:top + KH, left:left + KW]
                    total = np.sum(window * weight[oc])
                    out[n, oc, i, j] = total + (bias[oc] if bias is not None else 0.0)
    return out


def conv1x1(x, weight, bias=None, stride=1):
    """The 1×1 convolution as the document explains it: at every kept pixel, mix the channel
    values with one weight per (output channel, input channel), like a fully connected layer
    applied to each pixel on its own. A stride s keeps every s-th pixel.

    Shapes: x (N, C, H, W), weight (OC, C, 1, 1), bias (OC,) -> (N, OC, ⌈H/s⌉, ⌈W/s⌉)
    """
    sh, sw = _pair(stride)
    N, C, H, W = x.shape
    OC = weight.shape[0]
    OH, OW = output_size(H, 1, sh, 0), output_size(W, 1, sw, 0)
    out = np.zeros((N, OC, OH, OW))
    for n in range(N):
        for i in range(OH):
            for j in range(OW):
                pixel = x[n, :, i * sh, j * sw]              # (C,): every channel at this pixel
                for oc in range(OC):
                    mix = sum(weight[oc, c, 0, 0] * pixel[c] for c in range(C))
                    out[n, oc, i, j] = mix + (bias[oc] if bias is not None else 0.0)
    return out


# --------------------------------------------------------------------------- pooling
def max_pool2d(x, kernel_size, stride=None, padding=0):
    """The largest value of each window; padding never wins (it counts as −∞)."""
    (kh, kw) = _pair(kernel_size)
    (sh, sw) = (kh, kw) if stride is None else _pair(stride)
    (ph, pw) = _pair(padding)
    N, C, H, W = x.shape
    OH, OW = output_size(H, kh, sh, ph), output_size(W, kw, sw, pw)
    xpad = zero_pad(x, ph, pw, value=-np.inf)
    out = np.zeros((N, C, OH, OW))
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    out[n, c, i, j] = xpad[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw].max()
    return out


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """The mean of each window, the zero padding included in the count (PyTorch's default)."""
    (kh, kw) = _pair(kernel_size)
    (sh, sw) = (kh, kw) if stride is None else _pair(stride)
    (ph, pw) = _pair(padding)
    N, C, H, W = x.shape
    OH, OW = output_size(H, kh, sh, ph), output_size(W, kw, sw, pw)
    xpad = zero_pad(x, ph, pw)
    out = np.zeros((N, C, OH, OW))
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    out[n, c, i, j] = xpad[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw].sum() / (kh * kw)
    return out


def adaptive_avg_pool2d(x, output_size):
    """Average pooling to a fixed grid: output cell i of a side n split into m cells averages
    the input rows floor(i·n/m) up to ceil((i+1)·n/m) (exclusive); (1, 1) is the global mean."""
    OH, OW = _pair(output_size)
    N, C, H, W = x.shape
    out = np.zeros((N, C, OH, OW))
    for i in range(OH):
        r0, r1 = math.floor(i * H / OH), math.ceil((i + 1) * H / OH)
        for j in range(OW):
            c0, c1 = math.floor(j * W / OW), math.ceil((j + 1) * W / OW)
            for n in range(N):
                for c in range(C):
                    out[n, c, i, j] = x[n, c, r0:r1, c0:c1].mean()
    return out


# --------------------------------------------------------------------------- batch norm
def batch_norm(x, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch norm one channel at a time.

    Training: normalise with the channel's mean and biased variance over (N, H, W), and move
    the running statistics a step ``momentum`` towards the batch's mean and *unbiased* variance.
    Eval: normalise with the running statistics, which stay as they are.
    Returns (out, new_running_mean, new_running_var); the arguments are not modified.
    """
    N, C, H, W = x.shape
    out = np.zeros(x.shape)
    new_mean = np.array(running_mean, dtype=np.float64, copy=True)
    new_var = np.array(running_var, dtype=np.float64, copy=True)
    for c in range(C):
        values = x[:, c].ravel()
        count = values.size
        if training:
            mean = sum(values) / count
            var = sum((v - mean) ** 2 for v in values) / count
            new_mean[c] = (1 - momentum) * running_mean[c] + momentum * mean
            new_var[c] = (1 - momentum) * running_var[c] + momentum * var * count / (count - 1)
        else:
            mean, var = running_mean[c], running_var[c]
        scale = 1.0 if weight is None else weight[c]
        shift = 0.0 if bias is None else bias[c]
        out[:, c] = scale * (x[:, c] - mean) / math.sqrt(var + eps) + shift
    return out, new_mean, new_var


# --------------------------------------------------------------------------- activations, losses
def relu(x):
    """max(x, 0), one element at a time."""
    out = np.zeros(x.shape)
    for index, v in np.ndenumerate(x):
        out[index] = v if v > 0 else 0.0
    return out


def _along(x, dim, fn):
    """Apply ``fn`` to every 1-D slice of ``x`` along ``dim``."""
    moved = np.moveaxis(np.asarray(x, dtype=np.float64), dim, -1)
    out = np.zeros(moved.shape)
    for index in np.ndindex(*moved.shape[:-1]):
        out[index] = fn(moved[index])
    return np.moveaxis(out, -1, dim)


def _log_softmax_vector(z):
    top = max(z)
    log_total = top + math.log(sum(math.exp(v - top) for v in z))   # log Σ exp(z), computed stably
    return np.array([v - log_total for v in z])


def log_softmax(x, dim=-1):
    return _along(x, dim, _log_softmax_vector)


def softmax(x, dim=-1):
    return _along(x, dim, lambda z: np.exp(_log_softmax_vector(z)))


def linear(x, weight, bias=None):
    """y[..., o] = Σ_i x[..., i] · W[o, i] + b[o], one output at a time."""
    OUT, IN = weight.shape
    rows = np.asarray(x).reshape(-1, IN)
    out = np.zeros((rows.shape[0], OUT))
    for r in range(rows.shape[0]):
        for o in range(OUT):
            out[r, o] = sum(rows[r, i] * weight[o, i] for i in range(IN)) + (bias[o] if bias is not None else 0.0)
    return out.reshape(x.shape[:-1] + (OUT,))


def cross_entropy(logits, targets, reduction="mean"):
    """−log softmax(z_n)[t_n] for each row n, then the mean, the sum, or the per-row losses."""
    losses = np.array([-_log_softmax_vector(z)[t] for z, t in zip(logits, targets)])
    if reduction == "none":
        return losses
    return losses.sum() / (len(losses) if reduction == "mean" else 1)


# --------------------------------------------------------------------------- arithmetic and reductions
def broadcast_elementwise(fn, a, b):
    """``fn(a, b)`` element by element under broadcasting: shapes are aligned from the right, and
    along an axis where one operand has size 1 that operand's single entry is reused."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    nd = max(a.ndim, b.ndim)
    a_shape, b_shape = (1,) * (nd - a.ndim) + a.shape, (1,) * (nd - b.ndim) + b.shape
    a, b = a.reshape(a_shape), b.reshape(b_shape)
    out_shape = tuple(max(m, n) for m, n in zip(a_shape, b_shape))
    out = np.zeros(out_shape)
    for index in np.ndindex(*out_shape):
        ia = tuple(0 if m == 1 else i for i, m in zip(index, a_shape))
        ib = tuple(0 if n == 1 else i for i, n in zip(index, b_shape))
        out[index] = fn(a[ia], b[ib])
    return out


def matmul(a, b):
    """(..., M, K) @ (..., K, P): each output entry is a row of a times a column of b; the
    leading (batch) axes broadcast like any elementwise op."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a, b = np.broadcast_to(a, batch + a.shape[-2:]), np.broadcast_to(b, batch + b.shape[-2:])
    M, K, P = a.shape[-2], a.shape[-1], b.shape[-1]
    out = np.zeros(batch + (M, P))
    for n in np.ndindex(*batch):
        for i in range(M):
            for j in range(P):
                out[n + (i, j)] = sum(a[n + (i, k)] * b[n + (k, j)] for k in range(K))
    return out


def sum_over(x, axis=None, keepdims=False):
    """Add every element of x into the output cell its index keeps after dropping ``axis``."""
    axes = range(x.ndim) if axis is None else [axis] if isinstance(axis, int) else axis
    axes = {a % x.ndim for a in axes}
    kept = [d for d in range(x.ndim) if d not in axes]
    out = np.zeros(tuple(x.shape[d] for d in kept))
    for index, v in np.ndenumerate(x):
        out[tuple(index[d] for d in kept)] += v
    if keepdims:
        out = out.reshape(tuple(1 if d in axes else x.shape[d] for d in range(x.ndim)))
    return out


def permute(x, axes):
    """Output axis d is input axis axes[d]: x's element at index k lands at (k[axes[0]], k[axes[1]], ...)."""
    out = np.zeros(tuple(x.shape[a] for a in axes))
    for index, v in np.ndenumerate(x):
        out[tuple(index[a] for a in axes)] = v
    return out


# --------------------------------------------------------------------------- joining and padding
def cat_channels(xs):
    """Stack (N, C_k, H, W) maps channel after channel into (N, Σ C_k, H, W)."""
    N, _, H, W = xs[0].shape
    out = np.zeros((N, sum(x.shape[1] for x in xs), H, W))
    c = 0
    for x in xs:
        for k in range(x.shape[1]):
            out[:, c] = x[:, k]
            c += 1
    return out


def pad_channels(x, before, after):
    """The option-A shortcut's channel growth: ``before`` zero channels, x, ``after`` zero channels."""
    N, C, H, W = x.shape
    out = np.zeros((N, before + C + after, H, W))
    for c in range(C):
        out[:, before + c] = x[:, c]
    return out


# --------------------------------------------------------------------------- inputs for gradient checks
def grid_values(shape, rng, spacing=0.02):
    """Distinct values (k + 0.25) · spacing, k integer, shuffled by ``rng``.

    Finite differences move one input by up to 2h = 2e-3. With the default spacing no value
    is within 5e-3 of zero (ReLU's kink) and any two values are 0.02 apart, so no perturbation
    can change which value of a pooling window is the largest.
    """
    n = math.prod(shape)
    k = rng.permutation(n) - n // 2
    return ((k + 0.25) * spacing).reshape(shape)


def kink_free_shift(pre_activation):
    """A per-channel shift that puts ReLU's kink in the middle of the widest gap between each
    channel's values near zero, and the smallest distance to the kink that results.

    Shapes: pre_activation (N, C, H, W) -> shift (C,), margin (float)
    Adding ``shift`` (through a batch-norm bias) to the values before a ReLU keeps every value
    ``margin`` away from 0, so finite differences do not straddle the kink.
    """
    C = pre_activation.shape[1]
    shift = np.zeros(C)
    margins = []
    for c in range(C):
        values = np.sort(pre_activation[:, c].ravel())
        gaps = np.diff(values)
        middle = (values[:-1] + values[1:]) / 2
        usable = np.abs(middle) < 1.0                   # stay near 0 so the ReLU still cuts some values
        best = np.argmax(np.where(usable, gaps, -1.0))
        shift[c] = -middle[best]
        margins.append(gaps[best] / 2)
    return shift, float(min(margins))


def on_device(device, *arrays, requires_grad=True):
    """Host arrays as float64 Tensors on ``device`` ("cpu" or "cuda"), one per array."""
    from tinyresnet import Tensor
    from tinyresnet.backend import to_device

    return [Tensor(to_device(np.asarray(a, dtype=np.float64), device), requires_grad=requires_grad)
            for a in arrays]
