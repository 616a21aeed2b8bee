"""Concatenation (DenseNet) and constant padding (the option-A shortcut's zero channels)."""

from ..autograd import Function
from ..backend import get_array_module


class ConcatFunction(Function):
    """Join tensors along ``dim`` (DenseNet stacks feature maps along channels).

    Shapes: xs[k] (..., C_k, ...) -> (..., Σ C_k, ...)
    Saves:  the sizes along ``dim``
    """

    def __init__(self, dim=1):
        self.dim = dim

    def forward(self, *xs):
        xp = get_array_module(xs[0])
        first = xs[0].shape
        dim = self.dim % len(first)
        for x in xs[1:]:
            if x.ndim != len(first) or any(a != b for k, (a, b) in enumerate(zip(first, x.shape)) if k != dim):
                raise ValueError(f"cat along dim {self.dim}: shapes {[tuple(x.shape) for x in xs]} "
                                 f"differ outside that dim; every other size must match")
        self.sizes = [x.shape[dim] for x in xs]
        return xp.concatenate(xs, axis=dim)

    def backward(self, dout):
        grads, start = [], 0
        index = [slice(None)] * dout.ndim
        for n in self.sizes:
            index[self.dim % dout.ndim] = slice(start, start + n)   # each input's own slab
            grads.append(dout[tuple(index)])
            start += n
        return tuple(grads)


class PadFunction(Function):
    """Constant padding, ``pad`` given as in ``torch.nn.functional.pad``: pairs from the last dim.

    (0, 0, 0, 0, p, p) on an (N, C, H, W) tensor adds p zero channels on each side.
    Shapes: x (...) -> (... each padded dim grown by before + after)
    Saves:  the slices that recover x
    """

    def __init__(self, pad, value=0.0):
        if len(pad) % 2:
            raise ValueError(f"pad needs pairs (before, after) per dim, got {pad}")
        self.pad, self.value = tuple(pad), value

    def forward(self, x):
        xp = get_array_module(x)
        k = len(self.pad) // 2
        if k > x.ndim:
            raise ValueError(f"pad {self.pad} covers {k} dims but the input has {x.ndim}")
        if min(self.pad) < 0:
            raise ValueError(f"pad {self.pad}: negative padding is not supported")
        widths = [(0, 0)] * (x.ndim - k) + [(self.pad[2 * d], self.pad[2 * d + 1]) for d in reversed(range(k))]
        self.index = tuple(slice(b, b + n) for (b, _), n in zip(widths, x.shape))
        return xp.pad(x, widths, constant_values=self.value)

    def backward(self, dout):
        return dout[self.index]                          # the padding had no inputs
