"""Step through a forward and backward pass: every layer's output and the gradient arriving at it.

    >>> from tinyresnet import trace
    >>> with trace.record(model) as rec:                  # a block, a stage or a whole ResNet
    ...     loss = F.cross_entropy(model(images), labels)
    ...     loss.backward()
    >>> print(rec)                                        # one row per layer call, in the order they ran
    >>> rec["layer1.0.add"].grad                          # dL/d(the residual sum) of the first block
    >>> print(rec.split("layer1.0"))                      # dL/dx = the skip's part + the branch's part

Each record is one call of a module inside the recorded one, named by the module tree as in
``state_dict`` (``layer1.0.conv1``; a layer called twice, such as a block's ReLU, gives ``relu`` and
``relu#2``), plus one record per residual block for the residual addition (``layer1.0.add``), which is
not a module. A record keeps (as host copies): ``output``, the value the layer returned; ``grad``,
dL/d(output), the gradient arriving at it in backward; ``grad_input``, dL/d(input) through this layer
only (for a tensor that also feeds the skip, its share).

Under ``no_grad`` (or when nothing needs a gradient) the records, the ``add`` ones included, hold the
outputs only. After two backward passes through one graph (``retain_graph=True``) a record holds the
gradients of the last backward, while ``.grad`` of the weights and inputs adds both up.

How it works: forward hooks on every module, a pass-through op (``nn.module.BackwardHookFunction``) on
each call's input and ``Tensor.register_hook`` on each output. Values are unchanged, and so are the
gradients, bit for bit. The hooks are removed when the ``with`` block ends; gradient hooks already in
the graph still record if backward runs after it. Modules with backward hooks of their own
(``register_full_backward_hook``) are recorded and split as the others.
"""

import html
from dataclasses import dataclass

import numpy as np

from .autograd import Edge, Tensor, is_grad_enabled
from .backend import to_numpy
from .nn.module import pass_through_hook
from .ops.basic import AddFunction
from .tables import text_table

SKIP_NAMES = ("downsample", "shortcut")        # where a block keeps its projection shortcut


@dataclass
class OpRecord:
    """One layer call (or a block's residual addition): its output and the gradients around it.

    Shapes: output and grad have the output's shape; grad_input the (first) input's. Arrays are NumPy
    copies; grad and grad_input are None until backward reaches them (or when nothing needs a gradient).
    """

    name: str
    type: str
    depth: int
    output: np.ndarray = None
    grad: np.ndarray = None
    grad_input: np.ndarray = None

    @property
    def shape(self):
        return None if self.output is None else tuple(self.output.shape)


@dataclass
class SkipSplit:
    """dL/dx at a residual block's input, split by where it came back from.

    ``total`` = ``skip`` + ``residual``, exactly: the engine adds the two parts to get the gradient
    of x (``x.grad`` when x is the input you made). ``skip_via`` names the way through the shortcut
    ("identity" or its module), ``residual_via`` the first layer(s) of the branch.

    ``at`` says which tensor is split: "input" (x, the usual case), or the record of the layer whose
    output the shortcut reads when that is not x: in a pre-activation block with a projection
    (``WideBasicBlock``) the shortcut and the branch both read relu(bn1(x)), so the split is of
    dL/d(that tensor), at = "relu"; dL/dx is bn1's and relu's backward of it, which mixes the parts.
    Shapes: total, skip and residual, that of the tensor split ((N, C, H, W), the block's input when at = "input").
    """

    block: str
    block_type: str
    total: np.ndarray
    skip: np.ndarray
    residual: np.ndarray
    skip_via: str
    residual_via: str
    at: str = "input"

    def parts_add_up(self):
        """Whether skip + residual equals the total exactly (bit for bit)."""
        return bool(np.array_equal(self.skip + self.residual, self.total))

    def rows(self):
        """(part, way, sum, L2 norm, share) per part; share = <part, total> / <total, total>, so the shares add to 1."""
        total_sq = float(np.vdot(self.total, self.total))
        out = []
        for part, via, g in (("through the skip", self.skip_via, self.skip),
                             ("through the residual branch", self.residual_via, self.residual),
                             (self._total_label(), "", self.total)):
            share = float(np.vdot(g, self.total)) / total_sq if total_sq else float("nan")
            out.append((part, via, float(g.sum()), float(np.linalg.norm(g)), share))
        return out

    def _total_label(self):
        return "total (dL/dx)" if self.at == "input" else f"total (dL/d {self.at})"

    def to_text(self):
        header = ("part", "via", "sum", "L2 norm", "share")
        table = [(p, v, f"{s:+.4e}", f"{n:.4e}", f"{sh:.1%}") for p, v, s, n, sh in self.rows()]
        name = self.block or "the recorded module"
        gap = float(np.abs(self.skip + self.residual - self.total).max())
        verdict = "exactly" if self.parts_add_up() else f"no (largest difference {gap:.3e})"
        where = (f"dL/dx at the input of {name}" if self.at == "input" else
                 f"dL/d(output of {self.at}) in {name}, the tensor both the skip and the branch read")
        lines = [f"{where} ({self.block_type}), shape {tuple(self.total.shape)}",
                 *text_table(header, table), f"skip + residual == total: {verdict}"]
        return "\n".join(lines)

    __str__ = to_text

    def _repr_html_(self):
        return f"<pre>{html.escape(self.to_text(), quote=False)}</pre>"


