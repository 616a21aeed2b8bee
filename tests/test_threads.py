"""kernels.num_threads: the fast convolutions' batch slices on threads of tinyresnet's own, BLAS on one
thread each, for the length of a block. That the results equal the one-thread ones is checked with the
kernels (tests/test_kernels.py, the ``threads`` fixture); here, the setting itself."""

import threading
import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import tinyresnet as tr
from tinyresnet import functional as F
from tinyresnet import kernels
from tinyresnet.kernels import conv
from tinyresnet.kernels.conv import FastConv2dFunction


def blas_threads():
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def test_num_threads_limits_blas_to_one_thread_inside_and_puts_everything_back():
    with threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        with kernels.num_threads(2) as n:
            assert n == 2 and kernels.get_num_threads() == 2
            assert set(blas_threads()) <= {1}
            def slow(item):                                  # long enough that both threads take some
                time.sleep(0.02)
                return threading.get_ident(), item
            results = kernels.for_each_item(slow, list(range(6)))
            assert [item for _, item in results] == list(range(6))                # in the items' order
            assert len({ident for ident, _ in results}) == 2                       # from both threads
        assert kernels.get_num_threads() == 1 and blas_threads() == before


def test_num_threads_nests_and_is_put_back_after_an_error():
    with kernels.num_threads(3):
        with kernels.num_threads(2):
            assert kernels.get_num_threads() == 2
        assert kernels.get_num_threads() == 3
        with pytest.raises(RuntimeError), kernels.num_threads(2):
            raise RuntimeError("boom")
        assert kernels.get_num_threads() == 3
    assert kernels.get_num_threads() == 1


def test_the_default_is_blas_own_thread_count():
    with threadpool_limits(3, user_api="blas"):
        with kernels.num_threads() as n:
            assert n == 3 == kernels.get_num_threads()
    assert kernels.get_num_threads() == 1
    calls = []
    assert kernels.for_each_item(lambda i: calls.append(i) or -i, [1, 2, 3]) == [-1, -2, -3]   # one thread: a loop
    assert calls == [1, 2, 3]


def test_each_thread_sets_up_once_and_a_late_thread_just_takes_fewer_items():
    """setup runs once per thread that takes an item; a thread held up (here the pool's, by its first item)
    takes fewer items and the others take the rest: every item runs exactly once."""
    states, ran, lock = [], [], threading.Lock()

    def setup():
        with lock:
            states.append(threading.get_ident())
        return threading.get_ident()

    def work(item, state):
        assert state == threading.get_ident()                          # the thread's own state
        if item == 1:
            time.sleep(0.2)                                            # this thread is held up
        with lock:
            ran.append(item)
        return item * 10

    with kernels.num_threads(2):
        assert kernels.for_each_item(work, list(range(40)), setup=setup) == [i * 10 for i in range(40)]
    assert sorted(ran) == list(range(40)) and len(states) == len(set(states)) <= 2


def test_setup_runs_once_per_thread_even_when_it_returns_none():
    calls = []
    with kernels.num_threads(2):
        kernels.for_each_item(lambda item, state: state, list(range(30)), setup=lambda: calls.append(1))
    assert 1 <= len(calls) <= 2


def test_an_error_in_any_item_stops_the_others_and_is_raised():
    taken = []

    def work(item):
        taken.append(item)
        if item == 3:
            raise ValueError("item 3")
        time.sleep(0.005)

    with kernels.num_threads(2), pytest.raises(ValueError, match="item 3"):
        kernels.for_each_item(work, list(range(200)))
    assert len(taken) < 200                                            # no one took all the rest


