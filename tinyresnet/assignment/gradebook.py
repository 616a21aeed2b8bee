"""Grade a whole class: submissions as folders or archives, a gradebook CSV, feedback per student.

``grade_submissions(paths, ...)`` grades each submission with ``grade`` (grade.py) and returns one
result per student; ``write_gradebook`` writes them as a CSV (one row per student, one column per
exercise), ``write_feedback`` as one Markdown file per student. ``load_config`` reads an instructor's
course file: which exercises to grade and how many points each is worth.

A submission is a folder holding a copy (the folder with ``tinyresnet/__init__.py``, or one folder
down, as students often zip the folder above their copy), or a ``.zip`` / ``.tar`` / ``.tar.gz``
archive of one. Archives are extracted by this module, member by member, into a temporary folder:
absolute paths, ``..``, links and device files are refused, and so is more than
``MAX_EXTRACT_BYTES`` of content (a zip bomb). The student's name is the submission's name without
its extension, as is (GitHub Classroom's ``assignment-username`` stays that).

The feedback shows the visible cases in full (the same ones ``check`` runs) and the hidden ones
only as pass or fail, and replaces every absolute path outside the student's copy by ``<grader>``.
"""

import csv
import json
import math
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from .checks import VISIBLE_CASES
from .exercises import EXERCISES
from .grade import GradingError, grade

MAX_EXTRACT_BYTES = 200 * 2**20          # what an archive may unpack to, all files together
MAX_MEMBERS = 20_000                     # files and folders in one archive
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar", ".zip")
HIDDEN_HINT = "a hidden case failed: check edge cases such as stride 2, padding, batch size 1"
CONFIG_KEYS = ("exercises", "points")
_CHUNK = 1 << 20


class SubmissionError(Exception):
    """One submission cannot be graded at all (no copy in it, a bad or unsafe archive): its student
    gets a row with 0 points and this message in the ``error`` column."""


class ConfigError(GradingError):
    """The instructor's course file is unreadable or names something the grader does not know."""


# ------------------------------------------------------------------------------- submissions
def student_name(path):
    """The student's name: the submission's file or folder name without its archive extension."""
    path = Path(os.path.abspath(path))
    if path.name == "tinyresnet" and (path / "__init__.py").is_file():   # the package folder itself
        path = path.parent
    name = path.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[:-len(suffix)]
    return name


def is_archive(path):
    return Path(path).name.lower().endswith(ARCHIVE_SUFFIXES)


def _has_package(folder):
    return (folder / "tinyresnet" / "__init__.py").is_file()


def find_copy(folder, label=None):
    """The folder holding the copy's ``tinyresnet`` package: ``folder`` itself, its parent when it
    is the package, or the one sub-folder that holds a copy."""
    folder = Path(folder)
    label = label or folder
    if _has_package(folder):
        return folder.resolve()
    if folder.name == "tinyresnet" and (folder / "__init__.py").is_file():
        return folder.parent.resolve()
    found = [d for d in sorted(folder.iterdir())
             if d.is_dir() and not d.name.startswith((".", "__MACOSX")) and _has_package(d)]
    if len(found) > 1:
        names = ", ".join(d.name for d in found)
        raise SubmissionError(f"{label} holds several copies of tinyresnet ({names}); hand in one")
    if not found:
        raise SubmissionError(f"{label} holds no copy of tinyresnet: no tinyresnet/__init__.py in it or in a "
                              f"folder one level down (hand in the folder the release was written to)")
    return found[0].resolve()


def _member_path(name, archive):
    """The member's path inside the extraction folder, refusing absolute paths and ``..``."""
    text = name.replace("\\", "/")
    if "\0" in text or text.startswith("/") or re.match(r"^[A-Za-z]:", text):
        raise SubmissionError(f"{archive} is refused: member {name!r} has an absolute path")
    parts = [p for p in PurePosixPath(text).parts if p not in ("", ".")]
    if ".." in parts:
        raise SubmissionError(f"{archive} is refused: member {name!r} points outside the archive (..)")
    return parts


