"""Classroom assignments (issue 9): solution markers, student releases, the students' check, the grader.

Grading starts child processes, so each copy is written once per module and graded once: the
planted mistakes are grouped in two copies, and each grading shows both that the exercises with a
mistake fail (with a message that says why) and that every other exercise still passes.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import tinyresnet
from tinyresnet.assignment import (
    EXERCISES,
    MarkerError,
    ReleaseError,
    check,
    find_regions,
    format_report,
    grade,
    release,
)
from tinyresnet.assignment.checks import VISIBLE_CASES, describe_exception
from tinyresnet.assignment.grade import _release_mismatch
from tinyresnet.assignment.hidden import HIDDEN_CASES
from tinyresnet.assignment.markers import find_all_regions, region_body, replace_bodies, scan_text
from tinyresnet.assignment.release import stub
from tinyresnet.cli import main

PACKAGE = Path(tinyresnet.__file__).resolve().parent
REGIONS = find_regions(PACKAGE)
IDS = [ex for ex in EXERCISES if ex in REGIONS]
# the regions the engine core ships with (basicblock_forward comes with the models)
CORE = {"relu_backward", "add_backward", "im2col", "col2im", "conv_backward", "maxpool_backward", "batchnorm_backward"}
TIMEOUT = 60.0


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """The untouched student release of every exercise."""
    out = tmp_path_factory.mktemp("release") / "student"
    summary = release(out)                       # also imports the copy in a fresh process
    return out, summary


@pytest.fixture(scope="module")
def reports():
    """Gradings shared by several tests (the instructor's values are computed once per process)."""
    return {}


def _graded(reports, key, folder, timeout=TIMEOUT):
    if key not in reports:
        reports[key] = grade(folder, timeout=timeout)
    return reports[key]


def _by_exercise(report):
    return {e["exercise"]: e for e in report["exercises"]}


def _solution_copy(folder):
    """A copy of the package with every solution kept (a release of no exercises), without the release's
    assignment.json: graded like the instructor's source, every exercise."""
    release(folder, exercises=[], verify=False)
    (folder / "assignment.json").unlink()
    return find_regions(folder / "tinyresnet")


def _plant(regions, exercise, edit):
    """Replace the body of one region of a copy by ``edit(body, file text)``."""
    region = regions[exercise]
    text = region.path.read_text(encoding="utf-8")
    body = region_body(text, region)
    new = edit(body, text)
    assert new != body, f"planting a mistake in {exercise} changed nothing: update this test to the new code"
    region.path.write_text(replace_bodies(text, {exercise: new}, parts=False), encoding="utf-8")


def _needs(text, *names):
    missing = [n for n in names if n not in text]
    if missing:
        pytest.fail(f"the code around a region changed (no {', '.join(missing)}); update the planted mistake")


# ---------------------------------------------------------------------------------- markers
def test_regions_are_found_by_scanning_the_package_and_all_have_exercises_and_checks():
    assert CORE <= set(REGIONS), f"missing solution regions: {CORE - set(REGIONS)}"
    assert set(REGIONS) <= set(EXERCISES), f"regions without an entry in exercises.py: {set(REGIONS) - set(EXERCISES)}"
    for ex in REGIONS:
        assert [c for c in VISIBLE_CASES if c.exercise == ex], f"{ex} has no visible check"
        assert [c for c in HIDDEN_CASES if c.exercise == ex], f"{ex} has no hidden check"
        assert REGIONS[ex].relpath.startswith("tinyresnet/")


def test_hidden_cases_are_configurations_the_handout_does_not_list():
    visible = {(c.exercise, json.dumps(c.params, sort_keys=True)) for c in VISIBLE_CASES}
    for case in HIDDEN_CASES:
        assert case.hidden
        assert (case.exercise, json.dumps(case.params, sort_keys=True)) not in visible, case.name


GOOD = "def f(x):\n    ### BEGIN SOLUTION ex_a\n    y = x\n    ### END SOLUTION ex_a\n    return y\n"


@pytest.mark.parametrize("text, words", [
    ("def f(x):\n    ### BEGIN SOLUTION ex_a\n    y = x\n    return y\n", ["m.py:2", "no '### END SOLUTION ex_a'"]),
    ("def f(x):\n    y = x\n    ### END SOLUTION ex_a\n", ["m.py:3", "without a BEGIN"]),
    ("def f(x):\n    ### BEGIN SOLUTION ex_a\n    y = x\n    ### END SOLUTION ex_b\n", ["m.py:4", "ids must match"]),
    ("def f(x):\n    ### BEGIN SOLUTION ex_a\n    ### BEGIN SOLUTION ex_b\n    y = x\n", ["m.py:3", "cannot nest"]),
    ("def f(x):\n    ### BEGIN SOLUTION\n    y = x\n    ### END SOLUTION\n", ["m.py:2", "needs an exercise id"]),
    ("def f(x):\n    ### BEGIN SOLUTON ex_a\n    y = x\n", ["m.py:2", "unrecognised solution marker"]),
    ("def f(x):\n    ### BEGIN SOLUTION ex_a\n    y = x\n  ### END SOLUTION ex_a\n", ["m.py:4", "indented"]),
    ("def f(x):\n    ### BEGIN SOLUTION ex_a\n\n    ### END SOLUTION ex_a\n", ["m.py:2", "empty"]),
])
def test_malformed_markers_fail_clearly(text, words):
    with pytest.raises(MarkerError) as info:
        scan_text(text, "m.py")
    for word in words:
        assert word in str(info.value)


def test_marker_lines_inside_strings_are_not_markers_and_duplicates_across_files_fail(tmp_path):
    assert [r.exercise for r in scan_text(GOOD, "m.py")] == ["ex_a"]
    assert scan_text('DOC = """\n### BEGIN SOLUTION ex_a\n"""\n', "m.py") == []
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(GOOD)
    (package / "sub" / "b.py").write_text(GOOD)
    with pytest.raises(MarkerError, match=r"pkg/sub/b.py:2: the exercise ex_a is already marked at pkg/a.py:2"):
        find_regions(package)


PARTS = ("def f(x):\n    ### BEGIN SOLUTION ex_a\n    y = x\n    ### END SOLUTION ex_a\n    return y\n"
         "def g(x):\n    ### BEGIN SOLUTION ex_a:copy\n    y = x\n    ### END SOLUTION ex_a:copy\n    return y\n")


def test_an_exercise_can_mark_several_regions_and_all_are_replaced(tmp_path):
    regions = scan_text(PARTS, "m.py")
    assert [(r.exercise, r.part, r.key) for r in regions] == [("ex_a", "", "ex_a"), ("ex_a", "copy", "ex_a:copy")]
    stubbed = replace_bodies(PARTS, {"ex_a": "raise NotImplementedError\n"})
    assert stubbed.count("raise NotImplementedError") == 2
    assert replace_bodies(PARTS, {"ex_a": "z = 1\n"}, parts=False).count("z = 1") == 1
    with pytest.raises(MarkerError, match="ids must match"):
        scan_text("def f(x):\n    ### BEGIN SOLUTION ex_a:copy\n    y = x\n    ### END SOLUTION ex_a\n", "m.py")
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(PARTS.split("def g")[0])
    (package / "b.py").write_text("def g" + PARTS.split("def g")[1])
    assert [r.key for r in find_all_regions(package)["ex_a"]] == ["ex_a", "ex_a:copy"]
    (package / "a.py").unlink()
    with pytest.raises(MarkerError, match="belongs to an exercise with no main region"):
        find_all_regions(package)


def test_the_places_that_give_an_answer_away_are_parts_of_that_exercise():
    parts = {r.key for found in find_all_regions(PACKAGE).values() for r in found if r.part}
    assert {"basicblock_forward:plainblock", "batchnorm_backward:eval", "avgpool_backward:adaptive",
            "autograd_backward:order"} <= parts
    for ex in ("conv_backward", "conv1x1_backward", "basicblock_forward", "bottleneck_forward"):
        assert EXERCISES[ex].gives_away, ex               # each is a template of the other: released together
    with pytest.raises(ReleaseError, match="release both"):
        release(PACKAGE.parent.parent / "never-written", exercises=["conv_backward"], verify=False)


def test_replacing_a_region_keeps_its_markers_and_indentation():
    text = replace_bodies(GOOD, {"ex_a": "raise NotImplementedError('ex_a: hint')\n"})
    assert text.splitlines()[1:4] == ["    ### BEGIN SOLUTION ex_a", "    raise NotImplementedError('ex_a: hint')",
                                      "    ### END SOLUTION ex_a"]
    assert region_body(text, scan_text(text, "m.py")[0]) == "raise NotImplementedError('ex_a: hint')\n"


# ---------------------------------------------------------------------------------- release
def test_release_replaces_every_region_by_a_raise_with_its_hint(released):
    out, summary = released
    assert summary["exercises"] == IDS and summary["kept"] == []
    student = find_regions(out / "tinyresnet")
    assert set(student) == set(IDS)
    for ex, found in find_all_regions(out / "tinyresnet").items():
        for region in found:                          # the main region and every part
            text = region.path.read_text(encoding="utf-8")
            assert region_body(text, region) == stub(ex), region.key
            assert f'raise NotImplementedError("{ex}: {EXERCISES[ex].hint}")' in text
            # everything else in the file is the instructor's, unchanged
            source = (PACKAGE.parent / region.relpath).read_text(encoding="utf-8")
            assert text == replace_bodies(source, {r: stub(r) for r in IDS})
    assert not (out / "tinyresnet" / "assignment" / "hidden.py").exists()
    assert not (out / "tinyresnet" / "kernels").exists()          # the fast tier (the solutions, made fast) stays
    region_files = {r.path for found in find_all_regions(PACKAGE).values() for r in found}
    for path in PACKAGE.rglob("*"):                   # the rest of the package is copied as it is
        if path.is_file() and "__pycache__" not in path.parts and path.name != "hidden.py" \
                and "kernels" not in path.relative_to(PACKAGE).parts and not path.name.startswith("."):
            copied = out / path.relative_to(PACKAGE.parent)
            assert copied.is_file(), copied
            if path not in region_files:
                assert copied.read_bytes() == path.read_bytes(), copied
    assert not list(out.rglob("__pycache__"))
    for name in ("setup.py", "pyproject.toml", "README.md", "HANDOUT.md", "tests/test_exercises.py"):
        assert (out / name).is_file(), name
    manifest = json.loads((out / "assignment.json").read_text(encoding="utf-8"))
    assert manifest["exercises"] == IDS and manifest["points"] == {ex: EXERCISES[ex].points for ex in IDS}
    # the tutorials come along, but those that spell out a released exercise's answer
    assert manifest["tutorials_left_out"] == ["tutorials/10_backprop_by_hand.py"]
    assert not (out / "tutorials" / "10_backprop_by_hand.py").exists()
    assert (out / "tutorials" / "01_degradation.py").is_file()


def test_the_copys_install_brings_pytest(released, tmp_path):
    """`pip install -e .` of the copy installs what `pytest tests/` needs: its metadata lists pytest."""
    out, _ = released
    done = subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path)], cwd=out,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    requires = (tmp_path / "tinyresnet.egg-info" / "requires.txt").read_text().split("\n\n")[0].split()
    assert any(r.startswith("pytest") for r in requires), requires
    assert "pip install -e ." in (out / "README.md").read_text(encoding="utf-8")


