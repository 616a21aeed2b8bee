"""A stand-in GPU for the tests: ``FakeCudaArray`` and the ``fake_cupy`` array module.

``FakeCudaArray`` keeps its values in a private NumPy array and computes with NumPy, so results
are exactly the CPU's, but it refuses every implicit trip to the host the way ``cupy.ndarray``
does (and a little more strictly):

- ``numpy.asarray(a)`` / ``np.array(a)``: TypeError (``__array__`` raises, as in CuPy);
- NumPy ufuncs and functions (``np.exp(a)``, ``np.concatenate([a])``): TypeError. CuPy would
  forward some of them to its own functions; the engine must call ``xp.exp`` instead, so any
  ``np.`` reaching a device array is reported;
- mixing with a host ``numpy.ndarray`` (``a + host``, ``xp.where(m, a, host)``, ``a[i] = host``):
  TypeError, as in CuPy. Python and NumPy scalars mix freely, as in CuPy;
- reductions and integer indexing return 0-d device arrays, never host scalars, as in CuPy;
- explicit conversions work, as in CuPy: ``float``/``int``/``bool``/``.item()`` of a one-element
  array, ``.tolist()``, ``.get()``, ``fake_cupy.asnumpy(a)``.

``fake_cupy.asarray(host)`` copies, as a host-to-device transfer does, so host and device never
share memory. ``use_fake_gpu()`` routes ``"cuda"`` to this module through
``tinyresnet.backend.use_device_module``. A function the engine needs that is missing here
raises AttributeError naming it: add it if CuPy has it (https://docs.cupy.dev), otherwise the
engine is using a NumPy-only API.
"""

import contextlib
import copy
import types

import numpy as np

from tinyresnet.backend import register_array_module, use_device_module


# ------------------------------------------------------------------------------ counting device work
class DeviceCounts:
    """What the stand-in GPU was asked to do: ``syncs`` (device-to-host reads, each of which waits for
    the GPU on CuPy), ``launches`` (kernels: elementwise, ufunc, reduction, matmul, copy and fill calls
    on device arrays; views, reshapes and empty allocations launch nothing), and ``sync_sites``
    (where each sync came from, for messages). ``reset()`` zeroes them."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.syncs, self.launches, self.sync_sites, self.launch_names = 0, 0, [], {}

    def __repr__(self):
        return f"DeviceCounts(syncs={self.syncs}, launches={self.launches})"


counts = DeviceCounts()        # the running totals since the last reset; count_device_work() for a block


def _sync(what):
    counts.syncs += 1
    import traceback
    frames = [f for f in traceback.extract_stack()[:-2] if "fake_device" not in f.filename]
    site = frames[-1] if frames else None
    counts.sync_sites.append(f"{what} at {site.filename}:{site.lineno} ({site.name})" if site else what)


def _launch(what):
    counts.launches += 1
    counts.launch_names[what] = counts.launch_names.get(what, 0) + 1


@contextlib.contextmanager
def count_device_work():
    """Count the syncs and launches of a block: ``with count_device_work() as work: ...; work.syncs``.
    The counts are reset on entry and the block's totals stay readable after it ends."""
    counts.reset()
    yield counts

_SCALARS = (bool, int, float, complex, np.generic)

_SYMBOLS = {"add": "+", "sub": "-", "mul": "*", "truediv": "/", "floordiv": "//", "mod": "%", "pow": "**",
            "matmul": "@", "and": "&", "or": "|", "xor": "^", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
            "eq": "==", "ne": "!="}


def _operator_name(op):
    """'__radd__' -> 'the operator +'."""
    core = op.strip("_")
    core = core[1:] if core[1:] in _SYMBOLS and core[0] in "ri" else core
    return f"the operator {_SYMBOLS.get(core, op)}" + ("=" if op.startswith("__i") else "")


def _host_refused(what):
    return TypeError(f"{what} was given a host numpy.ndarray together with a device array; CuPy refuses "
                     f"to mix them: move it first with xp.asarray(...) or tinyresnet.backend.to_device")