class _Budget:
    """Counts what an extraction writes, refusing the archive past ``max_bytes`` or MAX_MEMBERS."""

    def __init__(self, archive, max_bytes):
        self.archive, self.max_bytes, self.bytes, self.members = archive, max_bytes, 0, 0

    def member(self):
        self.members += 1
        if self.members > MAX_MEMBERS:
            raise SubmissionError(f"{self.archive} is refused: more than {MAX_MEMBERS} files and folders")

    def add(self, n):
        self.bytes += n
        self.check(self.bytes)

    def check(self, size):
        if size > self.max_bytes:
            raise SubmissionError(f"{self.archive} is refused: it unpacks to more than "
                                  f"{self.max_bytes / 2**20:g} MB (delete virtual environments and data before "
                                  f"zipping)")


def _copy_member(source, target, budget):
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "wb") as out:
        while chunk := source.read(_CHUNK):
            budget.add(len(chunk))
            out.write(chunk)


def _extract_zip(archive, dest, budget):
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        budget.check(sum(i.file_size for i in infos))    # the declared sizes: refused before writing anything
        for info in infos:
            budget.member()
            parts = _member_path(info.filename, archive)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise SubmissionError(f"{archive} is refused: member {info.filename!r} is a symbolic link")
            if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise SubmissionError(f"{archive} is refused: member {info.filename!r} is a device or other "
                                      f"special file")
            if not parts:
                continue
            target = dest.joinpath(*parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                with zf.open(info) as source:
                    _copy_member(source, target, budget)


def _extract_tar(archive, dest, budget):
    with tarfile.open(archive, "r:*") as tf:
        for member in tf:
            budget.member()
            parts = _member_path(member.name, archive)
            if member.issym() or member.islnk():
                raise SubmissionError(f"{archive} is refused: member {member.name!r} is a link")
            if member.isdev():
                raise SubmissionError(f"{archive} is refused: member {member.name!r} is a device file")
            if not (member.isdir() or member.isfile()):
                raise SubmissionError(f"{archive} is refused: member {member.name!r} is not a plain file or folder")
            if not parts:
                continue
            target = dest.joinpath(*parts)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                _copy_member(tf.extractfile(member), target, budget)


def extract_archive(archive, dest, max_bytes=MAX_EXTRACT_BYTES):
    """Unpack a .zip or .tar(.gz, .bz2, .xz) archive into the folder ``dest``, safely (see the module
    docstring); raise SubmissionError when the archive is unreadable or unsafe."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    budget = _Budget(archive, max_bytes)
    try:
        if archive.name.lower().endswith(".zip"):
            _extract_zip(archive, dest, budget)
        else:
            _extract_tar(archive, dest, budget)
    except SubmissionError:
        raise
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError) as e:
        raise SubmissionError(f"{archive} is not a readable archive ({type(e).__name__}: {e})") from None


@contextmanager
def open_submission(path, max_bytes=MAX_EXTRACT_BYTES):
    """``with open_submission(path) as root``: the folder holding the copy's package; an archive is
    extracted into a temporary folder, removed when the block ends."""
    path = Path(path)
    if path.is_dir():
        yield find_copy(path, label=path)
        return
    if not path.exists():
        raise SubmissionError(f"{path} does not exist")
    if not is_archive(path):
        raise SubmissionError(f"{path} is neither a folder nor a {', '.join(ARCHIVE_SUFFIXES)} archive")
    tmp = tempfile.mkdtemp(prefix="tinyresnet-submission-")
    try:
        extract_archive(path, Path(tmp) / "submission", max_bytes=max_bytes)
        yield find_copy(Path(tmp) / "submission", label=path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------- course file
def valid_exercises():
    """The exercise ids the instructor's copy marks and exercises.py knows, in the table's order."""
    import tinyresnet

    from .markers import find_regions
    regions = find_regions(Path(tinyresnet.__file__).resolve().parent)
    return [ex for ex in EXERCISES if ex in regions]


def _read_config(path):
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"course file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            return json.loads(path.read_text(encoding="utf-8"))
        if suffix == ".toml":
            import tomllib
            return tomllib.loads(path.read_text(encoding="utf-8"))
    except ImportError:
        raise ConfigError(f"reading {path} needs Python 3.11+ (tomllib); write it as JSON instead") from None
    except ValueError as e:                      # json.JSONDecodeError and tomllib.TOMLDecodeError
        raise ConfigError(f"course file {path} is not valid {suffix[1:].upper()}: {e}") from None
    raise ConfigError(f"course file {path}: expected a .json or .toml file, got {suffix or 'no extension'}")


def load_config(path, valid=None):
    """Read and check a course file: ``{"exercises": [ids], "points": {id: points}}``, both optional.

    Returns ``{"exercises": list or None, "points": dict}``; raises ConfigError naming what is wrong
    and the valid exercise ids.
    """
    valid = list(valid if valid is not None else valid_exercises())
    data = _read_config(path)
    if not isinstance(data, dict):
        raise ConfigError(f"course file {path}: expected a table with {' and '.join(CONFIG_KEYS)}, "
                          f"got {type(data).__name__}")
    extra = sorted(set(data) - set(CONFIG_KEYS))
    if extra:
        raise ConfigError(f"course file {path}: unknown key(s) {', '.join(extra)}; only {' and '.join(CONFIG_KEYS)} "
                          f"can be set here (the checks themselves are in the package)")
    listing = f"the valid exercises are: {', '.join(valid)}"
    exercises = data.get("exercises")
    if exercises is not None:
        if not (isinstance(exercises, list) and exercises and all(isinstance(e, str) for e in exercises)):
            raise ConfigError(f"course file {path}: \"exercises\" must be a non-empty list of exercise ids, "
                              f"got {exercises!r}; {listing}")
        unknown = [e for e in exercises if e not in valid]
        if unknown:
            raise ConfigError(f"course file {path}: unknown exercise(s) {', '.join(unknown)}; {listing}")
        twice = sorted({e for e in exercises if exercises.count(e) > 1})
        if twice:
            raise ConfigError(f"course file {path}: {', '.join(twice)} listed more than once in \"exercises\"")
    points = data.get("points", {})
    if not isinstance(points, dict):
        raise ConfigError(f"course file {path}: \"points\" must map exercise ids to points, got {points!r}")
    unknown = [e for e in points if e not in valid]
    if unknown:
        raise ConfigError(f"course file {path}: points for unknown exercise(s) {', '.join(unknown)}; {listing}")
    for ex, value in points.items():
        _check_points(path, ex, value)
    return {"exercises": exercises, "points": dict(points)}


GROUPS = ("visible", "hidden")


def _is_points(value):
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value >= 0


def _check_points(path, ex, value):
    """An exercise's points: a number >= 0 (all or nothing), or {"visible": a, "hidden": b} (partial
    credit: each group's points when every case of that group passes)."""
    if isinstance(value, dict):
        extra = [g for g in value if g not in GROUPS]
        if extra or not value:
            raise ConfigError(f"course file {path}: points for {ex} split over case groups take the keys "
                              f"{' and '.join(GROUPS)}, got {sorted(value) or 'none'}; e.g. "
                              f"{{\"{ex}\": {{\"visible\": 2, \"hidden\": 3}}}}")
        for group, points in value.items():
            if not _is_points(points):
                raise ConfigError(f"course file {path}: points for {ex}'s {group} cases must be a number >= 0, "
                                  f"got {points!r}")
    elif not _is_points(value):
        raise ConfigError(f"course file {path}: points for {ex} must be a number >= 0, got {value!r} (or a "
                          f"table of {' and '.join(GROUPS)} points)")


def worth(value):
    """What an exercise's points (a number or a table of group points) are worth in all."""
    return sum(value.values()) if isinstance(value, dict) else value


def _earned(entry, value):
    """The points ``entry`` earns with ``value``: all of them when it passed, or per passing group."""
    if not isinstance(value, dict):
        return value if entry["passed"] else 0
    groups = entry.get("groups") or {}
    return sum(points for group, points in value.items() if groups.get(group))


def apply_points(report, points):
    """A copy of ``report`` scored with ``points`` (exercise id -> points, or -> {"visible": a,
    "hidden": b} for partial credit per case group; the others keep exercises.py's)."""
    entries = []
    for e in report["exercises"]:
        value = points.get(e["exercise"], e["max_points"])
        entries.append(dict(e, max_points=worth(value), points=_earned(e, value)))
    return dict(report, exercises=entries, total_points=sum(e["points"] for e in entries),
                max_points=sum(e["max_points"] for e in entries))


# ------------------------------------------------------------------------------- grading a class
def _check_names(paths):
    names = {}
    for p in paths:
        names.setdefault(student_name(p), []).append(str(p))
    twice = {n: ps for n, ps in names.items() if len(ps) > 1}
    if twice:
        clash = "; ".join(f"{n}: {', '.join(ps)}" for n, ps in twice.items())
        raise GradingError(f"several submissions have the same student name ({clash}); rename them so that "
                           f"each file or folder name is one student")


def grade_submissions(paths, exercises=None, points=None, timeout=60.0, max_bytes=MAX_EXTRACT_BYTES,
                      progress=None):
    """Grade every submission; one result each: student, submission, copy (the folder graded, or
    None), report (``grade``'s, scored with ``points``; None when not graded), error (None or why
    the submission could not be graded). ``progress(result)`` is called after each."""
    _check_names(paths)
    results = []
    for path in paths:
        result = {"student": student_name(path), "submission": str(path), "copy": None, "report": None,
                  "error": None}
        try:
            with open_submission(path, max_bytes=max_bytes) as root:
                result["copy"] = str(root)
                result["report"] = apply_points(grade(root, exercises=exercises, timeout=timeout), points or {})
        except SubmissionError as e:
            result["error"] = str(e)
        except GradingError:
            raise                                # the instructor's side: every submission would fail alike
        except Exception as e:                   # one odd submission must not stop the class's grading
            result["error"] = f"the grader failed on this submission ({type(e).__name__}: {e})"
        results.append(result)
        if progress is not None:
            progress(result)
    return results


# ------------------------------------------------------------------------------- the gradebook
def _number(value):
    return int(value) if float(value).is_integer() else value


def _cell(text):
    """Text for one CSV cell, on one line, never read as a formula by a spreadsheet."""
    text = " ".join(str(text).split())
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def _integrity(report):
    findings = (report or {}).get("integrity") or []
    return "; ".join(f"{f.get('kind', '?')}: {f.get('detail', '')}" if isinstance(f, dict) else str(f)
                     for f in findings)


def gradebook_rows(results, exercises, points=None):
    """The gradebook as dicts: student, each exercise's points, total, max_total, integrity, error."""
    points = points or {}
    possible = {ex: worth(points.get(ex, EXERCISES[ex].points)) for ex in exercises}
    rows = []
    for r in results:
        earned = {e["exercise"]: e["points"] for e in r["report"]["exercises"]} if r["report"] else {}
        row = {"student": _cell(r["student"])}
        row.update({ex: _number(earned.get(ex, 0)) for ex in exercises})
        row["total"] = _number(sum(earned.get(ex, 0) for ex in exercises))
        row["max_total"] = _number(sum(possible.values()))
        row["integrity"] = _cell(_integrity(r["report"]))
        row["error"] = _cell(r["error"] or "")
        rows.append(row)
    return rows


def write_gradebook(path, results, exercises, points=None):
    """Write the gradebook CSV at ``path`` atomically (readers never see half a file)."""
    from ..serialization import atomic_write
    rows = gradebook_rows(results, exercises, points)
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["student", *exercises, "total", "max_total", "integrity", "error"])
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)


