"""The ResNet family: one ``ResNet`` class and builders named as in ``torchvision.models``.

    stem ─ layer1 ─ layer2 ─ layer3 ─ layer4 ─ global average pool ─ fc

The stem is conv1 (7×7, stride 2) + bn1 + relu + maxpool (3×3, stride 2) for ImageNet, or
conv1 (3×3, stride 1) + bn1 + relu without a max-pool ("cifar") for 32×32 and smaller images.
Every stage after the first halves the height and width in its first block and widens it.
state_dict keys are torchvision's: conv1.weight, bn1.running_mean, layer1.0.conv1.weight,
layer2.0.downsample.0.weight, fc.bias, ... (and bn*.num_batches_tracked, as torchvision keeps).
"""

from .. import functional as F
from ..nn import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Identity, Linear, MaxPool2d, Module, ReLU, Sequential, init
from ..nn.layers import check_channels
from ..ops.checks import whole_number
from .blocks import BasicBlock, Bottleneck, he_init_, make_shortcut
from .registry import build_with_weights, register_model

STEMS = ("imagenet", "cifar")


class ResNet(Module):
    """A residual network of ``block``s, ``layers[i]`` of them in stage i+1.

    Args:
        block: BasicBlock, Bottleneck or PlainBlock.
        layers: blocks per stage, e.g. [2, 2, 2, 2] for ResNet-18, [3, 3, 3] for ResNet-20.
        num_classes, in_channels: the output classes and the input image channels.
        zero_init_residual: start the last BN γ of every residual block at 0, so each block starts
            as the identity (plain blocks are left alone).
        shortcut: "A", "B" (default) or "C"; see ``tinyresnet.models.blocks``.
        stem: "imagenet" or "cifar".
        widths: the stages' planes, (64, 128, 256, 512) for ImageNet, (16, 32, 64) for the CIFAR nets.
        groups, width_per_group: ResNeXt's cardinality and per-group width (Bottleneck only).
        replace_stride_with_dilation: one bool per stage after the first (torchvision's option, e.g.
            [False, True, True] for an output stride of 8, as segmentation nets use): a True stage keeps
            the resolution, its stride 2 becomes a growing dilation of the 3×3 convolutions. The stage's
            first block keeps the dilation the network had before it, the others get the new one
            (previous × 2), with padding = dilation; the shortcut is then a stride-1 projection.
            Bottleneck only, as in torchvision (BasicBlock raises NotImplementedError).

    Shapes: (N, in_channels, H, W) -> (N, num_classes)
    """

    def __init__(self, block, layers, num_classes=1000, in_channels=3, zero_init_residual=False, shortcut="B",
                 stem="imagenet", widths=(64, 128, 256, 512), groups=1, width_per_group=64,
                 replace_stride_with_dilation=None):
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"unknown stem {stem!r}: use 'imagenet' (7×7 stride-2 conv + max-pool) or "
                             f"'cifar' (3×3 stride-1 conv, no max-pool)")
        if len(layers) != len(widths):
            raise ValueError(f"layers {list(layers)} and widths {list(widths)} must have one entry per stage")
        num_classes = whole_number(num_classes, "num_classes", "ResNet")
        in_channels = whole_number(in_channels, "in_channels", "ResNet")
        groups = whole_number(groups, "groups", "ResNet")
        width_per_group = whole_number(width_per_group, "width_per_group", "ResNet")
        layers = [whole_number(n, f"layers[{i}] (blocks in stage {i + 1})", "ResNet") for i, n in enumerate(layers)]
        widths = [whole_number(w, f"widths[{i}]", "ResNet") for i, w in enumerate(widths)]
        dilate = [False] * (len(layers) - 1) if replace_stride_with_dilation is None else replace_stride_with_dilation
        if len(dilate) != len(layers) - 1:
            raise ValueError(f"replace_stride_with_dilation must be None or have one entry per stage after the "
                             f"first ({len(layers) - 1}), got {replace_stride_with_dilation!r}")
        self.dilation = 1                                  # grows by each stage's stride that dilation replaces
        self.in_channels, self.num_classes, self.shortcut = in_channels, num_classes, shortcut
        self.groups, self.base_width = groups, width_per_group
        self.inplanes = widths[0]
        if stem == "imagenet":
            self.conv1 = Conv2d(in_channels, self.inplanes, 7, stride=2, padding=3, bias=False)
        else:
            self.conv1 = Conv2d(in_channels, self.inplanes, 3, stride=1, padding=1, bias=False)
        self.bn1 = BatchNorm2d(self.inplanes)
        self.relu = ReLU()
        self.maxpool = MaxPool2d(3, stride=2, padding=1) if stem == "imagenet" else Identity()
        for i, (planes, blocks) in enumerate(zip(widths, layers)):
            setattr(self, f"layer{i + 1}", self._make_layer(block, planes, blocks, stride=1 if i == 0 else 2,
                                                            dilate=i > 0 and bool(dilate[i - 1])))
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        self.fc = Linear(widths[-1] * block.expansion, num_classes)
        self.num_stages = len(layers)

        he_init_(self)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock) and m.has_skip:
                    init.zeros_(m.bn2.weight)

    def _make_layer(self, block, planes, blocks, stride=1, dilate=False):
        """One stage: the first block may change the shape (and gets the shortcut that matches), the
        rest keep it. With ``dilate`` the stride becomes dilation: the first block keeps the network's
        dilation so far, the rest get it times ``stride``."""
        out_channels = planes * block.expansion
        previous_dilation = self.dilation
        if dilate:
            self.dilation, stride = self.dilation * stride, 1
        layer = Sequential()
        for i in range(blocks):
            s = stride if i == 0 else 1
            downsample = make_shortcut(self.shortcut, self.inplanes, out_channels, s) if block.has_skip else None
            b = block(self.inplanes, planes, s, downsample, self.groups, self.base_width)
            d = previous_dilation if i == 0 else self.dilation
            if d > 1:
                if not issubclass(block, Bottleneck):
                    raise NotImplementedError(f"replace_stride_with_dilation: dilation {d} > 1 needs Bottleneck "
                                              f"blocks, not {block.__name__} (as in torchvision)")
                b.conv2.dilation = b.conv2.padding = (d, d)  # the 3×3 conv: its taps d apart, the size kept
            layer.append(b)
            self.inplanes = out_channels
        return layer

    def forward(self, x):
        check_channels(x, self.in_channels, type(self).__name__)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        x = F.flatten(self.avgpool(x), 1)
        return self.fc(x)


