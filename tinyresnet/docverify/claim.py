"""One checked claim of the ResNet document: what the document says, what the engine computes.

A claim's document value is written as the document prints it ("51.4M", "3.1", "[0.5, 1.2, 1.4]",
"589,824", "17×"). It is compared with the engine's value to the precision it is printed with:

- a number with a decimal point matches within half a unit of its last digit ("51.4M" is
  51,400,000 ± 50,000, so 51,380,224 matches; "2.95" is 2.95 ± 0.005);
- a number with a suffix (M, ×) and no decimal point is rounded at its last non-zero digit
  ("17×" is 17 ± 0.5; "3,700M" is 3.7 billion ± 50 million);
- a plain integer ("589,824", "50") is an exact count;
- shapes ("56×56×64", height × width × channels) and words must be equal.
"""

import json
import re
from dataclasses import dataclass, field

import numpy as np

_NUMBER = re.compile(r"^(-?[\d,]*\.?\d+)\s*(M|×|%)?$")
_SHAPE = re.compile(r"^\d+(×\d+)+$")
_SCALE = {"M": 1e6, "×": 1.0, "%": 1.0, None: 1.0}


@dataclass
class Claim:
    """One row of ``tinyresnet verify-doc``.

    ``document`` and ``engine`` are the texts shown; ``expected`` and ``value`` are the numbers
    compared (``value`` is the engine's raw result, which the tests check independently).
    """

    id: str
    section: str
    claim: str
    document: str
    engine: str
    match: bool
    note: str = ""
    expected: object = field(default=None, repr=False)
    value: object = field(default=None, repr=False)
    tolerance: float = field(default=0, repr=False)          # the document's printed precision, for grading

    def as_dict(self):
        return {"id": self.id, "section": self.section, "claim": self.claim, "document": self.document,
                "engine": self.engine, "match": self.match, "note": self.note}


def parse_number(text):
    """The value and rounding tolerance of one number as the document prints it.

    >>> parse_number("51.4M")
    (51400000.0, 50000.0)
    >>> parse_number("589,824")
    (589824, 0)
    """
    m = _NUMBER.match(text.strip())
    if m is None:
        raise ValueError(f"cannot read {text!r} as a number; write it as the document prints it, "
                         f"for example '51.4M', '3.76', '17×' or '589,824'")
    digits, suffix = m.groups()
    plain = digits.replace(",", "")
    scale = _SCALE[suffix]
    if "." in plain:
        decimals = len(plain.split(".")[1])
        return float(plain) * scale, 0.5 * 10.0 ** -decimals * scale
    if suffix is None:
        return int(plain), 0
    trailing_zeros = len(plain) - len(plain.rstrip("0")) if plain.strip("0") else 0
    return float(plain) * scale, 0.5 * 10.0 ** trailing_zeros * scale


def parse_expected(text):
    """A number, or a (nested) list of numbers such as "[[0.7, 2.5], [2.2, 2.9]]", with its tolerance.

    A list is matched element by element, to the precision of its least precise element.
    """
    text = text.strip()
    if not text.startswith("["):
        return parse_number(text)
    tokens = re.findall(r"-?\d+(?:\.\d+)?", text)
    tolerance = max(parse_number(t)[1] for t in tokens)
    return np.array(json.loads(text), dtype=np.float64), tolerance


def parse_shape(text):
    """"56×56×64" (H×W×C, as the document writes feature maps) as the engine's (C, H, W) = (64, 56, 56)."""
    sizes = tuple(int(n) for n in text.strip().split("×"))
    if len(sizes) == 3:
        h, w, c = sizes
        return c, h, w
    return sizes


def agrees(expected, value, tolerance):
    """Whether the engine's value is the document's value, to the document's printed precision."""
    if isinstance(expected, (str, tuple)) or isinstance(value, (str, tuple)):
        return expected == value
    expected, value = np.asarray(expected, dtype=np.float64), np.asarray(value, dtype=np.float64)
    if expected.shape != value.shape:
        return False
    slack = 1e-9 * np.maximum(1.0, np.abs(expected))          # float rounding of the engine's own sums
    return bool(np.all(np.abs(value - expected) <= tolerance + slack))


def fmt(value):
    """An engine value as text: counts with thousands separators, floats without float noise."""
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return shape_text(value)
    if isinstance(value, (list, np.ndarray)):
        array = np.asarray(value)
        if array.ndim == 0:
            return fmt(array.item())
        return "[" + ", ".join(fmt(v) for v in array.tolist()) + "]"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    text = f"{float(value):,.6f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def shape_text(shape):
    """(C, H, W) as the document writes it, H×W×C; other tuples joined with ×."""
    if len(shape) == 3:
        c, h, w = shape
        return f"{h}×{w}×{c}"
    return "×".join(str(n) for n in shape)


def check(id, section, claim, document, value, expect=None, tolerance=None, note="", engine=None):
    """Make a Claim: compare the engine's ``value`` with the document's.

    ``document`` is the document's text; ``expect`` is the part of it that is compared, as text
    (default: all of ``document``) or as a shape tuple or word compared exactly. ``note``
    explains the row (why a mismatch is one); ``engine`` overrides how the value is shown.
    """
    if expect is None:
        expect = document
    if isinstance(expect, str) and _SHAPE.match(expect.strip()):
        expected, default_tolerance = parse_shape(expect), 0
    elif isinstance(expect, str) and _looks_numeric(expect):
        expected, default_tolerance = parse_expected(expect)
    else:
        expected, default_tolerance = expect, 0
    tolerance = default_tolerance if tolerance is None else tolerance
    match = agrees(expected, value, tolerance)
    return Claim(id, section, claim, document, fmt(value) if engine is None else engine, match, note,
                 expected, value, tolerance)


def _looks_numeric(text):
    return bool(re.fullmatch(r"\[[\d\s.,\[\]-]*\]", text.strip())) or bool(_NUMBER.match(text.strip()))