def _operand(value, what):
    """The NumPy value to compute with, for an operand of a device operation."""
    if isinstance(value, FakeCudaArray):
        return value._host
    if isinstance(value, np.ndarray):
        raise _host_refused(what)
    return value


def _args_to_host(value, what):
    """Unwrap device arrays in (nested) arguments; host arrays are refused."""
    if isinstance(value, (list, tuple)):
        return type(value)(_args_to_host(v, what) for v in value)
    if isinstance(value, dict):
        return {k: _args_to_host(v, what) for k, v in value.items()}
    return _operand(value, what)


def _index_to_host(index):
    """An index: device arrays are unwrapped; host index arrays are allowed (CuPy copies them over)."""
    if isinstance(index, tuple):
        return tuple(_index_to_host(i) for i in index)
    return index._host if isinstance(index, FakeCudaArray) else index


def _wrap(result):
    """NumPy results as device arrays; NumPy scalars become 0-d device arrays, as in CuPy."""
    if isinstance(result, np.ndarray):
        return FakeCudaArray(result)
    if isinstance(result, np.generic):
        return FakeCudaArray(np.asarray(result))
    if isinstance(result, tuple):
        return tuple(_wrap(r) for r in result)
    if isinstance(result, list):
        return [_wrap(r) for r in result]
    return result


# ndarray methods that CuPy also has; array arguments are unwrapped, results wrapped.
_METHODS = {
    "all", "any", "argmax", "argmin", "argsort", "astype", "clip", "copy", "cumsum", "diagonal", "dot",
    "fill", "flatten", "max", "mean", "min", "nonzero", "prod", "ravel", "repeat", "reshape", "round",
    "sort", "squeeze", "std", "sum", "swapaxes", "take", "trace", "transpose", "var", "view",
}


