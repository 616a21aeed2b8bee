"""Fast max pooling: the plain tier's ``MaxPool2dFunction`` (``tinyresnet.ops.pool``) with fewer copies."""

from ..backend import get_array_module
from ..ops.pool import MaxPool2dFunction, _pool_geometry, _window
from .conv import pad_hw


class FastMaxPool2dFunction(MaxPool2dFunction):
    """``ops.pool.MaxPool2dFunction`` with the padding made in the input's memory layout (channels-last
    after a convolution, as the convolutions pad), the running maximum kept in place, and the argmax
    made only when a backward can come (under ``no_grad`` nothing needs it). Backward is the plain op's.
    ``dilation`` and ``ceil_mode`` as in the plain op: other window offsets, more padding below and right.

    Shapes: x (N, C, H, W) -> (N, C, OH, OW)
    Saves:  the offset k = i·KW + j of each window's maximum (int8 when KH·KW < 128), x.shape
    Layout: the output has x's memory layout
    """

    accelerates = MaxPool2dFunction

    def forward(self, x):
        xp = get_array_module(x)
        OH, OW, (below, right) = _pool_geometry(x, self.kernel, self.stride, self.padding, "max_pool2d",
                                                self.dilation, self.ceil_mode)
        (kh, kw), (ph, pw), (dh, dw) = self.kernel, self.padding, self.dilation
        self.x_shape, self.pad_after = x.shape, (below, right)
        xpad = x
        if ph or pw or below or right:                    # padding counts as −∞; channels-last, as conv pads
            xpad = pad_hw(x.transpose(0, 2, 3, 1), ph, pw, -xp.inf, after=(below, right)).transpose(0, 3, 1, 2)
        out = _window(xpad, 0, 0, self.stride, OH, OW).copy(order="K")
        argmax = None                                     # where each maximum came from, for backward only
        if any(self.needs_input_grad):
            argmax = xp.zeros_like(out, dtype=xp.int8 if kh * kw < 128 else xp.int32)
        for i in range(kh):
            for j in range(kw):
                v = _window(xpad, i * dh, j * dw, self.stride, OH, OW)
                if argmax is not None:
                    xp.copyto(argmax, i * kw + j, where=v > out)     # the first maximum wins ties
                xp.maximum(out, v, out=out)
        self.argmax = argmax
        return out
