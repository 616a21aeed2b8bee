"""Elementwise arithmetic, matrix product, reductions and reshaping.

These are the ops behind the Tensor operators. Broadcasting is allowed in the binary ops;
their backward sums the gradient back over the broadcast axes (``sum_to``).
"""

from ..autograd import Function
from ..backend import get_array_module, to_device


def sum_to(g, shape):
    """Sum ``g`` over the axes that broadcasting added or stretched, so it has ``shape``."""
    if tuple(g.shape) == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1)
    g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


def check_broadcast(a, b, op):
    """Fail early, naming both shapes, when ``a`` and ``b`` cannot be broadcast together."""
    for m, n in zip(reversed(a.shape), reversed(b.shape)):
        if m != n and m != 1 and n != 1:
            hint = ""
            if a.ndim == 4 and b.ndim == 4:
                hint = (" In a residual block, F(x) and the shortcut x must have the same shape; "
                        "when a block changes the channels or the spatial size, use a projection "
                        "shortcut (a 1x1 convolution with the block's stride, then batch norm) or "
                        "the option-A shortcut (subsample and zero-pad the channels).")
            raise ValueError(f"cannot {op} tensors of shapes {tuple(a.shape)} and "
                             f"{tuple(b.shape)}: they do not broadcast.{hint}")


class AddFunction(Function):
    """a + b, with broadcasting: the residual addition y = F(x) + x.

    Shapes: a, b broadcastable -> broadcast shape
    Saves:  the two input shapes
    """

    def forward(self, a, b):
        check_broadcast(a, b, "add")
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, dout):
        ### BEGIN SOLUTION add_backward
        # d(a+b)/da = d(a+b)/db = 1; broadcast axes are summed back
        da = sum_to(dout, self.shapes[0])
        db = sum_to(dout, self.shapes[1])
        ### END SOLUTION add_backward
        return da, db


class SubFunction(Function):
    """a - b, with broadcasting.  Saves: the two input shapes."""

    def forward(self, a, b):
        check_broadcast(a, b, "subtract")
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, dout):
        return sum_to(dout, self.shapes[0]), sum_to(-dout, self.shapes[1])


class MulFunction(Function):
    """a * b, with broadcasting.  Saves: a, b."""

    def forward(self, a, b):
        check_broadcast(a, b, "multiply")
        self.a, self.b = a, b
        return a * b

    def backward(self, dout):
        da = sum_to(dout * self.b, self.a.shape) if self.needs_input_grad[0] else None  # d(ab)/da = b
        db = sum_to(dout * self.a, self.b.shape) if self.needs_input_grad[1] else None  # d(ab)/db = a
        return da, db


class DivFunction(Function):
    """a / b, with broadcasting.  Saves: a, b."""

    def forward(self, a, b):
        check_broadcast(a, b, "divide")
        self.a, self.b = a, b
        return a / b

    def backward(self, dout):
        da = sum_to(dout / self.b, self.a.shape)                          # d(a/b)/da = 1/b
        db = sum_to(-dout * self.a / (self.b * self.b), self.b.shape)     # d(a/b)/db = -a/b²
        return da, db


class NegFunction(Function):
    """-x."""

    def forward(self, x):
        return -x

    def backward(self, dout):
        return -dout


class PowFunction(Function):
    """x ** p for a scalar p.  Saves: x."""

    def __init__(self, exponent):
        self.exponent = exponent

    def forward(self, x):
        self.x = x
        return x ** self.exponent

    def backward(self, dout):
        p = self.exponent
        return dout * p * self.x ** (p - 1)        # d(xᵖ)/dx = p·xᵖ⁻¹


class ExpFunction(Function):
    """exp(x).  Saves: the output."""

    def forward(self, x):
        self.out = get_array_module(x).exp(x)
        return self.out

    def backward(self, dout):
        return dout * self.out


class LogFunction(Function):
    """log(x).  Saves: x."""

    def forward(self, x):
        self.x = x
        return get_array_module(x).log(x)

    def backward(self, dout):
        return dout / self.x


