"""Grading a class (issue 9, part 2): submissions as folders and archives, the gradebook CSV, the
feedback files, the course file, the GitHub Classroom template.

One class is graded once per module, on two cheap exercises: an honest student (the solutions), an
untouched release, a zip of a copy one folder down, an archive that climbs out with ``..``, and a
folder with no copy in it.
"""

import csv
import io
import json
import re
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

import tinyresnet
from tinyresnet.assignment import EXERCISES, release
from tinyresnet.assignment.checks import VISIBLE_CASES
from tinyresnet.assignment.gradebook import (
    HIDDEN_HINT,
    ConfigError,
    SubmissionError,
    extract_archive,
    feedback_markdown,
    find_copy,
    gradebook_rows,
    load_config,
    scrub,
    student_name,
    valid_exercises,
)
from tinyresnet.assignment.hidden import HIDDEN_CASES
from tinyresnet.cli import main

PACKAGE = Path(tinyresnet.__file__).resolve().parent
ROOT = Path(__file__).resolve().parent.parent
CHEAP = ["relu_backward", "add_backward"]
STUDENTS = ["alice", "bob", "assignment-carol", "mallory", "nobody"]


def _solution_copy(folder):
    """A copy of the package with every solution kept (a release of no exercises)."""
    release(folder, exercises=[], verify=False)


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """The class above, graded through the command with a course file; returns (rows, feedback folder,
    exit status, the submissions folder)."""
    base = tmp_path_factory.mktemp("class")
    subs = base / "submissions"
    _solution_copy(subs / "alice")                                    # honest: full marks
    release(subs / "bob", exercises=CHEAP, verify=False)              # the untouched release: 0
    _solution_copy(base / "carol" / "tinyresnet-main")                # zipped from the folder above the copy
    shutil.make_archive(str(subs / "assignment-carol"), "zip", base / "carol")
    with tarfile.open(subs / "mallory.tar.gz", "w:gz") as tf:
        _add(tf, "../../outside.py", b"print('escaped')\n")
    (subs / "nobody").mkdir()
    (subs / "nobody" / "notes.txt").write_text("no copy here\n")
    course = base / "course.json"
    course.write_text(json.dumps({"exercises": CHEAP, "points": {"relu_backward": 5}}))
    book, feedback = base / "grades.csv", base / "feedback"
    code = main(["assignment", "grade", *(str(subs / n) for n in ["alice", "bob", "assignment-carol.zip",
                                                                    "mallory.tar.gz", "nobody"]),
                 "--config", str(course), "--gradebook", str(book), "--feedback", str(feedback), "--timeout", "30"])
    with open(book, newline="", encoding="utf-8") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    return rows, feedback, code, subs


