"""tinyresnet: a from-scratch deep-learning engine on NumPy and CuPy, built to teach ResNets.

PyTorch's top-level names work here with PyTorch's signatures: ``tensor``, ``zeros``, ``ones``, ``empty``,
``full``, ``zeros_like``, ``ones_like``, ``randn``, ``rand``, ``arange``, ``from_numpy``, ``stack``, ``cat``,
``argmax``, ``argmin``, ``max``, ``min``, ``save``, ``load``, ``no_grad``, ``inference_mode``,
``manual_seed``, and the dtypes ``float32``, ``float64``, ``int64``, ... (NumPy's dtypes; also
``long``, ``double``, ``half``). ``float``, ``int`` and ``bool`` are left to Python: use ``float32``,
``int64``/``int32`` and ``numpy.bool_``. Floating-point results default to float32, as in PyTorch.
"""

import numbers

import numpy as np

from . import data as data
from . import functional
from . import models as models
from . import nn as nn
from . import optim as optim
from .autograd import DEFAULT_FLOAT, Function, Tensor, inference_mode, is_grad_enabled, no_grad, tensor
from .backend import get_array_module, gpu_available, to_device
from .functional import cat
from .nn.init import default_generator, manual_seed
from .ops.basic import StackFunction, normalize_dim
from .serialization import load_weights, save_npz
from .tiers import get_kernels, use_kernels

__version__ = "0.1.0"

float16 = half = np.float16
float32 = np.float32
float64 = double = np.float64
uint8, int8, int16, int32 = np.uint8, np.int8, np.int16, np.int32
int64 = long = np.int64


# ---------------------------------------------------------------------- making tensors
def _shape(size, op):
    """``zeros(2, 3)`` and ``zeros((2, 3))`` alike: the sizes as a tuple of ints >= 0."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    for n in size:
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"{op}: sizes must be whole numbers, got {type(n).__name__} {n!r} in {tuple(size)}")
        if n < 0:
            raise ValueError(f"{op}: sizes must be >= 0, got {tuple(size)}")
    return tuple(int(n) for n in size)


def _float_dtype(dtype, op):
    dtype = _or_default(dtype)
    if dtype.kind != "f":
        raise TypeError(f"{op} draws floating-point numbers, got dtype={dtype}; use float32 or float64 "
                        f"(for random integers, numpy.random's integers(), then from_numpy)")
    return dtype


def _made(array, dtype, device, requires_grad):
    return Tensor(array.astype(dtype, copy=False), requires_grad=requires_grad, device=device)


def _or_default(dtype, default=DEFAULT_FLOAT):
    return np.dtype(default if dtype is None else dtype)   # not `dtype or ...`: a np.dtype is falsy


def zeros(*size, dtype=None, device=None, requires_grad=False):
    """A tensor of zeros, as ``torch.zeros``: ``zeros(2, 3)`` or ``zeros((2, 3))``; float32 unless ``dtype``."""
    dtype = _or_default(dtype)
    return _made(np.zeros(_shape(size, "zeros"), dtype=dtype), dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    """A tensor of ones, as ``torch.ones``."""
    dtype = _or_default(dtype)
    return _made(np.ones(_shape(size, "ones"), dtype=dtype), dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    """An uninitialised tensor (whatever memory held), as ``torch.empty``: fill it before reading."""
    dtype = _or_default(dtype)
    return _made(np.empty(_shape(size, "empty"), dtype=dtype), dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    """A tensor of ``size`` holding ``fill_value``, as ``torch.full``: by default int64 for an integer
    value, bool for a bool, float32 otherwise."""
    if isinstance(fill_value, (bool, np.bool_)):
        default = np.bool_
    elif isinstance(fill_value, numbers.Integral):
        default = np.int64
    else:
        default = DEFAULT_FLOAT
    dtype = _or_default(dtype, default)
    return _made(np.full(_shape((size,), "full"), fill_value, dtype=dtype), dtype, device, requires_grad)


def zeros_like(input, dtype=None, device=None, requires_grad=False):
    """Zeros of ``input``'s shape, dtype and device (unless given), as ``torch.zeros_like``."""
    return zeros(input.shape, dtype=_or_default(dtype, input.dtype), device=device or input.device,
                 requires_grad=requires_grad)


def ones_like(input, dtype=None, device=None, requires_grad=False):
    """Ones of ``input``'s shape, dtype and device (unless given), as ``torch.ones_like``."""
    return ones(input.shape, dtype=_or_default(dtype, input.dtype), device=device or input.device,
                requires_grad=requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal samples, as ``torch.randn``; float32 unless ``dtype``. Drawn from ``generator``
    (a ``numpy.random.Generator``), by default from the one ``manual_seed`` restarts."""
    dtype = _float_dtype(dtype, "randn")
    rng = default_generator() if generator is None else generator
    return _made(rng.standard_normal(_shape(size, "randn"), dtype=dtype), dtype, device, requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform samples in [0, 1), as ``torch.rand``; seeded and typed as ``randn``."""
    dtype = _float_dtype(dtype, "rand")
    rng = default_generator() if generator is None else generator
    return _made(rng.random(_shape(size, "rand"), dtype=dtype), dtype, device, requires_grad)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None):
    """Integers drawn uniformly from [low, high), as ``torch.randint``: ``randint(10, (4,))``,
    ``randint(2, 5, (3, 3))``; int64 unless ``dtype``, seeded as ``randn``."""
    if size is None:                               # randint(high, size)
        low, high, size = 0, low, high
    if high is None or size is None:
        raise TypeError("randint needs high and size: randint(high, size) or randint(low, high, size)")
    if not high > low:
        raise ValueError(f"randint: high must be greater than low, got low={low}, high={high}")
    rng = default_generator() if generator is None else generator
    dtype = np.dtype(np.int64 if dtype is None else dtype)
    return _made(rng.integers(low, high, _shape((size,) if np.isscalar(size) else tuple(size), "randint"),
                              dtype=dtype), dtype, device, False)


