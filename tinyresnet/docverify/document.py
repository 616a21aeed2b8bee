"""The inputs of the ResNet document's worked examples, as the document prints them.

Inputs (images, filters, intermediate values the document sets by hand) are arrays; the
document's printed results for whole grids are kept beside them as text, exactly as printed.
Everything the document computes is recomputed by the engine in the claim modules. Arrays are
(C, H, W): channel first, as the engine stores a feature map without its batch axis.
"""

import numpy as np


def grid(*rows):
    """A 2-D array from rows written as the document prints them, e.g. grid("1 2 3", "4 5 6")."""
    return np.array([[float(v) for v in row.split()] for row in rows])


# §3.5 "Complete Numerical Example": a 3×3 RGB image and two 1×1 filters
RGB_IMAGE = np.stack([
    grid("1 2 3", "4 5 6", "7 8 9"),        # channel 0 (red)
    grid("4 5 6", "7 8 9", "1 2 3"),        # channel 1 (green)
    grid("7 8 9", "1 2 3", "4 5 6"),        # channel 2 (blue)
])
RGB_FILTERS = np.array([[0.5, 0.3, 0.2],    # filter 1 -> output channel 0
                        [0.1, 0.6, 0.3]])   # filter 2 -> output channel 1
RGB_OUTPUT = [                              # the document's "Complete Output (3×3×2)"
    ["3.1 4.1 5.1", "6.1 7.1 8.1", "9.1 10.1 11.1"],
    ["4.6 5.6 6.6", "7.6 8.6 9.6", "1.6 2.6 3.6"],
]
RGB_TERMS = {                               # the products the document writes out
    ((0, 0), 0): "0.5 + 1.2 + 1.4", ((0, 0), 1): "0.1 + 2.4 + 2.1",
    ((0, 1), 0): "1.0 + 1.5 + 1.6", ((0, 1), 1): "0.2 + 3.0 + 2.4",
}

# §3.5 "Complete Example: Channel Reduction": a 4×4×4 input reduced to 2 channels
REDUCTION_INPUT = np.stack([
    grid("1 2 3 4", "2 3 4 5", "3 4 5 6", "4 5 6 7"),
    grid("5 6 7 8", "6 7 8 9", "7 8 9 0", "8 9 0 1"),
    grid("2 3 4 5", "3 4 5 6", "4 5 6 7", "5 6 7 8"),
    grid("6 7 8 9", "7 8 9 0", "8 9 0 1", "9 0 1 2"),
])
REDUCTION_FILTERS = np.array([[0.25, 0.25, 0.25, 0.25],
                              [0.4, 0.3, 0.2, 0.1]])
REDUCTION_OUTPUT = {(0, 0): ("3.5", "2.5"), (0, 1): ("4.5", "3.3")}

# §3.5 "Complete Bottleneck Calculation": an 8-channel input, reduced to 2 channels and expanded
BOTTLENECK_CHANNEL0 = grid("1 2 3 4", "5 6 7 8", "9 10 11 12", "13 14 15 16")
BOTTLENECK_PIXEL = np.array([1.0, 5, 2, 6, 3, 7, 4, 8])      # all 8 channels at (0, 0)
BOTTLENECK_REDUCE = np.array([[0.125] * 8,
                              [0.5, 0.2, 0.1, 0.1, 0.05, 0.03, 0.01, 0.01]])
BOTTLENECK_PROCESSED = np.array([4.2, 3.1])                   # "≈ [4.2, 3.1]", set by hand after the 3×3
BOTTLENECK_EXPAND = {0: [0.6, 0.4], 1: [0.3, 0.7], 7: [0.5, 0.5]}   # filters 1, 2 and 8 (the others are "...")

# §4 "Complete Numerical Example": a 4×4×2 input; z₂ on the top-left 2×2 crop, set by hand
SECTION4_INPUT = np.stack([
    grid("1 2 3 4", "2 3 4 5", "3 4 5 6", "4 5 6 7"),
    grid("5 6 7 8", "6 7 8 9", "7 8 9 0", "8 9 0 1"),
])
SECTION4_Z2 = np.stack([grid("-0.3 0.5", "0.2 -0.1"), grid("0.2 -0.4", "-0.3 0.1")])
SECTION4_Y = ["[[0.7, 2.5], [2.2, 2.9]]", "[[5.2, 5.6], [5.7, 7.1]]"]
