"""Per-layer output shapes, parameters and multiply-accumulates of a model, found by running it.

``summarize(model, input_size)`` runs one forward pass on a batch of one zero image (in eval
mode, without recording a graph) with a hook on every module, and gives one row per module call
in the order the calls start. Each row counts only what that module itself owns and computes:

- a module called more than once (a block's ReLU) has a row per call, the second named ``layer1.0.relu#2``
  (as ``tinyresnet.trace`` names it);
- params: the parameters registered on that module (a container's row shows 0; its layers
  carry its weights), so the rows add up to the model's total;
- the residual addition of each block (where the skip joins the branch) is a row of its own, named
  ``layer1.0.add``, of type "residual add", with the shape of the sum;
- macs (multiply-accumulates) as the layer reports them: a convolution
  N·OC·OH·OW·(C/groups)·KH·KW, a linear layer N·in·out (bias additions not counted);
  BatchNorm, ReLU, pooling and the residual addition count as 0.
"""

from dataclasses import asdict, dataclass, field

import numpy as np

from .autograd import Tensor, no_grad
from .backend import get_array_module
from .tables import text_table
from .trace import is_residual_block, residual_sum

ZERO_MAC_NOTE = "BatchNorm, ReLU, pooling, concatenation and the residual addition are counted as 0 MACs"


@dataclass
class SummaryRow:
    """One module call: its dotted name, class, output shape, own parameters and MACs, and depth."""

    name: str
    type: str
    output_shape: tuple
    params: int
    macs: int
    depth: int


@dataclass
class ModelSummary:
    """The rows of ``summarize`` and the totals; ``to_text()`` for people, ``to_dict()`` for programs."""

    model: str
    input_size: tuple
    rows: list = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    total_macs: int = 0
    output_shape: tuple = ()

    def to_dict(self):
        return {"model": self.model, "input_size": list(self.input_size), "output_shape": list(self.output_shape),
                "rows": [dict(asdict(r), output_shape=list(r.output_shape)) for r in self.rows],
                "total_params": self.total_params, "trainable_params": self.trainable_params,
                "total_macs": self.total_macs, "note": ZERO_MAC_NOTE}

    def to_text(self, max_depth=None):
        """A table, one line per row (down to ``max_depth`` levels of nesting), then the totals."""
        rows = [r for r in self.rows if max_depth is None or r.depth <= max_depth]
        header = ("layer", "type", "output shape", "params", "MACs")
        table = [("  " * (r.depth - 1) + r.name, r.type, str(r.output_shape), f"{r.params:,}", f"{r.macs:,}")
                 for r in rows]
        out = [f"{self.model}, input {format_size(self.input_size)}", *text_table(header, table, right=2)]
        out += [f"total parameters:     {self.total_params:,}",
                f"trainable parameters: {self.trainable_params:,}",
                f"multiply-accumulates: {self.total_macs:,} ({_in_units(self.total_macs)}) per image",
                f"output shape:         {self.output_shape}",
                f"({ZERO_MAC_NOTE})"]
        return "\n".join(out)

    def __str__(self):
        return self.to_text()


def _in_units(n):
    """4089184256 -> '4.09 G', 40551040 -> '40.55 M'."""
    return f"{n / 1e9:.2f} G" if n >= 1e9 else f"{n / 1e6:.2f} M"


def format_size(size):
    return "x".join(str(s) for s in size)


def summarize(model, input_size=(3, 224, 224), name=None):
    """Run ``model`` once on a zero batch of shape (1, *input_size) and describe every layer.

    The model's device and dtype are used; every layer's training mode is restored afterwards and
    the weights and BN statistics are left untouched. Returns a ``ModelSummary``.
    """
    input_size = tuple(int(s) for s in input_size)
    if len(input_size) != 3 or min(input_size) < 1:
        raise ValueError(f"input_size must be (C, H, W) with positive sizes, got {input_size}")
    names = {id(m): n for n, m in model.named_modules()}
    first = next(model.parameters(), None)               # the input takes the weights' device and dtype
    like = first.data if first is not None else np.zeros(0, dtype=np.float32)
    x = Tensor(get_array_module(like).zeros((1,) + input_size, dtype=like.dtype))

    rows, open_rows, counted, calls_of = [], [], set(), {}

    def before(module, inputs):
        name = names[id(module)]
        row = None
        if name:                               # the model itself gets the totals, not a row
            calls_of[name] = calls_of.get(name, 0) + 1
            label = name if calls_of[name] == 1 else f"{name}#{calls_of[name]}"     # as tinyresnet.trace names it
            row = SummaryRow(label, type(module).__name__, (), 0, 0, name.count(".") + 1)
            if id(module) not in counted:      # a layer called twice (a shared ReLU) owns its weights once
                counted.add(id(module))
                row.params = sum(int(p.size) for p in module.parameters(recurse=False))
            rows.append(row)
        if open_rows:
            open_rows[-1][2].append((inputs[0] if inputs else None, row))
        open_rows.append([row, inputs, []])    # its row, its inputs, (first input, row) of each layer call

    def after(module, inputs, output):
        row, given, calls = open_rows.pop()
        if row is not None:
            row.output_shape = tuple(output.shape)
            row.macs = int(module.macs(inputs, output))
        if open_rows:                          # the parent learns what this call returned
            parent_calls = open_rows[-1][2]
            parent_calls[-1] = (*parent_calls[-1], output)
        if is_residual_block(module):
            _add_residual_row(rows, row, names[id(module)], given, calls, output)

    handles = []
    for module in model.modules():
        handles.append(module.register_forward_pre_hook(before))
        handles.append(module.register_forward_hook(after))
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
        for m, training in modes:                # each layer back in its own mode (some may be frozen)
            m.training = training
    return ModelSummary(
        model=name or type(model).__name__, input_size=input_size, rows=rows,
        total_params=model.num_parameters(), trainable_params=model.num_parameters(trainable_only=True),
        total_macs=sum(r.macs for r in rows), output_shape=tuple(out.shape))


def _add_residual_row(rows, block_row, block, given, calls, output):
    """A row for the block's residual addition (0 parameters, 0 MACs), where it ran: before the layer that
    reads the sum (the last ReLU), or after the block's other rows when the block returns the sum."""
    summed, reader = residual_sum(given, [(first, out, row) for first, row, out in calls], output)
    if summed is None:
        return
    depth = block_row.depth + 1 if block_row is not None else 1
    add = SummaryRow(f"{block}.add" if block else "add", "residual add", tuple(summed.shape), 0, 0, depth)
    at = next(i for i, r in enumerate(rows) if r is reader) if reader is not None else len(rows)   # by identity
    rows.insert(at, add)


summary = summarize
"""``summary(model, input_size)``: the name torchsummary users know, for ``summarize`` (the same
function: ``input_size`` is (C, H, W), without the batch dimension, and a ``ModelSummary`` is
returned, which ``print`` shows as a table: ``print(summary(model, (3, 32, 32)))``)."""
