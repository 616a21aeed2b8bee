"""Weight initialisation, named as in ``torch.nn.init``, drawn on the host from a seeded generator.

Every function fills a Parameter (or Tensor) in place and returns it. Values are drawn with
NumPy on the host and then copied to the tensor's device, so a seeded run builds the same
weights on the CPU and on the GPU.

Reproducibility: the module-level default generator starts from seed 0, so a fresh Python
process builds the same model every time. ``manual_seed(seed)`` restarts it; ``rng=`` on any
function uses your own ``numpy.random.Generator`` instead.

    >>> from tinyresnet.nn import init
    >>> init.manual_seed(42)          # every model built after this is reproducible
"""

import math

import numpy as np

from ..autograd import Tensor
from ..backend import device_of, to_device

DEFAULT_SEED = 0
_default_generator = np.random.default_rng(DEFAULT_SEED)


def manual_seed(seed):
    """Restart the default generator from ``seed``; returns the new generator."""
    global _default_generator
    _default_generator = np.random.default_rng(seed)
    return _default_generator


def default_generator():
    """The generator that initialisers use when no ``rng`` is given."""
    return _default_generator


def _array(tensor):
    """The ndarray behind a Parameter/Tensor (or the array itself)."""
    return tensor.data if isinstance(tensor, Tensor) else tensor


def _fill(tensor, host_values):
    """Write host values into ``tensor`` in place, keeping its dtype and device."""
    data = _array(tensor)
    data[...] = to_device(np.asarray(host_values, dtype=data.dtype), device_of(data))
    return tensor


def _shape(tensor):
    return tuple(_array(tensor).shape)


def _sample_dtype(tensor):
    """Draw in the tensor's own precision (float32 draws are about twice as fast), float64 otherwise."""
    dtype = _array(tensor).dtype
    return dtype if dtype in (np.float32, np.float64) else np.float64


def calculate_fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight: Linear (OUT, IN) or Conv2d (OC, C/groups, KH, KW).

    fan_in = C/groups · KH · KW (inputs feeding one output), fan_out = OC · KH · KW.
    """
    shape = _shape(tensor)
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need a weight with at least 2 dims, got shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity, param=None):
    """The gain that keeps activations' variance steady: √2 for ReLU, √(2/(1+a²)) for leaky ReLU."""
    if nonlinearity in ("linear", "conv2d", "sigmoid"):
        return 1.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "tanh":
        return 5.0 / 3
    raise ValueError(f"unknown nonlinearity {nonlinearity!r}: use 'relu', 'leaky_relu', 'linear', "
                     f"'conv2d', 'sigmoid' or 'tanh'")


def _fan(tensor, mode):
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a=0.0, b=1.0, rng=None):
    """Fill with values drawn uniformly from [a, b)."""
    rng = _default_generator if rng is None else rng
    unit = rng.random(_shape(tensor), dtype=_sample_dtype(tensor))          # [0, 1)
    return _fill(tensor, unit * (b - a) + a)


def normal_(tensor, mean=0.0, std=1.0, rng=None):
    """Fill with values drawn from N(mean, std²)."""
    rng = _default_generator if rng is None else rng
    return _fill(tensor, rng.standard_normal(_shape(tensor), dtype=_sample_dtype(tensor)) * std + mean)


def constant_(tensor, value):
    """Fill with ``value``."""
    return _fill(tensor, np.full(_shape(tensor), value))


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def kaiming_normal_(tensor, mode="fan_out", nonlinearity="relu", rng=None, a=0.0):
    """He initialisation, normal: std = gain / √fan, gain = √2 for ReLU.

    The defaults are what torchvision's ResNets pass (torch's own defaults are mode="fan_in",
    nonlinearity="leaky_relu" with a = 0, the same gain); ``a`` is the leaky-ReLU slope.
    """
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(tensor, mode))
    return normal_(tensor, 0.0, std, rng=rng)


def kaiming_uniform_(tensor, a=0.0, mode="fan_in", nonlinearity="leaky_relu", rng=None):
    """He initialisation, uniform on ±bound with bound = gain · √(3 / fan)."""
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / _fan(tensor, mode))
    return uniform_(tensor, -bound, bound, rng=rng)


def default_layer_init_(weight, bias=None, rng=None):
    """What torch does for a fresh Linear or Conv2d.

    weight: kaiming_uniform_ with a = √5, which works out to uniform on ±1/√fan_in;
    bias: uniform on ±1/√fan_in.
    """
    kaiming_uniform_(weight, a=math.sqrt(5), rng=rng)
    if bias is not None:
        fan_in, _ = calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        uniform_(bias, -bound, bound, rng=rng)


__all__ = ["DEFAULT_SEED", "calculate_fan_in_and_fan_out", "calculate_gain", "constant_", "default_generator",
           "default_layer_init_", "kaiming_normal_", "kaiming_uniform_", "manual_seed",
           "normal_", "ones_", "uniform_", "zeros_"]
