"""Functional ops with ``torch.nn.functional`` signatures, over the ``Function`` classes.

The ops that have a fast kernel run through ``implementation``: the plain op of ``tinyresnet.ops``
or its fast kernel of ``tinyresnet.kernels``, as ``tinyresnet.use_kernels`` has chosen.
"""

from .autograd import Tensor
from .backend import get_array_module
from .ops.activation import LogSoftmaxFunction, ReLUFunction, SoftmaxFunction
from .ops.basic import AddFunction
from .ops.checks import pair, whole_number
from .ops.conv import Conv1x1Function, Conv2dFunction
from .ops.linear import CrossEntropyFunction, LinearFunction
from .ops.norm import BatchNorm2dFunction
from .ops.pool import AdaptiveAvgPool2dFunction, AvgPool2dFunction, MaxPool2dFunction
from .ops.shape import ConcatFunction, PadFunction
from .tiers import implementation


def _args(*tensors):
    """The non-None tensors, for Functions whose last inputs (bias) are optional."""
    return [t for t in tensors if t is not None]


def _conv_arguments(stride, padding, groups):
    """stride ≥ 1 and padding ≥ 0 as pairs of ints, groups a whole number ≥ 1 (NumPy integers welcome)."""
    return (pair(stride, "stride", 1, "conv2d"), pair(padding, "padding", 0, "conv2d"),
            whole_number(groups, "groups", "conv2d"))


def _pool_arguments(kernel_size, stride, padding, op):
    """The kernel and stride (the kernel's when None) as pairs ≥ 1, the padding as a pair ≥ 0."""
    kernel = pair(kernel_size, "kernel_size", 1, op)
    stride = kernel if stride is None else pair(stride, "stride", 1, op)
    return kernel, stride, pair(padding, "padding", 0, op)


def conv2d(input, weight, bias=None, stride=1, padding=0, groups=1):
    """2-D convolution. A 1×1 kernel with no padding and one group takes the single-matmul path."""
    stride, padding, groups = _conv_arguments(stride, padding, groups)
    w = weight.data if isinstance(weight, Tensor) else weight
    if tuple(w.shape[2:]) == (1, 1) and padding == (0, 0) and groups == 1:
        return implementation(Conv1x1Function)(stride)(*_args(input, weight, bias))
    return implementation(Conv2dFunction)(stride, padding, groups)(*_args(input, weight, bias))


def conv2d_im2col(input, weight, bias=None, stride=1, padding=0, groups=1):
    """conv2d always by im2col, even for 1×1 kernels (a reference for the 1×1 path)."""
    conv = implementation(Conv2dFunction)
    return conv(*_conv_arguments(stride, padding, groups))(*_args(input, weight, bias))


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch norm over (N, H, W). ``running_mean``/``running_var`` are arrays updated in place."""
    rm = running_mean.data if isinstance(running_mean, Tensor) else running_mean
    rv = running_var.data if isinstance(running_var, Tensor) else running_var
    fn = implementation(BatchNorm2dFunction)(rm, rv, training, momentum, eps)
    if weight is None and bias is not None:
        raise ValueError("batch_norm: a bias without a weight is not supported; pass both or neither")
    return fn(*_args(input, weight, bias))


def relu(input):
    return implementation(ReLUFunction)()(input)


def max_pool2d(input, kernel_size, stride=None, padding=0):
    return implementation(MaxPool2dFunction)(*_pool_arguments(kernel_size, stride, padding, "max_pool2d"))(input)


def avg_pool2d(input, kernel_size, stride=None, padding=0):
    return AvgPool2dFunction(*_pool_arguments(kernel_size, stride, padding, "avg_pool2d"))(input)


def adaptive_avg_pool2d(input, output_size):
    return AdaptiveAvgPool2dFunction(pair(output_size, "output_size", 1, "adaptive_avg_pool2d"))(input)


def linear(input, weight, bias=None):
    return LinearFunction()(*_args(input, weight, bias))


def cross_entropy(input, target, reduction="mean"):
    """Mean cross-entropy of logits ``input`` (N, K) against integer class indices ``target`` (N,)."""
    t = target.data if isinstance(target, Tensor) else target
    xp = get_array_module(input.data if isinstance(input, Tensor) else input)
    return CrossEntropyFunction(xp.asarray(t), reduction)(input)


def softmax(input, dim=-1):
    return SoftmaxFunction(dim)(input)


def log_softmax(input, dim=-1):
    return LogSoftmaxFunction(dim)(input)


def add(input, other):
    """The residual addition ``input + other`` (broadcasting), as a function."""
    return AddFunction()(input, other)


def cat(tensors, dim=0):
    """Concatenate tensors along ``dim`` (``torch.cat``)."""
    return ConcatFunction(dim)(*tensors)


def pad(input, pad, value=0.0):
    """Constant padding, pairs from the last dim first (``torch.nn.functional.pad``)."""
    return PadFunction(pad, value)(input)


def pad_channels(input, before, after):
    """Add zero channels to an (N, C, H, W) tensor: the option-A shortcut's channel growth."""
    return PadFunction((0, 0, 0, 0, before, after))(input)


def flatten(input, start_dim=1, end_dim=-1):
    """Merge dims ``start_dim..end_dim`` (by default all but the batch dim), as ``torch.flatten``."""
    return (input if isinstance(input, Tensor) else Tensor(input)).flatten(start_dim, end_dim)
