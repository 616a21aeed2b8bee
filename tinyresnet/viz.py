"""Draw the autograd graph behind a tensor with matplotlib alone (no graphviz needed).

    >>> from tinyresnet import viz
    >>> out = block(x)                                        # before out.backward(): it frees the graph
    >>> names = {"x": x, **dict(block.named_parameters())}
    >>> print(viz.format_graph(out, names))                   # one line per op, inputs first
    >>> viz.draw_graph(out, names, path="block_graph.png")    # a top-to-bottom picture

The picture has one box per op (blue), per leaf tensor that needs a gradient (orange: inputs and
weights), per constant leaf (grey) and for the output (green). Arrows run from inputs to the ops
that use them; an arrow between two ops is labelled with the shape of the tensor it carries. An
arrow that skips rows (the skip connection) is drawn as a curve beside the others.
"""

from dataclasses import dataclass, field

from .autograd import Tensor


@dataclass
class Node:
    """One box: an op, a leaf tensor or the output. ``rank`` is its row, ``x`` its column."""

    key: tuple
    kind: str              # "op", "param" (a leaf that requires grad), "const" or "output"
    label: str
    shape: tuple = None
    rank: int = 0
    x: float = 0.0


@dataclass
class Graph:
    """Nodes by key, and edges ``(source key, target key, shape of the tensor carried, input index)``."""

    nodes: dict = field(default_factory=dict)
    edges: list = field(default_factory=list)

    def ops(self):
        """The op nodes, from the input side to the output side."""
        return sorted((n for n in self.nodes.values() if n.kind == "op"), key=lambda n: (n.rank, n.x))

    def predecessors(self, key):
        return [src for src, dst, _, _ in self.edges if dst == key]


def _op_label(fn):
    """The op's name without "Function"; a fast kernel is drawn as the plain op it accelerates."""
    name = getattr(type(fn), "accelerates", type(fn)).__name__
    return name[:-len("Function")] if name.endswith("Function") and len(name) > len("Function") else name


def _check_alive(fn):
    if getattr(fn, "released", False) or not hasattr(fn, "inputs"):
        raise ValueError(f"the graph through {fn.name} was freed by backward(); draw it before calling "
                         f"backward(), or call backward(retain_graph=True)")


