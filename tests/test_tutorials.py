"""The numbered tutorials: each executes as a notebook in quick mode, shows its figures inline, writes them
to its output folder, and reads as a lesson (opening, claims, predictions, exercises).

All tutorials run once per session, as notebooks (jupytext + nbclient, as `jupyter nbconvert --execute`
would), two at a time (TINYRESNET_TEST_WORKERS to change it), into a temporary folder; the tests then look
at the executed notebooks and at what each run wrote. One tutorial also runs as a script, to check the
command-line path. The numbers checked are the ones a quick run must already get exactly right (counts,
identities, gradient checks); quick training results are not meaningful and are not checked.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tutorial_run

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
SCRIPTS = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURE_CALL = re.compile(r"save_figure\([^)]*?\"([^\"]+\.png)\"")


def figures_of(script):
    """The PNG names a tutorial declares: the literal names of its ``save_figure`` calls."""
    return FIGURE_CALL.findall(script.read_text(encoding="utf-8"))


def test_there_are_the_ten_original_tutorials_and_each_declares_figures():
    numbers = [s.name[:2] for s in SCRIPTS]
    assert numbers[:10] == [f"{i:02d}" for i in range(1, 11)] and numbers == sorted(set(numbers))
    for script in SCRIPTS:
        assert figures_of(script), f"{script.name} saves no figure with _common.save_figure(fig, args, 'x.png')"


@pytest.fixture(scope="session")
def executed(tutorial_runs):
    """Every tutorial run as a notebook (conftest.tutorial_runs, shared with tests/test_experiments.py)."""
    return tutorial_runs


def notebook_of(stem, executed):
    return tutorial_run(executed, stem)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_tutorial_executes_as_a_notebook_with_inline_figures(script, executed):
    from tinyresnet.course.notebook import count_images

    notebook, out = notebook_of(script.stem, executed)
    names = figures_of(script)
    for name in names:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 2000, f"{script.stem}: {name} is not a drawn PNG"
    shown = count_images(notebook)
    assert shown >= len(names), f"{script.stem}: {shown} figures shown inline, {len(names)} saved ({names})"
    printed = (out / "output.txt").read_text(encoding="utf-8")
    assert printed.splitlines()[0].startswith(f"{script.stem} (quick run")
    json.loads((out / "results.json").read_text(encoding="utf-8"))


def test_the_script_path_still_works(tmp_path):
    """The same tutorial, started as a script with the old command line, writes the same files."""
    script = TUTORIALS / "03_one_by_one_convolutions.py"
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONIOENCODING="utf-8", TINYRESNET_QUICK="")
    proc = subprocess.run([sys.executable, str(script), "--quick", "--out", str(tmp_path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("03_one_by_one_convolutions (quick run")
    for name in figures_of(script):
        assert (tmp_path / name).read_bytes().startswith(PNG_SIGNATURE)
        assert f"[figure] {tmp_path / name}" in proc.stdout
    assert "[predict 03.rgb_pixel_1_0] no prediction yet" in proc.stdout
    assert "course.solution('03.1')" in proc.stdout and "<details>" not in proc.stdout


def results_of(stem, executed):
    _, out = notebook_of(stem, executed)
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def test_02_zero_init_blocks_are_exactly_the_identity(executed):
    r = results_of("02_skip_connections", executed)
    assert r["zero_init_max_deviation_train"] == 0.0 and r["zero_init_max_deviation_eval"] == 0.0
    assert r["doc_y_max_error"] < 1e-12
    assert 0.8 < r["slope_plain"] < 1.2 and 1.8 < r["slope_residual"] < 2.2


def test_03_finds_the_documents_fifteen_wrong_values(executed):
    r = results_of("03_one_by_one_convolutions", executed)
    assert r["mismatch_count"] == 15
    wrong = {(m["example"].split(",")[0].split(" at")[0], tuple(m["index"])): m["engine"] for m in r["mismatches"]}
    assert wrong[("RGB 3→2", (0, 1, 0))] == pytest.approx(4.3)
    assert wrong[("4→2", (1, 0))] == pytest.approx(2.9)
    assert r["bottleneck_reduce"] == pytest.approx([4.5, 2.78])
    assert (r["params_3x3"], r["params_1x1"], r["reduce_params"]) == (294_912, 32_768, 16_384)
    assert max(r["matmul_per_pixel_relative_difference"]["float64"].values()) < 1e-12


def test_04_counts_the_bottleneck_saving(executed):
    r = results_of("04_bottleneck", executed)
    basic, bottleneck = r["basic (3×3, 3×3)"], r["bottleneck (1×1, 3×3, 1×1)"]
    assert (basic["conv_params"], bottleneck["conv_params"]) == (1_179_648, 69_632)
    assert (basic["macs"], bottleneck["macs"]) == (3_699_376_128, 218_365_952)
    assert r["timings"]["basic (3×3, 3×3)"]["forward_s"] > 0


def test_05_plain_gradients_are_unbalanced_and_residual_ones_are_not(executed):
    r = results_of("05_gradient_flow", executed)["with_bn"]
    for depth in (20, 56, 110):
        assert r[f"plain{depth}"]["first_over_last"] > r[f"resnet{depth}"]["first_over_last"]
    assert r["plain110"]["first_over_last"] > 1e3 > r["resnet110"]["first_over_last"]
    assert len(r["resnet56"]["block_grad_norms"]) == 27 and len(r["plain110"]["weight_grad_norms"]) == 109


def test_06_the_table_of_architectures_agrees(executed):
    r = results_of("06_architectures", executed)
    assert all(all(checks.values()) for checks in r["agreements"].values())
    assert r["measured"]["resnet50"]["params"] == 25_557_032
    assert r["measured"]["resnet152"]["macs"] == 11_513_626_624


def test_10_hand_backward_matches_engine_and_finite_differences(executed):
    r = results_of("10_backprop_by_hand", executed)
    assert r["module_vs_steps"] == 0.0
    assert r["hand_vs_engine_max"] < 1e-12
    assert r["gradcheck_ok"] and r["gradcheck_max_rel_error"] < 1e-6
    assert sorted(r["gradcheck"]) == sorted(["x", "conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight",
                                             "bn2.weight", "bn2.bias"])


def test_predictions_are_checked_after_the_run_and_never_answered_before(executed):
    """Each prediction prints the reminder before its experiment and a check after it, in that order."""
    for script in SCRIPTS:
        notebook, _ = notebook_of(script.stem, executed)
        printed = "".join(out.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                          for out in cell.get("outputs", []))
        keys = re.findall(r"\[predict ([\w.]+)\] no prediction yet", printed)
        for key in keys:
            assert printed.index(f"[predict {key}]") < printed.index(f"[check {key}] measured"), key


# ------------------------------------------------------------------------------------------ the lessons' shape
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_tutorial_is_a_lesson(script):
    jupytext = pytest.importorskip("jupytext", reason="jupytext reads the tutorials as notebooks: pip install jupytext")
    notebook = jupytext.read(script)
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds[0] == "markdown" and kinds.count("markdown") >= 3 and kinds.count("code") >= 3
    opening = notebook.cells[0].source
    assert opening.startswith(f"# {script.name[:2]} · ")
    assert "**What you will learn**" in opening and "**The claims tested here**" in opening, script.name
    first_code = next(c.source for c in notebook.cells if c.cell_type == "code")
    assert first_code.startswith("QUICK = None") and "quick=QUICK" in first_code, script.name
    source = script.read_text(encoding="utf-8")
    predicted = re.findall(r"course\.predict\(\s*\"([\w.]+)\"", source)
    checked = re.findall(r"course\.check_prediction\(\s*\"([\w.]+)\"", source)
    assert predicted, f"{script.name} has no prediction cell (course.predict)"
    assert sorted(predicted) == sorted(set(predicted)) == sorted(set(checked)), (predicted, checked)
    for key in predicted:                     # the check comes after the prediction
        assert source.index(f'course.predict("{key}"') < source.index(f'course.check_prediction("{key}"')
    assert re.search(r"course\.check_exercise\(\s*\"[\w.]+\"", source), f"{script.name} has no exercise"


def test_every_exercise_a_tutorial_uses_exists():
    from tinyresnet import course

    for script in SCRIPTS:
        source = script.read_text(encoding="utf-8")
        own = set(re.findall(r"Exercise\(\s*(?:id=)?\"([\w.]+)\"", source))
        for exercise_id in re.findall(r"course\.check_exercise\(\s*\"([\w.]+)\"", source):
            assert exercise_id in course.EXERCISES or exercise_id in own, f"{script.name}: no exercise {exercise_id}"


OUTSIDE = re.compile(r"https?://|\.\./shared|shared/seed|(?<![\w.~])/(?:work|home|tmp|root|usr|opt|mnt)/")


def test_no_link_points_outside_the_repository():
    sources = [*TUTORIALS.glob("*.py"), TUTORIALS / "README.md", *(ROOT / "tinyresnet" / "course").glob("*.py")]
    for path in sources:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not OUTSIDE.search(line), f"{path.relative_to(ROOT)}:{number} points outside the repository: {line}"


def test_readme_shows_every_tutorial_and_its_committed_figures():
    readme = (TUTORIALS / "README.md").read_text(encoding="utf-8")
    for script in SCRIPTS:
        assert script.name in readme, f"tutorials/README.md does not mention {script.name}"
    links = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", readme)
    assert len(links) >= 10
    for link in links:
        assert (TUTORIALS / link).resolve().is_file(), f"tutorials/README.md shows {link}, which does not exist"
    for script in SCRIPTS[:10]:
        for name in figures_of(script):
            assert (ROOT / "docs" / "results" / script.stem / name).is_file(), \
                f"docs/results/{script.stem}/{name} is not committed"
