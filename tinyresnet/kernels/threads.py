"""The fast kernels' threads: a convolution's batch slices dealt out to threads of tinyresnet's own.

A fast convolution works on a slice of the batch at a time. With n threads its slices are dealt
out to n threads (NumPy releases the GIL in copies and matrix products), and NumPy's BLAS is held
to one thread meanwhile, so that each matrix product runs on the thread that built its columns.
With BLAS's own threads instead, only the products run on every core: the column copies between
them run on one, while BLAS's idle threads spin on the others.

The setting is scoped: ``with num_threads(n): ...`` puts the previous count and BLAS's own back
when the block ends. The training loop runs inside such a block; nothing changes it on import or
when an object is built. The plain ops never read it.
"""

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

_state = {"n": 1, "pool": None}
_lock = threading.Lock()


def _blas_threads():
    """How many threads NumPy's BLAS runs now (threadpoolctl), 1 if it cannot tell."""
    from threadpoolctl import threadpool_info
    return max([p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"] or [1])


def _check(n):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"num_threads: n must be a positive whole number of threads (or None for BLAS's "
                         f"count), got {n!r}")
    return n


def _set(n):
    if _state["pool"] is not None:
        _state["pool"].shutdown()
    _state["n"] = n
    _state["pool"] = ThreadPoolExecutor(n - 1, thread_name_prefix="tinyresnet") if n > 1 else None   # + the caller


@contextlib.contextmanager
def num_threads(n=None):
    """Inside this block the fast convolutions compute on ``n`` threads, BLAS on one thread each.

    ``n=None`` takes the number of threads BLAS is using when the block starts (so
    ``OPENBLAS_NUM_THREADS`` and the like are respected). On exit the previous count and BLAS's
    own thread count are put back. GPU arrays are never split this way.
    """
    from threadpoolctl import threadpool_limits
    n = _check(_blas_threads() if n is None else n)
    with _lock:
        previous = _state["n"]
        limits = threadpool_limits(1, user_api="blas") if n > 1 else None
        _set(n)
    try:
        yield n
    finally:
        with _lock:
            _set(previous)
            if limits is not None:
                limits.restore_original_limits()


def get_num_threads():
    """How many threads the fast convolutions split their batch slices between now (1 outside ``num_threads``)."""
    return _state["n"]


def for_each_thread(work, items, xp=np):
    """Deal ``items`` out to the compute threads, round-robin, and run ``work(share)`` once per thread.

    The calling thread takes the first share, the pool's threads the others. Returns the results,
    one per share, in order. On one thread (the default), or for GPU arrays, this is ``[work(items)]``.
    """
    pool = _state["pool"]
    n = min(_state["n"], len(items)) if xp is np and pool is not None else 1
    if n <= 1:
        return [work(items)]
    shares = [items[i::n] for i in range(n)]
    futures = [pool.submit(work, share) for share in shares[1:]]
    try:
        first = work(shares[0])
    finally:
        wait(futures)                                 # never leave a thread writing into the arrays
    return [first] + [f.result() for f in futures]
