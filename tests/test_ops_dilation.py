"""PyTorch's window options: dilation (conv2d, max_pool2d), ceil_mode (max and avg pooling),
count_include_pad=False and divisor_override (avg pooling), reflect/replicate/circular padding
(F.pad, nn.Conv2d(padding_mode=...)) and ResNet's replace_stride_with_dilation.

Each op is checked against a loop written here, by finite differences in float64, on both tiers,
and against PyTorch where it is installed.
"""

import numpy as np
import pytest
import reference as ref

from tinyresnet import functional as F
from tinyresnet import kernels, nn
from tinyresnet.autograd import Tensor
from tinyresnet.gradcheck import assert_gradcheck
from tinyresnet.kernels.conv import FastConv2dFunction
from tinyresnet.models.blocks import BasicBlock, Bottleneck
from tinyresnet.models.resnet import ResNet
from tinyresnet.ops.conv import Conv2dFunction

pytestmark = pytest.mark.usefixtures("tier")   # every test on the plain ops and on the fast kernels


# ---------------------------------------------------------------- references, one output value at a time

def out_size(n, k, s, p, d=1, ceil_mode=False):
    """PyTorch's documented output size; with ceil_mode the last window must start inside the input
    or the left padding."""
    span = d * (k - 1) + 1
    if not ceil_mode:
        return (n + 2 * p - span) // s + 1
    out = int(np.ceil((n + 2 * p - span) / s)) + 1
    return out - 1 if (out - 1) * s >= n + p else out


def pairs(*values):
    return [v if isinstance(v, tuple) else (v, v) for v in values]


def conv_loops(x, w, b, stride, padding, dilation, groups):
    """out[n, o, y, z] = b[o] + Σ_{c, i, j} w[o, c, i, j] · x[n, g·C/G + c, y·s − p + i·d, z·s − p + j·d]."""
    (sh, sw), (ph, pw), (dh, dw) = pairs(stride, padding, dilation)
    N, C, H, W = x.shape
    OC, Cg, KH, KW = w.shape
    OH, OW = out_size(H, KH, sh, ph, dh), out_size(W, KW, sw, pw, dw)
    out = np.zeros((N, OC, OH, OW))
    for n in range(N):
        for o in range(OC):
            g = o // (OC // groups)
            for y in range(OH):
                for z in range(OW):
                    total = 0.0 if b is None else b[o]
                    for c in range(Cg):
                        for i in range(KH):
                            for j in range(KW):
                                r, q = y * sh - ph + i * dh, z * sw - pw + j * dw
                                if 0 <= r < H and 0 <= q < W:
                                    total += w[o, c, i, j] * x[n, g * Cg + c, r, q]
                    out[n, o, y, z] = total
    return out


def pool_loops(x, kind, kernel, stride, padding, dilation=1, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Every window's max or mean, one window at a time. A max ignores the padding (−∞); a mean
    divides by the window's pixels inside the padded input (or inside the input only)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = pairs(kernel, stride, padding, dilation)
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, sh, ph, dh, ceil_mode), out_size(W, kw, sw, pw, dw, ceil_mode)
    out = np.zeros((N, C, OH, OW))
    for n in range(N):
        for c in range(C):
            for y in range(OH):
                for z in range(OW):
                    values = [x[n, c, y * sh - ph + i * dh, z * sw - pw + j * dw]
                              for i in range(kh) for j in range(kw)
                              if 0 <= y * sh - ph + i * dh < H and 0 <= z * sw - pw + j * dw < W]
                    if kind == "max":
                        out[n, c, y, z] = max(values)
                        continue
                    r0, q0 = y * sh - ph, z * sw - pw
                    r1, q1 = min(r0 + kh, H + ph), min(q0 + kw, W + pw)       # inside the padded input
                    if not count_include_pad:
                        r0, q0, r1, q1 = max(r0, 0), max(q0, 0), min(r1, H), min(q1, W)
                    divisor = divisor_override or (r1 - r0) * (q1 - q0)
                    out[n, c, y, z] = sum(values) / divisor
    return out


