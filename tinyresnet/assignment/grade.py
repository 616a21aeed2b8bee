"""Grade a student's copy (``grade``) or check one's own work (``check``), and print the report.

``grade`` runs every case, visible and hidden, in a child process that imports the student's
copy and only computes (see runner.py); this process judges what came back against the values it
computes for the same inputs with the instructor's copy (checks.judge_case), so nothing the
student's code does in the child can make a check pass. Each exercise runs on the student's whole
copy: the instructor's code is never handed to the child, so an exercise whose checks also run a
failing exercise can fail with it (the report says so). The report's ``integrity`` lists what in
the copy is not an answer to the exercises (integrity.py). ``check`` runs only the visible cases on
the copy as it is: it needs no solutions, so students run it on their own copy.

An exercise earns its points (exercises.py) only when all its cases pass; each entry also says
which case groups ("visible", "hidden") pass, so that a course file can split the points over them
(gradebook.py). A failing exercise's report leads with its simplest failing case (visible before
hidden, then the fewest input elements) and the advice for the mistake it shows (exercises.py).
"""

import json
import math
from pathlib import Path

from . import integrity
from .checks import VISIBLE_CASES, judge_case
from .exercises import EXERCISES
from .markers import find_all_regions, find_regions, region_body
from .runner import locate_package, reference_measurements, run_checks

_REFERENCE_CACHE = {}
_CASE_SIZES = {(c.exercise, c.name): c.size for c in VISIBLE_CASES}


def _remember_sizes(cases):
    _CASE_SIZES.update({(c.exercise, c.name): c.size for c in cases})


class GradingError(RuntimeError):
    """Grading cannot start: a bad selection of exercises, or no instructor's copy to grade with."""


def _check_timeout(timeout):
    """A time limit per exercise must be a positive, finite number of seconds (else every exercise would
    time out at once, or none ever would)."""
    try:
        ok = math.isfinite(timeout) and timeout > 0
    except TypeError:
        ok = False
    if not ok:
        raise GradingError(f"timeout must be a positive, finite number of seconds per exercise, got {timeout!r}")


def _instructor():
    import tinyresnet
    return tinyresnet, Path(tinyresnet.__file__).resolve().parent


def select_exercises(requested, available, where):
    """The requested exercise ids (all ``available`` ones when None), in the table's order."""
    unknown_in_table = sorted(set(available) - set(EXERCISES))
    if unknown_in_table:
        regions = available if isinstance(available, dict) else {}
        places = ", ".join(f"{ex} ({regions[ex].location})" if ex in regions else ex for ex in unknown_in_table)
        raise GradingError(f"the source marks exercises that tinyresnet/assignment/exercises.py does not know: "
                           f"{places}; add each to EXERCISES (title, points, hint) and give it checks")
    if requested is None:
        return [ex for ex in EXERCISES if ex in available]
    unknown = [ex for ex in requested if ex not in available]
    if unknown:
        raise GradingError(f"unknown exercise(s) {', '.join(unknown)}; the exercises marked in {where} are: "
                           f"{', '.join(ex for ex in EXERCISES if ex in available)}")
    return [ex for ex in EXERCISES if ex in requested]


def _judge(exercise, result, cases, references=None):
    """The runner's result with each case judged here: what the child computed against the
    instructor's measurement (``references``) or, for a student's own check, the expectations."""
    if result["status"] != "ran":
        return dict(result, cases=[])
    outcomes = []
    for case in cases:
        if case.exercise != exercise:
            continue
        measured = result["cases"].get(case.name)
        if measured is None:
            measured = {"error": {"status": "error", "where": None,
                                  "message": "the grader's child returned nothing for this case"}}
        reference = None if references is None else references[f"{case.exercise}/{case.name}"]
        outcomes.append(judge_case(case, measured, reference))
    return dict(result, cases=outcomes)


