"""The grader's child process: import a student's copy of tinyresnet and run checks on it.

Started by ``runner.py`` as ``python -s _child.py JOB.json`` with PYTHONPATH set to the folder that
holds the student's ``tinyresnet`` package. It reports on its original stdout, one JSON object per
line after a prefix (``imported``, then ``start`` / ``result`` per exercise, then ``done``); the
student's own prints are sent to stderr so they cannot garble the report.

It never imports the grader's tinyresnet: the few grader files it needs (checks, markers,
gradcheck) are loaded by path, gradcheck into the student's package so that it differentiates the
student's engine. When the job carries the instructor's region bodies, each exercise is checked
with the instructor's code swapped in for every other region ("isolation"), so a mistake in one
exercise costs only that exercise.
"""

import contextlib
import faulthandler
import importlib
import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path

PREFIX = "@@tinyresnet-grader "


def _drop_grader_paths():
    """Forget the grader's own tinyresnet: this script's folder on sys.path, and the import hook
    of an editable install that maps the name ``tinyresnet`` to the grader's source."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    for finder in list(sys.meta_path):
        module = sys.modules.get(getattr(finder, "__module__", None) or type(finder).__module__)
        mapping = getattr(module, "MAPPING", None)
        if isinstance(mapping, dict) and "tinyresnet" in mapping:
            sys.meta_path.remove(finder)


def _load(name, path, package=None):
    """Import the file ``path`` as module ``name`` (inside ``package`` for relative imports)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    if package:
        module.__package__ = package
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class _Swap:
    """Replace one function or method of the student's copy by the instructor's, and back."""

    def __init__(self, exercise, module, qualname, new):
        self.exercise, self.module, self.qualname, self.new = exercise, module, qualname, new
        self.key = (module.__name__, qualname)
        self.undo = []

    def apply(self):
        target = self.module
        for name in self.qualname[:-1]:
            target = getattr(target, name)
        name = self.qualname[-1]
        if isinstance(target, type):
            old = target.__dict__[name]
            setattr(target, name, self.new)
            self.undo.append((target, name, old))
            return self
        old = getattr(target, name)
        for module in list(sys.modules.values()):   # also where other modules imported it by name
            if getattr(module, "__name__", "").split(".")[0] != "tinyresnet":
                continue
            for attr, value in list(vars(module).items()):
                if value is old:
                    setattr(module, attr, self.new)
                    self.undo.append((module, attr, old))
        return self

    def restore(self):
        for target, name, old in reversed(self.undo):
            setattr(target, name, old)
        self.undo = []


class Isolation:
    """The instructor's version of every region, ready to swap into the student's live modules."""

    def __init__(self, markers, package_dir, bodies):
        self.swaps, self.notes = [], []
        regions = markers.find_regions(package_dir)
        for ex in sorted(set(bodies) - set(regions)):
            self.notes.append(f"the markers of {ex} are missing from this copy, so its code could not be "
                              f"swapped out while grading the other exercises")
        by_file = {}
        for region in regions.values():
            if region.exercise in bodies:
                by_file.setdefault(region.path, []).append(region)
        for path, file_regions in by_file.items():
            try:
                self._prepare(markers, path, file_regions, bodies)
            except Exception as e:
                self.notes.append(f"the instructor's version of {', '.join(r.exercise for r in file_regions)} "
                                  f"could not be prepared ({type(e).__name__}: {e}); the student's code runs there "
                                  f"while grading the other exercises")

    def _prepare(self, markers, path, file_regions, bodies):
        """Compile the instructor's version of each function of ``path`` that holds a region, with
        the live module's globals (so it calls whatever that module holds at the time)."""
        relpath = file_regions[0].relpath
        text = path.read_text(encoding="utf-8")
        hybrid = markers.replace_bodies(text, {r.exercise: bodies[r.exercise] for r in file_regions}, relpath)
        modname = relpath[:-3].replace("/", ".")
        modname = modname[:-len(".__init__")] if modname.endswith(".__init__") else modname
        module = importlib.import_module(modname)
        for region in file_regions:
            qualname = markers.owner_of(text, region)
            if qualname is None:
                self.notes.append(f"{region.location}: {region.exercise} is not inside a function, so the "
                                  f"instructor's version cannot be swapped in")
                continue
            source = markers.owner_source(hybrid, qualname)
            namespace = {}
            exec(compile(source, f"<instructor's {region.exercise}>", "exec"), module.__dict__, namespace)
            self.swaps.append(_Swap(region.exercise, module, qualname, namespace[qualname[-1]]))

    @contextlib.contextmanager
    def only(self, exercise):
        """Inside this block, only ``exercise`` runs the student's code; the other regions run the
        instructor's (except where they share a function with ``exercise``)."""
        own = {s.key for s in self.swaps if s.exercise == exercise}
        applied = []
        try:
            for swap in self.swaps:
                if swap.exercise != exercise and swap.key not in own:
                    applied.append(swap.apply())
            yield
        finally:
            for swap in reversed(applied):
                swap.restore()


