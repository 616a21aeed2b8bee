"""Layers named and parameterised as in ``torch.nn``, each a thin Module over ``tinyresnet.functional``."""

from collections import OrderedDict

import numpy as np

from .. import functional as F
from ..autograd import Tensor
from ..ops.checks import pair, whole_number
from . import init
from .module import Module, Parameter


def check_channels(x, expected, what, argument="in_channels"):
    """Fail early, naming ``what`` (a layer or model), when an image batch does not have ``expected`` channels."""
    shape = tuple(x.shape)
    if len(shape) != 4:
        hint = "; add a batch axis with x.reshape(1, *x.shape)" if len(shape) == 3 else ""
        raise ValueError(f"{what} expects a 4-D input (N, C, H, W), got shape {shape}{hint}")
    if shape[1] != expected:
        raise ValueError(f"{what} was built with {argument}={expected} but the input has {shape[1]} channels "
                         f"(shape {shape}); build it with {argument}={shape[1]} or give it {expected}-channel input")


class Identity(Module):
    """Returns its input unchanged (a stand-in for a layer that is switched off)."""

    def forward(self, x):
        return x


class Conv2d(Module):
    """2-D convolution with a learnable kernel ``weight`` (OC, C/groups, KH, KW) and optional ``bias`` (OC,).

    Initialised as torch does: weight and bias uniform on ±1/√fan_in, fan_in = C/groups · KH · KW.
    ``dilation`` spaces the kernel's taps; ``padding_mode`` "zeros" (the default), "reflect", "replicate"
    or "circular" says what the padding holds (the non-zero modes pad with ``F.pad`` first).
    Shapes: (N, C, H, W) -> (N, OC, OH, OW), OH = ⌊(H + 2·padding − dilation·(KH − 1) − 1) / stride⌋ + 1
    """

    PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros"):
        super().__init__()
        if padding_mode not in self.PADDING_MODES:
            raise ValueError(f"Conv2d: padding_mode must be one of {self.PADDING_MODES}, got {padding_mode!r}")
        in_channels = whole_number(in_channels, "in_channels", "Conv2d")
        out_channels = whole_number(out_channels, "out_channels", "Conv2d")
        groups = whole_number(groups, "groups", "Conv2d")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2d: groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, "kernel_size", 1, "Conv2d")
        self.stride, self.padding = pair(stride, "stride", 1, "Conv2d"), pair(padding, "padding", 0, "Conv2d")
        self.dilation, self.padding_mode = pair(dilation, "dilation", 1, "Conv2d"), padding_mode
        kh, kw = self.kernel_size
        self.weight = Parameter(np.empty((out_channels, in_channels // groups, kh, kw), dtype=np.float32))
        self.bias = Parameter(np.empty(out_channels, dtype=np.float32)) if bias else None
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, x):
        check_channels(x, self.in_channels, f"Conv2d({self.in_channels}, {self.out_channels})")
        if self.padding_mode != "zeros" and self.padding != (0, 0):
            ph, pw = self.padding
            x = F.pad(x, (pw, pw, ph, ph), mode=self.padding_mode)
            return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def macs(self, inputs, output):
        """N·OC·OH·OW output values, each a sum of (C/groups)·KH·KW products."""
        kh, kw = self.kernel_size
        return int(np.prod(output.shape)) * (self.in_channels // self.groups) * kh * kw

    def extra_repr(self):
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return text


class BatchNorm2d(Module):
    """Batch normalisation per channel: learnable ``weight`` γ = 1 and ``bias`` β = 0; buffers
    ``running_mean`` = 0, ``running_var`` = 1 (updated in place in training mode, used in eval mode)
    and ``num_batches_tracked`` (counts training batches, kept so that state_dict keys match
    torchvision's exactly).

    Shapes: (N, C, H, W) -> (N, C, H, W)
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        num_features = whole_number(num_features, "num_features", "BatchNorm2d")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(np.ones(num_features, dtype=np.float32))
        self.bias = Parameter(np.zeros(num_features, dtype=np.float32))
        self.register_buffer("running_mean", np.zeros(num_features, dtype=np.float32))
        self.register_buffer("running_var", np.ones(num_features, dtype=np.float32))
        self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))

    def forward(self, x):
        check_channels(x, self.num_features, f"BatchNorm2d({self.num_features})", "num_features")
        if self.training:
            self.num_batches_tracked += 1       # a 0-d array, incremented in place
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            training=self.training, momentum=self.momentum, eps=self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class ReLU(Module):
    """max(x, 0), element-wise."""

    def forward(self, x):
        return F.relu(x)


class _Pool2d(Module):
    """A sliding-window pool's settings: kernel_size, stride (defaults to kernel_size), padding."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        name = type(self).__name__                          # checked now, kept as given (for the repr)
        pair(kernel_size, "kernel_size", 1, name)
        pair(padding, "padding", 0, name)
        if stride is not None:
            pair(stride, "stride", 1, name)
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(_Pool2d):
    """Max over each kernel_size window (stride defaults to kernel_size); padding counts as −∞.
    ``dilation`` spaces the window's taps, ``ceil_mode`` rounds the output size up (``F.max_pool2d``)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False):
        super().__init__(kernel_size, stride, padding)
        pair(dilation, "dilation", 1, "MaxPool2d")
        if return_indices:
            raise NotImplementedError("MaxPool2d: return_indices=True is not supported")
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)

    def extra_repr(self):
        text = super().extra_repr()
        if self.dilation not in (1, (1, 1)):
            text += f", dilation={self.dilation}"
        return text + (", ceil_mode=True" if self.ceil_mode else "")


class AvgPool2d(_Pool2d):
    """Mean over each kernel_size window (stride defaults to kernel_size); zero padding counts unless
    ``count_include_pad=False``; ``ceil_mode`` rounds the output size up (``F.avg_pool2d``)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__(kernel_size, stride, padding)
        self.ceil_mode, self.count_include_pad, self.divisor_override = ceil_mode, count_include_pad, divisor_override

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad,
                            self.divisor_override)

    def extra_repr(self):
        text = super().extra_repr() + (", ceil_mode=True" if self.ceil_mode else "")
        if not self.count_include_pad:
            text += ", count_include_pad=False"
        return text + (f", divisor_override={self.divisor_override}" if self.divisor_override is not None else "")


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed ``output_size``; (1, 1) is global average pooling."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = pair(output_size, "output_size", 1, "AdaptiveAvgPool2d")

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class Linear(Module):
    """y = x · Wᵀ + b with ``weight`` (out_features, in_features) and ``bias`` (out_features,).

    Initialised as torch does: weight and bias uniform on ±1/√in_features.
    Shapes: (N, in_features) -> (N, out_features)
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        in_features = whole_number(in_features, "in_features", "Linear")
        out_features = whole_number(out_features, "out_features", "Linear")
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=np.float32))
        self.bias = Parameter(np.empty(out_features, dtype=np.float32)) if bias else None
        init.default_layer_init_(self.weight, self.bias)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def macs(self, inputs, output):
        """in_features products per output value: N·in·out."""
        return int(np.prod(output.shape)) * self.in_features

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Flatten(Module):
    """Merge dims start_dim..end_dim (by default every dim but the batch)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(x)      # F.flatten needs a Tensor (an ndarray's differs)
        return F.flatten(x, self.start_dim, self.end_dim)


class Sequential(Module):
    """Run modules one after the other. Children are named "0", "1", ... or by the keys of an
    OrderedDict; ``seq[i]`` and ``seq[a:b]`` index them, ``len(seq)`` counts them."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, module in modules[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(modules):
                self.add_module(str(i), module)

    def forward(self, x):
        for module in self._modules.values():
            x = module(x)
        return x

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        if not -len(items) <= index < len(items):
            raise IndexError(f"index {index} is out of range for a Sequential of {len(items)} modules")
        return items[index][1]