class Recorder:
    """What ``record(module)`` gives: the records by name, in the order the calls started.

    ``rec[name]`` (an ``OpRecord``), ``rec.names()``, ``for r in rec``, ``len(rec)``; ``print(rec)`` or
    ``rec.to_text(max_depth)`` for a table; ``rec.split(block)`` for a block's dL/dx by skip and branch.
    """

    def __init__(self, module):
        self.module = module
        self._records = {}                     # name -> OpRecord, in call order (the add inserted where it ran)
        self._splits = {}                      # block name -> how to split its input gradient
        self._unsplit = {}                     # block name -> why it cannot be split
        self._names = {id(m): n for n, m in module.named_modules()}
        self._stack, self._handles = [], []

    # ------------------------------------------------------------------ recording
    def __enter__(self):
        for _, m in self.module.named_modules():
            self._handles.append(m.register_forward_pre_hook(self._before))
            self._handles.append(m.register_forward_hook(self._after))
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._handles, self._stack = [], []
        return False

    def _new_record(self, name, kind, depth, before=None):
        unique, k = name, 1
        while unique in self._records:
            k += 1
            unique = f"{name}#{k}"
        rec = OpRecord(unique, kind, depth)
        if before is None:
            self._records[unique] = rec
        else:                                  # the residual add ran before the layer that reads it
            items = list(self._records.items())
            at = [n for n, _ in items].index(before)
            self._records = dict(items[:at] + [(unique, rec)] + items[at:])
        return rec

    def _before(self, module, inputs):
        name = self._names[id(module)]
        rec = self._new_record(name, type(module).__name__, name.count(".") + 1 if name else 0)
        call = _Call(module, name, rec, inputs)
        if self._stack:
            self._stack[-1].children.append(call)
        self._stack.append(call)
        first = next((i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad), None)
        if first is None:
            return None
        wrapped = list(inputs)
        wrapped[first] = pass_through_hook(inputs[first], _keep(rec, "grad_input"))
        call.inside = wrapped[first]
        return tuple(wrapped)

    def _after(self, module, inputs, output):
        call = self._stack.pop()
        call.output = output
        if isinstance(output, Tensor):
            _watch(call.record, output)
        if is_residual_block(module):
            self._find_residual_add(call)

    def _find_residual_add(self, call):
        """The residual sum: the first tensor a layer of the block reads (or the block returns) that is neither
        the block's input nor any layer's output; it must be made by an addition (under ``no_grad`` there is
        no graph to tell: it is taken as the sum, as ``summary`` does). Records it and plans the block's split."""
        known = [*call.inputs, call.inside]
        summed, before = residual_sum(known, [(c.inputs[0] if c.inputs else None, c.output, c.record.name)
                                              for c in call.children], call.output)
        maker = None if summed is None else _origin(summed)
        if summed is None or not (maker is summed or isinstance(maker, AddFunction)):
            made_by = "" if summed is None else f" (the tensor found is made by {maker.name})"
            self._unsplit[call.record.name] = f"its residual sum (skip + branch) was not found{made_by}"
            return
        name = f"{call.name}.add" if call.name else "add"
        rec = self._new_record(name, "residual add", call.record.depth + 1, before=before)
        _watch(rec, summed)
        plan = _split_plan(call, maker, rec)
        if isinstance(plan, str):
            self._unsplit[call.record.name] = plan
        else:
            self._splits[call.record.name] = plan

    # ------------------------------------------------------------------ reading
    def __getitem__(self, name):
        try:
            return self._records[name]
        except KeyError:
            raise KeyError(f"no record named {name!r}; recorded: {', '.join(self._records) or 'nothing'} (run the "
                           f"forward pass inside the `with record(module)` block)") from None

    def __iter__(self):
        return iter(self._records.values())

    def __len__(self):
        return len(self._records)

    def names(self):
        return list(self._records)

    def blocks(self):
        """The names of the recorded residual blocks (the ones ``split`` takes)."""
        return list(self._splits)

    def split(self, block=""):
        """dL/dx at the input of ``block`` (a name such as "layer1.0"; "" is the recorded module itself),
        split into the part through the skip and the part through the residual branch (``SkipSplit``).
        Where the shortcut reads another tensor than x (a pre-activation block's projection reads
        relu(bn1(x))), that tensor's gradient is split instead (``SkipSplit.at`` names it). A KeyError says
        why a name cannot be split (not a residual block, not called, its input needs no gradient...)."""
        if block not in self._splits:
            raise KeyError(self._why_not_split(block))
        plan = self._splits[block]
        total, skip, residual = plan.total(), plan.skip(), plan.residual()
        if total is None or skip is None or residual is None:
            raise RuntimeError(f"the gradients of {block or 'the recorded module'} are not there yet: call "
                               f"loss.backward() first")
        return SkipSplit(block, self[block].type, total, skip, residual, plan.skip_via, plan.residual_via, plan.at)

    def _why_not_split(self, block):
        """The reason ``split(block)`` cannot answer, for its KeyError."""
        label = repr(block) if block else "'' (the recorded module)"
        blocks = ", ".join(repr(b) for b in self._splits) or "none"
        if block in self._unsplit:
            reason = f"{label} is a residual block but cannot be split: {self._unsplit[block]}"
        elif block in self._records:
            reason = f"{label} is a {self._records[block].type}, not a residual block"
        elif block in self._names.values():
            reason = f"{label} was not called in the recorded forward pass"
        else:
            reason = f"{label} is not the name of a module of the recorded {type(self.module).__name__}"
        return f"{reason}; the blocks that can be split are {blocks}"

    def to_text(self, max_depth=None):
        """A table: one row per record (down to ``max_depth`` levels), with the output's shape, mean and
        standard deviation and the L2 norms of dL/d(output) and dL/d(input)."""
        header = ("op", "type", "output shape", "mean", "std", "|dL/dout|", "|dL/din|")
        rows = []
        for r in self._records.values():
            if max_depth is not None and r.depth > max_depth:
                continue
            out = r.output
            rows.append(("  " * max(r.depth - 1, 0) + (r.name or "(all)"), r.type,
                         str(r.shape) if out is not None else "", _number(out, np.mean), _number(out, np.std),
                         _number(r.grad, np.linalg.norm), _number(r.grad_input, np.linalg.norm)))
        title = f"trace of {type(self.module).__name__}: {len(self._records)} records"
        return "\n".join([title, *text_table(header, rows)])

    __str__ = to_text

    def __repr__(self):
        return f"<Recorder of {type(self.module).__name__}: {len(self._records)} records>"

    def _repr_html_(self):
        return f"<pre>{html.escape(self.to_text(), quote=False)}</pre>"


