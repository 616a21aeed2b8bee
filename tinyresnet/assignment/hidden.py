"""The hidden cases: configurations the handout does not list, run only by the grader.

They reuse the builders of ``checks.py`` with other strides, paddings, groups, kernel shapes,
H ≠ W, odd and single-sample batches, and broadcasting in other directions. A released copy
leaves this file out. Keep every case small (a few hundred elements per gradient check): the
grader runs them all within each exercise's time limit.
"""

from .checks import Case

HIDDEN_CASES = [
    Case("relu_backward", "x (3, 5, 7)", "relu_case", {"shape": [3, 5, 7]}, hidden=True),
    Case("relu_backward", "x (11,)", "relu_case", {"shape": [11]}, hidden=True),
    Case("relu_backward", "x (1, 1, 3, 2)", "relu_case", {"shape": [1, 1, 3, 2]}, hidden=True),

    Case("add_backward", "both broadcast (3, 1, 5) + (4, 1)", "add_case",
         {"shape_a": [3, 1, 5], "shape_b": [4, 1]}, hidden=True),
    Case("add_backward", "fewer dims (2, 3, 4, 5) + (5,)", "add_case",
         {"shape_a": [2, 3, 4, 5], "shape_b": [5]}, hidden=True),
    Case("add_backward", "left broadcast (1, 3, 1, 1) + (3, 3, 2, 2)", "add_case",
         {"shape_a": [1, 3, 1, 1], "shape_b": [3, 3, 2, 2]}, hidden=True),

    Case("im2col", "x (3, 2, 5, 7), kernel 3, stride 2, padding 1", "im2col_case",
         {"N": 3, "C": 2, "H": 5, "W": 7, "kernel": 3, "stride": 2, "padding": 1, "gradcheck": True}, hidden=True),
    Case("im2col", "x (1, 3, 4, 6), kernel (3, 2), stride (2, 1), padding (1, 0)", "im2col_case",
         {"N": 1, "C": 3, "H": 4, "W": 6, "kernel": [3, 2], "stride": [2, 1], "padding": [1, 0],
          "gradcheck": True}, hidden=True),
    Case("im2col", "x (2, 4, 4, 4), groups 2, kernel 1", "im2col_case",
         {"N": 2, "C": 4, "H": 4, "W": 4, "kernel": 1, "stride": 1, "padding": 0, "groups": 2, "OC": 6},
         hidden=True),

    Case("col2im", "x (3, 2, 5, 7), kernel 3, stride 2, padding 1", "col2im_case",
         {"N": 3, "C": 2, "H": 5, "W": 7, "kernel": 3, "stride": 2, "padding": 1, "gradcheck": True}, hidden=True),
    Case("col2im", "x (1, 2, 6, 4), kernel (2, 3), stride (1, 2), padding (0, 1)", "col2im_case",
         {"N": 1, "C": 2, "H": 6, "W": 4, "kernel": [2, 3], "stride": [1, 2], "padding": [0, 1],
          "gradcheck": True}, hidden=True),
    Case("col2im", "x (2, 1, 4, 4), kernel 3, stride 3, padding 2", "col2im_case",
         {"N": 2, "C": 1, "H": 4, "W": 4, "kernel": 3, "stride": 3, "padding": 2}, hidden=True),

    Case("conv_backward", "x (3, 4, 4, 5), 6 filters, stride 2, padding 1, groups 2", "conv_case",
         {"N": 3, "C": 4, "H": 4, "W": 5, "OC": 6, "kernel": 3, "stride": 2, "padding": 1, "groups": 2},
         hidden=True),
    Case("conv_backward", "x (1, 2, 4, 7), kernel (2, 3), stride (1, 2), padding (0, 1), no bias", "conv_case",
         {"N": 1, "C": 2, "H": 4, "W": 7, "OC": 3, "kernel": [2, 3], "stride": [1, 2], "padding": [0, 1],
          "bias": False}, hidden=True),
    Case("conv_backward", "x (2, 3, 3, 3), 1x1 kernel through im2col", "conv_case",
         {"N": 2, "C": 3, "H": 3, "W": 3, "OC": 2, "kernel": 1, "stride": 1, "padding": 0}, hidden=True),

    Case("maxpool_backward", "x (3, 2, 5, 6), kernel 3, stride 2, padding 1 (overlapping)", "maxpool_case",
         {"N": 3, "C": 2, "H": 5, "W": 6, "kernel": 3, "stride": 2, "padding": 1}, hidden=True),
    Case("maxpool_backward", "x (1, 3, 5, 5), kernel 3, stride 1", "maxpool_case",
         {"N": 1, "C": 3, "H": 5, "W": 5, "kernel": 3, "stride": 1}, hidden=True),
    Case("maxpool_backward", "x (2, 1, 4, 7), kernel (2, 3), stride (2, 3)", "maxpool_case",
         {"N": 2, "C": 1, "H": 4, "W": 7, "kernel": [2, 3], "stride": [2, 3]}, hidden=True),

    Case("batchnorm_backward", "x (3, 2, 3, 5), no gamma, beta", "batchnorm_case",
         {"N": 3, "C": 2, "H": 3, "W": 5, "affine": False}, hidden=True),
    Case("batchnorm_backward", "x (1, 4, 3, 3), a single sample", "batchnorm_case",
         {"N": 1, "C": 4, "H": 3, "W": 3}, hidden=True),
    Case("batchnorm_backward", "x (5, 2, 1, 2), offset means, small spread", "batchnorm_case",
         {"N": 5, "C": 2, "H": 1, "W": 2, "shift": 3.0, "spread": 0.5}, hidden=True),

    Case("basicblock_forward", "identity shortcut, x (3, 2, 3, 4)", "basicblock_case",
         {"N": 3, "inplanes": 2, "planes": 2, "H": 3, "W": 4}, hidden=True),
    Case("basicblock_forward", "projection 3 -> 4 channels, stride 2, x (1, 3, 5, 3)", "basicblock_case",
         {"N": 1, "inplanes": 3, "planes": 4, "H": 5, "W": 3, "stride": 2, "projection": True}, hidden=True),
    Case("basicblock_forward", "projection 2 -> 3 channels, stride 1, x (2, 2, 4, 3)", "basicblock_case",
         {"N": 2, "inplanes": 2, "planes": 3, "H": 4, "W": 3, "projection": True, "gradcheck": False}, hidden=True),
    Case("basicblock_forward", "option-A shortcut 2 -> 4 channels, stride 2, x (2, 2, 5, 4)", "basicblock_case",
         {"N": 2, "inplanes": 2, "planes": 4, "H": 5, "W": 4, "stride": 2, "projection": "A", "gradcheck": False},
         hidden=True),

    Case("conv1x1_backward", "x (3, 2, 5, 3), 3 filters, stride (2, 1), bias", "conv1x1_case",
         {"N": 3, "C": 2, "H": 5, "W": 3, "OC": 3, "stride": [2, 1]}, hidden=True),
    Case("conv1x1_backward", "x (2, 3, 4, 6), 4 filters, stride 3, no bias", "conv1x1_case",
         {"N": 2, "C": 3, "H": 4, "W": 6, "OC": 4, "stride": 3, "bias": False}, hidden=True),

    Case("avgpool_backward", "x (2, 2, 5, 6), kernel 3, stride 2, padding 1", "avgpool_case",
         {"N": 2, "C": 2, "H": 5, "W": 6, "kernel": 3, "stride": 2, "padding": 1}, hidden=True),
    Case("avgpool_backward", "x (1, 3, 4, 7), kernel (2, 3), stride (2, 1)", "avgpool_case",
         {"N": 1, "C": 3, "H": 4, "W": 7, "kernel": [2, 3], "stride": [2, 1]}, hidden=True),
    Case("avgpool_backward", "adaptive x (2, 2, 5, 7) -> (2, 3)", "avgpool_case",
         {"N": 2, "C": 2, "H": 5, "W": 7, "output_size": [2, 3]}, hidden=True),
    Case("avgpool_backward", "global average pooling, x (3, 2, 2, 5) -> (1, 1)", "avgpool_case",
         {"N": 3, "C": 2, "H": 2, "W": 5, "output_size": [1, 1]}, hidden=True),

    Case("linear_backward", "x (2, 3, 4) -> 2 features, bias", "linear_case",
         {"shape": [2, 3, 4], "features": 2}, hidden=True),
    Case("linear_backward", "x (1, 6) -> 3 features, no bias", "linear_case",
         {"shape": [1, 6], "features": 3, "bias": False}, hidden=True),

    Case("cross_entropy_backward", "logits (5, 4), sum", "cross_entropy_case",
         {"N": 5, "K": 4, "reduction": "sum"}, hidden=True),
    Case("cross_entropy_backward", "logits (3, 6), none", "cross_entropy_case",
         {"N": 3, "K": 6, "reduction": "none"}, hidden=True),
    Case("cross_entropy_backward", "logits (4, 5), mean, label smoothing 0.1", "cross_entropy_case",
         {"N": 4, "K": 5, "smoothing": 0.1}, hidden=True),

    Case("bottleneck_forward", "projection 3 -> 4 channels, stride 1, x (2, 3, 3, 4)", "bottleneck_case",
         {"N": 2, "inplanes": 3, "planes": 1, "H": 3, "W": 4, "projection": True}, hidden=True),
    Case("bottleneck_forward", "zeroed residual, identity shortcut, x (1, 4, 3, 3)", "bottleneck_case",
         {"N": 1, "inplanes": 4, "planes": 1, "H": 3, "W": 3, "zero_residual": True}, hidden=True),

    Case("autograd_backward", "a chain of 1500 ops, x (2, 2)", "autograd_case",
         {"shape": [2, 2], "depth": 1500}, hidden=True),
    Case("autograd_backward", "tensors used twice, x (1,)", "autograd_case", {"shape": [1]}, hidden=True),
]