def pad_reference(x, pad, mode):
    """Non-negative padding of the last two dims, built by concatenating edge slices, per dim."""
    for axis, (before, after) in zip((-1, -2), (pad[:2], pad[2:])):
        x = np.moveaxis(x, axis, 0)
        n = x.shape[0]
        if mode == "reflect":                              # dcb|abcd|cba: the edge is not repeated
            parts = [x[1:before + 1][::-1], x, x[n - 1 - after:n - 1][::-1]]
        elif mode == "replicate":                          # aaa|abcd|ddd
            parts = [np.repeat(x[:1], before, 0), x, np.repeat(x[-1:], after, 0)]
        else:                                              # circular: bcd|abcd|abc
            parts = [x[n - before:], x, x[:after]]
        x = np.moveaxis(np.concatenate(parts, 0), 0, axis)
    return x


# ---------------------------------------------------------------- dilated convolution

# (x shape, weight shape, stride, padding, dilation, groups)
CONV_CASES = [
    pytest.param((2, 2, 7, 7), (3, 2, 3, 3), 1, 2, 2, 1, id="3x3-dil2-pad2-same-size"),
    pytest.param((1, 4, 9, 8), (4, 2, 3, 2), 2, 1, (2, 3), 2, id="3x2-stride2-dil2x3-groups2"),
    pytest.param((2, 3, 8, 9), (2, 3, 2, 3), (1, 2), (0, 3), 3, 1, id="2x3-stride1x2-dil3-pad0x3"),
    pytest.param((1, 2, 6, 6), (2, 2, 3, 3), 1, 5, 2, 1, id="padding-wider-than-the-dilated-reach"),
    pytest.param((1, 3, 10, 10), (2, 3, 3, 3), 3, 0, 4, 1, id="dil4-stride3-unpadded"),
]


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", CONV_CASES)
def test_dilated_conv_forward_matches_the_loops(xs, ws, stride, padding, dilation, groups):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    out = F.conv2d(Tensor(x), Tensor(w), Tensor(b), stride, padding, dilation, groups)
    np.testing.assert_allclose(out.numpy(), conv_loops(x, w, b, stride, padding, dilation, groups),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", CONV_CASES)
def test_dilated_conv_gradients_match_finite_differences(xs, ws, stride, padding, dilation, groups):
    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])]
    assert_gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride, padding, dilation, groups), inputs,
                     names=["x", "weight", "bias"])


@pytest.mark.parametrize("stride, padding, dilation", [(1, 2, 2), (1, 0, 3), (2, 2, 2), (1, 3, (2, 1))])
def test_fast_dilated_conv_equals_the_plain_conv_in_slices_and_threads(stride, padding, dilation, monkeypatch):
    """The fast kernel does dilation itself (strides of the view; the stride-1 gather and col2im for dx),
    a few images per slice, on two threads: the same values as the plain op."""
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((5, 4, 9, 8)), rng.standard_normal((6, 2, 3, 3))
    dout_shape = F.conv2d(Tensor(x), Tensor(w), None, stride, padding, dilation, 2).shape
    dout = rng.standard_normal(dout_shape)
    monkeypatch.setattr(kernels.conv, "ROWS_PER_CHUNK", 40)         # a slice of one or two images
    results = []
    for op in (Conv2dFunction, FastConv2dFunction):
        fn = op(*pairs(stride, padding), 2, pairs(dilation)[0])
        with kernels.num_threads(2):
            out = fn.forward(x, w)
            fn.needs_input_grad = (True, True)
            results.append((out, *fn.backward(dout)))
    for plain, fast in zip(*results):
        np.testing.assert_allclose(fast, plain, rtol=1e-12, atol=1e-12)


def test_conv2d_takes_pytorchs_argument_order_and_a_1x1_kernel_ignores_dilation():
    rng = np.random.default_rng(3)
    x, w = Tensor(rng.standard_normal((1, 2, 7, 7))), Tensor(rng.standard_normal((2, 2, 3, 3)))
    np.testing.assert_array_equal(F.conv2d(x, w, None, 1, 2, 2).numpy(), F.conv2d(x, w, padding=2, dilation=2).numpy())
    w1 = Tensor(rng.standard_normal((3, 2, 1, 1)))
    np.testing.assert_array_equal(F.conv2d(x, w1, stride=2, dilation=3).numpy(), F.conv2d(x, w1, stride=2).numpy())


