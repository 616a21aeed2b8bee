"""The fast kernels' threads: a convolution's batch slices taken in turn by threads of tinyresnet's own.

A fast convolution works on a slice of the batch at a time. With n threads, n threads take its
slices, each the next one free (``for_each_item``; NumPy releases the GIL in copies and matrix
products), and NumPy's BLAS is held to one thread meanwhile, so that each matrix product runs on
the thread that built its columns.
With BLAS's own threads instead, only the products run on every core: the column copies between
them run on one, while BLAS's idle threads spin on the others.

By default (no ``num_threads`` block) every fast kernel call does this for itself: it takes as
many threads as BLAS has when the call starts, holds BLAS to one thread for the length of the call
and gives it its own count back on return (``kernel_threads``), so that a user's own training loop
runs as fast as the Trainer without calling anything. ``with num_threads(n): ...`` sets the count
for a whole block instead (the training loop runs inside one) and puts the previous count and
BLAS's own back when the block ends. Nothing changes on import or when an object is built, and
nothing stays changed after a call returns. The plain ops never read any of it.
"""

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

_state = {"n": 1, "pool": None, "block": False}   # the count now, its pool, whether a num_threads block set it
_default = {"n": 0, "pool": None, "depth": 0, "limits": None}   # the kernels' own threads, outside any block
_lock = threading.Lock()
_blas = {}


def _blas_controller():
    """threadpoolctl's controller of NumPy's BLAS, made once (finding the libraries takes milliseconds;
    reading and setting their thread counts through it then takes microseconds)."""
    if "controller" not in _blas:
        from threadpoolctl import ThreadpoolController
        _blas["controller"] = ThreadpoolController().select(user_api="blas")
    return _blas["controller"]


def _blas_threads():
    """How many threads NumPy's BLAS runs now (threadpoolctl), 1 if it cannot tell."""
    return max([lib.num_threads for lib in _blas_controller().lib_controllers] or [1])


def _check(n):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"num_threads: n must be a positive whole number of threads (or None for BLAS's "
                         f"count), got {n!r}")
    return n


def _pool(n):
    return ThreadPoolExecutor(n - 1, thread_name_prefix="tinyresnet") if n > 1 else None   # + the calling thread


def _set(n, block=True):
    if _state["pool"] is not None and _state["pool"] is not _default["pool"]:
        _state["pool"].shutdown()
    _state.update(n=n, pool=_pool(n), block=block)


@contextlib.contextmanager
def num_threads(n=None):
    """Inside this block the fast convolutions compute on ``n`` threads, BLAS on one thread each.

    ``n=None`` takes the number of threads BLAS is using when the block starts (so
    ``OPENBLAS_NUM_THREADS`` and the like are respected). On exit the previous count and BLAS's
    own thread count are put back. GPU arrays are never split this way.
    """
    n = _check(_blas_threads() if n is None else n)
    with _lock:
        previous = _state["n"], _state["block"]
        limits = _blas_controller().limit(limits=1) if n > 1 else None
        _set(n)
    try:
        yield n
    finally:
        with _lock:
            _set(*previous)
            if limits is not None:
                limits.restore_original_limits()


@contextlib.contextmanager
def kernel_threads(xp=np):
    """One fast kernel call's threads, where no ``num_threads`` block has set them.

    The call runs on as many threads as BLAS has as it starts (so ``OPENBLAS_NUM_THREADS=1`` keeps
    it on one), with BLAS held to one thread each until it returns: the same split as inside
    ``num_threads()``, for a user's own loop. Inside a block, on one BLAS thread, or for GPU arrays
    (never split), it changes nothing. The pool is made once and kept for later calls; BLAS gets its
    own count back as the call returns. Calls on several threads of a user's at once share one scope
    (the first in sets it, the last out puts BLAS back).
    """
    if xp is not np or _state["block"]:
        yield
        return
    with _lock:
        if _default["depth"] == 0:
            n = _blas_threads()
            if n > 1:
                if _default["n"] != n:
                    if _default["pool"] is not None:
                        _default["pool"].shutdown()
                    _default.update(n=n, pool=_pool(n))
                _default["limits"] = _blas_controller().limit(limits=1)
                _state.update(n=n, pool=_default["pool"])
        _default["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _default["depth"] -= 1
            if _default["depth"] == 0 and _default["limits"] is not None:
                _state.update(n=1, pool=None)
                _default["limits"].restore_original_limits()
                _default["limits"] = None


def uses_threads(method):
    """Decorate a fast kernel's forward or backward so that it runs in ``kernel_threads`` (its first array
    argument tells NumPy from CuPy)."""
    from functools import wraps

    from ..backend import get_array_module

    @wraps(method)
    def run(self, first, *args, **kwargs):
        with kernel_threads(get_array_module(first)):
            return method(self, first, *args, **kwargs)
    return run


def get_num_threads():
    """How many threads the fast kernels split their work between now: inside ``num_threads(n)``, n; inside a
    fast kernel's own call, BLAS's count; elsewhere 1."""
    return _state["n"]


def for_each_item(work, items, xp=np, setup=None):
    """Run ``work`` on every item, on the compute threads: each thread takes the next item not yet taken as soon
    as it is free, so that a thread that starts late (a sleeping thread takes about 0.1 ms to wake on this
    machine) or runs slower (its core busy with something else) simply does fewer. Returns ``[work(item), ...]``
    in the items' order, whichever thread ran each, so that a sum of the results in that order is the same,
    bit for bit, however the items fell out.

    ``setup``, if given, is called once by each thread, before its first item, for what that thread reuses from
    item to item (its buffers); ``work(item, state)`` then gets it. On one thread (the default), or for GPU
    arrays, the calling thread runs every item in order. The calling thread takes part; an error in any item
    stops the others taking more and is raised here, once every thread has stopped.

    Measured against dealing the items out round-robin beforehand (ResNet-20's step at batch 128, 2 threads,
    8 steps, 3 alternating runs): the calling thread's wait for the others at the end of each call 67-77 ms
    per step against 32-47 ms.
    """
    pool = _state["pool"]
    n = min(_state["n"], len(items)) if xp is np and pool is not None else 1
    results = [None] * len(items)
    taken, lock, failed = iter(range(len(items))), threading.Lock(), []

    def run():
        state = ()                                    # this thread's setup(), once it has taken an item
        while True:
            with lock:
                i = None if failed else next(taken, None)
            if i is None:
                return
            try:
                if setup is not None and state == ():
                    state = (setup(),)
                results[i] = work(items[i], *state)
            except BaseException:
                failed.append(True)
                raise

    if n <= 1:
        run()
        return results
    futures = [pool.submit(run) for _ in range(n - 1)]
    try:
        run()
    finally:
        wait(futures)                                 # never leave a thread writing into the arrays
    for future in futures:
        future.result()                               # a pool thread's error, raised here
    return results
