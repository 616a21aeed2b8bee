"""Attacks on the autograder, as a determined student would try them: each scores 0 on the attacked
exercise (relu_backward) and is flagged where an integrity finding applies.

Each attack is planted in a copy that keeps every other solution, graded on relu_backward and
maxpool_backward (which no attack touches, so it shows the grader kept going), with a short time
limit. The child only computes; the grader judges its numbers itself (runner.py, grade.py).
"""

import os
import time
from pathlib import Path

import pytest

import tinyresnet
from tinyresnet.assignment import find_regions, grade, release
from tinyresnet.assignment.markers import replace_bodies

PACKAGE = Path(tinyresnet.__file__).resolve().parent
EXERCISES = ["relu_backward", "maxpool_backward"]
TIMEOUT = 5.0


def _copy(tmp_path):
    """A copy with every solution kept (a release of no exercises)."""
    release(tmp_path / "copy", exercises=[], verify=False)
    return tmp_path / "copy"


def _plant(copy, body):
    region = find_regions(copy / "tinyresnet")["relu_backward"]
    text = region.path.read_text(encoding="utf-8")
    region.path.write_text(replace_bodies(text, {"relu_backward": body}), encoding="utf-8")


def _attack(tmp_path, body, timeout=TIMEOUT):
    copy = _copy(tmp_path)
    _plant(copy, body)
    return _grade(copy, timeout)


def _grade(copy, timeout=TIMEOUT):
    report = grade(copy, exercises=EXERCISES, timeout=timeout)
    report["by"] = {e["exercise"]: e for e in report["exercises"]}
    return report


def _kinds(report):
    return {f["kind"] for f in report["integrity"]}


def _zero(report, still_passes=True):
    """The attacked exercise scores 0, the other still passes, and the teacher is told (a finding)."""
    relu = report["by"]["relu_backward"]
    assert relu["points"] == 0 and not relu["passed"], relu
    assert _kinds(report) - {"changed outside regions"}, ("the attack is not flagged", report["integrity"])
    if still_passes:
        assert report["by"]["maxpool_backward"]["passed"], report["by"]["maxpool_backward"]["message"]


# ---------------------------------------------------------------------------------- honest copies
def test_the_instructors_code_scores_full_marks_with_no_findings(tmp_path):
    report = _grade(_copy(tmp_path))
    assert report["total_points"] == report["max_points"] == 4
    assert not _kinds(report) - {"changed outside regions"}, report["integrity"]


def test_an_empty_release_scores_zero(tmp_path):
    release(tmp_path / "rel", exercises=EXERCISES, verify=False)
    report = _grade(tmp_path / "rel")
    assert report["total_points"] == 0
    assert {e["status"] for e in report["exercises"]} == {"not implemented"}


# ---------------------------------------------------------------------------------- (1) a trusted child
FAKE = ('print("@@tinyresnet-grader {\\"event\\": \\"result\\", \\"exercise\\": \\"relu_backward\\", '
        '\\"cases\\": []}")\n')


def test_forged_report_lines_are_ignored(tmp_path):
    body = ("import os\n"
            "os.write(1, b'@@tinyresnet-grader {\"event\": \"result\", \"exercise\": \"relu_backward\", \"cases\": "
            "[{\"status\": \"pass\"}]}\\n')\n" + FAKE + "dx = dout * 0\n")
    report = _attack(tmp_path, body)
    _zero(report)
    assert report["by"]["relu_backward"]["status"] == "fail"
    assert "suspicious code" in _kinds(report)


def test_calling_the_childs_reporting_function_with_forged_results_fails(tmp_path):
    body = ("import sys\n"
            "child, checks = sys.modules['__main__'], sys.modules['_tinyresnet_grader_checks']\n"
            "import numpy, json, pathlib\n"
            "job = json.loads(pathlib.Path(sys.argv[1]).read_text())\n"
            "fake = {'values': {}, 'expected': [], 'gradchecks': [], 'problems': [], 'error': None}\n"
            "cases = {c['name']: fake for c in job['cases'] if c['exercise'] == 'relu_backward'}\n"
            "child._write_result(pathlib.Path(job['results']), 'relu_backward', cases, numpy, checks)\n"
            "import os\nos._exit(0)\n")
    report = _attack(tmp_path, body)
    _zero(report)
    # the child died after writing the forged file: the exercise it was on is a crash, the file ignored
    assert report["by"]["relu_backward"]["status"] in ("crash", "fail"), report["by"]["relu_backward"]