# ---------------------------------------------------------------- pooling: dilation, ceil_mode, count_include_pad

# (x shape, kernel, stride, padding, dilation, ceil_mode)
MAX_CASES = [
    pytest.param((2, 2, 9, 8), 3, 2, 1, 2, False, id="3x3-dil2-stride2-pad1"),
    pytest.param((1, 2, 7, 7), 2, 2, 0, 1, True, id="2x2-ceil-odd-input"),
    pytest.param((2, 1, 8, 7), 3, 3, 1, 1, True, id="3x3-stride3-ceil-pad1"),
    pytest.param((1, 2, 10, 9), (3, 2), (2, 3), (1, 1), (2, 3), True, id="3x2-dil2x3-ceil"),
    pytest.param((1, 1, 5, 5), 2, 3, 1, 1, True, id="ceil-drops-a-window-in-the-right-padding"),
]


@pytest.mark.parametrize("shape, kernel, stride, padding, dilation, ceil_mode", MAX_CASES)
def test_max_pool_dilation_and_ceil_mode_forward_match_the_loops(shape, kernel, stride, padding, dilation, ceil_mode):
    x = np.random.default_rng(4).standard_normal(shape)
    out = F.max_pool2d(Tensor(x), kernel, stride, padding, dilation, ceil_mode)
    np.testing.assert_array_equal(out.numpy(), pool_loops(x, "max", kernel, stride, padding, dilation, ceil_mode))


@pytest.mark.parametrize("shape, kernel, stride, padding, dilation, ceil_mode", MAX_CASES)
def test_max_pool_dilation_and_ceil_mode_gradients_match_finite_differences(shape, kernel, stride, padding,
                                                                            dilation, ceil_mode):
    x = ref.grid_values(shape, np.random.default_rng(5))     # distinct values: no step changes a maximum
    assert_gradcheck(lambda x: F.max_pool2d(x, kernel, stride, padding, dilation, ceil_mode), [x], names=["x"])


# (x shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_CASES = [
    pytest.param((2, 2, 7, 7), 3, 2, 1, True, True, None, id="ceil-the-last-window-hangs-over"),
    pytest.param((2, 2, 7, 6), 3, 2, 1, False, False, None, id="exclude-pad"),
    pytest.param((1, 2, 8, 7), 3, 3, 1, True, False, None, id="ceil-exclude-pad"),
    pytest.param((1, 1, 5, 5), 2, 3, 1, True, True, None, id="ceil-drops-a-window-in-the-right-padding"),
    pytest.param((1, 2, 6, 7), (3, 2), (2, 1), (1, 1), True, False, None, id="3x2-ceil-exclude-pad"),
    pytest.param((1, 2, 7, 7), 3, 2, 1, True, True, 5, id="divisor-override"),
]


@pytest.mark.parametrize("shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor", AVG_CASES)
def test_avg_pool_ceil_mode_and_count_include_pad_forward_match_the_loops(shape, kernel, stride, padding,
                                                                          ceil_mode, count_include_pad, divisor):
    x = np.random.default_rng(6).standard_normal(shape)
    out = F.avg_pool2d(Tensor(x), kernel, stride, padding, ceil_mode, count_include_pad, divisor)
    expected = pool_loops(x, "avg", kernel, stride, padding, 1, ceil_mode, count_include_pad, divisor)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor", AVG_CASES)
def test_avg_pool_ceil_mode_and_count_include_pad_gradients_match_finite_differences(
        shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor):
    x = np.random.default_rng(7).standard_normal(shape)
    assert_gradcheck(lambda x: F.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor),
                     [x], names=["x"])


