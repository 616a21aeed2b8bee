"""`tinyresnet verify-doc`: every row is checked against a computation written here, independently
of the engine (explicit loops and dot products on the document's inputs, retyped below, or
arithmetic from layer shapes), and the document's wrong values must be reported as mismatches.

verify-doc runs once for the whole module (it builds ResNet-18 … ResNet-152 and runs ResNet-18,
-34 and -50 on one 224×224 image).
"""

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest

import tinyresnet.docverify as docverify
from tinyresnet import cli
from tinyresnet.docverify import parse_number
from tinyresnet.docverify.claim import agrees

ERRATA = Path(__file__).resolve().parents[1] / "docs" / "errata.md"

# ---------------------------------------------------------------------- the document's inputs, retyped
RED, GREEN, BLUE = [[1, 2, 3], [4, 5, 6], [7, 8, 9]], [[4, 5, 6], [7, 8, 9], [1, 2, 3]], \
    [[7, 8, 9], [1, 2, 3], [4, 5, 6]]
RGB_FILTERS = [[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]]
RGB_PRINTED = [[[3.1, 4.1, 5.1], [6.1, 7.1, 8.1], [9.1, 10.1, 11.1]],
               [[4.6, 5.6, 6.6], [7.6, 8.6, 9.6], [1.6, 2.6, 3.6]]]
CH4 = [[[1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6], [4, 5, 6, 7]],
       [[5, 6, 7, 8], [6, 7, 8, 9], [7, 8, 9, 0], [8, 9, 0, 1]],
       [[2, 3, 4, 5], [3, 4, 5, 6], [4, 5, 6, 7], [5, 6, 7, 8]],
       [[6, 7, 8, 9], [7, 8, 9, 0], [8, 9, 0, 1], [9, 0, 1, 2]]]
CH4_FILTERS = [[0.25] * 4, [0.4, 0.3, 0.2, 0.1]]
CH4_PRINTED = {(0, 0): (3.5, 2.5), (0, 1): (4.5, 3.3)}
PIXEL8 = [1, 5, 2, 6, 3, 7, 4, 8]
REDUCE8 = [[0.125] * 8, [0.5, 0.2, 0.1, 0.1, 0.05, 0.03, 0.01, 0.01]]
PROCESSED = [4.2, 3.1]
EXPAND = {0: ([0.6, 0.4], 3.76, [2.52, 1.24]), 1: ([0.3, 0.7], 3.43, [1.26, 2.17]), 7: ([0.5, 0.5], 3.65, [2.10, 1.55])}
X4 = [[[1, 2, 3, 4], [2, 3, 4, 5], [3, 4, 5, 6], [4, 5, 6, 7]],
      [[5, 6, 7, 8], [6, 7, 8, 9], [7, 8, 9, 0], [8, 9, 0, 1]]]
Z2 = [[[-0.3, 0.5], [0.2, -0.1]], [[0.2, -0.4], [-0.3, 0.1]]]
Y_PRINTED = [[[0.7, 2.5], [2.2, 2.9]], [[5.2, 5.6], [5.7, 7.1]]]

# the claims the document gets wrong (every other claim must match)
WRONG = {f"rgb-out-{i}{j}-ch{k}" for k in (0, 1) for i in (1, 2) for j in (0, 1, 2)} | {
    "reduce4-out-00-ch1", "reduce4-out-01-ch1", "bneck-reduce-00-ch1", "bneck-expand-last-channel",
    "s35-resnet50-stage1-widths", "s35-resnet50-stage2-widths", "s35-resnet50-stage3-widths",
    "s35-resnet50-stage4-widths", "s8-paths-resnet50", "s9-last-bn-bottleneck"}


def dot(w, x):
    return sum(a * b for a, b in zip(w, x))


def near(value, printed, tolerance):
    return abs(value - printed) <= tolerance + 1e-9


# ---------------------------------------------------------------------- layer arithmetic
def conv(cin, cout, k, groups=1):
    return cin // groups * cout * k * k


