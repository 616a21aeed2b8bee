"""Input checks shared by the ops: fail early, naming the values and the fix."""


def pair(v, name):
    """An int or a pair of ints as a pair ``(h, w)``."""
    if isinstance(v, int):
        return v, v
    if isinstance(v, (tuple, list)) and len(v) == 2 and all(isinstance(i, int) for i in v):
        return tuple(v)
    raise TypeError(f"{name} must be an int or a pair of ints, got {v!r}")


def check_float(a, op, what="input"):
    if a.dtype.kind != "f":
        raise TypeError(f"{op} needs a floating-point {what}, got dtype {a.dtype}; "
                        f"convert it first, for example x.astype(np.float32)")


def check_4d(x, op):
    """An image batch must be (N, C, H, W)."""
    if x.ndim != 4:
        hint = " add a batch axis with x.reshape(1, *x.shape)" if x.ndim == 3 else ""
        raise ValueError(f"{op} expects a 4-D input (N, C, H, W), got shape {tuple(x.shape)}"
                         f"{';' if hint else ''}{hint}")
    check_float(x, op)


def output_size(n, k, s, p, op, axis):
    """⌊(n + 2p − k) / s⌋ + 1, the output size of a sliding window; fails if the window does not fit."""
    if n + 2 * p < k:
        raise ValueError(f"{op}: the {axis} kernel size {k} is larger than the padded input "
                         f"({n} + 2×padding {p} = {n + 2 * p}); use a smaller kernel or more padding")
    if s < 1:
        raise ValueError(f"{op}: stride must be at least 1, got {s}")
    return (n + 2 * p - k) // s + 1
