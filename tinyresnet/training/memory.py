"""Will a training step fit? An estimate of its memory, measured on a small probe batch, checked
before the first step so that a batch too large fails at once with the largest one that fits,
instead of swapping or being killed by the system after minutes.

What a step holds at its peak, by what the engine keeps (``autograd``: each op keeps only what its
backward reads):

- per image: the arrays the recorded ops save for backward (measured: a forward pass on ``probe``
  images, summing every saved array once), and a working set for backward of ``WORKSPACE`` times
  the largest single map (the gradient flowing in, the one going out, a batch-norm temporary);
- fixed: the parameters, their gradients, and the optimiser's state (one momentum buffer for SGD,
  two moments for Adam), as many bytes again as the parameters each.
"""

import numpy as np

from ..autograd import Tensor, _topological_order

WORKSPACE = 4                  # backward's transient maps, in units of the largest saved map
GIB = 2 ** 30


def _base(a):
    while getattr(a, "base", None) is not None:
        a = a.base
    return a


def _saved_arrays(fn):
    """The arrays a recorded function keeps for backward (its attributes, and arrays in lists of them)."""
    for value in vars(fn).values():
        for item in (value if isinstance(value, (list, tuple)) else (value,)):
            if hasattr(item, "nbytes") and hasattr(item, "shape") and getattr(item, "ndim", 0) > 0:
                yield item


def estimate_step_bytes(model, image_shape, batch_size, optimizer_buffers=1, dtype=np.float32, probe=2,
                        device="cpu"):
    """``(total, per_image, fixed)``: the estimated peak bytes of a training step of ``model`` at
    ``batch_size`` images of ``image_shape`` (C, H, W), the part that grows with each image, and the
    part that does not (parameters, gradients, ``optimizer_buffers`` arrays per parameter).
    The model's batch-norm statistics are put back after the probe's forward pass."""
    from ..backend import to_device

    params = {id(_base(p.data)) for p in model.parameters()}
    fixed = sum(int(p.data.nbytes) for p in model.parameters()) * (2 + optimizer_buffers)
    buffers = [(b, b.copy()) for _, b in model.named_buffers()]
    was_training = model.training
    x = Tensor(to_device(np.zeros((probe, *image_shape), dtype=dtype), device))
    try:
        model.train()
        out = model(x)
        seen, saved, largest = set(), 0, 0
        if out.creator is not None:
            for fn in _topological_order(out.creator):
                for a in _saved_arrays(fn):
                    base = _base(a)
                    if id(base) in seen or id(base) in params:
                        continue
                    seen.add(id(base))
                    saved += int(base.nbytes)
                    largest = max(largest, int(base.nbytes))
        del out
    finally:
        for array, kept in buffers:
            array[...] = kept
        model.train(was_training)
    per_image = (saved + WORKSPACE * largest) / probe
    return int(fixed + per_image * batch_size), per_image, fixed


def available_bytes(device="cpu"):
    """Memory a step can still take: on the GPU what CuPy reports free (and its pool holds unused);
    on Linux the kernel's MemAvailable, or less under a container's limit (cgroup v2); None where
    it cannot be told (other systems)."""
    if device == "cuda":
        from ..backend import _cuda_module

        xp = _cuda_module()                       # CuPy, or a test's stand-in (which tells nothing)
        try:
            free, _ = xp.cuda.Device().mem_info
            return int(free + xp.get_default_memory_pool().free_bytes())
        except AttributeError:
            return None
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
        available = info["MemAvailable"]
    except (OSError, KeyError, ValueError, IndexError):
        return None
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if limit != "max":
            available = min(available, int(limit) - used)
    except (OSError, ValueError):
        pass
    return available


def check_step_fits(model, image_shape, batch_size, optimizer_buffers=1, device="cpu", available=None):
    """Raise MemoryError before a step that cannot fit: the estimate, what is available, and the
    largest batch that fits. ``available`` defaults to ``available_bytes(device)``; where that is
    unknown, nothing is checked. Returns the estimate (bytes)."""
    total, per_image, fixed = estimate_step_bytes(model, image_shape, batch_size, optimizer_buffers,
                                                  dtype=_param_dtype(model), device=device)
    available = available_bytes(device) if available is None else available
    if available is None or total <= available:
        return total
    largest = int((available - fixed) // per_image) if available > fixed else 0
    fix = (f"the largest batch that fits is about {largest}: pass --batch-size {largest} (or smaller)"
           if largest >= 1 else "not even one image fits: free memory, or choose a smaller model or image size")
    raise MemoryError(f"a training step at batch {batch_size} of {tuple(image_shape)} images needs about "
                      f"{total / GIB:.1f} GiB ({per_image * batch_size / GIB:.1f} GiB for the batch's maps, "
                      f"{fixed / GIB:.2f} GiB for the weights, their gradients and the optimiser's state), "
                      f"but {available / GIB:.1f} GiB is available on {device}; {fix}")


def _param_dtype(model):
    for p in model.parameters():
        return p.data.dtype
    return np.float32

