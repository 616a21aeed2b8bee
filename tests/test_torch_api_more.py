"""PyTorch names at home: AdamW, StepLR, ExponentialLR, OneCycleLR, zero_grad(set_to_none), TensorDataset,
Digits, torchvision-style builders with ``weights=``, ``summary`` and ``python -m tinyresnet``.

Where torch is installed the numbers are compared with it; without torch those comparisons are skipped."""

import inspect
import subprocess
import sys

import numpy as np
import pytest

# the parameters, gradient stream and trajectories of tests/test_optim.py, for AdamW against torch
from test_optim import assert_trajectory_matches_torch, gradient_stream, make_params, run_ours, run_torch

import tinyresnet
from tinyresnet import Tensor, models
from tinyresnet.data import DataLoader, Digits, TensorDataset, load_digits
from tinyresnet.optim import SGD, Adam, AdamW, ExponentialLR, OneCycleLR, StepLR
from tinyresnet.summary import summarize, summary

TORCH_REASON = "torch is the optional oracle for the PyTorch-compatible API (pip install torch)"

# ---------------------------------------------------------------------------------------- AdamW
ADAMW_CONFIGS = [dict(), dict(lr=0.01, weight_decay=0.1), dict(lr=0.003, betas=(0.8, 0.99), eps=1e-6),
                 dict(lr=0.01, weight_decay=0.05, amsgrad=True), dict(lr=0.01, weight_decay=0.0)]


def decay_only_first(params):
    return [{"params": params[:1]}, {"params": params[1:], "weight_decay": 0.0, "lr": 0.02}]


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("name, kwargs", [("AdamW", c) for c in ADAMW_CONFIGS] + [
    ("Adam", dict(lr=0.01, amsgrad=True)), ("Adam", dict(lr=0.01, weight_decay=0.1, amsgrad=True))])
def test_adamw_and_amsgrad_trajectories_match_torch(name, kwargs, dtype, rtol):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    assert_trajectory_matches_torch(torch, {"Adam": Adam, "AdamW": AdamW}[name], name, kwargs, dtype, rtol, steps=15)


def test_adamw_param_groups_match_torch():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    grads = gradient_stream(10, np.float64)
    ours = run_ours(AdamW, dict(lr=0.01, weight_decay=0.2), grads, np.float64, decay_only_first)
    theirs = run_torch(torch, torch.optim.AdamW, dict(lr=0.01, weight_decay=0.2), grads, np.float64, decay_only_first)
    for a, b in zip(ours, theirs):
        for p, q in zip(a, b):
            np.testing.assert_allclose(p, q, rtol=1e-12, atol=1e-12)


def test_adamw_defaults_are_torchs():
    signature = inspect.signature(AdamW)
    defaults = {k: v.default for k, v in signature.parameters.items() if k != "params"}
    assert defaults == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False)


def test_adamw_decay_is_decoupled_by_hand():
    """Step 1: the parameter shrinks by lr·wd·p, then moves by lr against the gradient's sign (Adam's first step)."""
    p = Tensor(np.array([2.0, -4.0]), requires_grad=True)
    opt = AdamW([p], lr=0.1, weight_decay=0.5)
    p.grad = np.array([1e-3, -10.0])            # tiny or huge: the decay is the same fraction of p
    opt.step()
    expected = np.array([2.0, -4.0]) * (1 - 0.1 * 0.5) - 0.1 * np.sign(p.grad)
    np.testing.assert_allclose(p.data, expected, rtol=1e-6)
    # Adam's weight_decay is L2 in the gradient instead, normalised away on the first step
    q = Tensor(np.array([2.0, -4.0]), requires_grad=True)
    adam = Adam([q], lr=0.1, weight_decay=0.5)
    q.grad = np.array([1e-3, -10.0])
    adam.step()
    assert not np.allclose(q.data, p.data)


