"""The GPU paths, checked on the CPU through a CuPy stand-in that refuses implicit host conversion.

``tests/fake_device.py`` provides ``FakeCudaArray``: NumPy maths underneath, but ``np.asarray``,
NumPy functions and host/device mixing raise TypeError, as with CuPy. Running every op, a whole
model, the optimiser and the training loop on it shows that no GPU path hands a device array to
NumPy. The tests at the end run on real CuPy and skip without a GPU.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import NO_GPU
from fake_device import FakeCudaArray, count_device_work, fake_cupy, is_fake_cuda, use_fake_gpu

import tinyresnet
from tinyresnet import Tensor, backend
from tinyresnet import functional as F
from tinyresnet.backend import check_device, device_of, get_array_module, gpu_available, to_device, to_numpy
from tinyresnet.gradcheck import assert_gradcheck
from tinyresnet.kernels import activation as kernel_activation
from tinyresnet.kernels import norm as kernel_norm
from tinyresnet.ops.basic import AddFunction

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = {np.float32: 1e-6, np.float64: 1e-12}   # same NumPy maths underneath: only rounding differs

pytestmark = pytest.mark.usefixtures("tier")   # every test on the plain ops and on the fast kernels


def device_array(host):
    return fake_cupy.asarray(host)


# --------------------------------------------------------------------------- the stand-in itself
def test_stand_in_refuses_implicit_conversion_to_host():
    a = device_array(np.arange(6.0).reshape(2, 3))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(a)
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.array(a, dtype=np.float64)
    with pytest.raises(TypeError, match="ufunc"):
        np.exp(a)
    with pytest.raises(TypeError, match="numpy.concatenate"):
        np.concatenate([a, a])
    with pytest.raises(TypeError, match="host numpy.ndarray"):
        a + np.ones(3)
    with pytest.raises(TypeError, match="host numpy.ndarray"):
        np.ones(3) * a
    with pytest.raises(TypeError, match="host numpy.ndarray"):
        a[0] = np.ones(3)
    with pytest.raises(TypeError, match="host numpy.ndarray"):
        fake_cupy.where(a > 2, a, np.zeros((2, 3)))
    with pytest.raises(TypeError):
        float(a)                                        # more than one element, as in CuPy


def test_stand_in_allows_what_cupy_allows():
    a = device_array(np.arange(6.0).reshape(2, 3))
    total = a.sum()
    assert is_fake_cuda(total) and total.ndim == 0      # reductions stay on the device, 0-d
    assert float(total) == 15.0 and int(a[1, 2]) == 5 and a.max().item() == 5.0
    assert is_fake_cuda(a[0, 0])                        # integer indexing gives a 0-d device array
    assert bool(a[0, 1] > 0) and a.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    scaled = np.float32(2.0) * a                        # NumPy scalars mix freely
    assert is_fake_cuda(scaled) and to_numpy(scaled)[1, 2] == 10.0
    with pytest.raises(ValueError, match="ambiguous"):
        bool(a > 1)
    with pytest.raises(ValueError, match="size 1"):
        a.item()


def test_stand_in_keeps_zero_dimensional_results_on_the_device():
    total = device_array(np.array([1.0, -4.0])).sum()
    for result in (-total, abs(total), total * 2, 1.0 - total, total ** 2, total > 0):
        assert is_fake_cuda(result) and result.ndim == 0


class _HostLeakingReLU(tinyresnet.Function):
    """A deliberately wrong op: it calls NumPy on its input instead of ``xp``."""

    def forward(self, x):
        self.mask = x > 0
        return np.maximum(x, 0)

    def backward(self, dout):
        return dout * self.mask


def test_stand_in_catches_an_op_that_hands_device_arrays_to_numpy():
    x = np.array([-1.0, 2.0])
    assert _HostLeakingReLU()(Tensor(x)).numpy().tolist() == [0.0, 2.0]     # fine on the CPU
    with pytest.raises(TypeError, match="ufunc"):
        _HostLeakingReLU()(Tensor(device_array(x)))


def test_stand_in_copies_on_transfer_and_updates_in_place():
    host = np.zeros(3)
    a = fake_cupy.asarray(host)
    a += 1.0
    a[1:] += device_array(np.array([1.0, 2.0]))
    assert host.tolist() == [0.0, 0.0, 0.0]             # a transfer copies: no shared memory
    back = to_numpy(a)
    back[0] = 99.0
    assert to_numpy(a).tolist() == [1.0, 2.0, 3.0]
    fake_cupy.add.at(a, device_array(np.array([0, 0])), 1.0)
    assert to_numpy(a).tolist() == [3.0, 2.0, 3.0]
    with pytest.raises(TypeError, match="int8"):         # CuPy's scatter-add has no 8-bit atomics
        fake_cupy.add.at(fake_cupy.zeros(3, dtype=np.int8), [0], 1)
    counts = fake_cupy.zeros(3, dtype=np.int64)          # int64 it has, since CuPy 14.1
    fake_cupy.add.at(counts, [0, 0], 1)
    assert to_numpy(counts).tolist() == [2, 0, 0]


def test_stand_in_counts_host_syncs_and_kernel_launches():
    a = device_array(np.arange(6.0).reshape(2, 3))
    with count_device_work() as work:
        b = a.reshape(3, 2).T                                # views: no kernel
        fake_cupy.empty((4,))                                # an allocation: no kernel
        c = fake_cupy.exp(a) + 1.0                           # two kernels
        total = (c * a).sum()                                # two more
        a[0] = 0.0                                           # a fill kernel
    assert (work.syncs, work.launches) == (0, 5) and b.shape == (2, 3)
    with count_device_work() as work:
        float(total), int(a[1, 0]), bool(a[1, 1] > 0), a[1, 2].item(), a.get(), fake_cupy.asnumpy(a), to_numpy(a)
    assert work.syncs == 7 and work.launches == 1            # the comparison launched; every read synced
    assert len(work.sync_sites) == 7 and "test_device.py" in work.sync_sites[0]
    with count_device_work() as work:
        with pytest.raises(TypeError):
            np.asarray(a)                                    # refused, so no transfer either
    assert work.syncs == 0


def test_stand_in_names_a_missing_function():
    with pytest.raises(AttributeError, match="fake_cupy has no 'fft'"):
        _ = fake_cupy.fft


def test_backend_reports_the_stand_in_as_a_cuda_device():
    a = device_array(np.ones((2, 2), dtype=np.float32))
    assert device_of(a) == "cuda" and device_of(np.ones(2)) == "cpu"
    assert get_array_module(a) is fake_cupy and get_array_module(np.ones(2)) is np
    assert get_array_module(np.ones(2), a) is fake_cupy
    assert isinstance(to_numpy(a), np.ndarray) and to_numpy(a).dtype == np.float32


# --------------------------------------------------------------------------- device selection
def test_use_device_module_routes_cuda_to_the_stand_in():
    with use_fake_gpu():
        assert gpu_available()
        assert check_device("cuda") == "cuda" and check_device("cuda:0") == "cuda"
        moved = to_device(np.arange(3.0), "cuda")
        assert is_fake_cuda(moved) and to_device(moved, "cuda") is moved
        assert isinstance(to_device(moved, "cpu"), np.ndarray)


def test_unknown_devices_fail_clearly():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        check_device("tpu")
    with pytest.raises(ValueError, match="CUDA_VISIBLE_DEVICES=1"):
        check_device("cuda:1")
    assert check_device("cpu") == "cpu"


@pytest.mark.skipif(gpu_available(), reason="this machine has a GPU: 'cuda' works here")
def test_cuda_without_a_gpu_fails_with_the_fix():
    with pytest.raises(RuntimeError, match=r"device 'cuda' requested but .*device='cpu'"):
        check_device("cuda")
    with pytest.raises(RuntimeError, match="device 'cuda' requested"):
        Tensor(np.ones(2)).to("cuda")
    with pytest.raises(RuntimeError, match="device 'cuda' requested"):
        Tensor(np.ones(2), device="cuda")


@pytest.mark.skipif(gpu_available(), reason="this machine has a GPU: 'cuda' works here")
def test_train_command_with_cuda_but_no_gpu_fails_with_the_fix(tmp_path):
    if importlib.util.find_spec("tinyresnet.commands.train") is None:
        pytest.skip("the train command is not written yet")
    result = subprocess.run([sys.executable, "-m", "tinyresnet.cli", "train", "--device", "cuda", "--epochs", "1",
                             "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120, cwd=ROOT)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "device 'cuda' requested but" in output and "device='cpu'" in output and "Traceback" not in output
    assert not (tmp_path / "run" / "last.npz").exists()


class _CupyWithoutDevice:
    """What CuPy looks like on a machine whose driver is missing: importable, but no device."""

    class cuda:
        class runtime:
            @staticmethod
            def getDeviceCount():
                raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")


@pytest.mark.parametrize("imported, error, expected", [
    (None, ModuleNotFoundError("No module named 'cupy'", name="cupy"), r"CuPy is not installed \(pip install"),
    (None, ImportError("libnvrtc.so.12: cannot open shared object file"), "CuPy could not be imported.*libnvrtc"),
    (_CupyWithoutDevice, None, "CuPy found no usable CUDA device.*nvidia-smi"),
], ids=["not-installed", "broken-install", "no-device"])
def test_each_reason_for_no_gpu_is_named(monkeypatch, imported, error, expected):
    monkeypatch.setattr(backend, "_cupy_import", {})
    monkeypatch.setattr(backend, "_import_cupy", lambda: (imported, error))
    assert not gpu_available()
    with pytest.raises(RuntimeError, match=expected):
        check_device("cuda")


_NO_CUPY_SCRIPT = r"""
import json, sys

