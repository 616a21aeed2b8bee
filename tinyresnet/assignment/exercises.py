"""The exercises: one table with each exercise's title, points and one-line hint.

The ids are the ones on the solution markers in the library's source. A released copy replaces
each region with ``raise NotImplementedError("<id>: <hint>")``. The table's order is the order of
the handout and of the reports (from the simplest rule to the whole block).

How points are set: one point per idea a student must find and get right, counted from the
derivation in the handout:

    relu_backward       1  the mask
    add_backward        2  the identity's derivative; summing over the axes broadcasting stretched
    im2col              3  output size with padding and stride; the window copy; the row/column layout
    col2im              3  the adjoint; overlapping windows add (+=, not =); dropping the padding
    conv_backward       4  dW = colsᵀ·dout; dcols = dout·Wᵀ then col2im; dbias; the layouts and groups
    maxpool_backward    3  the route to the argmax; overlapping windows add; the padding
    batchnorm_backward  4  the direct path; the path through μ; the path through σ²; their simplification
    basicblock_forward  3  the residual branch; the skip; the projection shortcut

An exercise earns its points only when every one of its checks passes, visible and hidden: a
backward pass that is right for stride 1 and wrong for stride 2 is wrong. To weigh an exercise
differently, change its number here; the handout and the grader read it from this table.

This module imports nothing from tinyresnet (the grader's child process may load it by path).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    points: int
    hint: str
    # exercises whose code this one's visible checks also run: `check` on a student's copy says
    # "fix these first" when they fail (`grade` swaps in the instructor's versions instead)
    requires: tuple = ()


EXERCISES = {e.id: e for e in [
    Exercise("relu_backward", "ReLU backward", 1,
             "pass dout through where the input was positive (forward saved that mask), 0 elsewhere"),
    Exercise("add_backward", "The residual addition's backward", 2,
             "d(a+b)/da = d(a+b)/db = 1, then sum dout back to each input's shape over the axes "
             "broadcasting stretched"),
    Exercise("im2col", "im2col: sliding windows as rows", 3,
             "pad x, then copy the KH×KW window of every output position (n, oh, ow) into one row, "
             "columns in the order the docstring gives"),
    Exercise("col2im", "col2im: the adjoint of im2col", 3,
             "add (+=) every row's values back to the padded input positions they were copied from, "
             "then drop the padding", requires=("im2col",)),
    Exercise("conv_backward", "Convolution backward", 4,
             "out = cols · Wmat per group, so dWmat = colsᵀ · dout and dcols = dout · Wmatᵀ (then "
             "col2im); dbias sums dout over N, OH, OW; mind the layouts", requires=("im2col", "col2im")),
    Exercise("maxpool_backward", "Max-pool backward", 3,
             "only each window's maximum (its offset was saved) receives that window's dout; overlapping "
             "windows add"),
    Exercise("batchnorm_backward", "Batch-norm backward (training mode)", 4,
             "the batch mean and variance depend on every x of the channel: differentiate through them "
             "too (three terms)"),
    Exercise("basicblock_forward", "The BasicBlock forward: skip connection and projection shortcut", 3,
             "out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut), the shortcut being x, or "
             "downsample(x) when the block has one",
             requires=("relu_backward", "add_backward", "im2col", "col2im", "conv_backward", "batchnorm_backward")),
]}


def total_points(ids):
    return sum(EXERCISES[i].points for i in ids)