def test_adamw_state_dict_resume_is_exact():
    grads = gradient_stream(8, np.float64)
    straight = run_ours(AdamW, dict(lr=0.01, amsgrad=True), grads, np.float64)[-1]
    params = make_params(np.float64)
    opt = AdamW(params, lr=0.01, amsgrad=True)
    for step_grads in grads[:4]:
        for p, g in zip(params, step_grads):
            p.grad = g.copy()
        opt.step()
    saved, values = opt.state_dict(), [p.data.copy() for p in params]
    params = make_params(np.float64)
    for p, v in zip(params, values):
        p.data[...] = v
    opt = AdamW(params, lr=0.01, amsgrad=True)
    opt.load_state_dict(saved)
    for step_grads in grads[4:]:
        for p, g in zip(params, step_grads):
            p.grad = g.copy()
        opt.step()
    for p, q in zip(params, straight):
        np.testing.assert_array_equal(p.data, q)


def test_adamw_bad_arguments_name_the_values():
    with pytest.raises(ValueError, match=r"AdamW: lr, eps and weight_decay must be ≥ 0, got lr=-1"):
        AdamW(make_params(), lr=-1)
    with pytest.raises(ValueError, match=r"AdamW: betas must be two numbers in \[0, 1\), got \(0.9, 1.0\)"):
        AdamW(make_params(), betas=(0.9, 1.0))


# ---------------------------------------------------------------------------------------- zero_grad
def test_zero_grad_set_to_none_is_the_default_as_in_torch():
    params = make_params()
    opt = SGD(params, lr=0.1)
    assert inspect.signature(opt.zero_grad).parameters["set_to_none"].default is True
    for p in params:
        p.grad = np.ones(p.shape)
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_zero_grad_set_to_none_false_keeps_zero_arrays():
    params = make_params(np.float32)
    opt = SGD(params, lr=0.1)
    params[0].grad = np.ones(params[0].shape, np.float32)
    opt.zero_grad(set_to_none=False)
    assert params[0].grad.shape == params[0].shape and params[0].grad.dtype == np.float32
    assert not params[0].grad.any()
    assert params[1].grad is None                     # as torch: a missing gradient stays missing
    opt.step()                                        # a zero gradient moves nothing
    np.testing.assert_array_equal(params[0].data, make_params(np.float32)[0].data)


# ---------------------------------------------------------------------------------------- schedules
def lrs(scheduler, optimizer, steps, advance=None):
    out = []
    for _ in range(steps):
        out.append(optimizer.param_groups[0]["lr"])
        (advance or scheduler.step)()
    return out


def torch_lrs(torch, make, steps, lr=0.1, optimizer="SGD", **opt_kwargs):
    opt = getattr(torch.optim, optimizer)([torch.zeros(2, requires_grad=True)], lr=lr, **opt_kwargs)
    scheduler = make(torch.optim.lr_scheduler, opt)
    out, momentum = [], []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        group = opt.param_groups[0]
        momentum.append(group["betas"][0] if "betas" in group else group["momentum"])
        opt.step()
        scheduler.step()
    return out, momentum


def ours_lrs(make, steps, lr=0.1, optimizer=SGD, **opt_kwargs):
    opt = optimizer([Tensor(np.zeros(2), requires_grad=True)], lr=lr, **opt_kwargs)
    scheduler = make(opt)
    out, momentum = [], []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        group = opt.param_groups[0]
        momentum.append(group["betas"][0] if "betas" in group else group["momentum"])
        scheduler.step()
    return out, momentum


EPOCH_SCHEDULES = {
    "StepLR(3, 0.5)": (lambda o: StepLR(o, step_size=3, gamma=0.5), lambda m, o: m.StepLR(o, step_size=3, gamma=0.5)),
    "StepLR(1)": (lambda o: StepLR(o, 1), lambda m, o: m.StepLR(o, 1)),
    "ExponentialLR(0.9)": (lambda o: ExponentialLR(o, gamma=0.9), lambda m, o: m.ExponentialLR(o, gamma=0.9)),
}


