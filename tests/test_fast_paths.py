"""The optimised ops equal their plain versions: conv by chunks of the batch and by a gather, the 1×1
conv as one matrix product (both on one thread and with the batch's slices dealt out to several),
batch norm with einsum sums and in-place steps; ReLU keeps the layout.

The plain versions live here, written the way a student writes them the first time (im2col by a
loop over window offsets, one matrix product for the whole batch, dx by col2im, batch norm's three
terms as separate arrays): the student's copy of the package must not carry a solution, so the
references stay with the tests. Each comparison runs in float32 and float64, on inputs laid out
NCHW and channels-last (the layout the fast conv produces), with the batch split into several
uneven chunks; gradient checks run on the chunked paths in float64.
"""

import numpy as np
import pytest

from tinyresnet import Tensor, backend
from tinyresnet import functional as F
from tinyresnet.gradcheck import assert_gradcheck
from tinyresnet.ops import conv
from tinyresnet.ops.activation import ReLUFunction
from tinyresnet.ops.conv import Conv1x1Function, Conv2dFunction, col2im, im2col
from tinyresnet.ops.norm import BatchNorm2dFunction

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}


# ------------------------------------------------------------------------------ plain references
def im2col_loops(x, kh, kw, stride, padding, out=None):
    """Row (n, oh, ow) = the window at (oh, ow) of image n, ordered (kh, kw, c): one offset at a time.

    It ignores ``out``, as a student's version may: conv2d uses the array im2col returns."""
    (sh, sw), (ph, pw) = stride, padding
    N, C, H, W = x.shape
    OH, OW = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    xpad = np.zeros((N, H + 2 * ph, W + 2 * pw, C), dtype=x.dtype)
    xpad[:, ph:ph + H, pw:pw + W, :] = x.transpose(0, 2, 3, 1)
    cols = np.empty((N, OH, OW, kh, kw, C), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = xpad[:, i:i + sh * OH:sh, j:j + sw * OW:sw, :]
    return cols.reshape(N * OH * OW, kh * kw * C)


def conv_plain(x, weight, dout, stride, padding, groups):
    """Forward, dx, dweight of a grouped conv: the whole batch's columns at once, dx by col2im."""
    N, C, H, W = x.shape
    OC, Cg, KH, KW = weight.shape
    OCg = OC // groups
    OH, OW = dout.shape[2:]
    dout_mat = dout.transpose(0, 2, 3, 1).reshape(N * OH * OW, OC)
    outs, dxs, dws = [], [], []
    for g in range(groups):
        cols = im2col_loops(x[:, g * Cg:(g + 1) * Cg], KH, KW, stride, padding)
        wmat = weight[g * OCg:(g + 1) * OCg].transpose(2, 3, 1, 0).reshape(KH * KW * Cg, OCg)
        d = dout_mat[:, g * OCg:(g + 1) * OCg]
        outs.append(cols @ wmat)
        dws.append((cols.T @ d).reshape(KH, KW, Cg, OCg).transpose(3, 2, 0, 1))
        dxs.append(col2im(d @ wmat.T, (N, Cg, H, W), KH, KW, stride, padding))
    out = np.concatenate(outs, axis=1).reshape(N, OH, OW, OC).transpose(0, 3, 1, 2)
    return out, np.concatenate(dxs, axis=1), np.concatenate(dws, axis=0)


def batch_norm_plain(x, weight, dout, eps=1e-5):
    """Training-mode batch norm forward and dx, dγ, dβ with every intermediate as its own array."""
    axes = (0, 2, 3)
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    xhat = (x - mean) / np.sqrt(var + eps)
    gamma = weight[None, :, None, None]
    dxhat = dout * gamma
    dx = (dxhat - dxhat.mean(axis=axes, keepdims=True)
          - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True)) / np.sqrt(var + eps)
    return xhat * gamma, dx, (dout * xhat).sum(axis=axes), dout.sum(axis=axes)


def channels_last(a):
    """The same values as ``a`` (N, C, H, W), stored channels-last, as the fast conv returns them."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def run(fn, *inputs, dout):
    """fn's forward on raw arrays, then its backward with every input wanting a gradient."""
    fn.needs_input_grad = (True,) * len(inputs)
    out = fn.forward(*inputs)
    return out, fn.backward(dout)


