"""Modules and layers named as in ``torch.nn``: ``Module``, ``Parameter``, ``Sequential``, ``Conv2d``, ...

Seed weight initialisation with ``tinyresnet.nn.init.manual_seed(seed)`` (also ``tinyresnet.nn.manual_seed``).
"""

from . import init, utils
from .init import manual_seed
from .layers import (
                     AdaptiveAvgPool2d,
                     AvgPool2d,
                     BatchNorm2d,
                     Conv2d,
                     Flatten,
                     Identity,
                     Linear,
                     MaxPool2d,
                     ReLU,
                     Sequential,
)
from .loss import CrossEntropyLoss, MSELoss
from .module import IncompatibleKeys, Module, Parameter, RemovableHandle, StateDictMismatch, load, save

__all__ = ["AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm2d", "Conv2d", "CrossEntropyLoss", "Flatten", "Identity",
           "IncompatibleKeys", "Linear", "MSELoss", "MaxPool2d", "Module", "Parameter", "ReLU", "RemovableHandle",
           "Sequential", "StateDictMismatch", "init", "load", "manual_seed", "save", "utils"]