@pytest.mark.parametrize("name", list(EPOCH_SCHEDULES))
def test_epoch_schedules_match_torch(name):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    ours_make, torch_make = EPOCH_SCHEDULES[name]
    ours, _ = ours_lrs(ours_make, 20)
    theirs, _ = torch_lrs(torch, torch_make, 20)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, err_msg=name)


def test_step_and_exponential_by_hand():
    opt = SGD(make_params(), lr=1.0)
    assert lrs(StepLR(opt, step_size=2, gamma=0.1), opt, 6) == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    opt = SGD(make_params(), lr=2.0)
    assert lrs(ExponentialLR(opt, gamma=0.5), opt, 4) == pytest.approx([2, 1, 0.5, 0.25])
    with pytest.raises(ValueError, match="step_size must be a whole number of epochs ≥ 1, got 0"):
        StepLR(opt, step_size=0)


ONE_CYCLE = {
    "total_steps": dict(max_lr=0.5, total_steps=40),
    "epochs x steps_per_epoch": dict(max_lr=0.5, epochs=4, steps_per_epoch=7),
    "linear": dict(max_lr=1.0, total_steps=30, anneal_strategy="linear", pct_start=0.25),
    "three_phase": dict(max_lr=0.3, total_steps=50, three_phase=True),
    "divisions": dict(max_lr=0.2, total_steps=25, div_factor=10, final_div_factor=100, pct_start=0.4),
    "no momentum cycling": dict(max_lr=0.5, total_steps=20, cycle_momentum=False),
    "momentum range": dict(max_lr=0.5, total_steps=20, base_momentum=0.7, max_momentum=0.99),
}


@pytest.mark.parametrize("optimizer", ["SGD", "AdamW"])
@pytest.mark.parametrize("name", list(ONE_CYCLE))
def test_one_cycle_matches_torch(name, optimizer):
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    kwargs = ONE_CYCLE[name]
    total = kwargs.get("total_steps") or kwargs["epochs"] * kwargs["steps_per_epoch"]
    opt_kwargs = dict(momentum=0.9) if optimizer == "SGD" else {}
    ours = ours_lrs(lambda o: OneCycleLR(o, **kwargs), total, optimizer={"SGD": SGD, "AdamW": AdamW}[optimizer],
                    **opt_kwargs)
    theirs = torch_lrs(torch, lambda m, o: m.OneCycleLR(o, **kwargs), total, optimizer=optimizer, **opt_kwargs)
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12, atol=1e-15, err_msg=f"{name}: learning rates")
    np.testing.assert_allclose(ours[1], theirs[1], rtol=1e-12, err_msg=f"{name}: momentum")


def test_one_cycle_param_groups_match_torch():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)

    def run(make_opt, zeros, module):
        opt = make_opt([{"params": [zeros()]}, {"params": [zeros()], "lr": 0.5}], lr=0.1, momentum=0.9)
        scheduler = module.OneCycleLR(opt, max_lr=[0.4, 0.8], total_steps=12)
        rows = []
        for _ in range(12):
            rows.append([g["lr"] for g in opt.param_groups] + [g["momentum"] for g in opt.param_groups])
            opt.step()
            scheduler.step()
        return np.array(rows)

    ours = run(SGD, lambda: Tensor(np.zeros(2), requires_grad=True), tinyresnet.optim.lr_scheduler)
    theirs = run(torch.optim.SGD, lambda: torch.zeros(2, requires_grad=True), torch.optim.lr_scheduler)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)


def test_one_cycle_shape_by_hand():
    opt = SGD(make_params(), lr=0.1, momentum=0.9)
    rates = lrs(OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.5, anneal_strategy="linear"), opt, 10)
    assert rates[0] == pytest.approx(1.0 / 25)                  # starts at max_lr / div_factor
    assert max(rates) == pytest.approx(1.0) and rates.index(max(rates)) == 4
    assert rates[-1] == pytest.approx(1.0 / 25 / 1e4)           # ends at max_lr / div_factor / final_div_factor
    assert opt.param_groups[0]["initial_lr"] == pytest.approx(0.04)
    assert opt.param_groups[0]["max_lr"] == 1.0