class BlockCupy:
    attempts = []
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("cupy", "cupyx", "cupy_backends"):
            self.attempts.append(name)
            raise ImportError("cupy is blocked in this test", name=name)
        return None

sys.meta_path.insert(0, BlockCupy())
import numpy as np
import tinyresnet
from tinyresnet import Tensor, functional as F
from tinyresnet.backend import check_device, device_of
rng = np.random.default_rng(0)
x = Tensor(rng.standard_normal((2, 3, 6, 6)), requires_grad=True)
w = Tensor(rng.standard_normal((4, 3, 3, 3)), requires_grad=True)
y = F.relu(F.conv2d(x.to("cpu"), w, padding=1))
F.cross_entropy(F.adaptive_avg_pool2d(y, 1).flatten(1), np.array([0, 3])).backward()
check_device("cpu"); device_of(y.data)
import tinyresnet.models, tinyresnet.optim, tinyresnet.training

model = tinyresnet.models.resnet20(num_classes=10).to("cpu")
optimizer = tinyresnet.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
F.cross_entropy(model(Tensor(rng.standard_normal((2, 3, 8, 8), dtype=np.float32))), np.array([1, 2])).backward()
optimizer.step()
report = {"attempts_on_cpu": list(BlockCupy.attempts), "in_modules": "cupy" in sys.modules,
          "grad_ok": x.grad is not None and w.grad is not None}
