"""Run a student's copy of tinyresnet in a locked-down child process and collect what it computed.

The child (``_child.py``) only computes: it gets the cases (their inputs: builder, parameters,
seed) and writes, per exercise, an .npz of the outputs and gradients the student's code gave. It
never gets the instructor's values, region bodies, hidden-case file or paths, and it decides
nothing: grade.py judges the arrays in this process. So a forged "pass", a patched comparison or a
patched NumPy in the child changes nothing but the student's own numbers.

How the child is held:

- it runs on a copy of the copy, in a fresh temporary folder: only the ``tinyresnet`` package,
  symlinks, ``__pycache__`` and compiled files left out (the grader reports those), so it can
  neither reach the instructor's files through a link nor run stale bytecode;
- ``python -I -B`` with a bare environment: no user site, PYTHONPATH or current folder on
  ``sys.path``; the child puts the copy there itself after start-up, so a ``sitecustomize.py`` or
  ``.pth`` in the copy never runs; the editable-install hook for the instructor's tinyresnet is
  removed; the grader's own files (this module read them when it was imported) are copied next to
  the copy, so rewriting the instructor's checks.py during grading changes nothing;
- resource limits (Linux/macOS): address space (MEMORY_LIMIT), file size (FILE_LIMIT, which also
  caps its output, kept in a file of which only the tail is read), core files, and processes where
  the OS enforces that for the user;
- a wall-clock limit per exercise that only a finished exercise renews (output does not), and at
  the end the child's whole process group, session and every process that carries this run's
  token in its environment are killed, so double-forked processes do not outlive grading.

When an exercise runs past its time limit or the child dies, that exercise is a timeout or crash
and a fresh child carries on with the exercises left.
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_HERE = Path(__file__).resolve().parent
# read once, when the grader starts: the child gets these texts, never the files themselves
_GRADER_FILES = {name: path.read_text(encoding="utf-8") for name, path in
                 (("_child.py", _HERE / "_child.py"), ("checks.py", _HERE / "checks.py"),
                  ("gradcheck.py", _HERE.parent / "gradcheck.py"))}
MEMORY_LIMIT = 4 * 2**30          # bytes of address space for the child
FILE_LIMIT = 64 * 2**20           # bytes per file the child writes (its log and results included)
RESULT_LIMIT = 32 * 2**20         # bytes of one exercise's results that the grader agrees to read
TEXT_LIMIT = 2000                 # characters of any text (a message, a name) taken from the child
_NOT_COPIED = {".pyc", ".pyo", ".so", ".pyd", ".dll", ".dylib"}
_TOKEN_NAME = "TINYRESNET_GRADER_RUN"


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
    return {"exercise": exercise, "status": status, "message": message, "cases": {}}


def _tail(path, lines=8, limit=65536):
    """The last non-blank lines of the child's log (only its last ``limit`` bytes are read)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(f.seek(0, os.SEEK_END) - limit, 0))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    kept = [line[:TEXT_LIMIT] for line in text.splitlines() if line.strip()][-lines:]
    return "\n".join(kept)


def _describe_exit(code):
    if code is not None and code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def _child_env(package_root):
    """The environment of a plain child that imports ``package_root`` (release.py checks that a
    release imports with it; grading uses the bare ``_grading_env``)."""
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


def _grading_env(home, token):
    """A bare environment: nothing of the instructor's (no paths, no variables) but what Python needs."""
    env = {"PATH": os.defpath, "HOME": str(home), "TMPDIR": str(home), "LANG": "C.UTF-8",
           "TINYRESNET_KERNELS": "plain", _TOKEN_NAME: token}
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = "1"
    return env


def _limit_resources():
    """The child's resource limits (run in the child between fork and exec)."""
    try:
        import resource
    except ImportError:                             # not on this OS
        return
    limits = [("RLIMIT_AS", MEMORY_LIMIT), ("RLIMIT_DATA", MEMORY_LIMIT), ("RLIMIT_FSIZE", FILE_LIMIT),
              ("RLIMIT_CORE", 0), ("RLIMIT_NPROC", 0)]     # NPROC: no new process (not enforced for root)
    for name, value in limits:
        if hasattr(resource, name):
            try:
                resource.setrlimit(getattr(resource, name), (value, value))
            except (ValueError, OSError):
                pass


def copy_package(source, target):
    """Copy the package ``source`` to ``target`` as plain files: symlinks, ``__pycache__`` and compiled
    files are left out. Returns the paths left out (relative to ``source``'s parent)."""
    source, left_out = Path(source), []
    for folder, dirs, files in os.walk(source, followlinks=False):
        folder = Path(folder)
        rel = folder.relative_to(source)
        (Path(target) / rel).mkdir(parents=True, exist_ok=True)
        for name in list(dirs):
            if (folder / name).is_symlink() or name == "__pycache__":
                dirs.remove(name)
                if name != "__pycache__":
                    left_out.append((folder / name).relative_to(source.parent).as_posix())
        for name in files:
            path = folder / name
            if path.is_symlink() or not path.is_file() or path.suffix in _NOT_COPIED:
                left_out.append(path.relative_to(source.parent).as_posix())
                continue
            shutil.copyfile(path, Path(target) / rel / name)      # fresh times: no stale bytecode matches
    return left_out