def resnet_params(kind, layers, groups=1, width_per_group=64):
    """Parameters of a torchvision-style ResNet from its layer shapes (convs, BN γ and β, fc)."""
    total, inplanes = conv(3, 64, 7) + 2 * 64, 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
        for b in range(blocks):
            stride = 2 if stage > 0 and b == 0 else 1
            if kind == "basic":
                out = planes
                total += conv(inplanes, planes, 3) + conv(planes, planes, 3) + 2 * (2 * planes)
            else:
                width, out = planes * width_per_group // 64 * groups, planes * 4
                total += (conv(inplanes, width, 1) + conv(width, width, 3, groups) + conv(width, out, 1)
                          + 2 * (width + width + out))
            if stride != 1 or inplanes != out:
                total += conv(inplanes, out, 1) + 2 * out
            inplanes = out
    return total + inplanes * 1000 + 1000


ARCH = {"resnet18": ("basic", [2, 2, 2, 2], 2, 11.7e6), "resnet34": ("basic", [3, 4, 6, 3], 2, 21.8e6),
        "resnet50": ("bottleneck", [3, 4, 6, 3], 3, 25.6e6), "resnet101": ("bottleneck", [3, 4, 23, 3], 3, 44.5e6),
        "resnet152": ("bottleneck", [3, 8, 36, 3], 3, 60.2e6)}