try:
    x.to("cuda")
    report["cuda_error"] = None
except RuntimeError as e:
    report["cuda_error"] = str(e)
print(json.dumps(report))
"""


def test_cpu_work_never_imports_cupy_and_cuda_then_fails_clearly():
    """In a fresh interpreter with CuPy blocked: the CPU path never tries to import it; asking for
    "cuda" tries once and fails with a message saying what to install."""
    result = subprocess.run([sys.executable, "-c", _NO_CUPY_SCRIPT], capture_output=True, text=True,
                            timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["attempts_on_cpu"] == [] and not report["in_modules"] and report["grad_ok"]
    assert report["cuda_error"] and "device 'cuda' requested but CuPy could not be imported" in report["cuda_error"]
    assert "pip install 'tinyresnet[gpu]'" in report["cuda_error"] and "device='cpu'" in report["cuda_error"]


# --------------------------------------------------------------------------- every op, CPU vs device
def _positive(shape):
    return ("positive", shape)


def _ints(high, shape):
    return ("ints", high, shape)


def _make(spec, rng, dtype):
    if spec[0] == "positive":
        return (np.abs(rng.standard_normal(spec[1])) + 0.5).astype(dtype)
    if spec[0] == "ints":
        return rng.integers(0, spec[1], size=spec[2])
    return rng.standard_normal(spec).astype(dtype)


X4 = (2, 4, 6, 6)
OPS = {   # name: (function of the input tensors, input specs: a shape, _positive(shape) or _ints(high, shape))
    "conv2d-3x3-pad1-bias": (lambda x, w, b: F.conv2d(x, w, b, padding=1), [X4, (6, 4, 3, 3), (6,)]),
    "conv2d-3x3-stride2": (lambda x, w: F.conv2d(x, w, stride=2, padding=1), [X4, (5, 4, 3, 3)]),
    "conv2d-groups2": (lambda x, w, b: F.conv2d(x, w, b, groups=2), [X4, (6, 2, 3, 3), (6,)]),
    "conv2d-7x7-stem": (lambda x, w: F.conv2d(x, w, stride=2, padding=3), [(2, 3, 9, 9), (4, 3, 7, 7)]),
    "conv2d-1x1-stride2": (lambda x, w, b: F.conv2d(x, w, b, stride=2), [X4, (6, 4, 1, 1), (6,)]),
    "conv2d-1x1-im2col": (lambda x, w: F.conv2d_im2col(x, w, stride=2), [X4, (6, 4, 1, 1)]),
    "relu": (F.relu, [X4]),
    "max_pool2d-3x3-s2-p1": (lambda x: F.max_pool2d(x, 3, 2, 1), [X4]),
    "max_pool2d-2x2": (lambda x: F.max_pool2d(x, 2), [X4]),
    "avg_pool2d-3x3-s2-p1": (lambda x: F.avg_pool2d(x, 3, 2, 1), [X4]),
    "adaptive_avg_pool2d-1": (lambda x: F.adaptive_avg_pool2d(x, 1), [X4]),
    "adaptive_avg_pool2d-4x5": (lambda x: F.adaptive_avg_pool2d(x, (4, 5)), [X4]),
    "batch_norm-train": (lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True), [X4, (4,), (4,)]),
    "batch_norm-no-affine": (lambda x: F.batch_norm(x, None, None, training=True), [X4]),
    "linear": (F.linear, [(3, 5), (4, 5), (4,)]),
    "linear-3d-no-bias": (F.linear, [(2, 3, 5), (4, 5)]),
    "softmax": (lambda x: F.softmax(x, dim=1), [(3, 5)]),
    "log_softmax": (lambda x: F.log_softmax(x, dim=-1), [(3, 5)]),
    "cross_entropy-mean-host-targets": (lambda z: F.cross_entropy(z, np.array([0, 4, 2])), [(3, 5)]),
    "cross_entropy-sum": (lambda z, t: F.cross_entropy(z, t, reduction="sum"), [(3, 5), _ints(5, (3,))]),
    "cross_entropy-none": (lambda z, t: F.cross_entropy(z, t, reduction="none"), [(3, 5), _ints(5, (3,))]),
    "cat-channels": (lambda a, b: F.cat([a, b], dim=1), [X4, (2, 3, 6, 6)]),
    "pad": (lambda x: F.pad(x, (1, 2, 0, 1)), [X4]),
    "pad_channels": (lambda x: F.pad_channels(x, 2, 2), [X4]),
    "add-broadcast": (lambda a, b: a + b, [X4, (4, 1, 1)]),
    "sub-scalar": (lambda a: 2.0 - a - 1, [X4]),
    "mul-broadcast": (lambda a, b: a * b, [(3, 4), (4,)]),
    "div": (lambda a, b: a / b, [(3, 4), _positive((3, 4))]),
    "neg-pow": (lambda a: -(a ** 2.0), [(3, 4)]),
    "exp-log": (lambda a: a.exp() + a.log(), [_positive((3, 4))]),
    "matmul-batched": (lambda a, b: a @ b, [(2, 3, 4), (4, 5)]),
    "sum-axis": (lambda a: a.sum(axis=(0, 2), keepdims=True), [X4]),
    "mean-all": (lambda a: a.mean(), [X4]),
    "reshape-transpose": (lambda a: a.reshape(2, 4, 36).transpose(0, 2), [X4]),
    "flatten-permute": (lambda a: a.permute(0, 2, 3, 1).flatten(1), [X4]),
    "getitem-subsample": (lambda a: a[:, :, ::2, ::2], [X4]),
    "getitem-repeated-rows": (lambda a: a[[0, 2, 0]], [(3, 4)]),
}


def _forward_backward(fn, arrays, on_device, seed=7):
    """Run ``fn`` on Tensors of ``arrays`` (moved to the stand-in if ``on_device``), backward with a
    fixed upstream gradient; return the output array and the gradient of every float input."""
    move = device_array if on_device else (lambda a: a)
    tensors = [Tensor(move(a), requires_grad=a.dtype.kind == "f") for a in arrays]
    out = fn(*tensors)
    upstream = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
    out.backward(Tensor(move(upstream)))
    return out.data, [t.grad for t in tensors if t.requires_grad]


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", list(OPS))
def test_op_on_the_stand_in_matches_the_cpu(name, dtype):
    fn, specs = OPS[name]
    rng = np.random.default_rng(3)
    arrays = [_make(s, rng, dtype) for s in specs]
    out_cpu, grads_cpu = _forward_backward(fn, arrays, on_device=False)
    out_dev, grads_dev = _forward_backward(fn, arrays, on_device=True)
    for what, dev, cpu in [("output", out_dev, out_cpu)] + [(f"grad {i}", d, c)
                                                           for i, (d, c) in enumerate(zip(grads_dev, grads_cpu))]:
        assert is_fake_cuda(dev), f"{name}: the {what} left the device ({type(dev).__name__})"
        assert dev.dtype == dtype, f"{name}: the {what} has dtype {dev.dtype}, expected {np.dtype(dtype)}"
        np.testing.assert_allclose(to_numpy(dev), cpu, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype],
                                   err_msg=f"{name}: {what}")


def test_getitem_with_a_device_index_scatters_repeats():
    rng = np.random.default_rng(0)
    x = Tensor(device_array(rng.standard_normal((3, 4))), requires_grad=True)
    x[device_array(np.array([0, 2, 0]))].sum().backward()
    assert is_fake_cuda(x.grad)
    np.testing.assert_array_equal(to_numpy(x.grad), np.array([[2.0] * 4, [0.0] * 4, [1.0] * 4]))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_running_statistics_stay_on_the_device(training):
    rng = np.random.default_rng(1)
    x, gamma, beta = rng.standard_normal(X4), rng.standard_normal(4), rng.standard_normal(4)
    stats_cpu = [rng.standard_normal(4), np.abs(rng.standard_normal(4)) + 0.5]
    stats_dev = [device_array(s) for s in stats_cpu]
    results = []
    for move, stats in ((lambda a: a, stats_cpu), (device_array, stats_dev)):
        inputs = [Tensor(move(a), requires_grad=True) for a in (x, gamma, beta)]
        out = F.batch_norm(inputs[0], stats[0], stats[1], inputs[1], inputs[2], training=training)
        (out * out).sum().backward()
        results.append([out.data] + [t.grad for t in inputs])
    assert all(is_fake_cuda(s) for s in stats_dev)
    for dev, cpu in zip(stats_dev, stats_cpu):
        np.testing.assert_allclose(to_numpy(dev), cpu, rtol=1e-12)
    for dev, cpu in zip(*reversed(results)):
        assert is_fake_cuda(dev)
        np.testing.assert_allclose(to_numpy(dev), cpu, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- gradcheck on the device
@pytest.mark.parametrize("name, fn, shapes", [
    ("conv2d", lambda x, w: F.conv2d(x, w, stride=2, padding=1), [(1, 2, 5, 5), (2, 2, 3, 3)]),
    ("batch_norm", lambda x, g, b: F.batch_norm(x, None, None, g, b, training=True), [(2, 2, 3, 3), (2,), (2,)]),
    ("linear+cross_entropy", lambda z, w: F.cross_entropy(F.linear(z, w), np.array([1, 0, 2])), [(3, 4), (3, 4)]),
])
def test_gradcheck_runs_on_the_device(name, fn, shapes):
    """tinyresnet.gradcheck itself works on device inputs (it perturbs them in place on the device)."""
    rng = np.random.default_rng(5)
    inputs = [Tensor(device_array(rng.standard_normal(s))) for s in shapes]
    report = assert_gradcheck(fn, inputs)
    assert report.max_rel_error <= 1e-6, f"{name}: {report}"
    assert all(is_fake_cuda(t.data) for t in inputs)


# --------------------------------------------------------------------------- moving tensors
def test_tensor_to_cuda_and_back_is_differentiable():
    host = np.arange(6.0).reshape(2, 3)
    with use_fake_gpu():
        x = Tensor(host, requires_grad=True)
        on_gpu = x.to("cuda")
        assert on_gpu.device == "cuda" and is_fake_cuda(on_gpu.data) and x.cuda().device == "cuda"
        assert x.to("cpu") is x and "device='cuda'" in repr(on_gpu)
        y = (on_gpu * on_gpu).sum()
        assert y.item() == 55.0 and isinstance(y.numpy(), np.ndarray)
        y.backward()
        assert isinstance(x.grad, np.ndarray)              # the gradient came back to the CPU leaf
        np.testing.assert_array_equal(x.grad, 2 * host)
        z = Tensor(host, device="cuda", requires_grad=True)
        back = z.cpu()
        assert back.device == "cpu" and isinstance(back.data, np.ndarray)
        (back * 3.0).sum().backward()
        assert is_fake_cuda(z.grad) and to_numpy(z.grad).tolist() == [[3.0] * 3] * 2


# --------------------------------------------------------------------------- models, optimiser, training
def _models():
    return pytest.importorskip("tinyresnet.models", reason="tinyresnet.models is not written yet")


def _host_copy(model):
    return {k: to_numpy(v).copy() for k, v in model.state_dict().items()}


NARROW = (8, 16, 32, 64)     # the stages' widths for the bigger models: same layers, a fraction of the time


@pytest.mark.parametrize("builder, size, steps, optimizer", [
    ("resnet20", 8, 2, "SGD"), ("resnet20", 8, 2, "Adam"), ("resnet18-cifar-narrow", 8, 2, "SGD"),
    ("resnet50-narrow", 32, 1, "SGD")])
def test_model_step_on_the_stand_in_matches_the_cpu(builder, size, steps, optimizer, tmp_path, monkeypatch):
    """Forward, backward and optimiser steps (with weight decay) of the same model on the CPU and on the
    stand-in: parameters, gradients, optimiser state and BN statistics match, and everything stays
    on the device until it is saved. (Two steps update the optimiser's buffers in place on the device.)"""
    models = _models()
    optim = pytest.importorskip("tinyresnet.optim", reason="tinyresnet.optim is not written yet")
    build = {"resnet20": lambda: models.resnet20(num_classes=10),
             "resnet18-cifar-narrow": lambda: models.resnet18(num_classes=10, stem="cifar", widths=NARROW),
             "resnet50-narrow": lambda: models.resnet50(num_classes=10, widths=NARROW)}[builder]
    make_optimizer = {"SGD": lambda params: optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4),
                      "Adam": lambda params: optim.Adam(params, lr=1e-3, weight_decay=1e-4)}[optimizer]
    cpu_model = build()
    dev_model = build()
    dev_model.load_state_dict(_host_copy(cpu_model))
    rng = np.random.default_rng(2)
    batches = [(rng.standard_normal((2, 3, size, size)).astype(np.float32), rng.integers(0, 10, 2))
               for _ in range(steps)]

    def train(model, on_device):
        opt = make_optimizer(model.parameters())
        for x, t in batches:
            opt.zero_grad()
            x = Tensor(x).to("cuda") if on_device else Tensor(x)
            loss = F.cross_entropy(model(x), to_device(t, "cuda") if on_device else t)
            loss.backward()
            opt.step()
        return loss, opt

    # The CPU run takes the kernels' any-layout path on one thread, as a device array does: on several
    # threads the weight gradients are summed per thread, and on channels-last CPU
    # maps batch norm and ReLU otherwise run in chunks on threads with float64 sums, which round
    # differently, and batches of 2 normalise the last stages over 2-8 values per channel, which
    # amplifies any rounding difference far past float32's (the chunked path is checked against the plain
    # ops in tests/test_kernels.py). The residual add is the plain one too: the fast add keeps a sum
    # channels-last where NumPy's is C-ordered, and batch norm's sums then add in another order.
    with monkeypatch.context() as patch:
        patch.delitem(tinyresnet.kernels.FAST_KERNELS, AddFunction)
        patch.setattr(kernel_norm, "pixel_rows", lambda a: None)
        patch.setattr(kernel_activation, "memory_order", lambda a: None)
        patch.setattr(kernel_activation, "flat_values", lambda a: None)
        with tinyresnet.kernels.num_threads(1):
            loss_cpu, _ = train(cpu_model, False)
    with use_fake_gpu():
        dev_model.to("cuda")
        loss_dev, opt_dev = train(dev_model, True)
        assert is_fake_cuda(loss_dev.data)
        for name, p in dev_model.named_parameters():
            assert is_fake_cuda(p.data) and is_fake_cuda(p.grad), f"{name} left the device"
            assert p.data.dtype == np.float32
        for name, b in dev_model.named_buffers():
            assert is_fake_cuda(b), f"buffer {name} left the device"
        buffers = [v for state in opt_dev.state.values() for v in state.values() if hasattr(v, "shape")]
        assert buffers and all(is_fake_cuda(v) for v in buffers), "optimiser state left the device"
        np.testing.assert_allclose(float(loss_dev.data), float(loss_cpu.data), rtol=1e-5)
        grads_cpu = dict(cpu_model.named_parameters())
        for name, p in dev_model.named_parameters():
            np.testing.assert_allclose(to_numpy(p.grad), grads_cpu[name].grad, rtol=1e-4, atol=1e-6,
                                       err_msg=f"gradient of {name}")

        # optimiser state saves as host arrays and loads back onto the parameters' device
        saved = opt_dev.state_dict()
        assert all(not is_fake_cuda(v) for state in saved["state"].values() for v in state.values())
        restored = make_optimizer(dev_model.parameters())
        restored.load_state_dict(saved)
        assert all(is_fake_cuda(v) for state in restored.state.values() for v in state.values()
                   if hasattr(v, "shape"))

        # checkpoints are device-independent .npz files of host arrays
        from tinyresnet.serialization import load_npz, save_npz
        save_npz(tmp_path / "ckpt.npz", dict(dev_model.state_dict()))
        loaded = load_npz(tmp_path / "ckpt.npz")
    expected = _host_copy(cpu_model)
    assert set(loaded) == set(expected)
    for name, value in loaded.items():
        assert isinstance(value, np.ndarray)
        np.testing.assert_allclose(value, expected[name], rtol=1e-4, atol=1e-6, err_msg=name)
    cpu_model.load_state_dict(loaded)                   # a GPU checkpoint loads on the CPU
    assert all(isinstance(p.data, np.ndarray) for p in cpu_model.parameters())