def test_pool_layers_pass_the_new_options_on():
    x = Tensor(np.random.default_rng(8).standard_normal((1, 2, 7, 7)))
    maxpool = nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True)
    assert "dilation=2" in repr(maxpool) and "ceil_mode=True" in repr(maxpool)
    np.testing.assert_array_equal(maxpool(x).numpy(), F.max_pool2d(x, 3, 2, 1, 2, True).numpy())
    avgpool = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)
    assert "count_include_pad=False" in repr(avgpool)
    np.testing.assert_array_equal(avgpool(x).numpy(), F.avg_pool2d(x, 3, 2, 1, True, False).numpy())
    assert repr(nn.MaxPool2d(3, 2, 1)) == "MaxPool2d(kernel_size=3, stride=2, padding=1)"   # the defaults unchanged


# ---------------------------------------------------------------- reflect / replicate / circular padding

MODES = ["reflect", "replicate", "circular"]
PADS = [pytest.param((1, 2, 3, 1), id="l1-r2-t3-b1"), pytest.param((2, 2, 0, 0), id="width-only"),
        pytest.param((0, 3, 2, 0), id="one-sided")]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pad", PADS)
def test_pad_modes_forward_match_edge_slices_and_numpy(mode, pad):
    x = np.random.default_rng(9).standard_normal((2, 3, 4, 5))
    out = F.pad(Tensor(x), pad, mode=mode).numpy()
    np.testing.assert_array_equal(out, pad_reference(x, pad, mode))
    numpy_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    np.testing.assert_array_equal(out, np.pad(x, ((0, 0), (0, 0), pad[2:], pad[:2]), mode=numpy_mode))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape, pad", [((2, 3, 4, 5), (1, 2, 3, 1)), ((2, 3, 5), (3, 2)),
                                        ((1, 2, 3, 4, 4), (1, 1, 2, 0, 1, 2)), ((2, 3, 6, 5), (-1, 2, 2, -3))],
                         ids=["2d", "1d", "3d", "negative-crops"])
def test_pad_modes_gradients_match_finite_differences(mode, shape, pad):
    """The edges collect the gradients of every copy made of them."""
    x = np.random.default_rng(10).standard_normal(shape)
    assert_gradcheck(lambda x: F.pad(x, pad, mode=mode), [x], names=["x"])


def test_replicate_padding_sends_every_copys_gradient_to_the_edge():
    x = Tensor(np.arange(3.0).reshape(1, 1, 3), requires_grad=True)
    F.pad(x, (2, 1), mode="replicate").sum().backward()
    np.testing.assert_array_equal(x.grad, [[[3.0, 1.0, 2.0]]])       # x0 three times, x1 once, x2 twice
    x.grad = None
    F.pad(x, (2, 1), mode="reflect").sum().backward()                # x2 x1 | x0 x1 x2 | x1
    np.testing.assert_array_equal(x.grad, [[[1.0, 3.0, 2.0]]])


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_conv2d_padding_mode_pads_with_f_pad_then_convolves(mode):
    conv = nn.Conv2d(2, 3, 3, stride=2, padding=(1, 2), dilation=(1, 2), padding_mode=mode).to(dtype=np.float64)
    assert f"padding_mode={mode}" in repr(conv) and "dilation=(1, 2)" in repr(conv)
    x = Tensor(np.random.default_rng(11).standard_normal((2, 2, 7, 8)))
    expected = F.conv2d(F.pad(x, (2, 2, 1, 1), mode=mode), conv.weight, conv.bias, 2, 0, (1, 2))
    np.testing.assert_allclose(conv(x).numpy(), expected.numpy(), rtol=1e-12, atol=1e-12)
    assert_gradcheck(lambda x, w: F.conv2d(F.pad(x, (2, 2, 1, 1), mode=mode), w, None, 2, 0, (1, 2)),
                     [x.numpy(), conv.weight.data], names=["x", "weight"])


# ---------------------------------------------------------------- replace_stride_with_dilation

def small_resnet(**kwargs):
    return ResNet(Bottleneck, [2, 2, 2, 2], num_classes=3, widths=(2, 2, 4, 8), **kwargs)


