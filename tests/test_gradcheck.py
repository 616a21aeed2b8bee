"""tinyresnet.gradcheck itself: it must pass correct ops and catch wrong ones, saying where."""

import numpy as np
import pytest
import reference as ref

from tinyresnet import Function, Tensor
from tinyresnet import functional as F
from tinyresnet.backend import get_array_module, to_numpy
from tinyresnet.gradcheck import assert_gradcheck, gradcheck


class SquareFunction(Function):
    """x², with a correct backward, or one that forgets the factor 2."""

    def __init__(self, forget_the_two=False):
        self.forget_the_two = forget_the_two

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, dout):
        return dout * self.x if self.forget_the_two else 2 * dout * self.x


class ScaleRowsFunction(Function):
    """x * w, whose backward for w is wrong at one index only (a typical indexing slip)."""

    def __init__(self, bad_index=None):
        self.bad_index = bad_index

    def forward(self, x, w):
        self.x, self.w = x, w
        return x * w

    def backward(self, dout):
        dw = dout * self.x
        if self.bad_index is not None:
            dw = dw.copy()
            dw[self.bad_index] *= 1.01                                # 1 % off at one entry
        return dout * self.w, dw


def normal(*shape, seed=30):
    return np.random.default_rng(seed).standard_normal(shape)


def test_a_correct_op_passes(device):
    report = gradcheck(lambda x: SquareFunction()(x), ref.on_device(device, normal(3, 4)), names=["x"])
    assert report.ok and report.max_rel_error < 1e-8
    [entry] = report.inputs
    assert entry.name == "x" and entry.shape == (3, 4)
    assert "gradcheck ok" in str(report)


def test_a_backward_that_forgets_a_factor_fails(device):
    with pytest.raises(AssertionError) as info:
        assert_gradcheck(lambda x: SquareFunction(forget_the_two=True)(x), ref.on_device(device, normal(3, 4)),
                         names=["x"])
    message = str(info.value)
    assert "FAILED" in message and "x (3, 4)" in message
    report = gradcheck(lambda x: SquareFunction(forget_the_two=True)(x), ref.on_device(device, normal(3, 4)))
    assert report.max_rel_error == pytest.approx(0.5, rel=1e-6)      # |x − 2x| / |2x|


def test_a_wrong_entry_is_reported_by_input_name_shape_and_index(device):
    x, w = normal(2, 3), normal(2, 3, seed=31)
    report = gradcheck(lambda x, w: ScaleRowsFunction(bad_index=(1, 2))(x, w), ref.on_device(device, x, w),
                       names=["x", "w"])
    assert not report.ok
    by_name = {r.name: r for r in report.inputs}
    assert by_name["x"].max_rel_error < 1e-8                         # the other input is right
    worst = report.worst
    assert (worst.name, worst.shape, worst.index) == ("w", (2, 3), (1, 2))
    assert worst.max_rel_error == pytest.approx(0.01 / 1.01, rel=1e-4)
    assert worst.analytic == pytest.approx(1.01 * worst.numeric, rel=1e-8)  # both values are in the report
    assert "w (2, 3): max relative error" in str(report) and "at index (1, 2)" in str(report)


def test_near_a_kink_finite_differences_disagree():
    """Why inputs must stay 2h away from ReLU's kink: an input at 1e-4 makes the check fail."""
    x = np.array([0.5, 1e-4, -0.7])
    assert not gradcheck(F.relu, [Tensor(x)]).ok
    assert gradcheck(F.relu, [Tensor(x + np.array([0, 0.01, 0]))]).ok


def test_float32_inputs_are_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"input 0 has dtype float32.*float64.*astype\(np.float64\)"):
        gradcheck(F.relu, [Tensor(np.ones(3, np.float32))])


def test_only_inputs_marked_requires_grad_are_checked():
    x = Tensor(normal(2, 3), requires_grad=True)
    w = Tensor(normal(2, 3, seed=31))
    report = gradcheck(lambda x, w: ScaleRowsFunction(bad_index=(0, 0))(x, w), [x, w], names=["x", "w"])
    assert [r.name for r in report.inputs] == ["x"] and report.ok    # w's wrong gradient is not looked at


def test_an_input_the_output_does_not_depend_on_has_zero_gradient():
    report = gradcheck(lambda x, unused: x * 2.0, [normal(3), normal(3)], names=["x", "unused"])
    assert report.ok
    assert report.inputs[1].analytic == 0.0                          # no gradient reached it: counted as zeros


def test_inputs_are_left_as_they_were(device):
    x = normal(2, 2)
    t = ref.on_device(device, x)[0]
    gradcheck(lambda t: SquareFunction()(t), [t])
    np.testing.assert_array_equal(to_numpy(t.data), x)


def test_non_contiguous_inputs_are_perturbed_correctly(device):
    x = ref.on_device(device, normal(4, 3))[0]
    x.data = get_array_module(x.data).asarray(x.data).T              # a transposed view, not C-contiguous
    assert_gradcheck(lambda t: t @ Tensor(get_array_module(t.data).ones((4, 2))), [x], names=["x"])


def test_a_gradient_that_is_zero_up_to_rounding_passes(device):
    """Training-mode BN subtracts the channel mean, so a conv bias before it has gradient 0: both
    the analytic and the numeric value are rounding noise, which must not count as an error."""
    rng = np.random.default_rng(32)
    x, w, b = rng.standard_normal((2, 2, 4, 4)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    report = assert_gradcheck(lambda x, w, b: F.batch_norm(F.conv2d(x, w, b, padding=1), None, None, training=True),
                              ref.on_device(device, x, w, b), names=["x", "weight", "conv bias"])
    assert abs(report.inputs[2].analytic) < 1e-12                    # the true gradient really is 0