# ------------------------------------------------------------------------------- feedback
_ABSOLUTE = re.compile(r"(?<![\w).\]~/])(?:/[\w.+@~-]+)+/?|\b[A-Za-z]:\\[^\s:'\"]+")


def scrub(text, copy=None):
    """``text`` with paths inside the student's copy made relative to it and every other absolute
    path replaced by ``<grader>``."""
    text = str(text)
    if copy:
        for root in {str(copy), os.path.realpath(copy)}:
            text = text.replace(root + os.sep, "").replace(root, ".")
    return _ABSOLUTE.sub("<grader>", text)


def _known_cases():
    visible = {(c.exercise, c.name): c for c in VISIBLE_CASES}
    try:
        from .hidden import HIDDEN_CASES
    except ImportError:
        HIDDEN_CASES = []
    return visible, {(c.exercise, c.name) for c in HIDDEN_CASES}


def is_visible(case, known=None):
    """A case is shown in full only when it is one of the handout's visible cases and not marked or
    named hidden; anything else (hidden, or unknown to this grader) shows as pass or fail only."""
    visible, hidden = known or _known_cases()
    key = (case.get("exercise"), case.get("case"))
    return key in visible and key not in hidden and not case.get("hidden", False)


def _inputs(case):
    if not case.params:
        return "the handout's worked example"
    return ", ".join(f"{k} {tuple(v) if isinstance(v, list) else v}" for k, v in case.params.items())