def _summarise(exercise, result, graded):
    """One exercise's line of the report from its judged result."""
    points = EXERCISES[exercise].points
    entry = {"exercise": exercise, "title": EXERCISES[exercise].title, "status": result["status"],
             "passed": False, "points": 0, "max_points": points, "max_rel_error": None, "where": None,
             "message": result.get("message", ""), "cases": result.get("cases", [])}
    cases = entry["cases"]
    if result["status"] == "ran":
        failing = sorted((c for c in cases if c["status"] != "pass"), key=_simplicity)
        if failing:
            lead = failing[0]
            entry["status"] = lead["status"]
            entry["message"] = f"{lead['case']}{' (hidden)' if lead['hidden'] else ''}: {lead['message']}"
            if lead["status"] == "fail":
                entry["message"] += f" Hint: {advice(exercise, lead['message'])}"
        else:
            entry["status"] = "pass" if cases else "error"
            entry["message"] = "" if cases else "no checks ran for this exercise"
        # a failing exercise shows its lead case; a passing one its worst case
        shown = failing[:1] or cases
        measured = [c for c in shown if c.get("max_rel_error") is not None]
        if measured:
            worst = max(measured, key=lambda c: c["max_rel_error"])
            entry["max_rel_error"] = worst["max_rel_error"]
            entry["where"] = f"{worst['case']}: {worst['where']}"
    entry["groups"] = {group: result["status"] == "ran" and bool(members) and
                       all(c["status"] == "pass" for c in members)
                       for group, members in _groups(cases).items()}
    entry["passed"] = entry["status"] == "pass"
    if graded and entry["passed"]:
        entry["points"] = points
    return entry


def _simplicity(outcome):
    """The order in which failing cases lead a report: visible first, then the smallest, then the
    order of the tables."""
    return (outcome["hidden"], _CASE_SIZES.get((outcome["exercise"], outcome["case"]), 0))


def _groups(cases):
    """The case groups of an exercise's outcomes: {"visible": [...], "hidden": [...]}."""
    return {"visible": [c for c in cases if not c["hidden"]], "hidden": [c for c in cases if c["hidden"]]}


def advice(exercise, message):
    """The advice for the mistake a failing case's message shows (exercises.py's ``mistakes``), else
    the exercise's hint."""
    info = EXERCISES[exercise]
    return next((text for words, text in info.mistakes if words in message), info.hint)


def _note_blocking(entries, advice):
    """Add to each failing exercise the exercises its checks also run that fail too."""
    status = {e["exercise"]: e["passed"] for e in entries}
    for e in entries:
        blocking = [r for r in EXERCISES[e["exercise"]].requires if status.get(r) is False]
        if not e["passed"] and blocking:
            e["message"] += (f" [this check also runs {' and '.join(blocking)}, which do not pass either: "
                             f"{advice}]")


def _references(tr, package_dir, cases):
    """The instructor's measurement of each case (computed once per case and process)."""
    references = {}
    for case in cases:
        key = (case.exercise, case.name, repr(case.params))
        if key not in _REFERENCE_CACHE:
            try:
                _REFERENCE_CACHE[key] = reference_measurements(tr, [case])[f"{case.exercise}/{case.name}"]
            except NotImplementedError as e:
                raise GradingError(f"this copy of tinyresnet ({package_dir}) has no solution for {case.exercise} "
                                   f"({e}); grade with the instructor's copy") from None
            except Exception as e:
                raise GradingError(f"the instructor's copy ({package_dir}) fails the case {case.exercise} / "
                                   f"{case.name} itself ({type(e).__name__}: {e}); fix that before grading") from e
        references[f"{case.exercise}/{case.name}"] = _REFERENCE_CACHE[key]
    return references


