"""Loss modules named and parameterised as in ``torch.nn``, each a thin Module over ``tinyresnet.functional``."""

from .. import functional as F
from .module import Module

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction, loss):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{loss}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return reduction


class CrossEntropyLoss(Module):
    """``loss(logits, targets)``: cross-entropy of logits (N, K) against integer class indices (N,),
    as ``torch.nn.CrossEntropyLoss`` (see ``functional.cross_entropy``).

    ``reduction``: "mean" (the default), "sum" or "none" (one loss per sample). ``label_smoothing``
    ε in [0, 1]: the target becomes (1 − ε)·onehot + ε/K, so the loss is (1 − ε)·CE + ε · mean over
    the classes of −log p. Class weights, ``ignore_index`` and probability targets are not supported.
    """

    def __init__(self, reduction="mean", label_smoothing=0.0):
        super().__init__()
        self.reduction = _check_reduction(reduction, "CrossEntropyLoss")
        if isinstance(label_smoothing, bool) or not 0.0 <= float(label_smoothing) <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be between 0.0 and 1.0, got "
                             f"{label_smoothing!r}; 0.1 is a usual value, 0.0 turns it off")
        self.label_smoothing = float(label_smoothing)

    def forward(self, input, target):
        return F.cross_entropy(input, target, reduction=self.reduction, label_smoothing=self.label_smoothing)

    def extra_repr(self):
        parts = [f"reduction='{self.reduction}'"] if self.reduction != "mean" else []
        if self.label_smoothing:
            parts.append(f"label_smoothing={self.label_smoothing}")
        return ", ".join(parts)


class MSELoss(Module):
    """``loss(input, target)``: the mean squared error, as ``torch.nn.MSELoss`` (see ``functional.mse_loss``).

    ``reduction``: "mean" (the default), "sum" or "none" (the squared error of each element).
    """

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = _check_reduction(reduction, "MSELoss")

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)

    def extra_repr(self):
        return f"reduction='{self.reduction}'" if self.reduction != "mean" else ""
