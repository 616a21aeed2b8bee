"""Classroom assignments on the engine: student releases, self-checks and an autograder.

The library's own source marks what students write with nbgrader's markers, an exercise id on each
marker line (see ``markers.py``). From those:

- ``release(out_dir, exercises=None)`` writes a student copy in which each region is replaced by
  ``raise NotImplementedError("<id>: <hint>")``, with a handout (release.py);
- ``check(dir)`` runs the visible checks on a working copy, for students (grade.py);
- ``grade(student_dir)`` runs visible and hidden checks on a student's copy in a separate process
  with a time limit per exercise, and scores it (grade.py, runner.py).

The exercises, their points and hints are one table (exercises.py); the checks are checks.py
(visible) and hidden.py (the grader's own, left out of releases). The `tinyresnet assignment`
command wraps all three; docs/teaching.md is the teacher's guide.
"""

from .exercises import EXERCISES, Exercise
from .grade import GradingError, check, format_report, grade
from .markers import MarkerError, Region, find_regions
from .release import ReleaseError, release

__all__ = ["EXERCISES", "Exercise", "GradingError", "MarkerError", "Region", "ReleaseError", "check",
           "find_regions", "format_report", "grade", "release"]
