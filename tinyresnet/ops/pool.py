"""Max pooling, average pooling and adaptive (global) average pooling (the plain tier).

Like im2col, the pools visit the KH×KW window offsets one at a time, each offset covering
every output position at once with a strided slice.
"""

from ..autograd import Function
from ..backend import get_array_module
from .checks import check_4d, output_size


def _window(x, i, j, stride, OH, OW):
    """The value at window offset (i, j) of every output position: (N, C, OH, OW)."""
    sh, sw = stride
    return x[:, :, i:i + sh * OH:sh, j:j + sw * OW:sw]


def _pool_geometry(x, kernel, stride, padding, op):
    check_4d(x, op)
    (kh, kw), (ph, pw) = kernel, padding
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel {kernel}")
    OH = output_size(x.shape[2], kh, stride[0], ph, op, "height")
    OW = output_size(x.shape[3], kw, stride[1], pw, op, "width")
    return OH, OW


class MaxPool2dFunction(Function):
    """Max over each KH×KW window; padding counts as −∞. A NaN in a window makes its maximum NaN, as in PyTorch.

    Backward is the argmax route: only each window's maximum passed its value on, so only it gets
    the window's gradient.
    Shapes: x (N, C, H, W) -> (N, C, OH, OW)
    Saves:  the offset k = i·KW + j of each window's maximum (N, C, OH, OW), x.shape
    """

    def __init__(self, kernel_size, stride, padding=(0, 0)):
        self.kernel, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        xp = get_array_module(x)
        OH, OW = _pool_geometry(x, self.kernel, self.stride, self.padding, "max_pool2d")
        (kh, kw), (ph, pw) = self.kernel, self.padding
        xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-xp.inf)
        out = _window(xpad, 0, 0, self.stride, OH, OW)                  # the maximum so far: offset (0, 0)
        argmax = xp.zeros(out.shape, dtype=xp.int32)                    # where it came from
        for i in range(kh):
            for j in range(kw):
                v = _window(xpad, i, j, self.stride, OH, OW)
                argmax = xp.where(v > out, i * kw + j, argmax)          # the first maximum wins ties
                out = xp.maximum(out, v)
        self.x_shape, self.argmax = x.shape, argmax
        return out

    def backward(self, dout):                           # dout (N, C, OH, OW)
        xp = get_array_module(dout)
        N, C, H, W = self.x_shape
        (kh, kw), (ph, pw) = self.kernel, self.padding
        OH, OW = dout.shape[2:]
        ### BEGIN SOLUTION maxpool_backward
        dxpad = xp.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=dout.dtype)
        for i in range(kh):
            for j in range(kw):
                # only the window's maximum passed its value on, so only it gets the gradient
                _window(dxpad, i, j, self.stride, OH, OW)[...] += dout * (self.argmax == i * kw + j)
        dx = dxpad[:, :, ph:ph + H, pw:pw + W]
        ### END SOLUTION maxpool_backward
        return dx


class AvgPool2dFunction(Function):
    """Mean over each KH×KW window; zero padding counts in the mean (PyTorch's default).

    Shapes: x (N, C, H, W) -> (N, C, OH, OW)
    Saves:  x.shape
    """

    def __init__(self, kernel_size, stride, padding=(0, 0)):
        self.kernel, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        xp = get_array_module(x)
        OH, OW = _pool_geometry(x, self.kernel, self.stride, self.padding, "avg_pool2d")
        (kh, kw), (ph, pw) = self.kernel, self.padding
        self.x_shape = x.shape
        xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
        out = xp.zeros(x.shape[:2] + (OH, OW), dtype=x.dtype)
        for i in range(kh):
            for j in range(kw):
                out += _window(xpad, i, j, self.stride, OH, OW)
        return out / (kh * kw)

    def backward(self, dout):
        xp = get_array_module(dout)
        N, C, H, W = self.x_shape
        (kh, kw), (ph, pw) = self.kernel, self.padding
        OH, OW = dout.shape[2:]
        share = dout / (kh * kw)                        # each window value had weight 1/(KH·KW)
        dxpad = xp.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=dout.dtype)
        for i in range(kh):
            for j in range(kw):
                _window(dxpad, i, j, self.stride, OH, OW)[...] += share
        return dxpad[:, :, ph:ph + H, pw:pw + W]


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
        if self.output_size == (1, 1):
            return xp.broadcast_to(dout / (H * W), self.x_shape).copy()
        OH, OW = self.output_size
        dx = xp.zeros(self.x_shape, dtype=dout.dtype)
        for a, (r0, r1) in enumerate(adaptive_bounds(H, OH)):
            for b, (c0, c1) in enumerate(adaptive_bounds(W, OW)):
                dx[:, :, r0:r1, c0:c1] += dout[:, :, a:a + 1, b:b + 1] / ((r1 - r0) * (c1 - c0))
        return dx