def _prepare(tmp, package_root):
    """Lay out the child's folder: the grader's files, the copy, a results folder, an empty home."""
    grader = tmp / "grader"
    grader.mkdir()
    for name, text in _GRADER_FILES.items():
        (grader / name).write_text(text, encoding="utf-8")
    left_out = copy_package(package_root / "tinyresnet", grader / "copy" / "tinyresnet")
    (tmp / "home").mkdir()
    return grader, left_out


def run_checks(package_root, exercises, cases, timeout=60.0, python=None):
    """Run ``cases`` on the copy at ``package_root`` in child processes.

    Returns (results, info): results maps each exercise to {"status", "message", "cases"} where
    cases maps a case name to what the student's code computed (``checks.measure_case``'s dict,
    validated), status "ran" when it came back, else "timeout", "crash" or "error"; info holds
    "imported_from", "python", "notes" and "left_out" (files not copied for the child).
    """
    package_root = locate_package(package_root)
    remaining = list(exercises)
    results, info = {}, {"imported_from": None, "python": None, "notes": [], "left_out": []}
    with tempfile.TemporaryDirectory(prefix="tinyresnet-grade-") as tmp:
        tmp = Path(tmp)
        grader, info["left_out"] = _prepare(tmp, package_root)
        job = {"copy": str(grader / "copy"), "cases": [c.to_json() for c in cases]}
        round_number = 0
        while remaining:
            round_number += 1
            folder = tmp / f"round{round_number}"
            folder.mkdir()
            job_path = folder / "job.json"
            job_path.write_text(json.dumps(dict(job, exercises=remaining, results=str(folder))), encoding="utf-8")
            before = len(remaining)
            _one_child(python or sys.executable, grader, job_path, tmp / "home", remaining, results, info, timeout)
            if len(remaining) == before:              # no progress at all: do not start another child
                for ex in remaining:
                    results[ex] = _failure(ex, "error", "the grader's child process stopped without reporting "
                                                        f"anything; its last output:\n{_tail(folder / 'log.txt')}")
                remaining.clear()
        if info["python"]:
            info["imported_from"] = str(package_root / "tinyresnet" / "__init__.py")
    return results, info


def _one_child(python, grader, job_path, home, remaining, results, info, timeout):
    """Run one child until it finishes, dies or overruns; record what it computed in ``results``."""
    folder, token = job_path.parent, secrets.token_hex(16)
    log_path = folder / "log.txt"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([python, "-I", "-B", str(grader / "_child.py"), str(job_path)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=home,
                                env=_grading_env(home, token), start_new_session=hasattr(os, "killpg"),
                                preexec_fn=_limit_resources if os.name == "posix" else None)
    imported, job_order = False, list(remaining)
    deadline = time.monotonic() + timeout
    try:
        while True:
            finished = proc.poll() is not None
            if not imported and (folder / "imported.json").is_file():
                imported, deadline = True, time.monotonic() + timeout
                info["python"] = _read_python(folder / "imported.json")
            if (folder / "fatal.json").is_file():
                message = _read_fatal(folder / "fatal.json")
                info["notes"].append(message)
                for ex in list(remaining):
                    results[ex] = _failure(ex, "error", message.splitlines()[0])
                remaining.clear()
                return
            for ex in list(remaining):
                if (folder / f"{ex}.npz").is_file():
                    results[ex] = _read_results(folder / f"{ex}.npz", ex)
                    remaining.remove(ex)
                    deadline = time.monotonic() + timeout     # each exercise renews it once, at most
            if not remaining:
                return
            if finished or time.monotonic() > deadline:
                current = _current(folder, job_order, remaining)
                if finished:
                    _died(proc.returncode, imported, current, remaining, results, log_path)
                else:
                    _timed_out(imported, current, remaining, results, timeout)
                return
            time.sleep(0.02)
    finally:
        _kill_all(proc, token)


def _current(folder, job_order, remaining):
    """The exercise the child was on: the last one it started (it works through them in order), even
    if a result for it came back already (a student's code can write one, then exit)."""
    started = [ex for ex in job_order if (folder / f"{ex}.started").is_file()]
    current = started[-1] if started else (remaining[0] if remaining else None)
    if current in remaining:
        remaining.remove(current)
    return current


def _died(code, imported, current, remaining, results, log_path):
    tail = _tail(log_path)
    said = f"; its last output:\n{tail}" if tail else ""
    if imported and current:
        results[current] = _failure(current, "crash",
                                    f"the process died during this exercise ({_describe_exit(code)}){said}")
        return
    if current:
        remaining.insert(0, current)
    for ex in remaining:
        results[ex] = _failure(ex, "crash", f"the process died while importing the copy ({_describe_exit(code)}){said}")
    remaining.clear()


def _timed_out(imported, current, remaining, results, timeout):
    if not imported or not current:
        for ex in ([current] if current else []) + remaining:
            results[ex] = _failure(ex, "timeout", f"importing the copy took longer than {timeout:g} s")
        remaining.clear()
        return
    results[current] = _failure(current, "timeout", f"timed out after {timeout:g} s (an infinite loop, or far too "
                                                    f"slow); the grader stopped it and went on with the other "
                                                    f"exercises")


# ---------------------------------------------------------------------------------- ending the child
def _proc_ids(pid):
    """(session id, process group id) of a process, from /proc (None where there is no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[3]), int(fields[2])


def _carries_token(pid, token):
    try:
        return f"{_TOKEN_NAME}={token}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False


def _ours(pid, child, token):
    """Whether process ``pid`` was started by the child ``child``: in its session or group, or with its token."""
    ids = _proc_ids(pid)
    return (ids is not None and child in ids) or _carries_token(pid, token)


def _kill_all(proc, token):
    """Kill the child, its process group and session, and every process started with this run's token."""
    if hasattr(os, "killpg"):
        try:
            os.killpg(proc.pid, signal.SIGKILL)       # the child leads its own session and group
        except (ProcessLookupError, PermissionError):
            pass
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    if not Path("/proc/self/stat").exists():
        return
    for _ in range(3):                                # a process forking while we look: look again
        found = [int(p.name) for p in Path("/proc").iterdir()
                 if p.name.isdigit() and int(p.name) != os.getpid() and _ours(p.name, proc.pid, token)]
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.05)


