"""The fast tier equals the plain one: every kernel of ``tinyresnet.kernels`` against the plain op of
``tinyresnet.ops`` it accelerates, forward and backward, float64 to 1e-12 and float32 to 1e-5
relative (to the largest value compared), on NCHW and channels-last inputs (the layout the
convolutions produce), with the batch cut into one, several and uneven slices, on one thread and
three. Gradient checks run on the sliced, threaded paths in float64. Then what only the fast
kernels promise: one reused column buffer, nothing but x kept for backward, no argmax under
``no_grad``. The plain ops themselves are checked against loop references in tests/test_ops_*.py.
"""

import numpy as np
import pytest

import tinyresnet
import tinyresnet.tiers
from tinyresnet import Tensor, kernels, no_grad
from tinyresnet import functional as F
from tinyresnet.gradcheck import assert_gradcheck
from tinyresnet.kernels import conv as fast_conv
from tinyresnet.kernels.rows import pixel_rows
from tinyresnet.ops.activation import ReLUFunction
from tinyresnet.ops.basic import AddFunction
from tinyresnet.ops.conv import Conv1x1Function, Conv2dFunction, im2col
from tinyresnet.ops.norm import BatchNorm2dFunction
from tinyresnet.ops.pool import MaxPool2dFunction

RTOL = {np.float32: 1e-5, np.float64: 1e-12}


def assert_same(got, want, dtype):
    """Same shape and dtype, and max |got − want| ≤ RTOL[dtype] · max |want|."""
    assert got.shape == want.shape and got.dtype == want.dtype == dtype
    scale = max(float(np.abs(want).max()), 1e-30)
    assert float(np.abs(got - want).max()) <= RTOL[dtype] * scale, f"{np.abs(got - want).max() / scale:.2e}"


def channels_last(a):
    """The same values as ``a`` (N, C, H, W), stored channels-last, as the convolutions return them."""
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)


def run(fn, *inputs, dout):
    """fn's forward on raw arrays, then its backward with every input wanting a gradient."""
    fn.needs_input_grad = (True,) * len(inputs)
    out = fn.forward(*inputs)
    grads = fn.backward(dout)
    return (out,) + (grads if isinstance(grads, tuple) else (grads,))


def assert_kernel_equals_plain(kernel, args, inputs, dout, dtype):
    """The kernel and the plain op it accelerates, built with the same arguments, on the same arrays."""
    assert issubclass(kernel, kernel.accelerates) and kernels.FAST_KERNELS[kernel.accelerates] is kernel
    fast = run(kernel(*args), *inputs, dout=dout)
    plain = run(kernel.accelerates(*args), *inputs, dout=dout)
    assert len(fast) == len(plain) == len(inputs) + 1
    for got, want in zip(fast, plain):
        assert_same(got, want, dtype)


@pytest.fixture(params=[1, 3], ids=["1-thread", "3-threads"])
def threads(request):
    """The kernels on 1 thread, or with the batch's slices dealt out to 3 (uneven shares)."""
    with kernels.num_threads(request.param):
        yield request.param


@pytest.fixture(params=[1, 40, 10 ** 6], ids=["one-image-slices", "uneven-slices", "one-slice"])
def chunk_rows(request, monkeypatch):
    """ROWS_PER_CHUNK so that the batch is cut into one image per slice, uneven slices, or not at all."""
    monkeypatch.setattr(fast_conv, "ROWS_PER_CHUNK", request.param)
    return request.param