def record(module):
    """Record every layer call inside ``module`` (a block, a stage, a whole ResNet): use as
    ``with record(model) as rec: ...`` around the forward pass and ``backward()``. Returns a ``Recorder``."""
    if not hasattr(module, "named_modules"):
        raise TypeError(f"record needs a Module (a block or a model), got {type(module).__name__}")
    return Recorder(module)


# ---------------------------------------------------------------------- helpers
class _Call:
    """One module call while it runs: its record, inputs (as given), the input inside the module (after
    the pass-through op), its output and the calls of its layers."""

    def __init__(self, module, name, record, inputs):
        self.module, self.name, self.record, self.inputs = module, name, record, tuple(inputs)
        self.inside, self.output, self.children = None, None, []


class _SplitPlan:
    """Which recorded gradients make up a block's split: ``total_source`` and the sources of each part, each a
    (record, field) pair; ``at``: "input", or the name of the record whose output is split."""

    def __init__(self, total_source, skip_sources, residual_sources, skip_via, residual_via, at):
        self.total_source, self.skip_sources, self.residual_sources = total_source, skip_sources, residual_sources
        self.skip_via, self.residual_via, self.at = skip_via, residual_via, at

    @staticmethod
    def _sum(sources):
        grads = [getattr(rec, field) for rec, field in sources]
        if any(g is None for g in grads):
            return None
        total = grads[0]
        for g in grads[1:]:
            total = total + g
        return total

    def total(self):
        return self._sum([self.total_source])

    def skip(self):
        return self._sum(self.skip_sources)

    def residual(self):
        return self._sum(self.residual_sources)


