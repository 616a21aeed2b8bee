"""The fully connected layer and the cross-entropy loss."""

from ..autograd import Function
from ..backend import get_array_module
from .checks import check_float, check_same_dtype


class LinearFunction(Function):
    """y = x · Wᵀ + b.

    Shapes: x (N, IN) or (..., IN), weight (OUT, IN), bias (OUT,) or None -> (..., OUT)
    Saves:  x, weight, whether a bias was passed
    """

    def forward(self, x, weight, bias=None):
        check_float(x, "linear")
        check_same_dtype(x, weight, "linear", "weight")
        check_same_dtype(x, bias, "linear", "bias")
        if x.shape[-1] != weight.shape[1]:
            raise ValueError(f"linear: the input has {x.shape[-1]} features (shape {tuple(x.shape)}) "
                             f"but the weight expects {weight.shape[1]} (shape {tuple(weight.shape)}); "
                             f"flatten the input or set in_features={x.shape[-1]}")
        self.x, self.weight, self.has_bias = x, weight, bias is not None
        out = x @ weight.T
        return out if bias is None else out + bias

    def backward(self, dout):                            # dout (..., OUT)
        ### BEGIN SOLUTION linear_backward
        x2 = self.x.reshape(-1, self.x.shape[-1])        # (M, IN)
        d2 = dout.reshape(-1, dout.shape[-1])            # (M, OUT)
        dx = dout @ self.weight                          # dx = dout · W
        dweight = d2.T @ x2                              # dW = doutᵀ · x
        dbias = d2.sum(axis=0) if self.has_bias else None   # db = Σ dout
        ### END SOLUTION linear_backward
        return (dx, dweight, dbias) if self.has_bias else (dx, dweight)


def check_targets(targets, num_classes):
    """Raise ValueError if a class index is outside [0, num_classes).

    Host (NumPy) targets are checked on the host: no sync. Device targets cost one combined
    reduction and one read (one sync); the failing value is only looked up on the error path."""
    if not targets.size:
        return
    xp = get_array_module(targets)
    if xp.__name__ == "numpy":
        low, high = int(targets.min()), int(targets.max())
        if low >= 0 and high < num_classes:
            return
    elif not bool(((targets < 0) | (targets >= num_classes)).any()):      # one reduction, one sync
        return
    low, high = int(targets.min()), int(targets.max())
    bad = low if low < 0 else high
    raise ValueError(f"cross_entropy: target {bad} is outside the {num_classes} classes [0, {num_classes - 1}]")


class CrossEntropyFunction(Function):
    """Cross-entropy of logits against integer class targets, via a stable log-softmax.

    loss_n = −log softmax(z_n)[t_n] = logsumexp(z_n) − z_n[t_n]
    With label smoothing ε (PyTorch's definition): the target is (1 − ε)·onehot(t_n) + ε/K, so
    loss_n = (1 − ε)·(−log p_n[t_n]) + ε · mean over the K classes of (−log p_n[k]).
    Shapes: logits (N, K), targets (N,) integers in [0, K) -> scalar (mean or sum) or (N,)
    Saves:  softmax(logits), the targets
    """

    def __init__(self, targets, reduction="mean", label_smoothing=0.0, check_targets=True):
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        if isinstance(label_smoothing, bool) or not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing!r}; "
                             f"0.1 is a usual value, 0.0 turns it off")
        self.targets, self.reduction, self.smoothing = targets, reduction, float(label_smoothing)
        self.check_targets = check_targets      # False: the caller has checked them (on the host, before
                                                # they moved, or in a read of its own: no sync here)

    def forward(self, logits):
        xp = get_array_module(logits)
        t = self.targets
        check_float(logits, "cross_entropy", "logits")
        if logits.ndim != 2:
            raise ValueError(f"cross_entropy expects logits of shape (N, classes), got {tuple(logits.shape)}")
        if t.ndim != 1 or t.shape[0] != logits.shape[0]:
            raise ValueError(f"cross_entropy: targets of shape {tuple(t.shape)} do not match logits of "
                             f"shape {tuple(logits.shape)}; give one class index per row")
        if t.dtype.kind not in "iu":
            raise TypeError(f"cross_entropy: targets must be integer class indices, got dtype {t.dtype}")
        N, K = logits.shape
        if self.check_targets:
            check_targets(t, K)
        shifted = logits - logits.max(axis=1, keepdims=True)
        logsumexp = xp.log(xp.exp(shifted).sum(axis=1))
        rows = xp.arange(N)
        losses = logsumexp - shifted[rows, t]                                   # (N,)
        if self.smoothing:                       # −log p_k = logsumexp − shifted_k, averaged over k
            uniform = logsumexp - shifted.mean(axis=1)
            losses = (1 - self.smoothing) * losses + self.smoothing * uniform
        self.softmax = xp.exp(shifted - logsumexp[:, None])                    # (N, K)
        if self.reduction == "none":
            return losses
        return losses.mean() if self.reduction == "mean" else losses.sum()

    def backward(self, dout):
        N = self.softmax.shape[0]
        ### BEGIN SOLUTION cross_entropy_backward
        dlogits = self.softmax.copy()
        dlogits[get_array_module(dlogits).arange(N), self.targets] -= 1 - self.smoothing
        if self.smoothing:                       # dz = softmax − ((1 − ε)·onehot + ε/K)
            dlogits -= self.smoothing / dlogits.shape[1]
        if self.reduction == "none":
            return dlogits * dout[:, None]
        scale = dout / N if self.reduction == "mean" else dout
        return dlogits * scale
        ### END SOLUTION cross_entropy_backward
