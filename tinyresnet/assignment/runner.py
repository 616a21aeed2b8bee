"""Run checks on a copy of tinyresnet in a separate Python process, with a time limit per exercise.

The child (``_child.py``) imports the copy with PYTHONPATH pointing at it and reports exercise by
exercise. When an exercise runs past its time limit the child is killed and a fresh one carries on
with the exercises left; when the child dies (a segfault, ``os._exit``, running out of memory) the
exercise it was on is reported as a crash, with the last lines it wrote, and the rest go on the
same way. Nothing a student's code does can stop the grader.
"""

import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from . import checks
from ._child import PREFIX

_HERE = Path(__file__).resolve().parent


def locate_package(path):
    """The folder holding a copy's ``tinyresnet`` package, given that folder or the package itself."""
    path = Path(path).resolve()
    if (path / "tinyresnet" / "__init__.py").is_file():
        return path
    if path.name == "tinyresnet" and (path / "__init__.py").is_file():
        return path.parent
    raise FileNotFoundError(f"{path} holds no copy of tinyresnet: expected {path / 'tinyresnet' / '__init__.py'} "
                            f"(pass the folder a release was written to, the one with setup.py and tinyresnet/)")


def _failure(exercise, status, message):
    return {"exercise": exercise, "status": status, "message": message, "cases": []}


def _tail(path, lines=8):
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(kept)


def _describe_exit(code):
    if code is not None and code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _kill(proc):
    if proc.poll() is not None:
        return
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)     # the child leads its own session: this is only it and its children
        else:
            proc.kill()
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _child_env(package_root):
    env = dict(os.environ)
    for name in ("PYTHONSTARTUP", "PYTHONINSPECT", "PYTHONHOME"):
        env.pop(name, None)
    env["PYTHONPATH"] = str(package_root)           # the copy, and nothing else
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env["TINYRESNET_KERNELS"] = "plain"             # students write and are graded on the plain ops
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(name, "1")                   # small problems: threads only cost time
    return env


def _write_references(references, folder):
    """Save the instructor's values to one .npz; return (path, index case key -> name -> npz key)."""
    if references is None:
        return None, {}
    arrays, index = {}, {}
    for case_key, values in references.items():
        for name, value in values.items():
            if value is None:
                continue
            key = f"r{len(arrays)}"
            arrays[key] = np.asarray(value)
            index.setdefault(case_key, {})[name] = key
    path = Path(folder) / "references.npz"
    np.savez(path, **arrays)
    return str(path), index


def run_checks(package_root, exercises, cases, references=None, reference_bodies=None, timeout=60.0,
               python=None):
    """Run ``cases`` on the copy at ``package_root`` in child processes.

    ``references`` maps "exercise/case name" -> value name -> the instructor's array;
    ``reference_bodies`` maps exercise id -> the instructor's region code (enables isolation).
    Returns (results, info): results maps each exercise to {"status", "message", "cases"} (status
    "ran" when its cases ran, else "timeout", "crash" or "error"); info holds "imported_from",
    "python" and "notes".
    """
    package_root = locate_package(package_root)
    remaining = list(exercises)
    results, info = {}, {"imported_from": None, "python": None, "notes": []}
    with tempfile.TemporaryDirectory(prefix="tinyresnet-grade-") as tmp:
        references_file, reference_index = _write_references(references, tmp)
        job = {"package_dir": str(package_root / "tinyresnet"), "cases": [c.to_json() for c in cases],
               "checks_file": str(_HERE / "checks.py"), "markers_file": str(_HERE / "markers.py"),
               "gradcheck_file": str(_HERE.parent / "gradcheck.py"), "references_file": references_file,
               "reference_index": reference_index, "reference_bodies": reference_bodies}
        round_number = 0
        while remaining:
            round_number += 1
            job_path = Path(tmp) / f"job{round_number}.json"
            job_path.write_text(json.dumps(dict(job, exercises=remaining)), encoding="utf-8")
            stderr_path = Path(tmp) / f"stderr{round_number}.txt"
            before = len(remaining)
            _one_child(python or sys.executable, job_path, stderr_path, package_root, remaining, results, info,
                       timeout, tmp)
            if len(remaining) == before:              # no progress at all: do not start another child
                for ex in remaining:
                    results[ex] = _failure(ex, "error", "the grader's child process stopped without reporting "
                                                        f"anything; its last output:\n{_tail(stderr_path)}")
                remaining.clear()
    return results, info