def _train_module():
    if importlib.util.find_spec("tinyresnet.training.loop") is None:
        pytest.skip("the training loop (tinyresnet.training.loop) is not written yet")
    return importlib.import_module("tinyresnet.training")


def test_training_loop_on_the_stand_in_matches_the_cpu(tmp_path, monkeypatch):
    """``fit`` with device="cuda": batches go to the device as they are loaded, metrics come back to the
    host, and the run (losses, accuracies, saved weights) equals the same run on the CPU."""
    train = _train_module()
    monkeypatch.setattr(train.loop, "plot_curves", lambda *args, **kwargs: None)   # host-only, and slow
    from tinyresnet.serialization import load_npz
    runs = {}
    for device in ("cpu", "cuda"):
        config = train.TrainConfig(model="resnet20", dataset="digits", subset=16, epochs=1, batch_size=8,
                                   eval_batch_size=16, device=device, out=str(tmp_path / device), progress=False)
        with use_fake_gpu():
            runs[device] = train.fit(config)
    for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
        cpu, dev = runs["cpu"].history[0][key], runs["cuda"].history[0][key]
        assert isinstance(dev, float), f"{key} should be a host float, got {type(dev).__name__}"
        assert dev == pytest.approx(cpu, rel=1e-5), key
    saved_cpu, saved_dev = load_npz(tmp_path / "cpu" / "last.npz"), load_npz(tmp_path / "cuda" / "last.npz")
    assert set(saved_cpu) == set(saved_dev)
    for name, value in saved_dev.items():
        if value.dtype.kind == "f":
            # float32 rounding: one product per conv on the device, per-thread slices summed on the CPU
            np.testing.assert_allclose(value, saved_cpu[name], rtol=1e-4, atol=1e-5, err_msg=name)
    model, _ = train.load_trained_model(str(tmp_path / "cuda" / "last.npz"), device="cpu")   # no GPU needed
    assert all(isinstance(p.data, np.ndarray) for p in model.parameters())