def out_size(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def hwc(c, h, w=None):
    return (c, h, h if w is None else w)


def independent():
    """{claim id: (the value computed here, whether the document's value should match it)}."""
    e = {}
    for k in (0, 1):                                         # §3.5 RGB 1×1 conv, every position
        for i in range(3):
            for j in range(3):
                value = dot(RGB_FILTERS[k], [RED[i][j], GREEN[i][j], BLUE[i][j]])
                e[f"rgb-out-{i}{j}-ch{k}"] = value, near(value, RGB_PRINTED[k][i][j], 0.05)
    for (i, j) in [(0, 0), (0, 1)]:
        e[f"rgb-in-{i}{j}"] = [RED[i][j], GREEN[i][j], BLUE[i][j]], True
    for (i, j), k, printed in [((0, 0), 0, [0.5, 1.2, 1.4]), ((0, 0), 1, [0.1, 2.4, 2.1]),
                               ((0, 1), 0, [1.0, 1.5, 1.6]), ((0, 1), 1, [0.2, 3.0, 2.4])]:
        terms = [w * x for w, x in zip(RGB_FILTERS[k], [RED[i][j], GREEN[i][j], BLUE[i][j]])]
        e[f"rgb-terms-{i}{j}-ch{k}"] = terms, all(near(t, p, 0.05) for t, p in zip(terms, printed))
    e["rgb-shape"] = (2, 3, 3), True
    e["fc-per-pixel"] = 0.0, True
    for (i, j), printed in CH4_PRINTED.items():              # §3.5 4 → 2 channels
        for k in (0, 1):
            value = dot(CH4_FILTERS[k], [CH4[c][i][j] for c in range(4)])
            e[f"reduce4-out-{i}{j}-ch{k}"] = value, near(value, printed[k], 0.05)
    for (i, j) in [(0, 0), (0, 1), (1, 1)]:
        e[f"reduce4-in-{i}{j}"] = [CH4[c][i][j] for c in range(4)], True
    e["reduce4-shape"] = (2, 4, 4), True
    reduced = [dot(f, PIXEL8) for f in REDUCE8]              # §3.5 8-channel bottleneck walk-through
    e["bneck-reduce-sum"] = sum(PIXEL8), sum(PIXEL8) == 36
    e["bneck-reduce-00-ch0"] = reduced[0], near(reduced[0], 4.5, 0.05)
    e["bneck-reduce-00-ch1"] = reduced[1], near(reduced[1], 2.95, 0.005)
    e["bneck-reduce-params"] = 8 * 2, True
    e["bneck-reduce-ratio"] = 8 / 2, True
    for k, (weights, printed, printed_terms) in EXPAND.items():
        value = dot(weights, PROCESSED)
        e[f"bneck-expand-00-ch{k}"] = value, near(value, printed, 0.005)
        terms = [w * x for w, x in zip(weights, PROCESSED)]
        e[f"bneck-expand-terms-ch{k}"] = terms, all(near(t, p, 0.005) for t, p in zip(terms, printed_terms))
    e["bneck-process-shape"] = (2, out_size(4, 3, 1, 1), out_size(4, 3, 1, 1)), True
    e["bneck-expand-shape"] = (8, 4, 4), True
    e["bneck-expand-last-channel"] = 8 - 1, False           # 8 channels numbered from 0: "ch8" does not exist
    e["bneck-expand-params"] = 2 * 8, True
    skip = dot(EXPAND[0][0], PROCESSED) + 1                  # x's channel 0 at (0,0) is 1
    e["bneck-skip-000"] = skip, near(skip, 4.76, 0.005)

    basic = [conv(256, 256, 3), conv(256, 256, 3)]           # §3 / §3.5 parameter counts
    bneck = [conv(256, 64, 1), conv(64, 64, 3), conv(64, 256, 1)]
    e.update({"s3-basic-conv1": (basic[0], basic[0] == 589_824), "s3-basic-conv2": (basic[1], basic[1] == 589_824),
              "s3-basic-total": (sum(basic), sum(basic) == 1_179_648),
              "s3-bneck-conv1": (bneck[0], bneck[0] == 16_384), "s3-bneck-conv2": (bneck[1], bneck[1] == 36_864),
              "s3-bneck-conv3": (bneck[2], bneck[2] == 16_384), "s3-bneck-total": (sum(bneck), sum(bneck) == 69_632)})
    ratio = sum(basic) / sum(bneck)
    e["s3-ratio"] = ratio, near(ratio, 17, 0.5)
    e["s35-params-ratio"] = ratio, near(ratio, 16.9, 0.05)
    e["s35-bneck-reduction"] = 256 / 64, True
    e["s35-bneck-expansion"] = 256 / 64, True
    e["s35-3x3-params"] = conv(256, 128, 3), conv(256, 128, 3) == 294_912
    e["s35-1x1-params"] = conv(256, 128, 1), conv(256, 128, 1) == 32_768
    e["s35-9x"] = 9.0, True
    e["s35-example-params"] = conv(256, 64, 1), True
    e["s35-example-shape"] = (1, 64, 56, 56), True
    e["s35-paint-3x3"], e["s35-paint-1x1"] = (3 * 3 * 3, True), (1 * 1 * 3, True)
    pixels = 56 * 56                                         # §3.5 multiply-accumulates at 56×56
    macs_basic, macs_bneck = [p * pixels for p in basic], [p * pixels for p in bneck]
    for n, value in enumerate(macs_basic):
        e[f"s35-macs-basic-conv{n + 1}"] = value, near(value, 1850e6, 5e6)
    e["s35-macs-basic-total"] = sum(macs_basic), near(sum(macs_basic), 3700e6, 50e6)
    for n, (value, printed) in enumerate(zip(macs_bneck, (51.4e6, 115.6e6, 51.4e6))):
        e[f"s35-macs-bneck-conv{n + 1}"] = value, near(value, printed, 0.05e6)
    e["s35-macs-bneck-total"] = sum(macs_bneck), near(sum(macs_bneck), 218.4e6, 0.05e6)
    mac_ratio = sum(macs_basic) / sum(macs_bneck)
    e["s35-macs-ratio"] = mac_ratio, near(mac_ratio, 16.9, 0.05)
    e["s35-macs-17x"] = mac_ratio, near(mac_ratio, 17, 0.5)
    e["s35-pixels"] = pixels, pixels == 3136
    for n, per_pixel in enumerate(bneck):
        e[f"s35-ops-per-pixel-conv{n + 1}"] = per_pixel, True
    e["s35-bneck-shape-reduce"] = e["s35-bneck-shape-process"] = hwc(64, 56), True
    e["s35-bneck-shape-out"] = hwc(256, 56), True
    e["s3-basic-shape"] = hwc(64, 56), True
    for stage, width in enumerate((64, 128, 256, 512)):      # §3.5 "Why 4×": real ResNet-50 widths
        e[f"s35-resnet50-stage{stage + 1}-widths"] = f"{4 * width} → {width} → {4 * width}", False
    e["s35-resnet50-first-block"] = "64 → 64 → 256", True
    e["s35-resnet50-stage2-first"] = "256 → 128 → 512", True
    e["s35-resnet50-channels"] = " → ".join(str(c) for c in (64, 256, 512, 1024, 2048)), True
    e["s35-resnet50-ratio"] = "4:1", True

    e["s4-conv1-shape"] = (2, out_size(4, 3, 1, 1), out_size(4, 3, 1, 1)), True       # §4
    for k in (0, 1):
        y = [[Z2[k][i][j] + X4[k][i][j] for j in range(2)] for i in range(2)]
        e[f"s4-skip-ch{k}"] = y, all(near(y[i][j], Y_PRINTED[k][i][j], 0.05) for i in range(2) for j in range(2))

    sizes = [224, out_size(224, 7, 2, 3)]                    # §5, §6, §12: sizes by the formula
    sizes.append(out_size(sizes[-1], 3, 2, 1))
    for _ in range(3):
        sizes.append(out_size(sizes[-1], 3, 2, 1))
    for name, (kind, layers, convs, params) in ARCH.items():
        total = resnet_params(kind, layers)
        e[f"s5-{name}-blocks"] = layers, True
        e[f"s5-{name}-block-type"] = "Basic" if kind == "basic" else "Bottleneck", True
        e[f"s5-{name}-layers"] = 2 + convs * sum(layers), True
        e[f"s5-{name}-params"] = total, near(total, params, 0.05e6)
    for stage, (c, s) in enumerate(zip((64, 128, 256, 512), sizes[2:])):
        e[f"s5-resnet34-stage{stage + 1}"] = hwc(c, s), True
        e[f"s5-resnet50-stage{stage + 1}"] = hwc(4 * c, s), True
        e[f"s5-resnet18-layer{stage + 1}"] = hwc(c, s), True
    e["s5-resnet18-conv1"], e["s5-resnet18-maxpool"] = (hwc(64, sizes[1]), True), (hwc(64, sizes[2]), True)
    e["s5-resnet18-avgpool"], e["s5-resnet18-fc"] = (hwc(512, 1), True), ("512 → 1000", True)
    e["s6-size-chain"] = " → ".join(str(n) for n in sizes + [1]), True
    e["s12-output-size-formula"] = 1 + 1 + 2 * 8 + 3, True  # conv1, maxpool, 16 block convs, 3 projections
    e["s6-mismatch-add"] = "ERROR", True
    e["s6-projection-shape"] = e["s6-block-shape"] = hwc(256, out_size(28, 1, 2, 0)), True
    e["s7-resnet50-output"] = (1, 1000), True
    e["s7-resnet50-params"] = resnet_params("bottleneck", [3, 4, 6, 3]), True
    e["s8-grad-plus-one"] = np.full((4, 4), 0.5 * 0.2 + 1), True      # §8: ∂(F(x) + x)/∂x, F(x) = 0.2·relu(0.5·x)
    e["s8-grad-survives"] = X4[1], True                               # ∂L/∂y, the §4 channel 1
    e["s8-paths-3-blocks"] = 2 ** 3, True
    e["s8-paths-resnet50"] = 2 ** sum([3, 4, 6, 3]), False            # not 2⁵⁰: 16 blocks
    e["s9-zero-init-basic"] = e["s9-zero-init-bottleneck"] = 0.0, True
    e["s9-last-bn-bottleneck"] = "bn3", False
    for (first, last), lr in {(0, 29): 0.1, (30, 59): 0.01, (60, 79): 0.001, (80, 89): 0.0001}.items():
        (rate,) = {0.1 * 0.1 ** sum(epoch >= m for m in (30, 60, 80)) for epoch in range(first, last + 1)}
        e[f"s9-lr-epochs-{first}-{last}"] = rate, math.isclose(rate, lr)
    fewer = resnet_params("bottleneck", [3, 4, 6, 3], groups=32, width_per_group=4) < resnet_params(
        "bottleneck", [3, 4, 23, 3])
    e["s10-resnext50-params"] = "fewer" if fewer else "not fewer", fewer
    return e


INDEPENDENT = independent()


# ---------------------------------------------------------------------- one run of the command
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Run `tinyresnet verify-doc --rows --json ... --errata ...` once, keeping the claims it printed."""
    folder = tmp_path_factory.mktemp("verify_doc")
    captured = []

    def recording():
        captured.extend(real())
        return captured

    real = docverify.verify_document
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(docverify, "verify_document", recording)
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            code = cli.main(["verify-doc", "--rows", "--json", str(folder / "rows.json"),
                             "--errata", str(folder / "errata.md")])
    return {"code": code, "claims": captured, "stdout": stdout.getvalue(),
            "rows": json.loads((folder / "rows.json").read_text(encoding="utf-8")),
            "errata": (folder / "errata.md").read_text(encoding="utf-8")}


@pytest.fixture(scope="module")
def claims(run):
    return {c.id: c for c in run["claims"]}


def test_exits_zero_even_with_mismatches(run):
    assert run["code"] == 0
    assert any(not c.match for c in run["claims"])


def test_every_row_is_checked_here(claims):
    assert set(claims) == set(INDEPENDENT), "a claim without an independent check here, or a check without a claim"


@pytest.mark.parametrize("claim_id", sorted(INDEPENDENT))
def test_engine_value_and_verdict(claims, claim_id):
    claim, (value, should_match) = claims[claim_id], INDEPENDENT[claim_id]
    if isinstance(value, (str, tuple)):
        assert claim.value == value
    else:
        np.testing.assert_allclose(np.asarray(claim.value, dtype=float), np.asarray(value, dtype=float),
                                   rtol=1e-9, atol=1e-12)
    assert claim.match is should_match, f"{claim_id}: document {claim.document!r}, engine {claim.engine!r}"


def test_the_document_is_wrong_exactly_here(claims):
    assert {i for i, c in claims.items() if not c.match} == WRONG
    assert {i for i, (_, ok) in INDEPENDENT.items() if not ok} == WRONG


def test_mismatches_explain_themselves(claims):
    for claim_id in WRONG:
        assert claims[claim_id].note, f"{claim_id} is a mismatch without an explanation"
    assert claims["rgb-out-10-ch0"].note == "0.5×4 + 0.3×7 + 0.2×1 = 2 + 2.1 + 0.2 = 4.3"
    assert "16 residual blocks" in claims["s8-paths-resnet50"].note


def test_table_has_one_row_per_claim_and_a_count(run):
    lines = run["stdout"].splitlines()
    rows = [line for line in lines if line.endswith((" | ✓", " | ✗"))]
    assert len(rows) == len(run["claims"])
    for line, c in zip(rows, run["claims"]):
        assert c.claim in line and c.document in line and c.engine in line
        assert line.endswith("✓" if c.match else "✗")
    wrong = len(WRONG)
    assert f"{len(run['claims'])} claims checked: {len(run['claims']) - wrong} ✓ match, {wrong} ✗ mismatch" in lines[-1]


def test_json_rows(run):
    rows = run["rows"]["claims"]
    assert [r["id"] for r in rows] == [c.id for c in run["claims"]]
    for row, c in zip(rows, run["claims"]):
        assert {"id", "section", "claim", "document", "engine", "match", "cause"} <= set(row)
        assert row["match"] is c.match and row["engine"] == c.engine and row["document"] == c.document
        assert (row["cause"] is None) is c.match, f"{c.id}: a mismatch needs a cause, a match none"
    summary = run["rows"]["summary"]
    assert (summary["claims"], summary["mismatch"]) == (len(run["claims"]), len(WRONG))
    assert sum(len(cause["rows"]) for cause in run["rows"]["root_causes"]) == len(WRONG)
    assert run["rows"]["conceptual_errata"], "the JSON carries the conceptual errata too"


def test_errata_page_lists_every_mismatch_and_is_committed_current(run, claims):
    text = run["errata"]
    for claim_id in WRONG:
        assert claims[claim_id].claim in text
    section = text.split("## Mismatches")[1].split("\n## ")[0]
    assert sum(line.startswith("| ") for line in section.splitlines()) - 2 == len(WRONG)   # less the header
    assert ERRATA.read_text(encoding="utf-8") == text, \
        "docs/errata.md is stale: regenerate it with `tinyresnet verify-doc --errata docs/errata.md`"


@pytest.mark.parametrize("text, value, agree", [
    ("51.4M", 51_380_224, True), ("51.4M", 51_460_000, False), ("218.4M", 218_365_952, True),
    ("3,700M", 3_699_376_128, True), ("1,850M", 1_849_688_064, True), ("17×", 16.94, True), ("16.9×", 16.94, True),
    ("16.9×", 16.96, False), ("589,824", 589_824, True), ("589,824", 589_825, False), ("2.95", 2.78, False),
    ("6.1", 4.3, False), ("3.1", 3.1000001, True),
])
def test_rounding_tolerance(text, value, agree):
    expected, tolerance = parse_number(text)
    assert agrees(expected, value, tolerance) is agree
    assert math.isfinite(tolerance)
