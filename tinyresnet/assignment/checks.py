"""The checks of each exercise, shared by `tinyresnet assignment check`, the students' tests and the grader.

A case builds a small problem with the engine under test and measures it. The engine is passed in
as ``tr`` (the ``tinyresnet`` module): in the grader's child process it is the student's copy, in
the grader itself the instructor's, so one piece of code measures both and the grader compares.

What a case measures (a ``Measured``):

- gradchecks: finite-difference checks (``tinyresnet.gradcheck``, float64) of the engine's backward;
- values: forward outputs and analytic gradients; the grader compares them with the values the
  instructor's copy computes for the same inputs (a student's own `check` has no such copy, so it
  skips them);
- expected: numbers that hold for any correct answer: the ResNet document's worked examples, and
  identities (im2col and col2im are adjoint; batch norm's dx sums to 0 over each channel; ...).

The visible cases are listed here (and in the handout); the grader adds hidden ones that use the
same builders with other configurations. This module imports nothing from tinyresnet at import
time: the grader's child process loads it by path beside a student's copy.
"""

import importlib
import json
import traceback
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

GRADCHECK_TOLERANCE = 1e-6     # fourth-order central differences in float64 reach ~1e-10 here
VALUE_TOLERANCE = 1e-7         # against the instructor's float64 values (summation order differs)
EXPECT_TOLERANCE = 1e-9        # the document's numbers and exact identities, in float64


@dataclass
class Case:
    """One configuration of one exercise's checks."""

    exercise: str
    name: str
    builder: str                          # a function of this module: builder(tr, rng, **params)
    params: dict = field(default_factory=dict)
    hidden: bool = False

    @property
    def size(self):
        """How many input elements the case builds, from its parameters (0 for the document's worked
        examples, which are the smallest and say the most): reports lead with the smallest failing case."""
        p = self.params
        shapes = [p[k] for k in ("shape", "shape_a", "shape_b") if k in p]
        dims = [p.get("N"), p.get("C", p.get("inplanes", p.get("features"))), p.get("H"), p.get("W")]
        if isinstance(p.get("K"), int):
            shapes.append([p["N"], p["K"]])
        elif all(isinstance(d, int) for d in dims[:2]):
            shapes.append([d for d in dims if isinstance(d, int)])
        return sum(int(np.prod(s)) for s in shapes)

    @property
    def seed(self):
        return zlib.crc32(f"{self.exercise}/{self.name}".encode())

    def to_json(self):
        return {"exercise": self.exercise, "name": self.name, "builder": self.builder,
                "params": self.params, "hidden": self.hidden}

    @classmethod
    def from_json(cls, d):
        return cls(d["exercise"], d["name"], d["builder"], dict(d["params"]), bool(d["hidden"]))


@dataclass
class Comparison:
    """One measured quantity against what it should be: the worst relative error and where."""

    what: str                   # e.g. "conv2d dweight"
    error: float
    index: tuple
    tolerance: float
    actual: float = float("nan")
    expected: float = float("nan")
    why: str = ""

    @property
    def ok(self):
        return bool(self.error <= self.tolerance)        # False for NaN

    def where(self):
        return f"{self.what}[{', '.join(str(i) for i in self.index)}]" if self.index else self.what

    def describe(self):
        if self.actual != self.actual:          # no element to show: a missing or misshapen array
            return f"{self.where()}: {self.why}"
        text = (f"{self.where()}: relative error {self.error:.2e} (tolerance {self.tolerance:.0e}); "
                f"yours {self.actual:.8g}, expected {self.expected:.8g}")
        return f"{text}. {self.why}" if self.why else text


class Measured:
    """What one case measured with the engine under test (see the module docstring)."""

    def __init__(self, tr):
        self.tr = tr
        self.values = {}
        self.expected = []          # (what, actual, expected, why, scale, tolerance)
        self.gradchecks = []        # (label, fn, inputs)
        self.problems = []          # shape or None mismatches, found while measuring

    def run(self, label, fn, inputs, dout=None):
        """Forward ``fn`` on float64 tensors made from ``inputs`` and backpropagate ``dout``
        (a fixed random array by default); record the output and every input's gradient."""
        tensors = [self.tr.Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in inputs.values()]
        out = fn(*tensors)
        if dout is None:
            dout = np.random.default_rng(7).standard_normal(out.shape)
        out.backward(self.tr.Tensor(np.asarray(dout, dtype=np.float64)))
        self.values[f"{label} out"] = out.numpy()
        grads = {}
        for name, t in zip(inputs, tensors):
            g = None if t.grad is None else np.asarray(_host(t.grad))
            if g is None:
                self.problems.append(f"{label}: no gradient reached input {name} (backward returned None for it)")
            self.values[f"{label} d{name}"] = g
            grads[name] = g
        return out.numpy(), grads, np.asarray(dout)

    def gradcheck(self, label, fn, inputs):
        self.gradchecks.append((label, fn, inputs))

    def expect(self, what, actual, expected, why="", scale=None, tolerance=EXPECT_TOLERANCE):
        self.expected.append((what, actual, expected, why, scale, tolerance))


def _host(a):
    return a.get() if hasattr(a, "get") else a           # a CuPy array comes back to the host


def _module(tr, name):
    return importlib.import_module(f"{tr.__name__}.{name}")


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _out_size(n, k, s, p):
    return (n + 2 * p - k) // s + 1


