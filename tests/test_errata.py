"""Root causes and conceptual errata of `tinyresnet verify-doc`, and the errata page they generate.

Every mismatch must belong to exactly one root cause (a new wrong row without a cause fails here),
each cause's key figure is recomputed here by plain arithmetic on the document's inputs, and the
conceptual errata's engine evidence is checked against what it states.
"""

import contextlib
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

from tinyresnet import cli
from tinyresnet.docverify import ROOT_CAUSES, Claim, errata, group, grouped, speed, to_json
from tinyresnet.docverify import concepts as concepts_module
from tinyresnet.docverify import document as doc
from tinyresnet.docverify.causes import RootCause, cause_of
from tinyresnet.docverify.concepts import concepts

ROOT = Path(__file__).resolve().parents[1]
ERRATA = ROOT / "docs" / "errata.md"


# ---------------------------------------------------------------------------------------------- root causes
def test_every_mismatch_has_exactly_one_root_cause(claims):
    wrong = {c.id for c in claims if not c.match}
    owners = [claim_id for cause in ROOT_CAUSES for claim_id in cause.ids]
    assert sorted(owners) == sorted(wrong), "each mismatch in exactly one cause, and no cause on a matching row"
    assert set(cause_of(claims)) == wrong
    assert len(ROOT_CAUSES) < len(wrong), "root causes group rows; one cause per row would explain nothing"


def test_a_new_mismatch_without_a_cause_is_refused(claims):
    stray = Claim("new-row", "3.5", "a claim nobody explained", "1", "2", False)
    with pytest.raises(ValueError, match="new-row .* without a root cause"):
        group(claims + [stray])


def test_a_cause_on_a_matching_row_or_two_causes_are_refused(claims):
    on_match = ROOT_CAUSES + (RootCause("stale", "t", "e", ("rgb-shape",), "tutorials/03_one_by_one_convolutions.py"),)
    with pytest.raises(ValueError, match="rgb-shape, which matches the document"):
        group(claims, on_match)
    twice = ROOT_CAUSES + (RootCause("dup", "t", "e", ("s8-paths-resnet50",), "tutorials/09_ensemble_view.py"),)
    with pytest.raises(ValueError, match="s8-paths-resnet50 belongs to 2 root causes"):
        group(claims, twice)


def test_causes_are_named_explained_and_point_to_a_tutorial_in_the_repo():
    names = [c.name for c in ROOT_CAUSES]
    assert len(set(names)) == len(names)
    for cause in ROOT_CAUSES:
        assert re.fullmatch(r"[a-z0-9-]+", cause.name) and cause.title and len(cause.explanation) > 80
        assert cause.tutorial.startswith("tutorials/") and (ROOT / cause.tutorial).is_file(), cause.tutorial


def test_rgb_cause_the_printed_grids_are_input_channels_shifted(by_id):
    # printed channel 0 = red + 2.1 and channel 1 = green + 0.6 everywhere, by hand from the document's grids
    red, green = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]]), np.array([[4, 5, 6], [7, 8, 9], [1, 2, 3]])
    printed0 = np.array([[3.1, 4.1, 5.1], [6.1, 7.1, 8.1], [9.1, 10.1, 11.1]])
    printed1 = np.array([[4.6, 5.6, 6.6], [7.6, 8.6, 9.6], [1.6, 2.6, 3.6]])
    np.testing.assert_allclose(printed0 - red, 2.1)
    np.testing.assert_allclose(printed1 - green, 0.6)
    rgb = next(c for c in ROOT_CAUSES if c.name == "rgb-grid-by-pattern")
    assert "channel 0 + 2.1" in rgb.evidence(by_id) and "channel 1 + 0.6" in rgb.evidence(by_id)
    assert len(rgb.ids) == 12 and all(not by_id[i].match for i in rgb.ids)


def test_dropped_product_and_elided_sum_causes(by_id):
    # 0.4×1 + 0.3×5 + 0.2×2 + 0.1×6 = 2.9: without 0.4×1 it is the printed 2.5; (0,1): 3.9 without 0.2×3 is 3.3
    assert abs((0.3 * 5 + 0.2 * 2 + 0.1 * 6) - 2.5) < 1e-12 and abs((0.4 * 2 + 0.3 * 6 + 0.1 * 7) - 3.3) < 1e-12
    dropped = next(c for c in ROOT_CAUSES if c.name == "dropped-product")
    assert "0.4×1 is 2.5" in dropped.evidence(by_id) and "0.2×3 is 3.3" in dropped.evidence(by_id)
    products = [0.5 * 1, 0.2 * 5, 0.1 * 2, 0.1 * 6, 0.05 * 3, 0.03 * 7, 0.01 * 4, 0.01 * 8]
    assert min(products) > 0 and sum(products) < 2.95                # no subset of them reaches the printed 2.95
    np.testing.assert_allclose(doc.BOTTLENECK_REDUCE[1] * doc.BOTTLENECK_PIXEL, products)


