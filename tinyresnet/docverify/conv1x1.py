"""§3.5 worked examples of the 1×1 convolution, recomputed by the engine's conv2d.

Each output value comes from ``tinyresnet.functional.conv2d`` with the document's filters as a
(OC, C, 1, 1) kernel. The products a value is made of come from the same op run depthwise
(``groups=C``, one filter weight per channel), so a row's explanation shows the engine's own
products, not a retyped sum.
"""

import numpy as np

from .. import functional as F
from ..autograd import Tensor
from ..nn import Conv2d
from . import document as doc
from .claim import check, fmt

S = "3.5"


def pointwise(image, filters):
    """The 1×1 convolution of a (C, H, W) image with filters (OC, C): the engine's conv2d -> (OC, H, W)."""
    x = Tensor(image[None])                                         # (1, C, H, W)
    w = Tensor(np.asarray(filters, dtype=np.float64)[:, :, None, None])   # (OC, C, 1, 1)
    return F.conv2d(x, w).numpy()[0]


def products(image, weights):
    """Each channel times its filter weight, by a depthwise 1×1 conv (groups=C) -> (C, H, W)."""
    c = image.shape[0]
    w = Tensor(np.asarray(weights, dtype=np.float64).reshape(c, 1, 1, 1))   # (C, 1, 1, 1)
    return F.conv2d(Tensor(image[None]), w, groups=c).numpy()[0]


def dot_text(weights, inputs, terms, total):
    """"0.5×4 + 0.3×7 + 0.2×1 = 2 + 2.1 + 0.2 = 4.3" from the filter, the inputs and the engine's products."""
    factors = " + ".join(f"{fmt(w)}×{fmt(x)}" for w, x in zip(weights, inputs))
    return f"{factors} = {' + '.join(fmt(t) for t in terms)} = {fmt(total)}"


def readouts(prefix, what, image, printed):
    """The input values across all channels at a pixel, as the document reads them off its grids."""
    x = Tensor(image[None])
    return [check(f"{prefix}-in-{i}{j}", S, f"{what}: all channels at ({i},{j})", text, x[0, :, i, j].numpy())
            for (i, j), text in printed.items()]


def as_list(sum_text):
    """"0.5 + 1.2 + 1.4" as "[0.5, 1.2, 1.4]", to compare the terms one by one."""
    return "[" + sum_text.replace(" +", ",") + "]"


def rgb_claims():
    image, filters = doc.RGB_IMAGE, doc.RGB_FILTERS
    out = pointwise(image, filters)
    claims = [check("rgb-shape", S, "RGB 1×1 conv: output shape", "3×3×2", out.shape,
                    note="3 channels → 2 channels; the spatial size is kept")]
    claims += readouts("rgb", "RGB image", image, {(0, 0): "[1, 4, 7]", (0, 1): "[2, 5, 8]"})
    for k, rows in enumerate(doc.RGB_OUTPUT):
        terms = products(image, filters[k])
        for i, row in enumerate(rows):
            for j, printed in enumerate(row.split()):
                claims.append(check(
                    f"rgb-out-{i}{j}-ch{k}", S, f"RGB 1×1 conv: channel {k} at ({i},{j})", printed, out[k, i, j],
                    note=dot_text(filters[k], image[:, i, j], terms[:, i, j], out[k, i, j])))
    for ((i, j), k), printed in doc.RGB_TERMS.items():
        terms = products(image, filters[k])[:, i, j]
        claims.append(check(
            f"rgb-terms-{i}{j}-ch{k}", S, f"RGB 1×1 conv: products at ({i},{j}), filter {k + 1}", printed, terms,
            expect=as_list(printed),
            note=dot_text(filters[k], image[:, i, j], terms, terms.sum())))
    return claims