# --------------------------------------------------------------------------- benchmarks/gpu_check.py
def _load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(gpu_available(), reason="this machine has a GPU: gpu_check.py would run for real")
def test_gpu_check_without_a_gpu_says_so_and_writes_nothing(tmp_path):
    out = tmp_path / "GPU_RESULTS.md"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--out", str(out)],
                            capture_output=True, text=True, timeout=60, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no GPU" in result.stdout and "pip install 'tinyresnet[gpu]'" in result.stdout
    assert not out.exists()


def test_gpu_check_comparison_runs_on_the_stand_in():
    _models()
    gpu_check = _load_gpu_check()
    with use_fake_gpu():
        report = gpu_check.compare_devices("resnet20", dtype=np.float64, batch=2, size=8)
    assert report["ok"], report
    assert report["worst_rel_error"] <= gpu_check.TOLERANCE[np.float64]
    assert report["tensors_compared"] > 3 * 19       # logits, loss, every gradient and BN statistic


def test_gpu_check_timing_and_report_run_on_the_stand_in(tmp_path):
    """The timing code and the report writer, on tiny sizes (no GPU: the numbers mean nothing)."""
    _models()
    gpu_check = _load_gpu_check()
    with use_fake_gpu():
        ours = gpu_check.time_tinyresnet(batch=2, inference_batch=1, warmup=0, repeat=1, sync=lambda: None,
                                         train_size=8, image_size=32, widths=NARROW)
    assert len(ours) == 2 and all(t > 0 for t in ours)
    gpu = {"name": "Stand-in GPU", "memory_gib": 1.0, "driver": "12.9", "runtime": "12.9", "cupy": "none"}
    tests = {"ok": True, "summary": "3 passed", "seconds": 1.0, "tail": ""}
    comparison = {"model": "resnet18", "dtype": "float32", "batch": 8, "size": 32, "tensors_compared": 100,
                  "worst_rel_error": 2e-6, "worst_tensor": "grad fc.weight", "tolerance": 1e-3, "ok": True}
    out = tmp_path / "GPU_RESULTS.md"
    gpu_check.write_report(out, gpu, tests, [comparison], ours, (ours[0] / 2, ours[1] / 4, "2.13.0"), 2, 1)
    text = out.read_text()
    assert text.startswith("# tinyresnet on a GPU: Stand-in GPU") and "PyTorch 2.13.0" in text
    assert "| resnet18 (32×32) | float32 | 8 | 100 | 2.00e-06 | grad fc.weight | 1e-03 | ok |" in text
    assert "within 3× of PyTorch CUDA: **met** (2.0×)" in text


