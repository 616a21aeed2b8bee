"""The fast tier's allocator policy: glibc keeps freed memory for the next training step."""

import ctypes
import ctypes.util
import sys

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_MAX = 32 << 20      # the largest threshold glibc accepts on 64-bit systems: 32 MiB
TRIM_NEVER = 2 ** 31 - 1           # the largest trim threshold mallopt takes (an int): never trim the heap

_kept = {}


def keep_freed_memory():
    """Have the C allocator keep freed memory for the next allocation instead of returning it to the OS.

    A training step allocates and frees the same large arrays (activations, gradients, temporaries)
    every step. By default glibc hands freed memory back to the operating system, so the next step
    asks for it again, and the kernel maps and zeroes every page anew: on a CIFAR ResNet-18 step at
    batch 64 that is about 43,000 page faults and 0.3 s of kernel time per step, a sixth of the step.
    With arrays of up to 32 MiB kept in the heap and the heap never trimmed, the next step reuses the
    same memory: no page faults, and the peak memory is unchanged (the step needs it anyway). Freed
    memory stays with the process until it exits.

    ``fit`` calls this on the fast tier (``tiers.compute_settings``); a script of your own may too.
    It changes a setting of the whole process (glibc's ``mallopt``), once, and for good: glibc has
    no way to read the previous setting back. Returns True where it took effect (Linux with glibc),
    False elsewhere, where it does nothing.
    """
    if "ok" not in _kept:
        _kept["ok"] = False
        name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
        try:
            mallopt = ctypes.CDLL(name).mallopt if name else None
        except (OSError, AttributeError):      # not glibc (musl has no mallopt)
            mallopt = None
        if mallopt is not None:
            # the mmap threshold first: setting either one turns off glibc's own adjustment of both
            _kept["ok"] = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
                mallopt(M_TRIM_THRESHOLD, TRIM_NEVER))
    return _kept["ok"]