def test_handout_lists_each_exercise_with_the_maths_shapes_and_checks(released):
    out, _ = released
    handout = (out / "HANDOUT.md").read_text(encoding="utf-8")
    student = find_regions(out / "tinyresnet")
    for ex in IDS:
        assert f"### {ex}: {EXERCISES[ex].title}" in handout
        assert f"`{student[ex].location}`" in handout                       # where it is, in the copy
        for case in VISIBLE_CASES:
            if case.exercise == ex:
                assert f"- {case.name}" in handout
    for case in HIDDEN_CASES:
        assert case.name not in handout
    for text in ("dx = dout ⊙ 1[x > 0]", "μ and σ² are functions of every xᵢ", "Σ dx = 0", "Shapes:",
                 "tinyresnet assignment check", "pytest tests/", "gradcheck"):
        assert text in handout, text
    assert "{{" not in handout                                             # every placeholder filled in
    assert f"Total: {sum(EXERCISES[ex].points for ex in IDS)} points" in handout


def test_release_of_some_exercises_keeps_the_other_solutions_and_refuses_bad_requests(tmp_path, capsys):
    out = tmp_path / "partial"
    assert main(["assignment", "release", str(out), "--exercises", "relu_backward"]) == 0
    assert "--exercises relu_backward" in capsys.readouterr().out
    student = find_regions(out / "tinyresnet")
    for ex in IDS:
        body = region_body(student[ex].path.read_text(encoding="utf-8"), student[ex])
        expected = stub(ex) if ex == "relu_backward" else region_body(REGIONS[ex].path.read_text("utf-8"), REGIONS[ex])
        assert body == expected, ex
    assert main(["assignment", "release", str(out)]) == 2                # not an empty folder
    assert "not an empty folder" in capsys.readouterr().err
    assert main(["assignment", "release", str(tmp_path / "new"), "--exercises", "softmax_backward"]) == 2
    err = capsys.readouterr().err
    assert "unknown exercise(s) softmax_backward" in err and "relu_backward" in err
    with pytest.raises(ReleaseError, match="inside the source package"):
        release(PACKAGE / "release_here")
    # grading every exercise of this copy would score the kept solutions: the grader says so
    warning = _release_mismatch(out, IDS, None)
    assert warning and "Grade with --exercises relu_backward" in warning[0]
    assert _release_mismatch(out, ["relu_backward"], ["relu_backward"]) == []


