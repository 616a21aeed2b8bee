"""Two tiers of every op: the plain one a student reads, and the fast kernels verified against it.

- ``tinyresnet/ops/`` is the **plain** tier: each op written as the handout derives it.
- ``tinyresnet/kernels/`` is the **fast** tier: some of those ops again, with batch slices,
  threads, reused buffers and layout tricks; each one subclasses the plain op it accelerates and
  is tested to give the same values and gradients. A student's release leaves it out.

``use_kernels("plain")`` or ``use_kernels("fast")`` chooses for the whole process, or, used as
``with use_kernels("plain"): ...``, for a block only. The default is ``"fast"``: the fast kernel
where one exists, the plain op everywhere else (and everywhere in a release, which has no fast
kernels). ``TINYRESNET_KERNELS=plain`` in the environment starts a process on the plain tier.

The functional layer asks ``implementation(PlainOp)`` for the class to run on every call.
"""

import contextlib
import importlib
import os

TIERS = ("plain", "fast")
ENV_VAR = "TINYRESNET_KERNELS"


def _check(tier, where):
    if tier not in TIERS:
        raise ValueError(f"{where}: unknown kernel tier {tier!r}; use 'plain' (the readable ops) or 'fast' "
                         f"(the fast kernels where they exist)")
    return tier


_state = {"tier": _check(os.environ.get(ENV_VAR, "fast").strip() or "fast", f"the environment's {ENV_VAR}")}
_fast = {}      # {"package": tinyresnet.kernels or None} once an import was tried


def fast_package():
    """``tinyresnet.kernels`` (the fast tier), or None where it is absent (a student's release)."""
    if "package" not in _fast:
        # only this copy's own kernels folder counts: an editable install's import hook could otherwise
        # hand a student's copy the instructor's kernels
        here = os.path.dirname(os.path.abspath(__file__))
        present = os.path.isdir(os.path.join(here, "kernels"))
        _fast["package"] = importlib.import_module(f"{__package__}.kernels") if present else None
    return _fast["package"]


class use_kernels:
    """Choose the kernel tier: ``"plain"`` (the readable ops) or ``"fast"`` (the fast kernels).

    Called on its own it changes the tier of the whole process; as a context manager it puts the
    previous tier back when the block ends:

        tinyresnet.use_kernels("plain")              # from here on
        with tinyresnet.use_kernels("plain"):        # this block only
            loss = model(x).sum()
    """

    def __init__(self, tier):
        self.tier = _check(tier, "use_kernels")
        self.previous = _state["tier"]
        _state["tier"] = tier

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _state["tier"] = self.previous

    def __repr__(self):
        return f"use_kernels({self.tier!r})"


def get_kernels():
    """The tier chosen now: ``"plain"`` or ``"fast"``."""
    return _state["tier"]


def fast_kernels_active():
    """True when the fast tier is chosen and this copy of tinyresnet has it."""
    return _state["tier"] == "fast" and fast_package() is not None


def implementation(plain_op):
    """The Function class to run for ``plain_op``: its fast kernel on the fast tier, where one exists."""
    if _state["tier"] == "fast":
        package = fast_package()
        if package is not None:
            return package.FAST_KERNELS.get(plain_op, plain_op)
    return plain_op


@contextlib.contextmanager
def compute_settings(num_threads=None):
    """What the fast kernels need around a training run, put back afterwards.

    On the fast tier: the convolutions deal their batch slices out to ``num_threads`` threads of
    their own (None: as many as NumPy's BLAS had), BLAS on one thread inside each
    (``kernels.threads.num_threads``), and glibc keeps freed memory for the next step
    (``kernels.memory.keep_freed_memory``, a setting of the whole process that stays). On the
    plain tier, or without the fast kernels, it changes nothing: the plain ops use BLAS's threads.
    """
    if not fast_kernels_active():
        yield
        return
    package = fast_package()
    package.keep_freed_memory()
    with package.num_threads(num_threads):
        yield
