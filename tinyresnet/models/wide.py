"""Wide ResNets for CIFAR (Zagoruyko & Komodakis 2016): fewer, wider layers.

WRN-d-k: a 3×3 conv with 16 filters, then three stages of n = (d − 4) / 6 pre-activation blocks
with 16k, 32k and 64k channels, a final BN + ReLU, global average pooling and an fc.
A pre-activation block normalises before each convolution:

    out = conv2(relu(bn2(conv1(relu(bn1(x)))))) + shortcut(x)

where the shortcut is a 1×1 convolution (no BN) when the shape changes, the identity otherwise.
WRN-28-10 (n = 4; 160/320/640 channels) has 36,479,194 parameters at 10 classes. Dropout
between the convolutions (an option in the paper) is not included.
"""

from .. import functional as F
from ..nn import AdaptiveAvgPool2d, BatchNorm2d, Linear, Module, ReLU, Sequential, init
from ..nn.layers import check_channels
from ..ops.checks import whole_number
from .blocks import conv1x1, conv3x3, he_init_
from .registry import build_with_weights, register_model


class WideBasicBlock(Module):
    """A pre-activation BasicBlock: BN and ReLU come before each 3×3 convolution.

    Shapes: (N, inplanes, H, W) -> (N, planes, ⌈H/stride⌉, ⌈W/stride⌉)
    """

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.bn1 = BatchNorm2d(inplanes)
        self.relu = ReLU()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn2 = BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        shape_changes = stride != 1 or inplanes != planes
        self.shortcut = conv1x1(inplanes, planes, stride) if shape_changes else None

    def forward(self, x):
        pre = self.relu(self.bn1(x))
        # where the shape changes, the projection sees the pre-activated input, as in the WRN code
        identity = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + identity


class WideResNet(Module):
    """WRN-``depth``-``widen_factor`` for 32×32 images (works on smaller and larger ones too).

    Keys: conv1, layer1..layer3 (blocks with bn1, conv1, bn2, conv2, shortcut), bn_final, fc.
    Shapes: (N, in_channels, H, W) -> (N, num_classes)
    """

    def __init__(self, depth=28, widen_factor=10, num_classes=10, in_channels=3):
        super().__init__()
        depth = whole_number(depth, "depth", "WideResNet")
        widen_factor = whole_number(widen_factor, "widen_factor", "WideResNet")
        num_classes = whole_number(num_classes, "num_classes", "WideResNet")
        in_channels = whole_number(in_channels, "in_channels", "WideResNet")
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"a Wide ResNet has 6n + 4 layers (16, 22, 28, 40, ...), got depth={depth}")
        n = (depth - 4) // 6
        widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.in_channels, self.num_classes = in_channels, num_classes
        self.conv1 = conv3x3(in_channels, 16)
        inplanes = 16
        for i, planes in enumerate(widths):
            stage = Sequential()
            for j in range(n):
                stage.append(WideBasicBlock(inplanes, planes, stride=2 if i > 0 and j == 0 else 1))
                inplanes = planes
            setattr(self, f"layer{i + 1}", stage)
        self.bn_final = BatchNorm2d(inplanes)
        self.relu = ReLU()
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        self.fc = Linear(inplanes, num_classes)

        he_init_(self)
        init.zeros_(self.fc.bias)

    def forward(self, x):
        check_channels(x, self.in_channels, type(self).__name__)
        x = self.conv1(x)
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.relu(self.bn_final(x))
        return self.fc(F.flatten(self.avgpool(x), 1))


@register_model(default_input=(3, 32, 32))
def wide_resnet28_10(weights=None, progress=True, *, num_classes=10, in_channels=3):
    """WRN-28-10 for CIFAR: 3 stages of 4 pre-activation blocks, 160/320/640 channels;
    36,479,194 parameters at 10 classes."""
    return build_with_weights("wide_resnet28_10", weights, WideResNet, 28, 10, num_classes=num_classes,
                              in_channels=in_channels)