def arange(start, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    """``start, start + step, ...`` up to ``end`` (excluded), as ``torch.arange``: ``arange(5)``,
    ``arange(1, 2, 0.25)``. int64 when every bound is an integer, else float32, unless ``dtype``."""
    if end is None:
        start, end = 0, start
    bounds = (start, end, step)
    for name, value in zip(("start", "end", "step"), bounds):
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise ValueError(f"arange: {name} must be a finite number, got {value!r}")
    if step == 0:
        raise ValueError("arange: step must not be 0")
    if (end - start) * step < 0:
        raise ValueError(f"arange: from {start} to {end} the step must be {'positive' if end > start else 'negative'}, "
                         f"got {step}")
    if dtype is None:
        dtype = np.int64 if all(isinstance(v, numbers.Integral) for v in bounds) else DEFAULT_FLOAT
    count = int(np.ceil((end - start) / step))
    values = start + step * np.arange(count, dtype=np.float64 if np.dtype(dtype).kind == "f" else np.int64)
    return _made(values, dtype, device, requires_grad)


def from_numpy(ndarray):
    """A tensor sharing ``ndarray``'s memory and dtype (float64 stays float64), as ``torch.from_numpy``."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(ndarray).__name__}; "
                        f"use tinyresnet.tensor(...) for lists and numbers")
    return Tensor(ndarray)


def _as_tensor(x):
    return x if isinstance(x, Tensor) else Tensor(x)


def stack(tensors, dim=0):
    """Join same-shaped tensors along a new dim ``dim``, as ``torch.stack``; differentiable."""
    if isinstance(tensors, Tensor) or not isinstance(tensors, (list, tuple)) or not tensors:
        raise ValueError("stack expects a non-empty list or tuple of tensors")
    tensors = [_as_tensor(t) for t in tensors]
    return StackFunction(normalize_dim(dim, tensors[0].ndim + 1, "stack"))(*tensors)


def argmax(input, dim=None, keepdim=False):
    """``input.argmax(dim, keepdim)``, as ``torch.argmax``: the int64 index of the largest value."""
    return _as_tensor(input).argmax(dim, keepdim)


def argmin(input, dim=None, keepdim=False):
    """``input.argmin(dim, keepdim)``, as ``torch.argmin``."""
    return _as_tensor(input).argmin(dim, keepdim)


def max(input, dim=None, keepdim=False):
    """``input.max(dim, keepdim)``, as ``torch.max``: the largest value, or ``(values, indices)`` along ``dim``
    (``_, predicted = tinyresnet.max(logits, 1)``)."""
    return _as_tensor(input).max(dim, keepdim)


def min(input, dim=None, keepdim=False):
    """``input.min(dim, keepdim)``, as ``torch.min``."""
    return _as_tensor(input).min(dim, keepdim)


# ---------------------------------------------------------------------- saving and loading
def save(obj, path):
    """Write a state_dict (a dict of name -> Tensor or array) or a model's state (``save(model, path)``
    writes ``model.state_dict()``) to ``path`` as .npz, atomically, as ``torch.save`` is used for weights.

    Only flat dicts of arrays are saved (no pickling of arbitrary objects): for a training checkpoint
    use ``tinyresnet.training``'s checkpoints. ``load`` reads the file back; the name may end in anything
    (``model.pt``, ``weights.npz``).
    """
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise TypeError(f"save expects a state_dict (a dict of arrays) or a Module, got {type(obj).__name__}; "
                        f"tinyresnet saves arrays only, not arbitrary objects")
    arrays = {}
    for key, value in obj.items():
        array = value.data if isinstance(value, Tensor) else value
        numeric = not isinstance(array, dict) and get_array_module(array).asarray(array).dtype.kind in "biuf"
        if not isinstance(key, str) or not numeric:
            raise TypeError(f"save: entry {key!r} is a {type(value).__name__}; every key must be a string and every "
                            f"value a Tensor, an array or a number (save nested dicts as separate files, or "
                            f"flatten their keys as 'model/weight')")
        arrays[key] = array
    save_npz(path, arrays)


def load(path, map_location=None):
    """Read what ``save`` (or ``Module.save``) wrote: a dict of name -> NumPy array (not Tensors), ready for
    ``model.load_state_dict(tinyresnet.load(path))``. A training checkpoint (``best.npz``) gives its
    model's state_dict. ``map_location="cuda"`` puts the arrays on the GPU (CuPy arrays)."""
    arrays = load_weights(path)
    if map_location is None:
        return arrays
    return {key: to_device(value, map_location) for key, value in arrays.items()}


__all__ = ["Function", "Tensor", "arange", "argmax", "argmin", "cat", "data", "double", "empty", "float16",
           "float32", "float64", "from_numpy", "full", "functional", "get_array_module", "get_kernels",
           "gpu_available", "half", "inference_mode", "int8", "int16", "int32", "int64", "is_grad_enabled", "load",
           "long", "manual_seed", "max", "min", "models", "nn", "no_grad", "ones", "ones_like", "optim", "rand",
           "randint", "randn", "save", "stack", "tensor", "uint8", "use_kernels", "zeros", "zeros_like", "__version__"]
