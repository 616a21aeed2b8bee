"""tinyresnet.trace: every layer's output and gradient, and dL/dx split into the skip and the residual branch."""

import numpy as np
import pytest

import tinyresnet as tr
from tinyresnet import functional as F
from tinyresnet import models, nn, trace
from tinyresnet.models import get_model
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
    with pytest.raises(KeyError, match="is a PlainBlock, not a residual block"):
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


# --------------------------------------------------------------------------- blocks that cannot be split, and why
def test_a_block_whose_input_needs_no_grad_is_recorded_but_not_split(rng):
    block = get_model("resnet20").layer1[0]
    x = tr.tensor(rng.standard_normal((2, 16, 8, 8)).astype(np.float32))          # requires_grad=False
    with trace.record(block) as rec:
        block(x).sum().backward()
    assert rec.blocks() == []
    assert rec["add"].grad is not None and rec["conv1"].grad_input is None
    with pytest.raises(KeyError, match="cannot be split: its input does not require grad.*requires_grad=True"):
        rec.split("")


def test_the_error_says_why_a_name_cannot_be_split(rng):
    model = models.resnet20(num_classes=10, in_channels=1)
    with trace.record(model) as rec:
        pass                                                                    # nothing ran
    with pytest.raises(KeyError, match="'layer1.0' was not called in the recorded forward pass"):
        rec.split("layer1.0")
    with trace.record(model) as rec:                                            # images without grad
        F.cross_entropy(model(tr.tensor(rng.standard_normal((2, 1, 8, 8)).astype(np.float32))),
                        tr.tensor(np.array([1, 2]))).backward()
    assert rec.split("layer1.0").parts_add_up()                                 # a block inside needs no more
    for name, reason in [("", r"'' \(the recorded module\) is a ResNet, not a residual block"),
                         ("layer1.0.conv1", "'layer1.0.conv1' is a Conv2d, not a residual block"),
                         ("layer9", "'layer9' is not the name of a module of the recorded ResNet")]:
        with pytest.raises(KeyError, match=reason) as error:
            rec.split(name)
        assert "requires_grad" not in str(error.value) and "'layer3.2'" in str(error.value)   # lists the blocks


def test_a_pre_activation_projection_is_split_where_the_shortcut_reads(rng):
    """WideBasicBlock's projection reads relu(bn1(x)), not x: the split is of dL/d(that tensor), exactly."""
    nn.manual_seed(0)
    model = models.wide.WideResNet(10, 1).double()
    x = tr.tensor(rng.standard_normal((2, 3, 8, 8)), requires_grad=True)
    with trace.record(model) as rec:
        (model(x) ** 2).sum().backward()
    assert rec.blocks() == ["layer1.0", "layer2.0", "layer3.0"]
    split = rec.split("layer2.0")
    assert (split.at, split.skip_via, split.residual_via) == ("relu", "shortcut", "conv1")
    assert split.parts_add_up() and split.skip.any() and split.residual.any()
    np.testing.assert_array_equal(split.total, rec["layer2.0.relu"].grad)
    np.testing.assert_array_equal(split.skip, rec["layer2.0.shortcut"].grad_input)
    np.testing.assert_array_equal(split.residual, rec["layer2.0.conv1"].grad_input)
    np.testing.assert_array_equal(rec["layer2.0.bn1"].grad_input, rec["layer2.0"].grad_input)   # all dL/dx via bn1
    assert "dL/d(output of relu) in layer2.0" in str(split) and "total (dL/d relu)" in str(split)
    identity = rec.split("layer1.0")                                            # 16 -> 16: the identity skip
    assert identity.at == "input" and identity.skip_via == "identity" and identity.parts_add_up()


@pytest.mark.parametrize("kind", ["identity", "B"])
def test_a_block_with_backward_hooks_is_recorded_and_split_the_same(kind):
    _, _, plain = run_recorded(block_of(kind), np.random.default_rng(0), 4)
    block = block_of(kind)
    calls = []
    for m in block.modules():                                                   # the block's own hook and its layers'
        m.register_full_backward_hook(lambda m, gin, gout: calls.append(type(m).__name__))
    x, _, rec = run_recorded(block, np.random.default_rng(0), 4)
    assert rec.blocks() == [""] and rec.names() == plain.names() and "BasicBlock" in calls
    split, expected = rec.split(), plain.split()
    assert split.parts_add_up() and split.skip_via == expected.skip_via
    np.testing.assert_array_equal(split.total, x.grad)
    for a, b in [(split.skip, expected.skip), (split.residual, expected.residual)]:
        np.testing.assert_array_equal(a, b)


def test_under_no_grad_every_record_is_kept_with_its_output_only(rng):
    model = models.resnet20(num_classes=10, in_channels=1)
    images = tr.tensor(rng.standard_normal((2, 1, 8, 8)).astype(np.float32))
    with trace.record(model) as with_grad:
        model(images)
    with tr.no_grad(), trace.record(model) as rec:
        model(images)
    assert len(rec) == len(with_grad) == 84 and rec.names() == with_grad.names()
    np.testing.assert_array_equal(rec["layer1.0.add"].output, with_grad["layer1.0.add"].output)
    assert rec["layer1.0.add"].grad is None and rec.blocks() == []
    with pytest.raises(KeyError, match="ran under no_grad"):
        rec.split("layer1.0")


def test_two_backward_passes_records_hold_the_last_grad_accumulates(rng):
    block = block_of("identity").double()
    x = tr.tensor(rng.standard_normal((2, 4, 6, 6)), requires_grad=True)
    first, second = rng.standard_normal((2, 4, 6, 6)), rng.standard_normal((2, 4, 6, 6))
    with trace.record(block) as rec:
        out = block(x)
        out.backward(first, retain_graph=True)
        grad_after_first = x.grad.copy()
        out.backward(second)
    np.testing.assert_array_equal(rec[""].grad, second)                         # the last backward's
    np.testing.assert_allclose(x.grad, grad_after_first + rec.split().total, rtol=1e-12)   # .grad: both added