def test_replace_stride_with_dilation_keeps_the_resolution_as_torchvision_documents():
    """[False, True, True]: layer2 halves; layer3 and layer4 keep 1/8 of the input, their 3×3 convs
    dilated: each stage's first block keeps the dilation before it, the others get the new one."""
    model = small_resnet(replace_stride_with_dilation=[False, True, True])
    expected = {"layer2": [((2, 2), (1, 1)), ((1, 1), (1, 1))], "layer3": [((1, 1), (1, 1)), ((1, 1), (2, 2))],
                "layer4": [((1, 1), (2, 2)), ((1, 1), (4, 4))]}
    for name, blocks in expected.items():
        for block, (stride, dilation) in zip(getattr(model, name), blocks):
            assert (block.conv2.stride, block.conv2.dilation, block.conv2.padding) == (stride, dilation, dilation)
    assert model.layer3[0].downsample[0].stride == (1, 1)            # the shortcut: a stride-1 projection
    x = Tensor(np.random.default_rng(12).standard_normal((2, 3, 32, 32)).astype(np.float32))
    h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    sizes = []
    for name in ("layer1", "layer2", "layer3", "layer4"):
        h = getattr(model, name)(h)
        sizes.append(h.shape[2:])
    assert sizes == [(8, 8), (4, 4), (4, 4), (4, 4)]
    out = model(x)
    out.sum().backward()
    assert out.shape == (2, 3) and model.layer4[1].conv2.weight.grad is not None
    plain = small_resnet()
    assert [p.shape for p in plain.parameters()] == [p.shape for p in model.parameters()]   # same weights


def test_replace_stride_with_dilation_errors_as_torchvision():
    with pytest.raises(ValueError, match="replace_stride_with_dilation"):
        small_resnet(replace_stride_with_dilation=[False, True])
    with pytest.raises(NotImplementedError, match="Bottleneck"):
        ResNet(BasicBlock, [2, 2, 2, 2], widths=(2, 2, 2, 2), replace_stride_with_dilation=[False, False, True])


# ---------------------------------------------------------------- errors where PyTorch errors

@pytest.mark.parametrize("call, error, match", [
    (lambda x: F.conv2d(x, Tensor(np.ones((1, 2, 3, 3))), dilation=0), ValueError, "dilation"),
    (lambda x: F.conv2d(x, Tensor(np.ones((1, 2, 3, 3))), dilation=4), ValueError, "dilated by 4"),
    (lambda x: F.max_pool2d(x, 3, dilation=(1, 0)), ValueError, "dilation"),
    (lambda x: F.max_pool2d(x, 2, 2, padding=2), ValueError, "half the kernel"),
    (lambda x: F.avg_pool2d(x, 2, divisor_override=0), ValueError, "divisor_override"),
    (lambda x: F.pad(x, (6, 6, 0, 0), mode="reflect"), ValueError, "smaller than"),
    (lambda x: F.pad(x, (7, 0, 0, 0), mode="circular"), ValueError, "more than once"),
    (lambda x: F.pad(x, (1, 1, 1), mode="replicate"), ValueError, "pairs"),
    (lambda x: F.pad(x, (1, 1, 1, 1), mode="wrap"), ValueError, "unknown padding mode"),
    (lambda x: F.pad(x, (1, 1, 1, 1), mode="reflect", value=2.0), ValueError, "takes no value"),
    (lambda x: F.pad(x, (1, 1), mode="reflect"), ValueError, "needs a 2-D or 3-D input"),
    (lambda x: F.pad(x, (1.5, 1), mode="reflect"), TypeError, "tuple of ints"),
    (lambda x: nn.Conv2d(2, 2, 3, padding_mode="mirror"), ValueError, "padding_mode"),
    (lambda x: nn.Conv2d(2, 2, 3, padding=6, padding_mode="reflect")(x), ValueError, "smaller than"),
], ids=["conv-dilation-0", "conv-dilated-kernel-too-big", "pool-dilation-0", "pool-padding", "divisor-0",
        "reflect-too-wide", "circular-wraps-twice", "odd-pad", "unknown-mode", "reflect-with-value",
        "1d-pad-on-4d", "float-pad", "bad-padding-mode", "conv-reflect-too-wide"])
def test_bad_window_options_fail_as_in_pytorch(call, error, match):
    x = Tensor(np.ones((1, 2, 6, 6)))
    with pytest.raises(error, match=match):
        call(x)


# ---------------------------------------------------------------- against PyTorch

def grads_of(out, inputs, dout):
    (out * Tensor(dout)).sum().backward()
    return [i.grad for i in inputs]


