"""Backward hooks: Tensor.register_hook and Module.register_full_backward_(pre_)hook, with PyTorch as the oracle."""

import numpy as np
import pytest

import tinyresnet as tr
from tinyresnet import functional as F
from tinyresnet import models, nn

try:
    import torch
except ImportError:                      # the oracle tests skip; the others run
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is the optional oracle (pip install torch)")


def to_numpy(a):
    """A torch tensor's or an ndarray's values as a NumPy copy."""
    return np.array(a.detach().numpy() if hasattr(a, "detach") else a)


def leaf(rng, *shape):
    return tr.tensor(rng.standard_normal(shape), requires_grad=True)          # float64


# --------------------------------------------------------------------------- Tensor.register_hook
def test_a_leaf_hook_runs_once_with_the_sum_over_its_consumers(rng):
    x = leaf(rng, 3)
    seen = []
    x.register_hook(lambda g: seen.append(g.copy()))
    (x * 2.0 + x * x).sum().backward()                     # three uses of x: d/dx = 2 + 2x
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], x.grad)
    np.testing.assert_allclose(x.grad, 2 + 2 * x.data, rtol=1e-12)


def test_a_returned_gradient_replaces_the_one_flowing_on(rng):
    x = leaf(rng, 2, 3)
    w = leaf(rng, 3, 4)
    h = x @ w
    h.register_hook(lambda g: g * 3.0)                     # a non-leaf: what reaches x and w is 3×
    x.register_hook(lambda g: tr.tensor(-g))               # a leaf: .grad receives the replacement (a Tensor)
    h.sum().backward()
    ones = np.ones((2, 4))
    np.testing.assert_allclose(w.grad, 3.0 * x.data.T @ ones, rtol=1e-12)
    np.testing.assert_allclose(x.grad, -3.0 * ones @ w.data.T, rtol=1e-12)


def test_hooks_chain_in_order_and_retain_grad_sees_their_result(rng):
    x = leaf(rng, 4)
    y = x * 1.0
    y.retain_grad()
    order = []
    y.register_hook(lambda g: order.append("first") or g + 1.0)
    y.register_hook(lambda g: order.append(("second", float(g[0]))) or g * 10.0)
    y.sum().backward()
    assert order == ["first", ("second", 2.0)]
    np.testing.assert_array_equal(y.grad, np.full(4, 20.0))
    np.testing.assert_array_equal(x.grad, np.full(4, 20.0))


def test_removed_hooks_no_longer_run_and_a_handle_is_a_context_manager(rng):
    x = leaf(rng, 3)
    calls = []
    handle = x.register_hook(lambda g: calls.append(1))
    x.sum().backward()                                     # backward on a graph; also on a leaf itself:
    x.backward(np.ones(3))
    assert len(calls) == 2
    handle.remove()
    x.sum().backward()
    assert len(calls) == 2
    with x.register_hook(lambda g: g * 0.0):
        x.grad = None
        x.sum().backward()
        assert not x.grad.any()
    x.grad = None
    x.sum().backward()
    np.testing.assert_array_equal(x.grad, np.ones(3))


def test_hooks_run_once_per_backward_and_again_on_a_kept_graph(rng):
    x = leaf(rng, 3)
    y = (x * 2.0).sum()
    calls = []
    y.register_hook(lambda g: calls.append("y"))
    x.register_hook(lambda g: calls.append("x"))
    y.backward(retain_graph=True)
    y.backward()
    assert calls == ["y", "x", "y", "x"]
    np.testing.assert_array_equal(x.grad, np.full(3, 4.0))


def test_a_hook_needs_a_tensor_that_requires_grad_and_a_gradient_of_the_right_shape(rng):
    with pytest.raises(RuntimeError, match="does not require grad.*requires_grad=True"):
        tr.tensor(np.ones(3)).register_hook(lambda g: g)
    with pytest.raises(TypeError, match="needs a function"):
        leaf(rng, 3).register_hook("not a function")
    y = leaf(rng, 3) * 2.0
    y.register_hook(lambda g: g[:2])
    with pytest.raises(RuntimeError, match=r"shape \(2,\) for a gradient of shape \(3,\)"):
        y.sum().backward()


def test_float32_stays_float32_when_a_hook_returns_float64():
    x = tr.tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    x.register_hook(lambda g: g.astype(np.float64) * 2)
    x.sum().backward()
    assert x.grad.dtype == np.float32 and (x.grad == 2).all()