def trace(output, names=None):
    """The graph that produced ``output`` (a Tensor), as a ``Graph`` with rows and columns laid out.

    ``names`` maps a name to a tensor (``{"x": x, **dict(model.named_parameters())}``) so leaves are
    labelled; other leaves are called "tensor" (or "const" when they need no gradient).
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"trace needs the Tensor whose graph to draw, got {type(output).__name__}")
    label_of = {id(t): name for name, t in (names or {}).items()}
    graph = Graph()
    out_key = ("t", id(output))
    graph.nodes[out_key] = Node(out_key, "output", label_of.get(id(output), "output"), tuple(output.shape))
    if output.creator is None:
        return graph

    stack, seen = [output.creator], {id(output.creator)}
    graph.edges.append((("f", id(output.creator)), out_key, tuple(output.shape), 0))
    while stack:
        fn = stack.pop()
        _check_alive(fn)
        fn_key = ("f", id(fn))
        graph.nodes[fn_key] = Node(fn_key, "op", _op_label(fn), getattr(fn, "output_shape", None))
        for index, t in enumerate(fn.inputs):
            if t.creator is not None:
                graph.edges.append((("f", id(t.creator)), fn_key, tuple(t.shape), index))
                if id(t.creator) not in seen:
                    seen.add(id(t.creator))
                    stack.append(t.creator)
                continue
            leaf_key = ("t", id(t.leaf))                      # an Edge: the leaf tensor itself
            if leaf_key not in graph.nodes:
                kind = "param" if t.requires_grad else "const"
                default = "tensor" if t.requires_grad else "const"
                graph.nodes[leaf_key] = Node(leaf_key, kind, label_of.get(id(t.leaf), default), tuple(t.shape))
            graph.edges.append((leaf_key, fn_key, tuple(t.shape), index))
    _layout(graph)
    return graph


def _layout(graph):
    """Give every node a row (``rank``) and a column (``x``): ops below the ops they use, each leaf
    one row above its first consumer: straight above it if it is the consumer's first input (the data),
    else right of all ops, by its input index (the weights)."""
    op_inputs = {key: [] for key, n in graph.nodes.items() if n.kind != "param" and n.kind != "const"}
    for src, dst, _, _ in graph.edges:
        if graph.nodes[src].kind in ("op", "output"):
            op_inputs[dst].append(src)
    # rows of ops (and the output): one below the lowest op they read from
    order, state = [], {}
    for start in op_inputs:                       # iterative depth-first post-order
        stack = [(start, False)]
        while stack:
            key, done = stack.pop()
            if done:
                order.append(key)
                continue
            if state.get(key):
                continue
            state[key] = True
            stack.append((key, True))
            stack.extend((src, False) for src in op_inputs[key] if not state.get(src))
    for key in order:
        inputs = op_inputs[key]
        graph.nodes[key].rank = 1 + max((graph.nodes[s].rank for s in inputs), default=0)
    # height: the longest way from a node down to the output (the main path is the longest)
    height = dict.fromkeys(order, 0)
    for key in reversed(order):
        for src in op_inputs[key]:
            height[src] = max(height[src], height[key] + 1)
    # columns, row by row from the inputs: an op sits under its latest op input (so a chain is a
    # straight column and a skip connection is a long edge beside it); ops that meet in a row are
    # pushed apart to the right, the one with the longest way to the output staying in place
    rows = {}
    for key in order:
        rows.setdefault(graph.nodes[key].rank, []).append(key)
    for rank in sorted(rows):
        for key in rows[rank]:
            inputs = [(graph.nodes[src].rank, -index, src) for src, dst, _, index in graph.edges
                      if dst == key and src in height]
            graph.nodes[key].x = graph.nodes[max(inputs)[2]].x if inputs else 0.0
        _spread(graph, rows[rank], order=lambda n: (n.x, -height[n.key]))
    # leaves: one row above their first consumer, shifted right by their input index there
    consumers = {}
    for src, dst, _, index in graph.edges:
        if graph.nodes[src].kind in ("param", "const"):
            consumers.setdefault(src, []).append((graph.nodes[dst].rank, graph.nodes[dst].x, index))
    right = max((graph.nodes[k].x for k in order), default=0.0)       # weights go right of every op
    for key, uses in consumers.items():
        rank, x, index = min(uses)
        graph.nodes[key].rank, graph.nodes[key].x = rank - 1, (x if index == 0 else right + index)
    _spread(graph, list(graph.nodes))


def _spread(graph, keys, gap=1.0, order=None):
    """Within each row, keep the nodes' order by column (ops first at a tie, or ``order``) but at least
    ``gap`` apart."""
    rows = {}
    for key in keys:
        rows.setdefault(graph.nodes[key].rank, []).append(graph.nodes[key])
    for row in rows.values():
        row.sort(key=order or (lambda n: (n.x, n.kind != "op")))
        for left, right in zip(row, row[1:]):
            if right.x < left.x + gap:
                right.x = left.x + gap


def _shape_text(shape):
    if shape is None:
        return ""
    return str(tuple(int(s) for s in shape))


def format_graph(output, names=None):
    """The graph as text, one line per op from the inputs to the output:
    ``Conv2d(x (1, 2, 4, 4), conv1.weight (2, 2, 3, 3)) -> (1, 2, 4, 4)``."""
    graph = trace(output, names)
    number = {}
    lines = []
    for i, node in enumerate(graph.ops(), 1):
        number[node.key] = i
    for node in graph.ops():
        inputs = sorted(((index, src, shape) for src, dst, shape, index in graph.edges if dst == node.key))
        parts = []
        for _, src, shape in inputs:
            source = graph.nodes[src]
            name = f"[{number[src]}]" if source.kind == "op" else source.label
            parts.append(f"{name} {_shape_text(shape)}")
        lines.append(f"[{number[node.key]}] {node.label}({', '.join(parts)}) -> {_shape_text(node.shape)}")
    out = next(n for n in graph.nodes.values() if n.kind == "output")
    lines.append(f"{out.label} = " + (f"[{len(number)}]" if number else "a leaf tensor (no graph)"))
    return "\n".join(lines)


STYLE = {  # face colour, edge colour
    "op": ("#dbe8f7", "#3b6ea8"),
    "param": ("#fde3c8", "#c46a1b"),
    "const": ("#eeeeee", "#888888"),
    "output": ("#d8f0d2", "#3c8a2e"),
}


def draw_graph(output, names=None, path=None, title=None, ax=None):
    """Draw the graph behind ``output`` top to bottom; return the matplotlib Figure.

    ``names`` labels leaf tensors (see ``trace``); ``path`` also saves the picture (PNG); ``ax``
    draws into an existing Axes instead of a new figure. Uses matplotlib's Agg canvas when it makes
    its own figure, so no display is needed.
    """
    graph = trace(output, names)
    rows = max(n.rank for n in graph.nodes.values()) + 1
    xs = [n.x for n in graph.nodes.values()]
    left, right = min(xs), max(xs)
    if ax is None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(2.0 * (right - left + 1) + 1.6, 0.85 * rows + 0.6))
        FigureCanvasAgg(fig)
        ax = fig.add_axes([0, 0, 1, 0.94 if title else 1])
    fig = ax.figure
    ax.set_xlim(left - 1.2, right + 0.8)
    ax.set_ylim(-(rows - 1) - 0.6, 0.6)
    ax.axis("off")
    if title:
        ax.set_title(title)

    boxes = {}
    for node in graph.nodes.values():
        face, edge = STYLE[node.kind]
        text = node.label if node.kind == "op" else f"{node.label}\n{_shape_text(node.shape)}"
        boxes[node.key] = ax.text(node.x, -node.rank, text, ha="center", va="center", fontsize=8, zorder=3,
                                  bbox=dict(boxstyle="round,pad=0.35", facecolor=face, edgecolor=edge))
    fig.canvas.draw()          # the boxes need their sizes before arrows can attach to them
    for src, dst, shape, _ in graph.edges:
        a, b = graph.nodes[src], graph.nodes[dst]
        skips = b.rank - a.rank > 1 and abs(b.x - a.x) < 0.5
        if skips:             # a long vertical arrow would run through the boxes between: curve it left
            style = dict(arrowstyle="-|>", color="#555555", lw=1.1, shrinkA=4, shrinkB=4,
                         connectionstyle="arc3,rad=0.35")
            ax.annotate("", xy=(0, 0.5), xycoords=boxes[dst], xytext=(0, 0.5), textcoords=boxes[src],
                        arrowprops=style, zorder=2)
        else:
            style = dict(arrowstyle="-|>", color="#555555", lw=0.9, shrinkA=4, shrinkB=4)
            ax.annotate("", xy=(0.5, 1), xycoords=boxes[dst], xytext=(0.5, 0), textcoords=boxes[src],
                        arrowprops=style, zorder=2)
        if a.kind == "op" and b.rank - a.rank == 1:
            ax.text((a.x + b.x) / 2 + 0.08, -(a.rank + b.rank) / 2, _shape_text(shape), fontsize=6.5,
                    color="#666666", ha="left", va="center", zorder=1)
    if path is not None:
        fig.savefig(path, bbox_inches="tight", dpi=110)
    return fig
