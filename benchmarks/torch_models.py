"""The PyTorch side of the network benchmarks: ResNet-18 (CIFAR stem), ResNet-50 and the paper's CIFAR
ResNets (20, 56, 110 layers) in plain torch.nn.

torchvision is not a dependency, so the networks are written here with the same layer shapes as
``tinyresnet.models.resnet18(num_classes=10, stem="cifar")``, ``tinyresnet.models.resnet50()`` and
``tinyresnet.models.resnet20()`` (etc.; type-A shortcuts, see ``ShortcutA``):
convolutions without bias, BatchNorm after each, projection shortcuts (1×1 conv + BN) where the shape
changes, the stride on the 3×3 convolution of a bottleneck. Weights are PyTorch's default
initialisation; the timings do not depend on the values.
"""

import torch
from torch import nn


def conv_bn(c_in, c_out, k, stride=1):
    """A k×k convolution ("same" padding, no bias) and its BatchNorm, as a list of two modules."""
    return [nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False), nn.BatchNorm2d(c_out)]


def shortcut(c_in, c_out, stride):
    """Identity where the shape is kept, else a strided 1×1 projection with BN (option B)."""
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(*conv_bn(c_in, c_out, 1, stride))


class Basic(nn.Module):
    """relu(bn(conv3×3(relu(bn(conv3×3(x))))) + shortcut(x))"""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.residual = nn.Sequential(*conv_bn(c_in, c_out, 3, stride), nn.ReLU(inplace=True),
                                      *conv_bn(c_out, c_out, 3))
        self.shortcut = shortcut(c_in, c_out, stride)

    def forward(self, x):
        return torch.relu(self.residual(x) + self.shortcut(x))


class Bottle(nn.Module):
    """relu(1×1 expand(3×3 (strided)(1×1 reduce(x))) + shortcut(x)), BN + ReLU inside."""

    def __init__(self, c_in, width, stride):
        super().__init__()
        c_out = 4 * width
        self.residual = nn.Sequential(*conv_bn(c_in, width, 1), nn.ReLU(inplace=True),
                                      *conv_bn(width, width, 3, stride), nn.ReLU(inplace=True),
                                      *conv_bn(width, c_out, 1))
        self.shortcut = shortcut(c_in, c_out, stride)

    def forward(self, x):
        return torch.relu(self.residual(x) + self.shortcut(x))


def _resnet(block, expansion, blocks_per_stage, stem, num_classes):
    layers, c_in = list(stem), 64
    for stage, n in enumerate(blocks_per_stage):
        width = 64 * 2 ** stage
        for i in range(n):
            layers.append(block(c_in, width, 2 if (i == 0 and stage > 0) else 1))
            c_in = width * expansion
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    return nn.Sequential(*layers)


def resnet18_cifar(num_classes=10):
    """3×3 stride-1 stem without max-pool, BasicBlocks [2, 2, 2, 2]."""
    stem = [*conv_bn(3, 64, 3), nn.ReLU(inplace=True)]
    return _resnet(Basic, 1, [2, 2, 2, 2], stem, num_classes)


def resnet50(num_classes=1000):
    """7×7 stride-2 stem with 3×3 stride-2 max-pool, Bottlenecks [3, 4, 6, 3]."""
    stem = [*conv_bn(3, 64, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
    return _resnet(Bottle, 4, [3, 4, 6, 3], stem, num_classes)


class ShortcutA(nn.Module):
    """The paper's option A, as ``tinyresnet.models.blocks.ShortcutA``: every second pixel, then zero channels
    half before and half after."""

    def __init__(self, c_in, c_out):
        super().__init__()
        self.before = (c_out - c_in) // 2
        self.after = c_out - c_in - self.before

    def forward(self, x):
        return nn.functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.before, self.after))


class BasicA(Basic):
    """A CIFAR BasicBlock: type-A shortcut where the shape changes."""

    def __init__(self, c_in, c_out, stride):
        super().__init__(c_in, c_out, stride)
        if stride != 1 or c_in != c_out:
            self.shortcut = ShortcutA(c_in, c_out)


def cifar_resnet(depth, num_classes=10):
    """The paper's CIFAR ResNet of depth 6n + 2: a 3×3 conv with 16 filters, 3 stages of n blocks on 16, 32 and
    64 channels, type-A shortcuts, global average pooling, a 10-way fc."""
    n = (depth - 2) // 6
    layers, c_in = [*conv_bn(3, 16, 3), nn.ReLU(inplace=True)], 16
    for stage, width in enumerate((16, 32, 64)):
        for i in range(n):
            layers.append(BasicA(c_in, width, 2 if (i == 0 and stage > 0) else 1))
            c_in = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes)]
    return nn.Sequential(*layers)


def count_flops(model, x):
    """Floating-point operations of one forward pass: 2 per multiply-accumulate of every conv and linear."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += 2 * output.numel() * k
        elif isinstance(module, nn.Linear):
            total += 2 * output.numel() * module.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return total
