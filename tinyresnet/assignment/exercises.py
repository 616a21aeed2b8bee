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
    conv1x1_backward    2  dW = doutᵀ·x_mat; dx = dout·W put back at the kept pixels (the stride)
    avgpool_backward    2  each window spreads dout/divisor over its pixels; overlapping windows add
    linear_backward     2  dx = dout·W; dW = doutᵀ·x (any leading axes flattened); db
    cross_entropy_backward 2  softmax − onehot; the mean's 1/N (and label smoothing's ε/K)
    bottleneck_forward  2  the three convolutions with their BN and ReLU; the skip and the expansion
    autograd_backward   3  the reverse topological order; adding the gradients of a tensor used twice

An exercise earns its points only when every one of its checks passes, visible and hidden: a
backward pass that is right for stride 1 and wrong for stride 2 is wrong. To weigh an exercise
differently, change its number here; the handout and the grader read it from this table. A course
file can split an exercise's points over its visible and hidden cases instead (gradebook.py).

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
    # tutorials (paths from the repository root) that spell out this exercise's answer: a release of
    # it leaves them out of the copy
    spoils: tuple = ()
    # exercises whose answer this one's solution gives away (a template of it): a release of one of
    # them must release this one too
    gives_away: tuple = ()
    # (words in the failing case's message, the advice for that mistake): the report of a failing
    # exercise gives the first that matches, else the hint
    mistakes: tuple = ()


AUTOGRAD = ("autograd_backward",)          # every backward check runs Tensor.backward


