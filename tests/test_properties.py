"""Property tests over random geometries: output sizes follow ⌊(n + 2p − f)/s⌋ + 1, the forward
pass agrees with the loop references, and the backward pass of the linear ops is their adjoint."""

import numpy as np
import pytest
import reference as ref
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyresnet import functional as F
from tinyresnet.backend import to_numpy

pytestmark = pytest.mark.usefixtures("tier")   # every test on the plain ops and on the fast kernels

# the `device` fixture is a plain string, so sharing it between examples is harmless
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def window_side(draw, max_kernel, max_stride=3, max_padding=3, padding_at_most_half=False):
    """(n, kernel, stride, padding) along one axis, with the window fitting the padded side."""
    kernel = draw(st.integers(1, max_kernel))
    stride = draw(st.integers(1, max_stride))
    padding = draw(st.integers(0, min(max_padding, kernel // 2) if padding_at_most_half else max_padding))
    n = draw(st.integers(max(1, kernel - 2 * padding), kernel - 2 * padding + 8))
    return n, kernel, stride, padding


@st.composite
def conv_geometry(draw):
    (H, kh, sh, ph), (W, kw, sw, pw) = draw(window_side(7)), draw(window_side(7))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    C, OC = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    N = draw(st.integers(1, 2))
    return dict(N=N, C=C, H=H, W=W, OC=OC, kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw), groups=groups,
                bias=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


@st.composite
def pool_geometry(draw):
    (H, kh, sh, ph), (W, kw, sw, pw) = [draw(window_side(4, padding_at_most_half=True)) for _ in range(2)]
    return dict(shape=(draw(st.integers(1, 2)), draw(st.integers(1, 3)), H, W), kernel=(kh, kw), stride=(sh, sw),
                padding=(ph, pw), seed=draw(st.integers(0, 2**16)))


def conv_arrays(g):
    rng = np.random.default_rng(g["seed"])
    x = rng.standard_normal((g["N"], g["C"], g["H"], g["W"]))
    weight = rng.standard_normal((g["OC"], g["C"] // g["groups"]) + g["kernel"])
    bias = rng.standard_normal(g["OC"]) if g["bias"] else None
    return x, weight, bias


def expected_side(n, kernel, stride, padding):
    return (n + 2 * padding - kernel) // stride + 1


@SETTINGS
@given(g=conv_geometry())
def test_conv2d_output_size_and_values(device, g):
    x, weight, bias = conv_arrays(g)
    tensors = ref.on_device(device, *[a for a in (x, weight, bias) if a is not None], requires_grad=False)
    out = F.conv2d(*tensors, stride=g["stride"], padding=g["padding"], groups=g["groups"])
    OH = expected_side(g["H"], g["kernel"][0], g["stride"][0], g["padding"][0])
    OW = expected_side(g["W"], g["kernel"][1], g["stride"][1], g["padding"][1])
    assert out.shape == (g["N"], g["OC"], OH, OW)
    expected = ref.conv2d(x, weight, bias, g["stride"], g["padding"], g["groups"])
    np.testing.assert_allclose(to_numpy(out.data), expected, rtol=1e-10, atol=1e-10)


@SETTINGS
@given(g=conv_geometry())
def test_conv2d_backward_is_the_adjoint_of_forward(device, g):
    """conv is linear in x and in w, so ⟨dout, conv(x, w)⟩ = ⟨dx, x⟩ = ⟨dw, w⟩ for the gradients
    that backward returns: an exact check of backward on every geometry, with no finite differences."""
    x, weight, _ = conv_arrays(g)
    xt, wt = ref.on_device(device, x, weight)
    out = F.conv2d(xt, wt, stride=g["stride"], padding=g["padding"], groups=g["groups"])
    dout = np.random.default_rng(g["seed"] + 1).standard_normal(out.shape)
    out.backward(ref.on_device(device, dout, requires_grad=False)[0])
    total = float(np.sum(dout * to_numpy(out.data)))
    assert float(np.sum(to_numpy(xt.grad) * x)) == pytest.approx(total, rel=1e-9, abs=1e-9)
    assert float(np.sum(to_numpy(wt.grad) * weight)) == pytest.approx(total, rel=1e-9, abs=1e-9)


@SETTINGS
@given(g=pool_geometry(), kind=st.sampled_from(["max", "avg"]))
def test_pool_output_size_and_values(device, g, kind):
    pool, loops = {"max": (F.max_pool2d, ref.max_pool2d), "avg": (F.avg_pool2d, ref.avg_pool2d)}[kind]
    x = np.random.default_rng(g["seed"]).standard_normal(g["shape"])
    out = pool(ref.on_device(device, x, requires_grad=False)[0], g["kernel"], g["stride"], g["padding"])
    N, C, H, W = g["shape"]
    OH = expected_side(H, g["kernel"][0], g["stride"][0], g["padding"][0])
    OW = expected_side(W, g["kernel"][1], g["stride"][1], g["padding"][1])
    assert out.shape == (N, C, OH, OW)
    np.testing.assert_allclose(to_numpy(out.data), loops(x, g["kernel"], g["stride"], g["padding"]),
                               rtol=1e-12, atol=1e-12)


@SETTINGS
@given(g=pool_geometry())
def test_avg_pool_backward_is_the_adjoint_of_forward(device, g):
    x = np.random.default_rng(g["seed"]).standard_normal(g["shape"])
    xt = ref.on_device(device, x)[0]
    out = F.avg_pool2d(xt, g["kernel"], g["stride"], g["padding"])
    dout = np.random.default_rng(g["seed"] + 1).standard_normal(out.shape)
    out.backward(ref.on_device(device, dout, requires_grad=False)[0])
    total = float(np.sum(dout * to_numpy(out.data)))
    assert float(np.sum(to_numpy(xt.grad) * x)) == pytest.approx(total, rel=1e-9, abs=1e-9)


@SETTINGS
@given(H=st.integers(1, 9), W=st.integers(1, 9), OH=st.integers(1, 6), OW=st.integers(1, 6),
       seed=st.integers(0, 2**16))
def test_adaptive_avg_pool_values(device, H, W, OH, OW, seed):
    x = np.random.default_rng(seed).standard_normal((2, 2, H, W))
    out = F.adaptive_avg_pool2d(ref.on_device(device, x, requires_grad=False)[0], (OH, OW))
    assert out.shape == (2, 2, OH, OW)
    np.testing.assert_allclose(to_numpy(out.data), ref.adaptive_avg_pool2d(x, (OH, OW)), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data())
def test_broadcast_gradients_have_the_input_shapes(device, shape, data):
    """b takes a random subset of a's trailing axes, some stretched from 1: the gradients of a + b and
    a * b come back in a's and b's own shapes, and b's is the sum over the axes it was broadcast along."""
    k = data.draw(st.integers(0, len(shape)), label="b's number of axes")
    b_shape = tuple(1 if data.draw(st.booleans(), label=f"stretch axis {i}") else n
                    for i, n in enumerate(shape[len(shape) - k:]))
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(shape), rng.standard_normal(b_shape)
    at, bt = ref.on_device(device, a, b)
    (at + bt * 2.0).sum().backward()
    assert at.grad.shape == tuple(shape) and bt.grad.shape == b_shape
    np.testing.assert_allclose(to_numpy(bt.grad), np.full(b_shape, 2.0 * a.size / max(b.size, 1)))
