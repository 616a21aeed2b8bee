"""DenseNet-121 (Huang et al. 2017): concatenation instead of addition.

Inside a dense block every layer sees the concatenation of the block's input and of all the
earlier layers' outputs, and adds ``growth_rate`` new channels of its own:

    x_k = H_k([x_0, x_1, ..., x_{k-1}]),   H_k = BN-ReLU-conv1×1 (4·growth) - BN-ReLU-conv3×3 (growth)

Between blocks a transition (BN-ReLU-conv1×1 halving the channels, 2×2 average pool) shrinks the
maps. Names follow torchvision (features.conv0, features.denseblock1.denselayer1.norm1, ...,
features.norm5, classifier), so its state_dict keys match. DenseNet-121 has 7,978,856 parameters
at 1,000 classes.
"""

from collections import OrderedDict

from .. import functional as F
from ..nn import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Identity, Linear, MaxPool2d, Module, ReLU, Sequential, init
from ..nn.layers import check_channels
from ..ops.checks import whole_number
from .blocks import he_init_
from .registry import build_with_weights, register_model


class DenseLayer(Module):
    """BN-ReLU-conv1×1 to bn_size·growth_rate channels, then BN-ReLU-conv3×3 to growth_rate.

    Shapes: list of (N, C_i, H, W) -> (N, growth_rate, H, W)
    """

    def __init__(self, in_channels, growth_rate, bn_size=4):
        super().__init__()
        self.norm1 = BatchNorm2d(in_channels)
        self.relu1 = ReLU()
        self.conv1 = Conv2d(in_channels, bn_size * growth_rate, 1, bias=False)
        self.norm2 = BatchNorm2d(bn_size * growth_rate)
        self.relu2 = ReLU()
        self.conv2 = Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)

    def forward(self, features):
        x = F.cat(features, dim=1)                    # (N, Σ C_i, H, W): everything so far
        x = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(x)))


class DenseBlock(Module):
    """``num_layers`` DenseLayers (denselayer1, denselayer2, ...); returns all features concatenated.

    Shapes: (N, C, H, W) -> (N, C + num_layers·growth_rate, H, W)
    """

    def __init__(self, num_layers, in_channels, growth_rate, bn_size=4):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size))

    def forward(self, x):
        features = [x]
        for layer in self.children():
            features.append(layer(features))
        return F.cat(features, dim=1)


class Transition(Module):
    """BN-ReLU-conv1×1 to ``out_channels``, then a 2×2 average pool with stride 2.

    As in torchvision, except that a map already 1 pixel high (or wide) is not pooled along that
    axis, so the net also runs on 8×8 images (torchvision would fail there).
    Shapes: (N, C, H, W) -> (N, out_channels, ⌊H/2⌋ or 1, ⌊W/2⌋ or 1)
    """

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.norm = BatchNorm2d(in_channels)
        self.relu = ReLU()
        self.conv = Conv2d(in_channels, out_channels, 1, bias=False)

    def forward(self, x):
        x = self.conv(self.relu(self.norm(x)))
        kernel = (min(2, x.shape[2]), min(2, x.shape[3]))
        return F.avg_pool2d(x, kernel, kernel)


class DenseNet(Module):
    """A DenseNet: stem, dense blocks with transitions between them, BN, ReLU, pool, classifier.

    Shapes: (N, in_channels, H, W) -> (N, num_classes)
    """

    def __init__(self, growth_rate=32, block_config=(6, 12, 24, 16), num_init_features=64, bn_size=4,
                 num_classes=1000, in_channels=3, stem="imagenet"):
        super().__init__()
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"unknown stem {stem!r}: use 'imagenet' (7×7 stride-2 conv + max-pool) or "
                             f"'cifar' (3×3 stride-1 conv, no max-pool)")
        growth_rate = whole_number(growth_rate, "growth_rate", "DenseNet")
        num_init_features = whole_number(num_init_features, "num_init_features", "DenseNet")
        bn_size = whole_number(bn_size, "bn_size", "DenseNet")
        num_classes = whole_number(num_classes, "num_classes", "DenseNet")
        in_channels = whole_number(in_channels, "in_channels", "DenseNet")
        block_config = [whole_number(n, f"block_config[{i}]", "DenseNet") for i, n in enumerate(block_config)]
        self.in_channels, self.num_classes = in_channels, num_classes
        if stem == "imagenet":
            conv0 = Conv2d(in_channels, num_init_features, 7, stride=2, padding=3, bias=False)
            pool0 = MaxPool2d(3, stride=2, padding=1)
        else:
            conv0, pool0 = Conv2d(in_channels, num_init_features, 3, padding=1, bias=False), Identity()
        self.features = Sequential(OrderedDict(
            [("conv0", conv0), ("norm0", BatchNorm2d(num_init_features)), ("relu0", ReLU()), ("pool0", pool0)]))
        channels = num_init_features
        for i, num_layers in enumerate(block_config):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(num_layers, channels, growth_rate, bn_size))
            channels += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f"transition{i + 1}", Transition(channels, channels // 2))
                channels //= 2
        self.features.add_module("norm5", BatchNorm2d(channels))
        self.relu = ReLU()
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        self.classifier = Linear(channels, num_classes)

        he_init_(self, mode="fan_in")
        init.zeros_(self.classifier.bias)

    def forward(self, x):
        check_channels(x, self.in_channels, type(self).__name__)
        x = self.relu(self.features(x))
        return self.classifier(F.flatten(self.avgpool(x), 1))


@register_model()
def densenet121(weights=None, progress=True, *, num_classes=1000, in_channels=3, **kwargs):
    """DenseNet-121: growth rate 32, blocks of 6, 12, 24, 16 layers; 7,978,856 parameters at 1,000 classes.

    ``stem="cifar"`` swaps the 7×7 stride-2 stem and max-pool for a 3×3 stride-1 conv.
    """
    return build_with_weights("densenet121", weights, DenseNet, 32, (6, 12, 24, 16), 64, 4, num_classes=num_classes,
                              in_channels=in_channels, **kwargs)
