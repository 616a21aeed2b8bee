"""Optimisers and schedules: hand-worked steps, and trajectories equal to torch.optim's for the same gradients."""

import math

import numpy as np
import pytest

from tinyresnet import Tensor
from tinyresnet.optim import SGD, Adam, ConstantLR, CosineAnnealingLR, LinearWarmup, MultiStepLR

TORCH_REASON = "torch is the optional oracle for the optimiser trajectories (pip install torch)"
SHAPES = [(3, 2), (4,), (2, 1, 3, 3)]


def make_params(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return [Tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in SHAPES]


def gradient_stream(steps, dtype, seed=1):
    """The same gradients for both optimisers: one list of arrays per step."""
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(steps)]


def run_ours(opt_class, kwargs, grads, dtype, groups=None):
    params = make_params(dtype)
    opt = opt_class(groups(params) if groups else params, **kwargs)
    trajectory = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.copy()
        opt.step()
        trajectory.append([p.data.copy() for p in params])
    return trajectory


def run_torch(torch, opt_class, kwargs, grads, dtype, groups=None):
    params = [torch.tensor(p.data).requires_grad_() for p in make_params(dtype)]
    opt = opt_class(groups(params) if groups else params, **kwargs)
    trajectory = []
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g)
        opt.step()
        trajectory.append([p.detach().numpy().copy() for p in params])
    return trajectory


SGD_CONFIGS = [dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.05, momentum=0.9, nesterov=True),
               dict(lr=0.1, momentum=0.9, weight_decay=1e-2), dict(lr=0.1, momentum=0.8, dampening=0.3),
               dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=5e-4)]
ADAM_CONFIGS = [dict(), dict(lr=0.01, betas=(0.8, 0.99)), dict(lr=0.003, eps=1e-6, weight_decay=1e-2)]


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("name, kwargs", [("SGD", c) for c in SGD_CONFIGS] + [("Adam", c) for c in ADAM_CONFIGS])
def test_trajectory_matches_torch(name, kwargs, dtype, rtol):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    assert_trajectory_matches_torch(torch, {"SGD": SGD, "Adam": Adam}[name], name, kwargs, dtype, rtol, steps=12)


def assert_trajectory_matches_torch(torch, opt_class, name, kwargs, dtype, rtol, steps):
    """Our ``opt_class`` and ``torch.optim.<name>`` given the same parameters and gradients for ``steps``
    steps: every parameter after every step agrees to ``rtol`` (and keeps its dtype)."""
    grads = gradient_stream(steps, dtype)
    ours = run_ours(opt_class, kwargs, grads, dtype)
    theirs = run_torch(torch, getattr(torch.optim, name), kwargs, grads, dtype)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        for p, q in zip(a, b):
            assert p.dtype == dtype
            np.testing.assert_allclose(p, q, rtol=rtol, atol=rtol, err_msg=f"{name}{kwargs} step {step}")


def test_param_groups_match_torch():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)

    def groups(params):   # the convolution weights decay, the rest do not, and run at half the rate
        return [{"params": params[:1], "weight_decay": 1e-2}, {"params": params[1:], "lr": 0.05}]

    kwargs = dict(lr=0.1, momentum=0.9)
    grads = gradient_stream(5, np.float64)
    ours = run_ours(SGD, kwargs, grads, np.float64, groups)
    theirs = run_torch(torch, torch.optim.SGD, kwargs, grads, np.float64, groups)
    for a, b in zip(ours[-1], theirs[-1]):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_sgd_momentum_by_hand():
    p = Tensor(np.array([1.0]), requires_grad=True)
    opt = SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.array([0.5])
    opt.step()                                   # buf = 0.5,              p = 1 - 0.05
    assert p.data[0] == pytest.approx(0.95)
    p.grad = np.array([0.5])
    opt.step()                                   # buf = 0.9·0.5 + 0.5 = 0.95, p = 0.95 - 0.095
    assert p.data[0] == pytest.approx(0.855)


