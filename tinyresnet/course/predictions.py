"""Predictions: the student commits to an answer before an experiment; the engine grades it after.

    >>> course.predict("02.slope_residual", 2.0, tolerance=0.25)    # before the run
    >>> course.check_prediction("02.slope_residual", measured)       # after: prints and returns a Verdict

A prediction is a number (graded with ``tolerance`` = absolute, ``rel_tolerance`` = relative, or
``factor`` = within a factor) or one of ``options`` (graded by equality, ignoring case and spaces). A
``None`` guess is allowed: the notebook still runs, and the check says there was nothing to grade.
"""

import math
from dataclasses import dataclass

_PREDICTIONS = {}
_VERDICTS = {}


@dataclass
class Verdict:
    """The outcome of one check. ``correct`` is None when there was no guess to grade."""

    key: str
    guess: object
    measured: object
    correct: object
    message: str

    def __bool__(self):
        return bool(self.correct)


@dataclass
class _Prediction:
    key: str
    guess: object
    options: tuple = None
    tolerance: float = None
    rel_tolerance: float = None
    factor: float = None


def _normal(option):
    return " ".join(str(option).lower().split())


def predict(key, guess, *, options=None, tolerance=None, rel_tolerance=None, factor=None):
    """Record the student's ``guess`` for the experiment ``key`` ("<tutorial>.<name>"), before running it.

    Give ``options`` (a list of strings) for a pick-one question, or one of ``tolerance`` (absolute),
    ``rel_tolerance`` (relative) or ``factor`` (the measured value within a factor, for quantities that
    span orders of magnitude) for a numeric one. Prints a reminder when ``guess`` is None; never shows
    the answer.
    """
    numeric = [t for t in (tolerance, rel_tolerance, factor) if t is not None]
    if options is not None and numeric:
        raise ValueError(f"prediction {key!r}: give options (pick one) or a tolerance (a number), not both")
    if options is None and len(numeric) != 1:
        raise ValueError(f"prediction {key!r}: give exactly one of tolerance=, rel_tolerance=, factor= for a "
                         f"numeric prediction, or options=[...] for a pick-one question")
    if factor is not None and factor <= 1:
        raise ValueError(f"prediction {key!r}: factor must be > 1 (within a factor of it), got {factor}")
    if options is not None:
        options = tuple(options)
        if guess is not None and _normal(guess) not in {_normal(o) for o in options}:
            raise ValueError(f"prediction {key!r}: {guess!r} is not one of the options {list(options)}; "
                             f"write one of them exactly")
    elif guess is not None and not isinstance(guess, (int, float)):
        raise TypeError(f"prediction {key!r}: write a number, got {type(guess).__name__} {guess!r}")
    _PREDICTIONS[key] = _Prediction(key, guess, options, tolerance, rel_tolerance, factor)
    if guess is None:
        choice = f"one of {list(options)}" if options else "a number"
        print(f"[predict {key}] no prediction yet: write {choice} in the variable above and run the cell again "
              f"(the lesson runs on either way)")
    else:
        print(f"[predict {key}] recorded: {guess!r}. Run the experiment, then see how you did.")


def _grade(p, measured):
    """(correct, how far) for a recorded prediction against the measured value."""
    if p.options is not None:
        if _normal(measured) not in {_normal(o) for o in p.options}:
            raise ValueError(f"check_prediction {p.key!r}: the measured answer {measured!r} is not one of the "
                             f"options {list(p.options)} (a bug in the tutorial's check)")
        return _normal(p.guess) == _normal(measured), ""
    measured, guess = float(measured), float(p.guess)
    if p.tolerance is not None:
        return abs(guess - measured) <= p.tolerance, f"off by {abs(guess - measured):.3g} (allowed {p.tolerance:g})"
    if p.rel_tolerance is not None:
        rel = abs(guess - measured) / max(abs(measured), 1e-300)
        return rel <= p.rel_tolerance, f"off by {100 * rel:.0f}% (allowed {100 * p.rel_tolerance:.0f}%)"
    if guess <= 0 or measured <= 0:
        return guess == measured, "a factor needs positive numbers"
    ratio = max(guess / measured, measured / guess)
    return ratio <= p.factor, f"off by a factor {ratio:.3g} (allowed {p.factor:g})"


def check_prediction(key, measured):
    """Compare the recorded prediction ``key`` with the ``measured`` result; print and return a ``Verdict``."""
    if key not in _PREDICTIONS:
        raise KeyError(f"no prediction {key!r} was recorded: run the cell with course.predict({key!r}, ...) "
                       f"before the experiment (recorded: {sorted(_PREDICTIONS) or 'none'})")
    p = _PREDICTIONS[key]
    shown = measured if p.options is not None or not isinstance(measured, float) else float(f"{measured:.4g}")
    if p.guess is None:
        verdict = Verdict(key, None, measured, None, f"[check {key}] measured: {shown!r} (you made no prediction)")
    else:
        correct, how_far = _grade(p, measured)
        word = "right" if correct else "not this time"
        detail = f"; {how_far}" if how_far else ""
        verdict = Verdict(key, p.guess, measured, correct,
                          f"[check {key}] you predicted {p.guess!r}, measured {shown!r}: {word}{detail}")
    if p.options is None and not (isinstance(measured, (int, float)) and math.isfinite(float(measured))):
        verdict.message += " (the measurement is not a finite number: the run diverged?)"
    _VERDICTS[key] = verdict
    print(verdict.message)
    return verdict


def scoreboard():
    """Print and return (right, graded, checked) over the predictions checked so far."""
    graded = [v for v in _VERDICTS.values() if v.correct is not None]
    right = sum(bool(v.correct) for v in graded)
    print(f"predictions: {right} right of {len(graded)} made ({len(_VERDICTS)} experiments checked)")
    return right, len(graded), len(_VERDICTS)


def reset():
    """Forget every prediction and verdict (for tests, or to start a lesson again)."""
    _PREDICTIONS.clear()
    _VERDICTS.clear()
