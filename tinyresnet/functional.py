"""Functional ops with ``torch.nn.functional`` signatures, over the ``Function`` classes.

The ops that have a fast kernel run through ``implementation``: the plain op of ``tinyresnet.ops``
or its fast kernel of ``tinyresnet.kernels``, as ``tinyresnet.use_kernels`` has chosen.
"""

import warnings

from .autograd import Tensor
from .backend import get_array_module
from .ops.activation import LogSoftmaxFunction, ReLUFunction, SoftmaxFunction
from .ops.basic import AddFunction
from .ops.checks import is_int, pair, whole_number
from .ops.conv import Conv1x1Function, Conv2dFunction
from .ops.linear import CrossEntropyFunction, LinearFunction
from .ops.norm import BatchNorm2dFunction
from .ops.pad import EdgePadFunction
from .ops.pool import AdaptiveAvgPool2dFunction, AvgPool2dFunction, MaxPool2dFunction
from .ops.shape import ConcatFunction, PadFunction
from .tiers import implementation


def _args(*tensors):
    """The non-None tensors, for Functions whose last inputs (bias) are optional."""
    return [t for t in tensors if t is not None]


def _conv_arguments(stride, padding, groups, dilation=1):
    """stride ≥ 1, padding ≥ 0 and dilation ≥ 1 as pairs of ints, groups a whole number ≥ 1 (NumPy integers
    welcome), in the order Conv2dFunction takes them."""
    return (pair(stride, "stride", 1, "conv2d"), pair(padding, "padding", 0, "conv2d"),
            whole_number(groups, "groups", "conv2d"), pair(dilation, "dilation", 1, "conv2d"))


