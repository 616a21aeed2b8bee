"""tinyresnet: a from-scratch deep-learning engine on NumPy and CuPy, built to teach ResNets."""

from . import data as data
from . import functional
from . import models as models
from . import nn as nn
from . import optim as optim
from .autograd import Function, Tensor, is_grad_enabled, no_grad, tensor
from .backend import get_array_module, gpu_available
from .functional import cat
from .nn.init import manual_seed
from .tiers import get_kernels, use_kernels

__version__ = "0.1.0"

__all__ = ["Function", "Tensor", "cat", "functional", "get_array_module", "get_kernels", "gpu_available",
           "is_grad_enabled", "manual_seed", "models", "nn", "no_grad", "optim", "data", "tensor", "use_kernels",
           "__version__"]
