"""The array backend: NumPy on the CPU, CuPy on an NVIDIA GPU.

This is the only module that imports CuPy. Every op is written once against
``xp = get_array_module(a)``, so the same code runs on either device.
"""

import numpy as np

try:  # CuPy is the optional `gpu` extra; CPU use never needs it.
    import cupy
except Exception:  # ImportError, or a CuPy without a usable CUDA runtime
    cupy = None

_extra_modules = {}  # array type -> array module, for stand-ins used in tests


def register_array_module(array_type, module):
    """Make ``get_array_module`` answer ``module`` for arrays of ``array_type``.

    Used by tests that run the ops on a stand-in array type (for example one that
    refuses conversion to host arrays, the way CuPy does).
    """
    _extra_modules[array_type] = module


def get_array_module(*arrays):
    """The array module (``numpy`` or ``cupy``) that owns the given arrays."""
    for a in arrays:
        module = _extra_modules.get(type(a))
        if module is not None:
            return module
        if cupy is not None and isinstance(a, cupy.ndarray):
            return cupy
    return np


def gpu_available():
    """True when CuPy is installed and sees at least one CUDA device."""
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def check_device(device):
    """Normalise a device name to ``"cpu"`` or ``"cuda"``, failing clearly."""
    name = str(device).split(":")[0]
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {device!r}: use 'cpu' or 'cuda'")
    if name == "cuda" and not gpu_available():
        reason = ("CuPy is not installed (pip install 'tinyresnet[gpu]')" if cupy is None
                  else "CuPy found no CUDA device")
        raise RuntimeError(f"device 'cuda' requested but {reason}; use device='cpu'")
    return name


def device_of(a):
    """``"cuda"`` for a CuPy array, ``"cpu"`` otherwise."""
    return "cuda" if get_array_module(a) is cupy and cupy is not None else "cpu"


def to_device(a, device):
    """Return ``a`` as an array on ``device`` (``"cpu"`` or ``"cuda"``); no copy if already there."""
    device = check_device(device)
    if device == "cpu":
        return to_numpy(a)
    return cupy.asarray(a)


def to_numpy(a):
    """A NumPy array with the values of ``a`` (copied from the GPU when needed)."""
    if cupy is not None and isinstance(a, cupy.ndarray):
        return cupy.asnumpy(a)
    if type(a) in _extra_modules:
        return _extra_modules[type(a)].asnumpy(a)
    return np.asarray(a)
