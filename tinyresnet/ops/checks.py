"""Input checks shared by the ops: fail early, naming the values and the fix."""

import numbers


def is_int(v):
    """A whole number given as an int or a NumPy integer; a bool is not one (``stride=True`` is a mistake)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def pair(v, name, minimum=None, op=None):
    """An int or a pair of ints (NumPy integers too) as a pair ``(h, w)`` of Python ints.

    With ``minimum``, both must be at least that (1 for a kernel size or a stride, 0 for a padding).
    """
    where = f"{op}: " if op else ""
    if is_int(v):
        values = (int(v), int(v))
    elif isinstance(v, (tuple, list)) and len(v) == 2 and all(is_int(i) for i in v):
        values = (int(v[0]), int(v[1]))
    else:
        raise TypeError(f"{where}{name} must be an int or a pair of ints, got {v!r}")
    if minimum is not None and min(values) < minimum:
        fix = ("a negative padding would crop the input; slice it instead, e.g. x[:, :, 1:-1, 1:-1]"
               if minimum == 0 else f"use {minimum} or more")
        raise ValueError(f"{where}{name} must be at least {minimum}, got {v!r}; {fix}")
    return values


def whole_number(v, name, where, minimum=1):
    """``v`` as a Python int, if it is an int (or a NumPy integer) of at least ``minimum``.

    For sizes and counts (channels, features, classes, groups): a float, a bool or a value below
    ``minimum`` fails with a ValueError that names the argument and the value.
    """
    if not is_int(v) or v < minimum:
        kind = f" (a {type(v).__name__})" if not is_int(v) else ""
        raise ValueError(f"{where}: {name} must be a whole number of at least {minimum}, got {v!r}{kind}; "
                         f"pass an int such as {max(minimum, 1)}")
    return int(v)


def check_float(a, op, what="input"):
    if a.dtype.kind != "f":
        raise TypeError(f"{op} needs a floating-point {what}, got dtype {a.dtype}; "
                        f"convert it first, for example x.astype(np.float32)")


def check_same_dtype(x, param, op, what):
    """A layer's ``param`` (weight, bias) must have the input's dtype, as PyTorch requires: a float64
    input with float32 weights would otherwise compute in float64 and hand float64 gradients to them."""
    if param is not None and param.dtype != x.dtype:
        raise TypeError(f"{op}: the input is {x.dtype} but the {what} is {param.dtype}; they must be the same "
                        f"dtype. Convert the input, x.astype(np.{param.dtype}), or the model, "
                        f"model.to(np.{x.dtype})")


def check_4d(x, op):
    """An image batch must be (N, C, H, W)."""
    if x.ndim != 4:
        hint = " add a batch axis with x.reshape(1, *x.shape)" if x.ndim == 3 else ""
        raise ValueError(f"{op} expects a 4-D input (N, C, H, W), got shape {tuple(x.shape)}"
                         f"{';' if hint else ''}{hint}")
    check_float(x, op)


def output_size(n, k, s, p, op, axis, dilation=1, ceil_mode=False):
    """The output size of a sliding window, as PyTorch counts it; fails if the window does not fit.

    The window spans d·(k − 1) + 1 pixels (its taps are ``dilation`` apart). The size is
    ⌊(n + 2p − d·(k − 1) − 1) / s⌋ + 1, or with ``ceil_mode`` (pooling) ⌈…⌉ + 1, less one where the
    last window would then start past the input and its left padding (at or after n + p).
    """
    if p < 0:
        raise ValueError(f"{op}: padding must be at least 0, got {p}; a negative padding would crop the input, "
                         f"slice it instead")
    if dilation < 1:
        raise ValueError(f"{op}: dilation must be at least 1, got {dilation}")
    span = dilation * (k - 1) + 1
    if n + 2 * p < span:
        dilated = f" (dilated by {dilation}: it spans {span} pixels)" if dilation > 1 else ""
        raise ValueError(f"{op}: the {axis} kernel size {k}{dilated} is larger than the padded input "
                         f"({n} + 2×padding {p} = {n + 2 * p}); use a smaller kernel or more padding")
    if s < 1:
        raise ValueError(f"{op}: stride must be at least 1, got {s}")
    if not ceil_mode:
        return (n + 2 * p - span) // s + 1
    out = -(-(n + 2 * p - span) // s) + 1
    if (out - 1) * s >= n + p:                      # the last window would start in the right padding or beyond
        out -= 1
    return out