# ---------------------------------------------------------------------------------- comparisons
def compare(what, actual, expected, tolerance, why="", scale=None):
    """The worst relative error of ``actual`` against ``expected``, as a ``Comparison``.

    |a − e| / max(|a|, |e|, floor), the floor being ``scale`` when given (for quantities that
    should be 0, such as Σ dx), else 1e-3 × max|e| as in tinyresnet.gradcheck.
    """
    if actual is None:
        return Comparison(what, float("inf"), (), tolerance, why="it is None: nothing was computed")
    actual, expected = np.asarray(_host(actual), dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        return Comparison(what, float("inf"), (), tolerance,
                          why=f"it has shape {actual.shape} but should have shape {expected.shape}")
    if actual.size == 0:
        return Comparison(what, 0.0, (), tolerance)
    floor = scale if scale is not None else 1e-3 * float(np.abs(expected).max())
    denom = np.maximum(np.maximum(np.abs(actual), np.abs(expected)), max(float(np.max(floor)), 1e-300))
    err = np.abs(actual - expected) / denom
    err = np.where(np.isnan(err), np.inf, err)
    worst = np.unravel_index(int(np.argmax(err)), err.shape)
    index = tuple(int(i) for i in worst) if actual.ndim else ()
    return Comparison(what, float(err[worst]), index, tolerance, float(actual[worst]), float(expected[worst]), why)


# ---------------------------------------------------------------------------------- builders
def relu_case(tr, rng, shape):
    """ReLU on inputs kept 0.05 away from the kink at 0 (finite differences need that)."""
    F = _module(tr, "functional")
    x = rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.05, 1.0, size=shape)
    m = Measured(tr)
    m.run("relu", F.relu, {"x": x})
    m.gradcheck("relu", F.relu, {"x": x})
    return m


def add_case(tr, rng, shape_a, shape_b):
    """a + b, broadcasting where the shapes differ."""
    a, b = rng.standard_normal(shape_a), rng.standard_normal(shape_b)
    m = Measured(tr)
    m.run("a + b", lambda a, b: a + b, {"a": a, "b": b})
    m.gradcheck("a + b", lambda a, b: a + b, {"a": a, "b": b})
    return m


DOC_Z2 = np.array([[[[-0.3, 0.5], [0.2, -0.1]], [[0.2, -0.4], [-0.3, 0.1]]]])    # the document's z₂
DOC_X = np.array([[[[1.0, 2.0], [2.0, 3.0]], [[5.0, 6.0], [6.0, 7.0]]]])          # its input x
DOC_Y = np.array([[[[0.7, 2.5], [2.2, 2.9]], [[5.2, 5.6], [5.7, 7.1]]]])          # y = z₂ + x


def add_skip_doc_case(tr, rng):
    """The document's skip example y = z₂ + x, and ∂y/∂x = ∂F/∂x + 1 with the F path cut."""
    m = Measured(tr)
    y, grads, _ = m.run("y = z2 + x", lambda z2, x: z2 + x, {"z2": DOC_Z2, "x": DOC_X}, dout=np.ones(DOC_X.shape))
    m.expect("y", y, DOC_Y, "the document's worked skip connection: y = z₂ + x")
    m.expect("dx", grads["x"], np.ones(DOC_X.shape),
             "∂y/∂x = ∂F/∂x + 1 and here F = z₂ is a constant: the skip passes dout to x unchanged")
    m.expect("dz2", grads["z2"], np.ones(DOC_X.shape), "∂y/∂z₂ = 1: the add passes dout to both branches")
    return m


def _direct_conv(x, w, b, stride, padding, groups):
    """The convolution computed window by window (the definition, no im2col), for comparison."""
    N, C, H, W = x.shape
    OC, Cg, KH, KW = w.shape
    (sh, sw), (ph, pw) = stride, padding
    xpad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    OH, OW = _out_size(H, KH, sh, ph), _out_size(W, KW, sw, pw)
    out = np.zeros((N, OC, OH, OW))
    for oc in range(OC):
        g = oc // (OC // groups)
        xg = xpad[:, g * Cg:(g + 1) * Cg]
        for i in range(OH):
            for j in range(OW):
                out[:, oc, i, j] = (xg[:, :, i * sh:i * sh + KH, j * sw:j * sw + KW] * w[oc]).sum(axis=(1, 2, 3))
    return out if b is None else out + b[None, :, None, None]


def im2col_case(tr, rng, N, C, H, W, kernel, stride, padding, groups=1, OC=4, gradcheck=False):
    """im2col's rows, and conv2d by im2col against the window-by-window convolution.

    With ``gradcheck``, also conv2d's gradients (its backward reuses the saved rows).
    """
    conv, F = _module(tr, "ops.conv"), _module(tr, "functional")
    (kh, kw), stride, padding = _pair(kernel), _pair(stride), _pair(padding)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((OC, C // groups, kh, kw))
    b = rng.standard_normal(OC)
    m = Measured(tr)
    Cg = C // groups
    cols = conv.im2col(x[:, :Cg].copy(), kh, kw, stride, padding)
    m.values["im2col rows"] = np.asarray(_host(cols))
    OH, OW = _out_size(H, kh, stride[0], padding[0]), _out_size(W, kw, stride[1], padding[1])
    shape = (N * OH * OW, kh * kw * Cg)
    if tuple(cols.shape) != shape:
        m.problems.append(f"im2col returned shape {tuple(cols.shape)}; it should be (N*OH*OW, KH*KW*C) = {shape} "
                          f"for x {(N, Cg, H, W)}, kernel {(kh, kw)}, stride {stride}, padding {padding}")
        return m

    def fn(x, w, b):
        return F.conv2d_im2col(x, w, b, stride, padding, groups)

    out = fn(tr.Tensor(x), tr.Tensor(w), tr.Tensor(b)).numpy()
    m.values["conv2d out"] = out
    m.expect("conv2d out", out, _direct_conv(x, w, b, stride, padding, groups),
             "conv2d by im2col should equal the convolution computed window by window; a wrong value "
             "means a row holds the wrong pixels or its columns are not in the order the weights use")
    if gradcheck:
        m.gradcheck("conv2d", fn, {"x": x, "weight": w, "bias": b})
    return m


DOC_1X1_X = np.array([[[[1, 2, 3], [4, 5, 6], [7, 8, 9]],
                       [[4, 5, 6], [7, 8, 9], [1, 2, 3]],
                       [[7, 8, 9], [1, 2, 3], [4, 5, 6]]]], dtype=np.float64)       # (1, 3, 3, 3): R, G, B
DOC_1X1_W = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]]).reshape(2, 3, 1, 1)         # filters W₁, W₂


