"""The course: predictions and exercises that the engine grades, for the tutorials run as notebooks.

    >>> from tinyresnet import course
    >>> course.predict("02.slope_residual", 2.0, tolerance=0.25)     # before an experiment
    >>> course.check_prediction("02.slope_residual", measured)        # after it
    >>> course.check_exercise("04.1", answer)                         # a number or a function
    >>> course.solution("04.1")                                       # the worked solution

``quick_mode()`` says whether a lesson should take its small fast path (``TINYRESNET_QUICK=1``).
``python -m tinyresnet.course.site build`` executes every tutorial as a notebook and writes a static site.
"""

import os

from .display import in_notebook, show_details, show_figure
from .exercises import EXERCISES, Exercise, check_exercise, solution, solution_answer
from .predictions import Verdict, check_prediction, predict, reset, scoreboard

TRUE_WORDS = ("1", "true", "yes", "on")


def quick_mode(quick=None, argv_quick=False):
    """Whether to run the small fast version: ``quick`` if not None, else ``argv_quick`` (``--quick``),
    else the environment variable ``TINYRESNET_QUICK`` (1/true/yes/on)."""
    if quick is not None:
        return bool(quick)
    if argv_quick:
        return True
    return os.environ.get("TINYRESNET_QUICK", "").strip().lower() in TRUE_WORDS


__all__ = ["EXERCISES", "Exercise", "Verdict", "check_exercise", "check_prediction", "in_notebook", "predict",
           "quick_mode", "reset", "scoreboard", "show_details", "show_figure", "solution", "solution_answer"]
