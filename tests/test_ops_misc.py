"""The other ops: activations, linear, cross-entropy, arithmetic with broadcasting, matmul,
reductions, reshaping, slicing, concatenation and padding.

Each op: a finite-difference gradient check and a forward check against tests/reference.py.
"""

import operator

import numpy as np
import pytest
import reference as ref

import tinyresnet as tr
from tinyresnet import functional as F
from tinyresnet.backend import to_device, to_numpy
from tinyresnet.gradcheck import assert_gradcheck

pytestmark = pytest.mark.usefixtures("tier")   # every test on the plain ops and on the fast kernels

TORCH_REASON = "PyTorch is the optional oracle (pip install 'tinyresnet[torch]')"


def normal(*shape, seed=10):
    return np.random.default_rng(seed).standard_normal(shape)


def host(t):
    return to_numpy(t.data)


def close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- relu
def test_relu_gradients_match_finite_differences(device):
    x = ref.grid_values((2, 3, 4, 5), np.random.default_rng(10))     # no value within 5e-3 of the kink
    assert_gradcheck(F.relu, ref.on_device(device, x), names=["x"])


def test_relu_forward_matches_reference(device):
    x = normal(2, 3, 4, 5)
    close(host(F.relu(ref.on_device(device, x)[0])), ref.relu(x))


def test_relu_gradient_at_zero_is_zero_as_in_pytorch(device):
    x = ref.on_device(device, np.array([-1.0, 0.0, 2.0]))[0]
    F.relu(x).sum().backward()
    np.testing.assert_array_equal(to_numpy(x.grad), [0.0, 0.0, 1.0])


# --------------------------------------------------------------------------- softmax, log_softmax
SOFTMAX_CASES = [pytest.param((4, 5), 1, id="rows"), pytest.param((4, 5), 0, id="columns"),
                 pytest.param((2, 3, 2, 2), 1, id="channels-of-4d"), pytest.param((3, 4), -1, id="dim-minus-1")]


@pytest.mark.parametrize("fn, loops", [(F.softmax, ref.softmax), (F.log_softmax, ref.log_softmax)],
                         ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, dim", SOFTMAX_CASES)
def test_softmax_family_gradients_and_forward(fn, loops, shape, dim, device):
    x = normal(*shape)
    assert_gradcheck(lambda t: fn(t, dim), ref.on_device(device, x), names=["x"])
    close(host(fn(ref.on_device(device, x)[0], dim)), loops(x, dim))


def test_softmax_is_stable_for_huge_logits():
    x = tr.Tensor(np.array([[1000.0, 1001.0, 999.0], [-1000.0, -1000.0, -1000.0]]))
    probs, logp = F.softmax(x, 1).numpy(), F.log_softmax(x, 1).numpy()
    assert np.isfinite(probs).all() and np.isfinite(logp).all()
    close(probs.sum(axis=1), [1.0, 1.0])
    close(logp[1], np.full(3, -np.log(3.0)))


# --------------------------------------------------------------------------- linear
@pytest.mark.parametrize("x_shape, bias", [((4, 5), True), ((4, 5), False), ((2, 3, 5), True)],
                         ids=["2d-bias", "2d-nobias", "3d-leading-axes"])
def test_linear_gradients_and_forward(x_shape, bias, device):
    x, weight, b = normal(*x_shape), normal(3, 5, seed=11), normal(3, seed=12)
    arrays = [x, weight] + ([b] if bias else [])
    assert_gradcheck(F.linear, ref.on_device(device, *arrays), names=["x", "weight", "bias"][:len(arrays)])
    close(host(F.linear(*ref.on_device(device, *arrays))), ref.linear(x, weight, b if bias else None))


# --------------------------------------------------------------------------- cross_entropy
TARGETS = np.array([0, 4, 2, 2, 1])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_gradients_and_forward(reduction, device):
    logits = normal(5, 5) * 3
    targets = to_device(TARGETS, device)
    assert_gradcheck(lambda z: F.cross_entropy(z, targets, reduction=reduction),
                     ref.on_device(device, logits), names=["logits"])
    out = F.cross_entropy(ref.on_device(device, logits)[0], targets, reduction=reduction)
    close(host(out), ref.cross_entropy(logits, TARGETS, reduction))


def test_cross_entropy_is_stable_for_huge_logits():
    logits = tr.Tensor(np.array([[1000.0, 0.0], [0.0, 1000.0]]), requires_grad=True)
    loss = F.cross_entropy(logits, np.array([1, 1]))
    assert loss.item() == pytest.approx(500.0)                      # row 0 costs 1000, row 1 costs ~0
    loss.backward()
    assert np.isfinite(logits.grad).all()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_torch(reduction):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    logits = normal(5, 5, seed=13) * 3
    ours, theirs = ref.on_device("cpu", logits)[0], torch.tensor(logits, requires_grad=True)
    out = F.cross_entropy(ours, TARGETS, reduction=reduction)
    expected = torch.nn.functional.cross_entropy(theirs, torch.tensor(TARGETS), reduction=reduction)
    dout = np.random.default_rng(14).standard_normal(out.shape)
    out.backward(dout)
    expected.backward(torch.tensor(dout))
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- + - * / with broadcasting
BINARY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}
BROADCAST_SHAPES = [
    pytest.param((2, 3, 4), (2, 3, 4), id="same-shape"),
    pytest.param((2, 3, 2, 2), (3, 1, 1), id="per-channel"),
    pytest.param((2, 3, 4), (4,), id="last-axis"),
    pytest.param((1, 3, 1, 4), (2, 1, 3, 1), id="both-stretched"),
    pytest.param((2, 3), (), id="scalar-tensor"),
]


