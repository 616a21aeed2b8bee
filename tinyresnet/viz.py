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

A whole network has hundreds of ops: ``draw_graph(loss, collapse=model, depth=1)`` draws each module
call down to ``depth`` levels of the module tree as one box (purple: ``layer1``, ``layer2``, ... at
depth 1; the blocks ``layer1.0``, ... at depth 2), its weights inside it; ops outside any module
(the flatten before ``fc``, the loss) keep their own boxes. A module called twice (a block's ReLU) gives
two boxes, ``layer1.0.relu`` and ``layer1.0.relu#2``, named as ``tinyresnet.trace`` names its records.
The pass-through ops that hooks and
``tinyresnet.trace`` insert are left out of every drawing.
"""

from dataclasses import dataclass, field

from .autograd import Edge, Tensor

INNER = ("op", "module")          # node kinds that compute (the rest are leaves and the output)


@dataclass
class Node:
    """One box: an op, a leaf tensor or the output. ``rank`` is its row, ``x`` its column."""

    key: tuple
    kind: str              # "op", "module" (a collapsed module call), "param" (a leaf that requires grad),
    #                        "const" or "output"
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
        """The op nodes (and module boxes), from the input side to the output side."""
        return sorted((n for n in self.nodes.values() if n.kind in INNER), key=lambda n: (n.rank, n.x))

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


def _through_hooks(edge):
    """The edge past the pass-through ops of hooks (``BackwardHookFunction``): they are drawn as nothing."""
    while edge.creator is not None and getattr(edge.creator, "is_hook", False):
        _check_alive(edge.creator)
        edge = edge.creator.inputs[0]
    return edge


def trace(output, names=None, collapse=None, depth=1):
    """The graph that produced ``output`` (a Tensor), as a ``Graph`` with rows and columns laid out.

    ``names`` maps a name to a tensor (``{"x": x, **dict(model.named_parameters())}``) so leaves are
    labelled; other leaves are called "tensor" (or "const" when they need no gradient). ``collapse``: a
    module (the model) whose calls, down to ``depth`` levels below it, become one node each (kind
    "module", labelled by name and type); the weights of a module stay inside its box.
    """
    if not isinstance(output, Tensor):
        raise TypeError(f"trace needs the Tensor whose graph to draw, got {type(output).__name__}")
    label_of = {id(t): name for name, t in (names or {}).items()}
    graph = Graph()
    out_key = ("t", id(output))
    graph.nodes[out_key] = Node(out_key, "output", label_of.get(id(output), "output"), tuple(output.shape))
    if output.creator is None:
        return graph

    first = _through_hooks(Edge(output))
    if first.creator is None:               # only pass-through ops above a leaf
        return graph
    stack, seen, functions = [first.creator], {id(first.creator)}, {}
    graph.edges.append((("f", id(first.creator)), out_key, tuple(output.shape), 0))
    while stack:
        fn = stack.pop()
        _check_alive(fn)
        fn_key = ("f", id(fn))
        functions[fn_key] = fn
        graph.nodes[fn_key] = Node(fn_key, "op", _op_label(fn), getattr(fn, "output_shape", None))
        for index, t in enumerate(fn.inputs):
            t = _through_hooks(t)
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
    if collapse is not None:
        graph = _collapse(graph, _module_calls(output, collapse, depth))
    _layout(graph)
    return graph


def _module_calls(output, model, depth):
    """For each op (by id) of the graph, the deepest call of a module of ``model`` (at most ``depth`` levels
    below it) that contains it: ``{id(fn): (name, type name, id of the call's output op, module, expanded)}``;
    ``expanded``: the module has layers of its own drawn as boxes, so the op is drawn alone (a residual add).

    ``Module.__call__`` notes on the op that made a call's output which module ended there and which ops
    made its inputs (``module_calls``); the call contains every op found walking back from its output
    without passing those.
    """
    if not hasattr(model, "named_modules"):
        raise TypeError(f"collapse= takes the Module whose layers to draw as boxes, got {type(model).__name__}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be a whole number >= 1 (1: the model's children, such as layer1), got {depth!r}")
    name_of = {id(m): n for n, m in model.named_modules() if n and n.count(".") < depth}
    calls = []                                        # (depth, name, module, output op, ids of input ops)
    everything, stack = {}, [output.creator]
    while stack:                                      # every op, pass-through ops included
        fn = stack.pop()
        if id(fn) in everything:
            continue
        everything[id(fn)] = fn
        for module, made_by, number in vars(fn).get("module_calls", ()):
            if id(module) in name_of:
                name = name_of[id(module)]
                calls.append((name.count("."), number, name, module, fn, {id(f) for f in made_by}))
        stack.extend(e.creator for e in fn.edges() if e.creator is not None)
    calls = _number_repeated_calls(calls)
    member = {}
    for level, name, module, out_fn, boundary in sorted(calls, key=lambda c: c[0]):   # deeper calls win
        if id(out_fn) in boundary:                    # returned its input unchanged: contains nothing
            continue
        inside, todo = set(), [out_fn]
        while todo:
            fn = todo.pop()
            if id(fn) in inside or id(fn) in boundary:
                continue
            inside.add(id(fn))
            todo.extend(e.creator for e in fn.edges() if e.creator is not None)
        expanded = level + 1 < depth and any(True for _ in module.children())     # its layers get the boxes
        for fid in inside:
            member[fid] = (name, type(module).__name__, id(out_fn), module, expanded)
    return member


def _number_repeated_calls(calls):
    """Name a module's second call ``name#2`` (and so on, in the order the calls ran), as ``tinyresnet.trace``
    and ``summary`` do: a block's ReLU gives ``layer1.0.relu`` and ``layer1.0.relu#2``. Takes (depth, call
    number, name, module, output op, boundary) per call; returns them without the number, named uniquely."""
    seen, named = {}, []
    for level, _, name, module, out_fn, boundary in sorted(calls, key=lambda c: c[1]):
        seen[name] = seen.get(name, 0) + 1
        label = name if seen[name] == 1 else f"{name}#{seen[name]}"
        named.append((level, label, module, out_fn, boundary))
    return named


def _collapse(graph, member):
    """A new graph in which the ops of each module call are one "module" node; a leaf that is a weight of
    that module (or an unnamed constant only it reads) goes inside it."""
    group_of = {}                                     # node key -> the key that stands for it
    collapsed = Graph()
    weights_of = {}
    for key, node in graph.nodes.items():
        call = member.get(key[1]) if node.kind == "op" else None
        if call is None:
            collapsed.nodes[key] = node
            group_of[key] = key
            continue
        name, type_name, out_id, module, expanded = call
        if expanded:                                  # an op of its own, such as a block's residual add
            collapsed.nodes[key] = Node(key, "op", f"{node.label} ({name})", node.shape)
            group_of[key] = key
            continue
        gkey = ("m", out_id, name)
        group_of[key] = gkey
        if gkey not in collapsed.nodes:
            collapsed.nodes[gkey] = Node(gkey, "module", f"{name}: {type_name}")
            weights_of[gkey] = {id(p) for p in module.parameters()}
        if key[1] == out_id:
            collapsed.nodes[gkey].shape = node.shape
    readers = {}
    for src, dst, _, _ in graph.edges:
        readers.setdefault(src, set()).add(group_of[dst])
    for key, node in graph.nodes.items():            # weights and private constants go inside their box
        if node.kind in ("param", "const") and len(readers.get(key, ())) == 1:
            (gkey,) = readers[key]
            unnamed_const = node.kind == "const" and node.label == "const"
            if gkey[0] == "m" and (key[1] in weights_of[gkey] or unnamed_const):
                group_of[key] = gkey
                del collapsed.nodes[key]
    seen = set()
    for src, dst, shape, index in graph.edges:
        a, b = group_of[src], group_of[dst]
        if a == b or (a, b) in seen:
            continue
        seen.add((a, b))
        collapsed.edges.append((a, b, shape, index))
    return collapsed


def _layout(graph):
    """Give every node a row (``rank``) and a column (``x``): ops below the ops they use, each leaf
    one row above its first consumer: straight above it if it is the consumer's first input (the data),
    else right of all ops, by its input index (the weights)."""
    op_inputs = {key: [] for key, n in graph.nodes.items() if n.kind != "param" and n.kind != "const"}
    for src, dst, _, _ in graph.edges:
        if graph.nodes[src].kind in (*INNER, "output"):
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
        row.sort(key=order or (lambda n: (n.x, n.kind not in INNER)))
        for left, right in zip(row, row[1:]):
            if right.x < left.x + gap:
                right.x = left.x + gap


def _shape_text(shape):
    if shape is None:
        return ""
    return str(tuple(int(s) for s in shape))


def format_graph(output, names=None, collapse=None, depth=1):
    """The graph as text, one line per op (or module box, with ``collapse``; see ``trace``) from the
    inputs to the output: ``Conv2d(x (1, 2, 4, 4), conv1.weight (2, 2, 3, 3)) -> (1, 2, 4, 4)``."""
    graph = trace(output, names, collapse, depth)
    number = {}
    lines = []
    for i, node in enumerate(graph.ops(), 1):
        number[node.key] = i
    for node in graph.ops():
        inputs = sorted(((index, src, shape) for src, dst, shape, index in graph.edges if dst == node.key))
        parts = []
        for _, src, shape in inputs:
            source = graph.nodes[src]
            name = f"[{number[src]}]" if source.kind in INNER else source.label
            parts.append(f"{name} {_shape_text(shape)}")
        lines.append(f"[{number[node.key]}] {node.label}({', '.join(parts)}) -> {_shape_text(node.shape)}")
    out = next(n for n in graph.nodes.values() if n.kind == "output")
    lines.append(f"{out.label} = " + (f"[{len(number)}]" if number else "a leaf tensor (no graph)"))
    return "\n".join(lines)


STYLE = {  # face colour, edge colour
    "op": ("#dbe8f7", "#3b6ea8"),
    "module": ("#e9dcf5", "#6b3fa0"),
    "param": ("#fde3c8", "#c46a1b"),
    "const": ("#eeeeee", "#888888"),
    "output": ("#d8f0d2", "#3c8a2e"),
}


def draw_graph(output, names=None, path=None, title=None, ax=None, collapse=None, depth=1):
    """Draw the graph behind ``output`` top to bottom; return the matplotlib Figure.

    ``names`` labels leaf tensors (see ``trace``); ``path`` also saves the picture (PNG); ``ax``
    draws into an existing Axes instead of a new figure. Uses matplotlib's Agg canvas when it makes
    its own figure, so no display is needed. ``collapse=model, depth=1`` draws each module call of
    ``model`` down to ``depth`` levels as one box (``depth=1``: the stages; 2: the blocks).
    """
    graph = trace(output, names, collapse, depth)
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
        if a.kind in INNER and b.rank - a.rank == 1:
            ax.text((a.x + b.x) / 2 + 0.08, -(a.rank + b.rank) / 2, _shape_text(shape), fontsize=6.5,
                    color="#666666", ha="left", va="center", zorder=1)
    if path is not None:
        fig.savefig(path, bbox_inches="tight", dpi=110)
    return fig
