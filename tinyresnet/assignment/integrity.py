"""Integrity findings for a graded copy: what in it is not a student's answer to the exercises.

Each finding is a dict {"kind", "detail"}; grade.py puts the list in the report as
``report["integrity"]``. A finding does not change the score (the grader compares numbers it
computes itself, so none of these can make a check pass); it tells the teacher where to look.

Kinds:

- ``symlink``: a symbolic link in the copy (the grader's child never sees it);
- ``startup file``: a sitecustomize.py, usercustomize.py or .pth file, which Python would run at
  start-up (the grader's child never runs it);
- ``not copied``: a compiled file (.pyc, .so, ...) left out of what the child imports;
- ``added file``: a .py file of the package that the instructor's package does not have;
- ``changed outside regions``: a file whose code outside the solution regions differs from the
  instructor's (their regions blanked on both sides), or whose markers no longer parse;
- ``foreign import``: a region that imports something other than the standard library, NumPy or
  the package itself;
- ``suspicious code``: a region that reaches for the process, the interpreter or the file system.
"""

import ast
import difflib
import os
import sys
from pathlib import Path

from .markers import MarkerError, region_body, replace_bodies, scan_text

STARTUP_FILES = {"sitecustomize.py", "usercustomize.py"}
LEFT_BEHIND = {"assignment/hidden.py"}           # not in a release (see release.py)
LEFT_BEHIND_FOLDERS = {"kernels"}
ALLOWED_IMPORTS = {"numpy", "math", "functools", "itertools", "operator", "collections", "dataclasses", "typing",
                   "warnings", "numbers"}
SUSPICIOUS = {"os", "sys", "subprocess", "ctypes", "importlib", "builtins", "__builtins__", "__import__", "exec",
              "eval", "compile", "open", "globals", "signal", "socket", "shutil", "inspect", "gc", "resource",
              "multiprocessing", "threading", "pathlib", "io", "site", "runpy", "pickle", "marshal", "types",
              "sys.modules", "_exit", "fork", "getattr", "setattr", "vars", "__dict__", "__code__", "__globals__"}


def _finding(kind, detail):
    return {"kind": kind, "detail": detail}


def file_findings(copy_root):
    """Symlinks and start-up files anywhere in the copy (links are not followed)."""
    found = []
    for folder, dirs, files in os.walk(copy_root, followlinks=False):
        for name in dirs + files:
            path = Path(folder) / name
            rel = path.relative_to(copy_root).as_posix()
            if path.is_symlink():
                found.append(_finding("symlink", f"{rel} is a symbolic link to {os.readlink(path)}; the grader "
                                                 f"left it out of what it ran"))
            elif name in STARTUP_FILES or name.endswith(".pth"):
                found.append(_finding("startup file", f"{rel} would run when Python starts; the grader did not "
                                                      f"run it"))
        dirs[:] = [d for d in dirs if not (Path(folder) / d).is_symlink()]
    return found


def _blanked(text, relpath):
    """The text with every region's body emptied (the code a student may not change)."""
    return replace_bodies(text, {r.exercise: "" for r in scan_text(text, relpath)}, relpath)


def _released_files(package_dir):
    """relpath inside the package -> path, for the .py files a release holds."""
    files = {}
    for path in sorted(Path(package_dir).rglob("*.py")):
        rel = path.relative_to(package_dir)
        if "__pycache__" in rel.parts or rel.parts[0] in LEFT_BEHIND_FOLDERS or rel.as_posix() in LEFT_BEHIND:
            continue
        files[rel.as_posix()] = path
    return files


def _first_difference(mine, theirs):
    for line in difflib.unified_diff(theirs.splitlines(), mine.splitlines(), lineterm="", n=0):
        if line.startswith("@@"):
            return line.split()[2].lstrip("+").split(",")[0]
    return "?"


def code_findings(student_package, instructor_package):
    """Added files, code changed outside the regions, and what the regions import or reach for."""
    found = []
    theirs = _released_files(instructor_package)
    for path in sorted(Path(student_package).rglob("*.py")):
        if path.is_symlink() or "__pycache__" in path.parts:
            continue
        rel = path.relative_to(student_package).as_posix()
        relpath = f"tinyresnet/{rel}"
        text = path.read_text(encoding="utf-8", errors="replace")
        if rel not in theirs:
            if path.name not in STARTUP_FILES:
                found.append(_finding("added file", f"{relpath} is not part of the released package"))
            continue
        try:
            mine = _blanked(text, relpath)
        except MarkerError as e:
            found.append(_finding("changed outside regions", f"{relpath}: the solution markers were changed ({e})"))
            continue
        original = _blanked(theirs[rel].read_text(encoding="utf-8"), relpath)
        if mine != original:
            found.append(_finding("changed outside regions", f"{relpath}: the code outside the solution regions "
                                                             f"differs from the release (from line "
                                                             f"{_first_difference(mine, original)})"))
        found += _region_findings(text, relpath)
    return found


def _region_findings(text, relpath):
    found = []
    for region in scan_text(text, relpath):
        try:
            tree = ast.parse(region_body(text, region))
        except SyntaxError:
            continue
        imports, names = set(), set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imports |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level:
                imports.add((node.module or "").split(".")[0])
            elif isinstance(node, ast.Name):
                names.add(node.id)
            elif isinstance(node, ast.Attribute):
                names.add(node.attr)
        stdlib = getattr(sys, "stdlib_module_names", set())
        foreign = sorted(m for m in imports if m not in stdlib and m not in ALLOWED_IMPORTS and m != "tinyresnet")
        if foreign:
            found.append(_finding("foreign import", f"{region.location} ({region.exercise}) imports "
                                                    f"{', '.join(foreign)}"))
        reaching = sorted((imports | names) & SUSPICIOUS)
        if reaching:
            found.append(_finding("suspicious code", f"{region.location} ({region.exercise}) uses "
                                                     f"{', '.join(reaching)}: an exercise needs none of these"))
    return found


def findings(copy_root, instructor_package, left_out=()):
    """Every finding for the copy at ``copy_root`` (the folder holding its tinyresnet package)."""
    found = file_findings(copy_root)
    linked = {f["detail"].split(" ")[0] for f in found if f["kind"] == "symlink"}
    found += [_finding("not copied", f"{rel} was left out of what the grader ran (compiled files and links are "
                                     f"never run)") for rel in left_out if rel not in linked]
    return found + code_findings(Path(copy_root) / "tinyresnet", instructor_package)