def grade(student_dir, exercises=None, timeout=60.0):
    """Grade the copy at ``student_dir`` (the folder with its ``tinyresnet`` package).

    Returns the report as a dict: student_dir, imported_from, exercises (one entry each: status,
    passed, points, max_points, max_rel_error, where, message, cases), total_points, max_points,
    notes, integrity (a list of {"kind", "detail"}, see integrity.py).
    """
    _check_timeout(timeout)
    try:
        from .hidden import HIDDEN_CASES
    except ImportError:
        raise GradingError("grading needs the instructor's copy of tinyresnet (with the solutions and the "
                           "hidden checks); this one is a student release. Use `tinyresnet assignment check` "
                           "to check your own work") from None
    tr, package_dir = _instructor()
    regions = find_regions(package_dir)
    root = locate_package(student_dir)
    defaults, default_note = (None, []) if exercises is not None else _released(root, regions, package_dir)
    selected = select_exercises(exercises if exercises is not None else defaults, regions, package_dir)
    cases = [c for c in VISIBLE_CASES + HIDDEN_CASES if c.exercise in selected]
    _remember_sizes(cases)
    references = _references(tr, package_dir, cases)
    kept = _snapshot(package_dir)
    results, info = run_checks(root, selected, cases, timeout=timeout)
    tampered = _restore(package_dir, kept)
    entries = [_summarise(ex, _judge(ex, results[ex], cases, references), graded=True) for ex in selected]
    _note_blocking(entries, "the grader runs each exercise on the whole copy, so their mistakes may be the cause")
    if tampered:                                   # a submission that wrote into the grader scores nothing
        for e in entries:
            e.update(points=0, passed=False, status="fail",
                     message=f"the submission changed the grader's own files ({', '.join(tampered)}); "
                             f"they were put back (the changed versions kept beside them as *{ASIDE}), and "
                             f"no exercise of this copy counts")
    notes = info["notes"] + default_note + _release_mismatch(root, selected, exercises if defaults is None else [])
    return {"student_dir": str(root), "imported_from": info["imported_from"], "python": info["python"],
            "timeout_s": timeout, "exercises": entries, "total_points": sum(e["points"] for e in entries),
            "max_points": sum(e["max_points"] for e in entries), "notes": notes,
            "integrity": integrity.findings(root, package_dir, info["left_out"]) + _run_findings(entries)
            + [{"kind": "changed the grader", "detail": path} for path in tampered]}


def _snapshot(package_dir):
    """The bytes of every file of the instructor's package, before a student's code runs."""
    return {path: path.read_bytes() for path in Path(package_dir).rglob("*")
            if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(ASIDE)}


ASIDE = ".changed-during-grading"


def _restore(package_dir, kept):
    """Put back every file of the instructor's package that changed or vanished while a child ran
    (its code runs with the grader's user, so it can write there); returns their paths, relative.
    The changed version is kept beside it as ``<file>.changed-during-grading`` (a name Python does
    not import) and an added file is renamed so, so that nothing is lost, not even an edit of your
    own made during grading; the next grading, in any process, reads the grader as it was."""
    changed = []
    now = {path for path in Path(package_dir).rglob("*")
           if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(ASIDE)}
    for path in sorted(now - set(kept)):
        path.rename(path.with_name(path.name + ASIDE))
        changed.append(path)
    for path, content in kept.items():
        if path not in now or path.read_bytes() != content:
            if path in now:
                path.rename(path.with_name(path.name + ASIDE))
            path.write_bytes(content)
            changed.append(path)
    return sorted(str(path.relative_to(Path(package_dir).parent)) for path in changed)


def _run_findings(entries):
    """Integrity findings from how the exercises ran: a process that died or ran past its time
    limit, or hit the grader's memory or file-size limit. An honest infinite loop is flagged too: the
    flag asks the teacher to look, it does not change the score."""
    found = []
    for e in entries:
        if e["status"] in ("crash", "timeout"):
            found.append({"kind": "ended abnormally", "detail": f"{e['exercise']}: {e['status']}"})
        elif any(word in e["message"] for word in ("MemoryError", "File too large")):
            found.append({"kind": "resource limit", "detail": f"{e['exercise']}: hit the grader's memory or "
                                                              f"file-size limit"})
    return found


def _released(root, regions, package_dir):
    """The exercises to grade when none are named: those the copy's ``assignment.json`` says it was
    released with, and every exercise whose region in the copy differs from the instructor's
    solution (so that deleting an entry from assignment.json cannot drop a failing exercise); an
    exercise left as the instructor wrote it, outside the release, would score for free. Returns
    ``(exercises, [note])``, or ``(None, [])`` for a copy without assignment.json (everything)."""
    manifest = root / "assignment.json"
    if not manifest.is_file():
        return None, []
    try:
        released = json.loads(manifest.read_text(encoding="utf-8")).get("exercises") or []
    except (OSError, ValueError, AttributeError):
        released = []
    try:
        theirs = find_all_regions(root / "tinyresnet")
    except (OSError, ValueError):
        theirs = {}
    mine = find_all_regions(package_dir)
    changed = [ex for ex in regions if ex not in theirs or _bodies(theirs[ex]) != _bodies(mine[ex])]
    chosen = [ex for ex in regions if ex in released or ex in changed]
    note = (f"graded the exercises of this copy's release ({' '.join(ex for ex in chosen if ex in released)})"
            + (f" and those whose solution region differs from the instructor's "
               f"({' '.join(ex for ex in chosen if ex not in released)})" if set(chosen) - set(released) else ""))
    return chosen, [note]


