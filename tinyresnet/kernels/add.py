"""Fast residual add: the plain tier's ``AddFunction`` (``tinyresnet.ops.basic``) on the kernels' threads, its
sum kept channels-last."""

import numpy as np

from ..ops.basic import AddFunction
from .rows import each_chunk, pixel_rows
from .threads import uses_threads


class FastAddFunction(AddFunction):
    """``ops.basic.AddFunction`` for two maps of one shape: the sum in chunks of images on the threads, in the
    channels-last layout when either input has it.

    Why the layout matters: NumPy gives ``a + b`` of a channels-last and a C-ordered map in C order, so a
    block whose shortcut makes a C-ordered map (type A: a strided slice, then zero channels) would hand C-ordered
    maps to everything after it, and each fast kernel there would first have to reorder its input. A sum in
    the channels-last layout keeps the whole network in the layout the convolutions make.

    Shapes: a, b (N, C, H, W) of one shape -> (N, C, H, W); anything else as the plain op (broadcasting)
    Saves:  the two input shapes
    Layout: channels-last if a or b is, else C order
    """

    accelerates = AddFunction

    @uses_threads
    def forward(self, a, b):
        if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.ndim == 4 and a.shape == b.shape
                and a.dtype == b.dtype and a.size):
            return super().forward(a, b)
        self.shapes = a.shape, b.shape
        like = a if pixel_rows(a) is not None else b         # channels-last if either input is
        out = np.empty_like(like)

        def add(part):                                       # a few images at a time
            np.add(a[part], b[part], out=out[part])
        each_chunk(add, a.shape[0], a[0].size)
        return out