@pytest.mark.parametrize("op", BINARY)
@pytest.mark.parametrize("a_shape, b_shape", BROADCAST_SHAPES)
def test_binary_op_gradients_are_summed_over_broadcast_axes(op, a_shape, b_shape, device):
    a = normal(*a_shape)
    b = np.random.default_rng(11).uniform(1.0, 2.0, b_shape)          # away from 0: b is a divisor
    assert_gradcheck(BINARY[op], ref.on_device(device, a, b), names=["a", "b"])


@pytest.mark.parametrize("op", BINARY)
@pytest.mark.parametrize("a_shape, b_shape", BROADCAST_SHAPES)
def test_binary_op_forward_matches_elementwise_loops(op, a_shape, b_shape, device):
    a, b = normal(*a_shape), np.random.default_rng(11).uniform(1.0, 2.0, b_shape)
    out = BINARY[op](*ref.on_device(device, a, b))
    close(host(out), ref.broadcast_elementwise(BINARY[op], a, b))


def test_broadcast_bias_gradient_is_the_sum_over_batch_and_space(device):
    x, bias = ref.on_device(device, normal(2, 3, 4, 5), np.zeros((3, 1, 1)))
    (x + bias).sum().backward()
    close(to_numpy(bias.grad), np.full((3, 1, 1), 2 * 4 * 5.0))


def test_python_scalars_on_either_side(device):
    x = ref.on_device(device, np.array([1.0, 2.0, 4.0]))[0]
    y = (2 * x + 1) - (3 - x) / 2 + 8 / x - x * 0.5
    close(host(y), 2 * host(x) + 1 - (3 - host(x)) / 2 + 8 / host(x) - host(x) * 0.5)
    y.sum().backward()
    close(to_numpy(x.grad), 2 + 0.5 - 8 / host(x) ** 2 - 0.5)


def test_unary_minus_exp_and_log(device):
    x = np.random.default_rng(12).uniform(0.5, 2.0, (3, 4))
    assert_gradcheck(lambda t: (-t).exp() + t.log(), ref.on_device(device, x), names=["x"])
    close(host((-ref.on_device(device, x)[0]).exp()), np.exp(-x))