def test_adam_first_step_moves_by_lr():
    """With bias correction, Adam's first step is lr · g/|g| (up to eps) whatever the gradient's scale."""
    p = Tensor(np.array([0.0, 0.0]), requires_grad=True)
    opt = Adam([p], lr=0.01)
    p.grad = np.array([1e-3, -50.0])
    opt.step()
    np.testing.assert_allclose(p.data, [-0.01, 0.01], rtol=1e-4)


@pytest.mark.parametrize("opt_class, kwargs", [(SGD, dict(lr=0.1, momentum=0.9)), (Adam, dict(lr=0.1))])
def test_minimises_a_quadratic(opt_class, kwargs):
    target = np.array([3.0, -2.0, 0.5])
    p = Tensor(np.zeros(3), requires_grad=True)
    opt = opt_class([p], **kwargs)
    for _ in range(300):
        opt.zero_grad()
        loss = ((p - Tensor(target)) ** 2.0).sum()
        loss.backward()
        opt.step()
    np.testing.assert_allclose(p.data, target, atol=1e-2)


def test_zero_grad_and_params_without_grad():
    a, b = make_params(np.float32)[:2]
    opt = SGD([a, b], lr=1.0)
    a.grad = np.ones_like(a.data)
    before = b.data.copy()
    opt.step()                                   # b has no gradient: untouched
    np.testing.assert_array_equal(b.data, before)
    a.grad = np.full_like(a.data, np.nan)
    opt.zero_grad(set_to_none=False)                            # keeps an array of zeros, as torch's zero_()
    np.testing.assert_array_equal(a.grad, np.zeros_like(a.data))
    opt.zero_grad()
    assert a.grad is None and b.grad is None


@pytest.mark.parametrize("opt_class, kwargs", [(SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
                                               (Adam, dict(lr=0.01, weight_decay=1e-3))])
def test_state_dict_resume_is_exact(opt_class, kwargs):
    grads = gradient_stream(6, np.float32)
    straight = run_ours(opt_class, kwargs, grads, np.float32)[-1]

    params = make_params(np.float32)
    first = opt_class(params, **kwargs)
    for step_grads in grads[:3]:
        for p, g in zip(params, step_grads):
            p.grad = g.copy()
        first.step()
    saved = first.state_dict()
    second = opt_class(params, lr=123.0)         # settings come back from the state dict too
    second.load_state_dict(saved)
    assert second.param_groups[0]["lr"] == kwargs["lr"]
    for step_grads in grads[3:]:
        for p, g in zip(params, step_grads):
            p.grad = g.copy()
        second.step()
    for p, q in zip(params, straight):
        np.testing.assert_array_equal(p.data, q)


def test_load_state_dict_of_another_model_is_refused():
    params = make_params(np.float32)
    opt = SGD(params, lr=0.1, momentum=0.9)
    for p in params:
        p.grad = np.ones_like(p.data)
    opt.step()
    other = SGD([Tensor(np.zeros((5, 5), np.float32), requires_grad=True)] + params[1:], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"shape \(3, 2\) but the parameter has shape \(5, 5\)"):
        other.load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="different model"):
        SGD(params[:2], lr=0.1).load_state_dict(opt.state_dict())


def test_bad_arguments():
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        SGD(make_params(np.float32), lr=0.1, nesterov=True)
    with pytest.raises(TypeError, match="not a Tensor"):
        SGD([np.zeros(3)], lr=0.1)


# ---------------------------------------------------------------------------------------- schedules
def lrs_per_epoch(scheduler, optimizer, epochs):
    out = []
    for _ in range(epochs):
        out.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
    return out


def test_multistep_document_schedule():
    """The document's recipe: lr 0.1 with milestones [30, 60, 80], gamma 0.1, for 90 epochs."""
    opt = SGD(make_params(np.float32), lr=0.1, momentum=0.9)
    lrs = lrs_per_epoch(MultiStepLR(opt, milestones=[30, 60, 80], gamma=0.1), opt, 90)
    expected = [0.1] * 30 + [0.01] * 30 + [0.001] * 20 + [0.0001] * 10
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)