@pytest.mark.parametrize("xs, ws, stride, padding, dilation, groups", CONV_CASES)
def test_dilated_conv_matches_torch(xs, ws, stride, padding, dilation, groups):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    x, w, b = rng.standard_normal(xs), rng.standard_normal(ws), rng.standard_normal(ws[0])
    ours = [Tensor(a, requires_grad=True) for a in (x, w, b)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    out = F.conv2d(*ours, stride, padding, dilation, groups)
    tout = torch.nn.functional.conv2d(*theirs, stride, padding, dilation, groups)
    dout = rng.standard_normal(out.shape)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-10, atol=1e-12)
    tout.backward(torch.tensor(dout))
    for g, t in zip(grads_of(out, ours, dout), theirs):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape, kernel, stride, padding, dilation, ceil_mode", MAX_CASES)
def test_max_pool_dilation_and_ceil_mode_match_torch(shape, kernel, stride, padding, dilation, ceil_mode):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(14).standard_normal(shape)
    ours, theirs = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out = F.max_pool2d(ours, kernel, stride, padding, dilation, ceil_mode)
    tout = torch.nn.functional.max_pool2d(theirs, kernel, stride, padding, dilation, ceil_mode)
    np.testing.assert_array_equal(out.numpy(), tout.detach().numpy())
    dout = np.random.default_rng(15).standard_normal(out.shape)
    tout.backward(torch.tensor(dout))
    np.testing.assert_allclose(grads_of(out, [ours], dout)[0], theirs.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor", AVG_CASES)
def test_avg_pool_ceil_mode_and_count_include_pad_match_torch(shape, kernel, stride, padding, ceil_mode,
                                                              count_include_pad, divisor):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(16).standard_normal(shape)
    ours, theirs = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out = F.avg_pool2d(ours, kernel, stride, padding, ceil_mode, count_include_pad, divisor)
    tout = torch.nn.functional.avg_pool2d(theirs, kernel, stride, padding, ceil_mode, count_include_pad, divisor)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-12, atol=1e-12)
    dout = np.random.default_rng(17).standard_normal(out.shape)
    tout.backward(torch.tensor(dout))
    np.testing.assert_allclose(grads_of(out, [ours], dout)[0], theirs.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape, pad", [((2, 3, 4, 5), (1, 2, 3, 1)), ((2, 3, 5), (3, -2)), ((3, 5), (4, 1)),
                                        ((1, 2, 3, 4, 4), (1, 1, 2, 0, 1, 2)), ((2, 3, 6, 5), (-1, 2, 2, -3))],
                         ids=["2d", "1d-crop", "1d-unbatched", "3d", "2d-crop"])
def test_pad_modes_match_torch(mode, shape, pad):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(18).standard_normal(shape)
    ours, theirs = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, tout = F.pad(ours, pad, mode=mode), torch.nn.functional.pad(theirs, pad, mode=mode)
    np.testing.assert_array_equal(out.numpy(), tout.detach().numpy())
    dout = np.random.default_rng(19).standard_normal(out.shape)
    tout.backward(torch.tensor(dout))
    np.testing.assert_allclose(grads_of(out, [ours], dout)[0], theirs.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
def test_conv2d_layer_with_padding_mode_and_dilation_matches_torch(mode):
    torch = pytest.importorskip("torch")
    ours = nn.Conv2d(4, 6, 3, stride=1, padding=2, dilation=2, groups=2, padding_mode=mode)
    theirs = torch.nn.Conv2d(4, 6, 3, stride=1, padding=2, dilation=2, groups=2, padding_mode=mode)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(ours.weight.data))
        theirs.bias.copy_(torch.tensor(ours.bias.data))
    x = np.random.default_rng(20).standard_normal((2, 4, 7, 6)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    xo = Tensor(x, requires_grad=True)
    out, tout = ours(xo), theirs(xt)
    np.testing.assert_allclose(out.numpy(), tout.detach().numpy(), rtol=1e-5, atol=1e-5)
    out.sum().backward()
    tout.sum().backward()
    np.testing.assert_allclose(xo.grad, xt.grad.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