# --------------------------------------------------------------------------- matmul, pow
MATMUL_SHAPES = [pytest.param((3, 4), (4, 5), id="2d"), pytest.param((2, 3, 4), (2, 4, 2), id="batched"),
                 pytest.param((2, 3, 4), (4, 5), id="batch-times-matrix"),
                 pytest.param((1, 3, 4), (2, 4, 2), id="broadcast-batch")]


@pytest.mark.parametrize("a_shape, b_shape", MATMUL_SHAPES)
def test_matmul_gradients_and_forward(a_shape, b_shape, device):
    a, b = normal(*a_shape), normal(*b_shape, seed=11)
    assert_gradcheck(operator.matmul, ref.on_device(device, a, b), names=["a", "b"])
    close(host(operator.matmul(*ref.on_device(device, a, b))), ref.matmul(a, b))


@pytest.mark.parametrize("exponent", [2, 3, 0.5, -1.0, -2.5])
def test_pow_by_a_scalar(exponent, device):
    x = np.random.default_rng(13).uniform(0.5, 2.0, (3, 4))          # positive: fractional powers are real
    assert_gradcheck(lambda t: t ** exponent, ref.on_device(device, x), names=["x"])
    close(host(ref.on_device(device, x)[0] ** exponent), x ** exponent)


# --------------------------------------------------------------------------- reductions
REDUCTIONS = [pytest.param(None, False, id="all"), pytest.param(1, False, id="axis1"),
              pytest.param((0, 2), False, id="axes0-2"), pytest.param(-1, True, id="last-keepdims"),
              pytest.param((1, 3), True, id="axes1-3-keepdims"), pytest.param(None, True, id="all-keepdims")]


@pytest.mark.parametrize("axis, keepdims", REDUCTIONS)
@pytest.mark.parametrize("kind", ["sum", "mean"])
def test_sum_and_mean_over_axes(kind, axis, keepdims, device):
    x = normal(2, 3, 4, 2)
    assert_gradcheck(lambda t: getattr(t, kind)(axis=axis, keepdims=keepdims), ref.on_device(device, x),
                     names=["x"])
    out = getattr(ref.on_device(device, x)[0], kind)(axis=axis, keepdims=keepdims)
    expected = ref.sum_over(x, axis, keepdims)
    if kind == "mean":
        expected = expected * expected.size / x.size
    assert out.shape == expected.shape
    close(host(out), expected)


# --------------------------------------------------------------------------- reshape, flatten, transpose
RESHAPES = [pytest.param(lambda t: t.reshape(6, 20), (6, 20), id="reshape"),
            pytest.param(lambda t: t.reshape((4, -1)), (4, 30), id="reshape-tuple-minus-1"),
            pytest.param(lambda t: t.flatten(), (120,), id="flatten-all"),
            pytest.param(lambda t: t.flatten(1), (2, 60), id="flatten-from-1"),
            pytest.param(lambda t: t.flatten(1, 2), (2, 12, 5), id="flatten-1-to-2"),
            pytest.param(F.flatten, (2, 60), id="F.flatten")]


@pytest.mark.parametrize("fn, shape", RESHAPES)
def test_reshape_and_flatten_keep_row_major_order(fn, shape, device):
    x = normal(2, 3, 4, 5)
    out = fn(ref.on_device(device, x)[0])
    assert out.shape == shape
    close(host(out), x.reshape(shape))                              # row-major, as in NumPy and PyTorch
    assert_gradcheck(fn, ref.on_device(device, x), names=["x"])


TRANSPOSES = [pytest.param((1, 2), (0, 2, 1, 3), id="swap-1-2"), pytest.param((0, 3), (3, 1, 2, 0), id="swap-0-3"),
              pytest.param(((2, 0, 3, 1),), (2, 0, 3, 1), id="permutation"),
              pytest.param((), (3, 2, 1, 0), id="reverse")]


@pytest.mark.parametrize("args, perm", TRANSPOSES)
def test_transpose_swaps_two_axes_or_permutes_all(args, perm, device):
    x = normal(2, 3, 4, 5)
    out = ref.on_device(device, x)[0].transpose(*args)
    close(host(out), ref.permute(x, perm))
    assert_gradcheck(lambda t: t.transpose(*args), ref.on_device(device, x[:, :2, :2]), names=["x"])


