"""ReLU, softmax and log-softmax."""

from ..autograd import Function
from ..backend import get_array_module


class ReLUFunction(Function):
    """relu(x) = max(x, 0).

    ``maximum(x, 0)`` rather than ``x * mask``: a negative x times False is −0., which prints as
    ``-0.``; and a NaN stays NaN, so a diverged network still shows a NaN loss.
    Shapes: x (any) -> same shape
    Saves:  the mask x > 0
    Layout: the output has x's memory layout
    """

    def forward(self, x):
        xp = get_array_module(x)
        self.mask = x > 0
        return xp.maximum(x, 0)

    def backward(self, dout):
        xp = get_array_module(dout)
        ### BEGIN SOLUTION relu_backward
        dx = xp.where(self.mask, dout, 0)         # slope 1 where x > 0, else 0
        ### END SOLUTION relu_backward
        return dx


class SoftmaxFunction(Function):
    """softmax(x) along ``dim``, computed as exp(x − max) / Σ exp(x − max) for stability.

    Shapes: x (any) -> same shape
    Saves:  the output y
    """

    def __init__(self, dim=-1):
        self.dim = dim

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=self.dim, keepdims=True))
        self.y = e / e.sum(axis=self.dim, keepdims=True)
        return self.y

    def backward(self, dout):
        y = self.y
        return y * (dout - (dout * y).sum(axis=self.dim, keepdims=True))   # dx = y ⊙ (dy − Σ dy·y)


class LogSoftmaxFunction(Function):
    """log softmax(x) = x − logsumexp(x) along ``dim``, stable for large logits.

    Shapes: x (any) -> same shape
    Saves:  softmax(x)
    """

    def __init__(self, dim=-1):
        self.dim = dim

    def forward(self, x):
        xp = get_array_module(x)
        shifted = x - x.max(axis=self.dim, keepdims=True)
        out = shifted - xp.log(xp.exp(shifted).sum(axis=self.dim, keepdims=True))
        self.softmax = xp.exp(out)
        return out

    def backward(self, dout):
        return dout - self.softmax * dout.sum(axis=self.dim, keepdims=True)   # dx = dy − softmax·Σ dy