@needs_torch
def test_tensor_hooks_match_torch_in_a_small_network(rng):
    """Same weights: the gradients hooks receive, and what their replacements do, agree with PyTorch."""
    xs, ws = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    fc = rng.standard_normal((5, 4 * 36))

    def run(lib):
        if lib == "torch":
            x, w, v = (torch.tensor(a, requires_grad=True) for a in (xs, ws, fc))
            h = torch.nn.functional.conv2d(x, w, padding=1)
            out = torch.relu(h).flatten(1) @ v.T
        else:
            x, w, v = (tr.tensor(a, requires_grad=True) for a in (xs, ws, fc))
            h = F.conv2d(x, w, padding=1)
            out = F.relu(h).flatten(1) @ v.T
        seen = {}

        def keep(key, scale, shift):                       # note what arrives, then change it
            def hook(g):
                seen[key] = to_numpy(g)
                return g * scale + shift
            return hook

        h.register_hook(keep("h", 0.5, 1.0))
        w.register_hook(keep("w", 2.0, 0.0))
        (out ** 2).sum().backward()
        return seen, [to_numpy(t.grad) for t in (x, w, v)]

    ours, theirs = run("tinyresnet"), run("torch")
    for key in ("h", "w"):
        np.testing.assert_allclose(ours[0][key], theirs[0][key], rtol=1e-10, atol=1e-10)
    for a, b in zip(ours[1], theirs[1]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- module hooks
def make_block(stride=1, planes=4, inplanes=4):
    """A float64 BasicBlock (BN in training mode, with γ and β perturbed so that they matter)."""
    nn.manual_seed(0)
    downsample = models.make_shortcut("B", inplanes, planes, stride) if stride != 1 or planes != inplanes else None
    ours = models.BasicBlock(inplanes, planes, stride, downsample).double()
    r = np.random.default_rng(3)
    for m in ours.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data[...] = r.uniform(0.5, 1.5, m.num_features)
            m.bias.data[...] = r.uniform(-0.2, 0.2, m.num_features)
    return ours


def test_full_backward_hook_sees_the_blocks_input_and_output_gradients(rng):
    block = make_block()
    x = leaf(rng, 2, 4, 5, 5)
    seen = []
    block.register_full_backward_hook(lambda m, gin, gout: seen.append((m, gin, gout)))
    out = block(x)
    (out * out).sum().backward()
    assert len(seen) == 1
    module, grad_input, grad_output = seen[0]
    assert module is block and len(grad_input) == 1 and len(grad_output) == 1
    np.testing.assert_array_equal(grad_input[0], x.grad)                  # x is used only by the block
    np.testing.assert_allclose(grad_output[0], 2 * out.data, rtol=1e-12)


def test_grad_input_is_the_modules_share_when_the_input_is_used_elsewhere_too(rng):
    conv = nn.Conv2d(2, 2, 3, padding=1, bias=False).double()
    x = leaf(rng, 1, 2, 4, 4)
    seen = []
    conv.register_full_backward_hook(lambda m, gin, gout: seen.append(gin[0].copy()))
    (conv(x) + x).sum().backward()                          # a skip around the conv
    np.testing.assert_allclose(seen[0] + 1.0, x.grad, rtol=1e-12)


def test_backward_hooks_replace_gradients_and_run_per_call(rng):
    block = make_block()
    x = leaf(rng, 2, 4, 5, 5)
    calls = []
    block.relu.register_full_backward_pre_hook(lambda m, gout: calls.append("pre") or None)
    block.relu.register_full_backward_hook(lambda m, gin, gout: calls.append("full"))
    handle = block.register_full_backward_hook(lambda m, gin, gout: (gin[0] * 0.0,))
    block(x).sum().backward()
    assert calls == ["pre", "full", "pre", "full"]          # the block's ReLU is called twice
    assert not x.grad.any()                                 # the replacement reached x
    handle.remove()
    x.grad = None
    block(x).sum().backward()
    assert x.grad.any()


def test_a_pre_hook_changes_grad_output_for_the_module_and_its_full_hook(rng):
    lin = nn.Linear(3, 2).double()
    x = leaf(rng, 4, 3)
    seen = []
    lin.register_full_backward_pre_hook(lambda m, gout: (gout[0] * 2.0,))
    lin.register_full_backward_hook(lambda m, gin, gout: seen.append(gout[0].copy()))
    lin(x).sum().backward()
    np.testing.assert_array_equal(seen[0], np.full((4, 2), 2.0))
    np.testing.assert_allclose(lin.weight.grad, 2.0 * np.ones((2, 4)) @ x.data, rtol=1e-12)


def test_an_input_without_grad_gives_none_in_grad_input(rng):
    conv = nn.Conv2d(1, 2, 3).double()
    seen = []
    conv.register_full_backward_hook(lambda m, gin, gout: seen.append((gin, gout[0].shape)))
    conv(tr.tensor(rng.standard_normal((1, 1, 4, 4)))).sum().backward()
    assert seen == [((None,), (1, 2, 2, 2))]
    assert conv.weight.grad is not None


def test_module_hook_errors(rng):
    lin = nn.Linear(3, 2).double()
    with pytest.raises(TypeError, match="needs a function"):
        lin.register_full_backward_hook(None)
    lin.register_full_backward_hook(lambda m, gin, gout: (gin[0], gin[0]))
    with pytest.raises(RuntimeError, match="returned 2 gradients for grad_input, which has 1"):
        lin(leaf(rng, 2, 3)).sum().backward()

    class Two(nn.Module):
        def forward(self, a, b):
            return a + b

    two = Two()
    two.register_full_backward_hook(lambda m, gin, gout: None)
    with pytest.raises(NotImplementedError, match="2 inputs that require grad"):
        two(leaf(rng, 2), leaf(rng, 2))


def test_hooks_leave_values_and_gradients_unchanged_bit_for_bit(rng):
    block = make_block(stride=2, planes=8)
    x = leaf(rng, 2, 4, 6, 6)
    plain_out = block(x)
    plain_out.sum().backward()
    plain = [x.grad.copy()] + [p.grad.copy() for p in block.parameters()]
    block.zero_grad()
    x.grad = None
    for m in block.modules():
        m.register_full_backward_hook(lambda m, gin, gout: None)
        m.register_full_backward_pre_hook(lambda m, gout: None)
    hooked_out = block(x)
    hooked_out.sum().backward()
    np.testing.assert_array_equal(hooked_out.data, plain_out.data)
    for a, b in zip(plain, [x.grad] + [p.grad for p in block.parameters()]):
        np.testing.assert_array_equal(a, b)


def test_forward_pre_hook_may_replace_the_inputs(rng):
    lin = nn.Linear(3, 2).double()
    lin.register_forward_pre_hook(lambda m, inputs: inputs[0] * 0.0)      # one value: taken as (value,)
    out = lin(leaf(rng, 4, 3))
    np.testing.assert_allclose(out.data, np.broadcast_to(lin.bias.data, (4, 2)))


@needs_torch
@pytest.mark.parametrize("stride,planes", [(1, 4), (2, 8)])
def test_module_hooks_match_torch_on_a_basic_block(rng, stride, planes):
    """A BasicBlock and its torch twin with the same weights: grad_input/grad_output received by the hooks of
    the block, conv1 and bn2 agree, and so do the gradients after a hook halves the block's grad_input."""
    ours = make_block(stride, planes)
    tnn = torch.nn

    class TorchBlock(tnn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = tnn.Conv2d(4, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.downsample = (tnn.Sequential(tnn.Conv2d(4, planes, 1, stride, bias=False), tnn.BatchNorm2d(planes))
                               if stride != 1 else None)

        def forward(self, x):
            y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
            return self.relu(y + (x if self.downsample is None else self.downsample(x)))

    theirs = TorchBlock().double()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    xs = rng.standard_normal((2, 4, 6, 6))

    def run(model, make):
        seen = {}
        for name in ("", "conv1", "bn2"):
            module = getattr(model, name) if name else model

            def hook(m, gin, gout, name=name):
                seen[name] = (to_numpy(gin[0]), to_numpy(gout[0]))
                if name == "":
                    return (gin[0] * 0.5,)
            module.register_full_backward_hook(hook)
        x = make(xs)
        out = model(x)
        (out ** 2).sum().backward()
        return seen, to_numpy(x.grad), to_numpy(model.conv1.weight.grad)

    ours_seen, ours_dx, ours_dw = run(ours, lambda a: tr.tensor(a, requires_grad=True))
    theirs_seen, theirs_dx, theirs_dw = run(theirs, lambda a: torch.tensor(a, requires_grad=True))
    for name in ("", "conv1", "bn2"):
        for a, b in zip(ours_seen[name], theirs_seen[name]):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(ours_dx, theirs_dx, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(ours_dx, 0.5 * ours_seen[""][0], rtol=1e-12)
    np.testing.assert_allclose(ours_dw, theirs_dw, rtol=1e-9, atol=1e-10)


def test_module_hooks_on_a_whole_resnet(rng):
    model = models.resnet20(num_classes=10, in_channels=1).double()
    x = tr.tensor(rng.standard_normal((2, 1, 8, 8)), requires_grad=True)
    seen = {}
    for name, m in model.named_modules():
        if isinstance(m, models.BasicBlock):
            m.register_full_backward_hook(lambda m, gin, gout, name=name: seen.__setitem__(name, gin[0].shape))
    F.cross_entropy(model(x), tr.tensor(np.array([1, 7]))).backward()
    assert len(seen) == 9
    assert seen["layer1.0"] == (2, 16, 8, 8) and seen["layer3.0"] == (2, 32, 4, 4)


# --------------------------------------------------------------------------- as PyTorch: dropping, snapshots, errors
def linear_pair(rng):
    """A float64 Linear(3, 2) of ours, its torch twin with the same weights, and the input (4, 3)."""
    nn.manual_seed(0)
    ours = nn.Linear(3, 2).double()
    theirs = None
    if torch is not None:
        theirs = torch.nn.Linear(3, 2).double()
        theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    return ours, theirs, rng.standard_normal((4, 3))


def run_linear(lin, xs, hook, also_skip=False, remove_before_backward=False):
    """x.grad after lin(x).sum() (+ x.sum() with ``also_skip``) with ``hook`` as full backward hook, and how
    often the hook ran; ``remove_before_backward`` removes its handle between forward and backward."""
    lib_tensor = tr.tensor if isinstance(lin, nn.Module) else torch.tensor
    x = lib_tensor(xs, requires_grad=True)
    calls = []
    handle = lin.register_full_backward_hook(lambda m, gin, gout: calls.append(1) or hook(gin))
    loss = lin(x).sum() + (x.sum() if also_skip else 0.0)
    if remove_before_backward:
        handle.remove()
    try:
        loss.backward()
    finally:
        handle.remove()
    return (None if x.grad is None else to_numpy(x.grad)), len(calls)


def test_a_none_in_grad_input_drops_the_gradient(rng):
    lin, _, xs = linear_pair(rng)
    assert run_linear(lin, xs, lambda gin: (None,)) == (None, 1)                # no gradient reaches x
    grad, _ = run_linear(lin, xs, lambda gin: (None,), also_skip=True)
    np.testing.assert_array_equal(grad, np.ones((4, 3)))                        # only the other use's


def test_a_handle_removed_after_forward_still_runs_in_that_backward(rng):
    lin, _, xs = linear_pair(rng)
    assert run_linear(lin, xs, lambda gin: None, remove_before_backward=True)[1] == 1
    assert run_linear(lin, xs, lambda gin: None)[1] == 1                        # each call: its own hooks
    x = leaf(rng, 4, 3)
    out = lin(x)
    late = []
    lin.register_full_backward_pre_hook(lambda m, gout: late.append(1))         # added after forward
    out.sum().backward()
    assert late == []


@needs_torch
def test_dropping_and_removing_match_torch(rng):
    ours, theirs, xs = linear_pair(rng)
    for hook, options in [(lambda gin: (None,), {}), (lambda gin: (None,), {"also_skip": True}),
                          (lambda gin: None, {"remove_before_backward": True}),
                          (lambda gin: (gin[0] * 3.0,), {"also_skip": True})]:
        (a, calls_a), (b, calls_b) = run_linear(ours, xs, hook, **options), run_linear(theirs, xs, hook, **options)
        assert calls_a == calls_b and (a is None) == (b is None), options
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=1e-12)


def test_a_bare_array_instead_of_a_tuple_is_an_error(rng):
    lin, _, xs = linear_pair(rng)
    with pytest.raises(RuntimeError, match=r"Linear\.register_full_backward_hook returned a ndarray for "
                                           r"grad_input; return a tuple"):
        run_linear(lin, xs, lambda gin: gin[0])
    grad, _ = run_linear(lin, xs, lambda gin: [gin[0] * 2.0])                  # a list is taken, as in torch
    np.testing.assert_allclose(grad, 2.0 * np.ones((4, 2)) @ lin.weight.data, rtol=1e-12)
    pre = nn.Linear(3, 2).double()
    pre.register_full_backward_pre_hook(lambda m, gout: gout[0])
    with pytest.raises(RuntimeError, match=r"Linear\.register_full_backward_pre_hook returned a ndarray"):
        pre(leaf(rng, 4, 3)).sum().backward()


@needs_torch
def test_torch_refuses_a_bare_tensor_too(rng):
    _, theirs, xs = linear_pair(rng)
    with pytest.raises(RuntimeError):
        run_linear(theirs, xs, lambda gin: gin[0])


@pytest.mark.parametrize("method", ["register_full_backward_hook", "register_full_backward_pre_hook"])
def test_a_wrong_shape_is_reported_with_the_module_and_the_method(rng, method):
    lin = nn.Linear(3, 2).double()
    if method == "register_full_backward_hook":
        lin.register_full_backward_hook(lambda m, gin, gout: (gin[0][:2],))
        what, shapes = "grad_input", r"shape \(2, 3\) for grad_input\[0\], which has shape \(4, 3\)"
    else:
        lin.register_full_backward_pre_hook(lambda m, gout: (gout[0][:2],))
        what, shapes = "grad_output", r"shape \(2, 2\) for grad_output\[0\], which has shape \(4, 2\)"
    with pytest.raises(RuntimeError, match=rf"Linear\.{method} returned a gradient of {shapes}") as error:
        lin(leaf(rng, 4, 3)).sum().backward()
    message = str(error.value)
    assert f"same shape as {what}[0]" in message and "BackwardHookFunction" not in message
    assert "on_grad" not in message