def test_every_kernel_names_the_plain_op_it_accelerates_and_the_switch_picks_it():
    assert set(kernels.FAST_KERNELS) == {Conv2dFunction, Conv1x1Function, BatchNorm2dFunction, MaxPool2dFunction,
                                       ReLUFunction, AddFunction}
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 5, 5)), requires_grad=True)
    w = Tensor(np.random.default_rng(1).standard_normal((4, 3, 3, 3)))
    assert type(F.conv2d(x, w).creator) is kernels.FastConv2dFunction
    assert type((x + x).creator) is type(F.add(x, x).creator) is kernels.FastAddFunction     # the operator too
    with tinyresnet.use_kernels("plain"):
        assert type(F.conv2d(x, w).creator) is Conv2dFunction
        assert type(F.max_pool2d(x, 2).creator) is MaxPool2dFunction
        assert type((x + 1.0).creator) is type((1.0 + x).creator) is AddFunction


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
def test_strided_im2col_equals_the_plain_one(shape, kernel, stride, padding, layout, dtype):
    x = layout(np.random.default_rng(0).standard_normal(shape).astype(dtype))
    cols = fast_conv.strided_im2col(x, *kernel, stride, padding)
    assert cols.dtype == dtype and cols.flags.c_contiguous
    np.testing.assert_array_equal(cols, im2col(x, *kernel, stride, padding))
    out = np.full(cols.shape, np.nan, dtype=dtype)
    assert fast_conv.strided_im2col(x, *kernel, stride, padding, out=out) is out     # into a given array
    np.testing.assert_array_equal(out, cols)