# ---------------------------------------------------------------------------------- grading
def test_grading_the_untouched_release_gives_zero_and_names_not_implemented_per_exercise(released, reports, capsys):
    out, _ = released
    assert main(["assignment", "grade", str(out), "--json", "--timeout", str(TIMEOUT)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert Path(report["imported_from"]) == out / "tinyresnet" / "__init__.py"     # the copy, not the grader's
    assert report["total_points"] == 0 and report["max_points"] == sum(EXERCISES[ex].points for ex in IDS)
    entries = _by_exercise(report)
    assert list(entries) == IDS
    for ex, entry in entries.items():
        assert entry["status"] == "not implemented" and entry["points"] == 0, entry
        # each exercise runs on the whole copy (no instructor's code reaches the child): it fails on its
        # own raise or on one of the exercises its checks also run, and the report names those
        raised = [r for r in (ex,) + EXERCISES[ex].requires if f"NotImplementedError: {r}: " in entry["message"]]
        assert raised, entry["message"]
        if raised != [ex]:
            assert "this check also runs" in entry["message"]
        assert "tinyresnet/" in entry["message"]                                   # and where it was raised
    assert not [f for f in report["integrity"] if f["kind"] != "changed outside regions"], report["integrity"]


def test_grading_the_instructors_source_gives_full_points(reports):
    report = _graded(reports, "instructor", PACKAGE.parent)
    assert Path(report["imported_from"]) == PACKAGE / "__init__.py"
    entries = _by_exercise(report)
    for ex, entry in entries.items():
        assert entry["passed"] and entry["points"] == EXERCISES[ex].points, (ex, entry["message"])
        assert entry["max_rel_error"] < 1e-6, (ex, entry["where"])
        assert {c["hidden"] for c in entry["cases"]} == {False, True}
    assert report["total_points"] == report["max_points"] == sum(EXERCISES[ex].points for ex in IDS)
    assert re.search(rf"^total +{report['max_points']} / {report['max_points']}$", format_report(report), re.M)


def test_planted_mistakes_fail_exactly_their_exercises_with_a_helpful_message(tmp_path, reports):
    regions = _solution_copy(tmp_path)

    def drop_transpose(body, text):                  # conv backward: dout flattened without moving OC last
        if "dout.transpose(0, 2, 3, 1)" in body:
            return body.replace("dout.transpose(0, 2, 3, 1)", "dout", 1)
        return "dout = dout.transpose(0, 2, 3, 1).reshape(dout.shape)   # the missing transpose\n" + body

    def constant_mean(body, text):                   # BN backward: the batch mean treated as a constant
        _needs(text, "dxhat", "xhat", "invstd")
        return "dx = (dxhat - xhat * (dxhat * xhat).mean(axis=(0, 2, 3), keepdims=True)) * invstd[:, None, None]\n"

    def no_broadcast_sum(body, text):                # add backward: dout handed back without summing
        _needs(text, "return da, db")
        return "da, db = dout, dout\n"

    _plant(regions, "conv_backward", drop_transpose)
    _plant(regions, "batchnorm_backward", constant_mean)
    _plant(regions, "add_backward", no_broadcast_sum)
    entries = _by_exercise(_graded(reports, "mistakes", tmp_path))
    failed = {ex for ex, e in entries.items() if not e["passed"]}
    # each exercise runs on the whole copy: the block runs its conv, batch norm and addition, and the
    # hidden im2col / col2im cases gradcheck a convolution, so those fail with them (the block says why)
    assert failed == {"conv_backward", "batchnorm_backward", "add_backward", "basicblock_forward", "im2col",
                      "col2im", "bottleneck_forward"}, {ex: e["message"] for ex, e in entries.items()
                                                        if not e["passed"]}
    for ex in ("im2col", "col2im"):
        assert all(c["status"] == "pass" for c in entries[ex]["cases"] if not c["hidden"]), entries[ex]["message"]
    block = entries["basicblock_forward"]["message"]
    assert "this check also runs" in block and all(ex in block for ex in ("add_backward", "conv_backward"))
    for ex in set(IDS) - failed:
        assert entries[ex]["points"] == EXERCISES[ex].points
    conv = entries["conv_backward"]
    assert conv["status"] == "fail" and conv["max_rel_error"] > 1e-3
    assert "relative error" in conv["message"] and ("dx[" in conv["message"] or "dweight[" in conv["message"])
    # the report leads with the simplest failing visible case (the document's 1x1 example) and the
    # advice for the layout mistake the handout predicts
    assert conv["message"].startswith("document: gradients of the 1x1 example: ")
    assert "Hint: a layout mistake, as the handout predicts" in conv["message"]
    bn = entries["batchnorm_backward"]
    assert bn["status"] == "fail" and "batch mean" in bn["message"] and "sum to 0" in bn["message"]
    add = entries["add_backward"]
    assert add["status"] == "error" and "broadcast (2, 3, 4, 4) + (1, 3, 1, 1)" in add["message"]
    assert "for an input of shape (1, 3, 1, 1)" in add["message"]


def test_infinite_loops_and_crashes_cost_only_their_exercise(tmp_path, reports):
    regions = _solution_copy(tmp_path)
    _plant(regions, "relu_backward", lambda body, text: "while True:\n    pass\n")
    kill = ("import os\nos._exit(70)\n" if sys.platform == "win32" else
            "import os\nimport signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    _plant(regions, "maxpool_backward", lambda body, text: kill)
    _plant(regions, "col2im", lambda body, text: "import sys\nsys.exit(3)\n")
    entries = _by_exercise(_graded(reports, "crashes", tmp_path, timeout=10.0))
    assert entries["relu_backward"]["status"] == "timeout"
    assert "timed out after 10 s" in entries["relu_backward"]["message"]
    assert entries["maxpool_backward"]["status"] == "crash"
    assert "died during this exercise" in entries["maxpool_backward"]["message"]
    assert entries["col2im"]["status"] == "error" and "sys.exit(3)" in entries["col2im"]["message"]
    # the exercises whose checks run those regions fail with them (each is graded on the whole copy)
    # (the hidden im2col cases gradcheck a convolution, whose backward runs col2im)
    for ex in ("conv_backward", "basicblock_forward", "bottleneck_forward", "im2col"):
        assert not entries[ex]["passed"], entries[ex]
    for ex in set(IDS) - {"relu_backward", "maxpool_backward", "col2im", "conv_backward", "basicblock_forward",
                          "bottleneck_forward", "im2col"}:
        assert entries[ex]["passed"], (ex, entries[ex]["message"])


def test_a_backward_error_from_python_3_10_still_counts_as_not_implemented():
    from tinyresnet.autograd import BackwardError
    try:
        try:
            raise NotImplementedError("relu_backward: a hint")
        except NotImplementedError as e:
            raise BackwardError("in the backward pass of ReLUFunction: NotImplementedError") from e
    except BackwardError as wrapped:
        described = describe_exception(wrapped, str(PACKAGE))
    assert described["status"] == "not implemented"
    assert described["message"].startswith("NotImplementedError: relu_backward: a hint")


# ---------------------------------------------------------------------------------- the students' side
def test_check_reports_per_exercise_on_the_release_and_passes_on_the_solutions(released, tmp_path, capsys):
    out, _ = released
    assert main(["assignment", "check", str(out), "--timeout", str(TIMEOUT)]) == 1
    text = capsys.readouterr().out
    for ex in IDS:
        assert f"{ex:<20} NOT IMPLEMENTED" in text
    assert f"0 of {len(IDS)} exercises pass" in text
    _solution_copy(tmp_path)
    report = check(tmp_path, timeout=TIMEOUT)
    assert report["passed"] == report["total"] == len(IDS), format_report(report, points=False)


def test_the_students_tests_run_in_their_copy(tmp_path):
    """A student who writes the right code into the release passes their own tests."""
    release(tmp_path, exercises=["relu_backward", "add_backward"], verify=False)
    student = find_regions(tmp_path / "tinyresnet")
    for ex in ("relu_backward", "add_backward"):
        _plant(student, ex, lambda body, text, ex=ex: region_body(REGIONS[ex].path.read_text("utf-8"), REGIONS[ex]))
    env = dict(os.environ, PYTHONPATH=str(tmp_path), PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_exercises.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "4 passed" in done.stdout


def test_the_release_runs_on_the_plain_ops_and_the_grader_computes_on_them(released):
    """No fast kernel in the copy: a conv there runs the plain Conv2dFunction (the students' own),
    and the grader's child starts on the plain tier even from the instructor's copy."""
    import subprocess
    import sys

    from tinyresnet.assignment.runner import _child_env
    out, _ = released
    code = ("from tinyresnet import tiers; from tinyresnet.ops.conv import Conv2dFunction; "
            "print(tiers.fast_package(), tiers.implementation(Conv2dFunction).__name__)")
    done = subprocess.run([sys.executable, "-s", "-c", code], capture_output=True, text=True, cwd=out,
                          env=_child_env(out), timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["None", "Conv2dFunction"]
    assert _child_env(PACKAGE.parent)["TINYRESNET_KERNELS"] == "plain"


def test_grade_defaults_to_the_exercises_the_copy_was_released_with_and_a_changed_manifest_drops_none(tmp_path):
    """An untouched release of relu_backward alone scores 0 of relu's points (not the other exercises'
    kept solutions); deleting relu_backward from assignment.json does not take it out of the grading,
    since its region differs from the instructor's."""
    out = tmp_path / "partial"
    release(out, exercises=["relu_backward"], verify=False)
    report = grade(out, timeout=TIMEOUT)
    assert [e["exercise"] for e in report["exercises"]] == ["relu_backward"]
    assert report["total_points"] == 0 and report["max_points"] == EXERCISES["relu_backward"].points
    assert any("release" in note for note in report["notes"])
    manifest = out / "assignment.json"
    data = json.loads(manifest.read_text())
    data["exercises"] = []
    manifest.write_text(json.dumps(data))
    assert [e["exercise"] for e in grade(out, timeout=TIMEOUT)["exercises"]] == ["relu_backward"]