class FakeCudaArray:
    """An array that behaves like ``cupy.ndarray``: it computes, but never silently becomes host data."""

    __array_ufunc__ = None          # np.exp(a) and ndarray <op> a refuse it (ndarray ops defer to ours)
    __array_priority__ = 100        # as cupy.ndarray: Tensor (1000) wins a mixed operator
    __hash__ = None

    def __init__(self, host):
        if not isinstance(host, np.ndarray):
            raise TypeError(f"FakeCudaArray wraps a numpy.ndarray, got {type(host).__name__}; "
                            f"use fake_cupy.asarray(...)")
        self._host = host

    # ------------------------------------------------------------ refusing the host
    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed (device array). Use "
                        "tinyresnet.backend.to_numpy(a) or a.get() to copy it to the host explicitly.")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} was called on a device array; ops must use "
                        f"xp = get_array_module(x) and xp.{func.__name__}(...), or copy to the host "
                        f"explicitly with tinyresnet.backend.to_numpy")

    # ------------------------------------------------------------ explicit conversions (as CuPy)
    # each of these reads the device from the host: one sync (counted in ``counts.syncs``)
    def get(self):
        _sync("get()")
        return self._host.copy()

    def item(self):
        if self.size != 1:
            raise ValueError("can only convert an array of size 1 to a Python scalar")
        _sync("item()")
        return self._host.item()

    def tolist(self):
        _sync("tolist()")
        return self._host.tolist()

    def tobytes(self, order="C"):
        _sync("tobytes()")
        return self._host.tobytes(order)

    def __float__(self):
        value = float(self._host)
        _sync("float()")
        return value

    def __int__(self):
        value = int(self._host)
        _sync("int()")
        return value

    def __complex__(self):
        value = complex(self._host)
        _sync("complex()")
        return value

    def __bool__(self):
        if self.size > 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous. "
                             "Use a.any() or a.all()")
        _sync("bool()")
        return bool(self._host.size and self._host.reshape(-1)[0])

    def __repr__(self):
        _sync("repr()")
        return repr(self._host).replace("array(", "fake_cuda_array(", 1)

    def __str__(self):
        _sync("str()")
        return str(self._host)

    def __format__(self, spec):
        _sync("format()")
        return format(self._host.item() if self._host.ndim == 0 else self._host, spec)

    def __reduce__(self):
        _sync("pickle")
        return FakeCudaArray, (self._host.copy(),)

    def __copy__(self):
        _launch("copy")
        return FakeCudaArray(self._host.copy())

    def __deepcopy__(self, memo):
        _launch("copy")
        return FakeCudaArray(copy.deepcopy(self._host, memo))

    # ------------------------------------------------------------ attributes
    shape = property(lambda self: self._host.shape)
    dtype = property(lambda self: self._host.dtype)
    ndim = property(lambda self: self._host.ndim)
    size = property(lambda self: self._host.size)
    itemsize = property(lambda self: self._host.itemsize)
    nbytes = property(lambda self: self._host.nbytes)
    strides = property(lambda self: self._host.strides)
    T = property(lambda self: FakeCudaArray(self._host.T))

    @property
    def flags(self):
        f = self._host.flags
        return types.SimpleNamespace(c_contiguous=f.c_contiguous, f_contiguous=f.f_contiguous,
                                     owndata=f.owndata)

    def __getattr__(self, name):
        if name in _METHODS:
            method = getattr(self._host, name)

            def call(*args, **kwargs):
                what = f"FakeCudaArray.{name}"
                result = _wrap(method(*_args_to_host(args, what), **_args_to_host(kwargs, what)))
                if name not in _VIEW_METHODS:
                    _launch(name)
                return result
            return call
        raise AttributeError(f"FakeCudaArray has no attribute {name!r}: cupy.ndarray may not have it "
                             f"either; if it does, add it to tests/fake_device.py")

    # ------------------------------------------------------------ container
    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of unsized object")
        return len(self._host)

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (self[i] for i in range(len(self)))

    def __getitem__(self, index):
        result = _wrap(self._host[_index_to_host(index)])
        if _is_advanced(index):                  # a gather kernel; basic indexing is a view
            _launch("getitem")
        return result

    def __setitem__(self, index, value):
        self._host[_index_to_host(index)] = _operand(value, "item assignment")
        _launch("setitem")                       # a copy or fill kernel

    # ------------------------------------------------------------ operators
    def _binary(self, other, op, reflected=False):
        if isinstance(other, FakeCudaArray):
            other = other._host
        elif isinstance(other, np.ndarray):
            raise _host_refused(_operator_name(op))
        elif not isinstance(other, _SCALARS):
            return NotImplemented     # a Tensor, for example: let its reflected operator run
        a, b = (other, self._host) if reflected else (self._host, other)
        result = _wrap(_OPS[op](a, b))
        _launch(op)
        return result

    def _inplace(self, other, op):
        if isinstance(other, np.ndarray):
            raise _host_refused(_operator_name(op))
        if not isinstance(other, (FakeCudaArray, *_SCALARS)):
            return NotImplemented
        getattr(self._host, op)(_operand(other, op))
        _launch(op)
        return self

    def __neg__(self):
        _launch("__neg__")
        return _wrap(-self._host)

    def __pos__(self):
        return self

    def __abs__(self):
        _launch("__abs__")
        return _wrap(abs(self._host))

    def __invert__(self):
        _launch("__invert__")
        return _wrap(~self._host)


# methods that give a view (or only reshape metadata): no kernel
_VIEW_METHODS = {"reshape", "squeeze", "swapaxes", "transpose", "view", "diagonal"}


