"""The grader's child process: import a student's copy of tinyresnet and compute, nothing more.

``runner.py`` copies this file, checks.py and gradcheck.py into a fresh temporary folder, copies
the student's package beside them (symlinks left out) and starts ``python -I -B _child.py JOB``
there. ``-I`` keeps the user's site folder, PYTHONPATH and the current folder off ``sys.path``; this
script puts the copy on ``sys.path`` itself once Python has started, so a ``sitecustomize.py`` or
``.pth`` file in the copy never runs.

The job names the exercises, the cases (builder, parameters and seed: the inputs, never what they
should give) and a folder for the results. For each exercise, in order, the child writes one .npz
of what the student's code computed (``checks.measure_case``); the grader reads those files and
judges them against its own values. Nothing written here is trusted: a forged file only holds
numbers, and the grader compares numbers itself.
"""

import faulthandler
import importlib.util
import json
import os
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _drop_grader_paths():
    """Forget the grader's own tinyresnet: the import hooks of an editable install that map the
    name ``tinyresnet`` to the instructor's source, and the modules that define them."""
    for finder in list(sys.meta_path):
        name = getattr(finder, "__module__", None) or type(finder).__module__
        mapping = getattr(sys.modules.get(name), "MAPPING", None)
        if isinstance(mapping, dict) and "tinyresnet" in mapping:
            sys.meta_path.remove(finder)
            sys.modules.pop(name, None)
    sys.path_hooks[:] = [h for h in sys.path_hooks if "__editable__" not in repr(h)]
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != HERE]
    sys.path_importer_cache.clear()


def _load(name, path, package=None):
    """Import the file ``path`` as module ``name`` (inside ``package`` for relative imports)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    if package:
        module.__package__ = package
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _write_json(folder, name, data):
    tmp = folder / f".{name}.tmp"
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, folder / name)


def _write_result(folder, exercise, measurements, np, checks):
    """One exercise's measurements as ``<exercise>.npz``, written whole or not at all."""
    meta, arrays = checks.pack_measurements(measurements)
    tmp = folder / f".{exercise}.npz"
    with open(tmp, "wb") as f:
        np.savez(f, __meta__=np.array(meta), **arrays)
    os.replace(tmp, folder / f"{exercise}.npz")


def main(job_path):
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    results = Path(job["results"])
    os.dup2(2, 1)                                  # the student's prints go to the (capped) log
    faulthandler.enable()                          # a segfault prints the Python stack to the log
    _drop_grader_paths()
    copy = Path(job["copy"]).resolve()
    sys.path.insert(0, str(copy))
    try:
        import tinyresnet
    except BaseException as e:                     # a student's copy may raise anything on import, even SystemExit
        _write_json(results, "fatal.json", {"message": f"importing the copy failed: {type(e).__name__}: {e}",
                                            "traceback": traceback.format_exc(limit=-3)})
        return 0
    imported = Path(tinyresnet.__file__).resolve()
    if imported.parent != copy / "tinyresnet":
        _write_json(results, "fatal.json", {"message": "the child process imported tinyresnet from outside the "
                                                       "copy; nothing was graded", "traceback": ""})
        return 0
    _write_json(results, "imported.json", {"python": sys.version.split()[0]})

    import numpy as np
    checks = _load("_tinyresnet_grader_checks", HERE / "checks.py")
    gradcheck = _load("tinyresnet._grader_gradcheck", HERE / "gradcheck.py", package="tinyresnet")
    cases = [checks.Case.from_json(c) for c in job["cases"]]
    for exercise in job["exercises"]:
        _write_json(results, f"{exercise}.started", {})
        measurements = {case.name: checks.measure_case(tinyresnet, case, gradcheck)
                        for case in cases if case.exercise == exercise}
        _write_result(results, exercise, measurements, np, checks)
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1])
    sys.stderr.flush()
    os._exit(code)          # do not wait for threads or exit handlers a student's code may have left
