"""batch_norm in training and eval mode: gradients, the loop reference, running statistics, PyTorch."""

import numpy as np
import pytest
import reference as ref

from tinyresnet import functional as F
from tinyresnet.backend import to_device, to_numpy
from tinyresnet.gradcheck import assert_gradcheck

pytestmark = pytest.mark.usefixtures("tier")   # every test on the plain ops and on the fast kernels

SHAPE = (3, 2, 4, 3)                                   # N, C, H, W: 36 values per channel


def make_inputs(seed=10, shape=SHAPE):
    """x with a non-trivial mean and scale per channel; gamma, beta; running statistics.

    Not seed 0: gradcheck draws its output weights R from seed 0, and an x drawn from that same
    stream makes R an affine function of x̂, for which the batch-norm gradient is exactly zero.
    """
    rng = np.random.default_rng(seed)
    C = shape[1]
    scale, shift = np.linspace(2.0, 0.5, C), np.arange(C)
    x = rng.standard_normal(shape) * scale[:, None, None] + shift[:, None, None]
    weight, bias = rng.uniform(0.5, 1.5, C), rng.standard_normal(C)
    running_mean, running_var = rng.standard_normal(C), rng.uniform(0.5, 2.0, C)
    return x, weight, bias, running_mean, running_var


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "weight-bias-None"])
def test_batch_norm_gradients_match_finite_differences(training, affine, device):
    x, weight, bias, running_mean, running_var = make_inputs()
    rm, rv = to_device(running_mean, device), to_device(running_var, device)
    if affine:
        def fn(x, weight, bias):
            return F.batch_norm(x, rm.copy(), rv.copy(), weight, bias, training=training)
        inputs, names = ref.on_device(device, x, weight, bias), ["x", "weight", "bias"]
    else:
        def fn(x):
            return F.batch_norm(x, rm.copy(), rv.copy(), training=training)
        inputs, names = ref.on_device(device, x), ["x"]
    assert_gradcheck(fn, inputs, names=names)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "weight-bias-None"])
def test_batch_norm_forward_and_running_stats_match_loops(training, affine, device):
    x, weight, bias, running_mean, running_var = make_inputs(seed=1)
    if not affine:
        weight = bias = None
    expected, expected_mean, expected_var = ref.batch_norm(x, running_mean, running_var, weight, bias, training)
    rm, rv = to_device(running_mean, device), to_device(running_var, device)
    params = ref.on_device(device, *[a for a in (weight, bias) if a is not None])
    out = F.batch_norm(ref.on_device(device, x)[0], rm, rv, *params, training=training)
    np.testing.assert_allclose(to_numpy(out.data), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(rm), expected_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_numpy(rv), expected_var, rtol=1e-12, atol=1e-12)


def test_training_uses_pytorch_defaults_momentum_and_unbiased_running_var():
    """Two training steps with the default arguments move the running statistics as
    running = 0.9 · running + 0.1 · batch, with the batch variance unbiased (÷ (n − 1))."""
    x1, weight, bias, _, _ = make_inputs(seed=2)
    x2 = make_inputs(seed=3)[0]
    rm, rv = np.zeros(2), np.ones(2)
    for x in (x1, x2):
        F.batch_norm(*ref.on_device("cpu", x), rm, rv, *ref.on_device("cpu", weight, bias), training=True)
    n = SHAPE[0] * SHAPE[2] * SHAPE[3]
    mean1, mean2 = x1.mean(axis=(0, 2, 3)), x2.mean(axis=(0, 2, 3))
    var1, var2 = x1.var(axis=(0, 2, 3)) * n / (n - 1), x2.var(axis=(0, 2, 3)) * n / (n - 1)
    np.testing.assert_allclose(rm, 0.9 * (0.1 * mean1) + 0.1 * mean2, rtol=1e-12)
    np.testing.assert_allclose(rv, 0.9 * (0.9 * 1.0 + 0.1 * var1) + 0.1 * var2, rtol=1e-12)


def test_default_eps_is_1e_minus_5():
    """With a channel variance of about 1e-6 the eps in √(σ² + eps) dominates: only 1e-5 matches."""
    x = make_inputs(seed=4)[0] * 1e-3
    out = F.batch_norm(ref.on_device("cpu", x)[0], np.zeros(2), np.ones(2), training=True).numpy()
    expected, _, _ = ref.batch_norm(x, np.zeros(2), np.ones(2), training=True, eps=1e-5)
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    other_eps, _, _ = ref.batch_norm(x, np.zeros(2), np.ones(2), training=True, eps=1e-3)
    assert not np.allclose(out, other_eps, rtol=1e-3)


def test_eval_mode_leaves_running_stats_alone():
    x, weight, bias, running_mean, running_var = make_inputs(seed=5)
    rm, rv = running_mean.copy(), running_var.copy()
    F.batch_norm(*ref.on_device("cpu", x), rm, rv, *ref.on_device("cpu", weight, bias), training=False)
    np.testing.assert_array_equal(rm, running_mean)
    np.testing.assert_array_equal(rv, running_var)


def test_training_normalises_each_channel_to_mean_0_variance_1():
    x = make_inputs(seed=6)[0]
    out = F.batch_norm(ref.on_device("cpu", x)[0], None, None, training=True).numpy()
    np.testing.assert_allclose(out.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=(0, 2, 3)), 1.0, rtol=1e-4)     # 1 − eps/σ², σ² ≥ 0.25


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_matches_torch(training):
    torch = pytest.importorskip("torch", reason="PyTorch is the optional oracle (pip install 'tinyresnet[torch]')")
    x, weight, bias, running_mean, running_var = make_inputs(seed=7)
    ours = ref.on_device("cpu", x, weight, bias)
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, weight, bias)]
    rm, rv = running_mean.copy(), running_var.copy()
    trm, trv = torch.tensor(running_mean), torch.tensor(running_var)
    out = F.batch_norm(ours[0], rm, rv, ours[1], ours[2], training=training)
    expected = torch.nn.functional.batch_norm(theirs[0], trm, trv, theirs[1], theirs[2], training=training)
    dout = np.random.default_rng(8).standard_normal(out.shape)
    out.backward(dout)
    expected.backward(torch.tensor(dout))
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(rm, trm.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-10, atol=1e-12)
    for name, a, b in zip(["x", "weight", "bias"], ours, theirs):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-10, atol=1e-10, err_msg=name)