def test_one_cycle_errors_where_torch_errors():
    opt = SGD(make_params(), lr=0.1, momentum=0.9)
    scheduler = OneCycleLR(opt, max_lr=0.5, total_steps=3)
    for _ in range(3):
        scheduler.step()
    with pytest.raises(ValueError, match="stepped 4 times, but its cycle has total_steps=3"):
        scheduler.step()
    with pytest.raises(ValueError, match="give total_steps, or both epochs and steps_per_epoch"):
        OneCycleLR(opt, max_lr=0.5, epochs=3)
    with pytest.raises(ValueError, match="total_steps must be a whole number ≥ 1, got 0"):
        OneCycleLR(opt, max_lr=0.5, total_steps=0)
    with pytest.raises(ValueError, match="anneal_strategy must be 'cos' or 'linear', got 'cosine'"):
        OneCycleLR(opt, max_lr=0.5, total_steps=10, anneal_strategy="cosine")
    with pytest.raises(ValueError, match="pct_start .* got 1.5"):
        OneCycleLR(opt, max_lr=0.5, total_steps=10, pct_start=1.5)
    with pytest.raises(ValueError, match="max_lr has 2 values but the optimizer has 1 parameter groups"):
        OneCycleLR(opt, max_lr=[0.1, 0.2], total_steps=10)
    with pytest.raises(ValueError, match="zero steps long"):         # torch: ZeroDivisionError at the first step
        OneCycleLR(opt, max_lr=0.5, total_steps=10, pct_start=0.1)


def test_one_cycle_with_the_training_loop_convention():
    """step_batch() per optimizer step and step() per epoch give torch's per-batch sequence."""
    opt = SGD(make_params(), lr=0.1, momentum=0.9)
    per_batch = lrs(OneCycleLR(opt, max_lr=0.5, total_steps=12), opt, 12)
    opt = SGD(make_params(), lr=0.1, momentum=0.9)
    scheduler = OneCycleLR(opt, max_lr=0.5, epochs=3, steps_per_epoch=4)
    loop = []
    for _ in range(3):
        for _ in range(4):
            loop.append(opt.param_groups[0]["lr"])
            scheduler.step_batch()
        scheduler.step()                              # the epoch's end: the rate stays
    assert loop == per_batch
    opt = SGD(make_params(), lr=0.1, momentum=0.9)
    scheduler = OneCycleLR(opt, max_lr=0.5, total_steps=12)
    scheduler.step()
    with pytest.raises(RuntimeError, match="either step\\(\\) or step_batch\\(\\) once per batch, not both"):
        scheduler.step_batch()


def test_one_cycle_needs_a_momentum_to_cycle():
    class NoMomentum(SGD):
        def __init__(self, params, lr):
            super().__init__(params, lr)
            del self.defaults["momentum"]

    with pytest.raises(ValueError, match="pass cycle_momentum=False"):
        OneCycleLR(NoMomentum(make_params(), 0.1), max_lr=0.5, total_steps=10)
    OneCycleLR(NoMomentum(make_params(), 0.1), max_lr=0.5, total_steps=10, cycle_momentum=False)


