"""tinyresnet.trace: every layer's output and gradient, and dL/dx split into the skip and the residual branch."""

import numpy as np
import pytest

import tinyresnet as tr
from tinyresnet import functional as F
from tinyresnet import models, nn, trace
from tinyresnet.models.wide import WideBasicBlock


def block_of(kind):
    nn.manual_seed(0)
    if kind == "identity":
        return models.BasicBlock(4, 4)
    if kind in ("A", "B", "C"):
        return models.BasicBlock(4, 8, stride=2, downsample=models.make_shortcut(kind, 4, 8, 2))
    if kind == "bottleneck":
        return models.Bottleneck(16, 4, downsample=None)
    if kind == "bottleneck-projection":
        return models.Bottleneck(8, 4, stride=2, downsample=models.make_shortcut("B", 8, 16, 2))
    return WideBasicBlock(4, 4 if kind == "wide" else 8, stride=1 if kind == "wide" else 2)


def run_recorded(block, rng, channels):
    block = block.double()
    x = tr.tensor(rng.standard_normal((2, channels, 6, 6)), requires_grad=True)
    with trace.record(block) as rec:
        out = block(x)
        (out * out).sum().backward()
    return x, out, rec


@pytest.mark.parametrize("kind,channels", [("identity", 4), ("A", 4), ("B", 4), ("C", 4), ("bottleneck", 16),
                                           ("bottleneck-projection", 8), ("wide", 4)])
def test_skip_and_residual_parts_add_up_to_x_grad_exactly(rng, kind, channels):
    x, _, rec = run_recorded(block_of(kind), rng, channels)
    split = rec.split()
    assert split.parts_add_up()
    np.testing.assert_array_equal(split.skip + split.residual, x.grad)        # bit for bit
    np.testing.assert_array_equal(split.total, x.grad)
    assert split.skip.any() and split.residual.any()
    shares = [row[4] for row in split.rows()]
    assert shares[0] + shares[1] == pytest.approx(1.0) and shares[2] == pytest.approx(1.0)


def test_the_parts_are_the_add_gradient_and_conv1s_input_gradient(rng):
    x, out, rec = run_recorded(block_of("identity"), rng, 4)
    split = rec.split()
    assert (split.skip_via, split.residual_via) == ("identity", "conv1")
    np.testing.assert_array_equal(split.skip, rec["add"].grad)                # the add passes its gradient to x
    np.testing.assert_array_equal(split.residual, rec["conv1"].grad_input)
    # dL/d(sum) = dL/d(out) · relu'(sum), with dL/d(out) = 2·out
    summed = rec["add"].output
    np.testing.assert_allclose(rec["add"].grad, 2 * out.data * (summed > 0), rtol=1e-12)
    np.testing.assert_array_equal(rec["relu#2"].output, np.maximum(summed, 0))
    np.testing.assert_allclose(summed, rec["bn2"].output + x.data, rtol=1e-12)


def test_projection_shortcut_part_is_the_downsample_input_gradient(rng):
    _, _, rec = run_recorded(block_of("B"), rng, 4)
    split = rec.split()
    assert split.skip_via == "downsample"
    np.testing.assert_array_equal(split.skip, rec["downsample"].grad_input)
    assert rec["add"].shape == (2, 8, 3, 3)


def test_records_are_named_by_the_module_tree_in_call_order(rng):
    _, _, rec = run_recorded(block_of("B"), rng, 4)
    assert rec.names() == ["", "conv1", "bn1", "relu", "conv2", "bn2", "downsample", "downsample.0",
                           "downsample.1", "add", "relu#2"]
    assert rec["add"].type == "residual add" and rec["conv1"].type == "Conv2d"
    with pytest.raises(KeyError, match="no record named 'conv9'"):
        rec["conv9"]


def test_recording_changes_no_value_and_no_gradient(rng):
    block = block_of("B").double()
    x = tr.tensor(rng.standard_normal((2, 4, 6, 6)), requires_grad=True)
    plain = block(x)
    (plain * plain).sum().backward()
    expected = [x.grad] + [p.grad for p in block.parameters()]
    block.zero_grad()
    x.grad = None
    with trace.record(block):
        out = block(x)
        (out * out).sum().backward()
    np.testing.assert_array_equal(out.data, plain.data)
    for a, b in zip(expected, [x.grad] + [p.grad for p in block.parameters()]):
        np.testing.assert_array_equal(a, b)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in block.modules())   # removed on exit


def test_a_whole_resnet_every_block_split_and_chained(rng):
    model = models.resnet20(num_classes=10, in_channels=1).double()
    x = tr.tensor(rng.standard_normal((2, 1, 8, 8)), requires_grad=True)
    labels = tr.tensor(np.array([3, 5]))
    with trace.record(model) as rec:
        logits = model(x)
        F.cross_entropy(logits, labels).backward()
    blocks = [f"layer{s}.{b}" for s in (1, 2, 3) for b in range(3)]
    assert rec.blocks() == blocks
    for name in blocks:
        split = rec.split(name)
        assert split.parts_add_up(), name
        np.testing.assert_array_equal(split.total, rec[name].grad_input)
    # a block's output feeds only the next block: the gradient there is the next block's grad_input
    for a, b in zip(blocks, blocks[1:]):
        np.testing.assert_array_equal(rec[a].grad, rec[b].grad_input)
    # the gradient arriving at fc's output is (softmax - one hot) / N
    p = np.exp(logits.data - logits.data.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[[0, 1], [3, 5]] -= 1
    np.testing.assert_allclose(rec["fc"].grad, p / 2, rtol=1e-10)
    assert rec["layer2.0.add"].shape == (2, 32, 4, 4)
    text = rec.to_text(max_depth=2)
    assert "layer1.0.add" not in text and "layer3.2" in text
    assert "layer1.0.add" in str(rec) and "residual add" in str(rec)


def test_split_text_for_a_student(rng):
    _, _, rec = run_recorded(block_of("identity"), rng, 4)
    text = str(rec.split())
    assert "through the skip" in text and "through the residual branch" in text
    assert "skip + residual == total: exactly" in text
    assert rec.split()._repr_html_().startswith("<pre>") and "<pre>" in rec._repr_html_()


def test_blocks_without_a_skip_and_errors(rng):
    nn.manual_seed(0)
    plain = models.PlainBlock(4, 4).double()
    _, _, rec = run_recorded(plain, rng, 4)
    assert "add" not in rec.names() and rec.blocks() == []
    with pytest.raises(KeyError, match="not a recorded residual block"):
        rec.split()
    block = block_of("identity").double()
    with trace.record(block) as rec:
        block(tr.tensor(rng.standard_normal((2, 4, 6, 6)), requires_grad=True))
    with pytest.raises(RuntimeError, match="call loss.backward"):
        rec.split()
    with pytest.raises(TypeError, match="needs a Module"):
        trace.record("layer1")


def test_images_without_grad_still_record_every_gradient_but_the_first_input(rng):
    block = block_of("identity").double()
    with trace.record(block) as rec:
        block(tr.tensor(rng.standard_normal((2, 4, 6, 6)))).sum().backward()
    assert rec["conv1"].grad is not None and rec["conv1"].grad_input is None
    assert rec["add"].grad is not None