def _pool_arguments(kernel_size, stride, padding, op):
    """The kernel and stride (the kernel's when None) as pairs ≥ 1, the padding as a pair ≥ 0."""
    kernel = pair(kernel_size, "kernel_size", 1, op)
    stride = kernel if stride is None else pair(stride, "stride", 1, op)
    return kernel, stride, pair(padding, "padding", 0, op)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution, arguments in ``torch.nn.functional.conv2d``'s order. A 1×1 kernel with no padding
    and one group takes the single-matmul path (a one-tap kernel has nothing to dilate)."""
    stride, padding, groups, dilation = _conv_arguments(stride, padding, groups, dilation)
    w = weight.data if isinstance(weight, Tensor) else weight
    if tuple(w.shape[2:]) == (1, 1) and padding == (0, 0) and groups == 1:
        return implementation(Conv1x1Function)(stride)(*_args(input, weight, bias))
    return implementation(Conv2dFunction)(stride, padding, groups, dilation)(*_args(input, weight, bias))


def conv2d_im2col(input, weight, bias=None, stride=1, padding=0, groups=1, dilation=1):
    """conv2d always by im2col, even for 1×1 kernels (a reference for the 1×1 path). Note the order:
    groups before dilation, as it always was here (conv2d has PyTorch's order)."""
    conv = implementation(Conv2dFunction)
    return conv(*_conv_arguments(stride, padding, groups, dilation))(*_args(input, weight, bias))


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


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max pooling with ``torch.nn.functional.max_pool2d``'s arguments (``return_indices`` is not supported)."""
    if return_indices:
        raise NotImplementedError("max_pool2d: return_indices=True is not supported")
    pool = implementation(MaxPool2dFunction)
    window = _pool_arguments(kernel_size, stride, padding, "max_pool2d")
    return pool(*window, pair(dilation, "dilation", 1, "max_pool2d"), bool(ceil_mode))(input)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Average pooling with ``torch.nn.functional.avg_pool2d``'s arguments."""
    if divisor_override is not None and (not is_int(divisor_override) or divisor_override == 0):
        raise ValueError(f"avg_pool2d: divisor_override must be a non-zero int or None, got {divisor_override!r}")
    window = _pool_arguments(kernel_size, stride, padding, "avg_pool2d")
    return AvgPool2dFunction(*window, bool(ceil_mode), bool(count_include_pad), divisor_override)(input)


def adaptive_avg_pool2d(input, output_size):
    return AdaptiveAvgPool2dFunction(pair(output_size, "output_size", 1, "adaptive_avg_pool2d"))(input)


def linear(input, weight, bias=None):
    return LinearFunction()(*_args(input, weight, bias))


def cross_entropy(input, target, reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits ``input`` (N, K) against integer class indices ``target`` (N,), as
    ``torch.nn.functional.cross_entropy``: the mean over the batch (``reduction="sum"``: the sum,
    ``"none"``: one loss per row). ``label_smoothing`` ε in [0, 1] mixes the one-hot target with the
    uniform one: (1 − ε)·CE + ε · mean over the classes of −log p."""
    import numpy as np

    from .ops.linear import check_targets

    t = target.data if isinstance(target, Tensor) else target
    logits = input.data if isinstance(input, Tensor) else input
    xp = get_array_module(logits)
    if xp is np or get_array_module(t) is not np:   # checked where they are (device targets: one sync)
        return CrossEntropyFunction(xp.asarray(t), reduction, label_smoothing)(input)
    # host targets for device logits: checked on the host before they move, so no sync on the device
    t = np.asarray(t)
    if t.dtype.kind in "iu" and t.ndim == 1 and getattr(logits, "ndim", None) == 2:
        check_targets(t, logits.shape[1])
        return CrossEntropyFunction(xp.asarray(t), reduction, label_smoothing, check_targets=False)(input)
    return CrossEntropyFunction(xp.asarray(t), reduction, label_smoothing)(input)   # forward says what is wrong


def one_hot(tensor, num_classes=-1):
    """Integer class indices (any shape) as one-hot rows, int64, as ``torch.nn.functional.one_hot``:
    shape ``tensor.shape + (num_classes,)``; ``num_classes=-1`` takes the largest index + 1. Not
    differentiable (integers); ``.float()`` the result to use it in arithmetic with gradients."""
    labels = tensor.data if isinstance(tensor, Tensor) else tensor
    xp = get_array_module(labels)
    labels = xp.asarray(labels)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"one_hot needs integer class indices, got dtype {labels.dtype}; "
                        f"convert them with .long()")
    if isinstance(num_classes, bool) or not hasattr(num_classes, "__index__") or (
            num_classes != -1 and num_classes < 0):
        raise ValueError(f"one_hot: num_classes must be a whole number >= 0 (or -1 to infer it), got {num_classes!r}")
    num_classes = int(num_classes)
    if num_classes == -1:
        if labels.size == 0:
            raise ValueError("one_hot cannot infer the number of classes from an empty tensor; pass num_classes=")
        num_classes = int(labels.max()) + 1
    if labels.size and int(labels.min()) < 0:
        raise ValueError(f"one_hot: class index {int(labels.min())} is negative; indices must be in "
                         f"[0, {num_classes - 1}]")
    if labels.size and int(labels.max()) >= num_classes:
        raise ValueError(f"one_hot: class index {int(labels.max())} does not fit num_classes={num_classes}; "
                         f"indices must be in [0, {num_classes - 1}]")
    return Tensor((labels[..., None] == xp.arange(num_classes)).astype(xp.int64))


def mse_loss(input, target, reduction="mean"):
    """Mean squared error ``(input − target)²``, averaged (``reduction="mean"``), summed (``"sum"``)
    or elementwise (``"none"``), as ``torch.nn.functional.mse_loss``; differentiable in both.
    ``target`` of another shape is broadcast, with a warning, as PyTorch does (usually a bug)."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"mse_loss: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    input = input if isinstance(input, Tensor) else Tensor(input)
    target = target if isinstance(target, Tensor) else Tensor(target)
    if input.shape != target.shape:
        warnings.warn(f"mse_loss: the target's shape {target.shape} differs from the input's {input.shape}; "
                      f"they are broadcast, which is seldom meant: reshape one to match", stacklevel=2)
    diff = input - target
    squared = diff * diff                    # differentiable through the ops: d/dx = 2(x − t)
    if reduction == "none":
        return squared
    return squared.mean() if reduction == "mean" else squared.sum()


def softmax(input, dim=-1):
    return SoftmaxFunction(dim)(input)


def log_softmax(input, dim=-1):
    return LogSoftmaxFunction(dim)(input)


def add(input, other):
    """The residual addition ``input + other`` (broadcasting), as a function."""
    return implementation(AddFunction)()(input, other)


def cat(tensors, dim=0):
    """Concatenate tensors along ``dim`` (``torch.cat``)."""
    return ConcatFunction(dim)(*tensors)


def pad(input, pad, mode="constant", value=None):
    """Pad with ``torch.nn.functional.pad``'s arguments: ``pad`` is pairs (before, after) from the last
    dim first, ``mode`` "constant" (``value``, 0 by default), "reflect", "replicate" or "circular"."""
    if not isinstance(pad, (tuple, list)) or not all(is_int(p) for p in pad):
        raise TypeError(f"pad: pad must be a tuple of ints, got {pad!r}")
    if mode == "constant":
        return PadFunction(pad, 0.0 if value is None else value)(input)
    if value is not None and value != 0:
        raise ValueError(f"pad: mode {mode!r} takes no value (got value={value!r}); it copies the input's edge")
    return EdgePadFunction(pad, mode)(input)


def pad_channels(input, before, after):
    """Add zero channels to an (N, C, H, W) tensor: the option-A shortcut's channel growth."""
    return PadFunction((0, 0, 0, 0, before, after))(input)


def flatten(input, start_dim=1, end_dim=-1):
    """Merge dims ``start_dim..end_dim`` (by default all but the batch dim), as ``torch.flatten``."""
    return (input if isinstance(input, Tensor) else Tensor(input)).flatten(start_dim, end_dim)