def _resnet(name, weights, block, layers, num_classes, in_channels, **kwargs):
    """A ``ResNet``, with ``weights`` (None or a .npz path) loaded as builder ``name`` was asked to."""
    return build_with_weights(name, weights, ResNet, block, layers, num_classes=num_classes, in_channels=in_channels,
                              **kwargs)


@register_model()
def resnet18(weights=None, progress=True, *, num_classes=1000, in_channels=3, **kwargs):
    """ResNet-18: BasicBlocks [2, 2, 2, 2]; 11,689,512 parameters at 1,000 classes.

    Keyword arguments go to ``ResNet``: zero_init_residual=False, shortcut="B", stem="imagenet"
    (stem="cifar" gives the "CIFAR ResNet-18": a 3×3 stride-1 stem without max-pool).
    As in torchvision, ``weights`` comes first: None (random initialisation) or the path of a .npz
    state_dict (from ``model.save`` or ``tinyresnet convert-torch``), loaded into the new model; every
    builder takes it (see ``registry.check_weights``). ``progress`` is accepted and ignored: nothing
    is downloaded.
    """
    return _resnet("resnet18", weights, BasicBlock, [2, 2, 2, 2], num_classes, in_channels, **kwargs)


@register_model()
def resnet34(weights=None, progress=True, *, num_classes=1000, in_channels=3, **kwargs):
    """ResNet-34: BasicBlocks [3, 4, 6, 3]; 21,797,672 parameters at 1,000 classes."""
    return _resnet("resnet34", weights, BasicBlock, [3, 4, 6, 3], num_classes, in_channels, **kwargs)


@register_model()
def resnet50(weights=None, progress=True, *, num_classes=1000, in_channels=3, **kwargs):
    """ResNet-50: Bottlenecks [3, 4, 6, 3]; 25,557,032 parameters at 1,000 classes."""
    return _resnet("resnet50", weights, Bottleneck, [3, 4, 6, 3], num_classes, in_channels, **kwargs)


@register_model()
def resnet101(weights=None, progress=True, *, num_classes=1000, in_channels=3, **kwargs):
    """ResNet-101: Bottlenecks [3, 4, 23, 3]; 44,549,160 parameters at 1,000 classes."""
    return _resnet("resnet101", weights, Bottleneck, [3, 4, 23, 3], num_classes, in_channels, **kwargs)


@register_model()
def resnet152(weights=None, progress=True, *, num_classes=1000, in_channels=3, **kwargs):
    """ResNet-152: Bottlenecks [3, 8, 36, 3]; 60,192,808 parameters at 1,000 classes."""
    return _resnet("resnet152", weights, Bottleneck, [3, 8, 36, 3], num_classes, in_channels, **kwargs)


@register_model()
def resnext50_32x4d(weights=None, progress=True, *, num_classes=1000, in_channels=3, **kwargs):
    """ResNeXt-50 (32×4d): ResNet-50 whose 3×3 convs have 32 groups of 4 channels (per 64 planes);
    25,028,904 parameters at 1,000 classes."""
    return _resnet("resnext50_32x4d", weights, Bottleneck, [3, 4, 6, 3], num_classes, in_channels, groups=32,
                   width_per_group=4, **kwargs)
