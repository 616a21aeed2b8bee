"""tinyresnet.viz: tracing, laying out, printing and drawing an autograd graph."""

import numpy as np
import pytest

import tinyresnet as tr
from tinyresnet import functional as F
from tinyresnet import models, nn, viz

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def skip_graph():
    """out = relu(conv(x, w)) + x: x feeds two ops, as in a residual block."""
    rng = np.random.default_rng(0)
    x = tr.tensor(rng.standard_normal((1, 2, 4, 4)), requires_grad=True)
    w = tr.tensor(rng.standard_normal((2, 2, 3, 3)), requires_grad=True)
    out = F.relu(F.conv2d(x, w, padding=1)) + x
    return x, w, out


def ops_by_label(graph):
    return {n.label: n for n in graph.nodes.values() if n.kind == "op"}


def test_trace_finds_every_op_leaf_and_edge(skip_graph):
    x, w, out = skip_graph
    graph = viz.trace(out, {"x": x, "w": w})
    ops = ops_by_label(graph)
    assert sorted(ops) == ["Add", "Conv2d", "ReLU"]
    leaves = {n.label: n for n in graph.nodes.values() if n.kind == "param"}
    assert sorted(leaves) == ["w", "x"]
    assert leaves["x"].shape == (1, 2, 4, 4) and leaves["w"].shape == (2, 2, 3, 3)
    x_key = ("t", id(x))
    consumers = sorted(graph.nodes[dst].label for src, dst, _, _ in graph.edges if src == x_key)
    assert consumers == ["Add", "Conv2d"]                      # the skip: x is used twice
    add_inputs = sorted((index, graph.nodes[src].label) for src, dst, _, index in graph.edges
                        if dst == ops["Add"].key)
    assert add_inputs == [(0, "ReLU"), (1, "x")]
    assert len(graph.edges) == 6                               # x→conv, w→conv, conv→relu, relu→add, x→add, add→out


def test_layout_puts_each_op_below_its_inputs(skip_graph):
    x, w, out = skip_graph
    graph = viz.trace(out, {"x": x, "w": w})
    ops = ops_by_label(graph)
    assert (ops["Conv2d"].rank, ops["ReLU"].rank, ops["Add"].rank) == (1, 2, 3)
    output = next(n for n in graph.nodes.values() if n.kind == "output")
    assert output.rank == 4
    x_node, w_node = graph.nodes[("t", id(x))], graph.nodes[("t", id(w))]
    assert x_node.rank == w_node.rank == 0                     # one row above their first consumer
    assert x_node.x == ops["Conv2d"].x and w_node.x == ops["Conv2d"].x + 1
    for rank in {n.rank for n in graph.nodes.values()}:        # no two boxes share a place
        xs = sorted(n.x for n in graph.nodes.values() if n.rank == rank)
        assert all(b - a >= 1.0 for a, b in zip(xs, xs[1:]))


def test_the_main_path_is_a_straight_column_and_the_shortcut_sits_beside_it():
    nn.manual_seed(0)
    block = models.BasicBlock(4, 8, stride=2, downsample=models.make_shortcut("B", 4, 8, 2))
    x = tr.tensor(np.random.default_rng(1).standard_normal((2, 4, 6, 6)).astype(np.float32), requires_grad=True)
    graph = viz.trace(block(x), {"x": x, **dict(block.named_parameters())})
    ops = sorted((n for n in graph.nodes.values() if n.kind == "op"), key=lambda n: n.rank)
    assert sum(n.label == "Conv1x1" for n in ops) == 1 and sum(n.label == "Conv2d" for n in ops) == 2
    add = next(n for n in ops if n.label == "Add")
    main_bn, shortcut_bn = sorted((graph.nodes[src] for src, dst, _, _ in graph.edges if dst == add.key),
                                  key=lambda n: -n.rank)
    assert main_bn.rank == add.rank - 1 and shortcut_bn.rank == 2
    main = [n for n in ops if n.label != "Conv1x1" and n is not shortcut_bn]
    assert [n.label for n in main] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "Add", "ReLU"]
    assert {n.x for n in main} == {0.0}                        # conv1 … relu: one column
    assert shortcut_bn.x > 0.0                                 # the projection: beside it
    weights = [n for n in graph.nodes.values() if n.kind == "param" and n.label != "x"]
    assert min(n.x for n in weights) > max(n.x for n in ops)   # weights right of every op
    assert graph.nodes[("t", id(x))].x == 0.0                  # the data input above the main path


