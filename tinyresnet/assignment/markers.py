"""Find, read and replace the solution regions marked in the library's own source.

A region follows nbgrader's convention, with the exercise id on both marker lines: a comment line
``### BEGIN SOLUTION <exercise_id>`` before the statements a student writes and a comment line
``### END SOLUTION <exercise_id>`` after them, both at the indentation of those statements (one
space after the three hashes, one between the words).

An exercise may have more than one region: the first, ``### BEGIN SOLUTION <exercise_id>``, is
its main region (where the handout sends students); every other place that would give its answer
away is a part, ``### BEGIN SOLUTION <exercise_id>:<part>`` (e.g. ``basicblock_forward:plainblock``
for PlainBlock.forward, which spells out the block's forward). Releasing an exercise stubs all of
its regions; grading reads them all.

Regions are found by scanning every ``.py`` file of a package, never from a list of files, so a
new region anywhere in the package is picked up. A marker that is unbalanced, nested, mismatched
or misspelt raises ``MarkerError`` naming the file, the line and the fix.

This module imports nothing from tinyresnet: the grader's child process loads it by path next to
a student's copy of the package.
"""

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

_ANY_MARKER = re.compile(r"^###\s*(BEGIN|END)\b")
_MARKER = re.compile(r"^### (BEGIN|END) SOLUTION(?:[ \t]+(\S+))?[ \t]*$")
_EXERCISE_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class MarkerError(ValueError):
    """A solution marker that is unbalanced, nested, mismatched, misspelt or misplaced."""


@dataclass(frozen=True)
class Region:
    """One marked region: the lines strictly between its BEGIN and END markers."""

    exercise: str
    path: Path          # the file
    relpath: str        # the file relative to the folder holding the package, e.g. "tinyresnet/ops/conv.py"
    begin: int          # line number (1-based) of the BEGIN marker
    end: int            # line number of the END marker
    indent: str         # the markers' indentation, which the body shares
    part: str = ""      # "" for the exercise's main region, else the part's name (``<exercise>:<part>``)

    @property
    def key(self):
        """The id on the marker lines: ``relu_backward``, or ``basicblock_forward:plainblock`` for a part."""
        return f"{self.exercise}:{self.part}" if self.part else self.exercise

    @property
    def location(self):
        return f"{self.relpath}:{self.begin}"


def _string_lines(text):
    """Line numbers inside multi-line strings (a marker-like line in a docstring is not a marker)."""
    inside = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.STRING and tok.end[0] > tok.start[0]:
                inside.update(range(tok.start[0] + 1, tok.end[0] + 1))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass                      # a file that does not tokenize is scanned line by line
    return inside


def scan_text(text, relpath, path=None):
    """The regions of one file's text, in order; ``MarkerError`` on any malformed marker."""
    lines = text.splitlines()
    in_string = _string_lines(text)
    regions, open_marker = [], None               # open_marker: (exercise, line number, indent)
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if number in in_string or not _ANY_MARKER.match(stripped):
            continue
        where = f"{relpath}:{number}"
        match = _MARKER.match(stripped)
        if not match:
            raise MarkerError(f"{where}: unrecognised solution marker {stripped!r}; write "
                              f"'### BEGIN SOLUTION <exercise_id>' or '### END SOLUTION <exercise_id>'")
        kind, exercise = match.groups()
        name, colon, part = (exercise or "").partition(":")
        if not _EXERCISE_ID.match(name) or (colon and not _EXERCISE_ID.match(part)):
            raise MarkerError(f"{where}: the marker {stripped!r} needs an exercise id made of letters, "
                              f"digits and underscores, e.g. '### {kind} SOLUTION relu_backward' (or, for "
                              f"another region of that exercise, 'relu_backward:<part>')")
        indent = line[:len(line) - len(line.lstrip())]
        if kind == "BEGIN":
            if open_marker:
                raise MarkerError(f"{where}: BEGIN SOLUTION {exercise} inside the region {open_marker[0]} "
                                  f"opened at line {open_marker[1]}; regions cannot nest: close "
                                  f"{open_marker[0]} first with '### END SOLUTION {open_marker[0]}'")
            open_marker = (exercise, number, indent)
            continue
        if not open_marker:
            raise MarkerError(f"{where}: END SOLUTION {exercise} without a BEGIN SOLUTION {exercise} before it")
        name, start, start_indent = open_marker
        if exercise != name:
            raise MarkerError(f"{where}: END SOLUTION {exercise} closes the region BEGIN SOLUTION {name} "
                              f"opened at line {start}; the ids must match")
        if indent != start_indent:
            raise MarkerError(f"{where}: END SOLUTION {exercise} is indented {len(indent)} columns but its "
                              f"BEGIN (line {start}) is indented {len(start_indent)}; indent both markers "
                              f"like the code they enclose")
        body = lines[start:number - 1]
        if not any(b.strip() for b in body):
            raise MarkerError(f"{relpath}:{start}: the region {exercise} is empty; put the solution "
                              f"between its markers")
        for offset, b in enumerate(body):
            if b.strip() and not b.startswith(indent):
                raise MarkerError(f"{relpath}:{start + 1 + offset}: this line of region {exercise} is "
                                  f"indented less than its markers; a region must be a run of whole "
                                  f"statements at (or inside) the markers' indentation")
        exercise_id, _, part = exercise.partition(":")
        regions.append(Region(exercise_id, Path(path) if path else Path(relpath), relpath, start, number, indent,
                              part))
        open_marker = None
    if open_marker:
        raise MarkerError(f"{relpath}:{open_marker[1]}: BEGIN SOLUTION {open_marker[0]} has no "
                          f"'### END SOLUTION {open_marker[0]}' after it in this file")
    return regions