def _error_text(value):
    return "inf" if value == float("inf") else f"{value:.1e}"


def _visible_lines(case, known, copy):
    spec = known[0][(case["exercise"], case["case"])]
    mark = "pass" if case["status"] == "pass" else case["status"].upper()
    where = f" at {scrub(case['where'], copy)}" if case.get("where") else ""
    lines = [f"- **{mark}** `{case['case']}`", f"  - inputs: {_inputs(spec)}"]
    if case.get("max_rel_error") is not None:
        lines.append(f"  - worst relative error: {_error_text(case['max_rel_error'])}{where}")
    elif where:
        lines.append(f"  - where:{where[3:]}")
    if case["status"] != "pass" and case.get("message"):
        lines.append(f"  - message: {scrub(case['message'], copy)}")
    return lines


def _unfinished(entry, copy):
    """An exercise whose checks did not finish (timeout, crash, import error): the first line of the
    message only, without the process's output (student code could print a hidden case's inputs)."""
    first = scrub(entry.get("message", ""), copy).splitlines()[:1]
    text = re.sub(r";? *its last output:?$", "", first[0]) if first else ""
    return [f"This exercise's checks did not finish: **{entry['status'].upper()}**" + (f": {text}" if text else ""),
            "", f"Run `tinyresnet assignment check --exercises {entry['exercise']}` on your copy to reproduce it "
            f"on the visible cases."]