def main(job_path):
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    report = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)                                  # the student's prints go to stderr
    sys.stdout = sys.stderr

    def emit(**event):
        report.write(PREFIX + json.dumps(event) + "\n")
        report.flush()

    faulthandler.enable()                          # a segfault prints the Python stack to stderr
    _drop_grader_paths()
    package_dir = Path(job["package_dir"]).resolve()
    try:
        import tinyresnet
    except BaseException as e:                     # a student's copy may raise anything on import, even SystemExit
        emit(event="fatal", message=f"importing the copy at {package_dir} failed: {type(e).__name__}: {e}",
             traceback=traceback.format_exc(limit=-3))
        return 0
    imported = Path(tinyresnet.__file__).resolve()
    if imported.parent != package_dir:
        emit(event="fatal", message=f"the child process imported tinyresnet from {imported}, not from the copy "
                                    f"at {package_dir}; nothing was graded")
        return 0
    emit(event="imported", file=str(imported), python=sys.version.split()[0])

    import numpy as np
    checks = _load("_tinyresnet_grader_checks", job["checks_file"])
    markers = _load("_tinyresnet_grader_markers", job["markers_file"])
    gradcheck = _load("tinyresnet._grader_gradcheck", job["gradcheck_file"], package="tinyresnet")
    references = np.load(job["references_file"]) if job.get("references_file") else None
    isolation, notes = None, []
    if job.get("reference_bodies"):
        try:
            isolation = Isolation(markers, package_dir, job["reference_bodies"])
            notes += isolation.notes
        except Exception as e:
            notes.append(f"graded without swapping in the instructor's other exercises, because "
                         f"{type(e).__name__}: {e}")
    if notes:
        emit(event="notes", notes=notes)

    cases = [checks.Case.from_json(c) for c in job["cases"]]
    for exercise in job["exercises"]:
        emit(event="start", exercise=exercise)
        outcomes = []
        try:
            with isolation.only(exercise) if isolation else contextlib.nullcontext():
                for case in cases:
                    if case.exercise != exercise:
                        continue
                    refs = None
                    if references is not None:
                        index = job["reference_index"].get(f"{case.exercise}/{case.name}", {})
                        refs = {name: references[key] for name, key in index.items()}
                    outcomes.append(checks.run_case(tinyresnet, case, gradcheck, refs))
        except Exception as e:
            outcomes.append({"exercise": exercise, "case": "(setup)", "hidden": False, "status": "error",
                             "max_rel_error": None, "where": None,
                             "message": f"the grader could not swap in the instructor's other exercises: "
                                        f"{type(e).__name__}: {e}"})
        emit(event="result", exercise=exercise, cases=outcomes)

    foreign = sorted(name for name, m in list(sys.modules.items())
                     if name.split(".")[0] == "tinyresnet" and "_grader_" not in name
                     and getattr(m, "__file__", None)
                     and not Path(m.__file__).resolve().is_relative_to(package_dir))
    emit(event="done", foreign_modules=foreign)
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1])
    sys.stderr.flush()
    os._exit(code)          # do not wait for threads or exit handlers a student's code may have left