def fully_connected_claim():
    """A 1×1 conv is a fully connected layer applied to every pixel: conv2d against linear."""
    rng = np.random.default_rng(0)
    image, weight, bias = rng.normal(size=(3, 5, 5)), rng.normal(size=(2, 3)), rng.normal(size=2)
    conv = F.conv2d(Tensor(image[None]), Tensor(weight[:, :, None, None]), Tensor(bias)).numpy()[0]
    pixels = Tensor(image.reshape(3, 25).T)                          # (H*W, C): one row per pixel
    fc = F.linear(pixels, Tensor(weight), Tensor(bias)).numpy().T.reshape(2, 5, 5)
    gap = float(np.abs(conv - fc).max())
    return check("fc-per-pixel", S, "1×1 conv = FC layer applied per pixel", "W × input + bias", gap,
                 expect="0", tolerance=1e-12, engine=f"max |conv − linear| = {gap:.1g}",
                 note="conv2d with a (2, 3, 1, 1) kernel and linear with a (2, 3) weight on each of the "
                      "25 pixels of a random 3×5×5 input give the same numbers")


def reduction_claims():
    image, filters = doc.REDUCTION_INPUT, doc.REDUCTION_FILTERS
    out = pointwise(image, filters)
    claims = [check("reduce4-shape", S, "4→2 channel 1×1 conv: output shape", "4×4×2", out.shape)]
    claims += readouts("reduce4", "4×4×4 input", image,
                       {(0, 0): "[1, 5, 2, 6]", (0, 1): "[2, 6, 3, 7]", (1, 1): "[3, 7, 4, 8]"})
    for (i, j), printed in doc.REDUCTION_OUTPUT.items():
        for k in range(2):
            terms = products(image, filters[k])[:, i, j]
            claims.append(check(
                f"reduce4-out-{i}{j}-ch{k}", S, f"4→2 channel 1×1 conv: channel {k} at ({i},{j})", printed[k],
                out[k, i, j], note=dot_text(filters[k], image[:, i, j], terms, out[k, i, j])))
    return claims


def bottleneck_reduce_claims():
    """The 8-channel bottleneck walk-through, stage 1 at pixel (0, 0): reduce 8 → 2 channels."""
    pixel = doc.BOTTLENECK_PIXEL[:, None, None]                      # (8, 1, 1): the one pixel the document gives
    total = pointwise(pixel, np.ones((1, 8)))[0, 0, 0]
    reduced = pointwise(pixel, doc.BOTTLENECK_REDUCE)[:, 0, 0]
    weighted = products(pixel, doc.BOTTLENECK_REDUCE[1])[:, 0, 0]
    reduce_layer = Conv2d(8, 2, kernel_size=1, bias=False)
    claims = [
        check("bneck-reduce-sum", S, "8-ch bottleneck: sum of the 8 channels at (0,0)",
              "1+5+2+6+3+7+4+8 = 36", total, expect="36", note="a 1×1 conv with an all-ones filter"),
        check("bneck-reduce-00-ch0", S, "8-ch bottleneck reduce: channel 0 at (0,0)", "0.125×36 = 4.5",
              reduced[0], expect="4.5"),
        check("bneck-reduce-00-ch1", S, "8-ch bottleneck reduce: channel 1 at (0,0)",
              "0.5×1 + 0.2×5 + 0.1×2 + ... = 2.95", reduced[1], expect="2.95",
              note=dot_text(doc.BOTTLENECK_REDUCE[1], doc.BOTTLENECK_PIXEL, weighted, reduced[1])),
        check("bneck-reduce-params", S, "8-ch bottleneck reduce: weights of Conv2d(8, 2, 1)", "8×2 = 16",
              reduce_layer.num_parameters(), expect="16"),
        check("bneck-reduce-ratio", S, "8-ch bottleneck reduce: compression 8 → 2 channels", "4×",
              reduce_layer.in_channels / reduce_layer.out_channels,
              engine=f"{reduce_layer.in_channels} / {reduce_layer.out_channels} = "
                     f"{fmt(reduce_layer.in_channels / reduce_layer.out_channels)}×"),
    ]
    compressed = Tensor(np.zeros((1, 2, 4, 4), dtype=np.float32))          # the 4×4×2 map after stage 1
    process_layer = Conv2d(2, 2, kernel_size=3, padding=1, bias=False)
    claims.append(check("bneck-process-shape", S, "8-ch bottleneck: 3×3 conv, padding 1, on 4×4×2", "4×4×2",
                        process_layer(compressed).shape[1:]))
    return claims


