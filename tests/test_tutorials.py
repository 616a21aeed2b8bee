"""The numbered tutorials: each runs with --quick, writes its figures and numbers, and reads as a notebook.

Every tutorial runs once, as a subprocess (as a user would start it), into a temporary folder; the
tests then look at what it wrote. The numbers checked here are the ones a quick run must already get
exactly right (counts, identities, gradient checks); the training results of a quick run are not
meaningful and are not checked.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
SCRIPTS = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

FIGURES = {
    "01_degradation": ["figure1_plain.png", "figure6_plain_vs_resnet.png"],
    "02_skip_connections": ["identity_error.png", "block_corrections.png"],
    "03_one_by_one_convolutions": ["rgb_example.png", "params_3x3_vs_1x1.png"],
    "04_bottleneck": ["basic_vs_bottleneck.png", "macs_per_layer.png"],
    "05_gradient_flow": ["gradient_norms.png", "first_over_last.png"],
    "06_architectures": ["resnet_family.png", "per_stage.png"],
    "07_training_recipe": ["recipe_ablations.png"],
    "08_variants": ["small_variants_training.png", "full_size_variants.png"],
    "09_ensemble_view": ["delete_one_block.png", "delete_k_blocks.png"],
    "10_backprop_by_hand": ["block_graph.png", "forward_backward_arrays.png"],
}


def test_there_are_ten_numbered_tutorials():
    assert [s.name[:2] for s in SCRIPTS] == [f"{i:02d}" for i in range(1, 11)]
    assert sorted(s.stem for s in SCRIPTS) == sorted(FIGURES)


_runs = {}


def run_quick(stem, tmp_path_factory):
    """Run ``tutorials/<stem>.py --quick`` once per test session; return (process, output folder)."""
    if stem not in _runs:
        out = tmp_path_factory.mktemp(stem)
        env = dict(os.environ, MPLBACKEND="Agg", PYTHONIOENCODING="utf-8")
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(name, "1")
        proc = subprocess.run([sys.executable, str(TUTORIALS / f"{stem}.py"), "--quick", "--out", str(out)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        _runs[stem] = (proc, out)
    return _runs[stem]


@pytest.mark.parametrize("stem", sorted(FIGURES))
def test_tutorial_runs_quick_and_writes_its_figures(stem, tmp_path_factory):
    proc, out = run_quick(stem, tmp_path_factory)
    assert proc.returncode == 0, f"{stem}.py --quick failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for name in FIGURES[stem]:
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 2000, f"{stem}: {name} is not a drawn PNG"
        assert f"[figure] {out / name}" in proc.stdout           # the script says where it put it
    printed = (out / "output.txt").read_text(encoding="utf-8")
    assert printed.strip() and printed.splitlines()[0].startswith(f"{stem} (quick run")
    json.loads((out / "results.json").read_text(encoding="utf-8"))


def results_of(stem, tmp_path_factory):
    proc, out = run_quick(stem, tmp_path_factory)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


def test_02_zero_init_blocks_are_exactly_the_identity(tmp_path_factory):
    r = results_of("02_skip_connections", tmp_path_factory)
    assert r["zero_init_max_deviation_train"] == 0.0 and r["zero_init_max_deviation_eval"] == 0.0
    assert r["doc_y_max_error"] < 1e-12
    assert 0.8 < r["slope_plain"] < 1.2 and 1.8 < r["slope_residual"] < 2.2


def test_03_finds_the_documents_fifteen_wrong_values(tmp_path_factory):
    r = results_of("03_one_by_one_convolutions", tmp_path_factory)
    assert r["mismatch_count"] == 15
    wrong = {(m["example"].split(",")[0].split(" at")[0], tuple(m["index"])): m["engine"] for m in r["mismatches"]}
    assert wrong[("RGB 3→2", (0, 1, 0))] == pytest.approx(4.3)
    assert wrong[("4→2", (1, 0))] == pytest.approx(2.9)
    assert r["bottleneck_reduce"] == pytest.approx([4.5, 2.78])
    assert (r["params_3x3"], r["params_1x1"], r["reduce_params"]) == (294_912, 32_768, 16_384)
    assert max(r["matmul_per_pixel_relative_difference"]["float64"].values()) < 1e-12


def test_04_counts_the_bottleneck_saving(tmp_path_factory):
    r = results_of("04_bottleneck", tmp_path_factory)
    basic, bottleneck = r["basic (3×3, 3×3)"], r["bottleneck (1×1, 3×3, 1×1)"]
    assert (basic["conv_params"], bottleneck["conv_params"]) == (1_179_648, 69_632)
    assert (basic["macs"], bottleneck["macs"]) == (3_699_376_128, 218_365_952)
    assert r["timings"]["basic (3×3, 3×3)"]["forward_s"] > 0


def test_05_plain_gradients_are_unbalanced_and_residual_ones_are_not(tmp_path_factory):
    r = results_of("05_gradient_flow", tmp_path_factory)["with_bn"]
    for depth in (20, 56, 110):
        assert r[f"plain{depth}"]["first_over_last"] > r[f"resnet{depth}"]["first_over_last"]
    assert r["plain110"]["first_over_last"] > 1e3 > r["resnet110"]["first_over_last"]
    assert len(r["resnet56"]["block_grad_norms"]) == 27 and len(r["plain110"]["weight_grad_norms"]) == 109


def test_06_the_table_of_architectures_agrees(tmp_path_factory):
    r = results_of("06_architectures", tmp_path_factory)
    assert all(all(checks.values()) for checks in r["agreements"].values())
    assert r["measured"]["resnet50"]["params"] == 25_557_032
    assert r["measured"]["resnet152"]["macs"] == 11_513_626_624


def test_10_hand_backward_matches_engine_and_finite_differences(tmp_path_factory):
    r = results_of("10_backprop_by_hand", tmp_path_factory)
    assert r["module_vs_steps"] == 0.0
    assert r["hand_vs_engine_max"] < 1e-12
    assert r["gradcheck_ok"] and r["gradcheck_max_rel_error"] < 1e-6
    assert sorted(r["gradcheck"]) == sorted(["x", "conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight",
                                             "bn2.weight", "bn2.bias"])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_tutorial_is_a_percent_notebook(script):
    jupytext = pytest.importorskip("jupytext", reason="jupytext reads the tutorials as notebooks: pip install jupytext")
    notebook = jupytext.read(script)
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds[0] == "markdown" and kinds.count("markdown") >= 3 and kinds.count("code") >= 3
    number = script.name[:2]
    assert notebook.cells[0].source.startswith(f"# {number} · ")


def test_readme_shows_every_tutorial_and_its_committed_figures():
    readme = (TUTORIALS / "README.md").read_text(encoding="utf-8")
    for script in SCRIPTS:
        assert script.name in readme, f"tutorials/README.md does not mention {script.name}"
    links = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", readme)
    assert len(links) >= len(SCRIPTS)
    for link in links:
        assert (TUTORIALS / link).resolve().is_file(), f"tutorials/README.md shows {link}, which does not exist"
    for stem, figures in FIGURES.items():
        for name in figures:
            assert (ROOT / "docs" / "results" / stem / name).is_file(), f"docs/results/{stem}/{name} is not committed"
