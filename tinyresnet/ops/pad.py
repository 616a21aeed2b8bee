"""Reflect, replicate and circular padding (``torch.nn.functional.pad``'s non-constant modes).

Each padded position copies one input position along its axis, so padding one axis is a gather
with an index list, ``src``: position q of the output holds input position src[q]. With n input
positions, ``before`` added in front and q − before = i:

    reflect     i < 0 -> −i,  i ≥ n -> 2(n − 1) − i     the edge is the mirror, not repeated: dcb|abcd|cba
    replicate   i clipped to [0, n − 1]                  the edge repeated:                   aaa|abcd|ddd
    circular    i mod n                                  the other end:                       bcd|abcd|abc

Backward is the adjoint of the gather: every output position adds its gradient to its source, so
an input pixel that was copied into the padding (an edge) collects several gradients.
Constant padding is ``ops.shape.PadFunction``.
"""

from ..autograd import Function
from ..backend import get_array_module

MODES = ("reflect", "replicate", "circular")


def source_index(n, before, after, mode):
    """The input position each output position copies along one axis: a list of before + n + after ints.

    A negative width crops first (as PyTorch does): the padding then copies from what is left, the
    positions [lo, lo + m).
    """
    lo, m = max(-before, 0), n - max(-before, 0) - max(-after, 0)
    index = []
    for i in range(-max(before, 0), m + max(after, 0)):   # i counts from the first position kept
        if mode == "reflect":
            i = -i if i < 0 else 2 * (m - 1) - i if i >= m else i
        elif mode == "replicate":
            i = min(max(i, 0), m - 1)
        else:                                              # circular
            i = i % m
        index.append(lo + i)
    return index


def check_pad(shape, pad, mode, op="pad"):
    """PyTorch's rules for the non-constant modes: pairs for the last 1, 2 or 3 dims of an input with
    at most one more dim in front (a batch); reflect narrower than the dim, circular at most as wide."""
    if mode not in MODES:
        raise ValueError(f"{op}: unknown padding mode {mode!r}; use 'constant', 'reflect', 'replicate' or 'circular'")
    if len(pad) % 2:
        raise ValueError(f"{op}: pad needs pairs (before, after) per dim, got {tuple(pad)}")
    k = len(pad) // 2
    if not 1 <= k <= 3 or len(shape) not in (k + 1, k + 2):
        raise ValueError(f"{op}: {mode} padding of {k} dim(s) (pad {tuple(pad)}) needs a {k + 1}-D or {k + 2}-D "
                         f"input (the dims, after a channel and an optional batch dim), got shape {tuple(shape)}")
    for d in range(k):
        axis, (before, after) = len(shape) - 1 - d, pad[2 * d:2 * d + 2]
        # (the widths are checked against the whole dim, even where a negative one crops it first)
        n = shape[axis]
        if n == 0:
            raise ValueError(f"{op}: {mode} padding needs a non-empty dim {axis} to copy from, got shape "
                             f"{tuple(shape)}")
        if mode == "reflect" and max(before, after) >= n:
            raise ValueError(f"{op}: reflect padding ({before}, {after}) of dim {axis} must be smaller than its "
                             f"size {n} (input shape {tuple(shape)}); pad less, or use mode='replicate'")
        if mode == "circular" and max(before, after) > n:
            raise ValueError(f"{op}: circular padding ({before}, {after}) of dim {axis} wraps around more than "
                             f"once: it must be at most its size {n} (input shape {tuple(shape)})")
        if n - max(-before, 0) - max(-after, 0) < 1:
            raise ValueError(f"{op}: the negative padding ({before}, {after}) crops all of dim {axis} "
                             f"(size {n}, input shape {tuple(shape)})")


class EdgePadFunction(Function):
    """Reflect, replicate or circular padding, ``pad`` given as in ``torch.nn.functional.pad``: pairs
    (before, after) from the last dim first, so (left, right, top, bottom) for an (N, C, H, W) image.
    A negative width crops, as in PyTorch.

    Shapes: x (..., H, W) -> (..., top + H + bottom, left + W + right) (one to three padded dims)
    Saves:  x.shape and, per padded axis, its front width and source index list
    """

    def __init__(self, pad, mode="reflect"):
        self.pad, self.mode = tuple(int(p) for p in pad), mode

    def forward(self, x):
        xp = get_array_module(x)
        check_pad(x.shape, self.pad, self.mode)
        self.x_shape, self.sources = x.shape, []           # [(axis, before, after, src)], last dim first
        for d in range(len(self.pad) // 2):
            axis, before, after = x.ndim - 1 - d, self.pad[2 * d], self.pad[2 * d + 1]
            src = source_index(x.shape[axis], before, after, self.mode)
            self.sources.append((axis, before, after, src))
            x = xp.take(x, xp.asarray(src), axis=axis)     # output position q copies input position src[q]
        return x

    def backward(self, dout):
        xp = get_array_module(dout)
        for axis, before, after, src in reversed(self.sources):
            n = self.x_shape[axis]
            d = xp.moveaxis(dout, axis, 0)                 # the padded axis first: d[q] is one slab
            dx = xp.zeros((n,) + d.shape[1:], dtype=dout.dtype)
            start, stop = max(before, 0), len(src) - max(after, 0)   # the positions that copy x unpadded
            dx[src[start]:src[start] + stop - start] += d[start:stop]
            for q in [*range(start), *range(stop, len(src))]:        # the padding: each adds to its source
                dx[src[q]] += d[q]
            dout = xp.moveaxis(dx, 0, axis)
        return dout
