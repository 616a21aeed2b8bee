"""Max pooling, average pooling and adaptive (global) average pooling (the plain tier).

Like im2col, the pools visit the KH×KW window offsets one at a time, each offset covering
every output position at once with a strided slice. A dilated max pool (``dilation`` d) reads
every d-th pixel of a window: its offset (i, j) is the pixel (i·dh, j·dw) from the window's corner.
``ceil_mode`` rounds the output size up (PyTorch's rule, ``checks.output_size``): the last window may
then hang over the input's end, and the pools pad there too (−∞ for max, nothing counted for avg).
"""

from ..autograd import Function
from ..backend import get_array_module
from .checks import check_4d, output_size


def _window(x, i, j, stride, OH, OW):
    """The value at padded pixel (i, j) from the corner of every window: (N, C, OH, OW)."""
    sh, sw = stride
    return x[:, :, i:i + sh * OH:sh, j:j + sw * OW:sw]


def _pool_geometry(x, kernel, stride, padding, op, dilation=(1, 1), ceil_mode=False):
    """The output size OH, OW and the padding (below, right) the windows need.

    The padding below and right is ``padding``, or more with ``ceil_mode``: what the last window
    hangs over the padded input's end.
    """
    check_4d(x, op)
    (kh, kw), (ph, pw) = kernel, padding
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel {kernel}")
    OH = output_size(x.shape[2], kh, stride[0], ph, op, "height", dilation[0], ceil_mode)
    OW = output_size(x.shape[3], kw, stride[1], pw, op, "width", dilation[1], ceil_mode)
    # the last window's last pixel is (OH − 1)·sh + dh·(KH − 1) in padded coordinates
    below = max(ph, (OH - 1) * stride[0] + dilation[0] * (kh - 1) + 1 - ph - x.shape[2])
    right = max(pw, (OW - 1) * stride[1] + dilation[1] * (kw - 1) + 1 - pw - x.shape[3])
    return OH, OW, (below, right)


class MaxPool2dFunction(Function):
    """Max over each KH×KW window; padding counts as −∞. A NaN in a window makes its maximum NaN, as in PyTorch.

    Backward is the argmax route: only each window's maximum passed its value on, so only it gets
    the window's gradient. ``dilation`` spaces a window's taps, ``ceil_mode`` rounds the output size up.
    Shapes: x (N, C, H, W) -> (N, C, OH, OW), OH = ⌊(H + 2p − d·(KH − 1) − 1) / s⌋ + 1 (⌈⌉ with ceil_mode)
    Saves:  the offset k = i·KW + j of each window's maximum (N, C, OH, OW), x.shape, the padding below/right
    """

    def __init__(self, kernel_size, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False):
        self.kernel, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x):
        xp = get_array_module(x)
        OH, OW, (below, right) = _pool_geometry(x, self.kernel, self.stride, self.padding, "max_pool2d",
                                                self.dilation, self.ceil_mode)
        (kh, kw), (ph, pw), (dh, dw) = self.kernel, self.padding, self.dilation
        xpad = xp.pad(x, ((0, 0), (0, 0), (ph, below), (pw, right)), constant_values=-xp.inf)
        out = _window(xpad, 0, 0, self.stride, OH, OW)                  # the maximum so far: offset (0, 0)
        argmax = xp.zeros(out.shape, dtype=xp.int32)                    # where it came from
        for i in range(kh):
            for j in range(kw):
                v = _window(xpad, i * dh, j * dw, self.stride, OH, OW)
                argmax = xp.where(v > out, i * kw + j, argmax)          # the first maximum wins ties
                out = xp.maximum(out, v)
        self.x_shape, self.argmax, self.pad_after = x.shape, argmax, (below, right)
        return out

    def backward(self, dout):                           # dout (N, C, OH, OW)
        xp = get_array_module(dout)
        N, C, H, W = self.x_shape
        (kh, kw), (ph, pw), (dh, dw) = self.kernel, self.padding, self.dilation
        below, right = self.pad_after                   # ph, pw unless ceil_mode needed more
        OH, OW = dout.shape[2:]
        ### BEGIN SOLUTION maxpool_backward
        dxpad = xp.zeros((N, C, ph + H + below, pw + W + right), dtype=dout.dtype)
        for i in range(kh):
            for j in range(kw):
                # only the window's maximum passed its value on, so only it gets the gradient
                _window(dxpad, i * dh, j * dw, self.stride, OH, OW)[...] += dout * (self.argmax == i * kw + j)
        dx = dxpad[:, :, ph:ph + H, pw:pw + W]
        ### END SOLUTION maxpool_backward
        return dx


