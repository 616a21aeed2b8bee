"""backend.set_num_threads: the convolutions' batch slices on threads of tinyresnet's own, BLAS on one
thread each. That the results equal the one-thread ones is checked with the fast paths
(tests/test_fast_paths.py, the ``threads`` fixture); here, the setting itself."""

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from tinyresnet import backend
from tinyresnet.ops import conv
from tinyresnet.ops.conv import Conv2dFunction


def blas_threads():
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def test_set_num_threads_limits_blas_to_one_thread_and_runs_the_slices_on_distinct_threads(restore_threads):
    backend.set_num_threads(2)
    assert backend.get_num_threads() == 2
    assert set(blas_threads()) <= {1}
    idents = backend.for_each_thread(lambda share: (threading.get_ident(), share), list(range(5)))
    assert [share for _, share in idents] == [[0, 2, 4], [1, 3]]           # dealt out round-robin
    assert len({ident for ident, _ in idents}) == 2


def test_default_takes_blas_thread_count_from_before_the_first_call(restore_threads, monkeypatch):
    monkeypatch.delitem(backend._threads, "blas", raising=False)
    with threadpool_limits(3, user_api="blas"):
        backend.set_num_threads()
        assert backend.get_num_threads() == 3
        backend.set_num_threads()                 # BLAS is on one thread now; the count it had is kept
        assert backend.get_num_threads() == 3
    backend.set_num_threads(1)
    assert backend.get_num_threads() == 1
    assert backend.for_each_thread(lambda share: share, [1, 2, 3]) == [[1, 2, 3]]   # one thread: just a call


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_set_num_threads_rejects_what_is_not_a_thread_count(bad, restore_threads):
    with pytest.raises(ValueError, match=rf"positive whole number of threads, got {bad!r}"):
        backend.set_num_threads(bad)


def test_gpu_arrays_are_never_split_between_threads(restore_threads):
    from fake_device import fake_cupy
    backend.set_num_threads(4)
    assert backend.for_each_thread(lambda share: share, [1, 2, 3], fake_cupy) == [[1, 2, 3]]


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("n,rows_per_image", [(1, 1024), (7, 16), (64, 16), (128, 1024)])
def test_slices_cover_the_batch_once_with_at_least_one_per_thread(n, rows_per_image, n_threads, restore_threads):
    backend.set_num_threads(n_threads)
    chunks = conv.batch_chunks(n, rows_per_image)
    assert [i for b in chunks for i in range(b.start, b.stop)] == list(range(n))
    assert len(chunks) >= min(n, n_threads)
    blocks = conv.row_blocks(n * rows_per_image)
    assert [i for b in blocks for i in range(b.start, b.stop)] == list(range(n * rows_per_image))
    assert len(blocks) == min(n * rows_per_image, n_threads)


def test_a_conv_on_two_threads_builds_its_columns_on_both(monkeypatch, restore_threads):
    backend.set_num_threads(2)
    seen = set()
    real = conv.im2col

    def spying_im2col(*args, **kwargs):
        seen.add(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(conv, "im2col", spying_im2col)
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((2, 3, 3, 3)).astype(np.float32)
    Conv2dFunction((1, 1), (1, 1), 1).forward(x, w)
    assert len(seen) == 2