def _add(tf, name, data=b"", kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, linkname, len(data)
    tf.addfile(info, io.BytesIO(data) if data else None)


# ---------------------------------------------------------------------------------- the gradebook
def test_the_gradebook_has_one_row_per_student_with_the_course_files_points(graded_class):
    rows, _, code, _ = graded_class
    assert code == 1                                            # graded, but two submissions were not
    assert list(rows) == STUDENTS
    assert list(next(iter(rows.values()))) == ["student", *CHEAP, "total", "max_total", "integrity", "error"]
    full = 5 + EXERCISES["add_backward"].points                 # relu_backward's points come from the course file
    assert rows["alice"] == {"student": "alice", "relu_backward": "5", "add_backward": "2", "total": str(full),
                             "max_total": str(full), "integrity": "", "error": ""}
    assert rows["assignment-carol"]["total"] == str(full)       # found one folder down inside the zip
    assert rows["bob"]["total"] == "0" and rows["bob"]["error"] == ""
    for student, words in [("mallory", "'../../outside.py' points outside the archive"),
                           ("nobody", "holds no copy of tinyresnet")]:
        row = rows[student]
        assert row["total"] == "0" and row["relu_backward"] == "0" and row["max_total"] == str(full)
        assert words in row["error"], row["error"]
    assert not (graded_class[3].parent / "outside.py").exists()


def test_the_integrity_findings_are_joined_and_cells_are_never_formulas():
    report = {"exercises": [{"exercise": "relu_backward", "points": 1}], "integrity": [
        {"kind": "patched gradcheck", "detail": "tinyresnet.gradcheck was replaced"},
        {"kind": "foreign module", "detail": "numpy from\n/elsewhere"}]}
    rows = gradebook_rows([{"student": "=cmd()", "report": report, "error": None},
                           {"student": "dave", "report": {"exercises": []}, "error": None}], ["relu_backward"])
    assert rows[0]["integrity"] == ("patched gradcheck: tinyresnet.gradcheck was replaced; "
                                    "foreign module: numpy from /elsewhere")
    assert rows[0]["student"] == "'=cmd()"
    assert rows[1]["integrity"] == "" and rows[1]["total"] == 0


# ---------------------------------------------------------------------------------- feedback
def test_feedback_shows_visible_cases_in_full_and_hidden_ones_as_pass_or_fail(graded_class):
    _, feedback, _, subs = graded_class
    assert sorted(p.stem for p in feedback.glob("*.md")) == sorted(STUDENTS)
    bob = (feedback / "bob.md").read_text(encoding="utf-8")
    assert "0 / 7** points" in bob
    for case in VISIBLE_CASES:
        if case.exercise in CHEAP:
            assert f"`{case.name}`" in bob
    assert "inputs: shape (2, 3, 4, 4)" in bob
    assert "NotImplementedError: relu_backward" in bob and "at tinyresnet/ops/" in bob
    assert HIDDEN_HINT in bob
    leaks = [c.name for c in HIDDEN_CASES if c.name in bob] + [str(p) for p in (PACKAGE, ROOT, subs) if str(p) in bob]
    assert not leaks, leaks
    alice = (feedback / "alice.md").read_text(encoding="utf-8")
    assert "7 / 7** points" in alice and HIDDEN_HINT not in alice and "- hidden case 1: pass" in alice
    mallory = (feedback / "mallory.md").read_text(encoding="utf-8")
    assert "could not be graded: mallory.tar.gz is refused" in mallory and str(subs) not in mallory


def test_feedback_strips_grader_paths_and_treats_unknown_or_hidden_named_cases_as_hidden(tmp_path):
    copy = tmp_path / "student"
    hidden = HIDDEN_CASES[0]
    cases = [
        {"exercise": "relu_backward", "case": VISIBLE_CASES[0].name, "hidden": False, "status": "fail",
         "max_rel_error": 0.5, "where": f"{copy}/tinyresnet/ops/activation.py:25 in backward",
         "message": f"ValueError: bad at {copy}/tinyresnet/ops/activation.py:25 and {PACKAGE}/gradcheck.py:9"},
        {"exercise": "relu_backward", "case": hidden.name, "status": "fail", "message": "dx[10] wrong"},  # no flag
        {"exercise": "relu_backward", "case": "a case this grader never heard of", "hidden": False,
         "status": "fail", "message": "secret"},
    ]
    entry = {"exercise": "relu_backward", "title": "ReLU backward", "status": "fail", "passed": False,
             "points": 0, "max_points": 1, "message": "", "cases": cases}
    text = feedback_markdown({"student": "eve", "copy": str(copy), "error": None,
                              "report": {"exercises": [entry], "total_points": 0, "max_points": 1}})
    assert "ValueError: bad at tinyresnet/ops/activation.py:25 and <grader>:9" in text
    assert str(PACKAGE) not in text and str(tmp_path) not in text
    assert hidden.name not in text and "dx[10]" not in text and "secret" not in text and "never heard" not in text
    assert text.count(HIDDEN_HINT) == 2


@pytest.mark.parametrize("text, expected", [
    ("at /opt/grader/tinyresnet/checks.py:12 in run", "at <grader>:12 in run"),
    ("C:\\Users\\prof\\grader\\checks.py failed", "<grader> failed"),
    ("ratio 1/2 and dout / scale, a/b", "ratio 1/2 and dout / scale, a/b"),
    ("File \"/usr/lib/python3.11/json.py\"", "File \"<grader>\""),
])
def test_scrub_replaces_absolute_paths_only(text, expected):
    assert scrub(text) == expected


def test_an_unfinished_exercise_shows_no_process_output(tmp_path):
    entry = {"exercise": "relu_backward", "title": "ReLU backward", "status": "crash", "passed": False,
             "points": 0, "max_points": 1, "cases": [],
             "message": "the process died during this exercise (exit code 1); its last output:\nx = [0.25, 0.5]"}
    text = feedback_markdown({"student": "eve", "copy": str(tmp_path), "error": None,
                              "report": {"exercises": [entry], "total_points": 0, "max_points": 1}})
    assert "**CRASH**: the process died during this exercise (exit code 1)" in text
    assert "0.25" not in text and "--exercises relu_backward" in text


# ---------------------------------------------------------------------------------- submissions
def test_student_names_are_the_file_names_without_the_archive_extension(tmp_path):
    (tmp_path / "x" / "tinyresnet").mkdir(parents=True)
    (tmp_path / "x" / "tinyresnet" / "__init__.py").write_text("")
    assert student_name("subs/assignment-alice.tar.gz") == "assignment-alice"
    assert student_name("subs/bob.ZIP") == "bob" and student_name("subs/carol.tgz") == "carol"
    assert student_name("subs/dave.v2") == "dave.v2"
    assert student_name(tmp_path / "x" / "tinyresnet") == "x"       # the package folder itself
    assert find_copy(tmp_path / "x" / "tinyresnet") == (tmp_path / "x").resolve()
    assert find_copy(tmp_path) == (tmp_path / "x").resolve()        # one folder down
    (tmp_path / "y" / "tinyresnet").mkdir(parents=True)
    (tmp_path / "y" / "tinyresnet" / "__init__.py").write_text("")
    with pytest.raises(SubmissionError, match=r"several copies of tinyresnet \(x, y\)"):
        find_copy(tmp_path)


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


@pytest.mark.parametrize("kind, words", [
    ("zip-dotdot", "points outside the archive"),
    ("zip-absolute", "has an absolute path"),
    ("zip-symlink", "is a symbolic link"),
    ("zip-device", "device or other special file"),
    ("tar-symlink", "is a link"),
    ("tar-hardlink", "is a link"),
    ("tar-device", "is a device file"),
    ("tar-absolute", "has an absolute path"),
    ("too-big", "unpacks to more than"),
    ("not-an-archive", "is not a readable archive"),
])
def test_unsafe_or_broken_archives_are_refused(tmp_path, kind, words):
    if kind.startswith("zip-"):
        name, mode = {"zip-dotdot": ("a/../../x.py", stat.S_IFREG | 0o644),
                      "zip-absolute": ("/etc/x.py", stat.S_IFREG | 0o644),
                      "zip-symlink": ("a/link", stat.S_IFLNK | 0o777),
                      "zip-device": ("a/dev", stat.S_IFCHR | 0o644)}[kind]
        archive = _zip(tmp_path / "s.zip", [("a/ok.py", b"x = 1\n", stat.S_IFREG | 0o644), (name, b"/etc", mode)])
    elif kind.startswith("tar-"):
        archive = tmp_path / "s.tar"
        with tarfile.open(archive, "w") as tf:
            _add(tf, "a/ok.py", b"x = 1\n")
            if kind == "tar-symlink":
                _add(tf, "a/link", kind=tarfile.SYMTYPE, linkname="/etc/passwd")
            elif kind == "tar-hardlink":
                _add(tf, "a/hard", kind=tarfile.LNKTYPE, linkname="a/ok.py")
            elif kind == "tar-device":
                _add(tf, "a/dev", kind=tarfile.CHRTYPE)
            else:
                _add(tf, "/tmp/evil.py", b"x = 1\n")
    elif kind == "too-big":
        archive = tmp_path / "s.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("a/zeros.bin", b"\0" * 200_000)                  # compresses to a few hundred bytes
    else:
        archive = tmp_path / "s.tar.gz"
        archive.write_bytes(b"this is not gzip")
    with pytest.raises(SubmissionError, match=re.escape(words)):
        extract_archive(archive, tmp_path / "out", max_bytes=100_000)
    assert not (tmp_path / "x.py").exists() and not (tmp_path / "out" / "a" / "link").exists()


def test_a_safe_archive_unpacks_its_files_and_folders(tmp_path):
    archive = _zip(tmp_path / "s.zip", [("top/", b"", stat.S_IFDIR | 0o755),
                                        ("top/tinyresnet/__init__.py", b"", stat.S_IFREG | 0o644),
                                        ("./top/notes.md", b"hi", 0)])
    extract_archive(archive, tmp_path / "out")
    assert (tmp_path / "out" / "top" / "notes.md").read_text() == "hi"
    assert find_copy(tmp_path / "out") == (tmp_path / "out" / "top").resolve()


def test_two_submissions_with_one_name_are_refused_before_grading(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "alice").mkdir()
    (tmp_path / "b" / "alice.zip").write_bytes(b"")
    assert main(["assignment", "grade", str(tmp_path / "a" / "alice"), str(tmp_path / "b" / "alice.zip"),
                 "--exercises", "relu_backward", "--gradebook", str(tmp_path / "g.csv")]) == 2
    assert "same student name (alice:" in capsys.readouterr().err
    assert not (tmp_path / "g.csv").exists()


# ---------------------------------------------------------------------------------- the course file
def test_the_course_file_is_validated_with_the_valid_exercises_listed(tmp_path, capsys):
    valid = valid_exercises()
    bad = tmp_path / "course.json"
    bad.write_text(json.dumps({"exercises": ["relu_backward", "softmax_backward"]}))
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    assert "unknown exercise(s) softmax_backward" in str(info.value) and ", ".join(valid) in str(info.value)
    for data, words in [({"points": {"relu_backwrd": 2}}, "points for unknown exercise(s) relu_backwrd"),
                        ({"points": {"relu_backward": {"visble": 1}}}, "take the keys visible and hidden"),
                        ({"points": {"relu_backward": {"hidden": -1}}}, "hidden cases must be a number >= 0"),
                        ({"points": {"relu_backward": -1}}, "must be a number >= 0, got -1"),
                        ({"points": {"relu_backward": True}}, "must be a number >= 0, got True"),
                        ({"exercise": ["relu_backward"]}, "unknown key(s) exercise"),
                        ({"exercises": []}, "must be a non-empty list"),
                        ({"exercises": ["relu_backward", "relu_backward"]}, "listed more than once"),
                        ([1, 2], "expected a table")]:
        bad.write_text(json.dumps(data))
        with pytest.raises(ConfigError, match=re.escape(words)):
            load_config(bad)
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    toml = tmp_path / "course.toml"
    toml.write_text('exercises = ["relu_backward"]\n[points]\nrelu_backward = 2.5\n')
    assert load_config(toml) == {"exercises": ["relu_backward"], "points": {"relu_backward": 2.5}}
    # through the command: the error names the file; --exercises and the file's list do not mix
    bad.write_text(json.dumps({"exercises": ["softmax_backward"]}))
    assert main(["assignment", "grade", str(tmp_path), "--config", str(bad)]) == 2
    assert "unknown exercise(s) softmax_backward" in capsys.readouterr().err
    assert main(["assignment", "grade", str(tmp_path), "--config", str(toml), "--exercises", "relu_backward"]) == 2
    assert "given twice" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- the template
def test_the_classroom_template_has_a_test_per_exercise_with_its_points():
    template = ROOT / "templates" / "classroom" / ".github"
    tests = json.loads((template / "classroom" / "autograding.json").read_text(encoding="utf-8"))["tests"]
    assert [t["name"] for t in tests] == list(EXERCISES)
    for t in tests:
        assert t["points"] == EXERCISES[t["name"]].points
        assert t["run"].startswith(f"tinyresnet assignment check --exercises {t['name']}")
        assert "pip install -e ." in t["setup"]
    workflow = (template / "workflows" / "classroom.yml").read_text(encoding="utf-8")
    assert "pip install -e ." in workflow and "tinyresnet assignment check --json" in workflow
    for ex, e in EXERCISES.items():
        assert re.search(rf"--exercises {ex} .*\n.*\n +max-score: {e.points}\n", workflow), ex
        assert f"{ex.upper()}_RESULTS: \"${{{{ steps.{ex}.outputs.result }}}}\"" in workflow
    assert f"runners: {','.join(EXERCISES)}\n" in workflow
    assert not (ROOT / ".github" / "workflows" / "classroom.yml").exists()       # it must not run on this repo


def test_json_lists_every_submission_with_its_student_and_the_ungraded_ones_with_their_error(tmp_path, capsys):
    release(tmp_path / "bob", exercises=["relu_backward"], verify=False)
    (tmp_path / "nobody").mkdir()
    code = main(["assignment", "grade", str(tmp_path / "bob"), str(tmp_path / "nobody"), "--json",
                 "--exercises", "relu_backward", "--timeout", "30"])
    assert code == 1
    bob, nobody = json.loads(capsys.readouterr().out)
    assert bob["student"] == "bob" and bob["total_points"] == 0 and bob["max_points"] == 1
    assert nobody["student"] == "nobody" and "holds no copy of tinyresnet" in nobody["error"]


def test_the_teachers_guide_covers_grading_a_class():
    guide = (ROOT / "docs" / "teaching.md").read_text(encoding="utf-8")
    section = guide[guide.index("## Grading a class"):]
    for words in ["--gradebook grades.csv --feedback feedback/", "used\nas is", "assignment-username",
                  "200 MB", "student,relu_backward", "integrity", "<grader>", '"points": {"relu_backward": 5}',
                  "[points]", "templates/classroom/.github/", "autograding.json", "FROM python:3.11-slim",
                  "--network none", "--memory 2g", "Partial credit per group of cases is not offered"]:
        assert words in section, words


def test_a_course_file_can_split_an_exercises_points_over_its_visible_and_hidden_cases():
    from tinyresnet.assignment.gradebook import apply_points
    entry = {"exercise": "conv_backward", "passed": False, "points": 0, "max_points": 4,
             "groups": {"visible": True, "hidden": False}}
    report = apply_points({"exercises": [entry]}, {"conv_backward": {"visible": 2, "hidden": 3}})
    assert (report["total_points"], report["max_points"]) == (2, 5)
    assert apply_points({"exercises": [entry]}, {})["total_points"] == 0          # all or nothing by default