def test_transpose_of_a_matrix_follows_pytorch(device):
    """``x.transpose(0, 1)`` swaps the two axes of a matrix, as ``torch.transpose`` does."""
    x = normal(2, 3)
    t = ref.on_device(device, x)[0]
    for out in (t.transpose(0, 1), t.transpose(1, 0), t.T, t.permute(1, 0)):
        close(host(out), x.T)
    close(host(t.permute(0, 1)), x)


# --------------------------------------------------------------------------- slicing
GETITEM_CASES = [pytest.param((slice(None), slice(None), slice(None, None, 2), slice(None, None, 2)),
                              id="option-A-subsample-[:,:,::2,::2]"),
                 pytest.param(0, id="first-sample"), pytest.param((Ellipsis, slice(1, 3)), id="[...,1:3]"),
                 pytest.param(([0, 0, 1],), id="repeated-index-accumulates")]


@pytest.mark.parametrize("index", GETITEM_CASES)
def test_getitem_gradients_and_forward(index, device):
    x = normal(2, 3, 5, 4)
    assert_gradcheck(lambda t: t[index], ref.on_device(device, x), names=["x"])
    close(host(ref.on_device(device, x)[0][index]), x[index])


def test_repeated_index_gets_the_gradient_of_each_use(device):
    x = ref.on_device(device, np.arange(4.0))[0]
    x[[0, 0, 3, 0]].sum().backward()
    close(to_numpy(x.grad), [3.0, 0.0, 0.0, 1.0])


# --------------------------------------------------------------------------- cat, pad
def test_cat_along_channels(device):
    xs = [normal(2, c, 3, 2, seed=s) for s, c in enumerate((1, 3, 2))]
    assert_gradcheck(lambda *ts: F.cat(list(ts), dim=1), ref.on_device(device, *xs), names=["x0", "x1", "x2"])
    close(host(tr.cat(ref.on_device(device, *xs), dim=1)), ref.cat_channels(xs))


def test_cat_along_batch(device):
    a, b = normal(1, 2, 3), normal(2, 2, 3, seed=11)
    assert_gradcheck(lambda s, t: F.cat([s, t]), ref.on_device(device, a, b), names=["a", "b"])
    close(host(F.cat(ref.on_device(device, a, b))), np.concatenate([a, b]))


@pytest.mark.parametrize("pad, shape", [((1, 2), (2, 3, 4, 7)), ((1, 1, 2, 0), (2, 3, 6, 6)),
                                        ((0, 0, 0, 0, 2, 1), (2, 6, 4, 4))],
                         ids=["last-dim", "last-two-dims", "channels"])
def test_pad_follows_torch_order_last_dim_first(pad, shape, device):
    x = normal(2, 3, 4, 4)
    out = F.pad(ref.on_device(device, x)[0], pad, value=0.5)
    assert out.shape == shape
    widths = [(0, 0)] * 4
    for d in range(len(pad) // 2):
        widths[3 - d] = (pad[2 * d], pad[2 * d + 1])
    close(host(out), np.pad(x, widths, constant_values=0.5))
    assert_gradcheck(lambda t: F.pad(t, pad), ref.on_device(device, x[:, :2]), names=["x"])


def test_pad_channels_is_the_option_a_shortcut(device):
    """Option A: subsample x[:, :, ::2, ::2] and add zero channels, 16 → 32 channels, 6×6 → 3×3."""
    x = normal(2, 16, 6, 6)
    out = F.pad_channels(ref.on_device(device, x)[0][:, :, ::2, ::2], 8, 8)
    assert out.shape == (2, 32, 3, 3)
    close(host(out), ref.pad_channels(x[:, :, ::2, ::2], 8, 8))
    small = normal(2, 2, 4, 3)
    assert_gradcheck(lambda t: F.pad_channels(t[:, :, ::2, ::2], 1, 2), ref.on_device(device, small), names=["x"])