def _is_advanced(index):
    """Whether an index gathers (arrays, lists, booleans) rather than slices (a view)."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, (FakeCudaArray, np.ndarray, list, bool, np.bool_)) for i in parts)


_OPS = {
    "__add__": lambda a, b: a + b, "__sub__": lambda a, b: a - b, "__mul__": lambda a, b: a * b,
    "__truediv__": lambda a, b: a / b, "__floordiv__": lambda a, b: a // b, "__mod__": lambda a, b: a % b,
    "__pow__": lambda a, b: a ** b, "__matmul__": lambda a, b: a @ b, "__and__": lambda a, b: a & b,
    "__or__": lambda a, b: a | b, "__xor__": lambda a, b: a ^ b, "__lt__": lambda a, b: a < b,
    "__le__": lambda a, b: a <= b, "__gt__": lambda a, b: a > b, "__ge__": lambda a, b: a >= b,
    "__eq__": lambda a, b: a == b, "__ne__": lambda a, b: a != b,
}


def _install_operators():
    for op in _OPS:
        def forward(self, other, op=op):
            return self._binary(other, op)
        setattr(FakeCudaArray, op, forward)
        if op in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"):
            continue
        def reflected(self, other, op=op):
            return self._binary(other, op, reflected=True)
        setattr(FakeCudaArray, op.replace("__", "__r", 1), reflected)
        def inplace(self, other, op=op):
            return self._inplace(other, op.replace("__", "__i", 1))
        setattr(FakeCudaArray, op.replace("__", "__i", 1), inplace)


_install_operators()


_ATOMIC = [np.dtype(d) for d in (np.int32, np.float32, np.float64, np.uint32, np.uint64)]
# CuPy >= 14.1 scatter-adds int64 too (issue 17); CUDA has no 8- or 16-bit integer atomicAdd
_SCATTER_DTYPES = {"add": _ATOMIC + [np.dtype(np.float16), np.dtype(np.int64)], "maximum": _ATOMIC,
                   "minimum": _ATOMIC}


class _Ufunc:
    """A NumPy ufunc over device arrays, with ``at`` (CuPy has ``add.at`` too) and ``reduce``."""

    def __init__(self, ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        what = f"fake_cupy.{self.__name__}"
        result = _wrap(self._ufunc(*_args_to_host(args, what), **_args_to_host(kwargs, what)))
        _launch(self.__name__)
        return result

    def at(self, a, indices, b=None):
        what = f"fake_cupy.{self.__name__}.at"
        if not isinstance(a, FakeCudaArray):
            raise TypeError(f"{what} needs a device array to update in place, got {type(a).__name__}")
        if self.__name__ not in _SCATTER_DTYPES:          # CuPy implements ufunc.at by scatter kernels
            raise NotImplementedError(f"`{self.__name__}.at` is not supported by CuPy")
        if a.dtype not in _SCATTER_DTYPES[self.__name__]:  # atomicAdd/atomicMax exist for these only
            raise TypeError(f"CuPy's {self.__name__}.at does not support dtype {a.dtype}; use one of "
                            f"{', '.join(d.name for d in _SCATTER_DTYPES[self.__name__])}")
        args = () if b is None else (_operand(b, what),)
        self._ufunc.at(a._host, _index_to_host(indices), *args)
        _launch(f"{self.__name__}.at")

    def reduce(self, a, *args, **kwargs):
        what = f"fake_cupy.{self.__name__}.reduce"
        result = _wrap(self._ufunc.reduce(_operand(a, what), *args, **_args_to_host(kwargs, what)))
        _launch(f"{self.__name__}.reduce")
        return result


def _function(numpy_function, name):
    """``numpy_function`` over device arrays: arguments unwrapped (host arrays refused), results wrapped."""
    if isinstance(numpy_function, np.ufunc):
        return _Ufunc(numpy_function)

    def call(*args, **kwargs):
        what = f"fake_cupy.{name}"
        result = _wrap(numpy_function(*_args_to_host(args, what), **_args_to_host(kwargs, what)))
        if name not in _NO_KERNEL:
            _launch(name)
        return result
    call.__name__ = name
    return call


# Functions of the cupy namespace (all exist in CuPy 13/14 with these names).
_FUNCTIONS = [
    # creation
    "empty", "empty_like", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like", "arange",
    "linspace", "eye",
    # shape and joining
    "reshape", "transpose", "swapaxes", "moveaxis", "expand_dims", "squeeze", "broadcast_to", "concatenate",
    "stack", "split", "pad", "flip", "tile", "repeat", "ravel", "take", "take_along_axis",
    # elementwise (ufuncs)
    "add", "subtract", "multiply", "divide", "true_divide", "negative", "power", "exp", "log", "sqrt",
    "square", "abs", "absolute", "sign", "tanh", "maximum", "minimum", "floor", "ceil", "equal", "not_equal",
    "greater", "greater_equal", "less", "less_equal", "logical_and", "logical_or", "logical_not", "isnan",
    "isinf", "isfinite",
    # other elementwise, reductions, products
    "where", "clip", "sum", "mean", "var", "std", "max", "min", "amax", "amin", "argmax", "argmin", "prod",
    "cumsum", "any", "all", "count_nonzero", "nonzero", "argsort", "sort", "matmul", "dot", "tensordot",
    "einsum", "outer", "allclose", "isclose", "array_equal", "copyto",
]

# functions that allocate without filling or only make a view: no kernel
_NO_KERNEL = {"empty", "empty_like", "reshape", "transpose", "swapaxes", "moveaxis", "expand_dims", "squeeze",
              "broadcast_to", "split"}

_PASSTHROUGH = [
    "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool_", "intp",
    "dtype", "result_type", "can_cast", "finfo", "iinfo", "inf", "nan", "pi", "e", "newaxis",
]


def _asarray(a, dtype=None):
    """Host data to the device (a copy, as a transfer is); device arrays pass through (cast if asked)."""
    if isinstance(a, FakeCudaArray):
        if dtype is None or a.dtype == np.dtype(dtype):
            return a
        _launch("astype")
        return FakeCudaArray(a._host.astype(dtype))
    host = np.array(_args_to_device_free(a), dtype=dtype, copy=True)
    return FakeCudaArray(host)


def _args_to_device_free(a):
    """Lists may mix host scalars and device arrays (CuPy accepts both in cupy.asarray)."""
    if isinstance(a, (list, tuple)):
        return type(a)(_args_to_device_free(v) for v in a)
    return a._host if isinstance(a, FakeCudaArray) else a


def _ascontiguousarray(a, dtype=None):
    if not isinstance(a, FakeCudaArray):
        raise TypeError(f"fake_cupy.ascontiguousarray needs a device array, got {type(a).__name__}; "
                        f"use fake_cupy.asarray for host data")
    result = np.ascontiguousarray(a._host, dtype=dtype)
    if result is not a._host:
        _launch("ascontiguousarray")
    return FakeCudaArray(result)


def _asnumpy(a):
    """Device to host: a copy (host data is returned as a NumPy array, as cupy.asnumpy does)."""
    if isinstance(a, FakeCudaArray):
        _sync("asnumpy()")
        return a._host.copy()
    return np.asarray(a)


def _as_strided(x, shape=None, strides=None):
    """CuPy's signature: no ``writeable``/``subok`` arguments."""
    return FakeCudaArray(np.lib.stride_tricks.as_strided(_operand(x, "as_strided"), shape, strides))