def _exercise_section(entry, known, copy):
    lines = [f"## {entry['exercise']}: {entry['title']}", "",
             f"{_number(entry['points'])} / {_number(entry['max_points'])} points: "
             f"{'pass' if entry['passed'] else entry['status']}", ""]
    cases = entry.get("cases") or []
    if not cases:
        return lines + _unfinished(entry, copy) + [""]
    shown = [c for c in cases if is_visible(c, known)]
    hidden = [c for c in cases if not is_visible(c, known)]
    if shown:
        lines += ["Visible cases (the ones `tinyresnet assignment check` runs):", ""]
        for c in shown:
            lines += _visible_lines(c, known, copy)
        lines.append("")
    if hidden:
        passed = sum(c["status"] == "pass" for c in hidden)
        lines += [f"Hidden cases: {passed} of {len(hidden)} pass.", ""]
        for i, c in enumerate(hidden, 1):
            lines.append(f"- hidden case {i}: " + ("pass" if c["status"] == "pass" else f"fail ({HIDDEN_HINT})"))
        lines.append("")
    return lines


def feedback_markdown(result, known=None):
    """One student's feedback as Markdown (see the module docstring for what it leaves out)."""
    known = known or _known_cases()
    report, copy = result["report"], result["copy"]
    lines = [f"# Feedback: {result['student']}", ""]
    if report is None:
        given = result.get("submission") or ""          # the path the instructor passed: only its name is shown
        error = str(result["error"]).replace(given, Path(given).name) if given else str(result["error"])
        return "\n".join(lines + ["Your submission could not be graded: " + scrub(error, copy), "",
                                  "It scores 0 points. Hand in the folder the release was written to (with "
                                  "setup.py and tinyresnet/), or a .zip or .tar.gz of it.", ""])
    lines += [f"Total: **{_number(report['total_points'])} / {_number(report['max_points'])}** points.", "",
              "An exercise scores its points when every one of its cases passes, visible and hidden (or, where "
              "the course splits them, each group's points when every case of that group passes).", ""]
    findings = report.get("integrity") or []
    if findings:
        kinds = sorted({f.get("kind", "?") if isinstance(f, dict) else "finding" for f in findings})
        lines += [f"The grader recorded {len(findings)} integrity finding(s) ({', '.join(kinds)}); your "
                  f"instructor will review them.", ""]
    for entry in report["exercises"]:
        lines += _exercise_section(entry, known, copy)
    return "\n".join(lines)


def write_feedback(folder, results):
    """Write ``<folder>/<student>.md`` for every result; return the paths."""
    from ..serialization import atomic_write
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    known = _known_cases()
    paths = []
    for r in results:
        path = folder / f"{r['student']}.md"
        with atomic_write(path, "w", encoding="utf-8") as f:
            f.write(feedback_markdown(r, known))
        paths.append(path)
    return paths