def bottleneck_expand_claims():
    """Stages 3 and 4 at pixel (0, 0): expand the document's [4.2, 3.1] to 8 channels, add the skip."""
    claims = []
    processed = doc.BOTTLENECK_PROCESSED[:, None, None]             # (2, 1, 1): set by hand in the document
    channels = sorted(doc.BOTTLENECK_EXPAND)
    filters = np.array([doc.BOTTLENECK_EXPAND[k] for k in channels])
    expanded = pointwise(processed, filters)[:, 0, 0]
    printed = {0: ("0.6×4.2 + 0.4×3.1 = 2.52 + 1.24 = 3.76", "3.76", "2.52 + 1.24"),
               1: ("0.3×4.2 + 0.7×3.1 = 1.26 + 2.17 = 3.43", "3.43", "1.26 + 2.17"),
               7: ("0.5×4.2 + 0.5×3.1 = 2.10 + 1.55 = 3.65", "3.65", "2.10 + 1.55")}
    for row, k in enumerate(channels):
        text, value, terms_text = printed[k]
        terms = products(processed, filters[row])[:, 0, 0]
        explanation = dot_text(filters[row], doc.BOTTLENECK_PROCESSED, terms, expanded[row])
        claims.append(check(f"bneck-expand-00-ch{k}", S, f"8-ch bottleneck expand: filter {k + 1} at (0,0)",
                            text, expanded[row], expect=value, note=explanation))
        claims.append(check(f"bneck-expand-terms-ch{k}", S, f"8-ch bottleneck expand: products of filter {k + 1}",
                            terms_text, terms, expect=as_list(terms_text), note=explanation))
    expand_layer = Conv2d(2, 8, kernel_size=1, bias=False)
    last = expand_layer(Tensor(processed[None].astype(np.float32))).shape[1] - 1
    claims += [
        check("bneck-expand-shape", S, "8-ch bottleneck: 1×1 expand of 4×4×2", "4×4×8",
              expand_layer(Tensor(np.zeros((1, 2, 4, 4), dtype=np.float32))).shape[1:]),
        check("bneck-expand-last-channel", S, "8-ch bottleneck expand: name of the 8th output channel",
              "Output ch8", last, expect="8", engine=f"ch{last}",
              note="the outputs are numbered from ch0 (the document's own 'Output ch0', 'Output ch1'), so "
                   f"the 8 channels of Conv2d(2, 8, 1) are ch0 … ch{last}; filter 8 gives ch{last}, and "
                   "'ch8' would be a ninth channel"),
        check("bneck-expand-params", S, "8-ch bottleneck expand: weights of Conv2d(2, 8, 1)", "2×8 = 16",
              expand_layer.num_parameters(), expect="16"),
    ]
    f_x = Tensor(np.array(expanded[0]))                             # F(x) at channel 0, (0, 0)
    x = Tensor(np.array(doc.BOTTLENECK_CHANNEL0[0, 0]))             # x at channel 0, (0, 0)
    y = (f_x + x).item()
    claims.append(check("bneck-skip-000", S, "8-ch bottleneck: y = F(x) + x at channel 0, (0,0)",
                        "3.76 + 1 = 4.76", y, expect="4.76",
                        note=f"F(x) = {fmt(expanded[0])} (the expand step) plus x = {fmt(x.item())} "
                             f"(channel 0 of the input at (0,0))"))
    return claims


def claims():
    return (rgb_claims() + [fully_connected_claim()] + reduction_claims() + bottleneck_reduce_claims()
            + bottleneck_expand_claims())