@pytest.mark.parametrize("make, per_batch", [
    (lambda o: StepLR(o, 2, 0.5), False), (lambda o: ExponentialLR(o, 0.8), False),
    (lambda o: OneCycleLR(o, max_lr=0.5, total_steps=20), False),
    (lambda o: OneCycleLR(o, max_lr=0.5, total_steps=20), True),
])
def test_schedule_state_dict_resume(make, per_batch):
    def advance(scheduler):
        return scheduler.step_batch if per_batch else scheduler.step

    opt = SGD(make_params(), lr=0.1, momentum=0.9)
    scheduler = make(opt)
    straight = lrs(scheduler, opt, 15, advance(scheduler))
    opt = SGD(make_params(), lr=0.1, momentum=0.9)
    scheduler = make(opt)
    first = lrs(scheduler, opt, 6, advance(scheduler))
    saved_opt, saved = opt.state_dict(), scheduler.state_dict()
    opt = SGD(make_params(), lr=0.1, momentum=0.9)
    opt.load_state_dict(saved_opt)
    resumed = make(opt)
    resumed.load_state_dict(saved)
    assert first + lrs(resumed, opt, 9, advance(resumed)) == pytest.approx(straight, rel=1e-15)
    if per_batch:
        resumed.step()                                # still the training-loop convention: an epoch mark
        assert resumed.last_epoch == 15


# ---------------------------------------------------------------------------------------- datasets
def test_tensor_dataset_indexing_and_len():
    images = np.arange(5 * 2 * 3 * 3, dtype=np.float32).reshape(5, 2, 3, 3)
    labels = np.array([0, 1, 2, 1, 0])
    dataset = TensorDataset(images, labels)
    assert len(dataset) == 5
    item = dataset[3]
    assert isinstance(item, tuple) and len(item) == 2
    np.testing.assert_array_equal(item[0], images[3])
    assert item[1] == 1
    np.testing.assert_array_equal(dataset[1:3][0], images[1:3])
    assert len(TensorDataset(labels)[0]) == 1                  # one tensor: still a tuple
    assert "5 samples" in repr(dataset)


def test_tensor_dataset_takes_tensors_and_lists():
    dataset = TensorDataset(Tensor(np.ones((3, 2))), [[1], [2], [3]])
    assert isinstance(dataset.tensors[0], np.ndarray)
    assert dataset[2][1].tolist() == [3]