def test_gpu_check_torch_models_match_the_workloads():
    """The PyTorch side of the timings runs the same networks: same parameter counts."""
    torch = pytest.importorskip("torch", reason="torch is an optional oracle")
    gpu_check = _load_gpu_check()
    count = lambda model: sum(p.numel() for p in model.parameters())   # noqa: E731
    cifar18 = gpu_check.torch_resnet(torch, "basic", [2, 2, 2, 2], cifar=True)
    assert count(cifar18) == 11_173_962              # tinyresnet's resnet18(num_classes=10, stem="cifar")
    resnet50 = gpu_check.torch_resnet(torch, "bottleneck", [3, 4, 6, 3], cifar=False, num_classes=1000)
    assert count(resnet50) == 25_557_032
    with torch.no_grad():
        assert cifar18(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


# --------------------------------------------------------------------------- real CuPy (GPU only)
@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason=NO_GPU)
def test_cupy_refuses_what_the_stand_in_refuses():
    """The stand-in's rules are CuPy's: checked on the real thing where a GPU is present."""
    import cupy
    a = cupy.arange(6.0).reshape(2, 3)
    with pytest.raises(TypeError):
        np.asarray(a)
    with pytest.raises(TypeError):
        a + np.ones(3)
    with pytest.raises(TypeError):
        float(a)
    total = a.sum()
    assert isinstance(total, cupy.ndarray) and total.ndim == 0 and float(total) == 15.0
    assert isinstance(np.float32(2.0) * a, cupy.ndarray) and isinstance(a[0, 0], cupy.ndarray)
    assert device_of(a) == "cuda" and get_array_module(a) is cupy
    scattered = cupy.zeros(3)                    # what the engine scatters with (GetItem's backward): floats
    cupy.add.at(scattered, cupy.asarray([0, 0]), 1.0)
    assert to_numpy(scattered).tolist() == [2.0, 0.0, 0.0]
    host = np.zeros(3)
    moved = to_device(host, "cuda")
    moved += 1.0
    assert host.tolist() == [0.0] * 3 and to_numpy(moved).tolist() == [1.0] * 3


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason=NO_GPU)
def test_cupy_op_matches_the_cpu():
    """A few ops on real CuPy against the CPU, float64 (the op suites do all of them per device)."""
    rng = np.random.default_rng(4)
    for name in ("conv2d-3x3-stride2", "max_pool2d-3x3-s2-p1", "batch_norm-train", "getitem-repeated-rows",
                 "cross_entropy-mean-host-targets"):
        fn, specs = OPS[name]
        arrays = [_make(s, rng, np.float64) for s in specs]
        out_cpu, grads_cpu = _forward_backward(fn, arrays, on_device=False)
        tensors = [Tensor(to_device(a, "cuda"), requires_grad=a.dtype.kind == "f") for a in arrays]
        out = fn(*tensors)
        upstream = np.random.default_rng(7).standard_normal(out.shape)
        out.backward(Tensor(to_device(upstream, "cuda")))
        assert out.device == "cuda"
        np.testing.assert_allclose(to_numpy(out.data), out_cpu, rtol=1e-10, atol=1e-10, err_msg=name)
        for t, g in zip([t for t in tensors if t.requires_grad], grads_cpu):
            assert device_of(t.grad) == "cuda"
            np.testing.assert_allclose(to_numpy(t.grad), g, rtol=1e-10, atol=1e-10, err_msg=name)