def _bodies(regions):
    """The code of an exercise's regions (main and parts), by marker id."""
    return {r.key: region_body(r.path.read_text(encoding="utf-8"), r).strip() for r in regions}


def _release_mismatch(root, selected, requested):
    """A warning when grading every exercise of a copy that was released with fewer (the others
    kept their solutions there, so they would score for free)."""
    manifest = root / "assignment.json"
    if requested is not None or not manifest.is_file():
        return []
    try:
        released = json.loads(manifest.read_text(encoding="utf-8")).get("exercises") or []
    except (OSError, ValueError, AttributeError):
        return []
    extra = [ex for ex in selected if ex not in released]
    if not released or not extra:
        return []
    return [f"this copy's assignment.json says it was released with {' '.join(released)}; {', '.join(extra)} "
            f"kept their solutions there. Grade with --exercises {' '.join(released)}"]


def check(directory=".", exercises=None, timeout=60.0):
    """Run the visible checks on the copy at ``directory`` as it is (no solutions needed).

    Returns a report shaped like ``grade``'s, without points; an exercise that fails while one it
    builds on also fails says so.
    """
    _check_timeout(timeout)
    root = locate_package(directory)
    regions = find_regions(root / "tinyresnet")
    manifest = root / "assignment.json"          # written by release: the exercises handed out
    if exercises is None and manifest.is_file():
        released = json.loads(manifest.read_text(encoding="utf-8")).get("exercises")
        exercises = [ex for ex in released or [] if ex in regions] or None
    selected = select_exercises(exercises, regions, root / "tinyresnet")
    cases = [c for c in VISIBLE_CASES if c.exercise in selected]
    results, info = run_checks(root, selected, cases, timeout=timeout)
    entries = [_summarise(ex, _judge(ex, results[ex], cases), graded=False) for ex in selected]
    _note_blocking(entries, "fix those first")
    return {"student_dir": str(root), "imported_from": info["imported_from"], "python": info["python"],
            "timeout_s": timeout, "exercises": entries, "passed": sum(e["passed"] for e in entries),
            "total": len(entries), "notes": info["notes"]}


def report_json(report):
    """The report as strict JSON text (an infinite or NaN error becomes the string "inf" / "nan")."""
    def clean(value):
        if isinstance(value, float) and value != value:
            return "nan"
        if isinstance(value, float) and value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value
    return json.dumps(clean(report), indent=2, ensure_ascii=False, allow_nan=False)


def _error_text(entry):
    error = entry["max_rel_error"]
    if error is None:
        return "-"
    return "inf" if error == float("inf") else f"{error:.1e}"


def format_report(report, points=True):
    """The report as text: one line per exercise, the message under a failing one, the total."""
    lines = [f"copy: {report['student_dir']}", f"imported: {report['imported_from'] or '(not imported)'}", ""]
    header = f"{'exercise':<20} {'result':<16} " + ("points  " if points else "") + "worst rel. error  where"
    lines += [header, "-" * len(header)]
    for e in report["exercises"]:
        result = "pass" if e["passed"] else e["status"].upper()
        score = f"{e['points']:>2} / {e['max_points']:<2}  " if points else ""
        lines.append(f"{e['exercise']:<20} {result:<16} {score}{_error_text(e):<17} {e['where'] or ''}".rstrip())
        if not e["passed"] and e["message"]:
            lines += ["    " + line for line in e["message"].splitlines()]
    lines.append("-" * len(header))
    if points:
        lines.append(f"{'total':<37} {report['total_points']:>2} / {report['max_points']}")
    else:
        lines.append(f"{report['passed']} of {report['total']} exercises pass their visible checks")
    lines += [f"note: {n}" for n in report["notes"]]
    lines += [f"integrity: {f['kind']}: {f['detail']}" for f in report.get("integrity", [])]
    return "\n".join(lines)
