"""The ResNet family and its relatives, with builders and state_dict keys as in torchvision.

    >>> from tinyresnet import models
    >>> model = models.get_model("resnet18", num_classes=10, in_channels=1)
    >>> model = models.resnet18(weights="resnet18.npz")     # torchvision's signature; weights from a .npz file
    >>> models.list_models()
"""

from .blocks import SHORTCUT_TYPES, BasicBlock, Bottleneck, PlainBlock, ShortcutA, conv1x1, conv3x3, make_shortcut
from .cifar import (
                    cifar_resnet,
                    plain20,
                    plain32,
                    plain44,
                    plain56,
                    plain110,
                    resnet20,
                    resnet32,
                    resnet44,
                    resnet56,
                    resnet110,
)
from .densenet import DenseBlock, DenseLayer, DenseNet, Transition, densenet121
from .registry import build_with_weights, check_weights, get_builder, get_model, list_models, register_model
from .resnet import ResNet, resnet18, resnet34, resnet50, resnet101, resnet152, resnext50_32x4d
from .wide import WideBasicBlock, WideResNet, wide_resnet28_10

__all__ = ["SHORTCUT_TYPES", "BasicBlock", "Bottleneck", "DenseBlock", "DenseLayer", "DenseNet", "PlainBlock", "ResNet",
           "ShortcutA", "Transition", "WideBasicBlock", "WideResNet", "build_with_weights", "check_weights",
           "cifar_resnet", "conv1x1", "conv3x3", "densenet121", "get_builder", "get_model", "list_models",
           "make_shortcut", "plain20", "plain32", "plain44", "plain56", "plain110", "register_model", "resnet18",
           "resnet20", "resnet32", "resnet34", "resnet44", "resnet50", "resnet56", "resnet101", "resnet110",
           "resnet152", "resnext50_32x4d", "wide_resnet28_10"]
