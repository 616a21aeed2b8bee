"""The experiment tutorials (01 and 11-13) and their shared code, tutorials/_experiments.py.

Each tutorial runs once with --quick as a subprocess (as a user starts it); the tests check the figures
and numbers it wrote. Quick-run training errors mean nothing and are not checked; counts, ratios and
the structure of the results are.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
STEMS = ["01_degradation", "11_shortcuts_and_preactivation", "12_deeper_is_better",
         "13_bottleneck_speed_and_weight_decay"]
sys.path.insert(0, str(TUTORIALS))

_runs = {}


def run_quick(stem, tmp_path_factory):
    if stem not in _runs:
        out = tmp_path_factory.mktemp(stem)
        env = dict(os.environ, MPLBACKEND="Agg", PYTHONIOENCODING="utf-8", OPENBLAS_NUM_THREADS="1",
                   OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        proc = subprocess.run([sys.executable, str(TUTORIALS / f"{stem}.py"), "--quick", "--out", str(out)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        _runs[stem] = (proc, out)
    return _runs[stem]


@pytest.mark.parametrize("stem", STEMS)
def test_quick_run_writes_every_figure_and_its_numbers(stem, tmp_path_factory):
    proc, out = run_quick(stem, tmp_path_factory)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = re.findall(r'save_figure\([^)]*"([^"]+\.png)"', (TUTORIALS / f"{stem}.py").read_text(encoding="utf-8"))
    assert figures
    for name in figures:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results and (out / "output.txt").stat().st_size > 0


def test_01_reports_bands_over_seeds_and_the_diagnosis(tmp_path_factory):
    _, out = run_quick("01_degradation", tmp_path_factory)
    r = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert len(r["seeds"]) >= 2
    for name in ("plain20", "plain56", "resnet20", "resnet56"):
        b = r["summary"][name]["train_err"]
        assert len(b["values"]) == len(r["seeds"]) and b["min"] <= b["median"] <= b["max"]
    assert set(r["diagnosis"]["summary"]) == {"lr 0.1", "lr 0.1, warm-up", "lr 0.1, zero-init", "lr 0.05", "lr 0.02"}
    assert r["start"]["resnet56"]["logit_sd"] > r["start"]["resnet20"]["logit_sd"] > r["start"]["plain56"]["logit_sd"]
    assert set(r["verdicts"].values()) <= {"higher", "lower", "overlapping"}


def test_12_counts_the_papers_parameters(tmp_path_factory):
    _, out = run_quick("12_deeper_is_better", tmp_path_factory)
    r = json.loads((out / "results.json").read_text(encoding="utf-8"))
    for depth, p in r["paper"].items():
        assert abs(r["counted_params"][depth] / p["params"] - 1) < 0.03, depth      # 0.27M ... 19.4M


def test_13_mac_ratio_is_the_same_at_every_size(tmp_path_factory):
    _, out = run_quick("13_bottleneck_speed_and_weight_decay", tmp_path_factory)
    r = json.loads((out / "results.json").read_text(encoding="utf-8"))
    rows = r["speed"]["rows"]
    assert [round(row["mac_ratio"], 2) for row in rows] == [16.94] * len(rows)
    assert all(row["basic_s"] > 0 and row["bottleneck_s"] > 0 for row in rows)
    assert set(r["weight_decay"]["gammas"]) == {"0", "0.0001", "0.001"}


# ------------------------------------------------------------------------------------------ _experiments
def test_band_counts_a_diverged_run_as_total_error():
    import _experiments as E

    b = E.band(np.array([0.1, np.nan, 0.3]))
    assert (b["min"], b["median"], b["max"]) == (0.1, 0.3, 1.0)
    assert E.percent_band(E.band(np.array([0.01, 0.02]))) == "  1.50% (1.00–2.00%)"


def test_preact_block_has_nothing_after_the_addition_and_trains():
    import _experiments as E

    from tinyresnet import Tensor, nn

    nn.manual_seed(0)
    block = E.PreActBlock(8, 8)
    x = np.random.default_rng(0).standard_normal((2, 8, 5, 5)).astype(np.float32)
    for m in (block.bn2,):
        m.weight.data[:] = 0          # zero the branch's inner BN: the branch gives conv2(relu(0 + β)) = 0
    out = block(Tensor(x))
    assert np.allclose(out.data, x, atol=1e-6)          # the identity, negative values included: no final ReLU
    model = E.preact_cifar_resnet(20, in_channels=1)
    from tinyresnet import models
    assert model.num_parameters() - models.resnet20(in_channels=1).num_parameters() == 32
    logits = model(Tensor(x[:, :1]))
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_recipe_warm_up_runs_at_a_tenth_then_the_full_rate():
    import _experiments as E

    from tinyresnet import models

    model = models.resnet20(in_channels=1)
    optimizer, scheduler = E.recipe(model, epochs=4, lr=0.1, warmup_steps=3)
    rates = []
    for _ in range(5):
        rates.append(optimizer.param_groups[0]["lr"])
        scheduler.step_batch()
    assert np.allclose(rates, [0.01, 0.01, 0.01, 0.1, 0.1])


def test_forward_backward_timer_and_last_bn_gammas():
    import _experiments as E

    from tinyresnet import models
    from tinyresnet.nn import init

    model = models.resnet20(in_channels=1, zero_init_residual=True)
    assert E.last_bn_gammas(model) == [0.0] * 9
    init.ones_(model.layer1[0].bn2.weight)
    assert E.last_bn_gammas(model)[0] == 1.0
    seconds = E.time_forward_backward(model, np.zeros((2, 1, 8, 8), np.float32), repeats=1)
    assert 0 < seconds < 30
