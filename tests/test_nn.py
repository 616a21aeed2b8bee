"""tinyresnet.nn: Module bookkeeping, the layers, initialisation, state_dict, devices, hooks."""

import math

import numpy as np
import pytest

import tinyresnet as tr
from tinyresnet import functional as F
from tinyresnet import nn
from tinyresnet.nn import init


class TwoLayer(nn.Module):
    """conv -> bn -> relu -> pool -> fc, with a hand-made buffer, to exercise the bookkeeping."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
        self.scale = nn.Parameter(np.ones(1, dtype=np.float32))
        self.register_buffer("calls", np.zeros((), dtype=np.int64))

    def forward(self, x):
        return self.head(self.bn(self.conv(x))) * self.scale


def batch(rng, shape=(2, 3, 6, 6), dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# --------------------------------------------------------------------------- registration and traversal
def test_parameters_buffers_and_children_are_registered_in_order():
    m = TwoLayer()
    assert [n for n, _ in m.named_parameters()] == [
        "scale", "conv.weight", "bn.weight", "bn.bias", "head.3.weight", "head.3.bias"]
    assert [n for n, _ in m.named_buffers()] == [
        "calls", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert [n for n, _ in m.named_children()] == ["conv", "bn", "head"]
    assert [n for n, _ in m.named_modules()] == ["", "conv", "bn", "head", "head.0", "head.1", "head.2", "head.3"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in m.parameters())
    assert m.num_parameters() == 1 + 4 * 3 * 9 + 4 + 4 + 4 * 2 + 2
    # state_dict: each module's parameters, then its buffers, then its children
    assert list(m.state_dict()) == ["scale", "calls", "conv.weight", "bn.weight", "bn.bias", "bn.running_mean",
                                    "bn.running_var", "bn.num_batches_tracked", "head.3.weight", "head.3.bias"]


def test_reassigning_and_deleting_attributes():
    m = TwoLayer()
    m.conv = nn.Conv2d(3, 4, 1)                   # replacing a child keeps its slot
    assert [n for n, _ in m.named_children()] == ["conv", "bn", "head"]
    m.conv = None                                 # a switched-off child is skipped
    assert "conv.weight" not in m.state_dict()
    with pytest.raises(TypeError, match="registered as a parameter or module"):
        m.bn = "not a module"
    del m.head
    assert [n for n, _ in m.named_children()] == ["bn"]


def test_shared_parameter_is_counted_once():
    m = nn.Module()
    m.a = nn.Linear(3, 3)
    m.b = nn.Linear(3, 3)
    m.b.weight = m.a.weight
    assert m.num_parameters() == 9 + 3 + 3


def test_forgetting_super_init_is_explained():
    class Broken(nn.Module):
        def __init__(self):
            self.fc = nn.Linear(2, 2)

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Broken()


def test_state_dict_returns_host_copies(rng):
    m = TwoLayer()
    state = m.state_dict()
    state["conv.weight"][...] = 0
    assert np.abs(m.conv.weight.data).sum() > 0
    assert all(isinstance(v, np.ndarray) for v in state.values())


# --------------------------------------------------------------------------- modes, BN buffers, gradients
def test_batchnorm_updates_its_buffers_in_place_only_in_training(rng):
    m = TwoLayer()
    running_mean = m.bn.running_mean
    x = batch(rng)
    m(x)
    assert m.bn.running_mean is running_mean               # the same array, updated in place
    conv_out = F.conv2d(x, m.conv.weight, padding=1).data
    np.testing.assert_allclose(running_mean, 0.1 * conv_out.mean(axis=(0, 2, 3)), rtol=1e-5, atol=1e-7)
    assert int(m.bn.num_batches_tracked) == 1
    m.eval()
    assert not m.training and not m.bn.training and not m.head[0].training
    before = running_mean.copy()
    m(x)
    np.testing.assert_array_equal(m.bn.running_mean, before)
    assert int(m.bn.num_batches_tracked) == 1
    assert m.train() is m and m.head[3].training


def test_zero_grad_and_backward_reach_every_parameter(rng):
    m = TwoLayer()
    out = m(batch(rng))
    F.cross_entropy(out, np.array([0, 1])).backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_to_dtype_casts_floats_and_keeps_parameter_objects(rng):
    m = TwoLayer()
    weight = m.conv.weight
    m.double()
    assert m.conv.weight is weight and weight.dtype == np.float64
    assert m.bn.running_var.dtype == np.float64
    assert m.bn.num_batches_tracked.dtype == np.int64
    assert m(batch(rng, dtype=np.float64)).dtype == np.float64
    m.to(np.float32)
    assert all(p.dtype == np.float32 for p in m.parameters())


def test_to_device_moves_parameters_and_buffers(device, rng):
    m = TwoLayer().to(device)
    assert all(p.device == device for p in m.parameters())
    assert all(tr.Tensor(b).device == device for b in m.buffers())
    x = tr.Tensor(batch(rng)).to(device)
    out = m(x)
    assert out.device == device
    F.cross_entropy(out, tr.Tensor(np.array([1, 0])).to(device)).backward()
    assert all(tr.Tensor(p.grad).device == device for p in m.parameters())
    assert all(isinstance(v, np.ndarray) for v in m.state_dict().values())
    m.cpu()
    assert all(isinstance(p.data, np.ndarray) for p in m.parameters())


def test_unknown_device_is_refused():
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        TwoLayer().to("tpu")


# --------------------------------------------------------------------------- hooks and repr
def test_forward_hooks_see_inputs_and_output_and_can_be_removed(rng):
    m = TwoLayer()
    seen, order = [], []
    handle = m.bn.register_forward_hook(lambda mod, inputs, out: seen.append((mod, inputs[0].shape, out.shape)))
    pre = m.conv.register_forward_pre_hook(lambda mod, inputs: order.append("conv"))
    m(batch(rng))
    assert seen == [(m.bn, (2, 4, 6, 6), (2, 4, 6, 6))] and order == ["conv"]
    handle.remove()
    pre.remove()
    m(batch(rng))
    assert len(seen) == 1 and order == ["conv"]


def test_forward_hook_return_value_replaces_the_output(rng):
    m = nn.Sequential(nn.Linear(3, 2))
    m[0].register_forward_hook(lambda mod, inputs, out: out * 0.0)
    assert np.all(m(batch(rng, (4, 3))).data == 0)


def test_repr_shows_the_tree():
    text = repr(TwoLayer())
    assert text.startswith("TwoLayer(\n  (conv): Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), "
                           "bias=False)\n  (bn): BatchNorm2d(4, eps=1e-05, momentum=0.1)\n  (head): Sequential(\n"
                           "    (0): ReLU()\n")
    assert "    (3): Linear(in_features=4, out_features=2, bias=True)\n  )\n)" in text


# --------------------------------------------------------------------------- layers
def test_sequential_indexing():
    layers = [nn.ReLU(), nn.Identity(), nn.Flatten()]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and list(seq) == layers
    assert seq[0] is layers[0] and seq[-1] is layers[2]
    tail = seq[1:]
    assert isinstance(tail, nn.Sequential) and list(tail) == layers[1:]
    assert [n for n, _ in tail.named_children()] == ["1", "2"]
    with pytest.raises(IndexError, match="out of range"):
        seq[3]
    seq.append(nn.ReLU())
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2", "3"]


def test_layers_compute_what_the_functional_ops_compute(rng):
    x = batch(rng, (2, 4, 7, 7))
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    assert conv.weight.shape == (6, 2, 3, 3)
    np.testing.assert_array_equal(conv(x).data, F.conv2d(x, conv.weight, conv.bias, 2, 1, groups=2).data)
    np.testing.assert_array_equal(nn.MaxPool2d(3, 2, 1)(x).data, F.max_pool2d(x, 3, 2, 1).data)
    np.testing.assert_array_equal(nn.AvgPool2d(2)(x).data, F.avg_pool2d(x, 2, 2).data)
    assert nn.AdaptiveAvgPool2d(1)(x).shape == (2, 4, 1, 1)
    assert nn.Flatten()(x).shape == (2, 4 * 7 * 7)
    assert nn.Identity()(x) is x
    np.testing.assert_array_equal(nn.ReLU()(x).data, np.maximum(x, 0))
    fc = nn.Linear(5, 3)
    v = batch(rng, (4, 5))
    np.testing.assert_allclose(fc(v).data, v @ fc.weight.data.T + fc.bias.data, rtol=1e-6)
    assert nn.Linear(5, 3, bias=False).bias is None


def test_conv2d_names_in_channels_when_the_input_disagrees(rng):
    conv = nn.Conv2d(3, 8, 3)
    with pytest.raises(ValueError, match=r"in_channels=3 but the input has 1 channels \(shape \(2, 1, 6, 6\)\)"):
        conv(batch(rng, (2, 1, 6, 6)))
    with pytest.raises(ValueError, match="4-D input"):
        conv(batch(rng, (3, 6, 6)))
    with pytest.raises(ValueError, match="groups=3 must divide"):
        nn.Conv2d(4, 6, 3, groups=3)


# --------------------------------------------------------------------------- initialisation
def test_default_init_is_uniform_within_one_over_sqrt_fan_in():
    init.manual_seed(0)
    fc = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    for p in (fc.weight.data, fc.bias.data):
        assert np.abs(p).max() <= bound and np.abs(p).max() > 0.95 * bound
    w = fc.weight.data
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound        # uniform on ±b has std b/√3
    conv = nn.Conv2d(8, 16, 3, groups=2)                               # fan_in = 8/2 · 3 · 3 = 36
    assert np.abs(conv.weight.data).max() <= 1 / 6 and np.abs(conv.bias.data).max() <= 1 / 6


def test_kaiming_normal_fan_out_std_and_constants():
    w = nn.Parameter(np.empty((256, 64, 3, 3), dtype=np.float32))
    init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
    expected = math.sqrt(2 / (256 * 9))
    assert abs(w.data.std() / expected - 1) < 0.02
    init.kaiming_normal_(w, mode="fan_in")
    assert abs(w.data.std() / math.sqrt(2 / (64 * 9)) - 1) < 0.02
    init.constant_(w, 0.5)
    assert np.all(w.data == 0.5)
    init.zeros_(w)
    assert not w.data.any()
    init.ones_(w)
    assert np.all(w.data == 1)
    with pytest.raises(ValueError, match="mode must be"):
        init.kaiming_normal_(w, mode="fan_avg")


def test_manual_seed_makes_initialisation_reproducible():
    init.manual_seed(123)
    a = TwoLayer().state_dict()
    b = TwoLayer().state_dict()
    init.manual_seed(123)
    c = TwoLayer().state_dict()
    assert tr.nn.manual_seed is init.manual_seed
    assert all(np.array_equal(a[k], c[k]) for k in a)
    assert not np.array_equal(a["conv.weight"], b["conv.weight"])
    w = np.empty((3, 4))
    init.uniform_(w, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(w, np.random.default_rng(5).random((3, 4)))


# --------------------------------------------------------------------------- load_state_dict
def test_load_state_dict_round_trip_and_in_place(rng):
    src, dst = TwoLayer(), TwoLayer()
    src(batch(rng))                       # non-trivial BN statistics
    weight = dst.conv.weight.data
    result = dst.load_state_dict(src.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert dst.conv.weight.data is weight                  # copied into the existing arrays
    for k, v in src.state_dict().items():
        np.testing.assert_array_equal(dst.state_dict()[k], v)


def test_load_state_dict_names_missing_unexpected_and_wrong_shapes():
    m = TwoLayer()
    state = m.state_dict()
    state["head.3.weight"] = np.zeros((5, 4), dtype=np.float32)
    state["extra.weight"] = np.zeros(3)
    del state["bn.bias"]
    before = m.state_dict()
    with pytest.raises(RuntimeError) as info:
        m.load_state_dict(state)
    message = str(info.value)
    assert "head.3.weight: checkpoint has shape (5, 4), this model has (2, 4)" in message
    assert "missing keys (1): bn.bias" in message and "unexpected keys (1): extra.weight" in message
    for k, v in m.state_dict().items():                    # nothing was written
        np.testing.assert_array_equal(v, before[k])
    del state["head.3.weight"]
    result = m.load_state_dict(state, strict=False)
    assert result.missing_keys == ["bn.bias", "head.3.weight"] and result.unexpected_keys == ["extra.weight"]


def test_missing_num_batches_tracked_is_tolerated():
    m = TwoLayer()
    state = {k: v for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert m.load_state_dict(state, strict=True).missing_keys == []