def _sliding_window_view(x, window_shape, axis=None):
    return FakeCudaArray(np.lib.stride_tricks.sliding_window_view(_operand(x, "sliding_window_view"),
                                                                  window_shape, axis))


def _make_module():
    module = types.ModuleType("fake_cupy", "A CuPy stand-in whose arrays refuse implicit host conversion.")
    for name in _FUNCTIONS:
        setattr(module, name, _function(getattr(np, name), name))
    for name in _PASSTHROUGH:
        setattr(module, name, getattr(np, name))
    module.ndarray = FakeCudaArray
    module.asarray = _asarray
    module.array = _asarray
    module.ascontiguousarray = _ascontiguousarray
    module.asnumpy = _asnumpy
    module.lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(
        as_strided=_as_strided, sliding_window_view=_sliding_window_view))
    module.counts = counts
    module.count_device_work = count_device_work
    module.linalg = types.SimpleNamespace(norm=_function(np.linalg.norm, "linalg.norm"))

    def __getattr__(name):
        raise AttributeError(f"fake_cupy has no {name!r}: if CuPy has it (https://docs.cupy.dev), add it "
                             f"to tests/fake_device.py; if not, the engine is using a NumPy-only API")
    module.__getattr__ = __getattr__
    return module


fake_cupy = _make_module()
register_array_module(FakeCudaArray, fake_cupy, "cuda")


def use_fake_gpu():
    """Context manager: inside it, "cuda" is the stand-in GPU (``Tensor.to("cuda")``, ``model.to("cuda")``)."""
    return use_device_module(fake_cupy)


def is_fake_cuda(a):
    return isinstance(a, FakeCudaArray)