def _split_plan(call, add, add_record):
    """How to split a block's input gradient, or (a string) why it cannot be. ``add``: the op that made the
    residual sum (or the sum itself when no graph made it).

    The split is taken at the tensor the skip reads (the "fork"): the block's input x when the skip is the
    identity (the addition ``add`` reads x) or its shortcut layer reads x; else the output of the layer the
    shortcut reads (a pre-activation block's relu). Its gradient is the sum of what its readers send back:
    the addition or the shortcut (the skip's part) and the branch's first layers (the residual part)."""
    if call.inside is None:
        if not is_grad_enabled():
            return "the forward pass ran under no_grad, so no gradient is computed"
        return ("its input does not require grad, so no gradient reaches it (make the input with "
                "requires_grad=True)")
    if not isinstance(add, AddFunction):
        return "its residual sum is not in the autograd graph (made under no_grad or detached)"
    x = _origin(call.inside)
    fork, total, at = x, (call.record, "grad_input"), "input"
    shortcut = next((c for c in call.children if _short_name(c) in SKIP_NAMES and c.inputs), None)
    identity = any(_origin(e) is x for e in add.edges())
    if shortcut is not None and not identity and _origin(shortcut.inputs[0]) is not x:
        fork = _origin(shortcut.inputs[0])         # the shortcut reads something else: a layer's output?
        maker = next((c for c in call.children if isinstance(c.output, Tensor) and _origin(c.output) is fork), None)
        if maker is None:
            return (f"its shortcut {_short_name(shortcut)} reads a tensor that is neither the block's input nor "
                    f"the output of one of its layers")
        total, at = (maker.record, "grad"), _relative(maker.record.name, call.name)
    skip, residual, skip_via, residual_via = [], [], [], []
    if any(_origin(e) is fork for e in add.edges()):
        skip.append((add_record, "grad"))          # the addition passes its gradient straight to x
        skip_via.append("identity")
    for child in call.children:
        if not child.inputs or not isinstance(child.inputs[0], Tensor) or _origin(child.inputs[0]) is not fork:
            continue
        is_skip = _short_name(child) in SKIP_NAMES
        (skip if is_skip else residual).append((child.record, "grad_input"))
        (skip_via if is_skip else residual_via).append(_short_name(child))
    if not skip or not residual:
        missing = "skip" if not skip else "residual branch"
        return f"no {missing} reads the tensor where the skip and the branch part"
    return _SplitPlan(total, skip, residual, " + ".join(skip_via), " + ".join(residual_via), at)


def _short_name(call):
    """The last part of a call's module name: "downsample" for "layer2.0.downsample"."""
    return call.name.rsplit(".", 1)[-1]


def _relative(name, block):
    """``name`` without the block's prefix: "relu" for "layer2.0.relu" in "layer2.0"."""
    return name[len(block) + 1:] if block else name


def _origin(t):
    """``t`` (a Tensor or an Edge) seen through the pass-through ops of hooks: the op that made it, or the
    leaf itself. The same tensor before and after a hook's wrapper has the same origin."""
    while t.creator is not None and getattr(t.creator, "is_hook", False):
        t = t.creator.inputs[0]                    # the Edge of the pass-through op's input
    if t.creator is not None:
        return t.creator
    return t.leaf if isinstance(t, Edge) else t


def residual_sum(block_inputs, calls, output):
    """Find a block's residual sum from what its layers read and return, without the graph (also under
    ``no_grad``): the first tensor a layer reads, in call order, that is neither one of ``block_inputs`` nor
    the output of an earlier layer; else the block's ``output`` if it is neither. ``calls``: (first input,
    output, tag) per layer call. Returns (the tensor, the tag of the layer that reads it or None), or
    (None, None)."""
    known = {id(_origin(t)) for t in block_inputs if isinstance(t, Tensor)}     # seen through hooks' wrappers
    for first, out, tag in calls:
        if isinstance(first, Tensor) and id(_origin(first)) not in known:
            return first, tag
        if isinstance(out, Tensor):
            known.add(id(_origin(out)))
    if isinstance(output, Tensor) and id(_origin(output)) not in known:
        return output, None
    return None, None


def is_residual_block(module):
    """A module that adds a shortcut: ``has_skip`` True, or (without the flag) a ``downsample`` or ``shortcut`` slot."""
    flag = getattr(type(module), "has_skip", None)
    if flag is not None:
        return bool(flag)
    return any(name in module._modules or (name in vars(module) and vars(module)[name] is None)   # `= None`: identity
               for name in SKIP_NAMES)


def _keep(rec, field):
    def hook(grad):
        setattr(rec, field, np.array(to_numpy(grad), copy=True))
    return hook


def _watch(rec, t):
    """Keep ``t``'s value on ``rec`` now and its gradient when backward reaches it."""
    rec.output = np.array(to_numpy(t.data), copy=True)
    if t.requires_grad:
        t.register_hook(_keep(rec, "grad"))


def _number(a, stat):
    return "" if a is None else f"{float(stat(a)):.4g}"