def _divisors(n, k, s, p, out, count_include_pad):
    """How many pixels avg pooling divides each window's sum by, along one axis: (out,) Python ints.

    A window counts its pixels inside the padded input [−p, n + p) (the part ceil_mode hangs past it
    never counts), or only those inside the input [0, n) with ``count_include_pad=False``.
    """
    counts = []
    for o in range(out):
        start = o * s - p                               # in the input's coordinates
        end = min(start + k, n + p)
        if not count_include_pad:
            start, end = max(start, 0), min(end, n)
        counts.append(end - start)
    return counts


class AvgPool2dFunction(Function):
    """Mean over each KH×KW window. Zero padding counts in the mean (PyTorch's default) unless
    ``count_include_pad=False``; ``ceil_mode`` rounds the output size up, and the part of a last
    window past the padded input never counts; ``divisor_override`` divides every sum by one number.

    Shapes: x (N, C, H, W) -> (N, C, OH, OW)
    Saves:  x.shape, the divisor of each window (OH, OW), the padding below/right
    """

    def __init__(self, kernel_size, stride, padding=(0, 0), ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        self.kernel, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad, self.divisor_override = ceil_mode, count_include_pad, divisor_override

    def forward(self, x):
        xp = get_array_module(x)
        OH, OW, (below, right) = _pool_geometry(x, self.kernel, self.stride, self.padding, "avg_pool2d",
                                                ceil_mode=self.ceil_mode)
        (kh, kw), (ph, pw), (sh, sw) = self.kernel, self.padding, self.stride
        H, W = x.shape[2:]
        if self.divisor_override is not None:
            divisor = xp.full((OH, OW), self.divisor_override, dtype=x.dtype)
        else:
            rows = _divisors(H, kh, sh, ph, OH, self.count_include_pad)
            cols = _divisors(W, kw, sw, pw, OW, self.count_include_pad)
            divisor = xp.asarray(rows, dtype=x.dtype)[:, None] * xp.asarray(cols, dtype=x.dtype)   # (OH, OW)
        self.x_shape, self.divisor, self.pad_after = x.shape, divisor, (below, right)
        xpad = xp.pad(x, ((0, 0), (0, 0), (ph, below), (pw, right)))
        out = xp.zeros(x.shape[:2] + (OH, OW), dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                out += _window(xpad, i, j, self.stride, OH, OW)
        return out / divisor

    def backward(self, dout):
        xp = get_array_module(dout)
        N, C, H, W = self.x_shape
        (kh, kw), (ph, pw), (below, right) = self.kernel, self.padding, self.pad_after
        OH, OW = dout.shape[2:]
        ### BEGIN SOLUTION avgpool_backward
        share = dout / self.divisor                     # each window value had weight 1/divisor
        dxpad = xp.zeros((N, C, ph + H + below, pw + W + right), dtype=dout.dtype)
        for i in range(kh):
            for j in range(kw):
                _window(dxpad, i, j, self.stride, OH, OW)[...] += share
        return dxpad[:, :, ph:ph + H, pw:pw + W]
        ### END SOLUTION avgpool_backward


def adaptive_bounds(n, out):
    """PyTorch's adaptive pooling windows: cell i covers [⌊i·n/out⌋, ⌈(i+1)·n/out⌉)."""
    return [((i * n) // out, -((-(i + 1) * n) // out)) for i in range(out)]


class AdaptiveAvgPool2dFunction(Function):
    """Average pooling to a fixed output size; (1, 1) is global average pooling.

    Shapes: x (N, C, H, W) -> (N, C, OH, OW)
    Saves:  x.shape
    """

    def __init__(self, output_size=(1, 1)):
        self.output_size = output_size

    def forward(self, x):
        check_4d(x, "adaptive_avg_pool2d")
        xp = get_array_module(x)
        self.x_shape = x.shape
        if self.output_size == (1, 1):
            return x.mean(axis=(2, 3), keepdims=True)
        OH, OW = self.output_size
        rows, cols = adaptive_bounds(x.shape[2], OH), adaptive_bounds(x.shape[3], OW)
        out = xp.empty(x.shape[:2] + (OH, OW), dtype=x.dtype)
        for a, (r0, r1) in enumerate(rows):
            for b, (c0, c1) in enumerate(cols):
                out[:, :, a, b] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
        return out

    def backward(self, dout):
        xp = get_array_module(dout)
        N, C, H, W = self.x_shape
        ### BEGIN SOLUTION avgpool_backward:adaptive
        if self.output_size == (1, 1):
            return xp.broadcast_to(dout / (H * W), self.x_shape).copy()
        OH, OW = self.output_size
        dx = xp.zeros(self.x_shape, dtype=dout.dtype)
        for a, (r0, r1) in enumerate(adaptive_bounds(H, OH)):
            for b, (c0, c1) in enumerate(adaptive_bounds(W, OW)):
                dx[:, :, r0:r1, c0:c1] += dout[:, :, a:a + 1, b:b + 1] / ((r1 - r0) * (c1 - c0))
        return dx
        ### END SOLUTION avgpool_backward:adaptive
