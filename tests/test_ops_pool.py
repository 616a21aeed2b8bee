"""max_pool2d, avg_pool2d, adaptive_avg_pool2d: gradients, the loop reference, PyTorch."""

import numpy as np
import pytest
import reference as ref

from tinyresnet import functional as F
from tinyresnet.backend import to_numpy
from tinyresnet.gradcheck import assert_gradcheck

pytestmark = pytest.mark.usefixtures("tier")   # every test on the plain ops and on the fast kernels

# (input shape, kernel_size, stride, padding)
WINDOW_CASES = [
    pytest.param((2, 2, 7, 6), 3, 2, 1, id="3x3-stride2-pad1-stem-overlapping"),
    pytest.param((2, 3, 6, 4), 2, 2, 0, id="2x2-stride2-non-overlapping"),
    pytest.param((1, 2, 5, 6), (3, 2), (1, 2), (1, 0), id="3x2-stride1x2-pad1x0"),
    pytest.param((2, 2, 5, 5), 3, 1, 0, id="3x3-stride1-overlapping"),
]
POOLS = {"max": (F.max_pool2d, ref.max_pool2d), "avg": (F.avg_pool2d, ref.avg_pool2d)}

# (input shape, output_size)
ADAPTIVE_CASES = [
    pytest.param((2, 3, 5, 4), 1, id="global-1x1"),
    pytest.param((2, 2, 7, 5), (3, 2), id="7x5-to-3x2-overlapping-cells"),
    pytest.param((1, 2, 4, 8), (2, 4), id="4x8-to-2x4-exact"),
    pytest.param((1, 2, 3, 3), 5, id="3x3-up-to-5x5"),
]


def pool_input(shape, seed=10):
    """Distinct values 0.02 apart: no finite-difference step changes a window's maximum."""
    return ref.grid_values(shape, np.random.default_rng(seed))


@pytest.mark.parametrize("kind", POOLS)
@pytest.mark.parametrize("shape, kernel, stride, padding", WINDOW_CASES)
def test_pool_gradients_match_finite_differences(kind, shape, kernel, stride, padding, device):
    pool = POOLS[kind][0]
    assert_gradcheck(lambda x: pool(x, kernel, stride, padding), ref.on_device(device, pool_input(shape)),
                     names=["x"])


@pytest.mark.parametrize("kind", POOLS)
@pytest.mark.parametrize("shape, kernel, stride, padding", WINDOW_CASES)
def test_pool_forward_matches_window_loops(kind, shape, kernel, stride, padding, device):
    pool, loops = POOLS[kind]
    x = np.random.default_rng(11).standard_normal(shape)
    out = pool(ref.on_device(device, x)[0], kernel, stride, padding)
    np.testing.assert_allclose(to_numpy(out.data), loops(x, kernel, stride, padding), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, output_size", ADAPTIVE_CASES)
def test_adaptive_avg_pool_gradients_match_finite_differences(shape, output_size, device):
    x = np.random.default_rng(12).standard_normal(shape)
    assert_gradcheck(lambda x: F.adaptive_avg_pool2d(x, output_size), ref.on_device(device, x), names=["x"])


@pytest.mark.parametrize("shape, output_size", ADAPTIVE_CASES)
def test_adaptive_avg_pool_forward_matches_cell_loops(shape, output_size, device):
    x = np.random.default_rng(13).standard_normal(shape)
    out = F.adaptive_avg_pool2d(ref.on_device(device, x)[0], output_size)
    np.testing.assert_allclose(to_numpy(out.data), ref.adaptive_avg_pool2d(x, output_size), rtol=1e-12, atol=1e-12)


def test_max_pool_sends_the_gradient_to_the_window_maximum_only(device):
    x = np.array([[1.0, 5.0, 2.0, 0.0],
                  [3.0, 4.0, 8.0, 7.0],
                  [6.0, 0.5, 1.5, 2.5],
                  [0.2, 9.0, 3.5, 1.0]])[None, None]
    xt = ref.on_device(device, x)[0]
    out = F.max_pool2d(xt, 2)
    np.testing.assert_array_equal(to_numpy(out.data)[0, 0], [[5.0, 8.0], [9.0, 3.5]])
    out.backward(ref.on_device(device, np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), requires_grad=False)[0])
    expected = np.zeros((4, 4))
    expected[0, 1], expected[1, 2], expected[3, 1], expected[3, 2] = 1.0, 2.0, 3.0, 4.0
    np.testing.assert_array_equal(to_numpy(xt.grad)[0, 0], expected)


def test_stem_halves_224_to_112_then_56():
    """The ResNet stem: a 7×7 stride-2 pad-3 conv takes 224 to 112, the 3×3/2/1 max pool 112 to 56."""
    x = ref.on_device("cpu", np.zeros((1, 1, 224, 224)), requires_grad=False)[0]
    conv = F.conv2d(x, np.zeros((1, 1, 7, 7)), stride=2, padding=3)
    assert conv.shape == (1, 1, 112, 112)
    assert F.max_pool2d(conv, 3, 2, 1).shape == (1, 1, 56, 56)


def test_global_average_pool_is_the_mean_of_each_map():
    x = np.random.default_rng(14).standard_normal((2, 3, 7, 7))
    out = F.adaptive_avg_pool2d(ref.on_device("cpu", x)[0], 1).numpy()
    assert out.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(out[:, :, 0, 0], x.mean(axis=(2, 3)), rtol=1e-12)


@pytest.mark.parametrize("kind", POOLS)
@pytest.mark.parametrize("shape, kernel, stride, padding", WINDOW_CASES)
def test_pools_match_torch(kind, shape, kernel, stride, padding):
    torch = pytest.importorskip("torch", reason="PyTorch is the optional oracle (pip install 'tinyresnet[torch]')")
    theirs = getattr(torch.nn.functional, f"{kind}_pool2d")
    x = pool_input(shape, seed=15)
    check_against_torch(torch, lambda t: POOLS[kind][0](t, kernel, stride, padding),
                        lambda t: theirs(t, kernel, stride, padding), x)


@pytest.mark.parametrize("shape, output_size", ADAPTIVE_CASES)
def test_adaptive_avg_pool_matches_torch(shape, output_size):
    torch = pytest.importorskip("torch", reason="PyTorch is the optional oracle (pip install 'tinyresnet[torch]')")
    x = np.random.default_rng(16).standard_normal(shape)
    check_against_torch(torch, lambda t: F.adaptive_avg_pool2d(t, output_size),
                        lambda t: torch.nn.functional.adaptive_avg_pool2d(t, output_size), x)


def check_against_torch(torch, ours, theirs, x):
    """Forward values and input gradients of ``ours`` and ``theirs`` agree in float64."""
    xt, xtorch = ref.on_device("cpu", x)[0], torch.tensor(x, requires_grad=True)
    out, expected = ours(xt), theirs(xtorch)
    dout = np.random.default_rng(17).standard_normal(out.shape)
    out.backward(dout)
    expected.backward(torch.tensor(dout))
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(xt.grad, xtorch.grad.numpy(), rtol=1e-10, atol=1e-12)