class MatMulFunction(Function):
    """a @ b, including batched products with broadcast batch axes.

    Shapes: a (..., M, K), b (..., K, P) -> (..., M, P)
    Saves:  a, b
    """

    def forward(self, a, b):
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"matmul needs arrays of at least 2 dimensions, got shapes "
                             f"{tuple(a.shape)} and {tuple(b.shape)}; reshape vectors to (1, K) or (K, 1)")
        if a.shape[-1] != b.shape[-2]:
            raise ValueError(f"matmul shapes {tuple(a.shape)} and {tuple(b.shape)} do not match: "
                             f"{a.shape[-1]} columns against {b.shape[-2]} rows")
        self.a, self.b = a, b
        return a @ b

    def backward(self, dout):
        xp = get_array_module(dout)
        da = sum_to(dout @ xp.swapaxes(self.b, -1, -2), self.a.shape)   # dA = dout · Bᵀ
        db = sum_to(xp.swapaxes(self.a, -1, -2) @ dout, self.b.shape)   # dB = Aᵀ · dout
        return da, db


class SumFunction(Function):
    """x.sum(axis, keepdims).  Saves: x.shape."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.shape = x.shape
        return x.sum(axis=self.axis, keepdims=self.keepdims)

    def backward(self, dout):
        xp = get_array_module(dout)
        return xp.broadcast_to(_unsqueeze(dout, self.shape, self.axis, self.keepdims), self.shape).copy()


class MeanFunction(Function):
    """x.mean(axis, keepdims).  Saves: x.shape."""

    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.shape = x.shape
        out = x.mean(axis=self.axis, keepdims=self.keepdims)
        self.count = x.size // max(out.size, 1) if x.size else 1
        return out

    def backward(self, dout):
        xp = get_array_module(dout)
        g = _unsqueeze(dout, self.shape, self.axis, self.keepdims) / self.count   # each input counts 1/n
        return xp.broadcast_to(g, self.shape).copy()


def _unsqueeze(g, shape, axis, keepdims):
    """Put back the reduced axes of ``g`` (as size 1) so it broadcasts against ``shape``."""
    if keepdims or axis is None:
        return g.reshape((1,) * len(shape)) if axis is None and not keepdims else g
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    axes = sorted(a % len(shape) for a in axes)
    for a in axes:
        g = get_array_module(g).expand_dims(g, a)
    return g


class ReshapeFunction(Function):
    """x.reshape(shape).  Saves: x.shape."""

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        self.in_shape = x.shape
        try:
            return x.reshape(self.shape)
        except ValueError:
            raise ValueError(f"cannot reshape a tensor of shape {tuple(x.shape)} ({x.size} elements) "
                             f"to {self.shape}") from None

    def backward(self, dout):
        return dout.reshape(self.in_shape)


class TransposeFunction(Function):
    """x.transpose(axes); ``axes=None`` reverses them.  Saves: the permutation."""

    def __init__(self, axes=None):
        self.axes = axes

    def forward(self, x):
        self.axes = tuple(range(x.ndim))[::-1] if self.axes is None else tuple(a % x.ndim for a in self.axes)
        return x.transpose(self.axes)

    def backward(self, dout):
        inverse = [0] * len(self.axes)
        for i, a in enumerate(self.axes):
            inverse[a] = i
        return dout.transpose(inverse)


class GetItemFunction(Function):
    """x[index]: slicing and indexing.  Saves: x.shape, x.dtype.

    Used for the option-A shortcut's spatial subsampling, ``x[:, :, ::2, ::2]``.
    """

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.shape, self.dtype = x.shape, x.dtype
        return x[self.index]

    def backward(self, dout):
        xp = get_array_module(dout)
        dx = xp.zeros(self.shape, dtype=self.dtype)
        if _is_advanced(self.index):
            xp.add.at(dx, self.index, dout)     # an index array may repeat an element: add every copy
        else:
            dx[self.index] += dout              # basic slices never repeat an element
        return dx


def _is_advanced(index):
    parts = index if isinstance(index, tuple) else (index,)
    return any(not isinstance(p, (slice, int, type(None), type(Ellipsis))) for p in parts)


class ToDeviceFunction(Function):
    """Move x between devices; the gradient moves back."""

    def __init__(self, device):
        self.device = device

    def forward(self, x):
        from ..backend import device_of
        self.source = device_of(x)
        return to_device(x, self.device)

    def backward(self, dout):
        return to_device(dout, self.source)


def normalize_dim(dim, ndim, op):
    """``dim`` as an index in ``[0, ndim)``, negative dims counting from the end, as PyTorch checks them.

    A 0-d tensor accepts dim 0 and -1 (PyTorch's rule); ``unsqueeze`` passes ``ndim + 1``, the rank of
    its output. Fails with IndexError (as PyTorch) naming the valid range, TypeError for a non-integer.
    """
    if isinstance(dim, bool) or not hasattr(dim, "__index__"):
        raise TypeError(f"{op}: dim must be an integer, got {type(dim).__name__} {dim!r}")
    dim, span = int(dim.__index__()), max(ndim, 1)
    if not -span <= dim < span:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor of {ndim} dimensions; "
                         f"use a dim in [{-span}, {span - 1}]")
    return dim % span


class CastFunction(Function):
    """x in another floating-point dtype, as ``.float()``/``.double()``; the gradient is cast back.

    Shapes: x (...) -> (...), same shape
    Saves:  x's dtype
    """

    def __init__(self, dtype):
        self.dtype = dtype

    def forward(self, x):
        self.source_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, dout):
        return dout.astype(self.source_dtype)       # d(cast x)/dx = 1, in x's own precision


class ExtremumFunction(Function):
    """The largest (or smallest) element of x, as ``x.max()``/``x.min()`` without a dim: a 0-d array.

    The gradient is shared equally by the elements that tie for the extremum, as in PyTorch (a NaN
    is the extremum wherever it appears). ``x.max(dim)`` is another op: ``TakeAlongDimFunction``.
    Shapes: x (...) with at least one element -> ()
    Saves:  the mask of the elements equal to the result, and their count
    """

    def __init__(self, largest=True):
        self.largest = largest

    def forward(self, x):
        xp = get_array_module(x)
        if x.size == 0:
            raise ValueError(f"{'max' if self.largest else 'min'}() of an empty tensor (shape {tuple(x.shape)}) "
                             f"has no value; give a dim, or check the tensor is not empty")
        out = x.max() if self.largest else x.min()
        if any(self.needs_input_grad):
            self.mask = (x == out) | (xp.isnan(x) & xp.isnan(out))
            self.count = int(self.mask.sum())
        return xp.asarray(out)

    def backward(self, dout):
        return self.mask * (dout / self.count)       # each tied element gets 1/count of the gradient


class TakeAlongDimFunction(Function):
    """x's elements at ``indices`` along ``dim``: the values of ``x.max(dim)``/``x.min(dim)``.

    ``indices`` has x's shape with size 1 along ``dim`` (one index per row); ``keepdim=False`` drops
    that dim from the output. Each row's gradient goes to the one element picked (for max, the first
    of tied maxima: the index ``argmax`` gives, as PyTorch does for ``max(dim)``).
    Shapes: x (..., n, ...), indices (..., 1, ...) integers in [0, n) -> (..., 1, ...) or (..., ...)
    Saves:  the indices, x's shape and dtype
    """

    def __init__(self, indices, dim, keepdim=False):
        self.indices, self.dim, self.keepdim = indices, dim, keepdim

    def forward(self, x):
        xp = get_array_module(x)
        self.shape, self.dtype = x.shape, x.dtype
        out = xp.take_along_axis(x, self.indices, axis=self.dim)
        return out if self.keepdim else out.squeeze(self.dim)

    def backward(self, dout):
        xp = get_array_module(dout)
        dout = dout if self.keepdim else xp.expand_dims(dout, self.dim)
        positions = [1] * len(self.shape)
        positions[self.dim] = self.shape[self.dim]
        picked = xp.arange(self.shape[self.dim]).reshape(positions) == self.indices   # one True per row
        return (picked * dout).astype(self.dtype)


class StackFunction(Function):
    """Join same-shaped tensors along a new ``dim``, as ``torch.stack``.

    Shapes: xs[k] (...) all alike -> (..., len(xs) at position dim, ...)
    Saves:  the number of inputs
    """

    def __init__(self, dim=0):
        self.dim = dim

    def forward(self, *xs):
        xp = get_array_module(*xs)
        for k, x in enumerate(xs[1:], start=1):
            if x.shape != xs[0].shape:
                raise ValueError(f"stack needs tensors of one shape, got {tuple(xs[0].shape)} at entry 0 and "
                                 f"{tuple(x.shape)} at entry {k}; reshape them, or use cat to join along a dim")
        self.count = len(xs)
        return xp.stack(xs, axis=self.dim)

    def backward(self, dout):
        index = [slice(None)] * dout.ndim
        grads = []
        for k in range(self.count):
            index[self.dim] = k                     # input k is the slab at position k of the new dim
            grads.append(dout[tuple(index)])
        return tuple(grads)