EXERCISES = {e.id: e for e in [
    Exercise("relu_backward", "ReLU backward", 1,
             "pass dout through where the input was positive (forward saved that mask), 0 elsewhere",
             requires=AUTOGRAD),
    Exercise("add_backward", "The residual addition's backward", 2,
             "d(a+b)/da = d(a+b)/db = 1, then sum dout back to each input's shape over the axes "
             "broadcasting stretched", requires=AUTOGRAD),
    Exercise("im2col", "im2col: sliding windows as rows", 3,
             "pad x, then copy the KH×KW window of every output position (n, oh, ow) into one row, "
             "columns in the order the docstring gives"),
    Exercise("col2im", "col2im: the adjoint of im2col", 3,
             "add (+=) every row's values back to the padded input positions they were copied from, "
             "then drop the padding", requires=("im2col",) + AUTOGRAD),
    Exercise("conv_backward", "Convolution backward", 4,
             "out = cols · Wmat per group, so dWmat = colsᵀ · dout and dcols = dout · Wmatᵀ (then "
             "col2im); dbias sums dout over N, OH, OW; mind the layouts", requires=("im2col", "col2im") + AUTOGRAD,
             gives_away=("conv1x1_backward",),
             mistakes=(("dweight", "a layout mistake, as the handout predicts: dout is (N, OC, OH, OW) and its rows "
                                   "must follow cols' (n, oh, ow) order, so move OC last (dout.transpose(0, 2, 3, 1)) "
                                   "before reshaping to (N·OH·OW, OC); then undo weight_matrix's reshape and "
                                   "transpose for dweight"),
                       ("dx", "a layout mistake, as the handout predicts: dcols = dout_mat · Wmatᵀ needs dout_mat "
                              "with OC last (dout.transpose(0, 2, 3, 1)) before the reshape, and col2im of each "
                              "group's columns"),
                       ("dbias", "dbias[oc] sums dout over N, OH and OW: dout.sum(axis=(0, 2, 3))"))),
    Exercise("maxpool_backward", "Max-pool backward", 3,
             "only each window's maximum (its offset was saved) receives that window's dout; overlapping "
             "windows add", requires=AUTOGRAD),
    Exercise("batchnorm_backward", "Batch-norm backward (training mode)", 4,
             "the batch mean and variance depend on every x of the channel: differentiate through them "
             "too (three terms)", requires=AUTOGRAD, spoils=("tutorials/10_backprop_by_hand.py",),
             mistakes=(("sum of dx over each channel", "the path through the batch mean μ is missing: subtract "
                                                       "mean(dx̂) over (N, H, W)"),
                       ("dx·(x − μ)", "the path through the batch variance σ² is missing or wrong: subtract "
                                      "x̂ · mean(dx̂ · x̂) over (N, H, W)"))),
    Exercise("basicblock_forward", "The BasicBlock forward: skip connection and projection shortcut", 3,
             "out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut), the shortcut being x, or "
             "downsample(x) when the block has one",
             requires=("relu_backward", "add_backward", "im2col", "col2im", "conv_backward", "conv1x1_backward",
                       "batchnorm_backward") + AUTOGRAD, gives_away=("bottleneck_forward",)),
    Exercise("conv1x1_backward", "The 1×1 convolution's backward", 2,
             "out_mat = x_mat · Wᵀ (pixels as rows), so dW = dout_matᵀ · x_mat and dx_mat = dout_mat · W, put "
             "back at the pixels the stride kept (the others get 0); dbias sums dout", requires=AUTOGRAD,
             gives_away=("conv_backward",),
             mistakes=(("dx", "dx_mat = dout_mat · W belongs to the kept pixels only: scatter it into zeros at "
                              "[:, ::sh, ::sw] (channels last), then move C back to axis 1"),
                       ("dweight", "dout arrives as (N, OC, OH, OW): move OC last (transpose(0, 2, 3, 1)) "
                                   "before reshaping it to (N·OH·OW, OC), so its rows match x_mat's pixels"))),
    Exercise("avgpool_backward", "Average-pool backward (windowed and adaptive)", 2,
             "every pixel of a window received 1/divisor of it, so each window adds dout/divisor to all of its "
             "pixels (+=: windows overlap); adaptive pooling: the same over its cells", requires=AUTOGRAD,
             mistakes=(("sum of dx", "each window's dout must be spread over its pixels exactly once in total: "
                                     "add dout/divisor (not dout) to every pixel of the window, with +="),)),
    Exercise("linear_backward", "Linear layer backward", 2,
             "y = x·Wᵀ + b, so dx = dout·W, dW = doutᵀ·x (flatten leading axes first) and db = Σ dout over "
             "every row", requires=AUTOGRAD,
             mistakes=(("dweight", "dW = doutᵀ · x has W's shape (OUT, IN): flatten x and dout to 2-D rows "
                                   "first when the input has more than one leading axis"),)),
    Exercise("cross_entropy_backward", "Cross-entropy backward", 2,
             "d loss_n / d z_n = softmax(z_n) − onehot(t_n) (smoothing: minus ε/K more, and (1 − ε)·onehot), "
             "times dout, divided by N for the mean", requires=AUTOGRAD,
             mistakes=(("dlogits", "d loss/d z = (softmax − target distribution) · dout, with the mean's 1/N; "
                                   "with label smoothing the target is (1 − ε)·onehot + ε/K"),)),
    Exercise("bottleneck_forward", "The Bottleneck forward: 1×1 reduce, 3×3, 1×1 expand, and the skip", 2,
             "out = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x))))))) + shortcut), the shortcut being x or "
             "downsample(x)",
             requires=("relu_backward", "add_backward", "im2col", "col2im", "conv_backward", "conv1x1_backward",
                       "batchnorm_backward") + AUTOGRAD, gives_away=("basicblock_forward",)),
    Exercise("autograd_backward", "The autograd core: reverse topological order and gradient accumulation", 3,
             "visit each function after every function that uses its output (reverse topological order, "
             "no recursion), hand each its output's gradient, and add (+) the gradients of a tensor used twice",
             mistakes=(("used twice", "a tensor used by two functions must receive the sum of both gradients: "
                                      "add to the pending gradient, do not overwrite it"),
                       ("order", "a function may only run once every function using its output has run: order "
                                 "them by a depth-first post-order, reversed"))),
]}


def total_points(ids):
    return sum(EXERCISES[i].points for i in ids)