def test_unnamed_and_constant_leaves():
    a = tr.tensor(np.ones((2, 2)), requires_grad=True)
    out = a * 3.0                                              # 3.0 becomes a constant leaf
    kinds = sorted((n.kind, n.label) for n in viz.trace(out).nodes.values() if n.kind != "op")
    assert kinds == [("const", "const"), ("output", "output"), ("param", "tensor")]


def test_format_graph_of_a_basic_block():
    nn.manual_seed(0)
    block = models.BasicBlock(2, 2).double()
    x = tr.tensor(np.random.default_rng(0).standard_normal((1, 2, 4, 4)), requires_grad=True)
    text = viz.format_graph(block(x), {"x": x, **dict(block.named_parameters())})
    lines = text.splitlines()
    assert [line.split("(")[0] for line in lines[:7]] == [
        "[1] Conv2d", "[2] BatchNorm2d", "[3] ReLU", "[4] Conv2d", "[5] BatchNorm2d", "[6] Add", "[7] ReLU"]
    assert lines[0] == "[1] Conv2d(x (1, 2, 4, 4), conv1.weight (2, 2, 3, 3)) -> (1, 2, 4, 4)"
    assert lines[1] == "[2] BatchNorm2d([1] (1, 2, 4, 4), bn1.weight (2,), bn1.bias (2,)) -> (1, 2, 4, 4)"
    assert lines[5] == "[6] Add([5] (1, 2, 4, 4), x (1, 2, 4, 4)) -> (1, 2, 4, 4)"
    assert lines[-1] == "output = [7]"


def test_draw_graph_writes_a_png_and_uses_a_given_axes(skip_graph, tmp_path):
    x, w, out = skip_graph
    path = tmp_path / "graph.png"
    fig = viz.draw_graph(out, {"x": x, "w": w}, path=str(path), title="skip")
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 5000
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert {"Conv2d", "ReLU", "Add", "x\n(1, 2, 4, 4)", "w\n(2, 2, 3, 3)"} <= labels

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    own = Figure()
    FigureCanvasAgg(own)
    ax = own.add_subplot()
    assert viz.draw_graph(out, ax=ax) is own
    assert any(t.get_text() == "Add" for t in ax.texts)


def test_a_freed_graph_is_reported(skip_graph):
    x, w, out = skip_graph
    out.sum().backward(retain_graph=True)
    assert "Add" in viz.format_graph(out)                      # kept: still drawable
    total = out.sum()
    total.backward()
    with pytest.raises(ValueError, match="freed by backward"):
        viz.trace(total)


def test_a_leaf_and_a_non_tensor():
    leaf = tr.tensor(np.zeros(3), requires_grad=True)
    assert viz.format_graph(leaf, {"leaf": leaf}) == "leaf = a leaf tensor (no graph)"
    assert len(viz.trace(leaf).nodes) == 1
    with pytest.raises(TypeError, match="Tensor"):
        viz.trace(np.zeros(3))


# --------------------------------------------------------------------------- collapsing by module
@pytest.fixture(scope="module")
def resnet20_loss():
    nn.manual_seed(0)
    model = models.resnet20(num_classes=10, in_channels=1)
    x = tr.tensor(np.random.default_rng(0).standard_normal((2, 1, 8, 8)).astype(np.float32))
    loss = F.cross_entropy(model(x), tr.tensor(np.array([1, 2])))
    return model, x, loss


def labels_in_order(graph):
    return [n.label for n in graph.ops()]


