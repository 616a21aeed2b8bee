"""The experiment tutorials (01 and 11-13) and their shared code, tutorials/_experiments.py.

Each tutorial's quick run is the one tests/test_tutorials.py executes as a notebook (the session fixture
``tutorial_runs`` in conftest.py: each runs once); the tests here check the figures and numbers it wrote.
Quick-run training errors mean nothing and are not checked; counts, ratios and the structure of the
results are.
"""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import tutorial_run

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = ROOT / "tutorials"
STEMS = ["01_degradation", "11_shortcuts_and_preactivation", "12_deeper_is_better",
         "13_bottleneck_speed_and_weight_decay"]
sys.path.insert(0, str(TUTORIALS))


@pytest.fixture(scope="module")
def quick_runs(tutorial_runs):
    return tutorial_runs


def output_of(stem, runs):
    """The output folder of the tutorial's quick run; fails the test if the run failed."""
    return tutorial_run(runs, stem)[1]


@pytest.mark.parametrize("stem", STEMS)
def test_quick_run_writes_every_figure_and_its_numbers(stem, quick_runs):
    out = output_of(stem, quick_runs)
    figures = re.findall(r'save_figure\([^)]*"([^"]+\.png)"', (TUTORIALS / f"{stem}.py").read_text(encoding="utf-8"))
    assert figures
    for name in figures:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results and (out / "output.txt").stat().st_size > 0


def test_01_reports_bands_over_seeds_and_the_diagnosis(quick_runs):
    out = output_of("01_degradation", quick_runs)
    r = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert len(r["seeds"]) >= 2
    for name in ("plain20", "plain56", "resnet20", "resnet56"):
        b = r["summary"][name]["train_err"]
        assert len(b["values"]) == len(r["seeds"]) and b["min"] <= b["median"] <= b["max"]
    assert set(r["diagnosis"]["summary"]) == {"lr 0.1", "lr 0.1, warm-up", "lr 0.1, zero-init", "lr 0.05", "lr 0.02"}
    assert r["start"]["resnet56"]["logit_sd"] > r["start"]["resnet20"]["logit_sd"] > r["start"]["plain56"]["logit_sd"]
    assert set(r["verdicts"].values()) <= {"higher", "lower", "overlapping"}


def test_12_counts_the_papers_parameters(quick_runs):
    out = output_of("12_deeper_is_better", quick_runs)
    r = json.loads((out / "results.json").read_text(encoding="utf-8"))
    for depth, p in r["paper"].items():
        assert abs(r["counted_params"][depth] / p["params"] - 1) < 0.03, depth      # 0.27M ... 19.4M


def test_13_mac_ratio_is_the_same_at_every_size(quick_runs):
    out = output_of("13_bottleneck_speed_and_weight_decay", quick_runs)
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