def test_tensor_dataset_errors():
    with pytest.raises(ValueError, match=r"first dimensions differ \(\[4, 3\]\)"):
        TensorDataset(np.zeros((4, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="at least one tensor"):
        TensorDataset()
    with pytest.raises(ValueError, match="tensor 1 is a single number"):
        TensorDataset(np.zeros(3), np.float32(2.0))


def test_tensor_dataset_with_the_data_loader():
    rng = np.random.default_rng(0)
    images = rng.random((10, 1, 4, 4)).astype(np.float32)
    labels = np.arange(10) % 3
    loader = DataLoader(TensorDataset(images, labels), batch_size=4, shuffle=True, seed=1, prefetch=0)
    batches = list(loader)
    assert [len(y) for _, y in batches] == [4, 4, 2]
    seen = np.concatenate([y for _, y in batches])
    assert sorted(seen.tolist()) == sorted(labels.tolist())
    x, y = batches[0]
    assert x.shape == (4, 1, 4, 4) and x.dtype == np.float32
    order = loader.order(0)[:4]
    np.testing.assert_array_equal(x, images[order])
    np.testing.assert_array_equal(y, labels[order])
    with pytest.raises(ValueError, match="holds 3 tensors"):
        next(iter(DataLoader(TensorDataset(images, labels, labels), batch_size=4, prefetch=0)))


def test_tensor_dataset_matches_torch():
    torch = pytest.importorskip("torch", reason=TORCH_REASON)
    x, y = torch.arange(12.0).reshape(6, 2), torch.tensor([0, 1, 0, 1, 1, 0])
    theirs = torch.utils.data.TensorDataset(x, y)
    ours = TensorDataset(x, y)                                  # torch tensors are taken as arrays
    assert len(ours) == len(theirs)
    for i in range(len(ours)):
        for a, b in zip(ours[i], theirs[i]):
            np.testing.assert_array_equal(a, b.numpy())


def test_digits_dataset_class():
    train, test = load_digits()
    digits_train, digits_test = Digits(train=True), Digits(train=False)
    assert (len(digits_train), len(digits_test)) == (1438, 359)
    np.testing.assert_array_equal(digits_train.images, train.images)
    np.testing.assert_array_equal(digits_test.labels, test.labels)
    assert Digits().train and not digits_test.train
    image, label = digits_train[0]
    assert image.shape == (1, 8, 8) and 0 <= label < 10
    assert digits_train.num_classes == 10
    x, y = next(iter(DataLoader(digits_train, batch_size=8, prefetch=0)))
    assert x.shape == (8, 1, 8, 8)


# ---------------------------------------------------------------------------------------- builders
def test_every_builder_takes_weights_first_as_torchvision():
    for name in models.list_models():
        parameters = list(inspect.signature(models.get_builder(name)).parameters.values())
        assert [p.name for p in parameters[:2]] == ["weights", "progress"], name
        assert parameters[0].default is None and parameters[1].default is True, name
        keyword_only = {p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}
        assert {"num_classes", "in_channels"} <= keyword_only, name


def test_builders_keep_their_keyword_arguments():
    model = models.resnet20(num_classes=7, in_channels=1)
    assert (model.num_classes, model.in_channels) == (7, 1)
    model = models.resnet20(weights=None, progress=False, num_classes=5, shortcut="B")
    assert model.num_classes == 5 and model.shortcut == "B"
    assert models.get_model("resnet20", num_classes=3, weights=None).num_classes == 3


def test_builder_loads_a_npz_state_dict(tmp_path):
    tinyresnet.manual_seed(0)
    trained = models.resnet20(num_classes=4, in_channels=1)
    path = tmp_path / "resnet20.npz"
    trained.save(str(path))
    for loaded in (models.resnet20(weights=str(path), num_classes=4, in_channels=1),
                   models.get_model("resnet20", weights=path, num_classes=4, in_channels=1)):
        for (key, a), b in zip(trained.state_dict().items(), loaded.state_dict().values()):
            np.testing.assert_array_equal(a, b, err_msg=key)
    with pytest.raises(RuntimeError, match="size mismatch"):            # strict: shapes must match
        models.resnet20(weights=str(path), num_classes=10, in_channels=1)


@pytest.mark.parametrize("weights", ["IMAGENET1K_V1", "DEFAULT", object()])
def test_builder_refuses_to_download(weights):
    with pytest.raises(ValueError, match=r"cannot download pretrained weights.*tinyresnet convert-torch "
                                         r"resnet18\.pth resnet18\.npz --model resnet18"):
        models.resnet18(weights=weights)


def test_builder_refuses_a_torchvision_enum_by_its_name():
    class FakeWeights:                        # what torchvision's ResNet18_Weights.IMAGENET1K_V1 looks like here
        name = "IMAGENET1K_V1"

    with pytest.raises(ValueError, match="resnet50\\(weights='IMAGENET1K_V1'\\): tinyresnet cannot download"):
        models.resnet50(weights=FakeWeights())


def test_builder_weights_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="there is no such file"):
        models.resnet20(weights=str(tmp_path / "missing.npz"))
    with pytest.raises(TypeError, match=r"pass the number of classes by name, resnet20\(num_classes=...\)"):
        models.resnet20(10)                  # the old positional num_classes is now weights, as in torchvision
    checkpoint = tmp_path / "resnet20.pth"
    checkpoint.write_bytes(b"not read")
    with pytest.raises(ValueError, match="tinyresnet convert-torch .*resnet20.pth resnet20.npz --model resnet20"):
        models.resnet20(weights=str(checkpoint))


# ---------------------------------------------------------------------------------------- summary and -m
def test_summary_is_summarize():
    assert summary is summarize
    result = summary(models.resnet20(num_classes=10, in_channels=1), (1, 8, 8))
    assert result.output_shape == (1, 10)
    assert "total parameters" in str(result)


def test_python_dash_m_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "tinyresnet", "--version"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == tinyresnet.__version__
    done = subprocess.run([sys.executable, "-m", "tinyresnet"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "convert-torch" in done.stdout