def test_tinyresnet_exports_the_device_helpers():
    assert tinyresnet.gpu_available is gpu_available
    assert FakeCudaArray.__array_ufunc__ is None


# --------------------------------------------------------------------------- syncs and launches per step
def _cifar_step_setup(name="resnet20", batch=8):
    _models()
    from tinyresnet import models
    from tinyresnet.nn import init
    from tinyresnet.optim import SGD
    init.manual_seed(0)
    model = models.get_model(name, num_classes=10, in_channels=3).to("cuda")
    optimizer = SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = to_device(np.random.default_rng(0).standard_normal((batch, 3, 32, 32)).astype(np.float32), "cuda")
    return model, optimizer, x, np.arange(batch) % 10


def test_cross_entropy_checks_host_labels_on_the_host_and_device_labels_in_one_sync():
    logits = Tensor(device_array(np.random.default_rng(0).standard_normal((4, 3))), requires_grad=True)
    host = np.array([0, 2, 1, 2])
    with use_fake_gpu(), count_device_work() as work:
        loss = F.cross_entropy(logits, host)
    assert work.syncs == 0 and is_fake_cuda(loss.data)
    with use_fake_gpu(), count_device_work() as work:
        again = F.cross_entropy(logits, device_array(host))
    assert work.syncs <= 1, work.sync_sites                  # one combined reduction, one read
    assert float(again.data) == float(loss.data)
    for bad in (np.array([0, 3, 1, 2]), np.array([0, -1, 1, 2])):
        for labels in (bad, device_array(bad)):
            with use_fake_gpu(), pytest.raises(ValueError, match=f"target {bad[1]} is outside the 3 classes"):
                F.cross_entropy(logits, labels)


