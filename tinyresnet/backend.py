"""The array backend: NumPy on the CPU, CuPy on an NVIDIA GPU.

This is the only module that imports CuPy, and it does so lazily: the first time a GPU is asked
for (``gpu_available()``, ``check_device("cuda")``, ``to_device(a, "cuda")``), never at import
time. CPU work therefore never imports CuPy, even where it is installed. Every op is written once
against ``xp = get_array_module(a)``, so the same code runs on either device.

Tests can stand in for the GPU with an array module that behaves like CuPy (see
``tests/fake_device.py``): ``use_device_module(module)`` routes ``"cuda"`` to it.

Device dispatch only: the fast kernels' threads and allocator policy live with them, in
``tinyresnet.kernels``.
"""

import contextlib
import sys

import numpy as np

GPU_INSTALL_HINT = "pip install 'tinyresnet[gpu]' (see docs/gpu.md)"

_extra_modules = {}     # array type -> (array module, device name), for stand-ins used in tests
_device_overrides = []  # stack of array modules that "cuda" means inside use_device_module()
_cupy_import = {}       # {"module": cupy or None, "error": the exception} once an import was tried


def register_array_module(array_type, module, device="cuda"):
    """Make ``get_array_module`` answer ``module`` and ``device_of`` answer ``device`` for arrays of
    ``array_type``.

    Used by tests that run the ops on a stand-in array type (for example one that refuses
    conversion to host arrays, the way CuPy does). ``module`` must offer ``asnumpy``.
    """
    _extra_modules[array_type] = (module, device)


@contextlib.contextmanager
def use_device_module(module):
    """Inside this block, ``"cuda"`` means ``module`` (a CuPy stand-in) and a GPU counts as present.

    ``module`` needs ``ndarray`` (its array type), ``asarray`` and ``asnumpy``; its arrays are
    registered as "cuda" arrays. For tests only: it lets the GPU paths run on a machine without one.
    """
    register_array_module(module.ndarray, module, "cuda")
    _device_overrides.append(module)
    try:
        yield module
    finally:
        _device_overrides.remove(module)


def _import_cupy():
    """Import CuPy; any failure (not installed, no usable CUDA runtime) is kept as the reason."""
    try:
        import cupy
        return cupy, None
    except Exception as e:  # ImportError, or a CuPy that cannot load its CUDA libraries
        return None, e


def _cupy():
    """CuPy, imported on first use, or None when it cannot be imported."""
    if not _cupy_import:
        _cupy_import["module"], _cupy_import["error"] = _import_cupy()
    return _cupy_import["module"]


def _cupy_if_loaded():
    """CuPy if something has imported it already, else None. No CuPy array can exist before CuPy
    is imported, so looking at ``sys.modules`` is enough and keeps CPU work free of the import."""
    module = sys.modules.get("cupy")
    return module if getattr(module, "ndarray", None) is not None else None


def _cuda_module():
    """The array module that "cuda" means now: a test's stand-in, or CuPy (None when absent)."""
    return _device_overrides[-1] if _device_overrides else _cupy()


def get_array_module(*arrays):
    """The array module (``numpy``, ``cupy`` or a registered stand-in) that owns the given arrays."""
    cupy = _cupy_if_loaded()
    for a in arrays:
        entry = _extra_modules.get(type(a))
        if entry is not None:
            return entry[0]
        if cupy is not None and isinstance(a, cupy.ndarray):
            return cupy
    return np


def gpu_available():
    """True when CuPy is installed and sees at least one CUDA device (or a test's stand-in is active)."""
    return _gpu_unavailable_reason() is None


def _gpu_unavailable_reason():
    """None when "cuda" can be used, else a sentence saying why not."""
    if _device_overrides:
        return None
    cupy = _cupy()
    if cupy is None:
        error = _cupy_import.get("error")
        if isinstance(error, ModuleNotFoundError) and error.name == "cupy":
            return f"CuPy is not installed ({GPU_INSTALL_HINT})"
        return f"CuPy could not be imported ({type(error).__name__}: {error}); {GPU_INSTALL_HINT}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # no driver, or the driver is older than CuPy's CUDA runtime
        return (f"CuPy found no usable CUDA device ({type(e).__name__}: {e}); check the driver with "
                f"nvidia-smi and docs/gpu.md")
    if count < 1:
        return "CuPy found no CUDA device (nvidia-smi lists none)"
    return None


def check_device(device):
    """Normalise a device name to ``"cpu"`` or ``"cuda"``, failing clearly.

    Accepts "cpu", "cuda" and "cuda:0" (one GPU is used: pick another one with
    CUDA_VISIBLE_DEVICES). "cuda" without a usable GPU raises RuntimeError saying why.
    """
    text = str(device)
    name, _, index = text.partition(":")
    if name not in ("cpu", "cuda") or (index and name == "cpu"):
        raise ValueError(f"unknown device {device!r}: use 'cpu' or 'cuda'")
    if name == "cuda" and index not in ("", "0"):
        raise ValueError(f"device {device!r}: tinyresnet uses one GPU, 'cuda' (= 'cuda:0'); to run on "
                         f"GPU {index}, start Python with CUDA_VISIBLE_DEVICES={index} and use 'cuda'")
    if name == "cuda":
        reason = _gpu_unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"device 'cuda' requested but {reason}; use device='cpu' to run on the CPU")
    return name


def device_of(a):
    """``"cuda"`` for a CuPy array (or a registered stand-in's), ``"cpu"`` otherwise."""
    entry = _extra_modules.get(type(a))
    if entry is not None:
        return entry[1]
    cupy = _cupy_if_loaded()
    return "cuda" if cupy is not None and isinstance(a, cupy.ndarray) else "cpu"


def to_device(a, device):
    """Return ``a`` as an array on ``device`` (``"cpu"`` or ``"cuda"``); no copy if already there."""
    device = check_device(device)
    if device == "cpu":
        return to_numpy(a)
    xp = _cuda_module()
    if get_array_module(a) is xp:
        return a
    return xp.asarray(to_numpy(a))    # through the host: a copy, never shared memory


def to_numpy(a):
    """A NumPy array with the values of ``a`` (copied from the GPU when needed)."""
    entry = _extra_modules.get(type(a))
    if entry is not None:
        return entry[0].asnumpy(a)
    cupy = _cupy_if_loaded()
    if cupy is not None and isinstance(a, cupy.ndarray):
        return cupy.asnumpy(a)
    return np.asarray(a)
