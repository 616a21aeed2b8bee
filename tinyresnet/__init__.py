"""tinyresnet: a from-scratch deep-learning engine on NumPy and CuPy, built to teach ResNets."""

from . import functional
from . import models as models
from . import nn as nn
from .autograd import Function, Tensor, is_grad_enabled, no_grad, tensor
from .backend import get_array_module, gpu_available

__version__ = "0.1.0"

__all__ = ["Function", "Tensor", "functional", "get_array_module", "gpu_available",
           "is_grad_enabled", "no_grad", "tensor", "cat", "__version__"]


def cat(tensors, dim=0):
    """Concatenate tensors along ``dim`` (``torch.cat``)."""
    return functional.cat(tensors, dim)