# ---------------------------------------------------------------------------------- reading what came back
def _text(value):
    return str(value)[:TEXT_LIMIT]


def _read_python(path):
    try:
        return _text(json.loads(path.read_text(encoding="utf-8")[:TEXT_LIMIT])["python"])
    except (OSError, ValueError, KeyError, TypeError):
        return "?"


def _read_fatal(path):
    try:
        data = json.loads(path.read_text(encoding="utf-8")[:100_000])
        message = _text(data["message"])
        trace = _text(data.get("traceback") or "").rstrip()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "the copy could not be imported (the grader's child left an unreadable report)"
    return f"{message}\n{trace}" if trace else message


def _read_results(path, exercise):
    """One exercise's results from the child's .npz, checked field by field; an error entry if unreadable."""
    try:
        if path.stat().st_size > RESULT_LIMIT:
            raise ValueError(f"the results are {path.stat().st_size} bytes, over the limit of {RESULT_LIMIT}")
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(str(arrays.pop("__meta__")))
        cases = {_text(name): _measurement(m, arrays) for name, m in meta.items()}
    except Exception as e:              # anything malformed: the student's code wrote it, or broke the child
        return _failure(exercise, "error", f"the grader could not read what the child computed for this exercise "
                                           f"({type(e).__name__}: {_text(e)})")
    return {"exercise": exercise, "status": "ran", "message": "", "cases": cases}


def _measurement(m, arrays):
    """A measurement (see checks.measure_case) rebuilt from the child's JSON and arrays, typed strictly."""
    def array(key):
        if key is None:
            return None
        value = arrays[str(key)]
        if value.dtype.kind not in "biuf":
            raise TypeError(f"array {key} holds {value.dtype}, not numbers")
        return value.astype(np.float64)

    error = m["error"]
    if error is not None:
        status = error["status"] if error["status"] in ("error", "not implemented") else "error"
        error = {"status": status, "message": _text(error["message"]),
                 "where": None if error.get("where") is None else _text(error["where"])}
    return {"values": {_text(k): array(v) for k, v in m["values"].items()},
            "expected": [{"what": _text(e["what"]), "actual": array(e["actual"]), "expected": array(e["expected"]),
                          "why": _text(e["why"]), "scale": array(e["scale"]), "tolerance": float(e["tolerance"])}
                         for e in m["expected"]],
            "gradchecks": [{"what": _text(g["what"]), "error": float(g["error"]),
                            "index": [int(i) for i in g["index"]][:8], "analytic": float(g["analytic"]),
                            "numeric": float(g["numeric"])} for g in m["gradchecks"]],
            "problems": [_text(p) for p in m["problems"]][:20], "error": error}


def reference_measurements(tr, cases):
    """The instructor's measurements of ``cases``, computed in this process with the engine ``tr`` on
    its plain tier (the ops the students write; the child computes theirs on the same tier)."""
    from . import checks
    measured = {}
    for case in cases:
        with tr.use_kernels("plain"):
            m = checks.measure_case(tr, case, gradchecks=False, raise_errors=True)
        if m["problems"]:
            raise RuntimeError(f"the instructor's copy fails its own check {case.exercise} / {case.name}: "
                               f"{'; '.join(m['problems'])}")
        measured[f"{case.exercise}/{case.name}"] = m
    return measured
