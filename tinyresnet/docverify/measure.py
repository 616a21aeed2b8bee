"""Measurements taken from real engine runs: per-layer shapes and multiply-accumulates by forward
hooks, and the number of input-to-output paths in a recorded autograd graph."""

import numpy as np

from ..autograd import Tensor, no_grad


def run_with_hooks(model, input_shape, seed=0):
    """Run ``model`` once on a random (1, *input_shape) float32 batch, in eval mode and without a graph.

    Returns {module name: (input shape, output shape, macs)} for every module that ran, shapes
    without the batch axis; macs come from each layer's own counter, ``Module.macs``.
    """
    records, handles = {}, []
    for name, module in model.named_modules():
        def hook(module, inputs, output, name=name):
            records[name] = (tuple(inputs[0].shape[1:]), tuple(output.shape[1:]), module.macs(inputs, output))
        handles.append(module.register_forward_hook(hook))
    x = Tensor(np.random.default_rng(seed).normal(size=(1, *input_shape)).astype(np.float32))
    model.eval()
    try:
        with no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return records


def count_paths(source, target):
    """How many distinct routes lead from tensor ``source`` to tensor ``target`` in the recorded graph.

    Every function's output is reached by the routes that reach any of its inputs, so the count is
    a sum over the graph in topological order. A residual addition y = F(x) + x takes x twice
    (once through F, once directly) and so doubles the routes; a chain of layers keeps them.
    """
    if target is source:
        return 1
    if target.creator is None:
        return 0

    def routes_in(edge):                         # routes into one input of a function
        if edge.creator is None:                 # a leaf: the source itself, or a weight, a constant
            return 1 if edge.leaf is source else 0
        return counts[id(edge.creator)]

    counts = {}                                  # id(function) -> routes from the source to its output
    stack = [target.creator]
    while stack:                                 # iterative post-order: inputs are counted first
        fn = stack[-1]
        if id(fn) in counts:
            stack.pop()
            continue
        pending = [x.creator for x in fn.inputs if x.creator is not None and id(x.creator) not in counts]
        if pending:
            stack.extend(pending)
            continue
        counts[id(fn)] = sum(routes_in(x) for x in fn.inputs)
        stack.pop()
    return counts[id(target.creator)]


def graph_paths(model, input_shape, seed=0):
    """The paths from the input to the output of ``model``'s autograd graph on a small random batch."""
    x = Tensor(np.random.default_rng(seed).normal(size=(1, *input_shape)).astype(np.float32), requires_grad=True)
    model.eval()
    return count_paths(x, model(x))


def superscript(n):
    """2 and 16 as "2¹⁶"-style exponent text."""
    return str(n).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹"))