def test_conv_reuses_one_column_buffer_for_every_slice_of_the_batch(monkeypatch):
    """Forward hands im2col the same array (a prefix of it for the shorter last slice) for every slice
    (on one thread; on several each thread has its own), and one padded copy whose border stays zero;
    backward reuses its own two for dout's columns."""
    monkeypatch.setattr(fast_conv, "ROWS_PER_CHUNK", 2 * 36)          # 2 images of 6×6 outputs per slice
    seen = []
    real = fast_conv.strided_im2col

    def spy(x, kh, kw, stride, padding, out=None, padded=None):
        seen.append((out, padded))
        return real(x, kh, kw, stride, padding, out=out, padded=padded)
    monkeypatch.setattr(fast_conv, "strided_im2col", spy)
    rng = np.random.default_rng(3)
    x, weight = rng.standard_normal((5, 2, 6, 6)), rng.standard_normal((3, 2, 3, 3))
    dout = rng.standard_normal((5, 3, 6, 6))
    with kernels.num_threads(1):
        got = run(kernels.FastConv2dFunction((1, 1), (1, 1), 1), x, weight, dout=dout)
    want = run(Conv2dFunction((1, 1), (1, 1), 1), x, weight, dout=dout)
    for g, w in zip(got, want):                                       # the reused buffers change nothing
        assert_same(g, w, np.float64)
    assert len(seen) == 6                                             # slices of 2, 2 and 1 images, twice
    for calls in (seen[:3], seen[3:]):                                # forward (x), backward (dout)
        assert [out.shape[0] for out, _ in calls] == [72, 72, 36]
        assert all(np.shares_memory(out, calls[0][0]) and padded is calls[0][1] for out, padded in calls)
        padded = calls[0][1]
        assert padded.shape == (2, 8, 8, calls[0][0].shape[1] // 9)    # (images, H+2, W+2, C)
        inside = np.zeros(padded.shape, bool)
        inside[:, 1:-1, 1:-1] = True
        assert not padded[~inside].any()                              # the border is still zeros


# ------------------------------------------------------------------------------ conv2d
CONV_CASES = [  # N, C, H, W, OC, (kh, kw), stride, padding, groups
    pytest.param(7, 3, 6, 5, 4, (3, 3), (1, 1), (1, 1), 1, id="3x3-s1-gather"),
    pytest.param(5, 4, 7, 6, 6, (3, 3), (2, 2), (1, 1), 2, id="3x3-s2-scatter-groups2"),
    pytest.param(3, 2, 9, 9, 3, (7, 7), (2, 2), (3, 3), 1, id="7x7-s2-stem"),
    pytest.param(4, 4, 5, 6, 8, (3, 3), (1, 1), (1, 1), 4, id="3x3-s1-depthwise"),
    pytest.param(3, 3, 5, 4, 2, (3, 2), (1, 1), (2, 0), 1, id="3x2-s1-pad-2x0"),
    pytest.param(2, 2, 4, 4, 3, (3, 3), (1, 1), (3, 3), 1, id="3x3-s1-pad3-scatter"),
]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("N,C,H,W,OC,kernel,stride,padding,groups", CONV_CASES)
def test_fast_conv_equals_the_plain_conv(N, C, H, W, OC, kernel, stride, padding, groups, dtype, bias,
                                         chunk_rows, threads):
    rng = np.random.default_rng(2)
    x = channels_last(rng.standard_normal((N, C, H, W)).astype(dtype))
    inputs = [x, rng.standard_normal((OC, C // groups) + kernel).astype(dtype)]
    if bias:
        inputs.append(rng.standard_normal(OC).astype(dtype))
    OH, OW = [(n + 2 * p - k) // s + 1 for n, k, s, p in zip((H, W), kernel, stride, padding)]
    dout = rng.standard_normal((N, OC, OH, OW)).astype(dtype)
    assert_kernel_equals_plain(kernels.FastConv2dFunction, (stride, padding, groups), inputs, dout, dtype)


@pytest.mark.parametrize("N,C,H,W,OC,kernel,stride,padding,groups", CONV_CASES)
def test_fast_conv_by_slices_passes_gradcheck(N, C, H, W, OC, kernel, stride, padding, groups, monkeypatch, threads):
    monkeypatch.setattr(fast_conv, "ROWS_PER_CHUNK", 40)
    rng = np.random.default_rng(3)
    x = channels_last(rng.standard_normal((min(N, 3), C, H, W)))
    weight = rng.standard_normal((OC, C // groups) + kernel)
    assert_gradcheck(lambda x, w: F.conv2d_im2col(x, w, None, stride, padding, groups), [x, weight],
                     names=["x", "weight"])


def test_fast_conv_output_is_channels_last_and_nothing_but_x_is_kept_for_backward():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((4, 8, 6, 6)).astype(np.float32)
    weight = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    fn = kernels.FastConv2dFunction((1, 1), (1, 1), 1)
    out = fn(Tensor(x, requires_grad=True), Tensor(weight, requires_grad=True))
    assert out.data.transpose(0, 2, 3, 1).flags.c_contiguous          # (N, OC, OH, OW) over NHWC memory
    kept = [v for v in vars(fn).values() if hasattr(v, "nbytes")]
    assert sum(v.nbytes for v in kept) <= x.nbytes + weight.nbytes     # no 9×-sized columns saved


def test_the_plain_conv_keeps_its_columns_and_has_no_thread_or_slice_code():
    """The plain tier is the handout's derivation: columns kept, no threads, slices or buffers."""
    import inspect

    from tinyresnet.ops import conv as plain_conv
    source = inspect.getsource(plain_conv)
    for word in ("for_each_item", "num_threads", "ROWS_PER_CHUNK", "batch_chunks", "padded_buffer", "out=",
                 "from ..kernels"):
        assert word not in source
    rng = np.random.default_rng(5)
    fn = Conv2dFunction((1, 1), (1, 1), 1)
    fn(Tensor(rng.standard_normal((2, 3, 4, 4)), requires_grad=True), Tensor(rng.standard_normal((5, 3, 3, 3))))
    assert [c.shape for c in fn.cols] == [(2 * 4 * 4, 3 * 3 * 3)]


# ------------------------------------------------------------------------------ 1×1 conv
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", [np.ascontiguousarray, channels_last])
@pytest.mark.parametrize("stride", [(1, 1), (2, 2), (2, 1)])
def test_fast_1x1_conv_equals_the_plain_one(stride, layout, dtype, bias, threads):
    rng = np.random.default_rng(6)
    inputs = [layout(rng.standard_normal((3, 5, 7, 6)).astype(dtype)), rng.standard_normal((4, 5, 1, 1)).astype(dtype)]
    if bias:
        inputs.append(rng.standard_normal(4).astype(dtype))
    dout = rng.standard_normal((3, 4, -(-7 // stride[0]), -(-6 // stride[1]))).astype(dtype)
    assert_kernel_equals_plain(kernels.FastConv1x1Function, (stride,), inputs, dout, dtype)


@pytest.mark.parametrize("stride", [1, 2])
def test_fast_1x1_conv_passes_gradcheck_on_channels_last_input(stride, threads):
    rng = np.random.default_rng(7)
    x = channels_last(rng.standard_normal((2, 3, 5, 4)))
    assert_gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=stride), [x, rng.standard_normal((4, 3, 1, 1)),
                                                                        rng.standard_normal(4)])


# ------------------------------------------------------------------------------ batch norm
@pytest.mark.parametrize("affine", ["gamma-beta", "gamma", "none"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", [np.ascontiguousarray, channels_last])
def test_fast_batch_norm_equals_the_plain_one(layout, dtype, training, affine):
    rng = np.random.default_rng(8)
    x = layout((rng.standard_normal((6, 3, 5, 4)) * 3 + 2).astype(dtype))
    n_affine = {"gamma-beta": 2, "gamma": 1, "none": 0}[affine]
    inputs = [x] + [rng.standard_normal(3).astype(dtype) for _ in range(n_affine)]
    dout = layout(rng.standard_normal(x.shape).astype(dtype))
    stats = {"fast": (rng.standard_normal(3), rng.random(3) + 0.5)}
    stats["plain"] = tuple(a.copy() for a in stats["fast"])
    fast = run(kernels.FastBatchNorm2dFunction(*stats["fast"], training=training), *inputs, dout=dout)
    plain = run(BatchNorm2dFunction(*stats["plain"], training=training), *inputs, dout=dout)
    for got, want in zip(fast, plain):
        assert_same(got, want, dtype)
    for got, want in zip(stats["fast"], stats["plain"]):             # the running statistics moved alike
        np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=0)


@pytest.mark.parametrize("rows, group", [(12, 4), (13, 4), (3, 4), (0, 4), (7, 1)])
def test_column_sums_in_float32_groups_added_in_float64(rows, group):
    """Batch norm's sums: whole groups of rows in one stacked call, the rows left over on their own, the groups'
    float32 sums added in float64; equal to the float64 sums to float32 precision."""
    from tinyresnet.kernels.rows import column_sums
    rng = np.random.default_rng(26)
    block, other = (rng.standard_normal((rows, 6)).astype(np.float32) + 50 for _ in range(2))
    want = block.astype(np.float64).sum(axis=0)
    want_dot = (block.astype(np.float64) * other).sum(axis=0)
    got, got_dot = column_sums(block, group), column_sums(block, group, other)
    assert got.dtype == got_dot.dtype == np.float64 and got.shape == (6,)
    np.testing.assert_allclose(got, want, rtol=2e-7)
    np.testing.assert_allclose(got_dot, want_dot, rtol=2e-7)


@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("dout_layout", [np.ascontiguousarray, channels_last])
def test_fast_batch_norm_in_many_chunks_on_threads_equals_the_plain_one(monkeypatch, n_threads, dout_layout):
    """The channels-last path cuts the rows into chunks (here 2 image rows each, an uneven last one) dealt
    out to threads; dout may come in another layout than x."""
    from tinyresnet.kernels import rows as fast_rows
    monkeypatch.setattr(fast_rows, "CHUNK_VALUES", 2 * 5 * 3)          # W·C = 15 numbers a row
    monkeypatch.setattr(fast_rows, "SUM_VALUES", 3 * 5 * 3)            # and the sums in other chunks
    rng = np.random.default_rng(21)
    for dtype in (np.float32, np.float64):
        x = channels_last((rng.standard_normal((3, 3, 7, 5)) * 3 + 100).astype(dtype))
        inputs = [x, rng.standard_normal(3).astype(dtype), rng.standard_normal(3).astype(dtype)]
        dout = dout_layout(rng.standard_normal(x.shape).astype(dtype))
        stats = [np.zeros(3), np.ones(3)], [np.zeros(3), np.ones(3)]
        with kernels.num_threads(n_threads):
            fast = run(kernels.FastBatchNorm2dFunction(*stats[0], training=True), *inputs, dout=dout)
        plain = run(BatchNorm2dFunction(*stats[1], training=True), *inputs, dout=dout)
        for got, want in zip(fast, plain):
            assert_same(got, want, dtype)
        np.testing.assert_allclose(stats[0][1], stats[1][1], rtol=RTOL[dtype])
        assert fast[0].transpose(0, 2, 3, 1).flags.c_contiguous          # the output keeps x's layout


@pytest.mark.parametrize("batch", ["sorted", "offset"])
def test_fast_batch_norm_statistics_in_one_pass_keep_float32_precision(monkeypatch, batch):
    """The forward's statistics come from one pass, Σ(x − K) and Σ(x − K)² about a centre K sampled from across
    the batch. "sorted": the images' means rise from −40 to +40 (the first rows alone would be a poor centre);
    "offset": every value is near 1000 with a spread of 1 (Σx² − (Σx)²/n would lose everything in float32).
    The float32 mean, variance and output equal the float64 plain op's to float32 precision."""
    from tinyresnet.kernels import rows as fast_rows
    monkeypatch.setattr(fast_rows, "CHUNK_VALUES", 4 * 6 * 2)          # chunks of 4 image rows, many of them
    rng = np.random.default_rng(27)
    x64 = rng.standard_normal((16, 2, 5, 6))
    if batch == "sorted":
        x64 += np.linspace(-40, 40, 16)[:, None, None, None]
    else:
        x64 += 1000
    x32 = channels_last(x64.astype(np.float32))
    stats32, stats64 = [np.zeros(2, np.float32), np.ones(2, np.float32)], [np.zeros(2), np.ones(2)]
    fast = kernels.FastBatchNorm2dFunction(*stats32, training=True, momentum=1.0)
    out = fast.forward(x32)
    want = BatchNorm2dFunction(*stats64, training=True, momentum=1.0).forward(x32.astype(np.float64))
    scale = np.abs(stats64[0]) + np.sqrt(stats64[1])                        # the mean to within 1e-6 of |μ| + σ
    assert np.all(np.abs(stats32[0] - stats64[0]) <= 1e-6 * scale)          # (sorted: μ is near 0)
    np.testing.assert_allclose(stats32[1], stats64[1], rtol=1e-5)           # the batch variance (unbiased)
    assert float(np.abs(out - want).max()) <= 1e-5 * float(np.abs(want).max())


def test_fast_batch_norm_backward_leaves_dout_alone():
    """dout may be shared with another branch (the skip connection): in-place steps must not touch it."""
    rng = np.random.default_rng(9)
    x, dout = channels_last(rng.standard_normal((4, 3, 3, 3))), rng.standard_normal((4, 3, 3, 3))
    for weight in (None, np.ones(3)):
        kept = dout.copy()
        run(kernels.FastBatchNorm2dFunction(training=True), *([x] if weight is None else [x, weight]), dout=dout)
        np.testing.assert_array_equal(dout, kept)


def test_fast_batch_norm_passes_gradcheck_on_channels_last_input():
    rng = np.random.default_rng(10)
    x = channels_last(rng.standard_normal((3, 2, 4, 3)) * 2 + 1)
    assert_gradcheck(lambda x, w, b: F.batch_norm(x, np.zeros(2), np.ones(2), w, b, training=True),
                     [x, rng.standard_normal(2), rng.standard_normal(2)])


# ------------------------------------------------------------------------------ max pool
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", [np.ascontiguousarray, channels_last])
@pytest.mark.parametrize("kernel,stride,padding", [((3, 3), (2, 2), (1, 1)), ((2, 2), (2, 2), (0, 0)),
                                                   ((3, 2), (1, 2), (1, 0))])
def test_fast_max_pool_equals_the_plain_one(kernel, stride, padding, layout, dtype):
    rng = np.random.default_rng(11)
    x = layout(rng.standard_normal((2, 3, 7, 6)).astype(dtype))
    x[0, 0, :2, :2] = 1.5                                             # a tie: the first maximum wins in both
    OH, OW = [(n + 2 * p - k) // s + 1 for n, k, s, p in zip((7, 6), kernel, stride, padding)]
    dout = rng.standard_normal((2, 3, OH, OW)).astype(dtype)
    assert_kernel_equals_plain(kernels.FastMaxPool2dFunction, (kernel, stride, padding), [x], dout, dtype)


@pytest.mark.parametrize("layout", [np.ascontiguousarray, channels_last])
def test_fast_max_pool_keeps_the_layout_and_saves_no_argmax_under_no_grad(layout):
    x = layout(np.random.default_rng(12).standard_normal((2, 3, 7, 7)))
    with_grad = kernels.FastMaxPool2dFunction((3, 3), (2, 2), (1, 1))
    out = with_grad(Tensor(x, requires_grad=True)).data
    with no_grad():
        fn = kernels.FastMaxPool2dFunction((3, 3), (2, 2), (1, 1))
        out_no_grad = fn(Tensor(x, requires_grad=True)).data
    assert fn.needs_input_grad == (False,) and fn.argmax is None and with_grad.argmax is not None
    np.testing.assert_array_equal(out_no_grad, out)
    if layout is channels_last:
        assert out.transpose(0, 2, 3, 1).flags.c_contiguous


@pytest.mark.usefixtures("tier")
def test_max_pool_propagates_nan_as_pytorch_does():
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 1, 1] = np.nan
    out = F.max_pool2d(Tensor(x), 2).data
    assert np.isnan(out[0, 0, 0, 0]) and not np.isnan(out[0, 0, 1:, 1:]).any()


# ------------------------------------------------------------------------------ ReLU
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layout", [np.ascontiguousarray, channels_last])
def test_fast_relu_equals_the_plain_one_keeps_the_layout_and_gives_positive_zeros(layout, dtype):
    rng = np.random.default_rng(13)
    x = layout(rng.standard_normal((2, 3, 4, 5)).astype(dtype))
    x[0, 0, 0, :2] = 0.0                                                      # the kink: slope 0, as PyTorch
    dout = rng.standard_normal(x.shape).astype(dtype)
    assert_kernel_equals_plain(kernels.FastReLUFunction, (), [x], dout, dtype)
    for op in (ReLUFunction, kernels.FastReLUFunction):
        out, dx = run(op(), x, dout=dout)
        assert out.dtype == dx.dtype == dtype
        if layout is channels_last:                                           # the layout is kept
            assert out.transpose(0, 2, 3, 1).flags.c_contiguous
        np.testing.assert_array_equal(out, np.maximum(x, 0))
        np.testing.assert_array_equal(dx, np.where(x > 0, dout, 0))
        assert not np.signbit(out).any() and not np.signbit(dx[x <= 0]).any()    # 0., never -0.
        assert np.isnan(run(op(), np.array([np.nan]), dout=np.ones(1))[0]).all()  # a NaN stays NaN


@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("layouts", [(channels_last, channels_last), (channels_last, np.ascontiguousarray),
                                     (np.ascontiguousarray, np.ascontiguousarray), (np.asfortranarray, channels_last)])
def test_fast_relu_in_many_chunks_on_threads_equals_the_plain_one(monkeypatch, n_threads, layouts):
    """Chunks of 7 values (an uneven last one) dealt out to threads; x and dout in the same or other layouts
    (a Fortran-ordered x takes the plain op's path)."""
    from tinyresnet.kernels import rows as fast_rows
    monkeypatch.setattr(fast_rows, "CHUNK_VALUES", 7)
    rng = np.random.default_rng(22)
    x = layouts[0](rng.standard_normal((2, 3, 4, 5)))
    x[1, 2, 3, 4] = np.nan
    dout = layouts[1](rng.standard_normal(x.shape))
    with kernels.num_threads(n_threads):
        out, dx = run(kernels.FastReLUFunction(), x, dout=dout)
    plain_out, plain_dx = run(ReLUFunction(), x, dout=dout)
    np.testing.assert_array_equal(out, plain_out)
    np.testing.assert_array_equal(dx, plain_dx)
    assert np.isnan(out[1, 2, 3, 4]) and out.strides == np.empty_like(x).strides
    if layouts[0] is not np.asfortranarray:
        assert dx.strides == out.strides               # the gradient in x's layout, whatever dout's
    assert not np.signbit(dx[~(x > 0)]).any()          # 0., never -0., on the reordering path too


@pytest.mark.parametrize("dout_layout", [channels_last, np.ascontiguousarray])
def test_fast_relu_float32_backward_is_the_plain_where_even_for_nan_and_inf(dout_layout):
    """float32: the product of dout's bits with the mask gives where(mask, dout, 0) exactly: 0. (not -0.) where
    x <= 0, and a NaN or inf in dout at such an input gives 0., as the plain op's where does."""
    rng = np.random.default_rng(27)
    x = channels_last(rng.standard_normal((2, 3, 4, 5)).astype(np.float32))
    dout = dout_layout(rng.standard_normal(x.shape).astype(np.float32))
    off = np.argwhere(x <= 0)[:3]
    for (n, c, h, w), bad in zip(off, (np.nan, np.inf, -np.inf)):
        dout[n, c, h, w] = bad
    _, dx = run(kernels.FastReLUFunction(), x, dout=dout)
    _, plain_dx = run(ReLUFunction(), x, dout=dout)
    np.testing.assert_array_equal(dx, plain_dx)
    assert np.isfinite(dx).all() and not np.signbit(dx[x <= 0]).any()


@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("layouts", [(channels_last, channels_last), (channels_last, np.ascontiguousarray),
                                     (np.ascontiguousarray, channels_last),
                                     (np.ascontiguousarray, np.ascontiguousarray),
                                     (np.asfortranarray, np.ascontiguousarray)])
def test_fast_add_equals_the_plain_one_and_keeps_channels_last(monkeypatch, n_threads, dtype, layouts):
    """Chunks of 7 values on threads; the sum is channels-last when either map is (NumPy's own a + b of a
    channels-last and a C-ordered map is C-ordered), and the gradients are the plain op's."""
    from tinyresnet.kernels import rows as fast_rows
    monkeypatch.setattr(fast_rows, "CHUNK_VALUES", 7)
    rng = np.random.default_rng(23)
    a, b = (layout(rng.standard_normal((3, 4, 5, 2)).astype(dtype)) for layout in layouts)
    dout = rng.standard_normal(a.shape).astype(dtype)
    with kernels.num_threads(n_threads):
        fast = run(kernels.FastAddFunction(), a, b, dout=dout)
    plain = run(AddFunction(), a, b, dout=dout)
    for got, want in zip(fast, plain):
        assert got.dtype == want.dtype == dtype
        np.testing.assert_array_equal(got, want)
    either_channels_last = pixel_rows(a) is not None or pixel_rows(b) is not None
    assert (pixel_rows(fast[0]) is not None) == either_channels_last
    assert (pixel_rows(a + b) is not None) == (pixel_rows(a) is not None and pixel_rows(b) is not None)


@pytest.mark.parametrize("shapes", [((2, 3, 4, 5), (3, 1, 1)), ((2, 3), (2, 3)), ((2, 3, 4, 5), ())])
def test_fast_add_of_other_shapes_is_the_plain_op(shapes):
    """Broadcasting, 2-D arrays and scalars take the plain op's path, with its gradients summed back."""
    rng = np.random.default_rng(24)
    a, b = (rng.standard_normal(shape) for shape in shapes)
    dout = rng.standard_normal(np.broadcast_shapes(*shapes))
    for got, want in zip(run(kernels.FastAddFunction(), a, b, dout=dout), run(AddFunction(), a, b, dout=dout)):
        np.testing.assert_array_equal(got, want)


def test_a_resnet_stays_channels_last_through_its_type_a_shortcuts():
    """With the fast add, every map after the first convolution of a CIFAR ResNet is channels-last in the forward
    pass, type-A shortcuts included, and so is every gradient a ReLU hands back (dL/d its input), even where the
    gradient reaching it was C-ordered (a type-A shortcut's backward makes one)."""
    from tinyresnet import models
    model = models.get_model("resnet20", num_classes=10)
    layouts, grad_layouts = [], []

    def watch_gradient(module, inputs):
        inputs[0].register_hook(lambda g: grad_layouts.append(pixel_rows(g) is not None))

    for m in model.modules():
        if type(m).__name__ in ("ReLU", "BatchNorm2d"):
            m.register_forward_hook(lambda mod, i, out: layouts.append(pixel_rows(out.data) is not None))
        if type(m).__name__ == "ReLU":
            m.register_forward_pre_hook(watch_gradient)
    x = Tensor(np.random.default_rng(25).standard_normal((2, 3, 8, 8)).astype(np.float32))
    F.cross_entropy(model(x), np.array([1, 2])).backward()
    assert len(layouts) == 19 + 19 and all(layouts)
    assert len(grad_layouts) == 19 and all(grad_layouts)


@pytest.mark.usefixtures("tier")
def test_relu_passes_gradcheck_on_both_tiers():
    x = np.random.default_rng(14).standard_normal((2, 3, 4, 4))
    x[np.abs(x) < 0.05] = 0.5                                                 # clear of the kink
    assert type(F.relu(Tensor(x, requires_grad=True)).creator) is tinyresnet.tiers.implementation(ReLUFunction)
    assert_gradcheck(F.relu, [x])