def find_all_regions(package_dir):
    """Every region in the ``.py`` files under ``package_dir``: a dict exercise id -> [Region, ...],
    the main region first, then its parts in file order.

    Files are visited in sorted order; a marker id used twice, or a part whose exercise has no
    main region, raises ``MarkerError``.
    """
    package_dir = Path(package_dir)
    if not (package_dir / "__init__.py").is_file():
        raise FileNotFoundError(f"{package_dir} is not a Python package (no __init__.py)")
    found = {}                                    # marker id -> Region
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        relpath = path.relative_to(package_dir.parent).as_posix()
        text = path.read_text(encoding="utf-8")
        if "SOLUTION" not in text:
            continue
        for region in scan_text(text, relpath, path):
            if region.key in found:
                raise MarkerError(f"{region.location}: the exercise {region.key} is already marked at "
                                  f"{found[region.key].location}; each exercise id marks one region (mark "
                                  f"another place of the same exercise as '{region.exercise}:<part>')")
            found[region.key] = region
    regions = {}
    for region in found.values():
        if region.part and region.exercise not in found:
            raise MarkerError(f"{region.location}: the part {region.key} belongs to an exercise with no main "
                              f"region; mark the exercise's own code with '### BEGIN SOLUTION {region.exercise}'")
        regions.setdefault(region.exercise, [found[region.exercise]])
        if region.part:
            regions[region.exercise].append(region)
    return regions


def find_regions(package_dir):
    """The main region of every exercise under ``package_dir``: a dict exercise id -> Region
    (``find_all_regions`` also gives the parts)."""
    return {exercise: regions[0] for exercise, regions in find_all_regions(package_dir).items()}


def region_body(text, region):
    """The code of ``region`` in ``text``, with the markers' indentation removed."""
    lines = text.splitlines()[region.begin:region.end - 1]
    return "\n".join(line[len(region.indent):] if line.strip() else "" for line in lines) + "\n"


def replace_bodies(text, bodies, relpath="<text>", parts=True):
    """``text`` with the body of each region whose exercise id is in ``bodies`` replaced by
    ``bodies[id]``: every region of that exercise, its parts too (only the main one with
    ``parts=False``); a key ``<exercise>:<part>`` replaces that part alone.

    Each new body is code without indentation; it is indented like the region's markers. The
    marker lines stay, so the regions can be found (and graded) again.
    """
    lines = text.splitlines()
    for region in reversed(scan_text(text, relpath)):
        body = bodies.get(region.key)
        if body is None and (parts or not region.part):
            body = bodies.get(region.exercise)
        if body is None:
            continue
        new = [region.indent + line if line.strip() else "" for line in body.splitlines()]
        lines[region.begin:region.end - 1] = new
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")


def owner_of(text, region):
    """The qualified name of the function or method that holds ``region``, as a tuple.

    ``("im2col",)`` for a module-level function, ``("ReLUFunction", "backward")`` for a method;
    None when the region is not inside a function. A function nested in another counts as the
    outer one (only the outer one can be swapped from outside).
    """
    tree = ast.parse(text)

    def search(nodes, path):
        for node in nodes:
            if not isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            # the END marker may trail the last statement, which is where ast says a def ends
            if node.lineno < region.begin <= node.end_lineno:
                here = path + (node.name,)
                if not isinstance(node, ast.ClassDef):
                    return here, node
                return search(node.body, here)
        return None

    found = search(tree.body, ())
    return found[0] if found else None


def owner_source(text, qualname):
    """The source of the function ``qualname`` in ``text`` (decorators included), dedented."""
    tree = ast.parse(text)
    nodes = tree.body
    node = None
    for name in qualname:
        node = next((n for n in nodes if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                     and n.name == name), None)
        if node is None:
            raise LookupError(f"no definition {'.'.join(qualname)} in this text")
        nodes = node.body
    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
    lines = text.splitlines()[first - 1:node.end_lineno]
    margin = len(lines[0]) - len(lines[0].lstrip())
    return "\n".join(line[margin:] for line in lines) + "\n"