def test_collapse_depth_1_draws_the_stages_as_boxes(resnet20_loss):
    model, x, loss = resnet20_loss
    graph = viz.trace(loss, {"x": x}, collapse=model, depth=1)
    assert labels_in_order(graph) == ["conv1: Conv2d", "bn1: BatchNorm2d", "relu: ReLU", "layer1: Sequential",
                                      "layer2: Sequential", "layer3: Sequential", "avgpool: AdaptiveAvgPool2d",
                                      "Reshape", "fc: Linear", "CrossEntropy"]
    boxes = {n.label: n for n in graph.nodes.values() if n.kind == "module"}
    assert boxes["layer2: Sequential"].shape == (2, 32, 4, 4)
    assert not [n for n in graph.nodes.values() if n.kind == "param"]        # the weights are inside the boxes
    assert [n.label for n in graph.nodes.values() if n.kind == "const"] == ["x"]            # the images
    assert len(graph.edges) == 11                                            # one chain: x → ... → output


def test_collapse_depth_2_draws_one_box_per_block(resnet20_loss):
    model, x, loss = resnet20_loss
    text = viz.format_graph(loss, {"x": x}, collapse=model, depth=2)
    blocks = [line for line in text.splitlines() if ": BasicBlock" in line]
    assert len(blocks) == 9
    assert "layer2.0: BasicBlock([" in text and "-> (2, 32, 4, 4)" in blocks[3]


def test_collapse_depth_3_keeps_the_residual_add_as_an_op_of_its_block(resnet20_loss):
    model, x, loss = resnet20_loss
    graph = viz.trace(loss, {"x": x}, collapse=model, depth=3)
    labels = labels_in_order(graph)
    assert labels.count("Add (layer1.0)") == 1 and sum(label.startswith("Add (") for label in labels) == 9
    assert "layer1.0.conv1: Conv2d" in labels
    assert labels.count("layer1.0.relu: ReLU") == 1 and labels.count("layer1.0.relu#2: ReLU") == 1  # called twice
    assert labels.index("layer1.0.relu: ReLU") < labels.index("layer1.0.relu#2: ReLU")     # as trace names them
    add = next(n for n in graph.nodes.values() if n.label == "Add (layer1.0)")
    sources = sorted(graph.nodes[s].label for s, d, _, _ in graph.edges if d == add.key)
    assert sources == ["layer1.0.bn2: BatchNorm2d", "relu: ReLU"]             # the branch and the skip


def test_collapsed_resnet18_is_readable_and_draws(tmp_path):
    nn.manual_seed(0)
    model = models.resnet18(num_classes=10)
    x = tr.tensor(np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32))
    out = model(x)
    full = viz.trace(out)
    graph = viz.trace(out, {"x": x}, collapse=model, depth=2)
    assert len(full.ops()) > 60 and len(graph.ops()) == 15                   # stem 4, 8 blocks, pool, reshape, fc
    path = tmp_path / "resnet18.png"
    fig = viz.draw_graph(out, {"x": x}, collapse=model, depth=2, path=str(path))
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    assert any(t.get_text().startswith("layer4.1: BasicBlock") for t in fig.axes[0].texts)


def test_collapse_errors(resnet20_loss):
    model, x, loss = resnet20_loss
    with pytest.raises(ValueError, match="depth must be a whole number >= 1"):
        viz.trace(loss, collapse=model, depth=0)
    with pytest.raises(TypeError, match="collapse= takes the Module"):
        viz.trace(loss, collapse="layer1")


def test_hook_pass_through_ops_are_not_drawn():
    nn.manual_seed(0)
    block = models.BasicBlock(2, 2).double()
    x = tr.tensor(np.random.default_rng(0).standard_normal((1, 2, 4, 4)), requires_grad=True)
    names = {"x": x, **dict(block.named_parameters())}
    plain = viz.format_graph(block(x), names)
    block.register_full_backward_hook(lambda m, gin, gout: None)
    from tinyresnet import trace
    with trace.record(block):
        hooked = block(x)
    assert viz.format_graph(hooked, names) == plain