def im2col_doc_case(tr, rng):
    """The document's 1×1 convolution, 3 channels -> 2, through im2col (its first output row)."""
    conv, F = _module(tr, "ops.conv"), _module(tr, "functional")
    m = Measured(tr)
    cols = conv.im2col(DOC_1X1_X.copy(), 1, 1, (1, 1), (0, 0))
    m.values["im2col rows"] = np.asarray(_host(cols))
    if tuple(cols.shape) != (9, 3):
        m.problems.append(f"im2col of a (1, 3, 3, 3) input with a 1×1 kernel returned shape {tuple(cols.shape)}; "
                          f"it should be (9, 3): one row per pixel, one column per channel")
        return m
    m.expect("im2col rows 0-1", cols[:2], [[1, 4, 7], [2, 5, 8]],
             "with a 1×1 kernel a row is one pixel's channels: the document's pixel (0,0) is (1, 4, 7)")
    out = F.conv2d_im2col(tr.Tensor(DOC_1X1_X), tr.Tensor(DOC_1X1_W)).numpy()
    m.values["conv2d out"] = out
    m.expect("conv2d out[0, :, 0, :]", out[0, :, 0, :], [[3.1, 4.1, 5.1], [4.6, 5.6, 6.6]],
             "the document's worked 1×1 example: 0.5×1 + 0.3×4 + 0.2×7 = 3.1 and 0.1×1 + 0.6×4 + 0.3×7 = 4.6 "
             "at pixel (0,0), then 4.1, 5.6 at (0,1)")
    return m


def _coverage(n, k, s, p):
    """How many windows cover each of the n input positions along one axis."""
    counts = np.zeros(n)
    for o in range(_out_size(n, k, s, p)):
        lo, hi = max(o * s - p, 0), min(o * s - p + k, n)
        counts[lo:hi] += 1
    return counts


def col2im_case(tr, rng, N, C, H, W, kernel, stride, padding, gradcheck=False):
    """col2im against im2col (adjointness), the count of windows over each pixel, and (with
    ``gradcheck``) conv2d's input gradient, which col2im computes."""
    conv, F = _module(tr, "ops.conv"), _module(tr, "functional")
    (kh, kw), stride, padding = _pair(kernel), _pair(stride), _pair(padding)
    OH, OW = _out_size(H, kh, stride[0], padding[0]), _out_size(W, kw, stride[1], padding[1])
    x = rng.standard_normal((N, C, H, W))
    c = rng.standard_normal((N * OH * OW, kh * kw * C))
    m = Measured(tr)
    dx = conv.col2im(c.copy(), x.shape, kh, kw, stride, padding)
    m.values["col2im"] = np.asarray(_host(dx))
    if tuple(dx.shape) != x.shape:
        m.problems.append(f"col2im returned shape {tuple(dx.shape)}; it should be x_shape = {x.shape}")
        return m
    rows = conv.im2col(x.copy(), kh, kw, stride, padding)
    lhs, rhs = float((rows * c).sum()), float((x * dx).sum())
    m.expect("<im2col(x), c> vs <x, col2im(c)>", rhs, lhs,
             "col2im must be the adjoint of im2col: sum(im2col(x) * c) == sum(x * col2im(c)) for every x, c",
             scale=float(np.abs(rows * c).sum()))
    ones = conv.col2im(np.ones_like(c), x.shape, kh, kw, stride, padding)
    counts = _coverage(H, kh, stride[0], padding[0])[:, None] * _coverage(W, kw, stride[1], padding[1])[None, :]
    m.expect("col2im(ones)", ones, np.broadcast_to(counts, x.shape),
             "col2im of all ones counts the windows that cover each pixel: overlapping windows must add "
             "(+=), and positions in the padding are dropped")
    if gradcheck:
        w = rng.standard_normal((3, C, kh, kw))
        m.gradcheck("conv2d", lambda x: F.conv2d_im2col(x, tr.Tensor(w), None, stride, padding), {"x": x})
    return m