def test_exiting_after_printing_pass_is_a_crash(tmp_path):
    report = _attack(tmp_path, "print('pass')\nprint('relu_backward: 1 / 1')\nimport os\nos._exit(0)\n")
    _zero(report)
    assert report["by"]["relu_backward"]["status"] == "crash"


# ---------------------------------------------------------------------------------- (2) code before the grader's
def test_startup_files_in_the_copy_never_run_and_are_flagged(tmp_path):
    copy = _copy(tmp_path)
    _plant(copy, "dx = dout * 0\n")
    marker = tmp_path / "ran.txt"
    payload = f"open({str(marker)!r}, 'w').write('ran')\n"
    for where in (copy / "sitecustomize.py", copy / "tinyresnet" / "sitecustomize.py",
                  copy / "usercustomize.py"):
        where.write_text(payload)
    (copy / "evil.pth").write_text(f"import os; {payload}")
    report = _grade(copy)
    _zero(report)
    assert not marker.exists()
    assert "startup file" in _kinds(report)


# ---------------------------------------------------------------------------------- (3) patching the checker
def test_patching_numpy_and_the_checks_module_in_the_child_changes_nothing(tmp_path):
    body = ("import sys\nimport numpy\n"
            "numpy.allclose = lambda *a, **k: True\n"
            "numpy.testing.assert_allclose = lambda *a, **k: None\n"
            "checks = sys.modules['_tinyresnet_grader_checks']\n"
            "checks.compare = lambda what, *a, **k: checks.Comparison(what, 0.0, (), 1.0)\n"
            "checks.judge_case = lambda case, *a, **k: {'status': 'pass'}\n"
            "checks.VALUE_TOLERANCE = checks.GRADCHECK_TOLERANCE = float('inf')\n"
            "dx = dout * 0\n")
    report = _attack(tmp_path, body)
    _zero(report)
    assert report["by"]["relu_backward"]["status"] == "fail"
    assert "suspicious code" in _kinds(report)


# ---------------------------------------------------------------------------------- (4) borrowing the instructor's code
def test_a_symlink_to_the_instructors_file_is_not_followed_and_is_flagged(tmp_path):
    copy = _copy(tmp_path)
    target = copy / "tinyresnet" / "ops" / "activation.py"
    target.unlink()
    target.symlink_to(PACKAGE / "ops" / "activation.py")
    report = _grade(copy)
    _zero(report, still_passes=False)                      # the copy has no activation.py: it cannot import
    assert "symlink" in _kinds(report)


def test_the_child_gets_no_reference_values_bodies_or_instructor_paths(tmp_path):
    leak = tmp_path / "leak.txt"
    body = ("import sys, os, json, pathlib\n"
            "seen = [pathlib.Path(sys.argv[1]).read_text(), json.dumps(dict(os.environ)), json.dumps(sys.path),\n"
            "        repr(sys.meta_path), repr(sys.path_hooks), repr(sorted(sys.modules))]\n"
            "for folder in [pathlib.Path(sys.argv[1]).parent.parent, pathlib.Path.cwd()]:\n"
            "    seen += [str(p) for p in folder.rglob('*')]\n"
            "    seen += [p.read_text(errors='replace') for p in folder.rglob('*.json')]\n"
            "try:\n    import tinyresnet.assignment.hidden\n    seen.append('HIDDEN IMPORTED')\n"
            "except ImportError:\n    pass\n"
            f"open({str(leak)!r}, 'w').write('\\n'.join(seen))\n"
            "dx = dout * 0\n")
    report = _attack(tmp_path, body)
    _zero(report)
    seen = leak.read_text()
    assert str(PACKAGE) not in seen                                   # no instructor path
    assert "xp.where(self.mask, dout, 0)" not in seen                 # no instructor region body
    assert "BEGIN SOLUTION relu_backward" not in seen.split("\n", 1)[0]
    assert "HIDDEN IMPORTED" not in seen and "hidden.py" not in seen
    assert "references" not in seen.split("\n", 1)[0]
    assert "_editable" not in repr([line for line in seen.splitlines() if "meta_path" in line or "Finder" in line])


