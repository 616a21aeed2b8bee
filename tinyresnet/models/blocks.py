"""Residual blocks and their shortcuts, named as in ``torchvision.models.resnet``.

A block computes ``relu(F(x) + shortcut(x))``. Where F changes the shape (a stride of 2, or more
channels), the shortcut must change it too; the ResNet paper compares three ways:

    "A"  subsample by taking every stride-th pixel and pad the new channels with zeros: no
         parameters (the CIFAR ResNets of the paper)
    "B"  a 1×1 convolution + BN only where the shape changes, identity elsewhere (the default,
         torchvision's choice)
    "C"  a 1×1 convolution + BN on every block

The projection lives in ``block.downsample`` as ``Sequential(conv, bn)``, so its weights are named
``layer2.0.downsample.0.weight`` and ``layer2.0.downsample.1.running_mean``, as in torchvision.
"""

from .. import functional as F
from ..nn import BatchNorm2d, Conv2d, Module, ReLU, Sequential, init

SHORTCUT_TYPES = ("A", "B", "C")


def he_init_(model, mode="fan_out"):
    """He (Kaiming) normal initialisation for every Conv2d of ``model``; γ = 1, β = 0 for every BN.

    ``mode="fan_out"`` keeps the backward pass's gradient variance steady (torchvision's ResNets);
    ``"fan_in"`` the forward pass's activations (DenseNet).
    """
    for m in model.modules():
        if isinstance(m, Conv2d):
            init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
        elif isinstance(m, BatchNorm2d):
            init.ones_(m.weight)
            init.zeros_(m.bias)


def conv3x3(in_channels, out_channels, stride=1, groups=1):
    """A 3×3 convolution with padding 1 and no bias (BN follows it)."""
    return Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_channels, out_channels, stride=1):
    """A 1×1 convolution without bias: mixes channels pixel by pixel (every stride-th pixel)."""
    return Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


class ShortcutA(Module):
    """Option A: keep every ``stride``-th pixel, then add zero channels, half before and half after
    the input's (as the widely used CIFAR ResNet code does). No parameters.

    Shapes: (N, C, H, W) -> (N, out_channels, ⌈H/stride⌉, ⌈W/stride⌉)
    """

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"a type-A shortcut can only add channels, not go from {in_channels} to {out_channels}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.pad_before = (out_channels - in_channels) // 2
        self.pad_after = out_channels - in_channels - self.pad_before

    def forward(self, x):
        if self.stride != 1:
            x = x[:, :, ::self.stride, ::self.stride]          # (N, C, ⌈H/s⌉, ⌈W/s⌉)
        if self.pad_before or self.pad_after:
            x = F.pad_channels(x, self.pad_before, self.pad_after)
        return x

    def extra_repr(self):
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


def make_shortcut(shortcut, in_channels, out_channels, stride=1):
    """The ``downsample`` module of a block for shortcut type "A", "B" or "C" (None means identity)."""
    if shortcut not in SHORTCUT_TYPES:
        raise ValueError(f"unknown shortcut type {shortcut!r}: use 'A' (zero-padding), 'B' (projection where "
                         f"the shape changes) or 'C' (projection on every block)")
    shape_changes = stride != 1 or in_channels != out_channels
    if shortcut == "A":
        return ShortcutA(in_channels, out_channels, stride) if shape_changes else None
    if shortcut == "B" and not shape_changes:
        return None
    return Sequential(conv1x1(in_channels, out_channels, stride), BatchNorm2d(out_channels))


class BasicBlock(Module):
    """Two 3×3 convolutions with BN, plus the shortcut (ResNet-18/34 and the CIFAR ResNets).

    out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)); the stride is on conv1.
    Shapes: (N, inplanes, H, W) -> (N, planes, ⌈H/stride⌉, ⌈W/stride⌉)
    """

    expansion = 1
    has_skip = True

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(f"BasicBlock supports only groups=1 and base_width=64 (got groups={groups}, "
                             f"base_width={base_width}); grouped and wide blocks use Bottleneck")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = BatchNorm2d(planes)
        self.relu = ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        ### BEGIN SOLUTION basicblock_forward
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        out = out + identity
        return self.relu(out)
        ### END SOLUTION basicblock_forward


class PlainBlock(BasicBlock):
    """BasicBlock without its skip connection: out = relu(bn2(conv2(relu(bn1(conv1(x)))))).

    The "plain" networks of the paper's degradation experiments. It never has a downsample.
    """

    has_skip = False

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64):
        if downsample is not None:
            raise ValueError("a PlainBlock has no shortcut, so it takes no downsample module")
        super().__init__(inplanes, planes, stride, None, groups, base_width)

    def forward(self, x):
        ### BEGIN SOLUTION basicblock_forward:plainblock
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)))
        ### END SOLUTION basicblock_forward:plainblock


class Bottleneck(Module):
    """1×1 (reduce) → 3×3 (stride here, grouped for ResNeXt) → 1×1 (expand ×4), each with BN, plus
    the shortcut (ResNet-50/101/152, ResNeXt).

    width = planes · base_width/64 · groups channels inside; planes · 4 out.
    Shapes: (N, inplanes, H, W) -> (N, 4·planes, ⌈H/stride⌉, ⌈W/stride⌉)
    """

    expansion = 4
    has_skip = True

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = BatchNorm2d(planes * self.expansion)
        self.relu = ReLU()
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        ### BEGIN SOLUTION bottleneck_forward
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        out = out + identity
        return self.relu(out)
        ### END SOLUTION bottleneck_forward