def conv_case(tr, rng, N, C, H, W, OC, kernel, stride, padding, groups=1, bias=True):
    """conv2d (by im2col) forward and backward: dx, dweight and dbias."""
    F = _module(tr, "functional")
    (kh, kw), stride, padding = _pair(kernel), _pair(stride), _pair(padding)
    inputs = {"x": rng.standard_normal((N, C, H, W)), "weight": rng.standard_normal((OC, C // groups, kh, kw))}
    if bias:
        inputs["bias"] = rng.standard_normal(OC)

    def fn(*args):
        return F.conv2d_im2col(*args[:2], args[2] if bias else None, stride, padding, groups)

    m = Measured(tr)
    m.run("conv2d", fn, inputs)
    m.gradcheck("conv2d", fn, inputs)
    return m


def conv_doc_case(tr, rng):
    """The gradients of the document's 1×1 example: Output[0,0,0] = 0.5×1 + 0.3×4 + 0.2×7 is a sum
    whose coefficients are the pixel (∂/∂W₁ = (1, 4, 7)) and the filter (∂/∂pixel = W₁)."""
    F = _module(tr, "functional")
    m = Measured(tr)
    inputs = {"x": DOC_1X1_X, "weight": DOC_1X1_W}
    for oc, (i, j), pixel in ((0, (0, 0), [1, 4, 7]), (1, (0, 1), [2, 5, 8])):
        dout = np.zeros((1, 2, 3, 3))
        dout[0, oc, i, j] = 1.0
        _, grads, _ = m.run(f"Output[{i},{j},{oc}]", F.conv2d_im2col, inputs, dout=dout)
        if grads["weight"] is None or grads["x"] is None:
            continue
        m.expect(f"dweight[{oc}, :, 0, 0] for Output[{i},{j},{oc}]", grads["weight"][oc, :, 0, 0], pixel,
                 f"the document's Output[{i},{j},{oc}] = W{oc + 1}·pixel({i},{j}), so its gradient with respect "
                 f"to filter W{oc + 1} is the pixel {tuple(pixel)}")
        m.expect(f"dweight[{1 - oc}] for Output[{i},{j},{oc}]", grads["weight"][1 - oc], np.zeros((3, 1, 1)),
                 f"the other filter does not touch output channel {oc}", scale=1.0)
        dx = np.zeros(DOC_1X1_X.shape)
        dx[0, :, i, j] = DOC_1X1_W[oc, :, 0, 0]
        m.expect(f"dx for Output[{i},{j},{oc}]", grads["x"], dx,
                 f"only pixel ({i},{j}) feeds Output[{i},{j},{oc}], with the weights of filter W{oc + 1}", scale=1.0)
    return m


def maxpool_case(tr, rng, N, C, H, W, kernel, stride, padding=0):
    """max_pool2d on values with no ties (0.01 apart, far beyond the finite-difference step)."""
    F = _module(tr, "functional")
    x = (rng.permutation(N * C * H * W).reshape(N, C, H, W) - N * C * H * W / 2) * 0.01

    def fn(x):
        return F.max_pool2d(x, kernel, stride, padding)

    m = Measured(tr)
    _, grads, dout = m.run("max_pool2d", fn, {"x": x})
    if grads["x"] is not None:
        m.expect("sum of dx", grads["x"].sum(), dout.sum(),
                 "every window hands its whole dout to exactly one input (its maximum), so dx must sum "
                 "to what dout sums to; less means an overlapping window's share was overwritten (= instead of +=)",
                 scale=float(np.abs(dout).sum()))
    m.gradcheck("max_pool2d", fn, {"x": x})
    return m


def batchnorm_case(tr, rng, N, C, H, W, affine=True, shift=0.0, spread=1.0):
    """batch_norm in training mode; with ``affine``, γ and β as well."""
    F = _module(tr, "functional")
    x = rng.standard_normal((N, C, H, W)) * spread + shift * np.arange(1, C + 1)[None, :, None, None]
    inputs = {"x": x}
    if affine:
        inputs["weight"] = 1.0 + 0.5 * rng.standard_normal(C)
        inputs["bias"] = rng.standard_normal(C)
    running_mean, running_var = np.zeros(C), np.ones(C)

    def fn(x, weight=None, bias=None, eps=1e-5):
        return F.batch_norm(x, running_mean, running_var, weight, bias, training=True, eps=eps)

    m = Measured(tr)
    _, grads, _ = m.run("batch_norm", fn, inputs)
    dx = grads["x"]
    if dx is not None and dx.shape == x.shape:
        m.expect("sum of dx over each channel", dx.sum(axis=(0, 2, 3)), np.zeros(C),
                 "adding a constant to every x of a channel moves the batch mean with it and leaves x̂ "
                 "unchanged, so dx must sum to 0 over (N, H, W); it does not when the path through the "
                 "batch mean is missing", scale=np.abs(dx).sum(axis=(0, 2, 3)))
    # with eps = 0, x̂ is also unchanged by scaling a channel about its mean: Σ dx·(x − μ) = 0
    _, grads, _ = m.run("batch_norm eps=0", lambda *t: fn(*t, eps=0.0), inputs)
    dx, centred = grads["x"], x - x.mean(axis=(0, 2, 3), keepdims=True)
    if dx is not None and dx.shape == x.shape:
        m.expect("sum of dx·(x − μ) over each channel, eps = 0", (dx * centred).sum(axis=(0, 2, 3)), np.zeros(C),
                 "with eps = 0, scaling a channel's x about its mean leaves x̂ unchanged, so Σ dx·(x − μ) must "
                 "be 0; it is not when the path through the batch variance is missing or wrong",
                 scale=np.abs(dx * centred).sum(axis=(0, 2, 3)))
    m.gradcheck("batch_norm", fn, inputs)
    return m


def conv1x1_case(tr, rng, N, C, H, W, OC, stride=1, bias=True):
    """conv2d with a 1×1 kernel (Conv1x1Function: one matrix product, no im2col), forward and backward."""
    F = _module(tr, "functional")
    inputs = {"x": rng.standard_normal((N, C, H, W)), "weight": rng.standard_normal((OC, C, 1, 1))}
    if bias:
        inputs["bias"] = rng.standard_normal(OC)

    def fn(*args):
        return F.conv2d(args[0], args[1], args[2] if bias else None, stride)

    m = Measured(tr)
    m.run("conv1x1", fn, inputs)
    m.gradcheck("conv1x1", fn, inputs)
    return m


def avgpool_case(tr, rng, N, C, H, W, kernel=None, stride=None, padding=0, output_size=None):
    """avg_pool2d (or, with ``output_size``, adaptive_avg_pool2d) forward and backward."""
    F = _module(tr, "functional")
    x = rng.standard_normal((N, C, H, W))
    if output_size is not None:
        label = "adaptive_avg_pool2d"

        def fn(x):
            return F.adaptive_avg_pool2d(x, output_size)
    else:
        label = "avg_pool2d"

        def fn(x):
            return F.avg_pool2d(x, kernel, stride, padding)
    m = Measured(tr)
    _, grads, dout = m.run(label, fn, {"x": x})
    if grads["x"] is not None and not padding:
        m.expect("sum of dx", grads["x"].sum(), dout.sum(),
                 "without padding every window's dout is shared out over its pixels exactly once, so dx must sum "
                 "to what dout sums to; more means dout was not divided by the window's size",
                 scale=float(np.abs(dout).sum()))
    m.gradcheck(label, fn, {"x": x})
    return m


def linear_case(tr, rng, shape, features, bias=True):
    """linear: x (..., IN) · Wᵀ + b, forward and backward."""
    F = _module(tr, "functional")
    inputs = {"x": rng.standard_normal(shape), "weight": rng.standard_normal((features, shape[-1]))}
    if bias:
        inputs["bias"] = rng.standard_normal(features)

    def fn(*args):
        return F.linear(args[0], args[1], args[2] if bias else None)

    m = Measured(tr)
    m.run("linear", fn, inputs)
    m.gradcheck("linear", fn, inputs)
    return m


def cross_entropy_case(tr, rng, N, K, reduction="mean", smoothing=0.0):
    """cross_entropy of logits (N, K) against seeded targets; Σ over classes of dlogits is 0 per row."""
    F = _module(tr, "functional")
    logits, targets = 2.0 * rng.standard_normal((N, K)), rng.integers(0, K, size=N)

    def fn(z):
        return F.cross_entropy(z, targets, reduction=reduction, label_smoothing=smoothing)

    m = Measured(tr)
    _, grads, _ = m.run("cross_entropy", fn, {"logits": logits})
    if grads["logits"] is not None and grads["logits"].shape == logits.shape:
        m.expect("sum of dlogits over each row", grads["logits"].sum(axis=1), np.zeros(N),
                 "softmax and the target distribution both sum to 1 over the classes, so each row of dlogits "
                 "sums to 0", scale=np.abs(grads["logits"]).sum(axis=1) + 1e-12)
    m.gradcheck("cross_entropy", fn, {"logits": logits})
    return m


def autograd_case(tr, rng, shape, depth=1):
    """A graph with tensors used twice and a long chain: y = x·w, z = y·y − x, a = 2z feeding both
    b = 3a and c = a·b, then ``depth`` multiplications (more than Python's recursion limit)."""
    x, w = rng.uniform(0.5, 1.5, size=shape), rng.uniform(0.5, 1.5, size=shape)

    def fn(x, w):
        y = x * w
        z = y * y - x                      # y used twice, x used twice
        a = z * 2.0
        c = a * (a * 3.0)                  # a used twice, once through a longer path
        for _ in range(depth):
            c = c * 0.999
        return c

    m = Measured(tr)
    _, grads, dout = m.run("graph", fn, {"x": x, "w": w})
    y, z = x * w, (x * w) ** 2 - x
    chain = dout * 0.999 ** depth * 24.0 * 2.0 * z           # c = 3·(2z)² = 12 z², so dc/dz = 24 z
    if grads["x"] is not None and grads["w"] is not None:
        m.expect("dx (x used twice, y used twice)", grads["x"], chain / 2.0 * (2 * y * w - 1),
                 "x reaches the loss through y = x·w and through z = y·y − x: the gradients of a tensor used "
                 "twice add")
        m.expect("dw (order: a feeds c directly and through b = 3a)", grads["w"], chain / 2.0 * 2 * y * x,
                 "a's gradient is complete only after both of its uses ran: visit functions in reverse "
                 "topological order")
    m.gradcheck("graph", fn, {"x": x, "w": w})
    return m


def _block(tr, rng, inplanes, planes, stride, projection, zero_residual=False, kind="BasicBlock"):
    """A float64 BasicBlock (or Bottleneck) in training mode with seeded weights (the same in every process)."""
    models, nn = _module(tr, "models"), _module(tr, "nn")
    out_planes = planes * getattr(models, kind).expansion
    downsample = None
    if projection == "A":                        # option A: subsample, add zero channels (no parameters)
        downsample = models.ShortcutA(inplanes, out_planes, stride)
    elif projection:                             # a 1×1 convolution with the stride, then batch norm
        downsample = nn.Sequential(nn.Conv2d(inplanes, out_planes, 1, stride=stride, bias=False),
                                   nn.BatchNorm2d(out_planes))
    block = getattr(models, kind)(inplanes, planes, stride, downsample)
    block.double()
    block.train()
    for name, p in block.named_parameters():
        if name.endswith("weight") and p.ndim == 4:
            p.data[...] = 0.3 * rng.standard_normal(p.shape)              # conv filters
        elif name.endswith("weight"):
            p.data[...] = 1.0 + 0.2 * rng.standard_normal(p.shape)        # BN γ
        else:
            p.data[...] = 0.2 * rng.standard_normal(p.shape)              # BN β
    if zero_residual:
        last = block.bn3 if kind == "Bottleneck" else block.bn2
        last.weight.data[...] = 0.0
        last.bias.data[...] = 0.0
    return block


def bottleneck_case(tr, rng, N, inplanes, planes, H, W, stride=1, projection=False, zero_residual=False):
    """A Bottleneck's output (against its own layers composed), input and parameter gradients, and
    finite differences with respect to x; ``zero_residual``: bn3's γ = β = 0, so the block is relu(shortcut)."""
    block = _block(tr, rng, inplanes, planes, stride, projection, zero_residual, kind="Bottleneck")

    def residual(F, t):
        return block.bn3(block.conv3(F.relu(block.bn2(block.conv2(F.relu(block.bn1(block.conv1(t))))))))
    return _block_measurement(
        tr, block, rng.standard_normal((N, inplanes, H, W)), "bottleneck", 4 * planes, stride,
        f"4·planes = {4 * planes} channels", residual,
        "the output should be relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut), the "
        "shortcut being x or downsample(x)", gradcheck=not zero_residual)


def basicblock_case(tr, rng, N, inplanes, planes, H, W, stride=1, projection=False, gradcheck=True):
    """A BasicBlock's output, input gradient and parameter gradients; with ``gradcheck``, finite
    differences with respect to x (a detached branch or an in-place update shows up there).
    ``projection``: False (identity), True (1×1 convolution + BN) or "A" (zero-padded channels)."""
    block = _block(tr, rng, inplanes, planes, stride, projection)

    def residual(F, t):
        return block.bn2(block.conv2(F.relu(block.bn1(block.conv1(t)))))
    return _block_measurement(
        tr, block, rng.standard_normal((N, inplanes, H, W)), "block", planes, stride, f"planes={planes} channels",
        residual, "the output should be relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut), the shortcut being x or "
                  "downsample(x)", gradcheck=gradcheck)


def _block_measurement(tr, block, x, label, channels, stride, channel_rule, residual, formula, gradcheck):
    """What the BasicBlock and Bottleneck cases measure: the block's output and gradients from the
    student's engine, its output shape, the output against the block's own layers composed as its
    docstring says (``residual(F, t)`` plus the shortcut, x or downsample(x), then ReLU), and with
    ``gradcheck`` finite differences with respect to x."""
    m = Measured(tr)
    out, _, _ = m.run(label, block, {"x": x})
    for name, p in block.named_parameters():
        m.values[f"{label} d{name}"] = None if p.grad is None else np.asarray(_host(p.grad))
    N, _, H, W = x.shape
    shape = (N, channels, -(-H // stride), -(-W // stride))
    if out.shape != shape:
        m.problems.append(f"the {label}'s output has shape {out.shape}; it should be {shape} "
                          f"({channel_rule}, spatial size ⌈H/stride⌉ × ⌈W/stride⌉)")
        return m
    F = _module(tr, "functional")
    with tr.no_grad():
        t = tr.Tensor(x)
        branch = residual(F, t)
        shortcut = t if block.downsample is None else block.downsample(t)
        expected = F.relu(branch + shortcut).numpy()
    m.expect(f"{label} output", out, expected, formula, tolerance=1e-9)
    if gradcheck:
        m.gradcheck(label, block, {"x": x})
    return m


def basicblock_doc_case(tr, rng):
    """The document's skip example inside a real block, and the identity path of a block whose
    residual branch is zeroed (bn2's γ = β = 0, as zero_init_residual does)."""
    nn = _module(tr, "nn")

    class Fixed(nn.Module):
        """Stands in for bn2 and outputs the document's z₂ (keeping the graph to its input)."""

        def forward(self, t):
            return t * 0.0 + tr.Tensor(DOC_Z2)

    m = Measured(tr)
    block = _block(tr, rng, 2, 2, 1, False)
    block.bn2 = Fixed()
    out, grads, _ = m.run("doc block", block, {"x": DOC_X}, dout=np.ones(DOC_X.shape))
    m.expect("output", out, DOC_Y,
             "with z₂ = bn2(conv2(...)) set to the document's values, y = z₂ + x is the document's "
             "[[0.7, 2.5], [2.2, 2.9]] and [[5.2, 5.6], [5.7, 7.1]]; all positive, so ReLU(y) = y")
    m.expect("dx", grads["x"], np.ones(DOC_X.shape),
             "F's output is a constant here (∂F/∂x = 0), so ∂y/∂x = ∂F/∂x + 1 = 1: the skip carries dout to x")
    block = _block(tr, rng, 2, 2, 1, False, zero_residual=True)
    out, grads, dout = m.run("zeroed residual", block, {"x": DOC_X})
    m.expect("zeroed residual output", out, DOC_X,
             "with bn2's γ = β = 0 the residual branch outputs 0 and the block is relu(0 + x) = x for x > 0")
    m.expect("zeroed residual dx", grads["x"], dout,
             "∂F/∂x = 0 but the gradient still reaches x through the skip: dx = dout (the document's "
             "gradient-flow argument)")
    return m


BUILDERS = {f.__name__: f for f in [
    relu_case, add_case, add_skip_doc_case, im2col_case, im2col_doc_case, col2im_case, conv_case,
    conv_doc_case, maxpool_case, batchnorm_case, basicblock_case, basicblock_doc_case, conv1x1_case, avgpool_case,
    linear_case, cross_entropy_case, bottleneck_case, autograd_case]}


# The visible cases: listed in the handout, run by `tinyresnet assignment check` and the students' tests.
VISIBLE_CASES = [
    Case("relu_backward", "x (2, 3, 4, 4)", "relu_case", {"shape": [2, 3, 4, 4]}),
    Case("add_backward", "same shapes (2, 3, 4, 4) + (2, 3, 4, 4)", "add_case",
         {"shape_a": [2, 3, 4, 4], "shape_b": [2, 3, 4, 4]}),
    Case("add_backward", "broadcast (2, 3, 4, 4) + (1, 3, 1, 1)", "add_case",
         {"shape_a": [2, 3, 4, 4], "shape_b": [1, 3, 1, 1]}),
    Case("add_backward", "document: y = z2 + x", "add_skip_doc_case"),
    Case("im2col", "x (2, 3, 5, 5), kernel 3, stride 1, padding 1", "im2col_case",
         {"N": 2, "C": 3, "H": 5, "W": 5, "kernel": 3, "stride": 1, "padding": 1}),
    Case("im2col", "x (2, 2, 6, 6), kernel 2, stride 2, padding 0", "im2col_case",
         {"N": 2, "C": 2, "H": 6, "W": 6, "kernel": 2, "stride": 2, "padding": 0}),
    Case("im2col", "document: 1x1 convolution, 3 -> 2 channels", "im2col_doc_case"),
    Case("col2im", "x (2, 3, 5, 5), kernel 3, stride 1, padding 1", "col2im_case",
         {"N": 2, "C": 3, "H": 5, "W": 5, "kernel": 3, "stride": 1, "padding": 1}),
    Case("col2im", "x (1, 2, 6, 6), kernel 2, stride 2, padding 0", "col2im_case",
         {"N": 1, "C": 2, "H": 6, "W": 6, "kernel": 2, "stride": 2, "padding": 0}),
    Case("conv_backward", "x (2, 3, 5, 5), 4 filters 3x3, stride 1, padding 1, bias", "conv_case",
         {"N": 2, "C": 3, "H": 5, "W": 5, "OC": 4, "kernel": 3, "stride": 1, "padding": 1}),
    Case("conv_backward", "document: gradients of the 1x1 example", "conv_doc_case"),
    Case("maxpool_backward", "x (2, 3, 4, 4), kernel 2, stride 2", "maxpool_case",
         {"N": 2, "C": 3, "H": 4, "W": 4, "kernel": 2, "stride": 2}),
    Case("batchnorm_backward", "x (4, 3, 2, 2), with gamma and beta", "batchnorm_case",
         {"N": 4, "C": 3, "H": 2, "W": 2}),
    Case("basicblock_forward", "identity shortcut, x (2, 3, 4, 4)", "basicblock_case",
         {"N": 2, "inplanes": 3, "planes": 3, "H": 4, "W": 4}),
    Case("basicblock_forward", "projection shortcut 2 -> 4 channels, stride 2, x (1, 2, 4, 4)", "basicblock_case",
         {"N": 1, "inplanes": 2, "planes": 4, "H": 4, "W": 4, "stride": 2, "projection": True}),
    Case("basicblock_forward", "document: y = z2 + x inside a block", "basicblock_doc_case"),
    Case("conv1x1_backward", "x (2, 3, 4, 4), 5 filters, stride 1, bias", "conv1x1_case",
         {"N": 2, "C": 3, "H": 4, "W": 4, "OC": 5}),
    Case("conv1x1_backward", "x (1, 4, 5, 5), 2 filters, stride 2 (a projection shortcut)", "conv1x1_case",
         {"N": 1, "C": 4, "H": 5, "W": 5, "OC": 2, "stride": 2, "bias": False}),
    Case("avgpool_backward", "x (2, 3, 4, 4), kernel 2, stride 2", "avgpool_case",
         {"N": 2, "C": 3, "H": 4, "W": 4, "kernel": 2, "stride": 2}),
    Case("avgpool_backward", "x (1, 2, 5, 5), kernel 3, stride 1 (overlapping)", "avgpool_case",
         {"N": 1, "C": 2, "H": 5, "W": 5, "kernel": 3, "stride": 1}),
    Case("avgpool_backward", "global average pooling, x (2, 3, 3, 3) -> (1, 1)", "avgpool_case",
         {"N": 2, "C": 3, "H": 3, "W": 3, "output_size": [1, 1]}),
    Case("linear_backward", "x (4, 3) -> 5 features, bias", "linear_case", {"shape": [4, 3], "features": 5}),
    Case("cross_entropy_backward", "logits (4, 3), mean", "cross_entropy_case", {"N": 4, "K": 3}),
    Case("bottleneck_forward", "identity shortcut, x (2, 8, 3, 3), planes 2", "bottleneck_case",
         {"N": 2, "inplanes": 8, "planes": 2, "H": 3, "W": 3}),
    Case("bottleneck_forward", "projection 4 -> 8 channels, stride 2, x (1, 4, 4, 4)", "bottleneck_case",
         {"N": 1, "inplanes": 4, "planes": 2, "H": 4, "W": 4, "stride": 2, "projection": True}),
    Case("autograd_backward", "tensors used twice, x (3,)", "autograd_case", {"shape": [3]}),
]


# ---------------------------------------------------------------------------------- running a case
# A case runs in two steps. ``measure_case`` runs it with an engine and returns only what that engine
# computed (arrays and the text of an exception; no verdict): the grader's child does this with a
# student's copy. ``judge_case`` compares a measurement with what it should be and gives the verdict:
# the grader does this in its own process, against its own measurement of the instructor's copy, so
# nothing the student's code does in the child can make a case pass.

def _array(value):
    return None if value is None else np.asarray(_host(value), dtype=np.float64)


def measure_case(tr, case, gradcheck_module=None, gradchecks=True, raise_errors=False):
    """Run ``case`` with the engine ``tr``; return what it computed as a dict.

    Keys: values (name -> array or None), expected (list of dicts what, actual, expected, why,
    scale, tolerance), gradchecks (list of dicts what, error, index, analytic, numeric), problems
    (list of text) and error (None, or status/message/where when the code raised).
    """
    measured = {"values": {}, "expected": [], "gradchecks": [], "problems": [], "error": None}
    try:
        m = BUILDERS[case.builder](tr, np.random.default_rng(case.seed), **case.params)
        measured["problems"] = list(m.problems)
        measured["values"] = {name: _array(value) for name, value in m.values.items()}
        measured["expected"] = [{"what": what, "actual": _array(actual), "expected": _array(expected), "why": why,
                                 "scale": _array(scale), "tolerance": float(tolerance)}
                                for what, actual, expected, why, scale, tolerance in m.expected]
        if gradchecks and not m.problems:
            gc = gradcheck_module or _module(tr, "gradcheck")
            for label, fn, inputs in m.gradchecks:
                tensors = [tr.Tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in inputs.values()]
                report = gc.gradcheck(fn, tensors, names=list(inputs), tolerance=GRADCHECK_TOLERANCE)
                measured["gradchecks"] += [{"what": f"{label} d{r.name}", "error": float(r.max_rel_error),
                                            "index": [int(i) for i in r.index], "analytic": float(r.analytic),
                                            "numeric": float(r.numeric)} for r in report.inputs]
    except KeyboardInterrupt:
        raise
    except BaseException as e:                  # the student's code may raise anything, even SystemExit
        if raise_errors and not isinstance(e, SystemExit):
            raise
        measured["error"] = describe_exception(e, _package_dir(tr))
    return measured


def judge_case(case, measured, reference=None):
    """The outcome of ``case`` from its measurement: a JSON-ready dict with keys exercise, case,
    hidden, status ("pass", "fail", "not implemented", "error"), max_rel_error, where, message.

    With ``reference`` (the instructor's measurement of the same case) every instructor's value
    must be matched and the expectations are the instructor's; without it (a student's own check)
    the expectations come with the measurement.
    """
    outcome = {"exercise": case.exercise, "case": case.name, "hidden": case.hidden,
               "status": "pass", "max_rel_error": None, "where": None, "message": ""}
    if measured.get("error"):
        outcome.update(measured["error"])
        return outcome
    problems = list(measured["problems"])
    if reference is None:
        comparisons = [compare(e["what"], e["actual"], e["expected"], e["tolerance"], e["why"], e["scale"])
                       for e in measured["expected"]]
    else:
        comparisons = _against_reference(measured, reference)
        if not comparisons:
            problems.append("the grader has no instructor's values for this case, so it cannot pass")
    comparisons += [Comparison(g["what"], g["error"], tuple(g["index"]), GRADCHECK_TOLERANCE, g["analytic"],
                               g["numeric"], "analytic gradient against finite differences")
                    for g in measured["gradchecks"]]
    if comparisons:
        worst = max(comparisons, key=lambda c: c.error if c.error == c.error else float("inf"))
        outcome["max_rel_error"], outcome["where"] = worst.error, worst.where()
    failed = [c for c in comparisons if not c.ok]
    if problems or failed:
        outcome["status"] = "fail"
        outcome["message"] = "; ".join(problems + [c.describe() for c in failed[:2]])
    return outcome


def _against_reference(measured, reference):
    """Every value and expectation of the instructor's measurement against the student's."""
    actual = {e["what"]: e["actual"] for e in measured["expected"]}
    comparisons = [compare(e["what"], actual.get(e["what"]), e["expected"], e["tolerance"], e["why"], e["scale"])
                   for e in reference["expected"]]
    for name, value in reference["values"].items():
        if value is not None:
            comparisons.append(compare(name, measured["values"].get(name), value, VALUE_TOLERANCE,
                                       "compared with the instructor's value"))
    return comparisons


def run_case(tr, case, gradcheck_module=None, raise_errors=False):
    """Measure and judge one case in this process (the students' tests); with ``raise_errors`` an
    exception in the student's code propagates and a failure raises AssertionError."""
    outcome = judge_case(case, measure_case(tr, case, gradcheck_module, raise_errors=raise_errors))
    if raise_errors and outcome["status"] == "fail":
        raise AssertionError(f"{case.exercise}, {case.name}: {outcome['message']}")
    return outcome


# ---------------------------------------------------------------------------------- measurements as arrays
def pack_measurements(measurements):
    """Case name -> measurement, as (JSON text, arrays by key) for one .npz (see ``unpack_measurements``)."""
    arrays = {}

    def key(value):
        if value is None:
            return None
        name = f"a{len(arrays)}"
        arrays[name] = np.asarray(value, dtype=np.float64)
        return name

    cases = {}
    for name, m in measurements.items():
        cases[name] = {"values": {k: key(v) for k, v in m["values"].items()},
                       "expected": [dict(e, actual=key(e["actual"]), expected=key(e["expected"]),
                                         scale=key(e["scale"])) for e in m["expected"]],
                       "gradchecks": m["gradchecks"], "problems": m["problems"], "error": m["error"]}
    return json.dumps(cases), arrays


def _package_dir(tr):
    return str(Path(tr.__file__).resolve().parent)


def _chain(e):
    """``e`` and the exceptions it was raised from or during, outermost first."""
    seen = []
    while e is not None and e not in seen and len(seen) < 10:
        seen.append(e)
        e = e.__cause__ or e.__context__
    return seen


def describe_exception(e, package_dir):
    """status, message and where for an exception raised while checking.

    A NotImplementedError anywhere in the chain means "not implemented", whether the engine
    re-raised it with a note (Python ≥ 3.11) or wrapped it in a BackwardError (3.10).
    """
    chain = _chain(e)
    todo = next((c for c in chain if isinstance(c, NotImplementedError)), None)
    if isinstance(e, SystemExit):
        return {"status": "error", "message": f"the code called sys.exit({e.code!r}); return or raise instead",
                "where": None}
    shown = todo or e
    where = None
    for c in reversed(chain):                   # the innermost exception's frames reach the student's code
        frames = [f for f in traceback.extract_tb(c.__traceback__)
                  if str(Path(f.filename).resolve()).startswith(package_dir)]
        if frames:
            f = frames[-1]
            rel = Path(f.filename).resolve().relative_to(Path(package_dir).parent).as_posix()
            where = f"{rel}:{f.lineno} in {f.name}"
            break
    message = f"{type(shown).__name__}: {shown}"
    notes = [n for c in chain for n in getattr(c, "__notes__", ())]
    if notes and todo is None:
        message += f" ({notes[0]})"
    if where:
        message += f" at {where}"
    return {"status": "not implemented" if todo is not None else "error", "message": message, "where": where}