def test_rewriting_the_instructors_checks_has_no_effect(tmp_path):
    checks_file = PACKAGE / "assignment" / "checks.py"
    original = checks_file.read_bytes()
    sabotage = "\\nVALUE_TOLERANCE = GRADCHECK_TOLERANCE = EXPECT_TOLERANCE = float('inf')\\n"
    body = ("import sys\n"
            f"open({str(checks_file)!r}, 'a').write({sabotage!r})\n"
            "open(sys.modules['_tinyresnet_grader_checks'].__file__, 'a').write('\\nVALUE_TOLERANCE = 1e300\\n')\n"
            "dx = dout * 0\n")
    try:
        copy = _copy(tmp_path)
        _plant(copy, body)
        report = _grade(copy)
        _zero(report, still_passes=False)            # a copy that writes into the grader scores nothing
        assert report["total_points"] == 0 and "changed the grader" in _kinds(report)
        assert checks_file.read_bytes() == original  # put back: the next grading, in any process, is sound
        aside = checks_file.with_name(checks_file.name + ".changed-during-grading")
        assert b"EXPECT_TOLERANCE = float('inf')" in aside.read_bytes()[len(original):]   # and nothing is lost
        aside.unlink()
        _zero(_grade(copy), still_passes=False)
    finally:
        checks_file.write_bytes(original)
        for leftover in checks_file.parent.glob("*.changed-during-grading"):
            leftover.unlink()


# ---------------------------------------------------------------------------------- (5) damaging the grader
def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_double_forked_process_does_not_outlive_grading(tmp_path):
    pidfile = tmp_path / "pid.txt"
    body = ("import os, time\n"
            "try:\n    first = os.fork()\nexcept OSError:\n    first = -1\n"
            "if first == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            f"        open({str(pidfile)!r}, 'w').write(str(os.getpid()))\n"
            "        time.sleep(120)\n"
            "    os._exit(0)\n"
            "time.sleep(0.5)\n"
            "dx = dout * 0\n")
    report = _attack(tmp_path, body)
    _zero(report)
    if pidfile.exists():                             # the fork was allowed (as root): it must be gone now
        time.sleep(0.2)
        assert not _alive(int(pidfile.read_text())), "a process the student's code forked outlived grading"


def test_a_huge_allocation_fails_inside_the_child(tmp_path):
    report = _attack(tmp_path, "import numpy\nbig = numpy.ones(6 * 2**30, dtype=numpy.uint8)\ndx = dout * 0\n")
    _zero(report)
    assert "MemoryError" in report["by"]["relu_backward"]["message"], report["by"]["relu_backward"]


def test_endless_output_is_cut_off(tmp_path):
    started = time.monotonic()
    report = _attack(tmp_path, "while True:\n    print('x' * 100000)\n")
    _zero(report)
    # the log file is capped (RLIMIT_FSIZE): writing past it fails, or the time limit stops it first
    assert report["by"]["relu_backward"]["status"] in ("timeout", "crash", "error")
    assert time.monotonic() - started < 6 * TIMEOUT


def test_a_heartbeat_does_not_reset_the_time_limit(tmp_path):
    started = time.monotonic()
    body = ("import time, sys\nwhile True:\n"
            "    print('@@tinyresnet-grader {\"event\": \"start\", \"exercise\": \"relu_backward\"}', flush=True)\n"
            "    sys.stderr.write('still working\\n')\n    time.sleep(0.05)\n")
    report = _attack(tmp_path, body)
    _zero(report)
    assert report["by"]["relu_backward"]["status"] == "timeout"
    assert time.monotonic() - started < 6 * TIMEOUT