def test_a_conv_on_threads_gives_the_same_bits_however_its_slices_fall_out(monkeypatch):
    """The weight gradient is summed over the slices in their order, not per thread: runs on 1, 2 and 3 threads,
    with the pool's threads held up at random, give bit-identical gradients."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((12, 6, 6, 16)).astype(np.float32).transpose(0, 3, 1, 2)     # channels-last
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    dout = rng.standard_normal((12, 16, 6, 6)).astype(np.float32)
    monkeypatch.setattr(conv, "ROWS_PER_CHUNK", 36)                   # one image a slice: 12 slices
    real, delays = conv.strided_im2col, np.random.default_rng(12)

    def jittery(*args, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            time.sleep(float(delays.random()) * 0.003)
        return real(*args, **kwargs)
    monkeypatch.setattr(conv, "strided_im2col", jittery)
    grads = []
    for n in (1, 2, 3, 2, 3):
        with kernels.num_threads(n):
            f = FastConv2dFunction((1, 1), (1, 1), 1)
            f.needs_input_grad = (True, True)
            f.forward(x, w)
            grads.append(f.backward(dout))
    for dx, dw in grads[1:]:
        np.testing.assert_array_equal(dw, grads[0][1])
        np.testing.assert_array_equal(dx, grads[0][0])


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_num_threads_rejects_what_is_not_a_thread_count(bad):
    with pytest.raises(ValueError, match=rf"positive whole number of threads .*got {bad!r}"):
        with kernels.num_threads(bad):
            pass


def test_gpu_arrays_are_never_split_between_threads():
    from fake_device import fake_cupy
    with kernels.num_threads(4):
        seen = []
        def work(item):
            seen.append(threading.get_ident())
            return item
        assert kernels.for_each_item(work, [1, 2, 3], fake_cupy) == [1, 2, 3]
        assert set(seen) == {threading.get_ident()}


@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("n,rows_per_image", [(1, 1024), (7, 16), (64, 16), (128, 1024)])
def test_slices_cover_the_batch_once_with_at_least_one_per_thread(n, rows_per_image, n_threads):
    with kernels.num_threads(n_threads):
        chunks = conv.batch_chunks(n, rows_per_image)
        assert [i for b in chunks for i in range(b.start, b.stop)] == list(range(n))
        assert len(chunks) >= min(n, n_threads)
        blocks = conv.row_blocks(n * rows_per_image)
        assert [i for b in blocks for i in range(b.start, b.stop)] == list(range(n * rows_per_image))
        assert len(blocks) == min(n * rows_per_image, n_threads)


def test_narrow_products_get_slices_whose_columns_fit_in_cache():
    """3×3 convolutions of up to 128 channels: slices of columns of about COLUMN_BYTES (512 rows at least);
    wider ones keep ROWS_PER_CHUNK rows; float64 columns take half the rows of float32 ones."""
    assert conv.slice_rows(9 * 16, 16, 4) == conv.ROWS_PER_CHUNK == 2048         # 16 channels: 1.2 MB in 2048 rows
    assert conv.slice_rows(9 * 32, 32, 4) == conv.COLUMN_BYTES // (9 * 32 * 4) == 1137
    assert conv.slice_rows(9 * 32, 32, 8) == 568
    assert conv.slice_rows(9 * 64, 64, 4) == 568
    assert conv.slice_rows(9 * 128, 128, 4) == conv.MIN_ROWS == 512
    assert conv.slice_rows(9 * 256, 256, 4) == conv.slice_rows(9 * 512, 512, 4) == 2048
    with kernels.num_threads(1):
        assert conv.batch_chunks(128, 64, rows=512) == [slice(i, i + 8) for i in range(0, 128, 8)]


def test_a_64_channel_conv_is_sliced_by_its_column_bytes(monkeypatch):
    seen = []
    real = conv.strided_im2col

    def spy(x, *args, **kwargs):
        seen.append(x.shape[0])
        return real(x, *args, **kwargs)
    monkeypatch.setattr(conv, "strided_im2col", spy)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((20, 64, 8, 8)).astype(np.float32)
    weight = rng.standard_normal((64, 64, 3, 3)).astype(np.float32)
    with kernels.num_threads(1):
        kernels.FastConv2dFunction((1, 1), (1, 1), 1).forward(x, weight)
    assert seen == [8, 8, 4]                                          # 568 rows: 8 images of 64 pixels a slice


def test_a_conv_on_two_threads_builds_its_columns_on_both(monkeypatch):
    seen = set()
    real = conv.strided_im2col

    def spying_im2col(*args, **kwargs):
        seen.add(threading.get_ident())
        time.sleep(0.05)                                  # so that the other thread is up before the slices run out
        return real(*args, **kwargs)

    monkeypatch.setattr(conv, "strided_im2col", spying_im2col)
    x = np.random.default_rng(0).standard_normal((4, 3, 5, 5)).astype(np.float32)
    w = np.random.default_rng(1).standard_normal((2, 3, 3, 3)).astype(np.float32)
    with kernels.num_threads(2):
        FastConv2dFunction((1, 1), (1, 1), 1).forward(x, w)
    assert len(seen) == 2


def _conv_step_threads(monkeypatch):
    """Run a fast conv forward and backward; return (threads, BLAS threads) seen inside each call's slices."""
    from tinyresnet.kernels import conv as fast_conv
    seen, real = [], fast_conv.for_each_item

    def spy(work, items, xp=np, setup=None):
        seen.append((kernels.get_num_threads(), tuple(blas_threads())))
        return real(work, items, xp, setup)
    monkeypatch.setattr(fast_conv, "for_each_item", spy)
    rng = np.random.default_rng(0)
    x = tr.tensor(rng.standard_normal((4, 3, 6, 6)), requires_grad=True)
    w = tr.tensor(rng.standard_normal((5, 3, 3, 3)), requires_grad=True)
    with tr.use_kernels("fast"):
        F.conv2d(x, w, padding=1).sum().backward()
    return seen


def test_a_users_own_loop_gets_the_kernels_threads_for_each_call_and_blas_back_after(monkeypatch):
    with threadpool_limits(2, user_api="blas"):
        seen = _conv_step_threads(monkeypatch)
        assert seen == [(2, (1,))] * 2                       # forward and backward: 2 threads, BLAS on one
        assert kernels.get_num_threads() == 1 and blas_threads() == [2]   # nothing left changed


def test_one_blas_thread_or_a_num_threads_block_keeps_its_count(monkeypatch):
    with threadpool_limits(1, user_api="blas"):
        assert _conv_step_threads(monkeypatch) == [(1, (1,))] * 2
    with threadpool_limits(2, user_api="blas"), kernels.num_threads(1):
        assert _conv_step_threads(monkeypatch) == [(1, (2,))] * 2     # the block said one thread: BLAS keeps 2
