"""Whole residual blocks, built here from functional ops, with batch norm in training mode.

Each block is y = relu(F(x) + shortcut(x)) with F = conv3×3-BN-ReLU-conv3×3-BN, and a shortcut
that is the identity, a strided 1×1 projection + BN, or option A (subsample, zero-pad channels).

Finite differences need every ReLU input to stay clear of 0 while one input moves by up to
2h = 2e-3. The BN biases are chosen for that: each channel's shift puts the kink in the widest
gap between that channel's values (``reference.kink_free_shift``), and the setup asserts the
margin it got before any gradient is checked.
"""

from collections import namedtuple

import numpy as np
import pytest
import reference as ref

from tinyresnet import functional as F
from tinyresnet.backend import to_numpy
from tinyresnet.gradcheck import assert_gradcheck

pytestmark = pytest.mark.usefixtures("tier")   # every test on the plain ops and on the fast kernels

MIN_MARGIN = 0.02      # 10 × the largest finite-difference step

Block = namedtuple("Block", "x_shape out_channels stride shortcut")
BLOCKS = {
    "identity": Block((2, 3, 5, 4), 3, 1, "identity"),
    "projection-1x1-stride2": Block((2, 3, 6, 5), 4, 2, "projection"),
    "option-A-zero-pad": Block((2, 2, 6, 5), 4, 2, "option_a"),
}
NAMES = ["x", "conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias"]
PROJECTION_NAMES = ["downsample.0.weight", "downsample.1.weight", "downsample.1.bias"]


def bn(x, weight, bias):
    return F.batch_norm(x, None, None, weight, bias, training=True)


def first_half(x, w1, g1, b1, stride):
    """BN(conv3×3(x)): the values entering the first ReLU."""
    return bn(F.conv2d(x, w1, stride=stride, padding=1), g1, b1)


def block_sum(block, x, w1, g1, b1, w2, g2, b2, *shortcut_params):
    """F(x) + shortcut(x): the values entering the last ReLU."""
    out = bn(F.conv2d(F.relu(first_half(x, w1, g1, b1, block.stride)), w2, padding=1), g2, b2)
    if block.shortcut == "identity":
        shortcut = x
    elif block.shortcut == "projection":
        wp, gp, bp = shortcut_params
        shortcut = bn(F.conv2d(x, wp, stride=block.stride), gp, bp)      # the 1×1 path, stride 2
    else:
        extra = block.out_channels - x.shape[1]
        shortcut = F.pad_channels(x[:, :, ::2, ::2], extra // 2, extra - extra // 2)
    return out + shortcut


def block_inputs(block, seed=21):
    """Host arrays in NAMES order (plus the projection's), with kink-free BN biases."""
    rng = np.random.default_rng(seed)
    C, OC = block.x_shape[1], block.out_channels
    x = rng.standard_normal(block.x_shape)
    w1, w2 = rng.standard_normal((OC, C, 3, 3)), rng.standard_normal((OC, OC, 3, 3))
    g1, g2 = rng.uniform(0.5, 1.5, OC), rng.uniform(0.5, 1.5, OC)
    extra = []
    if block.shortcut == "projection":
        extra = [rng.standard_normal((OC, C, 1, 1)), rng.uniform(0.5, 1.5, OC), rng.standard_normal(OC)]

    def host_forward(fn, *arrays):
        return fn(*ref.on_device("cpu", *arrays, requires_grad=False)).numpy()

    b1, margin1 = ref.kink_free_shift(host_forward(
        lambda *t: first_half(*t, block.stride), x, w1, g1, np.zeros(OC)))
    b2, margin2 = ref.kink_free_shift(host_forward(
        lambda *t: block_sum(block, *t), x, w1, g1, b1, w2, g2, np.zeros(OC), *extra))
    assert min(margin1, margin2) >= MIN_MARGIN, (
        f"test setup: a ReLU input is only {min(margin1, margin2):.3g} from the kink; try another seed")
    return [x, w1, g1, b1, w2, g2, b2] + extra


@pytest.mark.parametrize("name", BLOCKS)
def test_residual_block_gradients_match_finite_differences(name, device):
    block = BLOCKS[name]
    arrays = block_inputs(block)
    names = NAMES + (PROJECTION_NAMES if block.shortcut == "projection" else [])
    assert_gradcheck(lambda *t: F.relu(block_sum(block, *t)), ref.on_device(device, *arrays), names=names)


def reference_block(block, x, w1, g1, b1, w2, g2, b2, *shortcut_params):
    """The same block from the loop references."""
    def loop_bn(v, g, b):
        C = v.shape[1]
        return ref.batch_norm(v, np.zeros(C), np.ones(C), g, b, training=True)[0]

    out = ref.relu(loop_bn(ref.conv2d(x, w1, stride=block.stride, padding=1), g1, b1))
    out = loop_bn(ref.conv2d(out, w2, padding=1), g2, b2)
    if block.shortcut == "identity":
        shortcut = x
    elif block.shortcut == "projection":
        wp, gp, bp = shortcut_params
        shortcut = loop_bn(ref.conv1x1(x, wp, stride=block.stride), gp, bp)
    else:
        extra = block.out_channels - x.shape[1]
        shortcut = ref.pad_channels(x[:, :, ::2, ::2], extra // 2, extra - extra // 2)
    return ref.relu(out + shortcut)


@pytest.mark.parametrize("name", BLOCKS)
def test_residual_block_forward_matches_loop_references(name, device):
    block = BLOCKS[name]
    arrays = block_inputs(block)
    out = F.relu(block_sum(block, *ref.on_device(device, *arrays)))
    N, _, H, W = block.x_shape
    s = block.stride
    assert out.shape == (N, block.out_channels, (H - 1) // s + 1, (W - 1) // s + 1)
    np.testing.assert_allclose(to_numpy(out.data), reference_block(block, *arrays), rtol=1e-10, atol=1e-10)