def test_default_view_is_grouped_by_cause(claims):
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert cli.main(["verify-doc"]) == 0
    text = stdout.getvalue()
    assert text == grouped(claims) + "\n"
    wrong = [c for c in claims if not c.match]
    assert f"{len(wrong)} wrong numbers come from {len(ROOT_CAUSES)} mistakes" in text
    positions = [text.index(cause.title) for cause in ROOT_CAUSES]
    assert positions == sorted(positions)
    for cause in ROOT_CAUSES:
        section = text[text.index(cause.title):]
        assert cause.tutorial in section.split("\n\n")[0]
    assert sum(line.lstrip().startswith("✗ §") for line in text.splitlines()) == len(wrong)


def test_json_root_causes(claims):
    data = json.loads(to_json(claims, with_concepts=False))
    assert [c["name"] for c in data["root_causes"]] == [c.name for c in ROOT_CAUSES]
    assert {row["id"]: row["cause"] for row in data["claims"] if row["cause"]} == cause_of(claims)
    assert "conceptual_errata" not in data


# ---------------------------------------------------------------------------------------------- conceptual errata
def test_conceptual_errata_are_complete_records():
    items = concepts()
    assert len(items) >= 15
    for c in items:
        assert c.verdict in concepts_module.VERDICTS and c.section and c.claim and c.source
        assert c.evidence_text(), c.id
        if c.tutorial:
            assert (ROOT / c.tutorial).is_file(), f"{c.id}: {c.tutorial} is not a file of the repository"
    topics = " ".join(c.id for c in items)
    for required in ("shortcut-type-c", "code-expansion-attribute", "squeeze-and-excite", "top1-column",
                     "bottleneck-17x-faster"):
        assert required in topics                                # the five kinds the issue names


def test_shortcut_evidence_counts_options_a_b_c():
    text = concepts_module.shortcut_parameters()
    a, b, c = (int(n.replace(",", "")) for n in re.findall(r"[ABC] ([\d,]+)", text))
    assert a < b < c
    assert "0 parameters" in concepts_module.shortcut_a_is_subsampling()
    assert "(exactly)" in concepts_module.shortcut_a_is_subsampling()


def test_post_activation_gradient_is_zero_where_the_input_is_negative():
    share = int(re.search(r"(\d+)% of the entries", concepts_module.post_activation_gradient()).group(1))
    assert 35 <= share <= 65                                     # about half of a standard-normal input is < 0


def test_paper_pair_has_similar_complexity():
    ratios = [float(r) for r in re.findall(r"([\d.]+)×\)", concepts_module.similar_complexity())]
    assert abs(ratios[0] - 231.2 / 218.4) < 0.01 and abs(ratios[1] - 16.94) < 0.01   # 64·64·9·2·3136 / 218,365,952


def test_top1_column_is_not_the_papers():
    for name, accuracy in concepts_module.TOP1_DOCUMENT.items():
        assert abs(accuracy - concepts_module.TOP1_TORCHVISION[name]) < 0.05
        assert abs(accuracy - (100 - concepts_module.TOP1_PAPER_ERROR[name])) > 0.25   # 10-crop errors differ


def test_speed_measurement_runs_and_the_record_is_below_the_mac_ratio():
    rows = speed.measure(sizes=(4,), repeats=1, channels=16, width=4)
    assert rows[0]["size"] == 4 and rows[0]["speedup"] > 0 and rows[0]["mac_ratio"] > 1
    recorded = speed.RECORDED["rows"]
    assert recorded and all(r["speedup"] < r["mac_ratio"] for r in recorded)
    assert str(recorded[0]["speedup"]) in concepts_module.measured_speedup()


# ---------------------------------------------------------------------------------------------- the page
def test_errata_page_is_generated_whole_and_committed_current(claims):
    text = errata(claims)
    assert ERRATA.read_text(encoding="utf-8") == text, \
        "docs/errata.md is stale: regenerate it with `tinyresnet verify-doc --errata docs/errata.md`"
    causes = text.split("## Root causes of the wrong numbers")[1].split("\n## ")[0]
    assert len(re.findall(r"^### \d+\. ", causes, re.M)) == len(ROOT_CAUSES)
    conceptual = text.split("## Conceptual errata")[1].split("\n## ")[0]
    assert len(re.findall(r"^### C\d+\. ", conceptual, re.M)) == len(concepts())
    for c in concepts():
        assert c.evidence_text() in conceptual


def test_errata_page_links_nowhere_outside_the_repository():
    text = ERRATA.read_text(encoding="utf-8")
    assert "../" not in text and "shared/seed" not in text and "/work/" not in text
    for path in re.findall(r"`(tutorials/[^`]+)`", text):
        assert (ROOT / path).is_file(), path
