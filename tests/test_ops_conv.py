"""conv2d: im2col path and 1×1 path against finite differences, the loop reference and PyTorch."""

from collections import namedtuple

import numpy as np
import pytest
import reference as ref

from tinyresnet import Tensor
from tinyresnet import functional as F
from tinyresnet.backend import to_numpy
from tinyresnet.gradcheck import assert_gradcheck
from tinyresnet.ops.conv import Conv1x1Function, Conv2dFunction

pytestmark = pytest.mark.usefixtures("tier")   # every test on the plain ops and on the fast kernels

Case = namedtuple("Case", "N C H W OC kernel stride padding groups bias")

CASES = [
    pytest.param(Case(2, 3, 5, 4, 4, 3, 1, 1, 1, True), id="3x3-stride1-pad1-HneW"),
    pytest.param(Case(2, 4, 7, 6, 4, 3, 2, 0, 2, False), id="3x3-stride2-pad0-groups2-nobias"),
    pytest.param(Case(1, 2, 9, 8, 3, 7, 2, 3, 1, True), id="7x7-stride2-pad3-stem"),
    pytest.param(Case(2, 2, 3, 4, 2, 3, 1, 3, 1, True), id="3x3-pad3-more-than-kernel"),
    pytest.param(Case(2, 4, 5, 5, 8, 3, 1, 1, 4, True), id="3x3-depthwise-groups4-x2"),
    pytest.param(Case(2, 3, 5, 4, 2, (3, 2), (2, 1), (1, 0), 1, True), id="3x2-kernel-stride2x1-pad1x0"),
    pytest.param(Case(2, 3, 4, 5, 4, 1, 1, 0, 1, True), id="1x1-path"),
    pytest.param(Case(2, 3, 5, 6, 4, 1, 2, 0, 1, False), id="1x1-path-stride2-odd-size"),
    pytest.param(Case(1, 2, 3, 4, 3, 1, 1, 1, 1, True), id="1x1-pad1-im2col"),
]