def test_a_cifar_training_step_on_the_device_launches_few_kernels_and_syncs_twice(tier):
    """train_step + the Trainer's finiteness check: two syncs (the loss with the count of right answers,
    read together, and the finiteness check); a bare forward + backward + SGD step: none with host labels,
    one (the label check) with labels already on the device."""
    from tinyresnet.training.loop import non_finite_tensors, train_step
    launches = {}
    for batch in (8, 64):
        with use_fake_gpu():
            model, optimizer, x, labels = _cifar_step_setup(batch=batch)
            y = to_device(labels, "cuda")
            train_step(model, optimizer, x, y)
            with count_device_work() as work:
                loss, correct = train_step(model, optimizer, x, y)
                assert non_finite_tensors(model) == []
            assert work.syncs <= 2, work.sync_sites
            assert isinstance(loss, float) and isinstance(correct, int)
            launches[batch] = work.launches
            with count_device_work() as work:
                optimizer.zero_grad()
                F.cross_entropy(model(Tensor(x)), labels).backward()
                optimizer.step()
            assert work.syncs == 0, work.sync_sites
            with count_device_work() as work:
                optimizer.zero_grad()
                F.cross_entropy(model(Tensor(x)), y).backward()
                optimizer.step()
            assert work.syncs <= 1, work.sync_sites
    # one slice per conv on a GPU: the launches do not grow with the batch (with the CPU's cache-sized
    # slices the fast tier's step launched 7699 kernels at batch 64, against 1716 with one slice)
    assert launches[64] == launches[8], launches


def test_train_step_on_the_device_refuses_a_label_outside_the_classes():
    from tinyresnet.training.loop import train_step
    with use_fake_gpu():
        model, optimizer, x, labels = _cifar_step_setup(batch=4)
        before = {name: to_numpy(p.data).copy() for name, p in model.named_parameters()}
        labels[2] = 10
        for y in (labels, to_device(labels, "cuda")):
            with pytest.raises(ValueError, match="target 10 is outside the 10 classes"):
                train_step(model, optimizer, x, y)
    for name, p in model.named_parameters():                # no backward, no step
        np.testing.assert_array_equal(to_numpy(p.data), before[name], err_msg=name)
