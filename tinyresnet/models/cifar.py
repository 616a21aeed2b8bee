"""The CIFAR-10 networks of the ResNet paper (He et al. 2015, section 4.2): 6n + 2 layers.

A 3×3 conv with 16 filters, then three stages of n BasicBlocks with 16, 32 and 64 channels on
32×32, 16×16 and 8×8 maps, global average pooling and a 10-way fc. Shortcuts are type A
(subsample + zero channels), so the residual nets have exactly the parameters of their plain
twins. n = 3, 5, 7, 9, 18 gives 20, 32, 44, 56 and 110 layers.
"""

from ..ops.checks import whole_number
from .blocks import BasicBlock, PlainBlock
from .registry import build_with_weights, register_model
from .resnet import ResNet

CIFAR_WIDTHS = (16, 32, 64)


def cifar_resnet(depth, num_classes=10, in_channels=3, plain=False, **kwargs):
    """A CIFAR ResNet (or plain net) of ``depth`` = 6n + 2 layers.

    Keyword arguments go to ``ResNet`` (shortcut="A" by default; "B" and "C" for the paper's comparison).
    """
    depth = whole_number(depth, "depth", "cifar_resnet")
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"a CIFAR ResNet has 6n + 2 layers (20, 32, 44, 56, 110, ...), got depth={depth}")
    n = (depth - 2) // 6
    kwargs.setdefault("shortcut", "A")
    return ResNet(PlainBlock if plain else BasicBlock, [n, n, n], num_classes=num_classes, in_channels=in_channels,
                  stem="cifar", widths=CIFAR_WIDTHS, **kwargs)


@register_model(default_input=(3, 32, 32))
def resnet20(weights=None, progress=True, *, num_classes=10, in_channels=3, **kwargs):
    """ResNet-20 for CIFAR: 3 stages of 3 BasicBlocks, type-A shortcuts; 269,722 parameters at 10 classes."""
    return build_with_weights("resnet20", weights, cifar_resnet, 20, num_classes, in_channels, **kwargs)


@register_model(default_input=(3, 32, 32))
def plain20(weights=None, progress=True, *, num_classes=10, in_channels=3, **kwargs):
    """Plain-20 for CIFAR: ResNet-20 without its skip connections; 269,722 parameters at 10 classes."""
    return build_with_weights("plain20", weights, cifar_resnet, 20, num_classes, in_channels, plain=True, **kwargs)


@register_model(default_input=(3, 32, 32))
def resnet32(weights=None, progress=True, *, num_classes=10, in_channels=3, **kwargs):
    """ResNet-32 for CIFAR: 3 stages of 5 BasicBlocks, type-A shortcuts; 464,154 parameters at 10 classes."""
    return build_with_weights("resnet32", weights, cifar_resnet, 32, num_classes, in_channels, **kwargs)


@register_model(default_input=(3, 32, 32))
def plain32(weights=None, progress=True, *, num_classes=10, in_channels=3, **kwargs):
    """Plain-32 for CIFAR: ResNet-32 without its skip connections; 464,154 parameters at 10 classes."""
    return build_with_weights("plain32", weights, cifar_resnet, 32, num_classes, in_channels, plain=True, **kwargs)


@register_model(default_input=(3, 32, 32))
def resnet44(weights=None, progress=True, *, num_classes=10, in_channels=3, **kwargs):
    """ResNet-44 for CIFAR: 3 stages of 7 BasicBlocks, type-A shortcuts; 658,586 parameters at 10 classes."""
    return build_with_weights("resnet44", weights, cifar_resnet, 44, num_classes, in_channels, **kwargs)


@register_model(default_input=(3, 32, 32))
def plain44(weights=None, progress=True, *, num_classes=10, in_channels=3, **kwargs):
    """Plain-44 for CIFAR: ResNet-44 without its skip connections; 658,586 parameters at 10 classes."""
    return build_with_weights("plain44", weights, cifar_resnet, 44, num_classes, in_channels, plain=True, **kwargs)


@register_model(default_input=(3, 32, 32))
def resnet56(weights=None, progress=True, *, num_classes=10, in_channels=3, **kwargs):
    """ResNet-56 for CIFAR: 3 stages of 9 BasicBlocks, type-A shortcuts; 853,018 parameters at 10 classes."""
    return build_with_weights("resnet56", weights, cifar_resnet, 56, num_classes, in_channels, **kwargs)


@register_model(default_input=(3, 32, 32))
def plain56(weights=None, progress=True, *, num_classes=10, in_channels=3, **kwargs):
    """Plain-56 for CIFAR: ResNet-56 without its skip connections; 853,018 parameters at 10 classes."""
    return build_with_weights("plain56", weights, cifar_resnet, 56, num_classes, in_channels, plain=True, **kwargs)


@register_model(default_input=(3, 32, 32))
def resnet110(weights=None, progress=True, *, num_classes=10, in_channels=3, **kwargs):
    """ResNet-110 for CIFAR: 3 stages of 18 BasicBlocks, type-A shortcuts; 1,727,962 parameters at 10 classes."""
    return build_with_weights("resnet110", weights, cifar_resnet, 110, num_classes, in_channels, **kwargs)


@register_model(default_input=(3, 32, 32))
def plain110(weights=None, progress=True, *, num_classes=10, in_channels=3, **kwargs):
    """Plain-110 for CIFAR: ResNet-110 without its skip connections; 1,727,962 parameters at 10 classes."""
    return build_with_weights("plain110", weights, cifar_resnet, 110, num_classes, in_channels, plain=True, **kwargs)