def make_inputs(case, seed=10):
    """Host arrays (x, weight, bias or None) for a case."""
    rng = np.random.default_rng(seed)
    kh, kw = (case.kernel, case.kernel) if isinstance(case.kernel, int) else case.kernel
    x = rng.standard_normal((case.N, case.C, case.H, case.W))
    weight = rng.standard_normal((case.OC, case.C // case.groups, kh, kw))
    bias = rng.standard_normal(case.OC) if case.bias else None
    return x, weight, bias


def conv_of(case):
    """The conv of ``case`` as a function of tensors (x, weight[, bias])."""
    def fn(x, weight, bias=None):
        return F.conv2d(x, weight, bias, stride=case.stride, padding=case.padding, groups=case.groups)
    return fn


@pytest.mark.parametrize("case", CASES)
def test_conv2d_gradients_match_finite_differences(case, device):
    arrays = [a for a in make_inputs(case) if a is not None]
    names = ["x", "weight", "bias"][:len(arrays)]
    assert_gradcheck(conv_of(case), ref.on_device(device, *arrays), names=names)


@pytest.mark.parametrize("case", CASES)
def test_conv2d_forward_matches_sliding_window_loops(case, device):
    x, weight, bias = make_inputs(case)
    out = conv_of(case)(*ref.on_device(device, *[a for a in (x, weight, bias) if a is not None]))
    expected = ref.conv2d(x, weight, bias, case.stride, case.padding, case.groups)
    assert out.shape == expected.shape
    np.testing.assert_allclose(to_numpy(out.data), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride", [1, 2, 3])
def test_1x1_conv_is_a_per_pixel_channel_mix(stride, device):
    x, weight, bias = make_inputs(Case(2, 3, 5, 7, 4, 1, stride, 0, 1, True))
    out = F.conv2d(*ref.on_device(device, x, weight, bias), stride=stride)
    np.testing.assert_allclose(to_numpy(out.data), ref.conv1x1(x, weight, bias, stride), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride", [1, 2])
def test_1x1_path_is_taken_and_equals_im2col(stride, device):
    """F.conv2d sends 1×1 / pad 0 / groups 1 to Conv1x1Function; values and gradients must not change."""
    x, weight, bias = make_inputs(Case(2, 3, 5, 6, 4, 1, stride, 0, 1, True))
    fast_inputs = ref.on_device(device, x, weight, bias)
    slow_inputs = ref.on_device(device, x, weight, bias)
    fast = F.conv2d(*fast_inputs, stride=stride)
    slow = F.conv2d_im2col(*slow_inputs, stride=stride)
    assert isinstance(fast.creator, Conv1x1Function)
    assert isinstance(slow.creator, Conv2dFunction)
    np.testing.assert_allclose(to_numpy(fast.data), to_numpy(slow.data), rtol=1e-12, atol=1e-12)
    dout = np.random.default_rng(1).standard_normal(fast.shape)
    fast.backward(ref.on_device(device, dout, requires_grad=False)[0])
    slow.backward(ref.on_device(device, dout, requires_grad=False)[0])
    for a, b in zip(fast_inputs, slow_inputs):
        np.testing.assert_allclose(to_numpy(a.grad), to_numpy(b.grad), rtol=1e-12, atol=1e-12)


def test_1x1_conv_reproduces_the_documents_worked_example():
    """Section 3.5: a 3×3 RGB image mixed by two 1×1 filters, [0.5, 0.3, 0.2] and [0.1, 0.6, 0.3].

    The document's first output row ([3.1, 4.1, 5.1] and [4.6, 5.6, 6.6]) is right; its other
    rows are not: pixel (1, 0) holds R=4, G=7, B=1, so channel 0 is 0.5·4 + 0.3·7 + 0.2·1 = 4.3
    (the document says 6.1). The table below is the per-pixel mix worked out by hand.
    """
    red = np.arange(1.0, 10.0).reshape(3, 3)
    green = np.array([[4.0, 5, 6], [7, 8, 9], [1, 2, 3]])
    blue = np.array([[7.0, 8, 9], [1, 2, 3], [4, 5, 6]])
    x = np.stack([red, green, blue])[None]                         # (1, 3, 3, 3)
    weight = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]]).reshape(2, 3, 1, 1)
    out = F.conv2d(*ref.on_device("cpu", x, weight)).numpy()[0]
    expected = np.array([[[3.1, 4.1, 5.1], [4.3, 5.3, 6.3], [4.6, 5.6, 6.6]],
                         [[4.6, 5.6, 6.6], [4.9, 5.9, 6.9], [2.5, 3.5, 4.5]]])
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    np.testing.assert_allclose(out, ref.conv1x1(x, weight)[0], rtol=1e-12)


def test_conv2d_accepts_float32_and_keeps_it():
    x = np.ones((1, 2, 4, 4), np.float32)
    w = np.ones((3, 2, 3, 3), np.float32)
    out = F.conv2d(Tensor(x), Tensor(w), padding=1)
    assert out.dtype == np.float32
    assert out.numpy()[0, 0, 1, 1] == 18.0                          # 2 channels × 9 ones


@pytest.mark.parametrize("case", CASES)
def test_conv2d_matches_torch(case):
    torch = pytest.importorskip("torch", reason="PyTorch is the optional oracle (pip install 'tinyresnet[torch]')")
    x, weight, bias = make_inputs(case, seed=3)
    arrays = [a for a in (x, weight, bias) if a is not None]
    ours = ref.on_device("cpu", *arrays)
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = conv_of(case)(*ours)
    expected = torch.nn.functional.conv2d(*theirs, stride=case.stride, padding=case.padding, groups=case.groups)
    dout = np.random.default_rng(4).standard_normal(out.shape)
    out.backward(dout)
    expected.backward(torch.tensor(dout))
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-10)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-10, atol=1e-10)