def _one_child(python, job_path, stderr_path, package_root, remaining, results, info, timeout, cwd):
    """Run one child until it finishes, dies or overruns; record what it reported in ``results``."""
    with open(stderr_path, "w", encoding="utf-8") as stderr:
        proc = subprocess.Popen([python, "-s", str(_HERE / "_child.py"), str(job_path)], stdout=subprocess.PIPE,
                                stderr=stderr, stdin=subprocess.DEVNULL, cwd=cwd, env=_child_env(package_root),
                                start_new_session=hasattr(os, "killpg"))
    lines = queue.Queue()

    def read():
        for raw in proc.stdout:
            lines.put(raw.decode("utf-8", errors="replace"))
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    current, imported = None, False
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                line = lines.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                _kill(proc)
                if current is None:
                    message = (f"importing the copy took longer than {timeout:g} s" if not imported else
                               f"the grader's child process stalled for {timeout:g} s between exercises")
                    for ex in list(remaining):
                        results[ex] = _failure(ex, "timeout", message)
                    remaining.clear()
                else:
                    results[current] = _failure(current, "timeout",
                                                f"timed out after {timeout:g} s (an infinite loop, or far too "
                                                f"slow); the grader stopped it and went on with the other exercises")
                    remaining.remove(current)
                return
            if line is None:                                      # the child is gone
                code = proc.wait()
                if current is not None:
                    tail = _tail(stderr_path)
                    results[current] = _failure(current, "crash",
                                                f"the process died during this exercise ({_describe_exit(code)})"
                                                + (f"; its last output:\n{tail}" if tail else ""))
                    remaining.remove(current)
                elif not imported and remaining:
                    tail = _tail(stderr_path)
                    for ex in list(remaining):
                        results[ex] = _failure(ex, "crash", f"the process died while importing the copy "
                                                            f"({_describe_exit(code)}); its last output:\n{tail}")
                    remaining.clear()
                return
            if not line.startswith(PREFIX):
                continue
            event = json.loads(line[len(PREFIX):])
            kind = event["event"]
            if kind == "imported":
                imported = True
                info["imported_from"], info["python"] = event["file"], event["python"]
            elif kind == "fatal":                               # nothing can be checked: say it once in full
                if event.get("traceback"):
                    info["notes"].append(f"{event['message']}\n{event['traceback'].rstrip()}")
                for ex in list(remaining):
                    results[ex] = _failure(ex, "error", event["message"])
                remaining.clear()
            elif kind == "notes":
                info["notes"] += event["notes"]
            elif kind == "start":
                current = event["exercise"]
            elif kind == "result":
                results[event["exercise"]] = {"exercise": event["exercise"], "status": "ran", "message": "",
                                              "cases": event["cases"]}
                if event["exercise"] in remaining:
                    remaining.remove(event["exercise"])
                current = None
            elif kind == "done":
                foreign = event.get("foreign_modules") or []
                if foreign:
                    info["notes"].append(f"modules imported from outside the copy: {', '.join(foreign)}")
            deadline = time.monotonic() + timeout
    finally:
        _kill(proc)
        proc.stdout.close()
        reader.join(timeout=5)


def reference_values(tr, cases):
    """The instructor's values for ``cases``, computed in this process with the engine ``tr``, on its
    plain tier (the ops the students write; the child computes theirs on the same tier)."""
    values = {}
    for case in cases:
        with tr.use_kernels("plain"):
            m = checks.BUILDERS[case.builder](tr, np.random.default_rng(case.seed), **case.params)
        if m.problems:
            raise RuntimeError(f"the instructor's copy fails its own check {case.exercise} / {case.name}: "
                               f"{'; '.join(m.problems)}")
        values[f"{case.exercise}/{case.name}"] = m.values
    return values
