"""§4 the skip addition, §6 projection shortcuts, §8 the gradient through a skip connection.

The skip addition runs the engine's add on the document's z₂ and the top-left 2×2 crop of its
input x. The gradient claims run the engine's backward pass on y = F(x) + x and on F(x) alone.
"""

import numpy as np

from .. import functional as F
from ..autograd import Tensor
from ..models import BasicBlock, make_shortcut
from ..nn import Conv2d
from . import document as doc
from .claim import check, fmt


def skip_claims():
    x = Tensor(doc.SECTION4_INPUT[None])                              # (1, 2, 4, 4)
    rng = np.random.default_rng(0)
    conv1 = F.conv2d(x, Tensor(rng.normal(size=(2, 2, 3, 3))), stride=1, padding=1)
    claims = [check("s4-conv1-shape", "4", "Conv1 3×3, 2→2, padding 1 on the 4×4×2 input", "4×4×2",
                    conv1.shape[1:], note="random weights: the document gives none, and the shape does not "
                                          "depend on them")]
    crop = x[:, :, :2, :2]                                            # the document's 2×2 view of x
    y = (Tensor(doc.SECTION4_Z2[None]) + crop).numpy()[0]
    for k, printed in enumerate(doc.SECTION4_Y):
        terms = ", ".join(f"{fmt(z)}+{fmt(v)}" for z, v in zip(doc.SECTION4_Z2[k].ravel(), crop.numpy()[0, k].ravel()))
        claims.append(check(f"s4-skip-ch{k}", "4", f"y = z₂ + x on the 2×2 crop, channel {k}", printed, y[k],
                            note=f"z₂ + x = {terms}"))
    return claims


def projection_claims():
    x = Tensor(np.ones((1, 128, 28, 28), dtype=np.float32))
    projection = Conv2d(128, 256, kernel_size=1, stride=2, bias=False)
    branch = Tensor(np.ones((1, 256, 14, 14), dtype=np.float32))
    try:
        (x + branch).numpy()
        added = "no error"
    except ValueError:
        added = "ERROR"
    block = BasicBlock(128, 256, stride=2, downsample=make_shortcut("B", 128, 256, stride=2)).eval()
    return [
        check("s6-mismatch-add", "6", "28×28×128 + 14×14×256 without a projection", "ERROR", added,
              engine="ValueError" if added == "ERROR" else added,
              note="the engine's add refuses shapes (1, 128, 28, 28) and (1, 256, 14, 14)"),
        check("s6-projection-shape", "6", "projection: 1×1 conv, 256 filters, stride 2 on 28×28×128",
              "14×14×256", projection(x).shape[1:]),
        check("s6-block-shape", "6", "strided block 128 → 256 with the projection: output", "14×14×256",
              block(x).shape[1:], note="BasicBlock(128, 256, stride=2) with a type-B shortcut adds "
                                       "14×14×256 + 14×14×256"),
    ]


def gradient_claims():
    """∂y/∂x for y = F(x) + x and for F(x) alone, by the engine's backward pass.

    F(x) = w₂·relu(w₁·x) with 1×1 convolutions of one weight each, on channel 0 of the §4 input
    (all positive, so ∂F/∂x = w₁·w₂ everywhere). The loss is Σ c·y with c the §4 channel 1, so
    ∂L/∂y = c.
    """
    x0 = doc.SECTION4_INPUT[0][None, None]                             # (1, 1, 4, 4)
    upstream = doc.SECTION4_INPUT[1][None, None]                       # ∂L/∂y

    def input_grad(w1, w2, skip, dout):
        x = Tensor(x0.copy(), requires_grad=True)
        f = F.conv2d(F.relu(F.conv2d(x, Tensor(np.full((1, 1, 1, 1), w1)))), Tensor(np.full((1, 1, 1, 1), w2)))
        y = f + x if skip else f
        y.backward(dout)
        return x.grad[0, 0]

    ones = np.ones_like(x0)
    plain, residual = input_grad(0.5, 0.2, False, ones), input_grad(0.5, 0.2, True, ones)
    survived = input_grad(0.5, 0.0, True, upstream)
    return [
        check("s8-grad-plus-one", "8", "∂y/∂x = ∂F(x)/∂x + 1 for y = F(x) + x", "∂F(x)/∂x + 1",
              residual, expect=plain + 1, tolerance=1e-12,
              engine=f"{_uniform(residual)} (F alone: {_uniform(plain)})",
              note="the engine's backward pass through y = F(x) + x and through F(x) alone, "
                   "F(x) = 0.2·relu(0.5·x): the skip adds exactly 1"),
        check("s8-grad-survives", "8", "∂F/∂x = 0: ∂L/∂x still equals ∂L/∂y", "∂L/∂y", survived,
              expect=upstream[0, 0], tolerance=1e-12,
              engine="= ∂L/∂y" if np.array_equal(survived, upstream[0, 0]) else fmt(survived),
              note="F(x) = 0·relu(0.5·x), so ∂F/∂x = 0; the skip carries ∂L/∂y to x unchanged"),
    ]


def _uniform(a):
    """"1.1 everywhere" for a constant array, else the array."""
    return f"{fmt(a.flat[0])} everywhere" if np.all(a == a.flat[0]) else fmt(a)


def claims():
    return skip_claims() + projection_claims() + gradient_claims()