@pytest.mark.parametrize("make", [
    lambda m, o: m.MultiStepLR(o, milestones=[3, 7, 7, 12], gamma=0.5),
    lambda m, o: m.CosineAnnealingLR(o, T_max=10, eta_min=0.001),
    lambda m, o: m.CosineAnnealingLR(o, T_max=7),
    lambda m, o: m.ConstantLR(o, factor=0.5, total_iters=4),
])
@pytest.mark.filterwarnings("ignore:Detected call of")
def test_schedules_match_torch(make):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    import tinyresnet.optim.lr_scheduler as ours_module

    ours_opt = SGD(make_params(np.float64), lr=0.1)
    theirs_opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)
    ours = lrs_per_epoch(make(ours_module, ours_opt), ours_opt, 15)
    theirs = lrs_per_epoch(make(torch.optim.lr_scheduler, theirs_opt), theirs_opt, 15)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10)


def test_cosine_endpoints():
    opt = SGD(make_params(np.float32), lr=0.2)
    lrs = lrs_per_epoch(CosineAnnealingLR(opt, T_max=8, eta_min=0.002), opt, 9)
    assert lrs[0] == pytest.approx(0.2) and lrs[8] == pytest.approx(0.002)
    assert lrs[4] == pytest.approx(0.101)                     # halfway: the mean of the two
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


def test_paper_resnet110_warmup():
    """0.01 for the first 400 iterations, then 0.1; the epoch schedule still applies afterwards."""
    opt = SGD(make_params(np.float32), lr=0.1, momentum=0.9)
    sched = LinearWarmup(opt, warmup_steps=400, start_factor=0.1, mode="constant",
                         after=MultiStepLR(opt, milestones=[2], gamma=0.1))
    seen = []
    for _epoch in range(3):
        for _ in range(391):                                   # 50k images / batch 128
            seen.append(opt.param_groups[0]["lr"])
            sched.step_batch()
        sched.step()
    seen = np.array(seen)
    np.testing.assert_allclose(seen[:400], 0.01, rtol=1e-12)
    np.testing.assert_allclose(seen[400:782], 0.1, rtol=1e-12)
    np.testing.assert_allclose(seen[782:], 0.01, rtol=1e-12)   # the milestone at epoch 2


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_linear_warmup_matches_torch_linear_lr():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    opt = SGD(make_params(np.float32), lr=0.1)
    ours = LinearWarmup(opt, warmup_steps=10, start_factor=0.25)
    t_opt = torch.optim.SGD([torch.zeros(2, requires_grad=True)], lr=0.1)
    theirs = torch.optim.lr_scheduler.LinearLR(t_opt, start_factor=0.25, total_iters=10)
    for _ in range(14):
        assert opt.param_groups[0]["lr"] == pytest.approx(t_opt.param_groups[0]["lr"], rel=1e-12)
        ours.step_batch()
        theirs.step()


def test_warmup_per_epoch():
    opt = SGD(make_params(np.float32), lr=0.1)
    sched = LinearWarmup(opt, warmup_steps=4, start_factor=0.2, unit="epoch")
    sched.step_batch()                                         # ignored in epoch units
    np.testing.assert_allclose(lrs_per_epoch(sched, opt, 6), [0.02, 0.04, 0.06, 0.08, 0.1, 0.1], rtol=1e-12)


def test_schedule_state_dict_resume():
    def build():
        opt = SGD(make_params(np.float32), lr=0.1)
        return opt, LinearWarmup(opt, 20, start_factor=0.1, after=CosineAnnealingLR(opt, T_max=5))

    opt, sched = build()
    for _ in range(2):
        for _ in range(7):
            sched.step_batch()
        sched.step()
    opt2, sched2 = build()
    sched2.load_state_dict(sched.state_dict())
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for _ in range(3):
        sched.step_batch()
        sched2.step_batch()
        sched.step()
        sched2.step()
        assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    expected = 0.1 * (1 + math.cos(math.pi * 5 / 5)) / 2       # epoch 5 of 5, warm-up over
    assert opt.param_groups[0]["lr"] == pytest.approx(expected, abs=1e-15)


def test_constant_lr_with_factor_one_is_no_schedule():
    opt = SGD(make_params(np.float32), lr=0.3)
    assert lrs_per_epoch(ConstantLR(opt, factor=1.0), opt, 7) == [0.3] * 7