# ------------------------------------------------------------------------------ im2col
IM2COL_CASES = [  # (N, C, H, W), (kh, kw), stride, padding
    ((2, 3, 5, 7), (3, 3), (1, 1), (1, 1)),
    ((3, 2, 8, 6), (3, 3), (2, 2), (1, 1)),
    ((1, 4, 9, 9), (7, 7), (2, 2), (3, 3)),
    ((2, 3, 6, 5), (3, 2), (2, 1), (1, 0)),
    ((2, 5, 4, 4), (1, 1), (1, 1), (0, 0)),
    ((1, 2, 3, 4), (3, 3), (1, 1), (3, 3)),     # padding larger than the kernel
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", [np.ascontiguousarray, channels_last])
@pytest.mark.parametrize("shape,kernel,stride,padding", IM2COL_CASES)
def test_im2col_by_a_strided_view_equals_the_loop_over_offsets(shape, kernel, stride, padding, layout, dtype):
    x = layout(np.random.default_rng(0).standard_normal(shape).astype(dtype))
    cols = im2col(x, *kernel, stride, padding)
    assert cols.dtype == dtype and cols.flags.c_contiguous
    np.testing.assert_array_equal(cols, im2col_loops(x, *kernel, stride, padding))


def test_im2col_of_a_sliced_batch_equals_the_slice_of_the_whole():
    x = np.random.default_rng(1).standard_normal((5, 6, 7, 7))
    rows = 7 * 7
    np.testing.assert_array_equal(im2col(x[2:4, 1:4], 3, 3, (1, 1), (1, 1)),
                                  im2col(x[:, 1:4], 3, 3, (1, 1), (1, 1))[2 * rows:4 * rows])


def test_im2col_into_a_given_array_writes_it_and_returns_it():
    x = channels_last(np.random.default_rng(2).standard_normal((3, 4, 6, 5)))
    want = im2col(x, 3, 3, (1, 1), (1, 1))
    out = np.full(want.shape, np.nan)
    got = im2col(x, 3, 3, (1, 1), (1, 1), out=out)
    assert got is out
    np.testing.assert_array_equal(out, want)


def test_conv_reuses_one_column_buffer_for_every_slice_of_the_batch(monkeypatch):
    """Forward hands im2col the same array (a prefix of it for the shorter last slice) for every slice."""
    monkeypatch.setattr(conv, "ROWS_PER_CHUNK", 2 * 36)          # 2 images of 6×6 outputs per slice
    seen = []

    def spy(x, kh, kw, stride, padding, out=None):
        seen.append(out)
        return im2col(x, kh, kw, stride, padding, out=out)
    monkeypatch.setattr(conv, "im2col", spy)
    rng = np.random.default_rng(3)
    x, weight = rng.standard_normal((5, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    run(Conv2dFunction((1, 1), (1, 1), 1), x, weight, dout=rng.standard_normal((5, 3, 6, 6)))
    forward = seen[:3]                                            # slices of 2, 2 and 1 images
    assert [b.shape[0] for b in forward] == [72, 72, 36]
    assert all(np.shares_memory(b, forward[0]) for b in forward)


# ------------------------------------------------------------------------------ conv2d
CONV_CASES = [  # N, C, H, W, OC, (kh, kw), stride, padding, groups
    pytest.param(7, 3, 6, 5, 4, (3, 3), (1, 1), (1, 1), 1, id="3x3-s1-gather"),
    pytest.param(5, 4, 7, 6, 6, (3, 3), (2, 2), (1, 1), 2, id="3x3-s2-scatter-groups2"),
    pytest.param(3, 2, 9, 9, 3, (7, 7), (2, 2), (3, 3), 1, id="7x7-s2-stem"),
    pytest.param(4, 4, 5, 6, 8, (3, 3), (1, 1), (1, 1), 4, id="3x3-s1-depthwise"),
    pytest.param(3, 3, 5, 4, 2, (3, 2), (1, 1), (2, 0), 1, id="3x2-s1-pad-2x0"),
    pytest.param(2, 2, 4, 4, 3, (3, 3), (1, 1), (3, 3), 1, id="3x3-s1-pad3-scatter"),
]


@pytest.fixture(params=[1, 3], ids=["1-thread", "3-threads"])
def threads(request, restore_threads):
    """The ops on 1 thread, or with the batch's slices dealt out to 3 (uneven shares)."""
    backend.set_num_threads(request.param)
    return request.param


@pytest.fixture(params=[1, 40, 10 ** 6], ids=["one-image-chunks", "uneven-chunks", "one-chunk"])
def chunk_rows(request, monkeypatch):
    """ROWS_PER_CHUNK so that the batch is cut into one image per chunk, uneven chunks, or not at all."""
    monkeypatch.setattr(conv, "ROWS_PER_CHUNK", request.param)
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N,C,H,W,OC,kernel,stride,padding,groups", CONV_CASES)
def test_conv_by_chunks_equals_the_whole_batch_at_once(N, C, H, W, OC, kernel, stride, padding, groups, dtype,
                                                       chunk_rows, threads):
    rng = np.random.default_rng(2)
    x = channels_last(rng.standard_normal((N, C, H, W)).astype(dtype))
    weight = rng.standard_normal((OC, C // groups) + kernel).astype(dtype)
    bias = rng.standard_normal(OC).astype(dtype)
    OH, OW = [(n + 2 * p - k) // s + 1 for n, k, s, p in zip((H, W), kernel, stride, padding)]
    dout = rng.standard_normal((N, OC, OH, OW)).astype(dtype)
    out, (dx, dweight, dbias) = run(Conv2dFunction(stride, padding, groups), x, weight, bias, dout=dout)
    out_ref, dx_ref, dweight_ref = conv_plain(x, weight, dout, stride, padding, groups)
    for got, want in ((out, out_ref + bias[:, None, None]), (dx, dx_ref), (dweight, dweight_ref),
                      (dbias, dout.sum(axis=(0, 2, 3)))):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, **TOL[dtype])


@pytest.mark.parametrize("N,C,H,W,OC,kernel,stride,padding,groups", CONV_CASES)
def test_conv_by_chunks_passes_gradcheck(N, C, H, W, OC, kernel, stride, padding, groups, monkeypatch, threads):
    monkeypatch.setattr(conv, "ROWS_PER_CHUNK", 40)
    rng = np.random.default_rng(3)
    x = channels_last(rng.standard_normal((min(N, 3), C, H, W)))
    weight = rng.standard_normal((OC, C // groups) + kernel)
    assert_gradcheck(lambda x, w: F.conv2d_im2col(x, w, None, stride, padding, groups), [x, weight],
                     names=["x", "weight"])


def test_conv_output_is_channels_last_and_nothing_but_x_is_kept_for_backward():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 8, 6, 6)).astype(np.float32)
    weight = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    fn = Conv2dFunction((1, 1), (1, 1), 1)
    out = fn(Tensor(x, requires_grad=True), Tensor(weight, requires_grad=True))
    assert out.data.transpose(0, 2, 3, 1).flags.c_contiguous          # (N, OC, OH, OW) over NHWC memory
    kept = [v for v in vars(fn).values() if hasattr(v, "nbytes")]
    assert sum(v.nbytes for v in kept) <= x.nbytes + weight.nbytes     # no 9×-sized columns saved


def test_conv_works_with_a_students_loop_im2col(monkeypatch):
    """A student's im2col (the loop version) plugs into the engine: forward and backward agree."""
    rng = np.random.default_rng(5)
    x, weight = rng.standard_normal((3, 4, 6, 6)), rng.standard_normal((5, 4, 3, 3))
    dout = rng.standard_normal((3, 5, 6, 6))
    fast = run(Conv2dFunction((1, 1), (1, 1), 1), x, weight, dout=dout)
    monkeypatch.setattr(conv, "im2col", im2col_loops)
    plain = run(Conv2dFunction((1, 1), (1, 1), 1), x, weight, dout=dout)
    for got, want in zip([fast[0], *fast[1]], [plain[0], *plain[1]]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------ 1×1 conv
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", [np.ascontiguousarray, channels_last])
@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (2, 1)])
def test_1x1_conv_as_one_product_equals_the_im2col_conv(stride, layout, dtype, threads):
    rng = np.random.default_rng(6)
    x = layout(rng.standard_normal((3, 5, 7, 6)).astype(dtype))
    weight = rng.standard_normal((4, 5, 1, 1)).astype(dtype)
    bias = rng.standard_normal(4).astype(dtype)
    OH, OW = -(-7 // stride[0]), -(-6 // stride[1])
    dout = rng.standard_normal((3, 4, OH, OW)).astype(dtype)
    out, grads = run(Conv1x1Function(stride), x, weight, bias, dout=dout)
    out_ref, dx_ref, dweight_ref = conv_plain(x, weight, dout, stride, (0, 0), 1)
    for got, want in zip((out, *grads), (out_ref + bias[:, None, None], dx_ref, dweight_ref, dout.sum(axis=(0, 2, 3)))):
        assert got.dtype == dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, **TOL[dtype])


@pytest.mark.parametrize("stride", [1, 2])
def test_1x1_conv_passes_gradcheck_on_channels_last_input(stride, threads):
    rng = np.random.default_rng(7)
    x = channels_last(rng.standard_normal((2, 3, 5, 4)))
    assert_gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=stride), [x, rng.standard_normal((4, 3, 1, 1)),
                                                                        rng.standard_normal(4)])


# ------------------------------------------------------------------------------ batch norm, ReLU
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", [np.ascontiguousarray, channels_last])
def test_batch_norm_equals_the_three_term_formula(layout, dtype):
    rng = np.random.default_rng(8)
    x = layout((rng.standard_normal((6, 3, 5, 4)) * 3 + 2).astype(dtype))
    weight, bias = rng.standard_normal(3).astype(dtype), rng.standard_normal(3).astype(dtype)
    dout = layout(rng.standard_normal(x.shape).astype(dtype))
    out, (dx, dweight, dbias) = run(BatchNorm2dFunction(training=True), x, weight, bias, dout=dout)
    out_ref, dx_ref, dweight_ref, dbias_ref = batch_norm_plain(x.astype(np.float64), weight, dout)
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else TOL[dtype]
    for got, want in ((out, out_ref + bias[:, None, None]), (dx, dx_ref), (dweight, dweight_ref), (dbias, dbias_ref)):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm_eval_as_one_scale_and_shift_equals_the_formula(dtype):
    rng = np.random.default_rng(12)
    x = channels_last(rng.standard_normal((4, 3, 5, 2)).astype(dtype))
    weight, bias, dout = rng.standard_normal(3), rng.standard_normal(3), rng.standard_normal(x.shape)
    weight, bias, dout = weight.astype(dtype), bias.astype(dtype), dout.astype(dtype)
    running_mean, running_var = rng.standard_normal(3), rng.random(3) + 0.5
    fn = BatchNorm2dFunction(running_mean.copy(), running_var.copy(), training=False)
    out, (dx, dweight, dbias) = run(fn, x, weight, bias, dout=dout)
    invstd = 1 / np.sqrt(running_var + 1e-5)[:, None, None]
    xhat = (x - running_mean[:, None, None]) * invstd
    for got, want in ((out, xhat * weight[:, None, None] + bias[:, None, None]),
                      (dx, dout * weight[:, None, None] * invstd), (dweight, (dout * xhat).sum(axis=(0, 2, 3))),
                      (dbias, dout.sum(axis=(0, 2, 3)))):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **(TOL[dtype] if dtype == np.float64 else dict(rtol=1e-4, atol=1e-4)))
    np.testing.assert_array_equal(fn.running_mean, running_mean)     # eval leaves the statistics alone


def test_batch_norm_backward_leaves_dout_alone():
    """dout may be shared with another branch (the skip connection): in-place steps must not touch it."""
    rng = np.random.default_rng(9)
    x, dout = channels_last(rng.standard_normal((4, 3, 3, 3))), rng.standard_normal((4, 3, 3, 3))
    for weight in (None, np.ones(3)):
        kept = dout.copy()
        fn = BatchNorm2dFunction(training=True)
        run(fn, *([x] if weight is None else [x, weight]), dout=dout)
        np.testing.assert_array_equal(dout, kept)


def test_batch_norm_passes_gradcheck_on_channels_last_input():
    rng = np.random.default_rng(10)
    x = channels_last(rng.standard_normal((3, 2, 4, 3)) * 2 + 1)
    assert_gradcheck(lambda x, w, b: F.batch_norm(x, np.zeros(2), np.ones(2), w, b, training=True),
                     [x, rng.standard_normal(2), rng.standard_normal(2)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_keeps_the_channels_last_layout_and_equals_the_mask_product(dtype):
    rng = np.random.default_rng(11)
    x = channels_last(rng.standard_normal((2, 3, 4, 5)).astype(dtype))
    x[0, 0, 0, :2] = 0.0
    dout = rng.standard_normal(x.shape).astype(dtype)
    out, dx = run(ReLUFunction(), x, dout=dout)
    assert out.dtype == dtype and out.transpose(0, 2, 3, 1).flags.c_contiguous     # the layout is kept
    np.testing.assert_array_equal(out, x * (x > 0))
    np.testing.assert_array_equal(dx, dout * (x > 0))


# ------------------------------------------------------------------------------ max pool
@pytest.mark.parametrize("layout", [np.ascontiguousarray, channels_last])
def test_max_pool_keeps_the_layout_and_saves_no_argmax_under_no_grad(layout):
    from tinyresnet import no_grad
    from tinyresnet.ops.pool import MaxPool2dFunction
    x = layout(np.random.default_rng(12).standard_normal((2, 3, 7, 7)))
    with_grad = MaxPool2dFunction((3, 3), (2, 2), (1, 1))
    out = with_grad(Tensor(x, requires_grad=True)).data
    with no_grad():
        fn = MaxPool2dFunction((3, 3), (2, 2), (1, 1))
        out_no_grad = fn(Tensor(x, requires_grad=True)).data
    assert fn.needs_input_grad == (False,) and fn.argmax is None and with_grad.argmax is not None
    np.testing.assert_array_equal(out_no_grad, out)
    np.testing.assert_array_equal(out, F.max_pool2d(Tensor(np.ascontiguousarray(x)), 3, 2, 1).data)
    if layout is channels_last:
        assert out.transpose(0, 2, 3, 1).flags.c_contiguous


def test_max_pool_propagates_nan_as_pytorch_does():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = np.nan
    out = F.max_pool2d(Tensor(x), 2).data
    assert np.isnan(out[0, 0, 0, 0]) and not np.isnan(out[0, 0, 1:, 1:]).any()
