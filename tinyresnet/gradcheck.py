"""Finite-difference gradient checks, used by the tests, the tutorials and the grader.

The analytic gradient of ``L = Σ f(inputs) ⊙ R`` (R a fixed random array, so every output
element matters) is compared, element by element, with the fourth-order central difference
``(−L(x+2h) + 8 L(x+h) − 8 L(x−h) + L(x−2h)) / 12h`` in float64, whose error shrinks as h⁴:
with h = 1e-3 both truncation and rounding stay near 1e-12 of the gradient's scale. Inputs must
stay 2h away from kinks (ReLU at 0, ties in a max-pool window). For each input the report gives the worst relative
error, the index where it happens, and both values, so a failure says where it is.
"""

from dataclasses import dataclass, field

import numpy as np

from .autograd import Tensor, no_grad
from .backend import get_array_module, to_numpy


@dataclass
class InputReport:
    """The comparison for one input: worst relative error and where it is."""

    name: str
    shape: tuple
    max_rel_error: float
    index: tuple
    analytic: float
    numeric: float

    def __str__(self):
        return (f"{self.name} {self.shape}: max relative error {self.max_rel_error:.2e} at index "
                f"{self.index} (analytic {self.analytic:.8g}, numeric {self.numeric:.8g})")


@dataclass
class GradcheckReport:
    inputs: list = field(default_factory=list)
    tolerance: float = 1e-6

    @property
    def max_rel_error(self):
        return max((r.max_rel_error for r in self.inputs), default=0.0)

    @property
    def ok(self):
        return self.max_rel_error <= self.tolerance

    @property
    def worst(self):
        return max(self.inputs, key=lambda r: r.max_rel_error) if self.inputs else None

    def __str__(self):
        verdict = "ok" if self.ok else f"FAILED (tolerance {self.tolerance:.0e})"
        return "\n".join([f"gradcheck {verdict}"] + [f"  {r}" for r in self.inputs])


def relative_error(analytic, numeric, noise=0.0):
    """|a − n| / max(|a|, |n|), with floors of 1e-3 × the largest |n| of the input and 1e6 × noise.

    The first floor keeps entries whose true gradient is (nearly) zero from dividing by nothing:
    there the error is measured relative to the input's gradient scale instead. ``noise`` is
    the rounding error of the finite difference itself; the second floor covers inputs whose
    whole gradient is zero up to rounding (a conv bias followed by training-mode batch norm),
    where both values are noise: a difference at the noise level then counts as 1e-6 at most.
    """
    scale = max(float(np.abs(numeric).max(initial=0.0)), 1e-12)
    denom = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), max(1e-3 * scale, 1e6 * noise))
    return np.abs(analytic - numeric) / denom


def gradcheck(fn, inputs, names=None, eps=1e-3, tolerance=1e-6, seed=0):
    """Compare the analytic gradients of ``fn(*inputs)`` with central differences.

    ``fn`` takes Tensors and returns one Tensor. ``inputs`` are Tensors (or arrays); those
    with ``requires_grad=True`` are checked (all of them when none is marked). Use float64.
    Returns a ``GradcheckReport``; ``assert_gradcheck`` raises when it fails.
    """
    inputs = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]
    for i, x in enumerate(inputs):
        if x.dtype != np.float64:
            raise TypeError(f"gradcheck input {i} has dtype {x.dtype}: finite differences need "
                            f"float64 (convert with .astype(np.float64))")
    checked = [i for i, x in enumerate(inputs) if x.requires_grad] or list(range(len(inputs)))
    names = names or [f"input {i}" for i in range(len(inputs))]
    for i in checked:
        xp = get_array_module(inputs[i].data)
        inputs[i].data = xp.ascontiguousarray(inputs[i].data)   # so the flat view below aliases it
        inputs[i].requires_grad = True
        inputs[i].grad = None

    out = fn(*inputs)
    xp = get_array_module(out.data)
    weights = xp.asarray(np.random.default_rng(seed).standard_normal(out.shape))
    # one evaluation of L rounds by about an ulp of Σ|f ⊙ R|; the stencil (1, 8, 8, 1)/12h scales that by 1.5/h
    noise = 1.5 * np.finfo(np.float64).eps * float(abs(out.data * weights).sum()) / eps
    (out * Tensor(weights)).sum().backward()

    def loss():
        with no_grad():
            return float((fn(*inputs).data * weights).sum())

    report = GradcheckReport(tolerance=tolerance)
    for i in checked:
        x = inputs[i]
        analytic = to_numpy(x.grad) if x.grad is not None else np.zeros(x.shape)
        numeric = np.zeros(x.shape)
        flat = x.data.reshape(-1)             # a view: perturbing it perturbs the input
        for k in range(flat.size):
            original = float(flat[k])
            values = []
            for step in (2, 1, -1, -2):
                flat[k] = original + step * eps
                values.append(loss())
            flat[k] = original
            l2, l1, m1, m2 = values
            numeric.reshape(-1)[k] = (-l2 + 8 * l1 - 8 * m1 + m2) / (12 * eps)
        err = relative_error(analytic, numeric, noise)
        worst = np.unravel_index(int(np.argmax(err)), x.shape) if err.size else ()
        report.inputs.append(InputReport(
            name=names[i], shape=x.shape, max_rel_error=float(err.max(initial=0.0)),
            index=tuple(int(j) for j in worst),
            analytic=float(analytic[worst]) if err.size else 0.0,
            numeric=float(numeric[worst]) if err.size else 0.0))
    return report


def assert_gradcheck(fn, inputs, names=None, eps=1e-3, tolerance=1e-6, seed=0):
    """Run ``gradcheck`` and raise ``AssertionError`` with the per-input report if it fails."""
    report = gradcheck(fn, inputs, names=names, eps=eps, tolerance=tolerance, seed=seed)
    if not report.ok:
        raise AssertionError(str(report))
    return report
